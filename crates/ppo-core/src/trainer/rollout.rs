//! The rollout half of an iteration: sample responses, score them, run the old policy,
//! reference and critic over them, shape the rewards (score, KL) and estimate advantages.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Tensor;
use ppo_models::{
    CausalLm, Generation, Stop, Tokenizer, generate_chunked, merged, to_f32_vec, token_logprobs,
    token_logprobs_and_entropy,
};

use super::PpoTrainer;
use crate::advantages::{gae, masked_mean_var, whiten};
use crate::{
    CoreError, KlEstimator, PromptSample, Reward, RewardInput, RunningMoments,
    critic_free_advantages, overlong_penalty,
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
    /// Critic values before the update (empty without a critic).
    pub values: Vec<f32>,
    /// Per-token KL estimate (policy vs reference).
    pub kl: Vec<f32>,
    /// Per-token rewards.
    pub rewards: Vec<f32>,
    /// Advantages as used by the loss (whitened when configured).
    pub advantages: Vec<f32>,
    /// Mean advantage before whitening.
    pub raw_advantage_mean: f64,
    /// GAE returns (empty without a critic).
    pub returns: Vec<f32>,
    /// `[rows, R]`: the tokens the loss is taken over — the response mask, less the rows
    /// without EOS under `mask_truncated`.
    pub loss_mask: Vec<bool>,
    /// Mean over rows of DAPO's overlong penalty (0 when off).
    pub overlong_penalty: f64,
    /// Groups dropped by dynamic sampling because their scores were all equal.
    pub filtered_groups: usize,
    /// Generation rounds this rollout took (1 without dynamic sampling).
    pub sampling_rounds: usize,
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
    /// The reward source's own counts for this batch ([`Reward::last_metrics`]).
    pub reward_metrics: Vec<(String, f64)>,
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
pub(super) fn response_values(values: Tensor<2>, prompt_len: usize) -> Tensor<2> {
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

/// The responses sampled and scored for some prompts, before any model pass.
struct Round {
    rows: Vec<PromptSample>,
    generation: Generation,
    responses: Vec<String>,
    scores: Vec<f64>,
    prompts_truncated: usize,
    /// The reward source's counts for this round ([`Reward::last_metrics`]).
    reward_metrics: Vec<(String, f64)>,
}

impl Round {
    /// Keeps the groups (of `group_size` rows) for which `keep` holds.
    fn retain_groups(self, group_size: usize, keep: &[bool]) -> Round {
        let rows: Vec<usize> = (0..self.generation.batch_size)
            .filter(|r| keep[r / group_size])
            .collect();
        Round {
            rows: rows.iter().map(|&r| self.rows[r].clone()).collect(),
            responses: rows.iter().map(|&r| self.responses[r].clone()).collect(),
            scores: rows.iter().map(|&r| self.scores[r]).collect(),
            generation: select_rows(&self.generation, &rows),
            prompts_truncated: self.prompts_truncated,
            reward_metrics: self.reward_metrics,
        }
    }
}

/// The rows `rows` of `g`, in that order.
fn select_rows(g: &Generation, rows: &[usize]) -> Generation {
    let (l, r) = (g.seq_len(), g.response_len);
    Generation {
        batch_size: rows.len(),
        prompt_len: g.prompt_len,
        response_len: r,
        sequences: gather(&g.sequences, l, rows),
        attention_mask: gather(&g.attention_mask, l, rows),
        response_mask: gather(&g.response_mask, r, rows),
        logprobs: gather(&g.logprobs, r, rows),
        finished: rows.iter().map(|&i| g.finished[i]).collect(),
    }
}

/// The rows of `rounds` in order, at most `max_rows` of them. Counts (prompts truncated, the
/// reward's metrics) are summed over every round sampled.
fn join_rounds(rounds: Vec<Round>, max_rows: usize, pad_id: u32) -> Round {
    let prompts_truncated = rounds.iter().map(|r| r.prompts_truncated).sum();
    let mut reward_metrics: Vec<(String, f64)> = Vec::new();
    for (name, value) in rounds.iter().flat_map(|r| &r.reward_metrics) {
        match reward_metrics.iter_mut().find(|(n, _)| n == name) {
            Some((_, total)) => *total += value,
            None => reward_metrics.push((name.clone(), *value)),
        }
    }
    let mut rows = Vec::new();
    let mut responses = Vec::new();
    let mut scores = Vec::new();
    let mut parts = Vec::new();
    for round in rounds {
        rows.extend(round.rows);
        responses.extend(round.responses);
        scores.extend(round.scores);
        parts.push(round.generation);
    }
    let mut generation = Generation::concat(parts, pad_id);
    if rows.len() > max_rows {
        rows.truncate(max_rows);
        responses.truncate(max_rows);
        scores.truncate(max_rows);
        let first: Vec<usize> = (0..max_rows).collect();
        generation = select_rows(&generation, &first);
    }
    Round {
        rows,
        generation,
        responses,
        scores,
        prompts_truncated,
        reward_metrics,
    }
}

/// Whether the scores of each group of `group_size` rows differ (informative for a group
/// estimator).
fn informative_groups(scores: &[f64], group_size: usize) -> Vec<bool> {
    scores
        .chunks(group_size)
        .map(|g| g.iter().any(|&s| s != g[0]))
        .collect()
}

impl PpoTrainer {
    /// Samples responses for `samples` (each `group_size` times), scores them and prepares
    /// rewards, advantages and returns.
    pub fn rollout(
        &mut self,
        samples: &[PromptSample],
        tokenizer: &dyn Tokenizer,
        reward: &mut dyn Reward,
    ) -> Result<Rollout, CoreError> {
        self.rollout_with(samples, &mut || None, tokenizer, reward)
    }

    /// [`rollout`](Self::rollout) that, under dynamic sampling, asks `more` for further prompt
    /// batches until `batch_size` groups with differing scores are collected (or
    /// `max_sampling_rounds` generation rounds are spent, or `more` has none): groups whose
    /// scores are all equal are dropped. If no group is informative, the last round is kept
    /// whole.
    pub fn rollout_with(
        &mut self,
        samples: &[PromptSample],
        more: &mut dyn FnMut() -> Option<Vec<PromptSample>>,
        tokenizer: &dyn Tokenizer,
        reward: &mut dyn Reward,
    ) -> Result<Rollout, CoreError> {
        if samples.is_empty() {
            return Err(CoreError::EmptyBatch);
        }
        let (group_size, algo) = (self.config.group_size, self.config.algorithm.clone());
        let started = Instant::now();
        let mut scoring = 0.0;
        let mut round = self.sample_round(samples, tokenizer, reward, &mut scoring)?;
        let (mut rounds, mut filtered_groups) = (1, 0);
        if algo.dynamic_sampling {
            let (mut kept, mut groups, mut fallback) = (Vec::new(), 0, None);
            loop {
                let keep = informative_groups(&round.scores, group_size);
                let informative = keep.iter().filter(|&&k| k).count();
                filtered_groups += keep.len() - informative;
                if informative > 0 {
                    groups += informative;
                    kept.push(round.retain_groups(group_size, &keep));
                } else {
                    fallback = Some(round);
                }
                if groups >= self.config.batch_size || rounds >= algo.max_sampling_rounds {
                    break;
                }
                let Some(next) = more().filter(|n| !n.is_empty()) else {
                    break;
                };
                round = self.sample_round(&next, tokenizer, reward, &mut scoring)?;
                rounds += 1;
            }
            round = match fallback {
                Some(whole) if kept.is_empty() => {
                    filtered_groups -= whole.rows.len() / group_size;
                    whole
                }
                _ => join_rounds(
                    kept,
                    group_size * self.config.batch_size,
                    tokenizer.pad_id(),
                ),
            };
        }
        let time_generate = started.elapsed().as_secs_f64() - scoring;
        self.finish_rollout(round, rounds, filtered_groups, time_generate, scoring)
    }

    /// Generates `group_size` responses for each of `samples` and scores them; the seconds
    /// spent scoring are added to `scoring`.
    fn sample_round(
        &mut self,
        samples: &[PromptSample],
        tokenizer: &dyn Tokenizer,
        reward: &mut dyn Reward,
        scoring: &mut f64,
    ) -> Result<Round, CoreError> {
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
        // LoRA adapters are folded in once here, not recomputed at every decoding step.
        let generation = generate_chunked(
            &merged(self.policy.valid()),
            &prompts,
            &cfg.sampling,
            Stop::new(tokenizer, &cfg.sampling.stop),
            tokenizer.pad_id(),
            &mut self.rng,
            cfg.forward_batch_size,
        );
        let started = Instant::now();
        let responses: Vec<String> = (0..generation.batch_size)
            .map(|r| tokenizer.decode(&generation.response(r)))
            .collect();
        let inputs = reward_inputs(&rows, &responses, &generation.finished);
        let scores = checked_scores(reward, &inputs)?;
        let reward_metrics = reward.last_metrics();
        *scoring += started.elapsed().as_secs_f64();
        Ok(Round {
            rows,
            generation,
            responses,
            scores,
            prompts_truncated,
            reward_metrics,
        })
    }

    /// Shapes the scores of a round, runs the inference passes and estimates advantages.
    fn finish_rollout(
        &mut self,
        round: Round,
        sampling_rounds: usize,
        filtered_groups: usize,
        time_generate: f64,
        time_scoring: f64,
    ) -> Result<Rollout, CoreError> {
        let started = Instant::now();
        let Round {
            rows,
            generation,
            responses,
            scores,
            prompts_truncated,
            reward_metrics,
        } = round;
        let n = generation.batch_size;
        let mut shaped_scores = self.shape_scores(&scores, &generation.finished);
        let algo = self.config.algorithm.clone();
        let max_new_tokens = self.config.sampling.max_new_tokens;
        let mut overlong_total = 0.0;
        for (row, score) in shaped_scores.iter_mut().enumerate() {
            let penalty = overlong_penalty(
                generation.response_length(row),
                max_new_tokens,
                algo.overlong_buffer_len,
                algo.overlong_penalty_factor,
            );
            *score += penalty;
            overlong_total += penalty;
        }

        let mut first_epoch_order: Vec<usize> = (0..n).collect();
        self.rng.shuffle(&mut first_epoch_order);
        let policy = merged(self.policy.valid());
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
        let cfg = &self.config;
        let (raw_advantages, returns) = match &values {
            Some(values) => gae(&rewards, values, mask, r_len, cfg.gamma, cfg.lam),
            None => {
                let advantages = critic_free_advantages(
                    algo.advantage_estimator,
                    &rewards,
                    mask,
                    r_len,
                    cfg.group_size,
                    cfg.gamma,
                );
                (advantages, Vec::new())
            }
        };
        let (raw_advantage_mean, _) = masked_mean_var(&raw_advantages, mask);
        let advantages = if values.is_some() && cfg.whiten_advantages {
            whiten(&raw_advantages, mask)
        } else {
            raw_advantages
        };
        let loss_mask: Vec<bool> = mask
            .iter()
            .enumerate()
            .map(|(i, &m)| m && (!algo.mask_truncated || generation.finished[i / r_len.max(1)]))
            .collect();
        let time_score = time_scoring + started.elapsed().as_secs_f64();

        Ok(Rollout {
            generation,
            samples: rows,
            responses,
            scores,
            shaped_scores,
            old_logprobs,
            ref_logprobs,
            entropy,
            values: values.unwrap_or_default(),
            kl,
            rewards,
            advantages,
            raw_advantage_mean,
            returns,
            loss_mask,
            overlong_penalty: overlong_total / n.max(1) as f64,
            filtered_groups,
            sampling_rounds,
            kl_coef: beta,
            time_generate,
            time_score,
            first_epoch_order,
            prompts_truncated,
            reward_metrics,
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

    /// Old policy log-probs and entropy, reference log-probs and critic values (when there is
    /// a critic), all `[rows, R]`, without autodiff, one first-epoch micro-batch (in `order`) at a time.
    fn inference_passes(
        &self,
        policy: &CausalLm,
        g: &Generation,
        order: &[usize],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
        let critic = self.critic.as_ref().map(|c| merged(c.valid()));
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
            let logits = policy.response_logits(&ids, &mask, n, p);
            let (lp, h) = token_logprobs_and_entropy(logits, &resp, temperature);
            scatter(&mut old, chunk, to_f32_vec(lp));
            scatter(&mut ent, chunk, to_f32_vec(h));
            let logits = self.reference.response_logits(&ids, &mask, n, p);
            let lp_ref = token_logprobs(logits, &resp, temperature);
            scatter(&mut refs, chunk, to_f32_vec(lp_ref));
            if let Some(critic) = &critic {
                let values = response_values(critic.forward(&ids, &mask, n), p);
                scatter(&mut vals, chunk, to_f32_vec(values));
            }
        }
        for (i, &m) in g.response_mask.iter().enumerate() {
            if !m {
                old[i] = 0.0;
                ent[i] = 0.0;
                refs[i] = 0.0;
                vals[i] = 0.0;
            }
        }
        (old, ent, refs, critic.map(|_| vals))
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
