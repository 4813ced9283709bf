//! Resolving a configuration: `RawConfig` → validated library configs, every range checked
//! once, before any file beyond the models' `config.json` is read. What depends on the prompts
//! (the eval split, the number of steps, the schedules' horizon) is [`Resolved::shape`]'s.

use anyhow::{Context, Result, bail};
use ppo_core::{AlgorithmConfig, CoreError, KlConfig, OptimizerConfig, PpoConfig, PpoField};
use ppo_models::{SamplingConfig, TransformerConfig};
use ppo_sched::{PlateauConfig, SchedError, ScheduleConfig, ScheduleKind, ThresholdMode};
use serde::Serialize;

use super::{CriticInit, RawConfig, RawRewardSource, RawTraining, ScheduleName};

/// Everything a run needs that the configuration alone decides, validated.
#[derive(Clone, Debug, Serialize)]
pub struct Resolved {
    pub raw: RawConfig,
    pub model: TransformerConfig,
    pub ppo: PpoConfig,
    /// Sampling of evaluation passes.
    pub eval_sampling: SamplingConfig,
    /// The policy's learning-rate schedule and the critic's (horizon set by [`Resolved::shape`]).
    pub policy_schedule: ScheduleKind,
    pub critic_schedule: ScheduleKind,
}

/// What the number of prompts decides: the eval split, the length of the run and its schedules.
#[derive(Clone, Debug, Serialize)]
pub struct RunShape {
    /// Prompts used for training (the rest of the prompts is the eval split).
    pub train_samples: usize,
    /// Held-out prompts evaluated each time.
    pub eval_samples: usize,
    /// PPO iterations to run.
    pub total_steps: u64,
    /// Iterations per pass over the prompts.
    pub steps_per_epoch: u64,
    pub policy_schedule: ScheduleConfig,
    pub critic_schedule: ScheduleConfig,
}

/// Turns the raw file into library configs, checking every range once.
pub fn resolve(raw: RawConfig) -> Result<Resolved> {
    let t = &raw.training;
    let model = model_config(&raw)?;
    check_sources(&raw)?;
    if !(0.0..1.0).contains(&raw.eval.eval_split) {
        bail!(
            "invalid config key `eval.eval_split`: {} must be in [0, 1)",
            raw.eval.eval_split
        );
    }
    if t.num_epochs == 0 {
        bail!("invalid config key `training.num_epochs`: must be at least 1");
    }
    let ppo = ppo_config(&raw)?;
    let eval_sampling = eval_sampling(&raw)?;
    let policy_schedule = match t.lr_scheduler_type {
        ScheduleName::Same => bail!(
            "invalid config key `training.lr_scheduler_type`: \"same\" is for \
             training.critic_lr_scheduler_type (the policy's schedule)"
        ),
        name => schedule_kind(name, t),
    };
    let critic_schedule = match t.critic_lr_scheduler_type {
        ScheduleName::Same => policy_schedule.clone(),
        name => schedule_kind(name, t),
    };
    let uses_plateau = [&policy_schedule, &critic_schedule]
        .iter()
        .any(|k| matches!(k, ScheduleKind::Plateau(_)));
    if uses_plateau && t.plateau_metric.trim().is_empty() {
        bail!("invalid config key `training.plateau_metric`: name the monitored metric");
    }
    if uses_plateau && t.plateau_metric.starts_with("eval_") && raw.eval.eval_every_n_steps == 0 {
        bail!(
            "invalid config key `training.plateau_metric`: {:?} is an evaluation metric but eval.eval_every_n_steps = 0",
            t.plateau_metric
        );
    }
    // Refused even when the schedule in force does not read it: a value that can never be
    // right is a mistake worth naming.
    if !(t.wsd_decay_fraction > 0.0 && t.wsd_decay_fraction <= 1.0) {
        bail!(
            "invalid config key `training.wsd_decay_fraction`: {} must be in (0, 1]",
            t.wsd_decay_fraction
        );
    }
    let resolved = Resolved {
        policy_schedule,
        critic_schedule,
        eval_sampling,
        model,
        ppo,
        raw,
    };
    // Checked with the shortest horizon a run can have, so that a bad value is named before
    // any prompt is read; [`Resolved::shape`] sets the real one.
    resolved.schedules(0)?;
    check_lora(&resolved.raw)?;
    let tracking = &resolved.raw.tracking;
    if tracking.enabled && tracking.experiment_name.trim().is_empty() {
        bail!("invalid config key `tracking.experiment_name`: must not be empty");
    }
    Ok(resolved)
}

impl Resolved {
    /// The policy's and critic's validated schedules over `horizon` optimiser steps.
    fn schedules(&self, horizon: u64) -> Result<(ScheduleConfig, ScheduleConfig)> {
        let t = &self.raw.training;
        let policy = schedule(
            t,
            t.learning_rate,
            &self.policy_schedule,
            "learning_rate",
            horizon,
        );
        let critic = schedule(
            t,
            t.critic_learning_rate,
            &self.critic_schedule,
            "critic_learning_rate",
            horizon,
        );
        Ok((policy?, critic?))
    }

    /// The longest prompt in tokens (see [`prompt_limit`]).
    pub fn prompt_limit(&self) -> usize {
        self.ppo
            .max_prompt_tokens
            .expect("resolve sets the prompt limit")
    }

    /// The split of `n_prompts` prompts into training and held-out ones, the number of
    /// iterations and the schedules over them.
    pub fn shape(&self, n_prompts: usize) -> Result<RunShape> {
        let raw = &self.raw;
        let t = &raw.training;
        let held_out = (n_prompts as f64 * raw.eval.eval_split).round() as usize;
        let held_out = if raw.eval.eval_every_n_steps > 0 && raw.eval.eval_split > 0.0 {
            held_out.max(1)
        } else {
            held_out
        };
        let train_samples = n_prompts - held_out.min(n_prompts);
        let eval_samples = match raw.eval.max_eval_samples {
            0 => held_out,
            n => held_out.min(n),
        };
        if raw.eval.eval_every_n_steps > 0 && eval_samples == 0 {
            bail!(
                "invalid config key `eval.eval_split`: evaluation is on (eval.eval_every_n_steps = {}) but no prompt is held out",
                raw.eval.eval_every_n_steps
            );
        }
        if train_samples < t.batch_size {
            bail!(
                "invalid config key `training.batch_size`: {train_samples} training prompts (of {n_prompts}, after the eval split) is fewer than training.batch_size ({})",
                t.batch_size
            );
        }
        let steps_per_epoch = (train_samples / t.batch_size) as u64;
        let mut total_steps = steps_per_epoch * t.num_epochs;
        if raw.max_steps > 0 {
            total_steps = total_steps.min(raw.max_steps);
        }
        let optimizer_steps_per_iteration =
            (t.ppo_epochs * self.ppo.rollout_size() / t.mini_batch_size) as u64;
        let horizon = total_steps * optimizer_steps_per_iteration;
        let (policy_schedule, critic_schedule) = self.schedules(horizon)?;
        Ok(RunShape {
            train_samples,
            eval_samples,
            total_steps,
            steps_per_epoch,
            policy_schedule,
            critic_schedule,
        })
    }
}

/// The schedule `name` with its `[training]` parameters ("same" is resolved by the caller).
fn schedule_kind(name: ScheduleName, t: &RawTraining) -> ScheduleKind {
    match name {
        ScheduleName::Constant => ScheduleKind::Constant,
        ScheduleName::Linear => ScheduleKind::Linear,
        ScheduleName::Cosine | ScheduleName::Same => ScheduleKind::Cosine,
        ScheduleName::CosineWithRestarts => ScheduleKind::CosineWithRestarts {
            num_cycles: t.num_cycles,
        },
        ScheduleName::Wsd => ScheduleKind::Wsd {
            decay_fraction: t.wsd_decay_fraction,
        },
        ScheduleName::Plateau => ScheduleKind::Plateau(PlateauConfig {
            mode: t.plateau_mode,
            factor: t.plateau_factor,
            patience: t.plateau_patience,
            threshold: t.plateau_threshold,
            threshold_mode: ThresholdMode::Rel,
            cooldown: t.plateau_cooldown,
        }),
    }
}

/// The validated schedule from `lr` (read from `training.{lr_key}`) over `horizon` optimiser
/// steps, at least the warm-up and at least one.
fn schedule(
    t: &RawTraining,
    lr: f64,
    kind: &ScheduleKind,
    lr_key: &str,
    horizon: u64,
) -> Result<ScheduleConfig> {
    let c = ScheduleConfig {
        learning_rate: lr,
        min_lr: t.min_lr,
        warmup_steps: t.warmup_steps,
        total_steps: horizon.max(t.warmup_steps).max(1),
        kind: kind.clone(),
    };
    c.validate().map_err(|e| {
        anyhow::anyhow!(
            "invalid config key `training.{}`: {e} (the training.{lr_key} schedule)",
            schedule_error_key(&e, lr_key)
        )
    })?;
    Ok(c)
}

fn option_if_positive(v: f64) -> Option<f64> {
    (v > 0.0).then_some(v)
}

/// The longest prompt in tokens: `data.max_prompt_length`, or the model's positions less the
/// longest generation; refuses generation lengths the positions cannot hold.
pub fn prompt_limit(raw: &RawConfig) -> Result<usize> {
    let positions = model_config(raw)?.max_position_embeddings;
    let eval_new = eval_sampling(raw)?.max_new_tokens;
    for (key, n) in [
        ("generation.max_new_tokens", raw.generation.max_new_tokens),
        ("eval.max_new_tokens", eval_new),
    ] {
        if n >= positions {
            bail!(
                "invalid config key `{key}`: {n} new tokens leave no room for a prompt in the \
                 model's {positions} positions (model.max_position_embeddings)"
            );
        }
    }
    let room = positions - raw.generation.max_new_tokens.max(eval_new);
    match raw.data.max_prompt_length {
        0 => Ok(room),
        n if n > room => bail!(
            "invalid config key `data.max_prompt_length`: {n} prompt tokens + {} new tokens \
             exceed the model's {positions} positions (model.max_position_embeddings)",
            positions - room
        ),
        n => Ok(n),
    }
}

/// The policy's shape: from the Hugging Face `config.json` of `model.policy`, or the built-in
/// shape keys of `[model]`.
pub fn model_config(raw: &RawConfig) -> Result<TransformerConfig> {
    let m = &raw.model;
    if m.policy.is_empty() {
        m.shape.validate().context("invalid [model] section")?;
        return Ok(m.shape.clone());
    }
    let config = ppo_models::hf::load_config(&m.policy).with_context(|| {
        format!(
            "invalid config key `model.policy`: cannot use {:?}",
            m.policy
        )
    })?;
    config
        .validate()
        .with_context(|| format!("{}/config.json", m.policy))?;
    Ok(config)
}

/// Checks the keys that pick models and rewards (paths are opened later).
fn check_sources(raw: &RawConfig) -> Result<()> {
    let m = &raw.model;
    if m.critic.is_empty() && m.critic_init == CriticInit::Reward && m.reward.is_empty() {
        bail!("invalid config key `model.critic_init`: \"reward\" needs `model.reward`");
    }
    if (m.use_chat_template || !m.system_prompt.is_empty()) && m.policy.is_empty() {
        bail!(
            "invalid config key `model.use_chat_template`: the built-in byte tokenizer has no chat template (set `model.policy`)"
        );
    }
    if raw.reward.sources.is_empty() {
        bail!("invalid config key `reward.sources`: name at least one reward source");
    }
    for (i, source) in raw.reward.sources.iter().enumerate() {
        let w = source.weight();
        if !w.is_finite() {
            bail!("invalid config key `reward.sources[{i}].weight`: {w} is not finite");
        }
        match source {
            RawRewardSource::Model { .. } if m.reward.is_empty() => bail!(
                "invalid config key `reward.sources[{i}]`: type \"model\" needs `model.reward` (a reward model directory)"
            ),
            RawRewardSource::Remote {
                url, timeout_secs, ..
            } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!(
                        "invalid config key `reward.sources[{i}].url`: {url:?} is not an http(s) URL"
                    );
                }
                if !(*timeout_secs > 0.0 && timeout_secs.is_finite()) {
                    bail!(
                        "invalid config key `reward.sources[{i}].timeout_secs`: {timeout_secs} must be > 0"
                    );
                }
            }
            _ => {}
        }
    }
    if !(0.0..=1.0).contains(&raw.reward.partial_credit) {
        bail!(
            "invalid config key `reward.partial_credit`: {} must be in [0, 1]",
            raw.reward.partial_credit
        );
    }
    Ok(())
}

/// PPO settings of `[training]` and `[generation]`.
pub fn ppo_config(raw: &RawConfig) -> Result<PpoConfig> {
    let t = &raw.training;
    let g = &raw.generation;
    for (key, value) in [
        ("training.clip_range_low", t.clip_range_low),
        ("training.clip_range_high", t.clip_range_high),
        ("training.dual_clip", t.dual_clip),
    ] {
        if !(value >= 0.0 && value.is_finite()) {
            bail!("invalid config key `{key}`: {value} must be ≥ 0 (0 = off)");
        }
    }
    let ppo = PpoConfig {
        batch_size: t.batch_size,
        group_size: t.group_size,
        ppo_epochs: t.ppo_epochs,
        mini_batch_size: t.mini_batch_size,
        gradient_accumulation_steps: t.gradient_accumulation_steps,
        clip_range: if t.clip_range_low > 0.0 {
            t.clip_range_low
        } else {
            t.clip_range
        },
        clip_range_value: t.clip_range_value,
        entropy_coef: t.entropy_coef,
        value_loss_coef: t.value_loss_coef,
        max_grad_norm: t.max_grad_norm,
        gamma: t.gamma,
        lam: t.lam,
        whiten_advantages: t.whiten_advantages,
        kl: KlConfig {
            estimator: t.kl_estimator,
            coef: t.kl_coef,
            target: option_if_positive(t.kl_target),
            horizon: t.kl_horizon,
            in_loss: t.kl_in_loss,
        },
        sampling: SamplingConfig {
            temperature: g.temperature,
            top_k: g.top_k,
            top_p: g.top_p,
            max_new_tokens: g.max_new_tokens,
            greedy: false,
            use_cache: true,
            stop: g.stop.clone(),
        },
        forward_batch_size: t.forward_batch_size,
        gradient_checkpointing: t.gradient_checkpointing,
        max_consecutive_skips: t.max_consecutive_skips,
        missing_eos_penalty: option_if_positive(t.missing_eos_penalty),
        score_clip: option_if_positive(t.score_clip),
        normalize_score: t.normalize_score,
        policy_optimizer: OptimizerConfig {
            beta1: t.adam_beta1,
            beta2: t.adam_beta2,
            eps: t.adam_eps,
            weight_decay: t.weight_decay,
        },
        critic_optimizer: OptimizerConfig {
            beta1: t.adam_beta1,
            beta2: t.adam_beta2,
            eps: t.adam_eps,
            weight_decay: t.weight_decay,
        },
        max_prompt_tokens: Some(prompt_limit(raw)?),
        algorithm: AlgorithmConfig {
            advantage_estimator: raw.algorithm.advantage_estimator,
            loss_aggregation: raw.algorithm.loss_aggregation,
            clip_range_high: Some(if t.clip_range_high > 0.0 {
                t.clip_range_high
            } else {
                t.clip_range
            }),
            dual_clip: option_if_positive(t.dual_clip),
            log_ratio_clamp: raw.algorithm.log_ratio_clamp,
            mask_truncated: raw.algorithm.mask_truncated,
            overlong_buffer_len: raw.algorithm.overlong_buffer_len,
            overlong_penalty_factor: raw.algorithm.overlong_penalty_factor,
            dynamic_sampling: raw.algorithm.dynamic_sampling,
            max_sampling_rounds: raw.algorithm.max_sampling_rounds,
        },
    };
    ppo.validate().map_err(|e| match e {
        CoreError::InvalidConfig { field, reason } => {
            anyhow::anyhow!("invalid config key `{}`: {reason}", toml_key(field))
        }
        other => other.into(),
    })?;
    Ok(ppo)
}

/// The TOML key a [`PpoConfig`] field is read from. Exhaustive: a new field needs its key.
pub fn toml_key(field: PpoField) -> &'static str {
    use PpoField as F;
    match field {
        F::BatchSize => "training.batch_size",
        F::GroupSize => "training.group_size",
        F::PpoEpochs => "training.ppo_epochs",
        F::MiniBatchSize => "training.mini_batch_size",
        F::GradientAccumulationSteps => "training.gradient_accumulation_steps",
        F::ForwardBatchSize => "training.forward_batch_size",
        F::MaxNewTokens => "generation.max_new_tokens",
        F::Temperature => "generation.temperature",
        F::TopP => "generation.top_p",
        F::Gamma => "training.gamma",
        F::Lam => "training.lam",
        F::ClipRange => "training.clip_range",
        F::ClipRangeValue => "training.clip_range_value",
        F::MaxGradNorm => "training.max_grad_norm",
        F::EntropyCoef => "training.entropy_coef",
        F::ValueLossCoef => "training.value_loss_coef",
        F::KlCoef => "training.kl_coef",
        F::KlTarget => "training.kl_target",
        F::KlHorizon => "training.kl_horizon",
        F::ScoreClip => "training.score_clip",
        F::MissingEosPenalty => "training.missing_eos_penalty",
        F::MaxPromptTokens => "data.max_prompt_length",
        F::ClipRangeHigh => "training.clip_range_high",
        F::DualClip => "training.dual_clip",
        F::LogRatioClamp => "algorithm.log_ratio_clamp",
        F::OverlongBufferLen => "algorithm.overlong_buffer_len",
        F::OverlongPenaltyFactor => "algorithm.overlong_penalty_factor",
        F::MaxSamplingRounds => "algorithm.max_sampling_rounds",
        F::MaxConsecutiveSkips => "training.max_consecutive_skips",
        // One key sets both models' AdamW.
        F::Beta1(_) => "training.adam_beta1",
        F::Beta2(_) => "training.adam_beta2",
        F::Eps(_) => "training.adam_eps",
        F::WeightDecay(_) => "training.weight_decay",
    }
}

/// Sampling of evaluation passes (`[eval]`).
pub fn eval_sampling(raw: &RawConfig) -> Result<SamplingConfig> {
    let g = &raw.generation;
    let e = &raw.eval;
    let eval_sampling = SamplingConfig {
        temperature: e.temperature,
        top_k: e.top_k,
        top_p: e.top_p,
        max_new_tokens: if e.max_new_tokens == 0 {
            g.max_new_tokens
        } else {
            e.max_new_tokens
        },
        greedy: e.greedy,
        use_cache: true,
        stop: g.stop.clone(),
    };
    let temperature_ok = e.temperature > 0.0 && e.temperature.is_finite();
    if !e.greedy && !temperature_ok {
        bail!(
            "invalid config key `eval.temperature`: {} must be > 0",
            e.temperature
        );
    }
    if !(e.top_p > 0.0 && e.top_p <= 1.0) {
        bail!(
            "invalid config key `eval.top_p`: {} must be in (0, 1]",
            e.top_p
        );
    }
    if !(e.early_stopping_threshold >= 0.0 && e.early_stopping_threshold.is_finite()) {
        bail!(
            "invalid config key `eval.early_stopping_threshold`: {} must be ≥ 0",
            e.early_stopping_threshold
        );
    }
    Ok(eval_sampling)
}

/// The `[training]` key a schedule error is about; `lr_key` is the learning rate the schedule
/// was built from. Exhaustive: a new error must say which key it blames.
fn schedule_error_key<'a>(error: &SchedError, lr_key: &'a str) -> &'a str {
    match error {
        SchedError::InvalidLearningRate(_) | SchedError::InvalidState { .. } => lr_key,
        SchedError::InvalidMinLr(_) | SchedError::MinLrAboveLearningRate { .. } => "min_lr",
        SchedError::WarmupExceedsTotal { .. } => "warmup_steps",
        SchedError::ZeroTotalSteps { .. } => "num_epochs",
        SchedError::ZeroCycles => "num_cycles",
        SchedError::InvalidDecayFraction(_) => "wsd_decay_fraction",
        SchedError::InvalidFactor(_) => "plateau_factor",
        SchedError::InvalidThreshold(_) => "plateau_threshold",
    }
}

/// `[lora]`, when on: rank, alpha and targets, and no dropout.
fn check_lora(raw: &RawConfig) -> Result<()> {
    let Some(lora) = raw.lora.config() else {
        return Ok(());
    };
    if raw.lora.dropout != 0.0 {
        bail!(
            "invalid config key `lora.dropout`: {} is not supported; only 0 (ppo-rs's adapters \
             have no dropout: the rollout's and the update's log-probabilities must agree)",
            raw.lora.dropout
        );
    }
    lora.validate("lora")
        .map_err(|e| anyhow::anyhow!("invalid config key `{}`: {}", e.key, e.message))?;
    Ok(())
}
