//! Per-token log-probs and entropy of a response under a model's logits at a temperature.

use crate::ops::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

/// Log-probs and entropies of the response tokens, both `[batch, R]`.
///
/// `logits`: `[batch, P + R, vocab]` of the whole sequence; `response_ids`: `[batch, R]`
/// row-major. The token at position `P + i` is predicted by the logits at `P + i - 1`,
/// divided by `temperature` (the sampling temperature, so that the PPO ratio compares
/// like with like). `prompt_len` must be at least 1.
pub fn response_logprobs(
    logits: Tensor<3>,
    response_ids: &[u32],
    prompt_len: usize,
    temperature: f64,
) -> (Tensor<2>, Tensor<2>) {
    let [b, l, v] = logits.dims();
    assert!(
        prompt_len >= 1 && prompt_len <= l,
        "prompt_len {prompt_len} out of 1..={l}"
    );
    let predicting = logits.slice([0..b, prompt_len - 1..l - 1, 0..v]);
    token_logprobs_and_entropy(predicting, response_ids, temperature)
}

/// Log-probs of the response tokens `[batch, R]` from the logits that predict them:
/// `[batch, R, vocab]` (row `i` predicts token `i`, as
/// [`CausalLm::response_logits`](crate::CausalLm::response_logits) returns them), divided by
/// `temperature`. For the models whose entropy is not wanted (the reference's KL): no pass over
/// the vocabulary beyond the log-softmax.
pub fn token_logprobs(logits: Tensor<3>, response_ids: &[u32], temperature: f64) -> Tensor<2> {
    log_softmax_at(logits, response_ids, temperature).1
}

/// [`token_logprobs`] and the entropies `[batch, R]` of the distributions the tokens were drawn
/// from.
pub fn token_logprobs_and_entropy(
    logits: Tensor<3>,
    response_ids: &[u32],
    temperature: f64,
) -> (Tensor<2>, Tensor<2>) {
    let [b, r, _] = logits.dims();
    let (logp, token_logp) = log_softmax_at(logits, response_ids, temperature);
    let entropy = (logp.clone().exp() * logp).sum_dim(2).reshape([b, r]).neg();
    (token_logp, entropy)
}

/// The log-softmax `[batch, R, vocab]` of `logits / temperature` and its values at
/// `response_ids`, `[batch, R]`.
fn log_softmax_at(
    logits: Tensor<3>,
    response_ids: &[u32],
    temperature: f64,
) -> (Tensor<3>, Tensor<2>) {
    let [b, r, _] = logits.dims();
    let device = logits.device();
    let logp = log_softmax(logits / temperature, 2);
    let ids: Vec<i64> = response_ids.iter().map(|&id| i64::from(id)).collect();
    let ids = Tensor::<3, Int>::from_data(TensorData::new(ids, [b, r, 1]), &device);
    let token_logp = logp.clone().gather(2, ids).reshape([b, r]);
    (logp, token_logp)
}
