//! `ppo-cli train`: decides where to run and whether to resume (`output_dir`), resolves the
//! config (a resumed run's over its checkpoint's snapshot), loads the prompts once, and hands
//! a [`session::Session`] to the loop.

mod output_dir;
mod session;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use ppo_ckpt::RunDir;
use ppo_log::{LogConfig, init_tracing};
use tracing::{error, info, warn};

use crate::TrainArgs;
use crate::checkpoint::{self, Loaded};
use crate::config::{self, Resolved};
use crate::run_lock::RunLock;
use crate::stop_signal::{self, StopSignal};
use crate::{data, memory};

/// The `--set` overrides of `args`, with the dedicated flags (`--max-steps`, `--seed`,
/// `--device`) as overrides too.
fn cli_sets(args: &TrainArgs) -> Vec<String> {
    let mut sets = args.sets.clone();
    if let Some(n) = args.max_steps {
        sets.push(format!("max_steps={n}"));
    }
    if let Some(seed) = args.seed {
        sets.push(format!("seed={seed}"));
    }
    if let Some(device) = &args.device {
        sets.push(format!("device=\"{device}\""));
    }
    sets
}

/// The run ended early on a signal (its number); the process exits with 128 + it.
#[derive(Debug)]
pub struct Interrupted(pub i32);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}", stop_signal::name(self.0))
    }
}

impl std::error::Error for Interrupted {}

/// A checkpoint to resume: its directory, what was read from it, and notes to log.
type Resume = (PathBuf, Loaded, Vec<String>);

/// The config of this invocation: the user's (a fresh run), or the checkpoint's snapshot with
/// the user's file and overrides over it (a resumed run), refusing changes a resumed run
/// cannot take.
fn resolve_config(
    args: &TrainArgs,
    resume_from: Option<&Path>,
) -> Result<(Resolved, Option<Resume>)> {
    let sets = cli_sets(args);
    let Some(dir) = resume_from else {
        return Ok((config::load(args.config.as_deref(), &sets)?, None));
    };
    let loaded = checkpoint::read_checkpoint(dir)?;
    let name = format!("config snapshot {}/config.toml", dir.display());
    let original = config::load_raw(Some((&loaded.config_toml, &name)), None, &[])?;
    let resolved = config::load_over(&loaded.config_toml, &name, args.config.as_deref(), &sets)?;
    let changed = config::differing_keys(&original, &resolved.raw);
    let locked: Vec<&String> = changed
        .iter()
        .filter(|k| config::is_resume_locked(k))
        .collect();
    if !locked.is_empty() {
        bail!(
            "cannot resume from {} with a different model or data: {} differ{} from the \
             checkpoint's config (the frozen reference, the data split and the weights depend \
             on them); start a new run instead",
            dir.display(),
            locked
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if locked.len() == 1 { "s" } else { "" }
        );
    }
    let mut notes = Vec::new();
    if !changed.is_empty() {
        let (old, new) = (
            toml::Value::try_from(&original)?,
            toml::Value::try_from(&resolved.raw)?,
        );
        let shown: Vec<String> = changed
            .iter()
            .map(|k| format!("{k} ({} → {})", value_at(&old, k), value_at(&new, k)))
            .collect();
        notes.push(format!(
            "resuming with changed settings: {}",
            shown.join(", ")
        ));
        if changed
            .iter()
            .any(|k| k == "max_steps" || k == "training.num_epochs")
        {
            notes.push(
                "the run's length changed: the learning-rate schedules are re-planned over the \
                 new length, so the learning rate continues from where the new plan is at this \
                 step, not along the old curve; for a clean run of the new length start over \
                 with --resume never --overwrite"
                    .into(),
            );
        }
    }
    Ok((resolved, Some((dir.to_path_buf(), loaded, notes))))
}

/// Runs `train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let stop = StopSignal::install()?;
    // Locked before anything in it is read, removed (--overwrite) or written.
    let run_dir = output_dir::run_dir_of(&args)?;
    let _lock = RunLock::acquire(&run_dir)?;
    // Under the lock no one else writes here: finish or undo saves a killed run left half done.
    let mut recovered = ppo_ckpt::recover_hidden_dirs(&run_dir)?;
    recovered.extend(ppo_ckpt::recover_hidden_dirs(
        &RunDir::new(&run_dir).checkpoints(),
    )?);
    let plan = output_dir::plan_run(&args, run_dir)?;
    let (resolved, loaded) = resolve_config(&args, plan.resume_from.as_deref())?;
    // Before any log or config file is written: a bad device leaves nothing behind.
    let placement = crate::device::Placement::of(&resolved.raw)?;
    let (prompts, fit) = data::run_prompts(&resolved)?;
    let shape = resolved.shape(prompts.len())?;
    let run = RunDir::new(&plan.out);
    let guard = init_tracing(&LogConfig {
        log_dir: Some(run.logs()),
        ..LogConfig::default()
    })?;
    for note in &plan.notes {
        warn!("{note}");
    }
    for recovery in &recovered {
        warn!("interrupted save: {recovery}");
    }
    if fit.truncated > 0 || fit.dropped > 0 {
        warn!("{fit}");
    }
    let loaded = loaded.map(|(dir, loaded, notes)| {
        for note in &notes {
            warn!("{note}");
        }
        info!(
            "resuming: restored from step {} ({})",
            loaded.state.global_step,
            dir.display()
        );
        (dir, loaded)
    });
    session::save_config(&run, &resolved, &shape, &fit)?;
    if !placement.is_single() {
        info!("placement by role: {}", placement.describe());
    }
    info!(output_dir = %run.root().display(), device = %resolved.raw.device,
        seed = resolved.raw.seed, steps = shape.total_steps, train_prompts = shape.train_samples,
        eval_prompts = shape.eval_samples, "PPO training");
    info!("{}", sizes(&resolved, &shape));
    let roles = memory::roles(&resolved.raw, &resolved.model, &placement);
    let (lines, warning) = memory::describe(&roles, memory::available_bytes());
    for line in lines {
        info!("{line}");
    }
    if let Some(warning) = warning {
        warn!("{warning}");
    }
    let params = resolved.model.num_params();
    let critic = critic_origin(&resolved.raw);
    let mut session = session::build_session(resolved, &placement, shape, prompts, run, loaded)?;
    info!(
        params,
        "policy initialised; {critic}; reference = frozen initial policy"
    );
    let result = session::train_loop(&mut session, &args, &guard, &stop);
    let summary = session.tracker.take().map(|t| match &result {
        Ok(None) => t.finish(),
        Ok(Some(_)) => t.kill(),
        Err(_) => t.fail(),
    });
    if let Some(summary) = summary {
        info!("tracking: {summary}");
    }
    match result {
        Ok(None) => Ok(()),
        Ok(Some(signal)) => Err(Interrupted(signal).into()),
        Err(err) => {
            error!("training failed: {err:#}");
            Err(err)
        }
    }
}

/// The sizes a config implies, in the units of each key, for the start-up log: rows per
/// iteration, optimiser steps per iteration and in all, and the warmup in iterations.
fn sizes(resolved: &Resolved, shape: &config::RunShape) -> String {
    let t = &resolved.raw.training;
    let rows = resolved.ppo.rollout_size();
    let optimizer_steps = (t.ppo_epochs * rows / t.mini_batch_size) as u64;
    let micro_rows = t.mini_batch_size / t.gradient_accumulation_steps;
    let warmup_iterations = t.warmup_steps as f64 / optimizer_steps.max(1) as f64;
    format!(
        "sizes: {rows} rollout rows per iteration (batch_size {} prompts × group_size {}); \
         {optimizer_steps} optimiser steps per iteration (ppo_epochs {} × {rows} rows / \
         mini_batch_size {} rows); micro-batches of {micro_rows} rows \
         (gradient_accumulation_steps {}); {} optimiser steps over {} iterations; warmup_steps \
         {} optimiser steps = {warmup_iterations:.2} iterations",
        t.batch_size,
        t.group_size,
        t.ppo_epochs,
        t.mini_batch_size,
        t.gradient_accumulation_steps,
        optimizer_steps * shape.total_steps,
        shape.total_steps,
        t.warmup_steps,
    )
}

/// Where the run's critic comes from, for the start-up log.
fn critic_origin(raw: &crate::config::RawConfig) -> String {
    let estimator = raw.algorithm.advantage_estimator;
    let m = &raw.model;
    if !estimator.needs_critic() {
        format!("no critic (advantage_estimator = {:?})", estimator.name())
    } else if !m.critic.is_empty() {
        format!("critic = {}", m.critic)
    } else if m.critic_init == crate::config::CriticInit::Reward {
        "critic = reward model backbone + new value head".into()
    } else {
        "critic = policy backbone + value head".into()
    }
}

/// The value at dotted `key` of `config`, as TOML writes it ("unset" when absent).
fn value_at(config: &toml::Value, key: &str) -> String {
    key.split('.')
        .try_fold(config, |v, part| v.get(part))
        .map_or_else(|| "unset".into(), ToString::to_string)
}
