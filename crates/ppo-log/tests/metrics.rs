//! JSONL metrics file behaviour: round trip, key order, create, resume, errors.

use chrono::{DateTime, TimeZone, Utc};
use ppo_log::{LogError, MetricsRecord, MetricsWriter, RecordKind, read_metrics};

fn stamp(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 20, 14, 30, second).unwrap()
}

fn record(kind: RecordKind, step: u64, values: &[(&str, f64)]) -> MetricsRecord {
    MetricsRecord {
        kind,
        step,
        timestamp: stamp(step as u32),
        values: values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
    }
}

/// Equality that treats NaN as equal to NaN.
fn assert_same(a: &MetricsRecord, b: &MetricsRecord) {
    assert_eq!((a.kind, a.step, a.timestamp), (b.kind, b.step, b.timestamp));
    assert_eq!(a.values.len(), b.values.len(), "{a:?} vs {b:?}");
    for ((ka, va), (kb, vb)) in a.values.iter().zip(&b.values) {
        assert_eq!(ka, kb);
        assert!(
            va == vb || (va.is_nan() && vb.is_nan()),
            "{ka}: {va} vs {vb}"
        );
    }
}

fn steps(records: &[MetricsRecord]) -> Vec<u64> {
    records.iter().map(|r| r.step).collect()
}

#[test]
fn round_trip_keeps_records_and_nan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let written = [
        record(
            RecordKind::Train,
            1,
            &[("policy_loss", 0.1), ("value_loss", 2.5)],
        ),
        record(
            RecordKind::Train,
            2,
            &[("policy_loss", f64::NAN), ("kl", -1e-9)],
        ),
        record(RecordKind::Eval, 2, &[("reward", 0.75)]),
    ];
    let mut writer = MetricsWriter::create(&path).unwrap();
    for r in &written {
        writer.write(r).unwrap();
    }
    drop(writer);

    let read = read_metrics(&path).unwrap();
    assert_eq!(read.len(), written.len());
    for (a, b) in written.iter().zip(&read) {
        assert_same(a, b);
    }
    assert!(read[1].values[0].1.is_nan());
    assert_eq!(read[0], written[0]);
}

#[test]
fn file_is_flat_jsonl_in_given_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let mut writer = MetricsWriter::create(&path).unwrap();
    writer
        .write(&record(
            RecordKind::Train,
            3,
            &[("zeta", 1.0), ("alpha", f64::INFINITY), ("mid", 0.5)],
        ))
        .unwrap();
    writer
        .write(&record(RecordKind::Eval, 4, &[("b", 2.0), ("a", 1.0)]))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(text.ends_with('\n'));
    assert_eq!(
        lines[0],
        r#"{"kind":"train","step":3,"timestamp":"2026-01-20T14:30:03Z","zeta":1.0,"alpha":null,"mid":0.5}"#
    );
    assert_eq!(
        lines[1],
        r#"{"kind":"eval","step":4,"timestamp":"2026-01-20T14:30:04Z","b":2.0,"a":1.0}"#
    );
}

#[test]
fn create_refuses_non_empty_file_but_accepts_empty_or_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    std::fs::write(&path, "{}\n").unwrap();
    let err = MetricsWriter::create(&path).unwrap_err();
    assert!(
        matches!(err, LogError::MetricsFileNotEmpty { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    MetricsWriter::create(&empty).unwrap();

    let nested = dir.path().join("run/a/metrics.jsonl");
    let mut writer = MetricsWriter::create(&nested).unwrap();
    writer.write(&record(RecordKind::Train, 1, &[])).unwrap();
    assert_eq!(steps(&read_metrics(&nested).unwrap()), [1]);
}

#[test]
fn resume_drops_records_after_checkpoint_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let mut writer = MetricsWriter::create(&path).unwrap();
    for step in 1..=5 {
        writer
            .write(&record(RecordKind::Train, step, &[("reward", step as f64)]))
            .unwrap();
    }
    writer
        .write(&record(RecordKind::Eval, 3, &[("reward", 9.0)]))
        .unwrap();
    drop(writer);

    let mut writer = MetricsWriter::resume(&path, 3).unwrap();
    writer
        .write(&record(RecordKind::Train, 4, &[("reward", 40.0)]))
        .unwrap();
    drop(writer);

    let read = read_metrics(&path).unwrap();
    assert_eq!(steps(&read), [1, 2, 3, 3, 4]);
    assert_eq!(read[3].kind, RecordKind::Eval);
    assert_eq!(read[4].get("reward"), Some(40.0));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        leftovers.len(),
        1,
        "temporary file left behind: {leftovers:?}"
    );
}

#[test]
fn resume_of_missing_file_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let mut writer = MetricsWriter::resume(&path, 10).unwrap();
    writer.write(&record(RecordKind::Train, 11, &[])).unwrap();
    assert_eq!(steps(&read_metrics(&path).unwrap()), [11]);
}

#[test]
fn malformed_line_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let mut writer = MetricsWriter::create(&path).unwrap();
    writer.write(&record(RecordKind::Train, 1, &[])).unwrap();
    drop(writer);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"kind\":\"train\",\"step\":\n");
    text.push_str(&std::fs::read_to_string(&path).unwrap());
    std::fs::write(&path, &text).unwrap();

    for err in [
        read_metrics(&path).unwrap_err(),
        MetricsWriter::resume(&path, 5).unwrap_err(),
    ] {
        assert!(
            matches!(err, LogError::MalformedRecord { line: 2, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }
    // A failed resume leaves the file as it was.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn unterminated_torn_final_line_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let mut writer = MetricsWriter::create(&path).unwrap();
    writer.write(&record(RecordKind::Train, 1, &[])).unwrap();
    writer.write(&record(RecordKind::Train, 2, &[])).unwrap();
    drop(writer);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"kind\":\"tr");
    std::fs::write(&path, &text).unwrap();

    assert_eq!(steps(&read_metrics(&path).unwrap()), [1, 2]);
    let mut writer = MetricsWriter::resume(&path, 2).unwrap();
    writer.write(&record(RecordKind::Train, 3, &[])).unwrap();
    assert_eq!(steps(&read_metrics(&path).unwrap()), [1, 2, 3]);
}

#[test]
fn reserved_or_duplicate_metric_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let mut writer = MetricsWriter::create(&path).unwrap();
    let err = writer
        .write(&record(RecordKind::Train, 1, &[("step", 1.0)]))
        .unwrap_err();
    assert!(matches!(err, LogError::SerializeRecord { .. }), "{err:?}");
    assert!(
        writer
            .write(&record(RecordKind::Train, 1, &[("x", 1.0), ("x", 2.0)]))
            .is_err()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}
