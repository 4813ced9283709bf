//! Scoring throughput of a DeBERTa-v3-large-shaped reward model (random weights, flex
//! backend): pairs per second for batches of padded pairs, as `DebertaReward` runs them.
//!
//!     cargo run --release -p ppo-models --example deberta_score_bench -- [--pairs N] [--tokens T] [--batch B] [--layers L]
//!
//! Run by `cargo xtask bench deberta`. Defaults: 16 pairs of 128 tokens in batches of 8, all
//! 24 layers of DeBERTa-v3-large (d 1024, 16 heads, intermediate 4096, vocab 128100, 256
//! position buckets over 512 positions).

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use ppo_models::{DebertaConfig, DebertaForSequenceClassification, Rng, to_f32_vec};

fn main() {
    let mut pairs = 16usize;
    let mut tokens = 128usize;
    let mut batch = 8usize;
    let mut config = DebertaConfig::v3_large();
    let args: Vec<String> = std::env::args().skip(1).collect();
    for flag in args.chunks(2) {
        let value = || -> usize {
            flag.get(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", flag[0]))
        };
        match flag[0].as_str() {
            "--pairs" => pairs = value(),
            "--tokens" => tokens = value(),
            "--batch" => batch = value(),
            "--layers" => config.num_hidden_layers = value(),
            other => panic!("unknown argument {other}"),
        }
    }
    let device = Device::flex();
    let started = Instant::now();
    let model = DebertaForSequenceClassification::init(&config, &mut Rng::new(0), &device).valid();
    println!(
        "model: {} parameters, {} layers, built in {:.1} s",
        model.num_params(),
        config.num_hidden_layers,
        started.elapsed().as_secs_f64()
    );
    // Pairs of `tokens` tokens; every other one 3/4 as long, so batches are padded.
    let mut rng = Rng::new(1);
    let lengths: Vec<usize> = (0..pairs)
        .map(|i| if i % 2 == 0 { tokens } else { tokens * 3 / 4 })
        .collect();
    let mut scored = 0;
    let mut seconds = Vec::new();
    for chunk in lengths.chunks(batch) {
        let width = *chunk.iter().max().unwrap_or(&0);
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        for &len in chunk {
            for pos in 0..width {
                let real = pos < len;
                ids.push(if real {
                    4 + (rng.next_u64() % (config.vocab_size as u64 - 4)) as u32
                } else {
                    0
                });
                mask.push(real);
            }
        }
        let types = vec![0u32; ids.len()];
        let started = Instant::now();
        let logits = to_f32_vec(model.forward(&ids, &types, &mask, chunk.len()));
        assert!(logits.iter().all(|x| x.is_finite()));
        seconds.push(started.elapsed().as_secs_f64());
        scored += chunk.len();
    }
    let total: f64 = seconds.iter().sum();
    println!(
        "{scored} pairs of {tokens} (and {}) tokens in batches of {batch}: {total:.2} s, {:.3} pairs/s (per batch: {})",
        tokens * 3 / 4,
        scored as f64 / total,
        seconds
            .iter()
            .map(|s| format!("{s:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
