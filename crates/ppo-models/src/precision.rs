//! Floating-point precision of a model's compute or storage: `float32` or `bfloat16`.
//!
//! Mixed precision as PyTorch's autocast does it, made explicit: parameters stay `float32`
//! ("master weights", and so do the optimiser moments), a model with a `bfloat16` compute
//! precision casts each weight to `bfloat16` where it is used, and the numerically sensitive
//! steps (RMSNorm statistics, attention softmax) and the outputs (logits, values) are `float32`.
//! Gradients flow back through the casts, so they arrive `float32` at `float32` parameters.

use std::fmt;
use std::str::FromStr;

use burn::module::{ModuleMapper, Param};
use burn::tensor::{DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// A floating-point precision, named as PyTorch names its dtypes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Precision {
    /// IEEE single precision (`torch.float32`): the default, bit-identical to a model
    /// that never heard of precisions.
    #[default]
    #[serde(rename = "float32", alias = "f32", alias = "fp32")]
    F32,
    /// bfloat16 (`torch.bfloat16`): 8 exponent bits as `float32`, 8 significant bits
    /// (relative rounding error up to 2⁻⁸ ≈ 0.4%).
    #[serde(rename = "bfloat16", alias = "bf16")]
    Bf16,
}

impl Precision {
    /// Every precision.
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::Bf16];

    /// The name used in configuration files (`float32`, `bfloat16`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
        }
    }

    /// The burn float dtype of tensors in this precision.
    pub fn float_dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::Bf16 => FloatDType::BF16,
        }
    }

    /// The burn dtype of tensors in this precision (what [`Tensor::dtype`] reports).
    pub fn dtype(self) -> DType {
        DType::from(self.float_dtype())
    }

    /// The precision of a float dtype, if it is one of ours.
    pub fn from_dtype(dtype: DType) -> Option<Self> {
        match dtype {
            DType::F32 => Some(Self::F32),
            DType::BF16 => Some(Self::Bf16),
            _ => None,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = ModelError;

    /// `float32` or `bfloat16`; also the short forms `f32`, `fp32`, `bf16`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "float32" | "f32" | "fp32" => Ok(Self::F32),
            "bfloat16" | "bf16" => Ok(Self::Bf16),
            other => Err(ModelError::UnknownPrecision(other.to_string())),
        }
    }
}

/// `x` in `dtype`: the tensor itself (no operation, no autodiff node) when it already is.
pub(crate) fn cast_to<const D: usize>(x: Tensor<D>, dtype: DType) -> Tensor<D> {
    if x.dtype() == dtype { x } else { x.cast(dtype) }
}

/// Casts every float parameter to one precision, keeping its id and whether it requires a
/// gradient (the cast value is a new leaf, not a node on the old parameter's graph).
pub(crate) struct CastParams(pub(crate) Precision);

impl ModuleMapper for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0.dtype();
        param.map(|tensor| {
            if tensor.dtype() == dtype {
                return tensor;
            }
            let require_grad = tensor.is_require_grad();
            tensor.detach().cast(dtype).set_require_grad(require_grad)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_display_from_str_and_serde() {
        for precision in Precision::ALL {
            let name = precision.to_string();
            assert_eq!(name.parse::<Precision>().unwrap(), precision);
            let json = serde_json::to_string(&precision).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Precision>(&json).unwrap(), precision);
        }
        assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::Bf16);
        assert_eq!("fp32".parse::<Precision>().unwrap(), Precision::F32);
        assert_eq!(Precision::default(), Precision::F32);
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_known_ones() {
        let err = "float16".parse::<Precision>().unwrap_err().to_string();
        assert!(err.contains("float16"), "{err}");
        assert!(err.contains("float32") && err.contains("bfloat16"), "{err}");
    }

    #[test]
    fn dtypes_map_both_ways() {
        for precision in Precision::ALL {
            assert_eq!(precision.dtype(), DType::from(precision.float_dtype()));
            assert_eq!(Precision::from_dtype(precision.dtype()), Some(precision));
        }
        assert_eq!(Precision::from_dtype(DType::F16), None);
    }
}
