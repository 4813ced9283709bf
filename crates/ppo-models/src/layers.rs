//! Building blocks with Hugging Face parameter names: `Linear`, `Embedding`, `RmsNorm`, and
//! deterministic initialisation from our own [`Rng`].
//!
//! Mixed precision: `Linear` computes in the dtype of its input (its weights cast to it at use),
//! `RmsNorm` computes its statistics in f32 and returns the dtype of its input. With f32 inputs
//! and f32 weights every cast is skipped, so the f32 arithmetic is unchanged.

use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::Rng;
use crate::precision::cast_to;

/// Tensor of `shape` with entries drawn from N(0, std²) by `rng` (backend independent).
/// `std == 0` gives zeros without drawing (the skeleton a checkpoint loader overwrites).
pub(crate) fn normal_tensor<const D: usize>(
    shape: [usize; D],
    std: f64,
    rng: &mut Rng,
    device: &Device,
) -> Tensor<D> {
    if std == 0.0 {
        return Tensor::zeros(shape, device);
    }
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// `y = x·W + b`, weight stored `[in, out]`.
#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_input, d_output]`
    pub weight: Param<Tensor<2>>,
    /// `[d_output]`
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    pub(crate) fn init(
        d_input: usize,
        d_output: usize,
        bias: bool,
        std: f64,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let weight = Param::from_tensor(normal_tensor([d_input, d_output], std, rng, device));
        let bias = bias.then(|| Param::from_tensor(Tensor::zeros([d_output], device)));
        Self { weight, bias }
    }

    /// x: `[batch, seq, d_input]` → `[batch, seq, d_output]`, in the dtype of `x` (weight and
    /// bias are cast to it at use; the gradient flows back through the cast to the parameter).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, seq, d_input] = x.dims();
        let dtype = x.dtype();
        let weight = cast_to(self.weight.val(), dtype);
        let d_output = weight.dims()[1];
        let y = x.reshape([batch * seq, d_input]).matmul(weight);
        let y = match &self.bias {
            Some(bias) => y + cast_to(bias.val(), dtype).unsqueeze_dim::<2>(0),
            None => y,
        };
        y.reshape([batch, seq, d_output])
    }
}

/// Token embedding table.
#[derive(Module, Debug)]
pub struct Embedding {
    /// `[vocab_size, hidden_size]`
    pub weight: Param<Tensor<2>>,
}

impl Embedding {
    pub(crate) fn init(
        vocab: usize,
        hidden: usize,
        std: f64,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        Self {
            weight: Param::from_tensor(normal_tensor([vocab, hidden], std, rng, device)),
        }
    }

    /// ids: `[batch, seq]` → `[batch, seq, hidden]`, in the dtype the table is stored in.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [batch, seq] = ids.dims();
        let weight = self.weight.val();
        let hidden = weight.dims()[1];
        weight
            .select(0, ids.reshape([batch * seq]))
            .reshape([batch, seq, hidden])
    }
}

/// Root-mean-square norm: `x / sqrt(mean(x²) + eps) * weight`.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// `[dim]`
    pub weight: Param<Tensor<1>>,
    eps: f64,
}

impl RmsNorm {
    pub(crate) fn init(dim: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([dim], device)),
            eps,
        }
    }

    /// Normalises over the last dimension of `x`. Mean square, reciprocal root and the scaling
    /// by the weight are computed in f32 (as transformers' `Qwen3RMSNorm`); the result is
    /// returned in the dtype of `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = cast_to(x, DType::F32);
        let mean_square = (x.clone() * x.clone()).mean_dim(D - 1);
        let inv_rms = (mean_square + self.eps).sqrt().recip();
        let weight = cast_to(self.weight.val(), DType::F32);
        let dim = weight.dims()[0];
        let mut shape = [1usize; D];
        shape[D - 1] = dim;
        cast_to(x * inv_rms * weight.reshape(shape), dtype)
    }
}

/// Layer normalisation over the last dimension: `(x − mean) / sqrt(var + eps) · weight + bias`
/// (biased variance, as PyTorch's `nn.LayerNorm`).
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// `[dim]`
    pub weight: Param<Tensor<1>>,
    /// `[dim]`
    pub bias: Param<Tensor<1>>,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn init(dim: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([dim], device)),
            bias: Param::from_tensor(Tensor::zeros([dim], device)),
            eps,
        }
    }

    /// Normalises over the last dimension of `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let centred = x.clone() - x.mean_dim(D - 1);
        let variance = (centred.clone() * centred.clone()).mean_dim(D - 1);
        let normed = centred * (variance + self.eps).sqrt().recip();
        let weight = self.weight.val();
        let dim = weight.dims()[0];
        let mut shape = [1usize; D];
        shape[D - 1] = dim;
        normed * weight.reshape(shape) + self.bias.val().reshape(shape)
    }
}
