//! `ppo-cli train` with `[tracking] tensorboard = true`: the event files in `OUTPUT_DIR/tb/`
//! read back by TensorBoard itself (`scripts/read_tensorboard.py` with
//! `PPO_RS_TENSORBOARD_PYTHON`) hold every metric of `metrics.jsonl` at its step, once, even
//! after a resume from an earlier checkpoint dropped and rewrote steps, and the resolved
//! config as text; a TensorBoard directory that cannot be written does not stop training.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ppo_log::read_metrics;

#[path = "../../ppo-log/tests/support/skip.rs"]
mod skip;
use skip::report_skip;

#[path = "../../ppo-log/tests/support/tensorboard_reader.rs"]
mod tensorboard_reader;
use tensorboard_reader::read_with_tensorboard;

const BIN: &str = env!("CARGO_BIN_EXE_ppo-cli");

/// A tiny run (as in `train_cli.rs`): 4 iterations per epoch, evaluation and checkpoints
/// every 2 iterations, TensorBoard on.
fn train(out: &Path, extra: &[&str]) -> Output {
    let sets = [
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
        "training.ppo_epochs=1",
        "training.mini_batch_size=4",
        "generation.max_new_tokens=4",
        "checkpoint.save_every_n_steps=2",
        "checkpoint.keep_last_n=0",
        "plots=false",
        "tracking.tensorboard=true",
    ];
    Command::new(BIN)
        .arg("train")
        .arg("--output-dir")
        .arg(out)
        .args(sets.iter().flat_map(|s| ["--set", s]))
        .args(extra)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .output()
        .expect("ppo-cli runs")
}

fn ok(out: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ppo-cli failed:\n{text}");
    text
}

/// Every scalar of `metrics.jsonl` at its step, as TensorBoard's 32-bit values (`None` for
/// NaN, which JSON cannot carry).
fn expected_scalars(run: &Path) -> BTreeMap<String, Vec<(u64, Option<f64>)>> {
    let mut expected: BTreeMap<String, Vec<(u64, Option<f64>)>> = BTreeMap::new();
    for record in read_metrics(run.join("logs/metrics.jsonl")).unwrap() {
        for (tag, value) in record.values {
            expected.entry(tag).or_default().push((
                record.step,
                value.is_finite().then(|| f64::from(value as f32)),
            ));
        }
    }
    expected
}

#[test]
fn tensorboard_shows_each_step_once_after_a_resume_from_an_earlier_checkpoint() {
    let Some(python) = tensorboard_python() else {
        report_skip(
            "ppo-cli train_tensorboard",
            "the tensorboard package is not installed (set PPO_RS_TENSORBOARD_PYTHON, e.g. from \
             scripts/install-tensorboard.sh)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // Steps 1–3 written, then resumed from step 2: step 3 is dropped and written again.
    ok(train(&run, &["--max-steps", "6", "--stop-after", "3"]));
    let first = read_with_tensorboard(&python, &run.join("tb"));
    assert_eq!(first.scalars["reward"].len(), 3, "{first:?}");
    let step_2 = run.join("checkpoints/step_2");
    let text = ok(train(
        &run,
        &["--max-steps", "6", "--resume", step_2.to_str().unwrap()],
    ));
    assert!(text.contains("writing TensorBoard events"), "{text}");

    let seen = read_with_tensorboard(&python, &run.join("tb"));
    assert_eq!(seen.files.len(), 1, "{seen:?}");
    assert_eq!(seen.file_versions, ["brain.Event:2"]);
    let expected = expected_scalars(&run);
    assert_eq!(
        expected["reward"].iter().map(|p| p.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        expected["eval_reward"]
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [2, 4, 6]
    );
    assert_eq!(seen.scalars, expected);
    assert!(seen.raw_counts.values().all(|&n| n == 1), "{seen:?}");
    // The third iteration was written twice (before and after the resume): TensorBoard has
    // only the second, the one metrics.jsonl and the checkpoints hold.
    assert_ne!(
        first.scalars["time/generate"][2], seen.scalars["time/generate"][2],
        "step 3 was rewritten"
    );

    let config = fs_err::read_to_string(run.join("training_config.toml")).unwrap();
    let text = format!("```toml\n{}\n```", config.trim_end());
    assert_eq!(seen.texts["config"], [(0, text)]);
}

#[test]
fn an_unwritable_tensorboard_directory_does_not_stop_training() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    ok(train(&run, &["--max-steps", "4", "--stop-after", "2"]));
    // A file where the directory should be: no event file can be written.
    fs_err::remove_dir_all(run.join("tb")).unwrap();
    fs_err::write(run.join("tb"), b"in the way").unwrap();
    let text = ok(train(&run, &["--max-steps", "4"]));
    assert!(
        text.contains("WARNING") && text.contains("TensorBoard logging disabled"),
        "{text}"
    );
    assert!(text.contains("training finished"), "{text}");
    let steps: Vec<u64> = read_metrics(run.join("logs/metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r.kind == ppo_log::RecordKind::Train)
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, [1, 2, 3, 4]);
}

/// The python that has the `tensorboard` package: `PPO_RS_TENSORBOARD_PYTHON`.
fn tensorboard_python() -> Option<PathBuf> {
    std::env::var_os("PPO_RS_TENSORBOARD_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}
