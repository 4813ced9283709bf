//! LoRA adapters on the policy and the critic, with burn's [`Module::apply_lora`].
//!
//! An adapted weight `W` (`[in, out]`) is used as `W + (α/r)·A·B`, `A: [in, r]`, `B: [r, out]`;
//! `W` and every other parameter of the adapted model are frozen, only `A` and `B` train (and a
//! critic's value head, which stays a plain trained parameter). `B` starts at zero, so an
//! adapted model computes exactly what its base computes until the first update; `A` is drawn
//! from our [`Rng`] as PEFT draws it (uniform in ±1/√in), so a run is reproducible from its seed.
//!
//! The adapters live inside the parameters (module paths `….q_proj.weight.lora.a` / `.b`): the
//! optimiser, gradient clipping and checkpoints see them as ordinary parameters, and
//! [`merged`] folds them into dense weights (what an export writes). A frozen base is never
//! updated, so a reference taken from the model before the adapters were attached shares its
//! storage: no second copy of the weights.

use std::fmt;

use burn::module::{Lora, Module, ModuleMapper, ModuleVisitor, Param, ParamGroup};
use burn::tensor::{Tensor, TensorData};

use crate::{CausalLm, Rng, ValueModel};

/// The projections an adapter may target, by their Hugging Face names.
pub const LORA_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Path segment of the adapter factors under an adapted weight.
const ADAPTER: &str = ".lora.";

/// Rank, scale and targets of the adapters.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    /// Rank `r` of `A·B`.
    pub rank: usize,
    /// `α`: the update is scaled by `α / r`.
    pub alpha: f64,
    /// Projections adapted in every layer (names of [`LORA_TARGETS`]).
    pub target_modules: Vec<String>,
}

/// A [`LoraConfig`] that cannot be used: which setting, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfigError {
    /// The setting, with the prefix given to [`LoraConfig::validate`] (`lora.rank`).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for LoraConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for LoraConfigError {}

impl LoraConfig {
    /// Checks rank, alpha and targets (`prefix` names the settings in the message, e.g. `lora`).
    pub fn validate(&self, prefix: &str) -> Result<(), LoraConfigError> {
        let bad = |key: &str, message: String| {
            Err(LoraConfigError {
                key: format!("{prefix}.{key}"),
                message,
            })
        };
        if self.rank == 0 {
            return bad("rank", "must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(
                "alpha",
                format!("must be a positive number, got {}", self.alpha),
            );
        }
        let choices = LORA_TARGETS.join(", ");
        if self.target_modules.is_empty() {
            return bad("target_modules", format!("is empty; choose from {choices}"));
        }
        for name in &self.target_modules {
            if !LORA_TARGETS.contains(&name.as_str()) {
                return bad(
                    "target_modules",
                    format!("{name:?} is not a projection of this model; choose from {choices}"),
                );
            }
        }
        Ok(())
    }

    /// Adapter parameters on a model of shape `model`: `r·(in + out)` per targeted
    /// projection and layer.
    pub fn num_params(&self, model: &crate::TransformerConfig) -> usize {
        let h = model.hidden_size;
        let q = model.num_attention_heads * model.head_dim;
        let kv = model.num_key_value_heads * model.head_dim;
        let i = model.intermediate_size;
        let per_layer: usize = self
            .target_modules
            .iter()
            .map(|t| match t.as_str() {
                "q_proj" => h + q,
                "k_proj" | "v_proj" => h + kv,
                "o_proj" => q + h,
                "gate_proj" | "up_proj" | "down_proj" => h + i,
                _ => 0,
            })
            .sum();
        self.rank * per_layer * model.num_hidden_layers
    }

    /// `α / r`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Whether `path` (a dotted parameter path) is the weight of a targeted projection.
    fn targets(&self, path: &str) -> bool {
        self.target_modules.iter().any(|t| {
            path.strip_suffix(".weight")
                .and_then(|p| p.strip_suffix(t.as_str()))
                .is_some_and(|p| p.ends_with('.'))
        })
    }
}

/// Dotted paths of the 2-D parameters `config` targets.
struct TargetPaths<'a> {
    config: &'a LoraConfig,
    path: Vec<String>,
    found: Vec<String>,
}

impl ModuleVisitor for TargetPaths<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        if D == 2 && self.config.targets(&path) {
            self.found.push(path);
        }
    }
}

/// Draws every `A` factor from `rng`: uniform in ±1/√in (PEFT's Kaiming-uniform with a = √5).
struct DrawA<'a> {
    rng: &'a mut Rng,
    path: Vec<String>,
}

impl ModuleMapper for DrawA<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.path.join(".").ends_with(".lora.a") && D == 2 {
            let rng = &mut *self.rng;
            return param.map(|a| {
                let dims = a.dims();
                let bound = 1.0 / (dims[0] as f64).sqrt();
                let n: usize = dims.iter().product();
                let values: Vec<f32> = (0..n)
                    .map(|_| ((2.0 * rng.next_f64() - 1.0) * bound) as f32)
                    .collect();
                let drawn = Tensor::<D>::from_data(TensorData::new(values, dims), &a.device());
                drawn.cast(a.dtype()).set_require_grad(a.is_require_grad())
            });
        }
        param
    }
}

/// `module` with adapters on the weights `config` targets; every other parameter frozen.
fn adapt<M: Module>(module: M, config: &LoraConfig, rng: &mut Rng) -> M {
    let mut targets = TargetPaths {
        config,
        path: Vec::new(),
        found: Vec::new(),
    };
    module.visit(&mut targets);
    let lora =
        Lora::new(config.rank, config.alpha).set_param_group(ParamGroup::from_paths(targets.found));
    module.apply_lora(lora).map(&mut DrawA {
        rng,
        path: Vec::new(),
    })
}

impl CausalLm {
    /// The same model with LoRA adapters of `config` (`A` drawn from `rng`, `B` zero): only
    /// the adapters train. Computes what `self` computes until they are updated.
    pub fn with_lora(self, config: &LoraConfig, rng: &mut Rng) -> Self {
        adapt(self, config, rng)
    }
}

impl ValueModel {
    /// The same critic with LoRA adapters of `config` on its backbone; the backbone is frozen,
    /// the adapters and the value head (`score`) train.
    pub fn with_lora(self, config: &LoraConfig, rng: &mut Rng) -> Self {
        self.map_backbone(|backbone| adapt(backbone, config, rng))
    }
}

/// `module` with every adapter folded into its weight (`W + (α/r)·A·B`, computed once) and
/// removed; parameters without an adapter are shared, not copied. A module without adapters
/// is returned as it is.
pub fn merged<M: Module>(module: M) -> M {
    module.materialize()
}

/// Whether `path` names a parameter a LoRA run trains in the model of `role`: the adapter
/// factors, and for the critic its value head.
pub fn lora_trains(role: LoraRole, path: &str) -> bool {
    path.contains(ADAPTER)
        || match role {
            LoraRole::Policy => false,
            LoraRole::Critic => !path.starts_with("model."),
        }
}

/// The adapted model a parameter path belongs to (see [`lora_trains`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraRole {
    /// A [`CausalLm`].
    Policy,
    /// A [`ValueModel`].
    Critic,
}

/// Parameter counts of a module: `(all, adapter factors)`, elements.
pub fn adapter_counts<M: Module>(module: &M) -> (usize, usize) {
    struct Count {
        path: Vec<String>,
        all: usize,
        adapters: usize,
    }
    impl ModuleVisitor for Count {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let n = param.lazy_shape().num_elements();
            self.all += n;
            if self.path.join(".").contains(ADAPTER) {
                self.adapters += n;
            }
        }
    }
    let mut count = Count {
        path: Vec::new(),
        all: 0,
        adapters: 0,
    };
    module.visit(&mut count);
    (count.all, count.adapters)
}
