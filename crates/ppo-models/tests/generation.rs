//! Generation correctness: KV cache, left padding and log-probs at the sampling temperature.

use burn::tensor::{Device, Tensor};
use ppo_models::{
    ByteTokenizer, CausalLm, Rng, SamplingConfig, Tokenizer, TransformerConfig, generate,
    response_logprobs, token_logprobs, token_logprobs_and_entropy,
};

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    ppo_models::to_f32_vec(t)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn configs() -> Vec<TransformerConfig> {
    let qwen3 = TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE);
    let qwen2 = TransformerConfig {
        attention_bias: true,
        qk_norm: false,
        tie_word_embeddings: false,
        num_key_value_heads: 4,
        rope_theta: 1_000_000.0,
        ..qwen3.clone()
    };
    vec![qwen3, qwen2]
}

fn model(config: &TransformerConfig, seed: u64) -> CausalLm {
    // Larger weights than the default init, so logits differ clearly between tokens.
    let config = TransformerConfig {
        initializer_range: 0.3,
        ..config.clone()
    };
    CausalLm::init(&config, &mut Rng::new(seed), &Device::flex())
}

fn prompts() -> Vec<Vec<u32>> {
    let tok = ByteTokenizer;
    [
        "如何制作一杯好咖啡？",
        "2+2=",
        "hello world, a longer prompt",
    ]
    .iter()
    .map(|p| {
        let mut ids = vec![ByteTokenizer::BOS];
        ids.extend(tok.encode(p));
        ids
    })
    .collect()
}

/// `policy`'s samples for [`prompts`] with the byte tokenizer's EOS and padding.
fn sample(policy: &CausalLm, sampling: &SamplingConfig, seed: u64) -> ppo_models::Generation {
    let tok = ByteTokenizer;
    generate(
        policy,
        &prompts(),
        sampling,
        tok.eos_id(),
        tok.pad_id(),
        &mut Rng::new(seed),
    )
}

#[test]
fn kv_cache_gives_the_same_samples_as_full_recompute() {
    for config in configs() {
        let policy = model(&config, 1);
        let tok = ByteTokenizer;
        let sampling = SamplingConfig {
            max_new_tokens: 12,
            temperature: 0.9,
            ..Default::default()
        };
        let cached = sample(&policy, &sampling, 3);
        let no_cache = SamplingConfig {
            use_cache: false,
            ..sampling
        };
        let full = generate(
            &policy,
            &prompts(),
            &no_cache,
            tok.eos_id(),
            tok.pad_id(),
            &mut Rng::new(3),
        );
        assert_eq!(cached.sequences, full.sequences);
        assert_eq!(cached.response_mask, full.response_mask);
        assert!(max_abs_diff(&cached.logprobs, &full.logprobs) < 1e-4);
    }
}

#[test]
fn left_padded_row_equals_the_prompt_run_alone() {
    for config in configs() {
        let policy = model(&config, 2);
        let tok = ByteTokenizer;
        let sampling = SamplingConfig {
            max_new_tokens: 10,
            greedy: true,
            ..Default::default()
        };
        let all = prompts();
        let batched = generate(
            &policy,
            &all,
            &sampling,
            tok.eos_id(),
            tok.pad_id(),
            &mut Rng::new(0),
        );
        for (row, prompt) in all.iter().enumerate() {
            let alone = generate(
                &policy,
                std::slice::from_ref(prompt),
                &sampling,
                tok.eos_id(),
                tok.pad_id(),
                &mut Rng::new(0),
            );
            assert_eq!(batched.response(row), alone.response(0), "row {row}");
            let r = alone.response_len;
            let a = &alone.logprobs[..r];
            let b = &batched.logprobs[row * batched.response_len..row * batched.response_len + r];
            assert!(max_abs_diff(a, b) < 1e-4, "row {row}");
        }
        // The padded prompt's logits equal the unpadded prompt's at every real position.
        let short = &all[1];
        let batch = ppo_models::left_pad(&all, tok.pad_id());
        let logits = policy.forward(&batch.input_ids, &batch.attention_mask, 3, None);
        let [_, l, v] = logits.dims();
        let row = to_vec(logits.slice([1..2, l - short.len()..l, 0..v]));
        let alone = to_vec(policy.forward(short, &vec![true; short.len()], 1, None));
        assert!(max_abs_diff(&row, &alone) < 1e-4);
    }
}

#[test]
fn sampling_logprobs_equal_a_fresh_forward_at_the_same_temperature() {
    for config in configs() {
        let policy = model(&config, 4);
        for temperature in [0.7, 1.0, 1.5] {
            let sampling = SamplingConfig {
                max_new_tokens: 8,
                temperature,
                top_k: 50,
                top_p: 0.95,
                ..Default::default()
            };
            let g = sample(&policy, &sampling, 9);
            let logits = policy.forward(&g.sequences, &g.attention_mask, g.batch_size, None);
            let (logp, entropy) =
                response_logprobs(logits, &g.response_ids(), g.prompt_len, temperature);
            let logp = to_vec(logp);
            for (i, &m) in g.response_mask.iter().enumerate() {
                if m {
                    assert!(
                        (logp[i] - g.logprobs[i]).abs() < 1e-4,
                        "T={temperature} i={i}: {} vs {}",
                        logp[i],
                        g.logprobs[i]
                    );
                }
            }
            let entropy = to_vec(entropy);
            let max_entropy = (ByteTokenizer::VOCAB_SIZE as f32).ln();
            assert!(
                entropy
                    .iter()
                    .all(|&h| h >= -1e-5 && h <= max_entropy + 1e-4)
            );
        }
    }
}

#[test]
fn stops_at_eos_keeps_it_and_masks_the_rest() {
    let config = TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE);
    let policy = model(&config, 5);
    let tok = ByteTokenizer;
    let sampling = SamplingConfig {
        max_new_tokens: 40,
        temperature: 3.0,
        ..Default::default()
    };
    let g = sample(&policy, &sampling, 1);
    let ids = g.response_ids();
    let r = g.response_len;
    for row in 0..g.batch_size {
        let resp = g.response(row);
        let eos_at = resp.iter().position(|&t| t == tok.eos_id());
        assert_eq!(eos_at.is_some(), g.finished[row]);
        if let Some(pos) = eos_at {
            assert_eq!(pos + 1, resp.len(), "EOS is the last response token");
            for i in resp.len()..r {
                assert!(!g.response_mask[row * r + i]);
                assert_eq!(ids[row * r + i], tok.pad_id());
                assert_eq!(g.logprobs[row * r + i], 0.0);
            }
        } else {
            assert_eq!(resp.len(), r);
        }
    }
}

#[test]
fn several_eos_ids_and_stop_strings_end_a_row_at_the_first() {
    let config = TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE);
    let policy = model(&config, 5);
    let sampling = SamplingConfig {
        max_new_tokens: 12,
        greedy: true,
        ..Default::default()
    };
    let pad = ByteTokenizer.pad_id();
    // An id no row produces: the rows run to the limit.
    let free = generate(
        &policy,
        &prompts(),
        &sampling,
        u32::MAX,
        pad,
        &mut Rng::new(0),
    );
    assert!(free.finished.iter().all(|f| !f));
    // Stop ids: the 3rd token of row 0 and the 5th of row 1; each row ends at the first of
    // either it meets (greedy decoding: the same tokens up to there).
    let (a, b) = (free.response(0)[2], free.response(1)[4]);
    let stopped = generate(
        &policy,
        &prompts(),
        &sampling,
        ppo_models::Stop::tokens(vec![a, b]),
        pad,
        &mut Rng::new(0),
    );
    for row in 0..3 {
        let full = free.response(row);
        let end = full.iter().position(|t| *t == a || *t == b);
        let got = stopped.response(row);
        match end {
            Some(i) => {
                assert_eq!(got, full[..=i], "row {row}");
                assert!(stopped.finished[row]);
            }
            None => assert_eq!(got, full),
        }
    }
    assert!(stopped.response(0).len() <= 3 && stopped.finished[0]);

    // A stop string: the text of tokens 2..4 of row 2 ends it at its 4th token (or earlier,
    // where the same text appeared before).
    let full = free.response(2);
    let text = ByteTokenizer.decode(&full[2..4]);
    if !text.is_empty() {
        let stop = ppo_models::Stop::new(&ByteTokenizer, std::slice::from_ref(&text));
        let g = generate(&policy, &prompts(), &sampling, stop, pad, &mut Rng::new(0));
        let got = g.response(2);
        assert!(g.finished[2]);
        assert!(got.len() <= 4, "{got:?}");
        assert!(ByteTokenizer.decode(&got).contains(&text));
        assert_eq!(got, full[..got.len()]);
    }
}

#[test]
fn response_logits_are_the_full_forwards_response_rows_bit_for_bit() {
    for config in configs() {
        let policy = model(&config, 5);
        let sampling = SamplingConfig {
            max_new_tokens: 6,
            ..Default::default()
        };
        let g = sample(&policy, &sampling, 3);
        let (b, l, p) = (g.batch_size, g.seq_len(), g.prompt_len);
        let full = policy.forward(&g.sequences, &g.attention_mask, b, None);
        let vocab = full.dims()[2];
        let rows = to_vec(full.clone().slice([0..b, p - 1..l - 1, 0..vocab]));
        let tail = policy.response_logits(&g.sequences, &g.attention_mask, b, p);
        assert_eq!(tail.dims(), [b, l - p, vocab]);
        assert_eq!(
            to_vec(tail.clone()),
            rows,
            "the head on the response rows only"
        );
        for temperature in [0.7, 1.0] {
            let (a, ha) = response_logprobs(full.clone(), &g.response_ids(), p, temperature);
            let (c, hc) = token_logprobs_and_entropy(tail.clone(), &g.response_ids(), temperature);
            assert_eq!(to_vec(a.clone()), to_vec(c));
            assert_eq!(to_vec(ha), to_vec(hc));
            let d = token_logprobs(tail.clone(), &g.response_ids(), temperature);
            assert_eq!(to_vec(a), to_vec(d));
        }
    }
}
