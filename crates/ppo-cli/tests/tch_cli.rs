//! `ppo-cli` on LibTorch's CPU backend (`tch:cpu`), built with `--features tch`: train,
//! generate and eval end to end, exact resume, agreement with flex, and placement by role
//! across two backends. `.ci/run` runs these when it can install PyTorch 2.9.0.
#![cfg(feature = "tch")]

use std::path::Path;
use std::process::Command;

use ppo_log::{MetricsRecord, RecordKind};

#[path = "support/run.rs"]
mod run;

use run::*;

fn value(record: &MetricsRecord, key: &str) -> f64 {
    record
        .values
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} missing"))
        .1
}

fn train_records(run: &Path) -> Vec<MetricsRecord> {
    metrics(run)
        .into_iter()
        .filter(|r| r.kind == RecordKind::Train)
        .collect()
}

/// Largest |a − b| / max(|b|, 1) over the metrics both records have, naming the worst one
/// (clocks and memory figures left out, and the clip fractions: counts of tokens past a
/// threshold, where a last-bit difference moves one token across).
fn worst_difference(a: &MetricsRecord, b: &MetricsRecord) -> (String, f64) {
    let mut worst = (String::new(), 0.0f64);
    for (key, va) in &a.values {
        if key.starts_with("time/")
            || key == "tokens_per_second"
            || key.contains("memory")
            || key.ends_with("clipfrac")
        {
            continue;
        }
        let vb = value(b, key);
        let rel = (va - vb).abs() / vb.abs().max(1.0);
        if rel > worst.1 || rel.is_nan() {
            worst = (key.clone(), rel);
        }
    }
    worst
}

#[test]
fn train_generate_and_eval_run_on_libtorch_and_resume_bit_for_bit() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let device = ["--device", "tch:cpu"];
    ok(train(&a, &[&device[..], &["--max-steps", "6"]].concat()));
    let text = ok(train(
        &b,
        &[&device[..], &["--max-steps", "6", "--stop-after", "3"]].concat(),
    ));
    assert!(text.contains("--stop-after"), "{text}");
    let text = ok(train(&b, &[&device[..], &["--max-steps", "6"]].concat()));
    assert!(text.contains("resuming"), "{text}");
    assert_eq!(train_records(&a).len(), 6);
    assert_eq!(deterministic(&metrics(&a)), deterministic(&metrics(&b)));
    assert_eq!(final_logits(&a), final_logits(&b));

    let checkpoint = a.join("checkpoints/step_6");
    let out = Command::new(BIN)
        .args(["generate", "--device", "tch:cpu", "--greedy", "--json"])
        .args(["--max-new-tokens", "4", "--prompt", "Write the letter q"])
        .arg("--checkpoint")
        .arg(&checkpoint)
        .output()
        .unwrap();
    let text = ok(out);
    let json: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert!(
        json["token_ids"].as_array().is_some_and(|t| !t.is_empty()),
        "{json}"
    );
    // Greedy tokens on tch:cpu are flex's.
    let flex = Command::new(BIN)
        .args(["generate", "--device", "flex", "--greedy", "--json"])
        .args(["--max-new-tokens", "4", "--prompt", "Write the letter q"])
        .arg("--checkpoint")
        .arg(&checkpoint)
        .output()
        .unwrap();
    let flex: serde_json::Value = serde_json::from_str(ok(flex).trim()).unwrap();
    assert_eq!(json["token_ids"], flex["token_ids"]);

    let data = root.path().join("letters.jsonl");
    let lines: String = "abcdefgh"
        .chars()
        .map(|c| format!("{{\"prompt\": \"Write the letter {c}\", \"reference\": \"{c}\"}}\n"))
        .collect();
    std::fs::write(&data, lines).unwrap();
    let out = Command::new(BIN)
        .args(["eval", "--device", "tch:cpu", "--json"])
        .args(["--input", "prompt", "--output", "reference"])
        .arg("--checkpoint")
        .arg(&checkpoint)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(ok(out).trim()).unwrap();
    assert_eq!(report["samples"], 8, "{report}");
    assert!(report["eval_reward"].is_number(), "{report}");
}

/// Metrics of a tiny run's first iterations on `device_args` against all on flex.
fn compare_with_flex(device_args: &[&str], steps: usize, tolerance: f64) {
    let root = tempfile::tempdir().unwrap();
    let (flex, other) = (root.path().join("flex"), root.path().join("other"));
    let max_steps = steps.to_string();
    ok(train(&flex, &["--max-steps", &max_steps]));
    ok(train(
        &other,
        &[device_args, &["--max-steps", &max_steps]].concat(),
    ));
    let (rf, ro) = (train_records(&flex), train_records(&other));
    assert_eq!(rf.len(), steps);
    for (step, (f, o)) in rf.iter().zip(&ro).enumerate() {
        // Same sampled tokens: the scores are equal, not close.
        for key in ["score", "response_length"] {
            assert_eq!(value(f, key), value(o, key), "{key} at step {}", step + 1);
        }
        let (key, rel) = worst_difference(o, f);
        println!("{device_args:?} step {}: worst {key} {rel:.2e}", step + 1);
        assert!(
            rel <= tolerance,
            "{device_args:?} step {}: {key} differs by {rel:e} (relative)",
            step + 1
        );
    }
}

#[test]
fn a_run_on_libtorch_tracks_the_same_run_on_flex() {
    // Different kernels (summation order), the same maths: after 3 iterations of updates the
    // metrics agree to 1e-3 relative; the first iteration's to float rounding.
    compare_with_flex(&["--device", "tch:cpu"], 3, 1e-3);
}

#[test]
fn placement_by_role_across_backends_gives_the_metrics_of_one_device() {
    // Policy on flex, reference and critic on LibTorch: only ids, masks and per-token
    // log-probs/values cross.
    compare_with_flex(
        &[
            "--set",
            "devices.reference=\"tch:cpu\"",
            "--set",
            "devices.critic=\"tch:cpu\"",
            "--set",
            "devices.reward=\"tch:cpu\"",
        ],
        3,
        1e-3,
    );
}

#[test]
fn version_says_libtorch_is_built_in() {
    let text = ok(Command::new(BIN).arg("--version").output().unwrap());
    assert!(
        text.contains("backends: flex, tch:cpu, tch:cuda:N (LibTorch)"),
        "{text}"
    );
}

#[test]
fn a_lora_run_on_libtorch_resumes_bit_for_bit_and_tracks_flex() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, flex) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("flex"),
    );
    let lora = [
        "--set",
        "lora.rank=4",
        "--set",
        "lora.target_modules=[\"q_proj\",\"v_proj\",\"up_proj\"]",
        "--set",
        "training.learning_rate=1e-2",
    ];
    let on = |device: &'static str| [&lora[..], &["--device", device]].concat();
    ok(train(
        &a,
        &[&on("tch:cpu")[..], &["--max-steps", "4"]].concat(),
    ));
    ok(train(
        &b,
        &[
            &on("tch:cpu")[..],
            &["--max-steps", "4", "--stop-after", "2"],
        ]
        .concat(),
    ));
    ok(train(
        &b,
        &[&on("tch:cpu")[..], &["--max-steps", "4"]].concat(),
    ));
    assert_eq!(deterministic(&metrics(&a)), deterministic(&metrics(&b)));
    assert_eq!(final_logits(&a), final_logits(&b));
    // The same adapters trained on flex: same first iteration within the backends' tolerance.
    ok(train(
        &flex,
        &[&on("flex")[..], &["--max-steps", "2"]].concat(),
    ));
    let (ours, theirs) = (train_records(&a), train_records(&flex));
    let (key, rel) = worst_difference(&ours[0], &theirs[0]);
    assert!(
        rel <= 1e-3,
        "tch:cpu vs flex with LoRA: {key} differs by {rel}"
    );
}
