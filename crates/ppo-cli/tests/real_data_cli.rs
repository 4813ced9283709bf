//! Prompt files, verifier rewards, Hugging Face export, `generate` and `eval` end to end on a
//! tiny built-in model.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ppo-cli");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .output()
        .expect("ppo-cli runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "ppo-cli failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "ppo-cli should have failed:\n{}",
        text(&out)
    );
    text(&out)
}

/// 24 GSM8K-style records: "a+b=" → "…\n#### a+b".
fn write_dataset(path: &Path) {
    let lines: Vec<String> = (0..24)
        .map(|i| {
            let (a, b) = (i % 5, i / 5);
            serde_json::json!({"q": format!("{a}+{b}="), "a": format!("{a} plus {b}\n#### {}", a + b)})
                .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn config(dir: &Path, data: &Path) -> std::path::PathBuf {
    let path = dir.join("files.toml");
    let toml = format!(
        r#"
plots = false
[model]
hidden_size = 32
intermediate_size = 64
num_hidden_layers = 1
head_dim = 8
[data]
task = "files"
[[data.sources]]
path = {data:?}
input = "q"
output = "a"
[[reward.sources]]
type = "gsm8k"
weight = 0.5
[[reward.sources]]
type = "regex"
pattern = '(\d+)'
weight = 0.5
[training]
batch_size = 4
group_size = 2
ppo_epochs = 1
mini_batch_size = 8
gradient_accumulation_steps = 1
[generation]
max_new_tokens = 4
[eval]
eval_split = 0.25
eval_every_n_steps = 2
[checkpoint]
save_every_n_steps = 2
"#
    );
    std::fs::write(&path, toml).unwrap();
    path
}

fn logits(dir: &Path) -> Vec<f32> {
    let device = burn::tensor::Device::flex();
    let (_, policy) = ppo_models::hf::load_causal_lm(dir, &device).unwrap();
    ppo_models::to_f32_vec(policy.forward(&[256, 49, 43, 50, 61], &[true; 5], 1, None))
}

#[test]
fn train_on_a_file_then_export_generate_and_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sums.jsonl");
    write_dataset(&data);
    let cfg = config(tmp.path(), &data);
    let out = tmp.path().join("run");
    let log = ok(run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--max-steps",
        "2",
    ]));
    let _ = log;
    let metrics = std::fs::read_to_string(out.join("logs/metrics.jsonl")).unwrap();
    assert!(metrics.contains("eval_accuracy"), "{metrics}");
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("training_config.json")).unwrap()).unwrap();
    assert_eq!(snapshot["train_samples"], 18);
    assert_eq!(snapshot["eval_samples"], 6);

    // export of the last checkpoint = the run's final/ export
    let ckpt = out.join("checkpoints/step_2");
    let exported = tmp.path().join("exported");
    ok(run(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
    ]));
    for file in [
        "policy/model.safetensors",
        "policy/config.json",
        "policy/tokenizer.json",
        "policy/tokenizer_config.json",
        "critic/model.safetensors",
        "critic/config.json",
        "config.toml",
    ] {
        assert!(exported.join(file).exists(), "missing {file}");
    }
    assert_eq!(
        logits(&exported.join("policy")),
        logits(&out.join("final/policy"))
    );

    // generate from the checkpoint and from the export: same prompt ids, same greedy tokens
    let gen_json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["generate", "--prompt", "1+2=", "--greedy", "--json"];
        all.extend_from_slice(&["--max-new-tokens", "4"]);
        all.extend_from_slice(args);
        serde_json::from_str(ok(run(&all)).trim()).unwrap()
    };
    let a = gen_json(&["--checkpoint", ckpt.to_str().unwrap()]);
    let b = gen_json(&["--model", exported.to_str().unwrap()]);
    assert_eq!(a["prompt_ids"], serde_json::json!([256, 49, 43, 50, 61]));
    assert_eq!(a["prompt_ids"], b["prompt_ids"]);
    assert_eq!(a["token_ids"], b["token_ids"]);
    let ids = a["token_ids"].as_array().unwrap();
    let logprobs = a["logprobs"].as_array().unwrap();
    assert!(!ids.is_empty() && ids.len() <= 4);
    assert_eq!(ids.len(), logprobs.len());
    assert!(logprobs.iter().all(|lp| lp.as_f64().unwrap() <= 0.0));
    let la: Vec<f64> = logprobs.iter().map(|v| v.as_f64().unwrap()).collect();
    let lb: Vec<f64> = b["logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(la, lb);

    // eval on the file with the run's rewards
    let report = ok(run(&[
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--max-samples",
        "8",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(report["samples"], 8);
    for key in ["eval_reward", "eval_accuracy", "eval_kl", "eval_entropy"] {
        assert!(report[key].is_number(), "{key} missing in {report}");
    }
    let acc = report["eval_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
}

#[test]
fn bad_data_and_reward_settings_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sums.jsonl");
    write_dataset(&data);
    let cfg = config(tmp.path(), &data);
    let out = tmp.path().join("run");
    let train = |sets: &[&str]| {
        let mut args = vec![
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ];
        for s in sets {
            args.extend_from_slice(&["--set", s]);
        }
        failed(run(&args))
    };
    let e = train(&["data.sources=[]"]);
    assert!(e.contains("data.sources"), "{e}");
    let e = train(&[r#"data.sources=[{path = "nope.jsonl", input = "q"}]"#]);
    assert!(e.contains("nope.jsonl"), "{e}");
    let e = train(&[r#"data.sources=[{path = "SUMS", input = "question"}]"#
        .replace("SUMS", data.to_str().unwrap())
        .as_str()]);
    assert!(e.contains("question"), "{e}");
    let e = train(&[r#"reward.sources=[{type = "model"}]"#]);
    assert!(e.contains("model.reward"), "{e}");
    let e = train(&[r#"reward.sources=[{type = "regex", pattern = "("}]"#]);
    assert!(e.contains("reward.sources[0]"), "{e}");
    let e = train(&["model.policy=\"/no/such/model\""]);
    assert!(
        e.contains("model.policy") && e.contains("/no/such/model"),
        "{e}"
    );
}
