//! `ppo-cli`: the thin binary that reads argv and config files and wires the ppo-rs crates.

mod checkpoint;
mod chores;
mod config;
mod data;
mod device;
mod eval;
mod export;
mod generate;
mod memory;
mod models;
mod run_lock;
mod score;
mod stop_signal;
mod train;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// `ppo-cli --version`: the version, the backends built in and the commit.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nbackends: ",
    device::backends!(),
    "\ncommit: ",
    env!("PPO_RS_GIT_COMMIT")
);

/// Fine-tune causal language models with PPO from a reward signal.
#[derive(Parser, Debug)]
#[command(name = "ppo-cli", version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train with PPO (with no arguments: the embedded demo on CPU).
    Train(TrainArgs),
    /// Generate a completion from a Hugging Face model directory or a checkpoint.
    Generate(generate::GenerateArgs),
    /// Evaluate a checkpoint on a prompt file (eval_reward, eval_accuracy, eval_kl, …).
    Eval(eval::EvalArgs),
    /// Export a checkpoint's policy and critic in Hugging Face format.
    Export(export::ExportArgs),
    /// Score (prompt, response) pairs with a reward model directory.
    Score(score::ScoreArgs),
    /// Draw a run's metrics as PNG charts (as at the end of training).
    Plot(chores::PlotArgs),
    /// Delete old checkpoints of a run, keeping the newest, the latest complete one and best/.
    CleanCheckpoints(chores::CleanArgs),
}

/// Options of `train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// TOML file merged over the embedded default (configs/default.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. `--set training.learning_rate=1e-4` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub sets: Vec<String>,
    /// Stop after N PPO iterations.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Seed of every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Backend: flex, tch:cpu, tch:cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Run directory (default runs/<timestamp>).
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Allow a fresh run in a non-empty output directory (its previous checkpoints, exports
    /// and metrics are deleted).
    #[arg(long)]
    pub overwrite: bool,
    /// `auto`: continue from the newest complete checkpoint of --output-dir if there is one
    /// (asking first when stdin is a terminal); `never`: always start fresh; or the path of a
    /// checkpoint (`…/checkpoints/step_N`, `…/checkpoints/best`) or of a run directory.
    #[arg(long, default_value = "auto", value_name = "auto|never|PATH")]
    pub resume: String,
    /// End this invocation after iteration N, saving a checkpoint. The schedule and the
    /// evaluation plan stay those of the whole run, so resuming continues it exactly.
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Export(args) => export::run(args),
        Command::Score(args) => score::run(args),
        Command::Plot(args) => chores::plot(args),
        Command::CleanCheckpoints(args) => chores::clean_checkpoints(args),
    };
    if let Err(err) = result {
        if let Some(train::Interrupted(signal)) = err.downcast_ref() {
            // Logged already, with how to resume.
            std::process::exit(128 + signal);
        }
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
