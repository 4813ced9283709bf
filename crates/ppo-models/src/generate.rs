//! Batched sampling with a KV cache: left padding, temperature, top-k, top-p (over the top-k
//! survivors, renormalised, as transformers does), stop at any EOS id or stop string.
//!
//! Sampling runs on the host in f64 from each step's last-position logits, with our own
//! [`Rng`], so a seeded run draws the same tokens on every backend. The returned log-prob of a
//! token is `log_softmax(logits / T)` of the *unfiltered* distribution, the quantity the PPO
//! update recomputes at the same temperature.

use burn::tensor::Tensor;

use crate::transformer::{CausalLm, KvCache};
use crate::{Rng, Tokenizer, left_pad};

/// How tokens are drawn.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplingConfig {
    /// Logits are divided by this before softmax; must be positive unless `greedy`.
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1.0 = off).
    pub top_p: f64,
    /// Most tokens generated per row.
    pub max_new_tokens: usize,
    /// Take the most likely token; log-probs are then reported at temperature 1.
    pub greedy: bool,
    /// Reuse keys and values of earlier positions (same result, less work).
    pub use_cache: bool,
    /// A response also ends once its text contains one of these (kept in the response).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            max_new_tokens: 32,
            greedy: false,
            use_cache: true,
            stop: Vec::new(),
        }
    }
}

/// When a row's response ends: at the first token among `ids` (kept as its last token), or at
/// the first token after which its decoded text contains one of `strings`.
#[derive(Clone)]
pub struct Stop<'a> {
    /// End-of-sequence ids (Qwen3 has two: `<|im_end|>` and `<|endoftext|>`).
    pub ids: Vec<u32>,
    /// Stop strings (need a tokenizer to decode).
    pub strings: Vec<String>,
    decoder: Option<&'a dyn Tokenizer>,
    /// Tokens decoded to look for a string: enough to hold the longest one.
    window: usize,
}

impl<'a> Stop<'a> {
    /// Stops at any of `ids` only.
    pub fn tokens(ids: Vec<u32>) -> Self {
        Self {
            ids,
            strings: Vec::new(),
            decoder: None,
            window: 0,
        }
    }

    /// Stops at the tokenizer's [`stop_ids`](Tokenizer::stop_ids) and at `strings` (empty
    /// ones are ignored), decoded with `tokenizer`.
    pub fn new(tokenizer: &'a dyn Tokenizer, strings: &[String]) -> Self {
        let strings: Vec<String> = strings.iter().filter(|s| !s.is_empty()).cloned().collect();
        // A token decodes to at least one byte of text except for pieces of a character, so
        // twice the longest string in bytes (plus a few) covers it.
        let window = strings.iter().map(String::len).max().unwrap_or(0) * 2 + 4;
        Self {
            ids: tokenizer.stop_ids(),
            strings,
            decoder: Some(tokenizer),
            window,
        }
    }

    /// Whether the response `so_far` (its newest token last) ends here.
    fn ends(&self, so_far: &[u32]) -> bool {
        let Some(&last) = so_far.last() else {
            return false;
        };
        if self.ids.contains(&last) {
            return true;
        }
        match self.decoder {
            Some(tokenizer) if !self.strings.is_empty() => {
                let tail = &so_far[so_far.len().saturating_sub(self.window)..];
                let text = tokenizer.decode(tail);
                self.strings.iter().any(|s| text.contains(s.as_str()))
            }
            _ => false,
        }
    }
}

impl From<u32> for Stop<'_> {
    /// Stops at this one EOS id.
    fn from(id: u32) -> Self {
        Self::tokens(vec![id])
    }
}

impl std::fmt::Debug for Stop<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("ids", &self.ids)
            .field("strings", &self.strings)
            .finish()
    }
}

impl SamplingConfig {
    /// The temperature log-probs are computed at: `temperature`, or 1 when greedy.
    pub fn logprob_temperature(&self) -> f64 {
        if self.greedy { 1.0 } else { self.temperature }
    }
}

/// Prompts and sampled responses of a batch, flattened row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// Number of rows.
    pub batch_size: usize,
    /// Prompt length after left padding (P).
    pub prompt_len: usize,
    /// Longest response (R); shorter ones are right-padded.
    pub response_len: usize,
    /// `[batch, P + R]`: left-padded prompt followed by the response.
    pub sequences: Vec<u32>,
    /// `[batch, P + R]`: `true` on real prompt and response tokens.
    pub attention_mask: Vec<bool>,
    /// `[batch, R]`: `true` on response tokens up to and including the first EOS.
    pub response_mask: Vec<bool>,
    /// `[batch, R]`: sampling log-prob of each response token (0 where masked).
    pub logprobs: Vec<f32>,
    /// `[batch]`: the row ended by itself (an EOS id or a stop string), not by the length limit.
    pub finished: Vec<bool>,
}

impl Generation {
    /// Total length of each row (P + R).
    pub fn seq_len(&self) -> usize {
        self.prompt_len + self.response_len
    }

    /// Response token ids `[batch, R]` (padding included).
    pub fn response_ids(&self) -> Vec<u32> {
        let (p, l) = (self.prompt_len, self.seq_len());
        self.sequences
            .chunks(l.max(1))
            .flat_map(|row| row[p..].iter().copied())
            .collect()
    }

    /// The real response tokens of `row`, EOS included.
    pub fn response(&self, row: usize) -> Vec<u32> {
        let (p, r) = (self.prompt_len, self.response_len);
        let start = row * self.seq_len() + p;
        (0..r)
            .filter(|&i| self.response_mask[row * r + i])
            .map(|i| self.sequences[start + i])
            .collect()
    }

    /// Number of real response tokens of `row`.
    pub fn response_length(&self, row: usize) -> usize {
        let r = self.response_len;
        self.response_mask[row * r..(row + 1) * r]
            .iter()
            .filter(|&&m| m)
            .count()
    }
}

/// Draws one token from `logits` (one row); returns it with its log-prob under
/// `log_softmax(logits / T)` (T = 1 when greedy).
pub fn sample_token(logits: &[f32], config: &SamplingConfig, rng: &mut Rng) -> (u32, f32) {
    let t = config.logprob_temperature();
    let scaled: Vec<f64> = logits.iter().map(|&x| f64::from(x) / t).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_z = max + scaled.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
    let logprob = |i: usize| (scaled[i] - log_z) as f32;
    if config.greedy {
        let best = argmax(logits);
        return (best as u32, logprob(best));
    }
    // Candidates by decreasing probability (ties by id, for determinism) when top-k or top-p
    // cut the list; without either every token is a candidate, taken in id order (the same
    // distribution, and no sort of the vocabulary at every step).
    let by_probability = |a: &usize, b: &usize| scaled[*b].total_cmp(&scaled[*a]).then(a.cmp(b));
    let mut order: Vec<usize> = (0..scaled.len()).collect();
    if config.top_k > 0 && config.top_k < order.len() {
        order.select_nth_unstable_by(config.top_k - 1, by_probability);
        order.truncate(config.top_k);
        order.sort_by(by_probability);
    } else if config.top_p < 1.0 {
        order.sort_by(by_probability);
    }
    let probs: Vec<f64> = order.iter().map(|&i| (scaled[i] - log_z).exp()).collect();
    let mut keep = probs.len();
    if config.top_p < 1.0 {
        // Over the top-k survivors renormalised, as transformers applies top-p after top-k.
        let survivors: f64 = probs.iter().sum();
        let mut cumulative = 0.0;
        for (n, p) in probs.iter().enumerate() {
            cumulative += p / survivors;
            if cumulative >= config.top_p {
                keep = n + 1;
                break;
            }
        }
    }
    let total: f64 = probs[..keep].iter().sum();
    let mut u = rng.next_f64() * total;
    let mut chosen = order[keep - 1];
    for (n, p) in probs[..keep].iter().enumerate() {
        if u < *p {
            chosen = order[n];
            break;
        }
        u -= p;
    }
    (chosen as u32, logprob(chosen))
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Last-position logits of every row, `[batch][vocab]`, from logits `[batch, q, vocab]`.
fn last_logits(logits: Tensor<3>) -> Vec<Vec<f32>> {
    let [b, q, v] = logits.dims();
    let last = logits.slice([0..b, q - 1..q, 0..v]).reshape([b, v]);
    let flat: Vec<f32> = crate::to_f32_vec(last);
    flat.chunks(v).map(<[f32]>::to_vec).collect()
}

impl Generation {
    /// Joins generations of consecutive row blocks into one batch: prompts are left-padded to
    /// the longest prompt, responses right-padded to the longest response (`pad_id`, masked).
    pub fn concat(parts: Vec<Generation>, pad_id: u32) -> Generation {
        let p = parts.iter().map(|g| g.prompt_len).max().unwrap_or(0);
        let r = parts.iter().map(|g| g.response_len).max().unwrap_or(0);
        let mut out = Generation {
            batch_size: 0,
            prompt_len: p,
            response_len: r,
            sequences: Vec::new(),
            attention_mask: Vec::new(),
            response_mask: Vec::new(),
            logprobs: Vec::new(),
            finished: Vec::new(),
        };
        for g in parts {
            let (gp, gr, gl) = (g.prompt_len, g.response_len, g.seq_len());
            for row in 0..g.batch_size {
                let seq = &g.sequences[row * gl..(row + 1) * gl];
                let attn = &g.attention_mask[row * gl..(row + 1) * gl];
                out.sequences.extend(std::iter::repeat_n(pad_id, p - gp));
                out.sequences.extend_from_slice(&seq[..gp]);
                out.sequences.extend_from_slice(&seq[gp..]);
                out.sequences.extend(std::iter::repeat_n(pad_id, r - gr));
                out.attention_mask
                    .extend(std::iter::repeat_n(false, p - gp));
                out.attention_mask.extend_from_slice(attn);
                out.attention_mask
                    .extend(std::iter::repeat_n(false, r - gr));
                out.response_mask
                    .extend_from_slice(&g.response_mask[row * gr..(row + 1) * gr]);
                out.response_mask.extend(std::iter::repeat_n(false, r - gr));
                out.logprobs
                    .extend_from_slice(&g.logprobs[row * gr..(row + 1) * gr]);
                out.logprobs.extend(std::iter::repeat_n(0.0, r - gr));
            }
            out.finished.extend_from_slice(&g.finished);
            out.batch_size += g.batch_size;
        }
        out
    }
}

/// [`generate`] on blocks of at most `rows_per_pass` prompts (bounding the KV cache and
/// logits held at once), joined with [`Generation::concat`]. `0` means one block.
pub fn generate_chunked<'a>(
    policy: &CausalLm,
    prompts: &[Vec<u32>],
    config: &SamplingConfig,
    stop: impl Into<Stop<'a>>,
    pad_id: u32,
    rng: &mut Rng,
    rows_per_pass: usize,
) -> Generation {
    let stop = stop.into();
    let size = if rows_per_pass == 0 {
        prompts.len().max(1)
    } else {
        rows_per_pass
    };
    let parts = prompts
        .chunks(size)
        .map(|block| generate(policy, block, config, stop.clone(), pad_id, rng))
        .collect();
    Generation::concat(parts, pad_id)
}

/// Samples a response for every prompt (repeat prompts for several samples each).
///
/// Rows stop as `stop` says (an EOS id — one id converts into a [`Stop`] — kept as the last
/// response token, or a stop string) or after `max_new_tokens`; later positions hold `pad_id`
/// and are masked.
pub fn generate<'a>(
    policy: &CausalLm,
    prompts: &[Vec<u32>],
    config: &SamplingConfig,
    stop: impl Into<Stop<'a>>,
    pad_id: u32,
    rng: &mut Rng,
) -> Generation {
    let stop = stop.into();
    let batch = left_pad(prompts, pad_id);
    let (b, p) = (batch.batch_size, batch.seq_len);
    let mut rows: Vec<Vec<u32>> = batch
        .input_ids
        .chunks(p.max(1))
        .map(<[u32]>::to_vec)
        .collect();
    let mut masks: Vec<Vec<bool>> = batch
        .attention_mask
        .chunks(p.max(1))
        .map(<[bool]>::to_vec)
        .collect();
    let mut logprobs: Vec<Vec<f32>> = vec![Vec::new(); b];
    let mut response_mask: Vec<Vec<bool>> = vec![Vec::new(); b];
    let mut finished = vec![false; b];
    let mut cache = KvCache::new();

    let mut step_ids = batch.input_ids.clone();
    let mut step_mask = batch.attention_mask.clone();
    for _ in 0..config.max_new_tokens {
        if b == 0 || finished.iter().all(|&f| f) {
            break;
        }
        let logits = if config.use_cache {
            policy.forward(&step_ids, &step_mask, b, Some(&mut cache))
        } else {
            let ids: Vec<u32> = rows.concat();
            let mask: Vec<bool> = masks.concat();
            policy.forward(&ids, &mask, b, None)
        };
        let last = last_logits(logits);
        step_ids.clear();
        step_mask.clear();
        for row in 0..b {
            let (token, logprob, real) = if finished[row] {
                (pad_id, 0.0, false)
            } else {
                let (token, logprob) = sample_token(&last[row], config, rng);
                (token, logprob, true)
            };
            rows[row].push(token);
            if real {
                // An unfinished row's response has no padding yet: it is all after the prompt.
                finished[row] = stop.ends(&rows[row][p..]);
            }
            masks[row].push(real);
            logprobs[row].push(logprob);
            response_mask[row].push(real);
            step_ids.push(token);
            step_mask.push(real);
        }
    }
    let response_len = response_mask.first().map_or(0, Vec::len);
    Generation {
        batch_size: b,
        prompt_len: p,
        response_len,
        sequences: rows.concat(),
        attention_mask: masks.concat(),
        response_mask: response_mask.concat(),
        logprobs: logprobs.concat(),
        finished,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_argmax_with_temperature_one_logprob() {
        let logits = [0.0f32, 2.0, 1.0];
        let cfg = SamplingConfig {
            greedy: true,
            temperature: 0.5,
            ..Default::default()
        };
        let (tok, lp) = sample_token(&logits, &cfg, &mut Rng::new(0));
        assert_eq!(tok, 1);
        let z = (0f64.exp() + 2f64.exp() + 1f64.exp()).ln();
        assert!((f64::from(lp) - (2.0 - z)).abs() < 1e-6);
    }

    #[test]
    fn top_k_one_is_argmax_and_logprob_is_unfiltered_at_t() {
        let logits = [1.0f32, 3.0, 2.0, -1.0];
        let cfg = SamplingConfig {
            top_k: 1,
            temperature: 2.0,
            ..Default::default()
        };
        for seed in 0..20 {
            let (tok, lp) = sample_token(&logits, &cfg, &mut Rng::new(seed));
            assert_eq!(tok, 1);
            let s: Vec<f64> = logits.iter().map(|&x| f64::from(x) / 2.0).collect();
            let z = s.iter().map(|x| x.exp()).sum::<f64>().ln();
            assert!((f64::from(lp) - (s[1] - z)).abs() < 1e-6);
        }
    }

    #[test]
    fn top_p_keeps_smallest_nucleus() {
        // probabilities ≈ [0.6652, 0.2447, 0.0900]: top_p 0.5 keeps only the first.
        let logits = [2.0f32, 1.0, 0.0];
        let cfg = SamplingConfig {
            top_p: 0.5,
            ..Default::default()
        };
        for seed in 0..50 {
            assert_eq!(sample_token(&logits, &cfg, &mut Rng::new(seed)).0, 0);
        }
        // top_p 0.9 keeps two tokens: token 2 never drawn, token 1 sometimes.
        let cfg = SamplingConfig {
            top_p: 0.9,
            ..Default::default()
        };
        let draws: Vec<u32> = (0..200)
            .map(|s| sample_token(&logits, &cfg, &mut Rng::new(s)).0)
            .collect();
        assert!(!draws.contains(&2));
        assert!(draws.contains(&1));
    }

    #[test]
    fn sampling_frequencies_follow_the_distribution() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = [0.25, 0.75]
        let cfg = SamplingConfig::default();
        let mut rng = Rng::new(5);
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| sample_token(&logits, &cfg, &mut rng).0 == 1)
            .count();
        let freq = ones as f64 / n as f64;
        assert!((freq - 0.75).abs() < 0.015, "{freq}");
    }

    #[test]
    fn top_p_after_top_k_renormalises_over_the_survivors() {
        // p = [0.4, 0.3, 0.2, 0.1]; top_k 3 keeps [0.4, 0.3, 0.2], renormalised
        // [0.444, 0.333, 0.222]; top_p 0.75 then keeps two (0.444 + 0.333 ≥ 0.75), drawn with
        // frequencies 4/7 and 3/7. Without the renormalisation the cumulative 0.4, 0.7, 0.9
        // would keep three.
        let logits: Vec<f32> = [0.4f32, 0.3, 0.2, 0.1].iter().map(|p| p.ln()).collect();
        let cfg = SamplingConfig {
            top_k: 3,
            top_p: 0.75,
            ..Default::default()
        };
        let mut rng = Rng::new(11);
        let n = 30_000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[sample_token(&logits, &cfg, &mut rng).0 as usize] += 1;
        }
        assert_eq!(counts[2] + counts[3], 0, "{counts:?}");
        let freq = counts[0] as f64 / n as f64;
        assert!((freq - 4.0 / 7.0).abs() < 0.012, "{counts:?}");
    }

    struct Letters;

    impl Tokenizer for Letters {
        fn encode(&self, text: &str) -> Vec<u32> {
            text.bytes().map(u32::from).collect()
        }
        fn decode(&self, ids: &[u32]) -> String {
            ids.iter().map(|&id| char::from(id as u8)).collect()
        }
        fn vocab_size(&self) -> usize {
            256
        }
        fn eos_id(&self) -> u32 {
            0
        }
        fn stop_ids(&self) -> Vec<u32> {
            vec![0, 1]
        }
        fn pad_id(&self) -> u32 {
            2
        }
        fn bos_id(&self) -> Option<u32> {
            None
        }
    }

    #[test]
    fn a_response_stops_at_any_eos_id_or_at_a_stop_string() {
        let strings = ["##".to_string(), String::new()];
        let stop = Stop::new(&Letters, &strings);
        assert_eq!(stop.ids, [0, 1]);
        assert_eq!(stop.strings, ["##"], "empty strings are ignored");
        let ids = |text: &str| Letters.encode(text);
        assert!(stop.ends(&[b'a'.into(), 1]), "the second EOS id");
        assert!(stop.ends(&[b'a'.into(), 0]));
        assert!(!stop.ends(&ids("a#b#")));
        assert!(stop.ends(&ids("The answer ##")));
        // Found in the window of the last tokens even after a long response.
        let long: Vec<u32> = ids(&format!("{}##", "x".repeat(500)));
        assert!(stop.ends(&long));
        assert!(!Stop::from(0).ends(&ids("##")), "ids only");
        assert!(!stop.ends(&[]));
    }
}
