//! One PPO iteration: [`rollout`](PpoTrainer::rollout) (generate → score → inference passes
//! → KL-shaped rewards → GAE, in `rollout.rs`), then [`update`](PpoTrainer::update)
//! (`ppo_epochs` of clipped updates over shuffled minibatches with gradient accumulation, in
//! `update.rs`). This file holds the trainer's state: construction, accessors, resume.

mod rollout;
mod update;

use std::time::Instant;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, GradientCheckpointingStrategy, Tensor};
use ppo_models::{CausalLm, Rng, RngState, SamplingConfig, Tokenizer, ValueModel};
use ppo_sched::{Scheduler, SchedulerState};
use serde::{Deserialize, Serialize};

use crate::evaluate::{EvalOutput, EvalSettings};
use crate::{
    AdamW, CoreError, KlController, Metrics, OptimizerTensors, PpoConfig, PromptSample, Reward,
    RunningMoments,
};

pub use rollout::Rollout;
pub(crate) use rollout::{checked_scores, encode, gather, reward_inputs};
pub use update::UpdateStats;

/// Sets the gradient-checkpointing strategy on every parameter (operations inherit it).
struct Checkpointing(GradientCheckpointingStrategy);

impl ModuleMapper for Checkpointing {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let strategy = self.0;
        param.map(|t| t.with_gradient_checkpointing_strategy(strategy))
    }
}

/// Policy and critic (in training mode) with gradient checkpointing on or off.
fn checkpointing(
    policy: CausalLm,
    critic: Option<ValueModel>,
    on: bool,
) -> (CausalLm, Option<ValueModel>) {
    if !on {
        return (policy, critic);
    }
    let mut mapper = Checkpointing(GradientCheckpointingStrategy::Balanced);
    (
        policy.map(&mut mapper),
        critic.map(|critic| critic.map(&mut mapper)),
    )
}

/// A critic is given exactly when the estimator learns values.
fn check_critic(config: &PpoConfig, has_critic: bool) -> Result<(), CoreError> {
    let estimator = config.algorithm.advantage_estimator;
    if estimator.needs_critic() == has_critic {
        return Ok(());
    }
    Err(CoreError::CriticMismatch {
        estimator: estimator.name(),
        given: has_critic,
    })
}

/// Everything of a trainer that is not a tensor: with the weights and the optimiser records
/// it restores a trainer exactly ([`PpoTrainer::restore`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// KL coefficient controller.
    pub kl: KlController,
    /// Running score moments (score normalisation).
    pub score_moments: RunningMoments,
    /// The trainer's random stream (sampling, minibatch shuffles).
    pub rng: RngState,
    /// Policy learning-rate schedule.
    pub policy_schedule: SchedulerState,
    /// Critic learning-rate schedule (kept, unused, without a critic).
    pub critic_schedule: SchedulerState,
    /// Optimiser steps skipped in a row so far (NaN or infinite loss or gradient).
    #[serde(default)]
    pub consecutive_skips: usize,
}

/// Policy, reference and (for GAE) critic with their optimisers, schedules and controllers.
pub struct PpoTrainer {
    config: PpoConfig,
    policy: CausalLm,
    reference: CausalLm,
    critic: Option<ValueModel>,
    policy_optim: AdamW,
    critic_optim: AdamW,
    policy_schedule: Scheduler,
    critic_schedule: Scheduler,
    kl: KlController,
    score_moments: RunningMoments,
    rng: Rng,
    consecutive_skips: usize,
    /// The policy's device (the reference's may differ: [`PpoTrainer::map_reference`]).
    device: Device,
    /// The critic's device (the policy's without a critic).
    critic_device: Device,
}

impl PpoTrainer {
    /// A trainer whose reference is a frozen copy of `policy` as given. `critic` must be
    /// given exactly when the estimator needs one ([`PpoConfig::has_critic`]: GAE).
    pub fn new(
        config: PpoConfig,
        policy: CausalLm,
        critic: Option<ValueModel>,
        policy_schedule: Scheduler,
        critic_schedule: Scheduler,
        rng: Rng,
    ) -> Result<Self, CoreError> {
        config.validate()?;
        check_critic(&config, critic.is_some())?;
        let device = policy.backbone().device();
        let critic_device = critic
            .as_ref()
            .map_or_else(|| device.clone(), |c| c.backbone().device());
        let (policy, critic) = (policy.train(), critic.map(Module::train));
        let (policy, critic) = checkpointing(policy, critic, config.gradient_checkpointing);
        let kl = match config.kl.target {
            Some(target) => KlController::Adaptive {
                value: config.kl.coef,
                target,
                horizon: config.kl.horizon,
            },
            None => KlController::Fixed {
                value: config.kl.coef,
            },
        };
        Ok(Self {
            policy_optim: AdamW::new(&config.policy_optimizer),
            critic_optim: AdamW::new(&config.critic_optimizer),
            reference: policy.valid(),
            policy,
            critic,
            policy_schedule,
            critic_schedule,
            kl,
            score_moments: RunningMoments::default(),
            rng,
            consecutive_skips: 0,
            device,
            critic_device,
            config,
        })
    }

    /// Replaces the frozen reference by `map(reference)`: another device (placement by role,
    /// e.g. `|r| r.to_device(&device)`: only token ids and masks go to it, only per-token
    /// log-probs come back) or another storage dtype. By default it is the policy as given to
    /// [`new`](Self::new), on the policy's device.
    pub fn map_reference(&mut self, map: impl FnOnce(CausalLm) -> CausalLm) {
        let reference = std::mem::replace(&mut self.reference, self.policy.valid());
        self.reference = map(reference);
    }

    /// Replaces the trained models by `policy(model)` and `critic(model)` (taken without
    /// autodiff; e.g. LoRA adapters: `|p| p.with_lora(&config, &mut rng)`), keeping the
    /// reference as it is. Call it before the first step: the optimiser states restart. A
    /// reference taken from the unadapted policy shares the adapted model's frozen weights.
    pub fn adapt(
        &mut self,
        policy: impl FnOnce(CausalLm) -> CausalLm,
        critic: impl FnOnce(ValueModel) -> ValueModel,
    ) {
        let adapted_policy = policy(self.policy.valid());
        let adapted_critic = self.critic.as_ref().map(|c| critic(c.valid()));
        self.policy_optim = AdamW::new(&self.config.policy_optimizer);
        self.critic_optim = AdamW::new(&self.config.critic_optimizer);
        self.set_models(adapted_policy, adapted_critic);
    }

    /// The frozen reference policy.
    pub fn reference(&self) -> &CausalLm {
        &self.reference
    }

    /// The policy's device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The critic's device (the policy's when there is no critic).
    pub fn critic_device(&self) -> &Device {
        &self.critic_device
    }

    /// The configuration in force.
    pub fn config(&self) -> &PpoConfig {
        &self.config
    }

    /// The policy being trained.
    pub fn policy(&self) -> &CausalLm {
        &self.policy
    }

    /// The critic being trained (`None` for the critic-free estimators).
    pub fn critic(&self) -> Option<&ValueModel> {
        self.critic.as_ref()
    }

    /// The KL coefficient controller.
    pub fn kl_controller(&self) -> &KlController {
        &self.kl
    }

    /// The policy's and critic's learning rates for the next optimiser step.
    pub fn learning_rates(&self) -> (f64, f64) {
        (self.policy_schedule.lr(), self.critic_schedule.lr())
    }

    /// Feeds an evaluation metric to plateau schedules (no-op for the others). Returns
    /// whether either learning rate was reduced.
    pub fn observe_eval(&mut self, metric: f64) -> bool {
        let policy = self.policy_schedule.observe(metric);
        let critic = self.critic_schedule.observe(metric);
        policy || critic
    }

    /// The non-tensor state (see [`TrainerState`]).
    pub fn state(&self) -> TrainerState {
        TrainerState {
            kl: self.kl.clone(),
            score_moments: self.score_moments.clone(),
            rng: self.rng.state(),
            policy_schedule: self.policy_schedule.state(),
            critic_schedule: self.critic_schedule.state(),
            consecutive_skips: self.consecutive_skips,
        }
    }

    /// The policy's and (with a critic) the critic's AdamW states (moments are tensor handles,
    /// not copies: a checkpoint writes them one at a time).
    pub fn optimizers(&self) -> (&AdamW, Option<&AdamW>) {
        let critic = self.critic.is_some().then_some(&self.critic_optim);
        (&self.policy_optim, critic)
    }

    /// Puts the trainer back where [`state`](Self::state), [`optimizers`](Self::optimizers)
    /// and the weights of `policy`/`critic` were taken: the next step is bit-identical to the
    /// one the saved trainer would have taken. The reference model is kept as constructed.
    /// The optimiser states are `(named moments, step counts)` as
    /// [`AdamW::named_tensors`] gives them.
    pub fn restore(
        &mut self,
        state: TrainerState,
        policy: CausalLm,
        critic: Option<(ValueModel, OptimizerTensors)>,
        policy_optim: OptimizerTensors,
    ) -> Result<(), CoreError> {
        let config = &self.config;
        check_critic(config, critic.is_some())?;
        self.policy_optim =
            AdamW::from_named_tensors(&config.policy_optimizer, &policy, policy_optim, "policy")?;
        let critic = match critic {
            Some((critic, tensors)) => {
                self.critic_optim = AdamW::from_named_tensors(
                    &config.critic_optimizer,
                    &critic,
                    tensors,
                    "critic",
                )?;
                Some(critic)
            }
            None => None,
        };
        self.policy_schedule =
            Scheduler::from_state(self.policy_schedule.config().clone(), state.policy_schedule)?;
        self.critic_schedule =
            Scheduler::from_state(self.critic_schedule.config().clone(), state.critic_schedule)?;
        self.kl = state.kl;
        self.score_moments = state.score_moments;
        self.rng = Rng::from_state(state.rng);
        self.consecutive_skips = state.consecutive_skips;
        self.set_models(policy, critic);
        Ok(())
    }

    /// Replaces the policy and critic weights (e.g. with a checkpoint's), keeping the reference,
    /// the optimisers and every other state as they are.
    pub fn load_weights(
        &mut self,
        policy: CausalLm,
        critic: Option<ValueModel>,
    ) -> Result<(), CoreError> {
        check_critic(&self.config, critic.is_some())?;
        self.set_models(policy, critic);
        Ok(())
    }

    fn set_models(&mut self, policy: CausalLm, critic: Option<ValueModel>) {
        let policy = policy.train().fork(&self.device);
        let critic = critic.map(|critic| critic.train().fork(&self.critic_device));
        (self.policy, self.critic) =
            checkpointing(policy, critic, self.config.gradient_checkpointing);
    }

    /// Evaluates the current policy on `samples` against the frozen reference (see
    /// [`crate::evaluate`]); training state is untouched.
    pub fn evaluate(
        &self,
        samples: &[PromptSample],
        tokenizer: &dyn Tokenizer,
        reward: &mut dyn Reward,
        sampling: &SamplingConfig,
        rng: &mut Rng,
    ) -> Result<EvalOutput, CoreError> {
        crate::evaluate::evaluate(
            &ppo_models::merged(self.policy.valid()),
            &self.reference,
            &EvalSettings::from(&self.config),
            samples,
            tokenizer,
            reward,
            sampling,
            rng,
        )
    }

    /// One full iteration on `samples`; returns its metrics.
    pub fn step(
        &mut self,
        samples: &[PromptSample],
        tokenizer: &dyn Tokenizer,
        reward: &mut dyn Reward,
    ) -> Result<(Rollout, Metrics), CoreError> {
        self.step_with(samples, &mut || None, tokenizer, reward)
    }

    /// One full iteration on `samples`, and under dynamic sampling on the further batches
    /// `more` gives (see [`rollout_with`](Self::rollout_with)); returns its metrics.
    pub fn step_with(
        &mut self,
        samples: &[PromptSample],
        more: &mut dyn FnMut() -> Option<Vec<PromptSample>>,
        tokenizer: &dyn Tokenizer,
        reward: &mut dyn Reward,
    ) -> Result<(Rollout, Metrics), CoreError> {
        let started = Instant::now();
        let rollout = self.rollout_with(samples, more, tokenizer, reward)?;
        let update_started = Instant::now();
        let stats = self.update(&rollout)?;
        let time_update = update_started.elapsed().as_secs_f64();
        let metrics = self.metrics(
            &rollout,
            &stats,
            time_update,
            started.elapsed().as_secs_f64(),
        );
        let kl_per_sequence = metrics.get("kl_divergence").unwrap_or(f64::NAN);
        self.kl
            .update(kl_per_sequence, rollout.generation.batch_size);
        Ok((rollout, metrics))
    }
}
