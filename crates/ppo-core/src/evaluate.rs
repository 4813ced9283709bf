//! Evaluation of a policy on held-out prompts: one response per prompt, its reward, entropy,
//! length, KL to a reference and, when the reward judges correctness, accuracy. A function of
//! the two models: it needs no trainer, optimiser or schedule (`ppo-cli eval` calls it on a
//! checkpoint's models; [`crate::PpoTrainer::evaluate`] on its own).

use ppo_models::{
    CausalLm, Rng, SamplingConfig, Stop, Tokenizer, generate_chunked, to_f32_vec, token_logprobs,
    token_logprobs_and_entropy,
};

use crate::trainer::{checked_scores, encode, gather, reward_inputs};
use crate::{CoreError, KlEstimator, Metrics, PpoConfig, PromptSample, Reward};

/// An evaluation pass: metrics plus the decoded samples (for logging a few).
#[derive(Clone, Debug)]
pub struct EvalOutput {
    /// `eval_reward`, `eval_entropy`, `eval_response_length`, `eval_kl`, and
    /// `eval_accuracy` when the reward judges correctness.
    pub metrics: Metrics,
    /// (prompt, response) of each evaluated prompt.
    pub samples: Vec<(String, String)>,
}

/// The settings an evaluation shares with training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalSettings {
    /// Rows per generation and scoring pass.
    pub forward_batch_size: usize,
    /// Longest prompt in tokens (longer ones keep their end); `None`: no limit.
    pub max_prompt_tokens: Option<usize>,
    /// Estimator of the per-token KL to the reference.
    pub kl_estimator: KlEstimator,
}

impl From<&PpoConfig> for EvalSettings {
    fn from(config: &PpoConfig) -> Self {
        Self {
            forward_batch_size: config.forward_batch_size,
            max_prompt_tokens: config.max_prompt_tokens,
            kl_estimator: config.kl.estimator,
        }
    }
}

/// Generates one response per sample of `policy` with `sampling` and `rng`, and measures
/// `eval_reward` (mean raw score), `eval_entropy` (mean per token, at the log-prob
/// temperature), `eval_response_length`, `eval_kl` (mean per-sequence KL of `policy` to
/// `reference` with the configured estimator) and `eval_accuracy` when the reward judges
/// correctness. Both models are used without autodiff (pass `valid()` copies).
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    policy: &CausalLm,
    reference: &CausalLm,
    settings: &EvalSettings,
    samples: &[PromptSample],
    tokenizer: &dyn Tokenizer,
    reward: &mut dyn Reward,
    sampling: &SamplingConfig,
    rng: &mut Rng,
) -> Result<EvalOutput, CoreError> {
    if samples.is_empty() {
        return Err(CoreError::EmptyBatch);
    }
    let limit = settings.max_prompt_tokens;
    let prompts: Vec<Vec<u32>> = samples
        .iter()
        .map(|s| encode(tokenizer, s, limit).0)
        .collect();
    let g = generate_chunked(
        policy,
        &prompts,
        sampling,
        Stop::new(tokenizer, &sampling.stop),
        tokenizer.pad_id(),
        rng,
        settings.forward_batch_size,
    );
    let responses: Vec<String> = (0..g.batch_size)
        .map(|r| tokenizer.decode(&g.response(r)))
        .collect();
    let inputs = reward_inputs(samples, &responses, &g.finished);
    let scores = checked_scores(reward, &inputs)?;
    let correct: Vec<bool> = inputs.iter().filter_map(|i| reward.is_correct(i)).collect();

    let temperature = sampling.logprob_temperature();
    let (l, p, r) = (g.seq_len(), g.prompt_len, g.response_len);
    let response_ids = g.response_ids();
    let rows: Vec<usize> = (0..g.batch_size).collect();
    let (mut entropy_sum, mut tokens, mut kl_sum) = (0.0f64, 0.0f64, 0.0f64);
    for chunk in rows.chunks(settings.forward_batch_size.max(1)) {
        let ids = gather(&g.sequences, l, chunk);
        let mask = gather(&g.attention_mask, l, chunk);
        let resp = gather(&response_ids, r, chunk);
        let valid = gather(&g.response_mask, r, chunk);
        let n = chunk.len();
        let logits = policy.response_logits(&ids, &mask, n, p);
        let (lp, h) = token_logprobs_and_entropy(logits, &resp, temperature);
        let logits = reference.response_logits(&ids, &mask, n, p);
        let lp_ref = token_logprobs(logits, &resp, temperature);
        let (lp, h, lp_ref) = (to_f32_vec(lp), to_f32_vec(h), to_f32_vec(lp_ref));
        for i in (0..valid.len()).filter(|&i| valid[i]) {
            entropy_sum += f64::from(h[i]);
            kl_sum += settings
                .kl_estimator
                .estimate(f64::from(lp[i]) - f64::from(lp_ref[i]));
            tokens += 1.0;
        }
    }
    let n = g.batch_size as f64;
    let mut metrics = Metrics::default();
    metrics.push("eval_reward", scores.iter().sum::<f64>() / n);
    metrics.push("eval_entropy", entropy_sum / tokens.max(1.0));
    metrics.push("eval_response_length", tokens / n);
    metrics.push("eval_kl", kl_sum / n);
    if !correct.is_empty() {
        let hits = correct.iter().filter(|&&c| c).count();
        metrics.push("eval_accuracy", hits as f64 / correct.len() as f64);
    }
    let samples = samples
        .iter()
        .zip(responses)
        .map(|(s, r)| (s.prompt.clone(), r))
        .collect();
    Ok(EvalOutput { metrics, samples })
}
