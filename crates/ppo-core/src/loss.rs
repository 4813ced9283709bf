//! The PPO loss terms as differentiable per-token tensors `[rows, R]`, masked to 0 on padding.
//!
//! Callers sum each term over the valid tokens and divide by the token count of the whole
//! minibatch, so micro-batches add up to the minibatch mean.

use burn::tensor::Tensor;

/// The clipped surrogate of a micro-batch, per token `[rows, R]`, with what is reported about
/// it: every statistic comes from these tensors, so the loss and its metrics cannot disagree.
pub struct PolicyTerms {
    /// The clipped surrogate (see [`policy_loss`]), 0 on padding. The only differentiable term.
    pub loss: Tensor<2>,
    /// logπ − logπ_old (clamped).
    pub log_ratio: Tensor<2>,
    /// ρ = exp(logπ − logπ_old).
    pub ratio: Tensor<2>,
    /// 1 where the clipped term was the larger one (it set the loss), else 0.
    pub clipped: Tensor<2>,
    /// 1 where the dual clip bounded the loss (negative advantage, −A·c below), else 0.
    pub dual_clipped: Tensor<2>,
}

/// The policy clip: ε below and above 1 (DAPO's clip-higher when they differ), the optional
/// dual clip c, and the clamp of the log-ratio before the exponential.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolicyClip {
    /// ρ is clipped below at 1 − `low`.
    pub low: f64,
    /// ρ is clipped above at 1 + `high`.
    pub high: f64,
    /// c > 1: for A < 0 the loss is at most −A·c (dual-clip PPO).
    pub dual: Option<f64>,
    /// logπ − logπ_old is clamped to ±this before exp.
    pub log_ratio_clamp: f64,
}

impl PolicyClip {
    /// clip(ρ, 1 − ε, 1 + ε), no dual clip, log-ratio clamped to ±20 (verl's bound).
    pub fn symmetric(epsilon: f64) -> Self {
        Self {
            low: epsilon,
            high: epsilon,
            dual: None,
            log_ratio_clamp: 20.0,
        }
    }
}

/// Clipped surrogate max(−A·ρ, −A·clip(ρ, 1−ε_low, 1+ε_high)) with
/// ρ = exp(clamp(logπ − logπ_old, ±log_ratio_clamp)); with a dual clip c, tokens with A < 0
/// take min(that, −A·c).
pub fn policy_loss(
    logprobs: Tensor<2>,
    old_logprobs: Tensor<2>,
    advantages: Tensor<2>,
    mask: Tensor<2>,
    clip: &PolicyClip,
) -> PolicyTerms {
    let bound = clip.log_ratio_clamp;
    let log_ratio = (logprobs - old_logprobs).clamp(-bound, bound);
    let ratio = log_ratio.clone().exp();
    let unclipped = advantages.clone().neg() * ratio.clone();
    let clipped = advantages.clone().neg() * ratio.clone().clamp(1.0 - clip.low, 1.0 + clip.high);
    let clip_won = clipped
        .clone()
        .detach()
        .greater(unclipped.clone().detach())
        .float();
    let mut loss = unclipped.max_pair(clipped);
    let mut dual_clipped = clip_won.zeros_like();
    if let Some(c) = clip.dual {
        let bounded = advantages.clone().neg() * c;
        let negative = advantages.lower_elem(0.0);
        let dual_won = loss
            .clone()
            .detach()
            .greater(bounded.clone())
            .bool_and(negative.clone());
        dual_clipped = dual_won.clone().float();
        loss = loss.mask_where(dual_won, bounded);
    }
    PolicyTerms {
        loss: loss * mask,
        log_ratio: log_ratio.detach(),
        ratio: ratio.detach(),
        clipped: clip_won,
        dual_clipped,
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
    /// Tokens whose loss the dual clip bounded.
    pub dual_clipped: f64,
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
    /// together, eleven numbers. Without a critic the value terms are 0.
    pub fn measure(
        policy: &PolicyTerms,
        value: Option<&ValueTerms>,
        entropy: Tensor<2>,
        mask: Tensor<2>,
    ) -> Self {
        let padding = mask.clone().equal_elem(0.0);
        let masked_sum = |t: Tensor<2>| (t * mask.clone()).sum();
        // The value terms live on the critic's device, which may not be the policy's: their
        // sums are taken there and the two numbers brought over.
        let device = mask.device();
        let value_sums = value.map(|v| {
            let mask = mask.clone().to_device(&v.loss.device());
            (
                v.loss.clone().detach().sum().to_device(&device),
                (v.clipped.clone() * mask).sum().to_device(&device),
            )
        });
        let log_ratio = policy.log_ratio.clone();
        let sums = Tensor::cat(
            vec![
                mask.clone().sum(),
                policy.loss.clone().detach().sum(),
                value_sums
                    .as_ref()
                    .map_or_else(|| mask.clone().sum().zeros_like(), |(loss, _)| loss.clone()),
                masked_sum(entropy.detach()),
                masked_sum(policy.clipped.clone()),
                value_sums.map_or_else(|| mask.clone().sum().zeros_like(), |(_, clipped)| clipped),
                masked_sum(policy.dual_clipped.clone()),
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
            dual_clipped: v[6],
            approx_kl: v[7],
            ratio: v[8],
            ratio_min: v[9],
            ratio_max: v[10],
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
        self.dual_clipped += other.dual_clipped;
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
        let terms = policy_loss(logp, old, adv, mask.clone(), &PolicyClip::symmetric(0.05));
        let l = v(terms.loss.clone());
        // token 0: max(−2·1.10517, −2·1.05) = −2.1 (clipped term)
        // token 1: max(−2·0.904837, −2·0.95) = −1.809675 (unclipped)
        // token 2: max(1, 1) = 1
        let expected = [-2.1, -1.809_675, 1.0, 0.0];
        for (a, b) in l.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{l:?}");
        }
        let value = value_loss(t(&[0.0; 4]), t(&[0.0; 4]), t(&[0.0; 4]), mask.clone(), 0.2);
        let s = TokenStats::measure(&terms, Some(&value), t(&[1.0; 4]), mask);
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
        let policy = policy_loss(
            zeros(),
            zeros(),
            zeros(),
            mask.clone(),
            &PolicyClip::symmetric(0.2),
        );
        let s = TokenStats::measure(&policy, Some(&value), zeros(), mask);
        assert_eq!(s.value_clipped, 2.0);
        assert_eq!(s.clipped, 0.0);
        assert!((s.value_loss - 2.445).abs() < 1e-5);
    }

    #[test]
    fn clip_higher_hand_computed() {
        // ε_low 0.1, ε_high 0.3; ratios e^0.2 = 1.2214 (inside [0.9, 1.3]) and e^0.4 = 1.4918
        // (clipped at 1.3) with A = 1; e^−0.2 = 0.8187 with A = −1 (clipped at 0.9).
        let clip = PolicyClip {
            low: 0.1,
            high: 0.3,
            dual: None,
            log_ratio_clamp: 20.0,
        };
        let terms = policy_loss(
            t(&[0.2, 0.4, -0.2]),
            t(&[0.0; 3]),
            t(&[1.0, 1.0, -1.0]),
            t(&[1.0; 3]),
            &clip,
        );
        let l = v(terms.loss);
        let expected = [-(0.2f32.exp()), -1.3, 0.9];
        for (a, b) in l.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{l:?}");
        }
        assert_eq!(v(terms.clipped), [0.0, 1.0, 1.0]);
    }

    #[test]
    fn dual_clip_bounds_negative_advantages_only() {
        // ρ = e^2 = 7.389 with A = −1: clipped loss max(7.389, 1.2) = 7.389; dual c = 3 → 3.
        // ρ = e^2 with A = +1: max(−7.389, −1.2) = −1.2, untouched by the dual clip.
        // ρ = e^0.1 with A = −1: 1.105 < 3, untouched.
        let clip = PolicyClip {
            dual: Some(3.0),
            ..PolicyClip::symmetric(0.2)
        };
        let terms = policy_loss(
            t(&[2.0, 2.0, 0.1]),
            t(&[0.0; 3]),
            t(&[-1.0, 1.0, -1.0]),
            t(&[1.0; 3]),
            &clip,
        );
        let l = v(terms.loss);
        let expected = [3.0, -1.2, 0.1f32.exp()];
        for (a, b) in l.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{l:?}");
        }
        assert_eq!(v(terms.dual_clipped), [1.0, 0.0, 0.0]);
    }

    #[test]
    fn log_ratio_is_clamped_before_the_exponential() {
        let clip = PolicyClip {
            log_ratio_clamp: 1.0,
            ..PolicyClip::symmetric(0.2)
        };
        let terms = policy_loss(t(&[50.0]), t(&[0.0]), t(&[0.0]), t(&[1.0]), &clip);
        let ratio = v(terms.ratio)[0];
        assert!((ratio - 1f32.exp()).abs() < 1e-5, "{ratio}");
        assert!(v(terms.loss)[0].is_finite());
    }
}
