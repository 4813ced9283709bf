//! The update half of an iteration: `ppo_epochs` passes of clipped policy and value updates
//! over shuffled minibatches, gradients accumulated over micro-batches by token count, and
//! the iteration's metrics.

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use ppo_models::{CausalLm, ValueModel, to_f32_vec, token_logprobs_and_entropy};

use super::PpoTrainer;
use super::rollout::{Rollout, gather, response_values};
use crate::advantages::{explained_variance, masked_mean_var};
use crate::grad::clip_grad_norm;
use crate::loss::{PolicyClip, TokenStats, policy_loss, value_loss};
use crate::{CoreError, Metrics, row_weights};

/// Result of one update over a rollout.
#[derive(Clone, Debug, Default)]
pub struct UpdateStats {
    /// Token statistics over all epochs and minibatches.
    pub tokens: TokenStats,
    /// Token statistics of each minibatch, in order.
    pub minibatches: Vec<TokenStats>,
    /// Mean global gradient norm of the policy before clipping (over the steps taken).
    pub grad_norm_policy: f64,
    /// Mean global gradient norm of the critic before clipping.
    pub grad_norm_critic: f64,
    /// Policy learning rate of the first optimiser step.
    pub learning_rate: f64,
    /// Critic learning rate of the first optimiser step.
    pub critic_learning_rate: f64,
    /// Σ β·KL over loss tokens (only when KL is in the loss).
    pub kl_loss: f64,
    /// Optimiser steps skipped for a NaN or infinite loss or gradient.
    pub skipped_steps: usize,
}

fn tensor2(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

impl PpoTrainer {
    /// `ppo_epochs` passes of clipped PPO updates over `rollout`. A minibatch whose loss or
    /// gradient is NaN or infinite leaves the weights and optimiser moments as they were
    /// ([`UpdateStats::skipped_steps`]); [`PpoConfig::max_consecutive_skips`](crate::PpoConfig)
    /// of them in a row, across iterations, fail with [`CoreError::TooManySkippedSteps`].
    pub fn update(&mut self, rollout: &Rollout) -> Result<UpdateStats, CoreError> {
        let g = &rollout.generation;
        let cfg = self.config.clone();
        let (l, p, r) = (g.seq_len(), g.prompt_len, g.response_len);
        let response_ids = g.response_ids();
        let loss_mask = &rollout.loss_mask;
        let mask_f: Vec<f32> = loss_mask.iter().map(|&m| f32::from(u8::from(m))).collect();
        let loss_tokens: Vec<usize> = (0..g.batch_size)
            .map(|row| {
                loss_mask[row * r..(row + 1) * r]
                    .iter()
                    .filter(|&&m| m)
                    .count()
            })
            .collect();
        let temperature = cfg.sampling.logprob_temperature();
        let micro_size = cfg.mini_batch_size / cfg.gradient_accumulation_steps;
        let clip = PolicyClip {
            low: cfg.clip_range,
            high: cfg.clip_range_high(),
            dual: cfg.algorithm.dual_clip,
            log_ratio_clamp: cfg.algorithm.log_ratio_clamp,
        };
        let mut stats = UpdateStats {
            learning_rate: self.policy_schedule.lr(),
            critic_learning_rate: self.critic_schedule.lr(),
            ..Default::default()
        };
        let mut optimizer_steps = 0usize;
        let beta = rollout.kl_coef;

        for epoch in 0..cfg.ppo_epochs {
            let mut order: Vec<usize> = (0..g.batch_size).collect();
            if epoch == 0 {
                order.clone_from(&rollout.first_epoch_order);
            } else {
                self.rng.shuffle(&mut order);
            }
            for minibatch in order.chunks(cfg.mini_batch_size) {
                // Each token's weight in the minibatch's loss: micro-batches add up to the
                // minibatch's aggregated loss (`loss_aggregation`).
                let lengths: Vec<usize> = minibatch.iter().map(|&row| loss_tokens[row]).collect();
                let row_weight = row_weights(
                    cfg.algorithm.loss_aggregation,
                    &lengths,
                    cfg.sampling.max_new_tokens,
                );
                let mut acc_policy = GradientsAccumulator::<CausalLm>::new();
                let mut acc_critic = GradientsAccumulator::<ValueModel>::new();
                let mut mb_stats = TokenStats::empty();
                let mut finite_kl = true;
                for (micro, micro_weight) in minibatch
                    .chunks(micro_size)
                    .zip(row_weight.chunks(micro_size))
                {
                    let n = micro.len();
                    let ids = gather(&g.sequences, l, micro);
                    let attn = gather(&g.attention_mask, l, micro);
                    let resp = gather(&response_ids, r, micro);
                    let token_weight: Vec<f32> = micro
                        .iter()
                        .zip(micro_weight)
                        .flat_map(|(&row, &w)| {
                            mask_f[row * r..(row + 1) * r]
                                .iter()
                                .map(move |m| m * w as f32)
                        })
                        .collect();
                    // Policy and critic may sit on different devices: each loss is built on
                    // its model's device from host rows and has its own backward pass (they
                    // share no parameter, so the gradients are those of their sum).
                    let rows = |v: &[f32], d: &Device| tensor2(gather(v, r, micro), n, r, d);
                    let d = &self.device;
                    let logits = self.policy.response_logits(&ids, &attn, n, p);
                    let (logp, entropy) = token_logprobs_and_entropy(logits, &resp, temperature);
                    let mask_t = rows(&mask_f, d);
                    let weight = tensor2(token_weight.clone(), n, r, d);
                    let pl = policy_loss(
                        logp.clone(),
                        rows(&rollout.old_logprobs, d),
                        rows(&rollout.advantages, d),
                        mask_t.clone(),
                        &clip,
                    );
                    let vl = self.critic.as_ref().map(|critic| {
                        let dc = &self.critic_device;
                        let values = response_values(critic.forward(&ids, &attn, n), p);
                        let loss = value_loss(
                            values,
                            rows(&rollout.values, dc),
                            rows(&rollout.returns, dc),
                            rows(&mask_f, dc),
                            cfg.clip_range_value,
                        );
                        (loss, tensor2(token_weight, n, r, dc))
                    });
                    mb_stats.merge(&TokenStats::measure(
                        &pl,
                        vl.as_ref().map(|(loss, _)| loss),
                        entropy.clone(),
                        mask_t.clone(),
                    ));
                    let weighted = |t: Tensor<2>, w: &Tensor<2>| (t * w.clone()).sum();
                    let mut total = weighted(pl.loss, &weight)
                        - weighted(entropy * mask_t.clone(), &weight) * cfg.entropy_coef;
                    if cfg.kl.in_loss {
                        let ref_lp = rows(&rollout.ref_logprobs, d);
                        let kl = crate::loss::kl_penalty(logp, ref_lp, mask_t, cfg.kl.estimator);
                        let kl_sum = f64::from(to_f32_vec(kl.clone().detach().sum())[0]);
                        finite_kl &= kl_sum.is_finite();
                        stats.kl_loss += kl_sum * beta;
                        total = total + weighted(kl, &weight) * beta;
                    }
                    let mut grads = total.backward();
                    acc_policy.accumulate(
                        &self.policy,
                        GradientsParams::from_module(&mut grads, &self.policy),
                    );
                    if let (Some(critic), Some((vl, weight))) = (&self.critic, vl) {
                        let total = weighted(vl.loss, &weight) * cfg.value_loss_coef;
                        let mut grads = total.backward();
                        acc_critic
                            .accumulate(critic, GradientsParams::from_module(&mut grads, critic));
                    }
                }
                let mut grads_policy = acc_policy.grads();
                let norm_policy =
                    clip_grad_norm(&self.policy, &mut grads_policy, cfg.max_grad_norm);
                let critic_grads = self.critic.as_ref().map(|critic| {
                    let mut grads = acc_critic.grads();
                    let norm = clip_grad_norm(critic, &mut grads, cfg.max_grad_norm);
                    (grads, norm)
                });
                let norm_critic = critic_grads.as_ref().map_or(0.0, |(_, norm)| *norm);
                // A NaN or infinite loss or gradient never reaches the weights: the step is
                // skipped (both models), counted, and too many in a row end the update. The
                // loss terms' sums were read already (token statistics, KL): no extra sync.
                let finite_losses = finite_kl
                    && [mb_stats.policy_loss, mb_stats.value_loss, mb_stats.entropy]
                        .iter()
                        .all(|v| v.is_finite());
                if !(finite_losses && norm_policy.is_finite() && norm_critic.is_finite()) {
                    stats.skipped_steps += 1;
                    self.consecutive_skips += 1;
                    if self.consecutive_skips >= cfg.max_consecutive_skips {
                        return Err(CoreError::TooManySkippedSteps {
                            count: self.consecutive_skips,
                        });
                    }
                } else {
                    self.consecutive_skips = 0;
                    stats.grad_norm_policy += norm_policy;
                    stats.grad_norm_critic += norm_critic;
                    let policy = self.policy.clone();
                    self.policy =
                        self.policy_optim
                            .step(self.policy_schedule.lr(), policy, grads_policy);
                    if let (Some(critic), Some((grads, _))) = (self.critic.take(), critic_grads) {
                        self.critic = Some(self.critic_optim.step(
                            self.critic_schedule.lr(),
                            critic,
                            grads,
                        ));
                    }
                    optimizer_steps += 1;
                }
                // The schedules count planned steps, skipped or not: the run keeps its shape.
                self.policy_schedule.step();
                self.critic_schedule.step();
                stats.tokens.merge(&mb_stats);
                stats.minibatches.push(mb_stats);
            }
        }
        stats.grad_norm_policy /= optimizer_steps.max(1) as f64;
        stats.grad_norm_critic /= optimizer_steps.max(1) as f64;
        Ok(stats)
    }

    pub(super) fn metrics(
        &self,
        rollout: &Rollout,
        stats: &UpdateStats,
        time_update: f64,
        time_total: f64,
    ) -> Metrics {
        let g = &rollout.generation;
        let n = g.batch_size as f64;
        let r = g.response_len;
        let t = &stats.tokens;
        let mask = &g.response_mask;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let kl_rows: Vec<f64> = (0..g.batch_size)
            .map(|row| {
                rollout.kl[row * r..(row + 1) * r]
                    .iter()
                    .map(|&k| f64::from(k))
                    .sum()
            })
            .collect();
        let kl_per_sequence = mean(&kl_rows);
        let (entropy, _) = masked_mean_var(&rollout.entropy, mask);
        let policy_loss = t.mean(t.policy_loss);
        let value_loss = t.mean(t.value_loss);
        let entropy_train = t.mean(t.entropy);
        let kl_loss = if t.tokens > 0.0 {
            stats.kl_loss / t.tokens
        } else {
            0.0
        };
        let has_critic = self.critic.is_some();
        let value_term = if has_critic {
            self.config.value_loss_coef * value_loss
        } else {
            0.0
        };
        let total_loss =
            policy_loss + value_term - self.config.entropy_coef * entropy_train + kl_loss;
        let lengths: Vec<f64> = (0..g.batch_size)
            .map(|row| g.response_length(row) as f64)
            .collect();
        let response_tokens: f64 = lengths.iter().sum();
        let non_score = if self.config.kl.in_loss {
            0.0
        } else {
            -rollout.kl_coef * kl_per_sequence
        };

        let algo = &self.config.algorithm;
        let mut m = Metrics::default();
        m.push("policy_loss", policy_loss);
        if has_critic {
            m.push("value_loss", value_loss);
        }
        m.push("total_loss", total_loss);
        m.push("reward", mean(&rollout.shaped_scores));
        m.push("advantage", rollout.raw_advantage_mean);
        m.push("entropy", entropy);
        m.push("kl_divergence", kl_per_sequence);
        m.push("learning_rate", stats.learning_rate);
        m.push("score", mean(&rollout.scores));
        m.push("non_score_reward", non_score);
        m.push("clipfrac", t.mean(t.clipped));
        if algo.dual_clip.is_some() {
            m.push("dual_clipfrac", t.mean(t.dual_clipped));
        }
        if has_critic {
            m.push("value_clipfrac", t.mean(t.value_clipped));
        }
        m.push("approx_kl", t.mean(t.approx_kl));
        m.push("ratio_mean", t.mean(t.ratio));
        if has_critic {
            m.push(
                "explained_variance",
                explained_variance(&rollout.values, &rollout.returns, mask),
            );
        }
        m.push("response_length", response_tokens / n);
        m.push(
            "eos_rate",
            g.finished.iter().filter(|&&f| f).count() as f64 / n,
        );
        m.push("kl_coef", rollout.kl_coef);
        m.push("prompts_truncated", rollout.prompts_truncated as f64);
        for (name, value) in &rollout.reward_metrics {
            m.push(name, *value);
        }
        if algo.mask_truncated {
            let masked = g.finished.iter().filter(|&&f| !f).count();
            m.push("truncated_masked", masked as f64);
        }
        if algo.overlong_buffer_len > 0 {
            m.push("overlong_penalty", rollout.overlong_penalty);
        }
        if algo.dynamic_sampling {
            m.push("filtered_groups", rollout.filtered_groups as f64);
            m.push("sampling_rounds", rollout.sampling_rounds as f64);
        }
        m.push("grad_norm_policy", stats.grad_norm_policy);
        m.push("skipped_steps", stats.skipped_steps as f64);
        if has_critic {
            m.push("grad_norm_critic", stats.grad_norm_critic);
            m.push("critic_learning_rate", stats.critic_learning_rate);
        }
        m.push("tokens_per_second", response_tokens / time_total.max(1e-9));
        m.push("time/generate", rollout.time_generate);
        m.push("time/score", rollout.time_score);
        m.push("time/update", time_update);
        m
    }
}
