//! `ppo-cli eval`: the evaluation of training (`eval_reward`, `eval_accuracy`, `eval_kl`, …)
//! of a checkpoint on a prompt file, with the run's reward sources and eval sampling.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use ppo_core::EvalSettings;
use ppo_models::Rng;

use crate::{config, data, device, export, models};

/// Options of `eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A training checkpoint (`RUN/checkpoints/step_N`, `RUN/checkpoints/best`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Prompt file: .jsonl, .json (array) or .parquet.
    #[arg(long)]
    pub data: PathBuf,
    /// Field holding the prompt (default: the run's first data source's, else `prompt`, as in
    /// `[[data.sources]]`).
    #[arg(long)]
    pub input: Option<String>,
    /// Field holding the reference (default: the run's first data source's, else none).
    #[arg(long)]
    pub output: Option<String>,
    /// Evaluate at most N prompts (0 = all), the file's first ones.
    #[arg(long, default_value_t = 0)]
    pub max_samples: usize,
    /// Seed of the sampling (when the run's eval is not greedy).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend: flex, tch:cpu, tch:cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Print the metrics as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `ppo-cli eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let device = device::parse_device(&args.device)?;
    let m = export::load_checkpoint_models(&args.checkpoint, &device, true)?;
    let raw = &m.raw;
    let ppo = config::ppo_config(raw)?;
    let sampling = config::eval_sampling(raw)?;
    let mut samples = data::load_eval_file(
        raw,
        &args.data,
        args.input.as_deref(),
        args.output.as_deref(),
    )?;
    if args.max_samples > 0 {
        samples.truncate(args.max_samples);
    }
    if samples.is_empty() {
        bail!("{}: no prompts to evaluate", args.data.display());
    }
    let mut reward = models::build_reward(raw, &device, ppo.forward_batch_size)?;
    // The reference is the run's initial policy, rebuilt from the config as training did.
    let reference = models::frozen_in(
        m.initial_policy
            .context("load_checkpoint_models dropped the initial policy")?
            .valid(),
        raw.precision.reference,
    );
    let out = ppo_core::evaluate(
        &ppo_models::merged(m.policy.valid()),
        &reference,
        &EvalSettings::from(&ppo),
        &samples,
        m.tokenizer.as_ref(),
        reward.as_mut(),
        &sampling,
        &mut Rng::new(args.seed),
    )
    .with_context(|| format!("evaluation of {} failed", args.checkpoint.display()))?;
    if args.json {
        let mut map = serde_json::Map::new();
        map.insert("samples".into(), samples.len().into());
        for (k, v) in &out.metrics.0 {
            map.insert(k.clone(), (*v).into());
        }
        println!("{}", serde_json::Value::Object(map));
    } else {
        println!(
            "{} on {} ({} prompts):",
            args.checkpoint.display(),
            args.data.display(),
            samples.len()
        );
        for (k, v) in &out.metrics.0 {
            println!("  {k:<22} {v:.4}");
        }
        for (prompt, response) in out.samples.iter().take(3) {
            println!("  sample: {prompt:?} → {response:?}");
        }
    }
    Ok(())
}
