//! Global-norm gradient clipping over all of a module's gradients, as PyTorch's
//! `clip_grad_norm_` does (burn's built-in clipping works per tensor).

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: f64,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let sq: f32 = (grad.clone() * grad).sum().into_scalar();
            self.total += f64::from(sq);
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
    ids: Vec<ParamId>,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.ids.contains(&param.id) {
            return; // a parameter shared by two paths of the module is scaled once
        }
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad * self.factor);
            self.ids.push(param.id);
        }
    }
}

/// L2 norm of all gradients of `module` taken together.
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut visitor = SquaredNorm { grads, total: 0.0 };
    module.visit(&mut visitor);
    visitor.total.sqrt()
}

/// Scales all gradients by `max_norm / norm` when the global norm exceeds `max_norm`
/// (with PyTorch's 1e-6 guard). Returns the norm before clipping.
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = global_grad_norm(module, grads);
    let factor = max_norm / (norm + 1e-6);
    if norm.is_finite() && factor < 1.0 {
        module.visit(&mut Scale {
            grads,
            factor,
            ids: Vec::new(),
        });
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<1>>,
        b: Param<Tensor<2>>,
    }

    #[test]
    fn clips_to_the_global_norm_hand_computed() {
        let device = Device::flex().autodiff();
        let m = Two {
            a: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![1.0f32, 2.0], [2]),
                &device,
            )),
            b: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![1.0f32, 1.0], [1, 2]),
                &device,
            )),
        };
        // loss = 3·Σa + 4·Σb → grads a = [3, 3], b = [[4, 4]]; global norm = √(9+9+16+16) = √50
        let loss = m.a.val().sum() * 3.0 + m.b.val().sum() * 4.0;
        let mut grads = GradientsParams::from_grads(loss.backward(), &m);
        let norm = clip_grad_norm(&m, &mut grads, 1.0);
        assert!((norm - 50f64.sqrt()).abs() < 1e-5);
        let after = global_grad_norm(&m, &grads);
        assert!((after - 1.0).abs() < 1e-5, "{after}");
        // direction kept: a/b ratio stays 3/4
        let a: Vec<f32> = ppo_models::to_f32_vec(grads.get::<1>(m.a.id).unwrap());
        let b: Vec<f32> = ppo_models::to_f32_vec(grads.get::<2>(m.b.id).unwrap());
        assert!((a[0] / b[0] - 0.75).abs() < 1e-6);
        // below the threshold nothing changes
        let before = global_grad_norm(&m, &grads);
        clip_grad_norm(&m, &mut grads, 10.0);
        assert!((global_grad_norm(&m, &grads) - before).abs() < 1e-9);
    }
}
