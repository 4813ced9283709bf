//! Shared helpers of the integration tests: fixture paths and the expected GSM8K-like records.

use std::path::PathBuf;

use ppo_data::{DataSource, Record};

/// `tests/fixtures/<name>`, written by scripts/make_data_fixtures.py.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The records every GSM8K-like fixture holds (`tests/fixtures/expected.json`).
pub fn expected_gsm8k() -> Vec<Record> {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A source reading `input` → `output` from `path`.
pub fn source(path: impl Into<PathBuf>, input: &str, output: Option<&str>) -> DataSource {
    DataSource {
        input: input.into(),
        output: output.map(str::to_owned),
        ..DataSource::new(path)
    }
}
