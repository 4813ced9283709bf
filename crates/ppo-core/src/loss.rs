//! The PPO loss terms as differentiable per-token tensors `[rows, R]`, masked to 0 on padding.
//!
//! Callers sum each term over the valid tokens and divide by the token count of the whole
//! minibatch, so micro-batches add up to the minibatch mean.

use burn::tensor::Tensor;

/// The clipped surrogate of a micro-batch, per token `[rows, R]`, with what is reported about
/// it: every statistic comes from these tensors, so the loss and its metrics cannot disagree.
pub struct PolicyTerms {
    /// max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)), 0 on padding. The only differentiable term.
    pub loss: Tensor<2>,
    /// logπ − logπ_old.
    pub log_ratio: Tensor<2>,
    /// ρ = exp(logπ − logπ_old).
    pub ratio: Tensor<2>,
    /// 1 where the clipped term was the larger one (it set the loss), else 0.
    pub clipped: Tensor<2>,
}

/// Clipped surrogate: max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)) with ρ = exp(logπ − logπ_old).
pub fn policy_loss(
    logprobs: Tensor<2>,
    old_logprobs: Tensor<2>,
    advantages: Tensor<2>,
    mask: Tensor<2>,
    clip_range: f64,
) -> PolicyTerms {
    let log_ratio = logprobs - old_logprobs;
    let ratio = log_ratio.clone().exp();
    let unclipped = advantages.clone().neg() * ratio.clone();
    let clipped = advantages.neg() * ratio.clone().clamp(1.0 - clip_range, 1.0 + clip_range);
    let clip_won = clipped
        .clone()
        .detach()
        .greater(unclipped.clone().detach())
        .float();
    PolicyTerms {
        loss: unclipped.max_pair(clipped) * mask,
        log_ratio: log_ratio.detach(),
        ratio: ratio.detach(),
        clipped: clip_won,
    }
}

/// The clipped value loss of a micro-batch, per token `[rows, R]`.
pub struct ValueTerms {
    /// ½·max((V − R)², (V_old + clip(V − V_old, −ε_v, ε_v) − R)²), 0 on padding.
    pub loss: Tensor<2>,
    /// 1 where the clipped term was the larger one, else 0.
    pub clipped: Tensor<2>,
}

/// Clipped value loss: ½·max((V − R)², (V_old + clip(V − V_old, −ε_v, ε_v) − R)²).
pub fn value_loss(
    values: Tensor<2>,
    old_values: Tensor<2>,
    returns: Tensor<2>,
    mask: Tensor<2>,
    clip_range_value: f64,
) -> ValueTerms {
    let clipped = old_values.clone()
        + (values.clone() - old_values).clamp(-clip_range_value, clip_range_value);
    let unclipped_err = values - returns.clone();
    let clipped_err = clipped - returns;
    let a = unclipped_err.clone() * unclipped_err;
    let b = clipped_err.clone() * clipped_err;
    let clip_won = b.clone().detach().greater(a.clone().detach()).float();
    ValueTerms {
        loss: a.max_pair(b) * mask * 0.5,
        clipped: clip_won,
    }
}

/// Statistics of the PPO terms over the valid tokens of one or more micro-batches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TokenStats {
    /// Valid tokens seen.
    pub tokens: f64,
    /// Σ policy-loss per token.
    pub policy_loss: f64,
    /// Σ value-loss per token.
    pub value_loss: f64,
    /// Σ entropy.
    pub entropy: f64,
    /// Tokens where the clipped policy term was the larger one.
    pub clipped: f64,
    /// Tokens where the clipped value term was the larger one.
    pub value_clipped: f64,
    /// Σ ½(logπ − logπ_old)².
    pub approx_kl: f64,
    /// Σ ratio.
    pub ratio: f64,
    /// Smallest ratio seen.
    pub ratio_min: f64,
    /// Largest ratio seen.
    pub ratio_max: f64,
}

impl TokenStats {
    /// No token seen yet (the neutral element of [`merge`](Self::merge)).
    pub fn empty() -> Self {
        Self {
            ratio_min: f64::INFINITY,
            ratio_max: f64::NEG_INFINITY,
            ..Self::default()
        }
    }

    /// Stats of one micro-batch from the tensors its loss was built of, masked by `mask`
    /// (`[rows, R]`, 1 on valid tokens): the sums are taken on the device and read back
    /// together, ten numbers.
    pub fn measure(
        policy: &PolicyTerms,
        value: &ValueTerms,
        entropy: Tensor<2>,
        mask: Tensor<2>,
    ) -> Self {
        let padding = mask.clone().equal_elem(0.0);
        let masked_sum = |t: Tensor<2>| (t * mask.clone()).sum();
        let log_ratio = policy.log_ratio.clone();
        let sums = Tensor::cat(
            vec![
                mask.clone().sum(),
                policy.loss.clone().detach().sum(),
                value.loss.clone().detach().sum(),
                masked_sum(entropy.detach()),
                masked_sum(policy.clipped.clone()),
                masked_sum(value.clipped.clone()),
                masked_sum(log_ratio.clone() * log_ratio * 0.5),
                masked_sum(policy.ratio.clone()),
                policy
                    .ratio
                    .clone()
                    .mask_fill(padding.clone(), f64::INFINITY)
                    .min(),
                policy
                    .ratio
                    .clone()
                    .mask_fill(padding, f64::NEG_INFINITY)
                    .max(),
            ],
            0,
        );
        let v: Vec<f64> = ppo_models::to_f32_vec(sums)
            .into_iter()
            .map(f64::from)
            .collect();
        Self {
            tokens: v[0],
            policy_loss: v[1],
            value_loss: v[2],
            entropy: v[3],
            clipped: v[4],
            value_clipped: v[5],
            approx_kl: v[6],
            ratio: v[7],
            ratio_min: v[8],
            ratio_max: v[9],
        }
    }

    /// Adds another micro-batch's stats.
    pub fn merge(&mut self, other: &TokenStats) {
        self.tokens += other.tokens;
        self.policy_loss += other.policy_loss;
        self.value_loss += other.value_loss;
        self.entropy += other.entropy;
        self.clipped += other.clipped;
        self.value_clipped += other.value_clipped;
        self.approx_kl += other.approx_kl;
        self.ratio += other.ratio;
        self.ratio_min = self.ratio_min.min(other.ratio_min);
        self.ratio_max = self.ratio_max.max(other.ratio_max);
    }

    /// Σ / tokens, NaN when no token was seen.
    pub fn mean(&self, sum: f64) -> f64 {
        if self.tokens > 0.0 {
            sum / self.tokens
        } else {
            f64::NAN
        }
    }
}

/// Bound of k3's log-ratio (±) in the loss, as verl's `low_var_kl` clamps it.
pub const K3_LOG_RATIO_CLAMP: f64 = 20.0;
/// Upper bound of a per-token k3 in the loss (verl's `low_var_kl` bound).
pub const K3_CLAMP: f64 = 10.0;

/// Differentiable per-token KL estimate from log-probs `[rows, R]` (for KL in the loss), zero
/// where `mask` `[rows, R]` is 0. Padding is masked *before* any arithmetic (its log-probs may
/// be anything, even infinite), and k3 clamps its log-ratio to ±20 and its value to ≤ 10, as
/// verl does, so one extreme token cannot make the loss infinite or NaN.
pub fn kl_penalty(
    logprobs: Tensor<2>,
    ref_logprobs: Tensor<2>,
    mask: Tensor<2>,
    estimator: crate::KlEstimator,
) -> Tensor<2> {
    let padding = mask.equal_elem(0.0);
    let d = (logprobs - ref_logprobs).mask_fill(padding, 0.0);
    match estimator {
        crate::KlEstimator::K1 => d,
        crate::KlEstimator::K2 => d.clone() * d * 0.5,
        crate::KlEstimator::K3 => {
            let d = d.clamp(-K3_LOG_RATIO_CLAMP, K3_LOG_RATIO_CLAMP);
            (d.clone().neg().exp() - 1.0 + d).clamp_max(K3_CLAMP)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t(values: &[f32]) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [1, values.len()]),
            &Device::flex(),
        )
    }

    fn v(x: Tensor<2>) -> Vec<f32> {
        ppo_models::to_f32_vec(x)
    }

    #[test]
    fn kl_penalty_masks_padding_before_the_exponential_and_clamps_k3() {
        use crate::KlEstimator;
        // token 0: d = 0.5; token 1: padding with infinite log-probs; token 2: d = −30.
        let logp = t(&[-1.0, f32::NEG_INFINITY, -40.0]);
        let ref_lp = t(&[-1.5, f32::NEG_INFINITY, -10.0]);
        let mask = t(&[1.0, 0.0, 1.0]);
        let k1 = v(kl_penalty(
            logp.clone(),
            ref_lp.clone(),
            mask.clone(),
            KlEstimator::K1,
        ));
        assert_eq!(k1, [0.5, 0.0, -30.0]);
        let k3 = v(kl_penalty(logp, ref_lp, mask, KlEstimator::K3));
        assert!(
            (k3[0] - ((-0.5f32).exp() - 1.0 + 0.5)).abs() < 1e-6,
            "{k3:?}"
        );
        assert_eq!(k3[1], 0.0);
        // e^20 − 1 − 20 is far above the bound.
        assert_eq!(k3[2], 10.0);
        assert!(k3.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn policy_loss_hand_computed() {
        // ratios e^0.1 = 1.10517 (clip at 1.05), e^-0.1 = 0.904837, 1, padding.
        let logp = t(&[0.1, -0.1, 0.0, 5.0]);
        let old = t(&[0.0, 0.0, 0.0, 0.0]);
        let adv = t(&[2.0, 2.0, -1.0, 3.0]);
        let mask = t(&[1.0, 1.0, 1.0, 0.0]);
        let terms = policy_loss(logp, old, adv, mask.clone(), 0.05);
        let l = v(terms.loss.clone());
        // token 0: max(−2·1.10517, −2·1.05) = −2.1 (clipped term)
        // token 1: max(−2·0.904837, −2·0.95) = −1.809675 (unclipped)
        // token 2: max(1, 1) = 1
        let expected = [-2.1, -1.809_675, 1.0, 0.0];
        for (a, b) in l.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{l:?}");
        }
        let value = value_loss(t(&[0.0; 4]), t(&[0.0; 4]), t(&[0.0; 4]), mask.clone(), 0.2);
        let s = TokenStats::measure(&terms, &value, t(&[1.0; 4]), mask);
        assert_eq!(s.tokens, 3.0);
        assert_eq!(s.clipped, 1.0);
        assert_eq!(s.entropy, 3.0);
        assert!((s.policy_loss - (-2.1 - 1.809_675 + 1.0)).abs() < 1e-5);
        assert!((s.approx_kl - 0.01).abs() < 1e-7);
        assert!((s.ratio - (0.1f64.exp() + (-0.1f64).exp() + 1.0)).abs() < 1e-5);
        // the padding token's ratio e^5 is not seen
        assert!((s.ratio_max - 0.1f64.exp()).abs() < 1e-6);
        assert!((s.ratio_min - (-0.1f64).exp()).abs() < 1e-6);
        let mut merged = TokenStats::empty();
        merged.merge(&s);
        merged.merge(&s);
        assert_eq!((merged.tokens, merged.ratio_max), (6.0, s.ratio_max));
    }

    #[test]
    fn value_loss_hand_computed() {
        // V = 1.5, V_old = 1.0, R = 2.0, ε = 0.2: clipped V = 1.2;
        // ½·max(0.25, 0.64) = 0.32 (clipped term wins)
        // V = 0.5, V_old = 1.0, R = 0.0, ε = 0.2: clipped V = 0.8; ½·max(0.25, 0.64) = 0.32
        // V = 1.1, V_old = 1.0, R = 3.0: clip inactive; ½·3.61 = 1.805
        let mask = t(&[1.0, 1.0, 1.0]);
        let value = value_loss(
            t(&[1.5, 0.5, 1.1]),
            t(&[1.0, 1.0, 1.0]),
            t(&[2.0, 0.0, 3.0]),
            mask.clone(),
            0.2,
        );
        let l = v(value.loss.clone());
        for (a, b) in l.iter().zip([0.32, 0.32, 1.805]) {
            assert!((a - b).abs() < 1e-5, "{l:?}");
        }
        let zeros = || t(&[0.0; 3]);
        let policy = policy_loss(zeros(), zeros(), zeros(), mask.clone(), 0.2);
        let s = TokenStats::measure(&policy, &value, zeros(), mask);
        assert_eq!(s.value_clipped, 2.0);
        assert_eq!(s.clipped, 0.0);
        assert!((s.value_loss - 2.445).abs() < 1e-5);
    }
}
