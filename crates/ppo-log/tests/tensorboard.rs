//! TensorBoard event files read back by TensorBoard itself (`scripts/read_tensorboard.py`
//! with the `tensorboard` package from `PPO_RS_TENSORBOARD_PYTHON`, which `.ci/run` installs):
//! every scalar at its step with its value, the config text, and each step once after a
//! resume rewrote the file. Skipped, with the reason printed and recorded, when the package
//! is not installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ppo_log::{CONFIG_TEXT_TAG, EventFileWriter, FILE_VERSION, MetricsRecord, RecordKind};

#[path = "support/skip.rs"]
mod skip;
use skip::report_skip;

#[path = "support/tensorboard_reader.rs"]
mod tensorboard_reader;
use tensorboard_reader::{Seen, read_with_tensorboard};

fn record(kind: RecordKind, step: u64, values: &[(&str, f64)]) -> MetricsRecord {
    MetricsRecord {
        kind,
        step,
        timestamp: DateTime::<Utc>::from_timestamp(1_700_000_000 + step as i64, 0).unwrap(),
        values: values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
    }
}

/// Four iterations (with a metric whose name has a slash) and two evaluations.
fn run_records() -> Vec<MetricsRecord> {
    let mut records = Vec::new();
    for step in 1..=4u64 {
        let x = step as f64;
        records.push(record(
            RecordKind::Train,
            step,
            &[
                ("reward", 0.1 * x),
                ("policy_loss", -0.01 / x),
                ("time/generate", 1.5 + x),
            ],
        ));
        if step % 2 == 0 {
            records.push(record(RecordKind::Eval, step, &[("eval_reward", 0.2 * x)]));
        }
    }
    records
}

/// Asserts that `seen` holds exactly the values of `records`, each (tag, step) once, as
/// TensorBoard's 32-bit scalars.
fn assert_scalars(seen: &Seen, records: &[MetricsRecord]) {
    let mut expected: BTreeMap<String, Vec<(u64, Option<f64>)>> = BTreeMap::new();
    for r in records {
        for (tag, value) in &r.values {
            expected
                .entry(tag.clone())
                .or_default()
                .push((r.step, Some(f64::from(*value as f32))));
        }
    }
    assert_eq!(seen.scalars, expected);
    for (tag, points) in &expected {
        for (step, _) in points {
            assert_eq!(seen.raw_counts.get(&format!("{tag}@{step}")), Some(&1));
        }
    }
}

fn run_against(python: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let tb = dir.path().join("tb");
    let config = "```toml\nseed = 42\n\n[training]\nlearning_rate = 1e-5\n```";
    let records = run_records();

    // A run's first invocation: everything as it happens.
    let mut writer = EventFileWriter::create(&tb, "test-host", config, &[]).unwrap();
    for r in &records {
        writer.write(r).unwrap();
    }
    drop(writer);
    let seen = read_with_tensorboard(python, &tb);
    assert_eq!(seen.files.len(), 1);
    assert!(
        seen.files[0].starts_with("events.out.tfevents."),
        "{seen:?}"
    );
    assert!(seen.files[0].ends_with(".test-host"), "{seen:?}");
    assert_eq!(seen.file_versions, [FILE_VERSION]);
    assert_scalars(&seen, &records);
    assert_eq!(
        seen.texts,
        BTreeMap::from([(CONFIG_TEXT_TAG.to_owned(), vec![(0, config.to_owned())])])
    );

    // Resumed from the checkpoint of step 2 (its history: the first three records), then
    // steps 3 and 4 again with other values: the reader sees them once, with the new values.
    let kept = &records[..3];
    assert_eq!(kept.last().unwrap().step, 2);
    let mut writer = EventFileWriter::create(&tb, "test-host", config, kept).unwrap();
    let mut resumed = kept.to_vec();
    for r in &records[3..] {
        let mut again = r.clone();
        for (_, value) in &mut again.values {
            *value += 100.0;
        }
        writer.write(&again).unwrap();
        resumed.push(again);
    }
    drop(writer);
    let seen = read_with_tensorboard(python, &tb);
    assert_eq!(seen.files.len(), 1, "{seen:?}");
    assert_eq!(seen.file_versions, [FILE_VERSION]);
    assert_scalars(&seen, &resumed);
    assert_eq!(seen.texts[CONFIG_TEXT_TAG], [(0, config.to_owned())]);
}

#[test]
fn tensorboard_reads_every_scalar_and_the_config_once() {
    match tensorboard_python() {
        Some(python) => run_against(&python),
        None => report_skip(
            "ppo-log tensorboard",
            "the tensorboard package is not installed (set PPO_RS_TENSORBOARD_PYTHON, e.g. from \
             scripts/install-tensorboard.sh)",
        ),
    }
}

/// The python that has the `tensorboard` package: `PPO_RS_TENSORBOARD_PYTHON`.
fn tensorboard_python() -> Option<PathBuf> {
    std::env::var_os("PPO_RS_TENSORBOARD_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}
