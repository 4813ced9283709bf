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
    let r = l - prompt_len;
    let device = logits.device();
    let scaled = logits.slice([0..b, prompt_len - 1..l - 1, 0..v]) / temperature;
    let logp = log_softmax(scaled, 2); // [b, r, v]
    let ids: Vec<i64> = response_ids.iter().map(|&id| i64::from(id)).collect();
    let ids = Tensor::<3, Int>::from_data(TensorData::new(ids, [b, r, 1]), &device);
    let token_logp = logp.clone().gather(2, ids).reshape([b, r]);
    let entropy = (logp.clone().exp() * logp).sum_dim(2).reshape([b, r]).neg();
    (token_logp, entropy)
}
