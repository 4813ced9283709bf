//! Advantage estimators beside GAE (the critic-free ones of GRPO, Dr. GRPO, RLOO and
//! REINFORCE++), how per-token losses are aggregated, and DAPO's length shaping.
//!
//! Rows of a rollout come in groups: `group_size` consecutive rows share a prompt. Outcome
//! estimators read one score per row: the sum of its per-token rewards (the shaped score at the
//! last token, less β·KL per token when the KL penalty is in the reward), as verl does.

use serde::{Deserialize, Serialize};

use crate::advantages::{masked_mean_var, whiten_with};

/// `advantage_estimator`: where the advantage of a token comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageEstimator {
    /// GAE(γ, λ) on the critic's values (PPO; the only estimator with a critic).
    #[default]
    Gae,
    /// (s − mean) / (std + ε) within the prompt's group, std unbiased (GRPO).
    Grpo,
    /// s − mean within the group, no std division (Dr. GRPO).
    DrGrpo,
    /// n/(n−1)·(s − mean): the leave-one-out baseline (RLOO).
    Rloo,
    /// Discounted returns of the per-token rewards, whitened over the batch (REINFORCE++).
    ReinforcePp,
    /// s − group mean, broadcast to the tokens and whitened over the batch (REINFORCE++ with
    /// baseline).
    ReinforcePpBaseline,
}

impl AdvantageEstimator {
    /// Whether the estimator learns a value function (only GAE does).
    pub fn needs_critic(self) -> bool {
        self == Self::Gae
    }

    /// Whether the estimator compares the samples of one prompt (needs `group_size` ≥ 2).
    pub fn needs_groups(self) -> bool {
        matches!(
            self,
            Self::Grpo | Self::DrGrpo | Self::Rloo | Self::ReinforcePpBaseline
        )
    }

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gae => "gae",
            Self::Grpo => "grpo",
            Self::DrGrpo => "dr_grpo",
            Self::Rloo => "rloo",
            Self::ReinforcePp => "reinforce_pp",
            Self::ReinforcePpBaseline => "reinforce_pp_baseline",
        }
    }
}

/// `loss_aggregation`: how per-token loss terms of a minibatch become one number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossAggregation {
    /// Σ over all tokens / number of tokens: every token weighs the same (PPO, DAPO).
    #[default]
    TokenMean,
    /// Mean over sequences of each sequence's token sum.
    SeqMeanTokenSum,
    /// Mean over sequences of each sequence's token mean (GRPO as published).
    SeqMeanTokenMean,
    /// Mean over sequences of each sequence's token sum / `max_new_tokens` (Dr. GRPO): no
    /// length bias, and a constant scale.
    SeqMeanTokenSumNorm,
}

/// ε of the GRPO standard deviation, as in verl.
pub const GRPO_EPS: f64 = 1e-6;

/// Mean and unbiased standard deviation of `values` (std 0 for fewer than two values).
fn mean_std_unbiased(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Per-row outcome advantages of the group estimators from per-row `scores`, groups being
/// `group_size` consecutive rows. A group of one keeps its score (mean taken as 0, std as 1),
/// and a group whose scores are all equal gets 0 — no NaN, as in verl.
///
/// For [`AdvantageEstimator::ReinforcePpBaseline`] this is the baseline-subtracted score
/// before the batch whitening. Panics for the estimators without groups.
pub fn group_advantages(
    estimator: AdvantageEstimator,
    scores: &[f64],
    group_size: usize,
) -> Vec<f64> {
    assert!(group_size >= 1 && scores.len().is_multiple_of(group_size));
    let mut out = Vec::with_capacity(scores.len());
    for group in scores.chunks(group_size) {
        let n = group.len();
        let (mean, std) = if n == 1 {
            (0.0, 1.0)
        } else {
            mean_std_unbiased(group)
        };
        for &s in group {
            out.push(match estimator {
                AdvantageEstimator::Grpo => (s - mean) / (std + GRPO_EPS),
                AdvantageEstimator::DrGrpo | AdvantageEstimator::ReinforcePpBaseline => s - mean,
                AdvantageEstimator::Rloo if n == 1 => s,
                AdvantageEstimator::Rloo => (s - mean) * n as f64 / (n as f64 - 1.0),
                other => panic!("{} is not a group estimator", other.name()),
            });
        }
    }
    out
}

/// Discounted returns G_t = r_t + γ·G_{t+1} of each row of `[rows, R]` per-token `rewards`,
/// 0 on padding (valid tokens form a prefix of each row).
pub fn discounted_returns(
    rewards: &[f32],
    mask: &[bool],
    response_len: usize,
    gamma: f64,
) -> Vec<f32> {
    let mut out = vec![0.0f32; rewards.len()];
    if response_len == 0 {
        return out;
    }
    for row in 0..rewards.len() / response_len {
        let mut running = 0.0f64;
        for t in (0..response_len).rev() {
            let i = row * response_len + t;
            if !mask[i] {
                running = 0.0;
                continue;
            }
            running = f64::from(rewards[i]) + gamma * running;
            out[i] = running as f32;
        }
    }
    out
}

/// Whitens the valid entries with the *unbiased* variance, (x − mean)/√(var + 1e-8), as
/// verl's `masked_whiten` does for REINFORCE++; invalid entries become 0. A single valid
/// entry becomes 0.
pub fn whiten_unbiased(values: &[f32], mask: &[bool]) -> Vec<f32> {
    let (mean, var) = masked_mean_var(values, mask);
    let n = mask.iter().filter(|&&m| m).count() as f64;
    let unbiased = if n >= 2.0 { var * n / (n - 1.0) } else { 0.0 };
    whiten_with(values, mask, mean, unbiased)
}

/// Advantages `[rows, R]` of a critic-free `estimator` from per-token `rewards` (the score at
/// each row's last token, −β·KL per token when the penalty is in the reward).
pub fn critic_free_advantages(
    estimator: AdvantageEstimator,
    rewards: &[f32],
    mask: &[bool],
    response_len: usize,
    group_size: usize,
    gamma: f64,
) -> Vec<f32> {
    let rows = rewards.len().checked_div(response_len).unwrap_or(0);
    let broadcast = |per_row: &[f64]| -> Vec<f32> {
        (0..rows * response_len)
            .map(|i| {
                if mask[i] {
                    per_row[i / response_len] as f32
                } else {
                    0.0
                }
            })
            .collect()
    };
    match estimator {
        AdvantageEstimator::Gae => panic!("GAE needs a critic"),
        AdvantageEstimator::ReinforcePp => whiten_unbiased(
            &discounted_returns(rewards, mask, response_len, gamma),
            mask,
        ),
        group => {
            let scores: Vec<f64> = (0..rows)
                .map(|r| {
                    rewards[r * response_len..(r + 1) * response_len]
                        .iter()
                        .map(|&x| f64::from(x))
                        .sum()
                })
                .collect();
            let per_row = broadcast(&group_advantages(group, &scores, group_size));
            if group == AdvantageEstimator::ReinforcePpBaseline {
                whiten_unbiased(&per_row, mask)
            } else {
                per_row
            }
        }
    }
}

/// The weight of each row's tokens in a minibatch's loss, so that Σ_rows Σ_tokens w·ℓ is the
/// minibatch's aggregated loss whatever micro-batches it is cut into. `lengths` are the loss
/// tokens of each row of the minibatch; rows without any count for nothing. `horizon` is the
/// constant of [`LossAggregation::SeqMeanTokenSumNorm`] (`max_new_tokens`). All weights are 0
/// when no row has a loss token.
pub fn row_weights(aggregation: LossAggregation, lengths: &[usize], horizon: usize) -> Vec<f64> {
    let tokens: usize = lengths.iter().sum();
    let sequences = lengths.iter().filter(|&&n| n > 0).count();
    if tokens == 0 {
        return vec![0.0; lengths.len()];
    }
    let seqs = sequences as f64;
    lengths
        .iter()
        .map(|&n| {
            if n == 0 {
                return 0.0;
            }
            match aggregation {
                LossAggregation::TokenMean => 1.0 / tokens as f64,
                LossAggregation::SeqMeanTokenSum => 1.0 / seqs,
                LossAggregation::SeqMeanTokenMean => 1.0 / (seqs * n as f64),
                LossAggregation::SeqMeanTokenSumNorm => 1.0 / (seqs * horizon.max(1) as f64),
            }
        })
        .collect()
}

/// DAPO's overlong shaping: 0 up to `max_new_tokens − buffer_len` tokens, then falling
/// linearly to −`factor` at `max_new_tokens` (min(−(len − expected)/buffer·factor, 0)).
pub fn overlong_penalty(
    length: usize,
    max_new_tokens: usize,
    buffer_len: usize,
    factor: f64,
) -> f64 {
    if buffer_len == 0 {
        return 0.0;
    }
    let expected = max_new_tokens.saturating_sub(buffer_len) as f64;
    let exceed = length as f64 - expected;
    (-exceed / buffer_len as f64 * factor).min(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    fn close32(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn grpo_hand_computed_with_unbiased_std() {
        // Group 1: [1, 0, 0, 1]: mean 0.5, unbiased var (4·0.25)/3 = 1/3, std 0.577350.
        // Group 2: [2, 2, 2, 2]: all equal → 0 (no NaN).
        let scores = [1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0];
        let a = group_advantages(AdvantageEstimator::Grpo, &scores, 4);
        let z = 0.5 / ((1.0f64 / 3.0).sqrt() + GRPO_EPS);
        close(&a, &[z, -z, -z, z, 0.0, 0.0, 0.0, 0.0]);
        assert!((z - 0.866_025).abs() < 1e-5);
    }

    #[test]
    fn dr_grpo_and_rloo_hand_computed() {
        let scores = [3.0, 1.0, 2.0];
        // mean 2
        close(
            &group_advantages(AdvantageEstimator::DrGrpo, &scores, 3),
            &[1.0, -1.0, 0.0],
        );
        // RLOO: s_i − mean of the others = n/(n−1)(s_i − mean): 3 − 1.5 = 1.5, 1 − 2.5 = −1.5,
        // 2 − 2 = 0.
        close(
            &group_advantages(AdvantageEstimator::Rloo, &scores, 3),
            &[1.5, -1.5, 0.0],
        );
    }

    #[test]
    fn singleton_groups_keep_their_score() {
        let scores = [0.7, -0.2];
        for e in [
            AdvantageEstimator::DrGrpo,
            AdvantageEstimator::Rloo,
            AdvantageEstimator::ReinforcePpBaseline,
        ] {
            close(&group_advantages(e, &scores, 1), &scores);
        }
        let g = group_advantages(AdvantageEstimator::Grpo, &scores, 1);
        close(&g, &[0.7 / (1.0 + GRPO_EPS), -0.2 / (1.0 + GRPO_EPS)]);
    }

    #[test]
    fn discounted_returns_hand_computed() {
        // Row 0: rewards [0.1, 0.2, 1.0], γ = 0.5: G2 = 1, G1 = 0.2 + 0.5 = 0.7,
        // G0 = 0.1 + 0.35 = 0.45. Row 1: two tokens then padding.
        let rewards = [0.1, 0.2, 1.0, -1.0, 2.0, 9.0];
        let mask = [true, true, true, true, true, false];
        let g = discounted_returns(&rewards, &mask, 3, 0.5);
        close32(&g, &[0.45, 0.7, 1.0, 0.0, 2.0, 0.0]);
    }

    #[test]
    fn reinforce_pp_whitens_returns_over_the_batch_unbiased() {
        let rewards = [0.0, 1.0, 0.0, 3.0];
        let mask = [true, true, true, true];
        // γ = 1: returns [1, 1, 3, 3]; mean 2, unbiased var 4/3.
        let a = critic_free_advantages(AdvantageEstimator::ReinforcePp, &rewards, &mask, 2, 1, 1.0);
        let s = 1.0 / (4.0f64 / 3.0 + 1e-8).sqrt();
        close32(&a, &[-s as f32, -s as f32, s as f32, s as f32]);
    }

    #[test]
    fn critic_free_advantages_broadcast_the_row_score_over_valid_tokens() {
        // Two groups of two rows, R = 2; per-row scores = Σ rewards: [1, 0, 0.5, 0.5].
        let rewards = [0.0, 1.0, 0.0, 0.0, 0.5, 0.0, 0.2, 0.3];
        let mask = [true, true, true, false, true, false, true, true];
        let a = critic_free_advantages(AdvantageEstimator::DrGrpo, &rewards, &mask, 2, 2, 1.0);
        close32(&a, &[0.5, 0.5, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // REINFORCE++ baseline: [0.5, 0.5, −0.5, (pad), 0, (pad), 0, 0] whitened over the 6
        // valid tokens: mean 1/6, unbiased var = Σ(x − 1/6)² / 5.
        let b = critic_free_advantages(
            AdvantageEstimator::ReinforcePpBaseline,
            &rewards,
            &mask,
            2,
            2,
            1.0,
        );
        let valid = [0.5f64, 0.5, -0.5, 0.0, 0.0, 0.0];
        let mean = valid.iter().sum::<f64>() / 6.0;
        let var = valid.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5.0;
        let w = |x: f64| ((x - mean) / (var + 1e-8).sqrt()) as f32;
        close32(
            &b,
            &[w(0.5), w(0.5), w(-0.5), 0.0, w(0.0), 0.0, w(0.0), w(0.0)],
        );
    }

    #[test]
    fn row_weights_hand_computed() {
        let lengths = [2, 0, 3, 1]; // 6 tokens, 3 sequences with tokens
        close(
            &row_weights(LossAggregation::TokenMean, &lengths, 8),
            &[1.0 / 6.0, 0.0, 1.0 / 6.0, 1.0 / 6.0],
        );
        close(
            &row_weights(LossAggregation::SeqMeanTokenSum, &lengths, 8),
            &[1.0 / 3.0, 0.0, 1.0 / 3.0, 1.0 / 3.0],
        );
        close(
            &row_weights(LossAggregation::SeqMeanTokenMean, &lengths, 8),
            &[1.0 / 6.0, 0.0, 1.0 / 9.0, 1.0 / 3.0],
        );
        close(
            &row_weights(LossAggregation::SeqMeanTokenSumNorm, &lengths, 8),
            &[1.0 / 24.0, 0.0, 1.0 / 24.0, 1.0 / 24.0],
        );
        close(
            &row_weights(LossAggregation::TokenMean, &[0, 0], 8),
            &[0.0, 0.0],
        );
    }

    #[test]
    fn overlong_penalty_hand_computed() {
        // max 20, buffer 4: no penalty up to 16 tokens, −0.25·factor per token after.
        assert_eq!(overlong_penalty(10, 20, 4, 1.0), 0.0);
        assert_eq!(overlong_penalty(16, 20, 4, 1.0), 0.0);
        assert!((overlong_penalty(17, 20, 4, 1.0) + 0.25).abs() < 1e-12);
        assert!((overlong_penalty(20, 20, 4, 2.0) + 2.0).abs() < 1e-12);
        assert_eq!(overlong_penalty(20, 20, 0, 1.0), 0.0);
    }
}
