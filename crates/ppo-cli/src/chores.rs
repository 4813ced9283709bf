//! `ppo-cli plot` and `ppo-cli clean-checkpoints`: the chores of `cargo xtask` for users who
//! have only the binary, running the same library code (`ppo_log::plot_file`,
//! `ppo_ckpt::clean_checkpoints`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use ppo_ckpt::{CleanOptions, RunDir};

/// Options of `plot`.
#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// The run directory (holding logs/metrics.jsonl).
    pub run_dir: PathBuf,
    /// Write the images here instead of RUN_DIR (created if missing).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Options of `clean-checkpoints`.
#[derive(clap::Args, Debug)]
pub struct CleanArgs {
    /// The run directory (holding checkpoints/).
    pub run_dir: PathBuf,
    /// Keep the N newest complete checkpoints (the latest complete one and best/ are always
    /// kept, even with --keep 0).
    #[arg(long, value_name = "N")]
    pub keep: usize,
    /// Also keep the step_N that best/ was copied from.
    #[arg(long)]
    pub keep_best: bool,
    /// Print what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `ppo-cli plot`: draws the run's metrics as training_metrics_detailed.png and
/// ppo_metrics_with_entropy.png; prints the paths written.
pub fn plot(args: PlotArgs) -> Result<()> {
    let metrics = RunDir::new(&args.run_dir).metrics_file();
    let out = args.out.as_ref().unwrap_or(&args.run_dir);
    let written = ppo_log::plot_file(&metrics, out)
        .with_context(|| format!("plotting run {}", args.run_dir.display()))?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `ppo-cli clean-checkpoints`: deletes old checkpoints of a run by the retention rules of
/// training, printing each checkpoint's fate and the space freed.
pub fn clean_checkpoints(args: CleanArgs) -> Result<()> {
    let options = CleanOptions {
        keep_last_n: args.keep,
        keep_best: args.keep_best,
        dry_run: args.dry_run,
    };
    ppo_ckpt::clean_checkpoints(&args.run_dir, &options, &mut std::io::stdout().lock())?;
    Ok(())
}
