//! Softmax, log-softmax and SiLU written with primitive tensor ops.
//!
//! burn's fused activations may take a different path under autodiff than without it,
//! which changes the last bit of the result. Built from primitives, the inference passes
//! (no autodiff) and the training forward (autodiff) compute bit-identical values, so the
//! PPO ratio of the first minibatch is exactly 1.

use burn::tensor::Tensor;

/// `x − max − ln Σ exp(x − max)` along `dim`.
pub fn log_softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let shifted = x.clone() - x.max_dim(dim).detach();
    let log_sum = shifted.clone().exp().sum_dim(dim).log();
    shifted - log_sum
}

/// `exp(x − max) / Σ exp(x − max)` along `dim`.
pub fn softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let e = (x.clone() - x.max_dim(dim).detach()).exp();
    e.clone() / e.sum_dim(dim)
}

/// `x · sigmoid(x)` = `x / (1 + exp(−x))`.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() / (x.neg().exp() + 1.0)
}
