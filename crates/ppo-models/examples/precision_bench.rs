//! Forward + backward time of a Qwen3-shaped causal LM (random weights, flex backend) with f32
//! compute against bf16 compute with f32 master weights, measured interleaved (f32, bf16,
//! f32, bf16, …) so drifts of a shared machine hit both alike.
//!
//!     cargo run --release -p ppo-models --example precision_bench -- [--hidden D] [--layers L] [--batch B] [--tokens T] [--reps N]
//!
//! Run by `cargo xtask bench precision`. Defaults: d 256, 4 layers, 4 query / 2 key-value
//! heads of 64, MLP 768, vocab 8192; 4 rows of 64 tokens; 5 repetitions after one warm-up.

use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use ppo_models::{CausalLm, Precision, Rng, TransformerConfig, response_logprobs};

/// Seconds of one forward + backward of a next-token loss over all positions but the first.
fn step(model: &CausalLm, ids: &[u32], batch: usize) -> f64 {
    let started = Instant::now();
    let mask = vec![true; ids.len()];
    let tokens = ids.len() / batch;
    let targets: Vec<u32> = ids
        .chunks(tokens)
        .flat_map(|row| row[1..].to_vec())
        .collect();
    let logits = model.forward(ids, &mask, batch, None);
    let (logp, _) = response_logprobs(logits, &targets, 1, 1.0);
    let loss = logp.mean().neg();
    let grads = GradientsParams::from_grads(loss.backward(), model);
    assert!(!grads.is_empty());
    started.elapsed().as_secs_f64()
}

fn main() {
    let mut config = TransformerConfig {
        vocab_size: 8192,
        hidden_size: 256,
        intermediate_size: 768,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 64,
        ..TransformerConfig::tiny(8192)
    };
    let (mut batch, mut tokens, mut reps) = (4usize, 64usize, 5usize);
    let args: Vec<String> = std::env::args().skip(1).collect();
    for flag in args.chunks(2) {
        let value = || -> usize {
            flag.get(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", flag[0]))
        };
        match flag[0].as_str() {
            "--hidden" => {
                config.hidden_size = value();
                config.intermediate_size = 3 * config.hidden_size;
            }
            "--layers" => config.num_hidden_layers = value(),
            "--batch" => batch = value(),
            "--tokens" => tokens = value(),
            "--reps" => reps = value(),
            other => panic!("unknown argument {other}"),
        }
    }
    let device = Device::flex().autodiff();
    let f32_model = CausalLm::init(&config, &mut Rng::new(0), &device);
    let bf16_model = f32_model.clone().with_compute_dtype(Precision::Bf16);
    println!(
        "model: {} parameters, d {}, {} layers, vocab {}; {batch} rows of {tokens} tokens",
        f32_model.num_params(),
        config.hidden_size,
        config.num_hidden_layers,
        config.vocab_size
    );
    let mut rng = Rng::new(1);
    let ids: Vec<u32> = (0..batch * tokens)
        .map(|_| (rng.next_u64() % config.vocab_size as u64) as u32)
        .collect();
    // Warm-up (allocator, first-touch pages), not counted.
    step(&f32_model, &ids, batch);
    step(&bf16_model, &ids, batch);
    let (mut f32_seconds, mut bf16_seconds) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        f32_seconds.push(step(&f32_model, &ids, batch));
        bf16_seconds.push(step(&bf16_model, &ids, batch));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, b) = (median(&mut f32_seconds), median(&mut bf16_seconds));
    println!(
        "forward+backward, median of {reps}: f32 {f:.3} s, bf16 {b:.3} s, bf16/f32 {:.2}",
        b / f
    );
    println!("f32 runs: {f32_seconds:.3?}");
    println!("bf16 runs: {bf16_seconds:.3?}");
}
