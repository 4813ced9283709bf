//! Running `ppo-cli train` on a tiny configuration and reading what it wrote, shared by the
//! CLI tests (flex and LibTorch): included with `#[path = "support/run.rs"] mod run;`.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use ppo_log::{MetricsRecord, RecordKind, read_metrics};

pub const BIN: &str = env!("CARGO_BIN_EXE_ppo-cli");

/// A tiny, fast run: 4 prompts × 2 samples per iteration, 4 iterations per epoch (18 training
/// prompts, 2 held out), 3 epochs, evaluation and checkpoints every 2 iterations.
pub fn tiny_args() -> Vec<String> {
    [
        "model.hidden_size=32",
        "model.intermediate_size=64",
        "model.num_hidden_layers=1",
        "model.head_dim=8",
        "data.num_samples=20",
        "training.num_epochs=3",
        "eval.eval_split=0.1",
        "eval.eval_every_n_steps=2",
        "training.batch_size=4",
        "training.group_size=2",
        "training.ppo_epochs=2",
        "training.mini_batch_size=4",
        "training.gradient_accumulation_steps=2",
        "training.warmup_steps=2",
        "generation.max_new_tokens=4",
        "checkpoint.save_every_n_steps=2",
        "checkpoint.keep_last_n=0",
        "plots=false",
    ]
    .iter()
    .flat_map(|s| ["--set".to_string(), s.to_string()])
    .collect()
}

pub fn train(out: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("train")
        .arg("--output-dir")
        .arg(out)
        .args(tiny_args())
        .args(extra)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1");
    cmd.output().expect("ppo-cli runs")
}

/// Stdout and stderr of `out`, which must have succeeded (`success`) or failed.
pub fn expect(out: Output, success: bool) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.success(),
        success,
        "ppo-cli exit status:\n{text}"
    );
    text
}

pub fn ok(out: Output) -> String {
    expect(out, true)
}

pub fn failed(out: Output) -> String {
    expect(out, false)
}

/// A record's kind, step and the bits of its values.
pub type RecordBits = (RecordKind, u64, Vec<(String, u64)>);

/// Records with the values that are functions of the computation (no clocks, no memory).
pub fn deterministic(records: &[MetricsRecord]) -> Vec<RecordBits> {
    records
        .iter()
        .map(|r| {
            let values = r
                .values
                .iter()
                .filter(|(k, _)| {
                    !(k.starts_with("time/")
                        || k == "tokens_per_second"
                        || k.ends_with("memory_mib")
                        || k == "memory_rss_mib")
                })
                .map(|(k, v)| (k.clone(), v.to_bits()))
                .collect();
            (r.kind, r.step, values)
        })
        .collect()
}

pub fn metrics(run: &Path) -> Vec<MetricsRecord> {
    read_metrics(run.join("logs/metrics.jsonl")).unwrap()
}

pub fn step_dirs(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Bits of the final policy's logits on a probe sequence.
pub fn final_logits(run: &Path) -> Vec<u32> {
    let device = burn::tensor::Device::flex();
    let (_, policy) = ppo_models::hf::load_causal_lm(run.join("final/policy"), &device).unwrap();
    let probe = [256u32, 87, 114, 105, 116, 101];
    ppo_models::to_f32_vec(policy.forward(&probe, &[true; 6], 1, None))
        .iter()
        .map(|v| v.to_bits())
        .collect()
}
