//! The resolved, validated PPO configuration (no `Option`s left to interpret).

use ppo_models::SamplingConfig;
use serde::{Deserialize, Serialize};

use crate::{CoreError, KlEstimator};

/// AdamW hyperparameters, every one explicit (burn's defaults differ from PyTorch's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// β₁
    pub beta1: f64,
    /// β₂
    pub beta2: f64,
    /// ε
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for OptimizerConfig {
    /// PyTorch's AdamW defaults.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// How the KL penalty toward the reference is applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KlConfig {
    /// Per-token estimator.
    pub estimator: KlEstimator,
    /// Initial β.
    pub coef: f64,
    /// Adapt β toward this KL (per sequence); `None` keeps β fixed.
    pub target: Option<f64>,
    /// Horizon of the adaptive controller, in samples.
    pub horizon: f64,
    /// Add β·KL to the loss instead of folding it into the per-token rewards.
    pub in_loss: bool,
}

/// Everything one PPO iteration needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PpoConfig {
    /// Prompts per iteration.
    pub batch_size: usize,
    /// Responses sampled per prompt.
    pub group_size: usize,
    /// Passes over each rollout batch.
    pub ppo_epochs: usize,
    /// Rollout rows per optimiser step.
    pub mini_batch_size: usize,
    /// Micro-batches per minibatch (gradients summed, loss scaled by token counts).
    pub gradient_accumulation_steps: usize,
    /// ε of the clipped policy objective.
    pub clip_range: f64,
    /// ε of the clipped value loss.
    pub clip_range_value: f64,
    /// Weight of the entropy bonus.
    pub entropy_coef: f64,
    /// Weight of the value loss.
    pub value_loss_coef: f64,
    /// Global gradient-norm limit, per model.
    pub max_grad_norm: f64,
    /// Discount.
    pub gamma: f64,
    /// GAE λ.
    pub lam: f64,
    /// Whiten advantages over the batch's valid tokens.
    pub whiten_advantages: bool,
    /// KL penalty.
    pub kl: KlConfig,
    /// Sampling during rollouts.
    pub sampling: SamplingConfig,
    /// Rows per generation pass (rollouts and evaluation): bounds the KV cache and logits held
    /// at once. The old/ref log-prob and value passes run on the training micro-batches
    /// (`mini_batch_size / gradient_accumulation_steps` rows, never more than a training pass).
    pub forward_batch_size: usize,
    /// Recompute memory-bound activations in the backward pass instead of keeping them.
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// Subtracted from the score of a response that never produced EOS.
    pub missing_eos_penalty: Option<f64>,
    /// Scores are clipped to ±this.
    pub score_clip: Option<f64>,
    /// Normalise scores by a running mean and standard deviation.
    pub normalize_score: bool,
    /// Policy optimiser.
    pub policy_optimizer: OptimizerConfig,
    /// Critic optimiser.
    pub critic_optimizer: OptimizerConfig,
    /// Longest prompt in tokens: a longer one keeps its last this-many tokens (counted in the
    /// `prompts_truncated` metric). `None`: no limit.
    #[serde(default)]
    pub max_prompt_tokens: Option<usize>,
}

impl PpoConfig {
    /// Rollout rows per iteration.
    pub fn rollout_size(&self) -> usize {
        self.batch_size * self.group_size
    }

    /// Checks ranges and divisibility; the message names the key.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |key: &str, why: String| {
            Err(CoreError::InvalidConfig {
                key: key.into(),
                reason: why,
            })
        };
        for (key, value) in [
            ("batch_size", self.batch_size),
            ("group_size", self.group_size),
            ("ppo_epochs", self.ppo_epochs),
            ("mini_batch_size", self.mini_batch_size),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
            ("forward_batch_size", self.forward_batch_size),
            ("max_new_tokens", self.sampling.max_new_tokens),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        if !self.rollout_size().is_multiple_of(self.mini_batch_size) {
            return bad(
                "mini_batch_size",
                format!(
                    "{} must divide batch_size × group_size = {}",
                    self.mini_batch_size,
                    self.rollout_size()
                ),
            );
        }
        if !self
            .mini_batch_size
            .is_multiple_of(self.gradient_accumulation_steps)
        {
            return bad(
                "gradient_accumulation_steps",
                format!(
                    "{} must divide mini_batch_size = {}",
                    self.gradient_accumulation_steps, self.mini_batch_size
                ),
            );
        }
        let unit = |key: &str, v: f64| -> Result<(), CoreError> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                bad(key, format!("{v} must be in [0, 1]"))
            }
        };
        unit("gamma", self.gamma)?;
        unit("lam", self.lam)?;
        let positive = |key: &str, v: f64| -> Result<(), CoreError> {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                bad(key, format!("{v} must be positive"))
            }
        };
        positive("clip_range", self.clip_range)?;
        positive("clip_range_value", self.clip_range_value)?;
        positive("max_grad_norm", self.max_grad_norm)?;
        positive("kl.horizon", self.kl.horizon)?;
        if !self.sampling.greedy {
            positive("temperature", self.sampling.temperature)?;
        }
        if !(self.sampling.top_p > 0.0 && self.sampling.top_p <= 1.0) {
            return bad(
                "top_p",
                format!("{} must be in (0, 1]", self.sampling.top_p),
            );
        }
        let non_negative = |key: &str, v: f64| -> Result<(), CoreError> {
            if v >= 0.0 && v.is_finite() {
                Ok(())
            } else {
                bad(key, format!("{v} must be ≥ 0"))
            }
        };
        non_negative("entropy_coef", self.entropy_coef)?;
        non_negative("value_loss_coef", self.value_loss_coef)?;
        non_negative("kl_coef", self.kl.coef)?;
        if let Some(t) = self.kl.target {
            positive("kl_target", t)?;
        }
        if let Some(c) = self.score_clip {
            positive("score_clip", c)?;
        }
        for (prefix, o) in [
            ("policy", &self.policy_optimizer),
            ("critic", &self.critic_optimizer),
        ] {
            for (key, v) in [("beta1", o.beta1), ("beta2", o.beta2)] {
                if !(0.0..1.0).contains(&v) {
                    return bad(&format!("{prefix}.{key}"), format!("{v} must be in [0, 1)"));
                }
            }
            positive(&format!("{prefix}.eps"), o.eps)?;
            non_negative(&format!("{prefix}.weight_decay"), o.weight_decay)?;
        }
        Ok(())
    }
}
