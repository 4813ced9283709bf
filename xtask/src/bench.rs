//! `cargo xtask bench`: builds the release trainer, runs N iterations of the embedded default
//! (or a config), and reports speed per phase and resident memory over the run, checking that
//! memory does not grow once the run is warm. `cargo xtask bench deberta [ARGS]` instead
//! measures a DeBERTa-v3-large-shaped reward model's scoring throughput (pairs/s) with the
//! `deberta_score_bench` example of ppo-models; `cargo xtask bench precision [ARGS]` times a
//! forward + backward in f32 against bf16 compute with its `precision_bench` example.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use ppo_log::{MetricsRecord, RecordKind, read_metrics};

use crate::{cargo_bin, workspace_root};

const USAGE: &str =
    "usage: cargo xtask bench [--steps N] [--out DIR] [--config FILE] [--set KEY=VALUE]...";

/// Parsed arguments of `bench`.
#[derive(Debug, PartialEq)]
pub struct BenchArgs {
    /// Iterations to run.
    pub steps: u64,
    /// Run directory (overwritten).
    pub out: PathBuf,
    /// Config file passed to `train --config`.
    pub config: Option<PathBuf>,
    /// `--set` overrides passed through.
    pub sets: Vec<String>,
}

/// Parses `[--steps N] [--out DIR] [--config FILE] [--set K=V]...`.
pub fn parse_args(args: &[&str]) -> Result<BenchArgs> {
    let mut parsed = BenchArgs {
        steps: 100,
        out: workspace_root().join("target/bench/run"),
        config: None,
        sets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .map(|v| v.to_string())
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match *arg {
            "--steps" => {
                parsed.steps = value("--steps")?
                    .parse()
                    .with_context(|| format!("--steps: expected a number\n{USAGE}"))?;
            }
            "--out" => parsed.out = PathBuf::from(value("--out")?),
            "--config" => parsed.config = Some(PathBuf::from(value("--config")?)),
            "--set" => parsed.sets.push(value("--set")?),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if parsed.steps < 20 {
        bail!("--steps must be at least 20 (memory is compared from step 10 on)");
    }
    Ok(parsed)
}

/// What one bench run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// Iterations measured.
    pub steps: u64,
    /// Mean seconds per iteration, and per phase.
    pub seconds_per_iteration: f64,
    /// Mean seconds sampling.
    pub generate_seconds: f64,
    /// Mean seconds scoring and in the inference passes.
    pub score_seconds: f64,
    /// Mean seconds in the PPO update.
    pub update_seconds: f64,
    /// Mean response tokens per second over whole iterations.
    pub tokens_per_second: f64,
    /// Resident memory (MiB) after iterations 10, N/2 and N.
    pub rss_mib_at: Vec<(u64, f64)>,
    /// Highest resident memory of the process (MiB).
    pub peak_rss_mib: f64,
    /// RSS after the last iteration minus RSS after iteration 10 (MiB).
    pub rss_growth_mib: f64,
    /// Whether the growth stayed within the bound (5% of the step-10 RSS + 16 MiB).
    pub memory_flat: bool,
}

/// Summarises the train records of a run.
pub fn summarize(records: &[MetricsRecord]) -> Result<BenchReport> {
    let train: Vec<&MetricsRecord> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .collect();
    let n = train.len();
    if n < 20 {
        bail!("only {n} training iterations recorded; need at least 20");
    }
    let mean = |key: &str| train.iter().filter_map(|r| r.get(key)).sum::<f64>() / n as f64;
    let rss = |step: u64| {
        train
            .iter()
            .find(|r| r.step == step)
            .and_then(|r| r.get("memory_rss_mib"))
            .unwrap_or(f64::NAN)
    };
    let last = train[n - 1].step;
    let base = rss(10);
    let end = rss(last);
    let growth = end - base;
    let generate = mean("time/generate");
    let score = mean("time/score");
    let update = mean("time/update");
    Ok(BenchReport {
        steps: last,
        seconds_per_iteration: generate + score + update,
        generate_seconds: generate,
        score_seconds: score,
        update_seconds: update,
        tokens_per_second: mean("tokens_per_second"),
        rss_mib_at: vec![(10, base), (last / 2, rss(last / 2)), (last, end)],
        peak_rss_mib: train
            .iter()
            .filter_map(|r| r.get("peak_memory_mib"))
            .fold(f64::NAN, f64::max),
        rss_growth_mib: growth,
        memory_flat: growth.is_finite() && growth <= 0.05 * base + 16.0,
    })
}

fn run_train(args: &BenchArgs, root: &Path) -> Result<()> {
    let status = Command::new(cargo_bin())
        .current_dir(root)
        .args(["build", "--release", "-p", "ppo-cli"])
        .status()
        .context("failed to run cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p ppo-cli failed");
    }
    let mut cmd = Command::new(root.join("target/release/ppo-cli"));
    cmd.current_dir(root)
        .arg("train")
        .arg("--output-dir")
        .arg(&args.out)
        .args(["--resume", "never", "--overwrite"])
        .args(["--max-steps", &args.steps.to_string()])
        .args(["--set", "plots=false"]);
    if let Some(config) = &args.config {
        cmd.arg("--config").arg(config);
    }
    for set in &args.sets {
        cmd.args(["--set", set]);
    }
    let status = cmd.status().context("failed to start ppo-cli")?;
    if !status.success() {
        bail!("ppo-cli train failed");
    }
    Ok(())
}

/// `cargo xtask bench deberta [ARGS]` and `cargo xtask bench precision [ARGS]`: runs the
/// ppo-models example `example` in release with `args`.
fn example(example: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(cargo_bin())
        .current_dir(workspace_root())
        .args([
            "run",
            "--release",
            "-p",
            "ppo-models",
            "--example",
            example,
            "--",
        ])
        .args(args)
        .status()
        .context("failed to run cargo run")?;
    if !status.success() {
        bail!("the {example} example failed");
    }
    Ok(())
}

/// Entry point of `cargo xtask bench`.
pub fn main(args: &[&str]) -> Result<()> {
    match args {
        ["deberta", rest @ ..] => return example("deberta_score_bench", rest),
        ["precision", rest @ ..] => return example("precision_bench", rest),
        ["ppo", rest @ ..] => return crate::bench_ppo::main(rest),
        // `cargo xtask bench --reference [--shape S] …` is the side-by-side PPO iteration too.
        rest if rest.iter().any(|a| ["--reference", "--shape"].contains(a)) => {
            return crate::bench_ppo::main(rest);
        }
        _ => {}
    }
    let args = parse_args(args)?;
    let root = workspace_root();
    run_train(&args, &root)?;
    let records = read_metrics(ppo_ckpt::RunDir::new(&args.out).metrics_file())?;
    let report = summarize(&records)?;
    let json = serde_json::to_string_pretty(&report)?;
    fs_err::write(args.out.join("bench.json"), &json)?;
    println!("{json}");
    println!(
        "\n| iterations | s/iter | generate | score | update | tokens/s | RSS @10 | RSS @{} | RSS @{} | peak RSS |",
        report.rss_mib_at[1].0, report.rss_mib_at[2].0
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
        report.steps,
        report.seconds_per_iteration,
        report.generate_seconds,
        report.score_seconds,
        report.update_seconds,
        report.tokens_per_second,
        report.rss_mib_at[0].1,
        report.rss_mib_at[1].1,
        report.rss_mib_at[2].1,
        report.peak_rss_mib
    );
    if !report.memory_flat {
        bail!(
            "resident memory grew by {:.1} MiB between iteration 10 and {}",
            report.rss_growth_mib,
            report.steps
        );
    }
    println!(
        "\nmemory is flat: {:+.1} MiB between iteration 10 and {}",
        report.rss_growth_mib, report.steps
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u64, rss: f64) -> MetricsRecord {
        MetricsRecord::now(
            RecordKind::Train,
            step,
            vec![
                ("time/generate".into(), 0.5),
                ("time/score".into(), 0.25),
                ("time/update".into(), 1.0),
                ("tokens_per_second".into(), 100.0),
                ("memory_rss_mib".into(), rss),
                ("peak_memory_mib".into(), rss + 1.0),
            ],
        )
    }

    #[test]
    fn flat_and_growing_memory_are_told_apart() {
        let flat: Vec<_> = (1..=40)
            .map(|s| record(s, 200.0 + (s % 3) as f64))
            .collect();
        let r = summarize(&flat).unwrap();
        assert!(r.memory_flat, "{r:?}");
        assert_eq!(r.seconds_per_iteration, 1.75);
        assert_eq!(r.rss_mib_at[2], (40, 201.0));
        let leak: Vec<_> = (1..=40)
            .map(|s| record(s, 200.0 + 2.0 * s as f64))
            .collect();
        let r = summarize(&leak).unwrap();
        assert!(
            !r.memory_flat && (r.rss_growth_mib - 60.0).abs() < 1e-9,
            "{r:?}"
        );
        assert!(summarize(&flat[..10]).is_err());
    }

    #[test]
    fn arguments_parse() {
        let a = parse_args(&["--steps", "50", "--set", "seed=1", "--out", "x"]).unwrap();
        assert_eq!(
            (a.steps, a.out, a.sets),
            (50, PathBuf::from("x"), vec!["seed=1".into()])
        );
        assert!(parse_args(&["--steps", "5"]).is_err());
        assert!(parse_args(&["--bogus"]).is_err());
    }
}
