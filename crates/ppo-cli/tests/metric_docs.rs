//! Every metric the trainer emits is defined in docs/logging.md, and every metric defined there
//! is emitted: the names are read from the sources that push them (`m.push("…")` in ppo-core's
//! update and evaluation, the loop's additions in ppo-cli, the reward sources' own counts).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The string literals that follow `marker` (whitespace and newlines allowed in between).
fn literals_after(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = text[i + marker.len()..].trim_start();
            let rest = rest.strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

/// The names of the metrics the trainer, the evaluation, the training loop and the reward
/// sources emit (test modules excluded).
fn emitted() -> BTreeSet<String> {
    let without_tests = |text: String| match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    let mut names = BTreeSet::new();
    for path in [
        "crates/ppo-core/src/trainer/update.rs",
        "crates/ppo-core/src/evaluate.rs",
        "crates/ppo-cli/src/train/session.rs",
    ] {
        names.extend(literals_after(&without_tests(read(path)), "push("));
    }
    // Reward sources report their own counts as `("name".into(), value)` in `last_metrics`.
    let reward_dir = root().join("crates/ppo-reward/src");
    for entry in std::fs::read_dir(&reward_dir).unwrap() {
        let text = without_tests(std::fs::read_to_string(entry.unwrap().path()).unwrap());
        if let Some(i) = text.find("fn last_metrics") {
            names.extend(
                literals_after(&text[i..], "(")
                    .into_iter()
                    .filter(|n| !n.is_empty()),
            );
        }
    }
    names
}

/// The metric names of the definition tables of docs/logging.md (rows starting "| `name` |").
fn defined() -> BTreeSet<String> {
    let doc = read("docs/logging.md");
    let section = &doc[doc
        .find("## Metric definitions")
        .expect("docs/logging.md has a Metric definitions section")..];
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name.to_owned()))
        .collect()
}

#[test]
fn every_emitted_metric_is_defined_in_docs_logging_md_and_back() {
    let emitted = emitted();
    // The parse itself must find what we know is emitted, or it proves nothing.
    for name in [
        "policy_loss",
        "explained_variance",
        "dual_clipfrac",
        "time/update",
        "epoch",
        "peak_memory_mib",
        "eval_kl",
        "eval_accuracy",
        "reward_truncated",
    ] {
        assert!(emitted.contains(name), "{name} not found in {emitted:?}");
    }
    let defined = defined();
    let undefined: Vec<_> = emitted.difference(&defined).collect();
    assert!(
        undefined.is_empty(),
        "emitted but not defined in docs/logging.md: {undefined:?}"
    );
    let stale: Vec<_> = defined.difference(&emitted).collect();
    assert!(
        stale.is_empty(),
        "defined in docs/logging.md but never emitted: {stale:?}"
    );
}
