//! The rollout half of an iteration: sample responses, score them, run the old policy,
//! reference and critic over them, shape the rewards (score, KL) and estimate advantages.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Tensor;
use ppo_models::{
    CausalLm, Generation, Tokenizer, generate_chunked, response_logprobs, to_f32_vec,
};

use super::PpoTrainer;
use crate::advantages::{gae, masked_mean_var, whiten};
use crate::{CoreError, KlEstimator, PromptSample, Reward, RewardInput, RunningMoments};

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

impl PpoTrainer {
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
        let reward_metrics = reward.last_metrics();
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
