//! `cargo xtask <subcommand>`: entry point that dispatches to the chores in the `xtask` library.

use std::process::ExitCode;

use xtask::{bench, ci, clean, plot, tidy, workspace_root};

const USAGE: &str = "\
usage: cargo xtask <subcommand>

subcommands:
  tidy    check crate layering against the allowed-edges table in ARCHITECTURE.md
  ci      run what .ci/run runs (fmt check, clippy, tidy, tests), stopping at the first failure
  clean-checkpoints RUN_DIR --keep N [--keep-best] [--dry-run]
          delete old checkpoints of a run, keeping the N newest complete ones, the latest
          complete one and best/ (--keep-best: also best's source step); prints sizes freed
  plot RUN_DIR [--out DIR]
          draw RUN_DIR/logs/metrics.jsonl as training_metrics_detailed.png and
          ppo_metrics_with_entropy.png in RUN_DIR (or DIR); prints the paths written
  bench [--steps N] [--out DIR] [--config FILE] [--set KEY=VALUE]...
          release build, N iterations (default 100) of the default config; reports time per
          phase, tokens/s and resident memory, and fails if memory grows after iteration 10
  bench deberta [--pairs N] [--tokens T] [--batch B] [--layers L]
          scoring throughput (pairs/s) of a random DeBERTa-v3-large-shaped reward model on flex
  bench precision [--hidden D] [--layers L] [--batch B] [--tokens T] [--reps N]
          forward+backward time of a random Qwen3-shaped model on flex, f32 against bf16 compute
  bench ppo [--shape tiny|small|q06] [--reference] [--backend flex|tch:cpu] [--threads N]
            [--reps R] [--batch B] [--prompt-tokens P] [--new-tokens T] [--python PATH]
          one PPO iteration of a random Qwen3-shaped policy + critic per phase (generate,
          score passes, update); --reference runs the same workload in PyTorch + transformers
          (bench/reference/ppo_iteration.py) alternately and prints medians side by side
          (`cargo xtask bench --reference [--shape S] …` is the same)
  help    print this message
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["tidy"] => tidy::tidy(&workspace_root()).map(|s| ci::print_tidy_summary(&s)),
        ["ci"] => ci::run_ci(&workspace_root()),
        ["clean-checkpoints", rest @ ..] => clean::main(rest),
        ["plot", rest @ ..] => plot::main(rest),
        ["help" | "-h" | "--help"] => {
            print!("{USAGE}");
            Ok(())
        }
        ["bench", rest @ ..] => bench::main(rest),
        [] => return usage_error("missing subcommand"),
        [cmd @ ("tidy" | "ci" | "help"), extra, ..] => {
            return usage_error(&format!("`{cmd}` takes no arguments (got `{extra}`)"));
        }
        [other, ..] => return usage_error(&format!("unknown subcommand `{other}`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}\n\n{USAGE}");
    ExitCode::from(2)
}
