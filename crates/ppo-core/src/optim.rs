//! AdamW with decoupled weight decay whose state is ours: first and second moments per
//! parameter, kept flat and keyed by the parameter's module path, so a checkpoint can write
//! them one tensor at a time and a restore can match them to any module of the same shape.
//!
//! The update is PyTorch's `torch.optim.AdamW` (no amsgrad), computed in the same order and
//! precision as burn's `AdamW`:
//!
//! ```text
//! m ← β₁·m + (1−β₁)·g            v ← β₂·v + (1−β₂)·g²          (m = (1−β₁)·g, v = (1−β₂)·g² at t = 1)
//! δ ← (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)
//! θ ← θ·(1 − lr·λ) − lr·δ
//! ```

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::{CoreError, OptimizerConfig};

/// Suffix of a first-moment tensor in [`AdamW::named_tensors`].
pub const EXP_AVG: &str = "exp_avg";
/// Suffix of a second-moment tensor in [`AdamW::named_tensors`].
pub const EXP_AVG_SQ: &str = "exp_avg_sq";

/// An optimiser state as named flat tensors and step counts ([`AdamW::named_tensors`]).
pub type OptimizerTensors = (Vec<(String, Tensor<1>)>, BTreeMap<String, u64>);

/// The optimiser state of one parameter.
#[derive(Clone, Debug)]
pub struct ParamMoments {
    /// Steps taken with this parameter (t in the bias corrections).
    pub step: u64,
    /// First moment, flattened.
    pub exp_avg: Tensor<1>,
    /// Second moment, flattened.
    pub exp_avg_sq: Tensor<1>,
}

/// AdamW over every float parameter of a module.
#[derive(Clone, Debug)]
pub struct AdamW {
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    /// Moments by parameter id, with the parameter's dotted module path.
    states: HashMap<ParamId, (String, ParamMoments)>,
}

impl AdamW {
    /// An optimiser with no state yet (moments start at the first step).
    pub fn new(config: &OptimizerConfig) -> Self {
        Self {
            beta1: config.beta1 as f32,
            beta2: config.beta2 as f32,
            eps: config.eps as f32,
            weight_decay: config.weight_decay as f32,
            states: HashMap::new(),
        }
    }

    /// Applies one update with learning rate `lr` to every parameter of `module` that has a
    /// gradient in `grads` (consumed).
    pub fn step<M: Module>(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        module.map(&mut StepMapper {
            optim: self,
            grads: &mut grads,
            lr,
            path: Vec::new(),
        })
    }

    /// Number of parameters with a state.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no step has been taken.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The state of the parameter at `path`, if it has one.
    pub fn moments(&self, path: &str) -> Option<&ParamMoments> {
        self.states
            .values()
            .find(|(p, _)| p == path)
            .map(|(_, m)| m)
    }

    /// The state as named flat tensors (`{path}.exp_avg`, `{path}.exp_avg_sq`) and step
    /// counts (`{path}`), sorted by path. The tensors are handles, not copies.
    pub fn named_tensors(&self) -> OptimizerTensors {
        let mut entries: Vec<&(String, ParamMoments)> = self.states.values().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tensors = Vec::with_capacity(2 * entries.len());
        let mut steps = BTreeMap::new();
        for (path, m) in entries {
            tensors.push((format!("{path}.{EXP_AVG}"), m.exp_avg.clone()));
            tensors.push((format!("{path}.{EXP_AVG_SQ}"), m.exp_avg_sq.clone()));
            steps.insert(path.clone(), m.step);
        }
        (tensors, steps)
    }

    /// The optimiser of `config` with the state [`named_tensors`](Self::named_tensors) gave,
    /// matched to `module`'s parameters by path. Every entry must name a float parameter of
    /// `module` with as many elements; `what` names the model in errors.
    pub fn from_named_tensors<M: Module>(
        config: &OptimizerConfig,
        module: &M,
        (tensors, steps): OptimizerTensors,
        what: &'static str,
    ) -> Result<Self, CoreError> {
        let bad = |message: String| CoreError::OptimizerState {
            action: "restore",
            model: what,
            message,
        };
        let mut params = ParamPaths::default();
        module.visit(&mut params);
        let mut halves: BTreeMap<String, (Option<Tensor<1>>, Option<Tensor<1>>)> = BTreeMap::new();
        for (name, tensor) in tensors {
            let (path, half) = if let Some(p) = name.strip_suffix(&format!(".{EXP_AVG_SQ}")) {
                (p, 1)
            } else if let Some(p) = name.strip_suffix(&format!(".{EXP_AVG}")) {
                (p, 0)
            } else {
                return Err(bad(format!("unexpected tensor `{name}`")));
            };
            let Some((_, numel)) = params.by_path.get(path) else {
                return Err(bad(format!("`{name}` names no parameter of the model")));
            };
            let [len] = tensor.dims();
            if len != *numel {
                return Err(bad(format!(
                    "`{name}` has {len} elements, the parameter has {numel}"
                )));
            }
            let slot = halves.entry(path.to_owned()).or_default();
            if half == 0 {
                slot.0 = Some(tensor.inner());
            } else {
                slot.1 = Some(tensor.inner());
            }
        }
        if let Some(path) = steps.keys().find(|p| !halves.contains_key(*p)) {
            return Err(bad(format!("step count for `{path}` without moments")));
        }
        let mut optim = Self::new(config);
        for (path, pair) in halves {
            let (Some(exp_avg), Some(exp_avg_sq)) = pair else {
                return Err(bad(format!("`{path}` lacks one of its two moments")));
            };
            let Some(&step) = steps.get(&path) else {
                return Err(bad(format!("`{path}` has no step count")));
            };
            let (id, _) = params.by_path[&path];
            let moments = ParamMoments {
                step,
                exp_avg,
                exp_avg_sq,
            };
            optim.states.insert(id, (path, moments));
        }
        Ok(optim)
    }

    /// New moments and the raw update δ (before the learning rate), as burn's
    /// `AdaptiveMomentumW` computes them.
    fn moments_update(
        &self,
        grad: Tensor<1>,
        state: Option<ParamMoments>,
    ) -> (Tensor<1>, ParamMoments) {
        let (f1, f2) = (1.0 - self.beta1, 1.0 - self.beta2);
        let state = match state {
            Some(mut s) => {
                s.exp_avg = s
                    .exp_avg
                    .mul_scalar(self.beta1)
                    .add(grad.clone().mul_scalar(f1));
                s.exp_avg_sq = s
                    .exp_avg_sq
                    .mul_scalar(self.beta2)
                    .add(grad.square().mul_scalar(f2));
                s.step += 1;
                s
            }
            None => ParamMoments {
                step: 1,
                exp_avg: grad.clone().mul_scalar(f1),
                exp_avg_sq: grad.square().mul_scalar(f2),
            },
        };
        let t = i32::try_from(state.step).unwrap_or(i32::MAX);
        let m_hat = state.exp_avg.clone().div_scalar(1f32 - self.beta1.powi(t));
        let v_hat = state
            .exp_avg_sq
            .clone()
            .div_scalar(1f32 - self.beta2.powi(t));
        let delta = m_hat.div(v_hat.sqrt().add_scalar(self.eps));
        (delta, state)
    }
}

/// Dotted path → (id, element count) of every float parameter.
#[derive(Default)]
struct ParamPaths {
    path: Vec<String>,
    by_path: HashMap<String, (ParamId, usize)>,
}

impl ModuleVisitor for ParamPaths {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let numel = param.lazy_shape().num_elements();
        self.by_path.insert(self.path.join("."), (param.id, numel));
    }
}

struct StepMapper<'a> {
    optim: &'a mut AdamW,
    grads: &'a mut GradientsParams,
    lr: f64,
    path: Vec<String>,
}

impl ModuleMapper for StepMapper<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let autodiff = tensor.is_autodiff();
        let require_grad = tensor.is_require_grad();
        let checkpointing = tensor.gradient_checkpointing_strategy();
        let value = tensor.inner();
        let dims = value.dims();
        let numel = dims.iter().product::<usize>();
        // The path is known from the first step on; only a new state needs it spelled out.
        let (path, previous) = match self.optim.states.remove(&id) {
            Some((path, moments)) => (path, Some(moments)),
            None => (self.path.join("."), None),
        };
        let (delta, moments) = self
            .optim
            .moments_update(grad.inner().reshape([numel]), previous);
        let decay_rate = self.lr * f64::from(self.optim.weight_decay);
        let flat = value.reshape([numel]);
        let decayed = if decay_rate == 0.0 {
            flat
        } else {
            flat.mul_scalar(1.0 - decay_rate)
        };
        let updated: Tensor<D> = (decayed - delta.mul_scalar(self.lr)).reshape(dims);
        let mut updated = if autodiff {
            Tensor::from_inner(updated)
        } else {
            updated
        };
        if let Some(strategy) = checkpointing {
            updated = updated.with_gradient_checkpointing_strategy(strategy);
        }
        if require_grad {
            updated = updated.require_grad();
        }
        self.optim.states.insert(id, (path, moments));
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::{AdamWConfig, ModuleOptimizer};
    use burn::tensor::{Device, TensorData};

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<1>>,
        b: Param<Tensor<2>>,
    }

    fn two(device: &Device) -> Two {
        Two {
            a: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![0.5f32, -1.0, 2.0], [3]),
                device,
            )),
            b: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![1.0f32, -0.25, 0.75, 3.0], [2, 2]),
                device,
            )),
        }
    }

    fn grads(m: &Two, k: f32) -> GradientsParams {
        let loss = (m.a.val() * k).powf_scalar(2.0).sum()
            + (m.b.val().exp() * m.b.val()).sum().mul_scalar(k);
        GradientsParams::from_grads(loss.backward(), m)
    }

    fn values(m: &Two) -> Vec<f32> {
        let mut v = m.a.val().into_data().try_to_vec::<f32>().unwrap();
        v.extend(m.b.val().into_data().try_to_vec::<f32>().unwrap());
        v
    }

    const CONFIG: OptimizerConfig = OptimizerConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    };

    #[test]
    fn one_step_matches_the_formula_by_hand() {
        let device = Device::flex().autodiff();
        let m = Two {
            a: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![2.0f32], [1]),
                &device,
            )),
            b: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![0.0f32], [1, 1]),
                &device,
            )),
        };
        // d/da (3a)² = 18a = 36 at a = 2; b gets no gradient from this loss.
        let loss = (m.a.val() * 3.0).powf_scalar(2.0).sum();
        let g = GradientsParams::from_grads(loss.backward(), &m);
        let mut opt = AdamW::new(&CONFIG);
        let m = opt.step(0.01, m, g);
        // t = 1: m̂ = g, v̂ = g², δ = g/(|g| + ε) ≈ 1; θ = 2·(1 − 0.01·0.1) − 0.01·δ.
        let expected = 2.0 * (1.0 - 0.001) - 0.01 * (36.0 / (36.0 + 1e-8));
        let got = values(&m);
        assert!((f64::from(got[0]) - expected).abs() < 1e-6, "{got:?}");
        assert_eq!(got[1], 0.0, "no gradient, no update (not even decay)");
        assert_eq!(opt.len(), 1);
        assert_eq!(opt.moments("a").unwrap().step, 1);
    }

    #[test]
    fn equals_burns_adamw_bit_for_bit_over_steps() {
        let device = Device::flex().autodiff();
        let mut ours = AdamW::new(&CONFIG);
        let mut burns: ModuleOptimizer = AdamWConfig::new()
            .with_beta_1(CONFIG.beta1 as f32)
            .with_beta_2(CONFIG.beta2 as f32)
            .with_epsilon(CONFIG.eps as f32)
            .with_weight_decay(CONFIG.weight_decay as f32)
            .init();
        let (mut x, mut y) = (two(&device), two(&device));
        for (step, k) in [1.0f32, -0.5, 2.0, 0.25].into_iter().enumerate() {
            let lr = 0.01 / (step + 1) as f64;
            let gx = grads(&x, k);
            let gy = grads(&y, k);
            x = ours.step(lr, x, gx);
            y = burns.step(lr, y, gy);
            assert_eq!(values(&x), values(&y), "step {step}");
        }
        assert!(x.a.val().is_require_grad());
    }

    #[test]
    fn named_tensors_round_trip_and_mismatches_are_named() {
        let device = Device::flex().autodiff();
        let mut opt = AdamW::new(&CONFIG);
        let mut x = two(&device);
        for k in [1.0, 2.0] {
            let g = grads(&x, k);
            x = opt.step(0.01, x, g);
        }
        let (tensors, steps) = opt.named_tensors();
        let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["a.exp_avg", "a.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq"]
        );
        assert_eq!(steps.values().copied().collect::<Vec<_>>(), [2, 2]);

        // A module with the same values but other parameter ids continues identically.
        let v = values(&x);
        let mut y = Two {
            a: Param::from_tensor(Tensor::from_data(
                TensorData::new(v[..3].to_vec(), [3]),
                &device,
            )),
            b: Param::from_tensor(Tensor::from_data(
                TensorData::new(v[3..].to_vec(), [2, 2]),
                &device,
            )),
        };
        assert_ne!(y.a.id, x.a.id);
        let mut restored =
            AdamW::from_named_tensors(&CONFIG, &y, (tensors.clone(), steps.clone()), "policy")
                .unwrap();
        let g = grads(&x, 0.5);
        let x = opt.step(0.01, x, g);
        let g = grads(&y, 0.5);
        y = restored.step(0.01, y, g);
        assert_eq!(values(&x), values(&y));

        let mut wrong = tensors.clone();
        wrong[0].0 = "c.exp_avg".into();
        let err =
            AdamW::from_named_tensors(&CONFIG, &two(&device), (wrong, steps.clone()), "policy")
                .unwrap_err()
                .to_string();
        assert!(err.contains("c.exp_avg") && err.contains("policy"), "{err}");
        let mut short = tensors;
        short[2].1 = Tensor::zeros([3], &device);
        let err = AdamW::from_named_tensors(&CONFIG, &two(&device), (short, steps), "critic")
            .unwrap_err()
            .to_string();
        assert!(err.contains("b.exp_avg") && err.contains("4"), "{err}");
    }
}
