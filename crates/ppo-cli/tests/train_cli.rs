//! `ppo-cli train` end to end on a tiny configuration: exact resume, damaged checkpoints,
//! refused config changes, early stopping, retention, epoch exports, crash safety.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ppo_log::RecordKind;

#[path = "support/run.rs"]
mod run;

use run::*;

#[test]
fn stopped_and_resumed_run_equals_the_uninterrupted_one_bit_for_bit() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    ok(train(&a, &["--max-steps", "8"]));
    let text = ok(train(&b, &["--max-steps", "8", "--stop-after", "3"]));
    assert!(text.contains("--stop-after"), "{text}");
    assert_eq!(
        metrics(&b)
            .iter()
            .filter(|r| r.kind == RecordKind::Train)
            .count(),
        3
    );
    assert!(!b.join("final").exists());
    // the crash-leftover of an interrupted later save is ignored
    std::fs::create_dir_all(b.join("checkpoints/.step_4.tmp-999999")).unwrap();
    let text = ok(train(&b, &["--max-steps", "8"]));
    assert!(text.contains("resuming"), "{text}");

    let (ra, rb) = (metrics(&a), metrics(&b));
    assert_eq!(ra.iter().filter(|r| r.kind == RecordKind::Train).count(), 8);
    assert_eq!(ra.iter().filter(|r| r.kind == RecordKind::Eval).count(), 4);
    assert_eq!(deterministic(&ra), deterministic(&rb));
    // the final weights are identical too
    assert_eq!(final_logits(&a), final_logits(&b));
    // the uninterrupted run wrote the promised tree
    for path in [
        "training_config.json",
        "training_config.toml",
        "checkpoints/step_2/manifest.json",
        "checkpoints/step_8/training_state.json",
        "checkpoints/step_8/optimizer/policy.bpk",
        "checkpoints/step_8/metrics_history.jsonl",
        "checkpoints/best/checkpoint.json",
        "epoch_1/policy/model.safetensors",
        "epoch_1/policy/tokenizer.json",
        "epoch_1/critic/model.safetensors",
        "epoch_1/config.toml",
        "epoch_2/policy/model.safetensors",
        "final/policy/config.json",
    ] {
        assert!(a.join(path).exists(), "missing {path}");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("training_config.json")).unwrap()).unwrap();
    assert_eq!(config["seed"], 42);
    assert!(config["git_commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(config["config"]["training"]["batch_size"], 4);

    // running again finds the finished run and does nothing
    let text = ok(train(&a, &["--max-steps", "8"]));
    assert!(text.contains("already complete"), "{text}");
    assert_eq!(metrics(&a).len(), ra.len());
}

#[test]
fn damaged_checkpoints_are_detected_and_the_previous_one_is_offered() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    ok(train(&run, &["--max-steps", "8", "--stop-after", "4"]));
    let newest = run.join("checkpoints/step_4/policy/model.bpk");
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&newest, bytes).unwrap();

    let text = failed(train(
        &run,
        &["--resume", run.join("checkpoints/step_4").to_str().unwrap()],
    ));
    assert!(
        text.contains("damaged") && text.contains("policy/model.bpk"),
        "{text}"
    );
    assert!(
        text.contains("step_2"),
        "the previous good checkpoint is named: {text}"
    );

    let text = ok(train(&run, &["--max-steps", "8", "--stop-after", "5"]));
    assert!(
        text.contains("damaged") && text.contains("step_2"),
        "{text}"
    );
    let train_steps: Vec<u64> = metrics(&run)
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .map(|r| r.step)
        .collect();
    assert_eq!(
        train_steps,
        [1, 2, 3, 4, 5],
        "resumed from step 2 without duplicates"
    );
}

#[test]
fn resuming_with_another_model_shape_is_refused_naming_the_keys() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    ok(train(&run, &["--max-steps", "4", "--stop-after", "2"]));
    let text = failed(train(
        &run,
        &["--set", "model.hidden_size=48", "--set", "seed=7"],
    ));
    assert!(
        text.contains("`model.hidden_size`") && text.contains("`seed`"),
        "{text}"
    );
    // a non-empty directory is never silently reused for a fresh run
    let text = failed(train(&run, &["--resume", "never"]));
    assert!(text.contains("not empty"), "{text}");
    ok(train(
        &run,
        &["--resume", "never", "--overwrite", "--max-steps", "2"],
    ));
    assert_eq!(step_dirs(&run), ["best", "step_2"]);
}

/// The start-up log states the sizes the config implies, each in its unit: tiny_args' 4
/// prompts × 2 responses, 2 PPO epochs over minibatches of 4 rows in 2 micro-batches, warmup 2.
#[test]
fn the_derived_sizes_are_logged_at_start() {
    let root = tempfile::tempdir().unwrap();
    let text = ok(train(&root.path().join("run"), &["--max-steps", "2"]));
    let line = text
        .lines()
        .find(|l| l.contains("sizes: "))
        .unwrap_or_else(|| panic!("no sizes line in:\n{text}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.ends_with(
            "sizes: 8 rollout rows per iteration (batch_size 4 prompts × group_size 2); 4 \
             optimiser steps per iteration (ppo_epochs 2 × 8 rows / mini_batch_size 4 rows); \
             micro-batches of 2 rows (gradient_accumulation_steps 2); 8 optimiser steps over 2 \
             iterations; warmup_steps 2 optimiser steps = 0.50 iterations"
        ),
        "{line}"
    );
}

#[test]
fn early_stopping_keeps_the_best_model_and_says_why() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    let text = ok(train(
        &run,
        &[
            "--max-steps",
            "20",
            "--set",
            "eval.early_stopping_patience=2",
            "--set",
            "eval.early_stopping_threshold=100.0",
            "--set",
            "checkpoint.keep_last_n=1",
        ],
    ));
    assert!(text.contains("early stopping at iteration 6"), "{text}");
    let records = metrics(&run);
    assert_eq!(
        records
            .iter()
            .filter(|r| r.kind == RecordKind::Train)
            .count(),
        6
    );
    // best = first evaluation (nothing can beat it by 100); keep_last_n = 1 keeps step_6 and
    // the best's source step
    let best: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.join("checkpoints/best/checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(best["step"], 2);
    assert_eq!(step_dirs(&run), ["best", "step_2", "step_6"]);
    assert!(run.join("final/policy/model.safetensors").exists());
}

#[test]
fn a_run_killed_at_any_moment_resumes_from_a_complete_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let run: PathBuf = root.path().join("run");
    let args = [
        "--max-steps",
        "40",
        "--set",
        "checkpoint.save_every_n_steps=1",
        "--set",
        "training.num_epochs=10",
        "--set",
        "eval.early_stopping_patience=0",
    ];
    for delay_ms in [900u64, 1300, 1700] {
        let mut child = Command::new(BIN)
            .arg("train")
            .arg("--output-dir")
            .arg(&run)
            .args(tiny_args())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(c) = ppo_ckpt::resume_candidate(&run).unwrap() {
            assert!(c.newest.is_complete(), "{:?}", c.newest);
        }
    }
    ok(train(&run, &args));
    let steps: Vec<u64> = metrics(&run)
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, (1..=40).collect::<Vec<_>>());
}

/// A long run in the background on `run` (stdout/stderr to files under `run`'s parent).
fn spawn_long_run(run: &Path) -> std::process::Child {
    let log = run.with_extension("log");
    Command::new(BIN)
        .arg("train")
        .arg("--output-dir")
        .arg(run)
        .args(tiny_args())
        .args(["--max-steps", "400", "--set", "training.num_epochs=100"])
        .args(["--set", "checkpoint.save_every_n_steps=1000"])
        .args(["--set", "eval.eval_every_n_steps=1000"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until `run` has recorded `n` training iterations (or 60 s pass).
fn wait_for_iterations(run: &Path, n: usize) {
    let path = run.join("logs/metrics.jsonl");
    for _ in 0..600 {
        let done = std::fs::read_to_string(&path)
            .map(|t| t.lines().filter(|l| l.contains("\"train\"")).count())
            .unwrap_or(0);
        if done >= n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{} did not reach {n} iterations", run.display());
}

#[test]
fn a_second_run_on_the_same_directory_is_refused_naming_the_pid() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    let mut first = spawn_long_run(&run);
    wait_for_iterations(&run, 1);
    let text = failed(train(&run, &["--max-steps", "2"]));
    assert!(
        text.contains("in use by another ppo-cli train") && text.contains(&first.id().to_string()),
        "{text}"
    );
    // also with --overwrite: nothing of the running one is removed
    let text = failed(train(&run, &["--resume", "never", "--overwrite"]));
    assert!(text.contains("in use"), "{text}");
    assert!(run.join("logs/metrics.jsonl").exists());
    first.kill().unwrap();
    first.wait().unwrap();
    // the kernel released the lock with the process
    ok(train(
        &run,
        &["--resume", "never", "--overwrite", "--max-steps", "1"],
    ));
}

#[test]
fn sigint_and_sigterm_save_a_checkpoint_and_exit_with_128_plus_the_signal() {
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        let child = spawn_long_run(&run);
        wait_for_iterations(&run, 2);
        let sent = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "SIG{signal}");
        let log = std::fs::read_to_string(run.with_extension("err")).unwrap()
            + &std::fs::read_to_string(run.with_extension("log")).unwrap();
        assert!(
            log.contains(&format!("SIG{signal} received")) && log.contains("--resume auto"),
            "{log}"
        );
        // the checkpoint holds every recorded iteration, and the run resumes from it
        let recorded = metrics(&run)
            .iter()
            .filter(|r| r.kind == RecordKind::Train)
            .count() as u64;
        let latest = ppo_ckpt::latest_complete(&run).unwrap().unwrap();
        assert_eq!(latest.step, recorded, "SIG{signal}");
        assert!(recorded < 400);
        let text = ok(train(&run, &["--max-steps", &(recorded + 1).to_string()]));
        assert!(text.contains("resuming"), "{text}");
    }
}

#[test]
fn a_bad_config_leaves_no_output_directory() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    failed(train(&run, &["--set", "training.learning_rate=-1"]));
    assert!(
        !run.exists(),
        "{:?}",
        std::fs::read_dir(&run).map(|d| d.count())
    );
    // Directories created on the way go too (the default runs/<timestamp> in a fresh place).
    let nested = root.path().join("runs/exp");
    failed(train(&nested, &["--set", "training.learning_rate=-1"]));
    assert!(!root.path().join("runs").exists());
    // A device written as PyTorch users write it: refused before any log or config file, with
    // the spelling that works.
    let text = failed(train(&run, &["--device", "cuda"]));
    assert!(text.contains("write \"tch:cuda:0\""), "{text}");
    assert!(!text.contains("PPO training"), "{text}");
    assert!(
        !run.exists(),
        "{:?}",
        std::fs::read_dir(&run).map(|d| d.count())
    );
}

#[test]
fn a_save_cut_between_its_renames_is_completed_on_resume() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    let text = ok(train(&run, &["--stop-after", "4"]));
    // a new directory (holding only the lock) is not taken for an aborted run
    assert!(!text.contains("before its first checkpoint"), "{text}");
    // as if killed inside replace_atomic: step_4 renamed to its hidden new name, a stray
    // temporary directory beside it
    let ckpts = run.join("checkpoints");
    std::fs::rename(ckpts.join("step_4"), ckpts.join(".step_4.new-99999")).unwrap();
    std::fs::create_dir_all(ckpts.join(".step_6.tmp-99999/policy")).unwrap();
    let text = ok(train(&run, &["--stop-after", "6"]));
    assert!(
        text.contains("completed the interrupted replacement"),
        "{text}"
    );
    assert!(text.contains("resuming: restored from step 4"), "{text}");
    let mut left: Vec<String> = std::fs::read_dir(&ckpts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert!(left.iter().all(|n| !n.starts_with('.')), "{left:?}");
}

#[test]
fn lengths_the_model_cannot_hold_are_refused_before_any_work() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    // the tiny model has 256 positions
    let text = failed(train(
        &run,
        &["--set", "generation.max_new_tokens=100000000"],
    ));
    assert!(
        text.contains("generation.max_new_tokens") && text.contains("256 positions"),
        "{text}"
    );
    let text = failed(train(&run, &["--set", "eval.max_new_tokens=256"]));
    assert!(text.contains("eval.max_new_tokens"), "{text}");
    let text = failed(train(&run, &["--set", "data.max_prompt_length=300"]));
    assert!(text.contains("data.max_prompt_length"), "{text}");
    // prompts of the letters task are longer than 5 byte tokens
    let text = failed(train(&run, &["--set", "data.max_prompt_length=5"]));
    assert!(
        text.contains("prompt 0") && text.contains("data.prompt_overflow"),
        "{text}"
    );
    let text = failed(train(
        &run,
        &[
            "--set",
            "data.max_prompt_length=5",
            "--set",
            "data.prompt_overflow=cut",
        ],
    ));
    assert!(
        text.contains("data.prompt_overflow") && text.contains("`cut`"),
        "{text}"
    );
    assert!(!run.exists());
    let text = ok(train(
        &run,
        &[
            "--set",
            "data.max_prompt_length=5",
            "--set",
            "data.prompt_overflow=truncate_left",
            "--max-steps",
            "1",
        ],
    ));
    assert!(text.contains("kept with their last 5 tokens"), "{text}");
    let first = &metrics(&run)[0];
    assert_eq!(first.get("prompts_truncated"), Some(4.0));
    // "drop": the English prompts (BOS + 20 bytes) go, the Chinese ones (BOS + 14 bytes) stay
    let dropped = root.path().join("dropped");
    let text = ok(train(
        &dropped,
        &[
            "--set",
            "data.max_prompt_length=16",
            "--set",
            "data.prompt_overflow=drop",
            "--max-steps",
            "1",
        ],
    ));
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dropped.join("training_config.json")).unwrap(),
    )
    .unwrap();
    let n = config["prompt_fit"]["dropped"].as_u64().unwrap();
    assert!(n > 0 && n < 20, "{n} dropped\n{text}");
    let kept = config["train_samples"].as_u64().unwrap() + config["eval_samples"].as_u64().unwrap();
    assert_eq!(kept, 20 - n);
}

#[test]
fn a_critic_free_dapo_run_resumes_bit_for_bit_and_writes_no_critic() {
    // GRPO advantages with DAPO's dynamic sampling (extra batches from the data order),
    // clip-higher, overlong shaping and KL in the loss: stopped at 3, resumed to 6.
    let dapo = [
        "--set",
        "algorithm.advantage_estimator=\"grpo\"",
        "--set",
        "algorithm.dynamic_sampling=true",
        "--set",
        "algorithm.overlong_buffer_len=2",
        "--set",
        "training.clip_range_high=0.28",
        "--set",
        "training.kl_in_loss=true",
        "--set",
        "generation.stop=[\"zz\"]",
        "--max-steps",
        "6",
    ];
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let text = ok(train(&a, &dapo));
    assert!(
        text.contains("no critic (advantage_estimator = \"grpo\")"),
        "{text}"
    );
    let mut stopped = dapo.to_vec();
    stopped.extend(["--stop-after", "3"]);
    ok(train(&b, &stopped));
    let text = ok(train(&b, &dapo));
    assert!(text.contains("resuming"), "{text}");
    let (ra, rb) = (metrics(&a), metrics(&b));
    assert_eq!(deterministic(&ra), deterministic(&rb));
    assert_eq!(final_logits(&a), final_logits(&b));
    let train_records: Vec<_> = ra.iter().filter(|r| r.kind == RecordKind::Train).collect();
    assert_eq!(train_records.len(), 6);
    for record in train_records {
        let keys: Vec<&str> = record.values.iter().map(|(k, _)| k.as_str()).collect();
        for key in ["filtered_groups", "sampling_rounds", "overlong_penalty"] {
            assert!(keys.contains(&key), "{key} missing: {keys:?}");
        }
        for key in ["value_loss", "explained_variance", "grad_norm_critic"] {
            assert!(!keys.contains(&key), "{key} logged without a critic");
        }
    }
    for run in [&a, &b] {
        assert!(run.join("checkpoints/step_6/policy/model.bpk").exists());
        assert!(!run.join("checkpoints/step_6/critic").exists());
        assert!(!run.join("checkpoints/step_6/optimizer/critic.bpk").exists());
        assert!(run.join("final/policy/model.safetensors").exists());
        assert!(!run.join("final/critic").exists());
    }
}

#[test]
fn plot_and_clean_checkpoints_work_from_the_binary_alone() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    ok(train(&run, &["--max-steps", "6"]));
    assert_eq!(step_dirs(&run), ["best", "step_2", "step_4", "step_6"]);
    let pics = root.path().join("pics");
    let out = Command::new(BIN)
        .args(["plot"])
        .arg(&run)
        .arg("--out")
        .arg(&pics)
        .output()
        .unwrap();
    let text = ok(out);
    for name in [
        "training_metrics_detailed.png",
        "ppo_metrics_with_entropy.png",
    ] {
        assert!(text.contains(name), "{text}");
        let bytes = std::fs::read(pics.join(name)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{name} is a PNG");
    }
    let clean = |extra: &[&str]| {
        Command::new(BIN)
            .arg("clean-checkpoints")
            .arg(&run)
            .args(["--keep", "1"])
            .args(extra)
            .output()
            .unwrap()
    };
    let text = ok(clean(&["--dry-run"]));
    assert!(text.contains("would delete"), "{text}");
    assert_eq!(
        step_dirs(&run),
        ["best", "step_2", "step_4", "step_6"],
        "dry run"
    );
    let text = ok(clean(&[]));
    assert!(text.contains("freed"), "{text}");
    assert_eq!(step_dirs(&run), ["best", "step_6"]);
    assert!(run.join("checkpoints/best/manifest.json").exists());
    let text = failed(
        Command::new(BIN)
            .args(["clean-checkpoints", "no/such/run", "--keep", "1"])
            .output()
            .unwrap(),
    );
    assert!(
        text.contains("run directory no/such/run does not exist"),
        "{text}"
    );
}

#[test]
fn version_names_the_backends_built_in() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let text = ok(out);
    assert!(text.starts_with("ppo-cli "), "{text}");
    let backends = text
        .lines()
        .find(|l| l.starts_with("backends: "))
        .unwrap_or_else(|| panic!("no backends line in {text}"));
    assert!(backends.contains("flex"), "{backends}");
    assert_eq!(
        backends.contains("tch:cuda:N (LibTorch)"),
        cfg!(feature = "tch"),
        "{backends}"
    );
    assert!(text.contains("commit: "), "{text}");
}

#[test]
fn a_bf16_run_keeps_f32_master_weights_and_resumes_bit_for_bit() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, f32_run) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("f32"),
    );
    let bf16 = [
        "--set",
        "precision.policy=\"bfloat16\"",
        "--set",
        "precision.critic=\"bfloat16\"",
        "--set",
        "precision.reference=\"bfloat16\"",
    ];
    let text = ok(train(&a, &[&bf16[..], &["--max-steps", "4"]].concat()));
    assert!(
        text.contains("reference") && text.contains("bf16 on flex"),
        "the memory plan shows the bf16 reference: {text}"
    );
    ok(train(
        &b,
        &[&bf16[..], &["--max-steps", "4", "--stop-after", "2"]].concat(),
    ));
    ok(train(&b, &[&bf16[..], &["--max-steps", "4"]].concat()));
    assert_eq!(deterministic(&metrics(&a)), deterministic(&metrics(&b)));
    assert_eq!(final_logits(&a), final_logits(&b));
    // bf16 compute differs from f32 compute, and the checkpoints hold f32 masters: the
    // same bytes as an f32 run's.
    ok(train(&f32_run, &["--max-steps", "2"]));
    assert_ne!(
        deterministic(&metrics(&a))[0],
        deterministic(&metrics(&f32_run))[0]
    );
    let size = |run: &Path, role: &str| {
        std::fs::metadata(run.join(format!("checkpoints/step_2/{role}/model.bpk")))
            .unwrap()
            .len()
    };
    for role in ["policy", "critic"] {
        assert_eq!(size(&a, role), size(&f32_run, role), "{role}");
    }
}

#[test]
fn bad_devices_and_precisions_are_refused_naming_the_key() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    let text = failed(train(&out, &["--set", "devices.critic=\"cuda:1\""]));
    assert!(text.contains("devices.critic"), "{text}");
    assert!(text.contains("tch:cuda:1"), "{text}");
    assert!(!out.exists(), "nothing written");
    let text = failed(train(&out, &["--set", "precision.policy=\"float16\""]));
    assert!(
        text.contains("precision.policy") || text.contains("float16"),
        "{text}"
    );
    assert!(text.contains("bfloat16"), "{text}");
}

#[test]
fn a_lora_run_checkpoints_adapters_only_resumes_bit_for_bit_and_exports_merged_weights() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, full) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("full"),
    );
    let lora = [
        "--set",
        "lora.rank=4",
        "--set",
        "lora.alpha=16.0",
        "--set",
        "lora.target_modules=[\"q_proj\",\"v_proj\",\"down_proj\"]",
        "--set",
        "training.learning_rate=1e-2",
    ];
    let text = ok(train(&a, &[&lora[..], &["--max-steps", "4"]].concat()));
    assert!(text.contains("no copy of its own"), "{text}");
    assert!(text.contains("trained: LoRA"), "{text}");
    ok(train(
        &b,
        &[&lora[..], &["--max-steps", "4", "--stop-after", "2"]].concat(),
    ));
    let text = ok(train(&b, &[&lora[..], &["--max-steps", "4"]].concat()));
    assert!(text.contains("resuming"), "{text}");
    assert_eq!(deterministic(&metrics(&a)), deterministic(&metrics(&b)));
    assert_eq!(final_logits(&a), final_logits(&b));
    // The first rollout's policy is the base itself (B = 0), which is the reference.
    let first = &metrics(&a)[0];
    assert_eq!(first.kind, RecordKind::Train);
    let kl = first
        .values
        .iter()
        .find(|(k, _)| k == "kl_divergence")
        .unwrap();
    assert_eq!(kl.1, 0.0, "{:?}", first.values);

    // Checkpoints hold the adapters (and the critic's head), not the weights under them.
    ok(train(
        &full,
        &["--max-steps", "2", "--set", "training.learning_rate=1e-2"],
    ));
    let size = |run: &Path, file: &str| {
        std::fs::metadata(run.join("checkpoints/step_2").join(file))
            .unwrap()
            .len()
    };
    for file in [
        "policy/model.bpk",
        "critic/model.bpk",
        "optimizer/policy.bpk",
        "optimizer/critic.bpk",
    ] {
        let (adapters, weights) = (size(&a, file), size(&full, file));
        assert!(
            adapters * 5 < weights,
            "{file}: {adapters} bytes with LoRA, {weights} without"
        );
    }
    // A full run cannot be resumed as a LoRA run (its weights mean something else).
    let text = failed(train(
        &full,
        &[&lora[..], &["--max-steps", "4", "--resume", "auto"]].concat(),
    ));
    assert!(text.contains("`lora.rank`"), "{text}");

    // final/: the adapters folded into plain weights, and the PEFT directory beside them.
    assert!(
        a.join("final/policy-adapter/adapter_model.safetensors")
            .is_file()
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.join("final/policy-adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["r"], 4);
    assert_eq!(config["target_modules"][2], "down_proj");
    // The export of the last checkpoint is the final policy; it moved away from the base.
    let exported = root.path().join("exported");
    ok(Command::new(BIN)
        .args(["export", "--checkpoint"])
        .arg(a.join("checkpoints/step_4"))
        .arg("--out")
        .arg(&exported)
        .output()
        .unwrap());
    let device = burn::tensor::Device::flex();
    let logits = |dir: PathBuf| -> Vec<u32> {
        let (_, policy) = ppo_models::hf::load_causal_lm(dir, &device).unwrap();
        let probe = [256u32, 87, 114, 105, 116, 101];
        ppo_models::to_f32_vec(policy.forward(&probe, &[true; 6], 1, None))
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    assert_eq!(logits(exported.join("policy")), final_logits(&a));
    assert!(
        exported
            .join("policy-adapter/adapter_config.json")
            .is_file()
    );
    // The adapters moved the policy away from the reference (the base).
    let last = metrics(&a)
        .into_iter()
        .rev()
        .find(|r| r.kind == RecordKind::Train)
        .unwrap();
    let kl = last
        .values
        .iter()
        .find(|(k, _)| k == "kl_divergence")
        .unwrap()
        .1;
    assert!(kl.abs() > 0.0, "{:?}", last.values);

    // generate reads the adapters over the rebuilt base.
    let out = Command::new(BIN)
        .args(["generate", "--greedy", "--json", "--max-new-tokens", "3"])
        .args(["--prompt", "Write the letter q", "--checkpoint"])
        .arg(a.join("checkpoints/step_4"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(ok(out).trim()).unwrap();
    assert!(
        json["token_ids"].as_array().is_some_and(|t| !t.is_empty()),
        "{json}"
    );
}

#[test]
fn bad_lora_settings_are_refused_naming_the_key() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    for (set, key) in [
        ("lora.dropout=0.05", "lora.dropout"),
        ("lora.target_modules=[\"qkv_proj\"]", "lora.target_modules"),
        ("lora.alpha=0.0", "lora.alpha"),
    ] {
        let text = failed(train(&out, &["--set", "lora.rank=8", "--set", set]));
        assert!(text.contains(key), "{set}: {text}");
        assert!(!out.exists(), "nothing written");
    }
}
