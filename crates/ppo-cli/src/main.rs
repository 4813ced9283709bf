//! `ppo-cli`: the thin binary that reads argv and config files and wires the ppo-rs crates.

mod config;
mod train;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Fine-tune causal language models with PPO from a reward signal.
#[derive(Parser, Debug)]
#[command(name = "ppo-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train with PPO (with no arguments: the embedded demo on CPU).
    Train(TrainArgs),
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
    /// Allow writing into a non-empty output directory.
    #[arg(long)]
    pub overwrite: bool,
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Train(args) => train::run(args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
