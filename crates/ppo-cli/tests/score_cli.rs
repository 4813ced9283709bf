//! `ppo-cli score` and training with a DeBERTa-v3 reward model, on the committed fixture
//! `v3_shared_c2p_p2c_bin` (tiny, random, with transformers' ids and scores; written by
//! `scripts/make_deberta_fixtures.py`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ppo_log::{RecordKind, read_metrics};
use serde::Deserialize;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ppo-cli");

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ppo-models/tests/fixtures/deberta/v3_shared_c2p_p2c_bin")
}

#[derive(Deserialize)]
struct Expected {
    pairs: Vec<(String, String)>,
    input_ids: Vec<Vec<u32>>,
    single_logits: Vec<f64>,
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(fixture().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .output()
        .expect("ppo-cli runs")
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ppo-cli failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-4 * theirs.abs().max(1e-3)
}

#[test]
fn score_prints_transformers_score_and_ids() {
    let expected = expected();
    let dir = fixture();
    let dir = dir.to_str().unwrap();
    let (prompt, response) = &expected.pairs[1];
    let base = [
        "score",
        "--reward-model",
        dir,
        "--prompt",
        prompt,
        "--response",
        response,
    ];

    let plain = stdout_of(&run(&base));
    let score: f64 = plain.trim().parse().unwrap();
    assert!(close(score, expected.single_logits[1]), "{score}");

    let mut with_json = base.to_vec();
    with_json.push("--json");
    let text = stdout_of(&run(&with_json));
    let object: Value = serde_json::from_str(text.trim()).unwrap();
    let ids: Vec<u32> = serde_json::from_value(object["input_ids"].clone()).unwrap();
    assert_eq!(ids, expected.input_ids[1]);
    assert!(close(
        object["score"].as_f64().unwrap(),
        expected.single_logits[1]
    ));
    assert_eq!(object["truncated"], Value::Bool(false));
}

#[test]
fn score_file_scores_every_pair_and_warns_on_truncation() {
    let expected = expected();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("pairs.jsonl");
    let lines: Vec<String> = expected
        .pairs
        .iter()
        .map(|(p, r)| serde_json::json!({"prompt": p, "response": r}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let dir = fixture();
    let args = [
        "score",
        "--reward-model",
        dir.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
        "--batch-size",
        "3",
    ];
    let text = stdout_of(&run(&args));
    let scores: Vec<f64> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(scores.len(), expected.pairs.len());
    for (ours, theirs) in scores.iter().zip(&expected.single_logits) {
        assert!(close(*ours, *theirs), "{ours} vs {theirs}");
    }

    // Cut to 30 tokens: the longer pairs are truncated, said on stderr and in the JSON.
    let mut short = args.to_vec();
    short.extend(["--max-length", "30", "--json"]);
    let out = run(&short);
    let text = stdout_of(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (line, full) in text.lines().zip(&expected.input_ids) {
        let object: Value = serde_json::from_str(line).unwrap();
        let long = full.len() > 30;
        assert_eq!(object["truncated"], Value::Bool(long), "{line}");
        assert_eq!(
            object["input_ids"].as_array().unwrap().len(),
            full.len().min(30)
        );
    }
    assert!(
        stderr.contains("WARNING: pair 2 was cut to 30 tokens"),
        "{stderr}"
    );
}

#[test]
fn score_refuses_bad_directories_naming_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    let config = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"c2p\"", "\"p2p\"")).unwrap();
    let out = run(&[
        "score",
        "--reward-model",
        tmp.path().to_str().unwrap(),
        "--prompt",
        "a",
        "--response",
        "b",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.json") && stderr.contains("pos_att_type") && stderr.contains("p2p"),
        "{stderr}"
    );
}

#[test]
fn training_with_a_deberta_reward_model_logs_reward_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("deberta.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nreward = {:?}\n\n[[reward.sources]]\ntype = \"model\"\nmax_length = 8\n",
            fixture().to_str().unwrap()
        ),
    )
    .unwrap();
    let run_dir = tmp.path().join("run");
    let mut args: Vec<String> = [
        "train",
        "--config",
        config.to_str().unwrap(),
        "--output-dir",
        run_dir.to_str().unwrap(),
        "--max-steps",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for set in [
        "model.hidden_size=32",
        "model.intermediate_size=64",
        "model.num_hidden_layers=1",
        "model.head_dim=8",
        "data.num_samples=8",
        "eval.eval_split=0",
        "eval.eval_every_n_steps=0",
        "training.batch_size=4",
        "training.group_size=2",
        "training.ppo_epochs=1",
        "training.mini_batch_size=8",
        "generation.max_new_tokens=4",
        "checkpoint.save_every_n_steps=0",
        "plots=false",
    ] {
        args.extend(["--set".to_string(), set.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    stdout_of(&out);
    let records = read_metrics(run_dir.join("logs/metrics.jsonl")).unwrap();
    let train: Vec<_> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .collect();
    assert_eq!(train.len(), 2);
    for record in train {
        let value = |name: &str| {
            record
                .values
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("no {name} in {:?}", record.values))
        };
        // "[CLS] Write the letter k: [SEP] … [SEP]" is longer than 8 tokens for every row.
        assert_eq!(value("reward_truncated"), 8.0);
        assert!(value("score").is_finite());
    }
}
