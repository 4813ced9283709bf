//! The resolved, validated PPO configuration (no `Option`s left to interpret).

use ppo_models::SamplingConfig;
use serde::{Deserialize, Serialize};

use crate::{AdvantageEstimator, CoreError, KlEstimator, LossAggregation};

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

/// The estimator, the loss's shape and DAPO's sampling and shaping choices. The default is
/// PPO: GAE with a critic, token-mean losses, symmetric clipping, every response trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlgorithmConfig {
    /// Where advantages come from; only [`AdvantageEstimator::Gae`] has a critic.
    pub advantage_estimator: AdvantageEstimator,
    /// How per-token losses become a minibatch's loss.
    pub loss_aggregation: LossAggregation,
    /// Upper ε of the policy clip (DAPO's clip-higher); `None`: `clip_range`.
    pub clip_range_high: Option<f64>,
    /// Dual clip c > 1: the loss of a token with a negative advantage is at most −A·c.
    pub dual_clip: Option<f64>,
    /// logπ − logπ_old is clamped to ±this before the exponential.
    pub log_ratio_clamp: f64,
    /// Responses that never produced EOS are left out of the loss.
    pub mask_truncated: bool,
    /// DAPO's overlong shaping: the last this-many tokens before `max_new_tokens` cost up to
    /// `overlong_penalty_factor` (0 = off).
    pub overlong_buffer_len: usize,
    /// Penalty at `max_new_tokens` of the overlong shaping.
    pub overlong_penalty_factor: f64,
    /// DAPO's dynamic sampling: groups whose scores are all equal are dropped and more prompts
    /// sampled until `batch_size` groups remain.
    pub dynamic_sampling: bool,
    /// Most generation rounds of one iteration under dynamic sampling; the iteration trains on
    /// what it has after the last.
    pub max_sampling_rounds: usize,
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        Self {
            advantage_estimator: AdvantageEstimator::Gae,
            loss_aggregation: LossAggregation::TokenMean,
            clip_range_high: None,
            dual_clip: None,
            log_ratio_clamp: 20.0,
            mask_truncated: false,
            overlong_buffer_len: 0,
            overlong_penalty_factor: 1.0,
            dynamic_sampling: false,
            max_sampling_rounds: 4,
        }
    }
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
    /// ε of the clipped policy objective (its lower side when
    /// [`AlgorithmConfig::clip_range_high`] is set).
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
    /// Optimiser steps skipped in a row (a NaN or infinite loss or gradient) before the
    /// update fails with [`CoreError::TooManySkippedSteps`](crate::CoreError).
    #[serde(default = "default_max_consecutive_skips")]
    pub max_consecutive_skips: usize,
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
    /// Estimator, loss aggregation and the GRPO/DAPO variants.
    #[serde(default)]
    pub algorithm: AlgorithmConfig,
}

/// [`PpoConfig::max_consecutive_skips`] when a serialised config predates it.
pub fn default_max_consecutive_skips() -> usize {
    10
}

impl PpoConfig {
    /// Rollout rows per iteration.
    pub fn rollout_size(&self) -> usize {
        self.batch_size * self.group_size
    }

    /// Upper ε of the policy clip.
    pub fn clip_range_high(&self) -> f64 {
        self.algorithm.clip_range_high.unwrap_or(self.clip_range)
    }

    /// Whether this configuration trains a critic.
    pub fn has_critic(&self) -> bool {
        self.algorithm.advantage_estimator.needs_critic()
    }

    /// Checks ranges and divisibility; the error names the field ([`PpoField`]).
    pub fn validate(&self) -> Result<(), CoreError> {
        use PpoField as F;
        let bad = |field: PpoField, reason: String| Err(CoreError::InvalidConfig { field, reason });
        for (field, value) in [
            (F::BatchSize, self.batch_size),
            (F::GroupSize, self.group_size),
            (F::PpoEpochs, self.ppo_epochs),
            (F::MiniBatchSize, self.mini_batch_size),
            (
                F::GradientAccumulationSteps,
                self.gradient_accumulation_steps,
            ),
            (F::ForwardBatchSize, self.forward_batch_size),
            (F::MaxNewTokens, self.sampling.max_new_tokens),
            (F::MaxConsecutiveSkips, self.max_consecutive_skips),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        if !self.rollout_size().is_multiple_of(self.mini_batch_size) {
            return bad(
                F::MiniBatchSize,
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
                F::GradientAccumulationSteps,
                format!(
                    "{} must divide mini_batch_size = {}",
                    self.gradient_accumulation_steps, self.mini_batch_size
                ),
            );
        }
        let unit = |field: PpoField, v: f64| -> Result<(), CoreError> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                bad(field, format!("{v} must be in [0, 1]"))
            }
        };
        unit(F::Gamma, self.gamma)?;
        unit(F::Lam, self.lam)?;
        let positive = |field: PpoField, v: f64| -> Result<(), CoreError> {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                bad(field, format!("{v} must be positive"))
            }
        };
        positive(F::ClipRange, self.clip_range)?;
        positive(F::ClipRangeValue, self.clip_range_value)?;
        positive(F::MaxGradNorm, self.max_grad_norm)?;
        positive(F::KlHorizon, self.kl.horizon)?;
        if !self.sampling.greedy {
            positive(F::Temperature, self.sampling.temperature)?;
        }
        if !(self.sampling.top_p > 0.0 && self.sampling.top_p <= 1.0) {
            return bad(
                F::TopP,
                format!("{} must be in (0, 1]", self.sampling.top_p),
            );
        }
        let non_negative = |field: PpoField, v: f64| -> Result<(), CoreError> {
            if v >= 0.0 && v.is_finite() {
                Ok(())
            } else {
                bad(field, format!("{v} must be ≥ 0"))
            }
        };
        non_negative(F::EntropyCoef, self.entropy_coef)?;
        non_negative(F::ValueLossCoef, self.value_loss_coef)?;
        non_negative(F::KlCoef, self.kl.coef)?;
        if let Some(t) = self.kl.target {
            positive(F::KlTarget, t)?;
        }
        if let Some(c) = self.score_clip {
            positive(F::ScoreClip, c)?;
        }
        if let Some(p) = self.missing_eos_penalty {
            non_negative(F::MissingEosPenalty, p)?;
        }
        let a = &self.algorithm;
        if (a.advantage_estimator.needs_groups() || a.dynamic_sampling) && self.group_size < 2 {
            let why = if a.dynamic_sampling {
                "dynamic sampling".to_string()
            } else {
                format!("advantage_estimator {:?}", a.advantage_estimator.name())
            };
            return bad(
                F::GroupSize,
                format!(
                    "{why} compares the responses of one prompt: group_size must be at least \
                     2, got {}",
                    self.group_size
                ),
            );
        }
        if let Some(high) = a.clip_range_high {
            positive(F::ClipRangeHigh, high)?;
        }
        if let Some(c) = a.dual_clip
            && !(c > 1.0 && c.is_finite())
        {
            return bad(F::DualClip, format!("{c} must be greater than 1"));
        }
        positive(F::LogRatioClamp, a.log_ratio_clamp)?;
        non_negative(F::OverlongPenaltyFactor, a.overlong_penalty_factor)?;
        if a.overlong_buffer_len > self.sampling.max_new_tokens {
            return bad(
                F::OverlongBufferLen,
                format!(
                    "{} must be at most max_new_tokens = {}",
                    a.overlong_buffer_len, self.sampling.max_new_tokens
                ),
            );
        }
        if a.max_sampling_rounds == 0 {
            return bad(F::MaxSamplingRounds, "must be at least 1".into());
        }
        if self.max_prompt_tokens == Some(0) {
            return bad(F::MaxPromptTokens, "must be at least 1".into());
        }
        for (role, o) in [
            (Role::Policy, &self.policy_optimizer),
            (Role::Critic, &self.critic_optimizer),
        ] {
            for (field, v) in [(F::Beta1(role), o.beta1), (F::Beta2(role), o.beta2)] {
                if !(0.0..1.0).contains(&v) {
                    return bad(field, format!("{v} must be in [0, 1)"));
                }
            }
            positive(F::Eps(role), o.eps)?;
            non_negative(F::WeightDecay(role), o.weight_decay)?;
        }
        Ok(())
    }
}

/// A trained model, for the fields that exist once per model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The policy.
    Policy,
    /// The critic.
    Critic,
}

/// A field of [`PpoConfig`] that [`PpoConfig::validate`] can refuse. Callers that read the
/// config from elsewhere map it to their own key names (exhaustively, so a new field must be
/// given one); `Display` gives the field's path in `PpoConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum PpoField {
    BatchSize,
    GroupSize,
    PpoEpochs,
    MiniBatchSize,
    GradientAccumulationSteps,
    ForwardBatchSize,
    MaxNewTokens,
    Temperature,
    TopP,
    Gamma,
    Lam,
    ClipRange,
    ClipRangeValue,
    MaxGradNorm,
    EntropyCoef,
    ValueLossCoef,
    KlCoef,
    KlTarget,
    KlHorizon,
    ScoreClip,
    MissingEosPenalty,
    MaxPromptTokens,
    ClipRangeHigh,
    DualClip,
    LogRatioClamp,
    OverlongBufferLen,
    OverlongPenaltyFactor,
    MaxSamplingRounds,
    MaxConsecutiveSkips,
    Beta1(Role),
    Beta2(Role),
    Eps(Role),
    WeightDecay(Role),
}

impl std::fmt::Display for PpoField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let optimizer = |role: &Role| match role {
            Role::Policy => "policy_optimizer",
            Role::Critic => "critic_optimizer",
        };
        match self {
            Self::BatchSize => f.write_str("batch_size"),
            Self::GroupSize => f.write_str("group_size"),
            Self::PpoEpochs => f.write_str("ppo_epochs"),
            Self::MiniBatchSize => f.write_str("mini_batch_size"),
            Self::GradientAccumulationSteps => f.write_str("gradient_accumulation_steps"),
            Self::ForwardBatchSize => f.write_str("forward_batch_size"),
            Self::MaxNewTokens => f.write_str("sampling.max_new_tokens"),
            Self::Temperature => f.write_str("sampling.temperature"),
            Self::TopP => f.write_str("sampling.top_p"),
            Self::Gamma => f.write_str("gamma"),
            Self::Lam => f.write_str("lam"),
            Self::ClipRange => f.write_str("clip_range"),
            Self::ClipRangeValue => f.write_str("clip_range_value"),
            Self::MaxGradNorm => f.write_str("max_grad_norm"),
            Self::EntropyCoef => f.write_str("entropy_coef"),
            Self::ValueLossCoef => f.write_str("value_loss_coef"),
            Self::KlCoef => f.write_str("kl.coef"),
            Self::KlTarget => f.write_str("kl.target"),
            Self::KlHorizon => f.write_str("kl.horizon"),
            Self::ScoreClip => f.write_str("score_clip"),
            Self::MissingEosPenalty => f.write_str("missing_eos_penalty"),
            Self::MaxPromptTokens => f.write_str("max_prompt_tokens"),
            Self::ClipRangeHigh => f.write_str("algorithm.clip_range_high"),
            Self::DualClip => f.write_str("algorithm.dual_clip"),
            Self::LogRatioClamp => f.write_str("algorithm.log_ratio_clamp"),
            Self::OverlongBufferLen => f.write_str("algorithm.overlong_buffer_len"),
            Self::OverlongPenaltyFactor => f.write_str("algorithm.overlong_penalty_factor"),
            Self::MaxSamplingRounds => f.write_str("algorithm.max_sampling_rounds"),
            Self::MaxConsecutiveSkips => f.write_str("max_consecutive_skips"),
            Self::Beta1(r) => write!(f, "{}.beta1", optimizer(r)),
            Self::Beta2(r) => write!(f, "{}.beta2", optimizer(r)),
            Self::Eps(r) => write!(f, "{}.eps", optimizer(r)),
            Self::WeightDecay(r) => write!(f, "{}.weight_decay", optimizer(r)),
        }
    }
}
