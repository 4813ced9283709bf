//! One PPO iteration: rollout → score → inference passes → KL-shaped rewards → GAE →
//! `ppo_epochs` of clipped updates over shuffled minibatches with gradient accumulation.

use std::time::Instant;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, GradientCheckpointingStrategy, Tensor, TensorData};
use ppo_models::{
    CausalLm, Generation, Rng, RngState, SamplingConfig, Tokenizer, ValueModel, generate_chunked,
    response_logprobs, to_f32_vec,
};
use ppo_sched::{Scheduler, SchedulerState};
use serde::{Deserialize, Serialize};

use crate::advantages::{explained_variance, gae, masked_mean_var, whiten};
use crate::evaluate::{EvalOutput, EvalSettings};
use crate::grad::clip_grad_norm;
use crate::loss::{TokenStats, policy_loss, value_loss};
use crate::{
    AdamW, CoreError, KlController, KlEstimator, Metrics, OptimizerTensors, PpoConfig,
    PromptSample, Reward, RewardInput, RunningMoments,
};

/// A scored rollout batch with everything the update needs, `[rows, R]` arrays row-major.
#[derive(Clone, Debug)]
pub struct Rollout {
    /// Prompts, responses and masks.
    pub generation: Generation,
    /// Prompt sample of each row.
    pub samples: Vec<PromptSample>,
    /// Decoded responses.
    pub responses: Vec<String>,
    /// Raw scores from the reward source.
    pub scores: Vec<f64>,
    /// Scores after the missing-EOS penalty, clipping and normalisation.
    pub shaped_scores: Vec<f64>,
    /// Policy log-probs before the update.
    pub old_logprobs: Vec<f32>,
    /// Reference log-probs.
    pub ref_logprobs: Vec<f32>,
    /// Policy entropy per token before the update.
    pub entropy: Vec<f32>,
    /// Critic values before the update.
    pub values: Vec<f32>,
    /// Per-token KL estimate (policy vs reference).
    pub kl: Vec<f32>,
    /// Per-token rewards.
    pub rewards: Vec<f32>,
    /// Advantages as used by the loss (whitened when configured).
    pub advantages: Vec<f32>,
    /// Mean advantage before whitening.
    pub raw_advantage_mean: f64,
    /// GAE returns.
    pub returns: Vec<f32>,
    /// β used for this batch.
    pub kl_coef: f64,
    /// Seconds spent sampling.
    pub time_generate: f64,
    /// Seconds spent scoring (reward + inference passes).
    pub time_score: f64,
    /// Row order of the first PPO epoch, drawn at rollout time: the inference passes run on
    /// exactly the first epoch's micro-batches, so the first minibatch sees a ratio of 1
    /// bit for bit.
    pub first_epoch_order: Vec<usize>,
    /// Prompts of the batch cut to `max_prompt_tokens` (their last tokens kept).
    pub prompts_truncated: usize,
}

/// Result of one update over a rollout.
#[derive(Clone, Debug, Default)]
pub struct UpdateStats {
    /// Token statistics over all epochs and minibatches.
    pub tokens: TokenStats,
    /// Token statistics of each minibatch, in order.
    pub minibatches: Vec<TokenStats>,
    /// Mean global gradient norm of the policy before clipping.
    pub grad_norm_policy: f64,
    /// Mean global gradient norm of the critic before clipping.
    pub grad_norm_critic: f64,
    /// Policy learning rate of the first optimiser step.
    pub learning_rate: f64,
    /// Critic learning rate of the first optimiser step.
    pub critic_learning_rate: f64,
    /// Σ β·KL over tokens (only when KL is in the loss).
    pub kl_loss: f64,
}

fn tensor2(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

/// Sets the gradient-checkpointing strategy on every parameter (operations inherit it).
struct Checkpointing(GradientCheckpointingStrategy);

impl ModuleMapper for Checkpointing {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let strategy = self.0;
        param.map(|t| t.with_gradient_checkpointing_strategy(strategy))
    }
}

/// Policy and critic (in training mode) with gradient checkpointing on or off.
fn checkpointing(policy: CausalLm, critic: ValueModel, on: bool) -> (CausalLm, ValueModel) {
    if !on {
        return (policy, critic);
    }
    let mut mapper = Checkpointing(GradientCheckpointingStrategy::Balanced);
    (policy.map(&mut mapper), critic.map(&mut mapper))
}

/// What the reward source sees of each row.
pub(crate) fn reward_inputs<'a>(
    samples: &'a [PromptSample],
    responses: &'a [String],
    finished: &[bool],
) -> Vec<RewardInput<'a>> {
    samples
        .iter()
        .zip(responses)
        .zip(finished)
        .map(|((sample, response), &finished)| RewardInput {
            prompt: &sample.prompt,
            response,
            reference: sample.reference.as_deref(),
            finished,
        })
        .collect()
}

/// Scores from `reward`, checked: one finite score per input.
pub(crate) fn checked_scores(
    reward: &mut dyn Reward,
    inputs: &[RewardInput<'_>],
) -> Result<Vec<f64>, CoreError> {
    let scores = reward.score(inputs)?;
    if scores.len() != inputs.len() || scores.iter().any(|s| !s.is_finite()) {
        return Err(CoreError::BadScores {
            name: reward.name().into(),
            got: scores.len(),
            expected: inputs.len(),
        });
    }
    Ok(scores)
}

/// Prompt token ids as the tokenizer renders them (BOS, chat template), keeping the last
/// `limit` tokens of a longer prompt. Also says whether it was cut.
pub(crate) fn encode(
    tokenizer: &dyn Tokenizer,
    sample: &PromptSample,
    limit: Option<usize>,
) -> (Vec<u32>, bool) {
    let mut ids = tokenizer.encode_prompt(&sample.prompt);
    match limit {
        Some(limit) if ids.len() > limit => {
            ids.drain(..ids.len() - limit);
            (ids, true)
        }
        _ => (ids, false),
    }
}

/// Gathers `rows` of a row-major array with `width` columns.
pub(crate) fn gather<T: Copy>(data: &[T], width: usize, rows: &[usize]) -> Vec<T> {
    rows.iter()
        .flat_map(|&r| data[r * width..(r + 1) * width].iter().copied())
        .collect()
}

/// Values `[rows, R]` for response tokens from values `[rows, P + R]`: the estimate after
/// reading position `P + i − 1`, i.e. before emitting response token `i`.
fn response_values(values: Tensor<2>, prompt_len: usize) -> Tensor<2> {
    let [b, l] = values.dims();
    values.slice([0..b, prompt_len - 1..l - 1])
}

/// Scores as the rewards use them, in `PPO_DETAILS` order: clipped to ±`clip`, normalised by
/// the running `moments` (updated with this batch), then `missing_eos_penalty` subtracted from
/// rows that did not finish — last, so neither the clip nor the normalisation can erase it.
fn shape_scores(
    scores: &[f64],
    finished: &[bool],
    clip: Option<f64>,
    moments: Option<&mut RunningMoments>,
    missing_eos_penalty: Option<f64>,
) -> Vec<f64> {
    let mut shaped: Vec<f64> = scores
        .iter()
        .map(|&s| clip.map_or(s, |c| s.clamp(-c, c)))
        .collect();
    if let Some(moments) = moments {
        moments.update(&shaped);
        let (mean, std) = (moments.mean, moments.std().max(1e-8));
        shaped.iter_mut().for_each(|s| *s = (*s - mean) / std);
    }
    if let Some(p) = missing_eos_penalty {
        for (s, &done) in shaped.iter_mut().zip(finished) {
            if !done {
                *s -= p;
            }
        }
    }
    shaped
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
    /// Critic learning-rate schedule.
    pub critic_schedule: SchedulerState,
}

/// Policy, reference and critic with their optimisers, schedules and controllers.
pub struct PpoTrainer {
    config: PpoConfig,
    policy: CausalLm,
    reference: CausalLm,
    critic: ValueModel,
    policy_optim: AdamW,
    critic_optim: AdamW,
    policy_schedule: Scheduler,
    critic_schedule: Scheduler,
    kl: KlController,
    score_moments: RunningMoments,
    rng: Rng,
    device: Device,
}

impl PpoTrainer {
    /// A trainer whose reference is a frozen copy of `policy` as given.
    pub fn new(
        config: PpoConfig,
        policy: CausalLm,
        critic: ValueModel,
        policy_schedule: Scheduler,
        critic_schedule: Scheduler,
        rng: Rng,
    ) -> Result<Self, CoreError> {
        config.validate()?;
        let device = policy.backbone().device();
        let (policy, critic) = (policy.train(), critic.train());
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
            device,
            config,
        })
    }

    /// The device the trained models live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The configuration in force.
    pub fn config(&self) -> &PpoConfig {
        &self.config
    }

    /// The policy being trained.
    pub fn policy(&self) -> &CausalLm {
        &self.policy
    }

    /// The critic being trained.
    pub fn critic(&self) -> &ValueModel {
        &self.critic
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
        }
    }

    /// The policy's and critic's AdamW states (moments are tensor handles, not copies: a
    /// checkpoint writes them one at a time).
    pub fn optimizers(&self) -> (&AdamW, &AdamW) {
        (&self.policy_optim, &self.critic_optim)
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
        critic: ValueModel,
        policy_optim: OptimizerTensors,
        critic_optim: OptimizerTensors,
    ) -> Result<(), CoreError> {
        let config = &self.config;
        self.policy_optim =
            AdamW::from_named_tensors(&config.policy_optimizer, &policy, policy_optim, "policy")?;
        self.critic_optim =
            AdamW::from_named_tensors(&config.critic_optimizer, &critic, critic_optim, "critic")?;
        self.policy_schedule =
            Scheduler::from_state(self.policy_schedule.config().clone(), state.policy_schedule)?;
        self.critic_schedule =
            Scheduler::from_state(self.critic_schedule.config().clone(), state.critic_schedule)?;
        self.kl = state.kl;
        self.score_moments = state.score_moments;
        self.rng = Rng::from_state(state.rng);
        let device = &self.device;
        let (policy, critic) = (policy.train().fork(device), critic.train().fork(device));
        (self.policy, self.critic) =
            checkpointing(policy, critic, self.config.gradient_checkpointing);
        Ok(())
    }

    /// Replaces the policy and critic weights (e.g. with a checkpoint's), keeping the reference,
    /// the optimisers and every other state as they are.
    pub fn load_weights(&mut self, policy: CausalLm, critic: ValueModel) {
        let device = &self.device;
        let (policy, critic) = (policy.train().fork(device), critic.train().fork(device));
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
            &self.policy.valid(),
            &self.reference,
            &EvalSettings::from(&self.config),
            samples,
            tokenizer,
            reward,
            sampling,
            rng,
        )
    }

    /// Samples responses for `samples` (each `group_size` times), scores them and prepares
    /// rewards, advantages and returns.
    pub fn rollout(
        &mut self,
        samples: &[PromptSample],
        tokenizer: &dyn Tokenizer,
        reward: &mut dyn Reward,
    ) -> Result<Rollout, CoreError> {
        if samples.is_empty() {
            return Err(CoreError::EmptyBatch);
        }
        let cfg = &self.config;
        let rows: Vec<PromptSample> = samples
            .iter()
            .flat_map(|s| std::iter::repeat_n(s.clone(), cfg.group_size))
            .collect();
        let (prompts, truncated): (Vec<Vec<u32>>, Vec<bool>) = rows
            .iter()
            .map(|s| encode(tokenizer, s, cfg.max_prompt_tokens))
            .unzip();
        let prompts_truncated = truncated.iter().filter(|&&t| t).count() / cfg.group_size;

        let started = Instant::now();
        let policy = self.policy.valid();
        let generation = generate_chunked(
            &policy,
            &prompts,
            &cfg.sampling,
            tokenizer.eos_id(),
            tokenizer.pad_id(),
            &mut self.rng,
            cfg.forward_batch_size,
        );
        let time_generate = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let n = generation.batch_size;
        let responses: Vec<String> = (0..n)
            .map(|r| tokenizer.decode(&generation.response(r)))
            .collect();
        let inputs = reward_inputs(&rows, &responses, &generation.finished);
        let scores = checked_scores(reward, &inputs)?;
        let shaped_scores = self.shape_scores(&scores, &generation.finished);

        let mut first_epoch_order: Vec<usize> = (0..n).collect();
        self.rng.shuffle(&mut first_epoch_order);
        let (old_logprobs, entropy, ref_logprobs, values) =
            self.inference_passes(&policy, &generation, &first_epoch_order);
        let (r_len, mask) = (generation.response_len, &generation.response_mask);
        let estimator: KlEstimator = self.config.kl.estimator;
        let kl: Vec<f32> = (0..mask.len())
            .map(|i| {
                if mask[i] {
                    estimator.estimate(f64::from(old_logprobs[i]) - f64::from(ref_logprobs[i]))
                        as f32
                } else {
                    0.0
                }
            })
            .collect();
        let beta = self.kl.value();
        let mut rewards: Vec<f32> = if self.config.kl.in_loss {
            vec![0.0; kl.len()]
        } else {
            kl.iter().map(|k| (-beta * f64::from(*k)) as f32).collect()
        };
        for (row, score) in shaped_scores.iter().enumerate() {
            let last = generation.response_length(row) - 1; // max_new_tokens ≥ 1
            rewards[row * r_len + last] += *score as f32;
        }
        let (raw_advantages, returns) = gae(
            &rewards,
            &values,
            mask,
            r_len,
            self.config.gamma,
            self.config.lam,
        );
        let (raw_advantage_mean, _) = masked_mean_var(&raw_advantages, mask);
        let advantages = if self.config.whiten_advantages {
            whiten(&raw_advantages, mask)
        } else {
            raw_advantages
        };
        let time_score = started.elapsed().as_secs_f64();

        Ok(Rollout {
            generation,
            samples: rows,
            responses,
            scores,
            shaped_scores,
            old_logprobs,
            ref_logprobs,
            entropy,
            values,
            kl,
            rewards,
            advantages,
            raw_advantage_mean,
            returns,
            kl_coef: beta,
            time_generate,
            time_score,
            first_epoch_order,
            prompts_truncated,
        })
    }

    fn shape_scores(&mut self, scores: &[f64], finished: &[bool]) -> Vec<f64> {
        let cfg = &self.config;
        let moments = cfg.normalize_score.then_some(&mut self.score_moments);
        shape_scores(
            scores,
            finished,
            cfg.score_clip,
            moments,
            cfg.missing_eos_penalty,
        )
    }

    /// Old policy log-probs and entropy, reference log-probs and critic values, all
    /// `[rows, R]`, without autodiff, one first-epoch micro-batch (in `order`) at a time.
    fn inference_passes(
        &self,
        policy: &CausalLm,
        g: &Generation,
        order: &[usize],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let critic = self.critic.valid();
        let temperature = self.config.sampling.logprob_temperature();
        let (l, p) = (g.seq_len(), g.prompt_len);
        let response_ids = g.response_ids();
        let r = g.response_len;
        let size = g.batch_size * r;
        let (mut old, mut ent, mut refs, mut vals) = (
            vec![0.0; size],
            vec![0.0; size],
            vec![0.0; size],
            vec![0.0; size],
        );
        let scatter = |dst: &mut Vec<f32>, rows: &[usize], src: Vec<f32>| {
            for (k, &row) in rows.iter().enumerate() {
                dst[row * r..(row + 1) * r].copy_from_slice(&src[k * r..(k + 1) * r]);
            }
        };
        let micro_size = self.config.mini_batch_size / self.config.gradient_accumulation_steps;
        for chunk in order.chunks(micro_size) {
            let ids = gather(&g.sequences, l, chunk);
            let mask = gather(&g.attention_mask, l, chunk);
            let resp = gather(&response_ids, g.response_len, chunk);
            let n = chunk.len();
            let (lp, h) =
                response_logprobs(policy.forward(&ids, &mask, n, None), &resp, p, temperature);
            scatter(&mut old, chunk, to_f32_vec(lp));
            scatter(&mut ent, chunk, to_f32_vec(h));
            let (lp_ref, _) = response_logprobs(
                self.reference.forward(&ids, &mask, n, None),
                &resp,
                p,
                temperature,
            );
            scatter(&mut refs, chunk, to_f32_vec(lp_ref));
            scatter(
                &mut vals,
                chunk,
                to_f32_vec(response_values(critic.forward(&ids, &mask, n), p)),
            );
        }
        for (i, &m) in g.response_mask.iter().enumerate() {
            if !m {
                old[i] = 0.0;
                ent[i] = 0.0;
                refs[i] = 0.0;
                vals[i] = 0.0;
            }
        }
        (old, ent, refs, vals)
    }

    /// `ppo_epochs` passes of clipped PPO updates over `rollout`.
    pub fn update(&mut self, rollout: &Rollout) -> UpdateStats {
        let g = &rollout.generation;
        let cfg = self.config.clone();
        let (l, p, r) = (g.seq_len(), g.prompt_len, g.response_len);
        let response_ids = g.response_ids();
        let mask_f: Vec<f32> = g
            .response_mask
            .iter()
            .map(|&m| f32::from(u8::from(m)))
            .collect();
        let temperature = cfg.sampling.logprob_temperature();
        let micro_size = cfg.mini_batch_size / cfg.gradient_accumulation_steps;
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
                let tokens: usize = minibatch.iter().map(|&row| g.response_length(row)).sum();
                let scale = 1.0 / tokens as f64;
                let mut acc_policy = GradientsAccumulator::<CausalLm>::new();
                let mut acc_critic = GradientsAccumulator::<ValueModel>::new();
                let mut mb_stats = TokenStats {
                    ratio_min: f64::INFINITY,
                    ratio_max: f64::NEG_INFINITY,
                    ..Default::default()
                };
                for micro in minibatch.chunks(micro_size) {
                    let n = micro.len();
                    let ids = gather(&g.sequences, l, micro);
                    let attn = gather(&g.attention_mask, l, micro);
                    let resp = gather(&response_ids, r, micro);
                    let d = &self.device;
                    let logits = self.policy.forward(&ids, &attn, n, None);
                    let (logp, entropy) = response_logprobs(logits, &resp, p, temperature);
                    let values = response_values(self.critic.forward(&ids, &attn, n), p);
                    let old_logp = gather(&rollout.old_logprobs, r, micro);
                    let adv = gather(&rollout.advantages, r, micro);
                    let old_v = gather(&rollout.values, r, micro);
                    let ret = gather(&rollout.returns, r, micro);
                    let m = gather(&mask_f, r, micro);
                    let mask_b = gather(&g.response_mask, r, micro);
                    let mask_t = tensor2(m, n, r, d);
                    let pl = policy_loss(
                        logp.clone(),
                        tensor2(old_logp.clone(), n, r, d),
                        tensor2(adv.clone(), n, r, d),
                        mask_t.clone(),
                        cfg.clip_range,
                    )
                    .sum();
                    let vl = value_loss(
                        values.clone(),
                        tensor2(old_v.clone(), n, r, d),
                        tensor2(ret.clone(), n, r, d),
                        mask_t.clone(),
                        cfg.clip_range_value,
                    )
                    .sum();
                    let ent_sum = (entropy.clone() * mask_t.clone()).sum();
                    let mut total = pl + vl * cfg.value_loss_coef - ent_sum * cfg.entropy_coef;
                    if cfg.kl.in_loss {
                        let ref_lp = tensor2(gather(&rollout.ref_logprobs, r, micro), n, r, d);
                        let kl =
                            crate::loss::kl_penalty(logp.clone(), ref_lp, mask_t, cfg.kl.estimator);
                        let kl_sum = kl.sum();
                        stats.kl_loss += f64::from(to_f32_vec(kl_sum.clone().detach())[0]) * beta;
                        total = total + kl_sum * beta;
                    }
                    let total = total * scale;
                    let micro_stats = TokenStats::measure(
                        &to_f32_vec(logp.detach()),
                        &old_logp,
                        &adv,
                        &to_f32_vec(values.detach()),
                        &old_v,
                        &ret,
                        &to_f32_vec(entropy.detach()),
                        &mask_b,
                        cfg.clip_range,
                        cfg.clip_range_value,
                    );
                    mb_stats.merge(&micro_stats);
                    let mut grads = total.backward();
                    acc_policy.accumulate(
                        &self.policy,
                        GradientsParams::from_module(&mut grads, &self.policy),
                    );
                    acc_critic.accumulate(
                        &self.critic,
                        GradientsParams::from_module(&mut grads, &self.critic),
                    );
                }
                let mut grads_policy = acc_policy.grads();
                let mut grads_critic = acc_critic.grads();
                stats.grad_norm_policy +=
                    clip_grad_norm(&self.policy, &mut grads_policy, cfg.max_grad_norm);
                stats.grad_norm_critic +=
                    clip_grad_norm(&self.critic, &mut grads_critic, cfg.max_grad_norm);
                let policy = self.policy.clone();
                self.policy =
                    self.policy_optim
                        .step(self.policy_schedule.lr(), policy, grads_policy);
                let critic = self.critic.clone();
                self.critic =
                    self.critic_optim
                        .step(self.critic_schedule.lr(), critic, grads_critic);
                self.policy_schedule.step();
                self.critic_schedule.step();
                optimizer_steps += 1;
                stats.tokens.merge(&mb_stats);
                stats.minibatches.push(mb_stats);
            }
        }
        stats.grad_norm_policy /= optimizer_steps.max(1) as f64;
        stats.grad_norm_critic /= optimizer_steps.max(1) as f64;
        stats
    }

    /// One full iteration on `samples`; returns its metrics.
    pub fn step(
        &mut self,
        samples: &[PromptSample],
        tokenizer: &dyn Tokenizer,
        reward: &mut dyn Reward,
    ) -> Result<(Rollout, Metrics), CoreError> {
        let started = Instant::now();
        let rollout = self.rollout(samples, tokenizer, reward)?;
        let update_started = Instant::now();
        let stats = self.update(&rollout);
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

    fn metrics(
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
        let total_loss = policy_loss + self.config.value_loss_coef * value_loss
            - self.config.entropy_coef * entropy_train
            + kl_loss;
        let lengths: Vec<f64> = (0..g.batch_size)
            .map(|row| g.response_length(row) as f64)
            .collect();
        let response_tokens: f64 = lengths.iter().sum();
        let non_score = if self.config.kl.in_loss {
            0.0
        } else {
            -rollout.kl_coef * kl_per_sequence
        };

        let mut m = Metrics::default();
        m.push("policy_loss", policy_loss);
        m.push("value_loss", value_loss);
        m.push("total_loss", total_loss);
        m.push("reward", mean(&rollout.shaped_scores));
        m.push("advantage", rollout.raw_advantage_mean);
        m.push("entropy", entropy);
        m.push("kl_divergence", kl_per_sequence);
        m.push("learning_rate", stats.learning_rate);
        m.push("score", mean(&rollout.scores));
        m.push("non_score_reward", non_score);
        m.push("clipfrac", t.mean(t.clipped));
        m.push("value_clipfrac", t.mean(t.value_clipped));
        m.push("approx_kl", t.mean(t.approx_kl));
        m.push("ratio_mean", t.mean(t.ratio));
        m.push(
            "explained_variance",
            explained_variance(&rollout.values, &rollout.returns, mask),
        );
        m.push("response_length", response_tokens / n);
        m.push(
            "eos_rate",
            g.finished.iter().filter(|&&f| f).count() as f64 / n,
        );
        m.push("kl_coef", rollout.kl_coef);
        m.push("prompts_truncated", rollout.prompts_truncated as f64);
        m.push("grad_norm_policy", stats.grad_norm_policy);
        m.push("grad_norm_critic", stats.grad_norm_critic);
        m.push("critic_learning_rate", stats.critic_learning_rate);
        m.push("tokens_per_second", response_tokens / time_total.max(1e-9));
        m.push("time/generate", rollout.time_generate);
        m.push("time/score", rollout.time_score);
        m.push("time/update", time_update);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_eos_penalty_comes_after_clip_and_normalisation() {
        // Clipping 3 to 1 used to swallow the penalty when it came first: 3 − 0.5 → 1.
        let scores = [3.0, 3.0, -0.2];
        let finished = [true, false, true];
        let shaped = shape_scores(&scores, &finished, Some(1.0), None, Some(0.5));
        assert_eq!(shaped, [1.0, 0.5, -0.2]);
        // Normalised over the clipped batch (1, 1, −0.2: mean 0.6, population std √0.32),
        // then the unfinished row loses the full penalty.
        let mut moments = RunningMoments::default();
        let shaped = shape_scores(&scores, &finished, Some(1.0), Some(&mut moments), Some(0.5));
        let std = moments.std();
        let expected = [0.4 / std, 0.4 / std - 0.5, -0.8 / std];
        for (got, want) in shaped.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{shaped:?} vs {expected:?}");
        }
        assert!((moments.mean - 0.6).abs() < 1e-12);
    }
}
