//! `ppo-cli train`: decides where to run and whether to resume, builds models, data, reward
//! and trainer from the resolved config, and runs the loop: iterations, evaluation, early
//! stopping, checkpoints with retention, best and epoch exports, metrics to the JSONL file and
//! the tracking server, plots at the end.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use ppo_ckpt::{BEST_DIR, CheckpointMeta, step_dir_name};
use ppo_core::{DataOrder, EarlyStopping, Metrics, PpoTrainer, Reward, StopDecision};
use ppo_log::{
    LogConfig, MetricsRecord, MetricsWriter, RecordKind, Tracker, TrackingConfig, TrainProgress,
    flatten_params, format_summary, init_tracing, resolve_tracking_settings,
};
use ppo_models::{Rng, Tokenizer};
use ppo_sched::Scheduler;
use tracing::{error, info, warn};

use crate::TrainArgs;
use crate::checkpoint::{self, Loaded, TrainingState};
use crate::config::{self, Resolved};
use crate::run_lock::{self, RunLock};
use crate::stop_signal::{self, StopSignal};
use crate::{export, memory, models};

/// Seeds of the evaluation passes: a pure function of (seed, step), so evaluation never
/// consumes the training random stream and a resumed run evaluates identically.
const EVAL_SEED: u64 = 0xE7A1_5EED_0000_0000;

/// Parses `flex`, `tch:cpu`, `tch:cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device> {
    match spec {
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "tch")]
        "tch:cpu" =>
        {
            #[allow(deprecated)]
            Ok(Device::libtorch())
        }
        #[cfg(feature = "tch")]
        s if s.starts_with("tch:cuda:") => {
            let index: usize = s["tch:cuda:".len()..]
                .parse()
                .with_context(|| format!("device {s:?}: expected tch:cuda:N with N a GPU index"))?;
            #[allow(deprecated)]
            Ok(Device::libtorch_cuda(index))
        }
        s if s.starts_with("tch:") => {
            bail!("device {s:?} needs LibTorch: rebuild with `--features tch` (see README)")
        }
        s => bail!("unknown device {s:?} (expected flex, tch:cpu or tch:cuda:N)"),
    }
}

/// A field of `/proc/self/status` in MiB (Linux; NaN elsewhere).
fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Where this invocation runs and what it resumes from.
struct RunPlan {
    out: PathBuf,
    resume_from: Option<PathBuf>,
    /// Messages to log once logging is up.
    notes: Vec<String>,
}

fn is_checkpoint_dir(path: &Path) -> bool {
    path.join("training_state.json").is_file() || path.join(ppo_ckpt::MANIFEST).is_file()
}

fn ask_yes_no(question: &str) -> Result<bool> {
    eprint!("{question} (y/n): ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn default_output_dir() -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S").to_string();
    let mut dir = PathBuf::from("runs").join(&stamp);
    let mut n = 1;
    while dir.exists() {
        dir = PathBuf::from("runs").join(format!("{stamp}_{n}"));
        n += 1;
    }
    dir
}

/// A fresh run in `dir`: refuses a non-empty directory unless `overwrite`, in which case the
/// previous run's checkpoints, exports, metrics and plots are removed.
fn fresh_output_dir(dir: PathBuf, overwrite: bool, notes: &mut Vec<String>) -> Result<RunPlan> {
    let non_empty = dir.is_dir()
        && fs_err::read_dir(&dir)?.any(|e| e.is_ok_and(|e| e.file_name() != run_lock::LOCK_FILE));
    if non_empty {
        if !overwrite {
            bail!(
                "output directory {} is not empty; choose another --output-dir, resume it with \
                 --resume auto, or pass --overwrite to start over there",
                dir.display()
            );
        }
        for entry in fs_err::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let previous_run = matches!(name.as_str(), "checkpoints" | "final")
                || name.starts_with("epoch_")
                || name.ends_with(".png")
                || name.starts_with("training_config.");
            if previous_run {
                if path.is_dir() {
                    fs_err::remove_dir_all(&path)?;
                } else {
                    fs_err::remove_file(&path)?;
                }
            }
        }
        let metrics = dir.join("logs").join("metrics.jsonl");
        if metrics.exists() {
            fs_err::remove_file(&metrics)?;
        }
        notes.push(format!(
            "--overwrite: removed the previous run's checkpoints, exports and metrics in {}",
            dir.display()
        ));
    }
    fs_err::create_dir_all(&dir)?;
    Ok(RunPlan {
        out: dir,
        resume_from: None,
        notes: std::mem::take(notes),
    })
}

/// Whether `dir` only holds what a run writes before its first checkpoint (logs, config
/// snapshot, leftovers of an interrupted save): safe to start over without `--overwrite`.
fn holds_only_an_aborted_start(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Ok(false);
    }
    // Nothing but our own lock: a new directory, not an aborted run.
    let mut anything = false;
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ok = match name.as_str() {
            run_lock::LOCK_FILE => continue,
            "logs" | "training_config.json" | "training_config.toml" => true,
            "checkpoints" => fs_err::read_dir(&path)?
                .all(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with('.'))),
            _ => false,
        };
        if !ok {
            return Ok(false);
        }
        anything = true;
    }
    Ok(anything)
}

/// The checkpoint to resume from inside `run_dir`: the newest complete one, saying so when a
/// newer one is damaged. `None` when the run has no checkpoint.
fn newest_good_checkpoint(run_dir: &Path, notes: &mut Vec<String>) -> Result<Option<PathBuf>> {
    let Some(candidate) = ppo_ckpt::resume_candidate(run_dir)? else {
        return Ok(None);
    };
    if let Some(warning) = candidate.damage_warning() {
        match candidate.resume_from() {
            Some(_) => notes.push(warning),
            None => bail!("{warning}; start over with --resume never --overwrite"),
        }
    }
    Ok(candidate.resume_from().map(|e| e.path.clone()))
}

/// What this invocation does in `dir`, the run directory [`run_dir_of`] chose (and locked).
fn plan_run(args: &TrainArgs, dir: PathBuf) -> Result<RunPlan> {
    let mut notes = Vec::new();
    match args.resume.as_str() {
        "never" => fresh_output_dir(dir, args.overwrite, &mut notes),
        "auto" => match newest_good_checkpoint(&dir, &mut notes)? {
            None => {
                let aborted = holds_only_an_aborted_start(&dir)?;
                if aborted {
                    notes.push(format!(
                        "{} holds a run that stopped before its first checkpoint; starting it over",
                        dir.display()
                    ));
                }
                fresh_output_dir(dir, args.overwrite || aborted, &mut notes)
            }
            Some(ckpt) => {
                let resume = if std::io::stdin().is_terminal() {
                    for note in &notes {
                        eprintln!("warning: {note}");
                    }
                    ask_yes_no(&format!("found checkpoint {}, resume?", ckpt.display()))?
                } else {
                    true
                };
                if resume {
                    Ok(RunPlan {
                        out: dir,
                        resume_from: Some(ckpt),
                        notes,
                    })
                } else {
                    fresh_output_dir(dir, args.overwrite, &mut notes)
                }
            }
        },
        path => {
            let path = PathBuf::from(path);
            let ckpt = if is_checkpoint_dir(&path) {
                if let Err(err) = ppo_ckpt::verify(&path) {
                    let run = path.parent().and_then(Path::parent);
                    let fallback = run
                        .and_then(|r| ppo_ckpt::latest_complete(r).ok().flatten())
                        .map(|e| {
                            format!("; the newest complete checkpoint is {}", e.path.display())
                        })
                        .unwrap_or_default();
                    bail!("cannot resume: {err}{fallback}");
                }
                path.clone()
            } else {
                newest_good_checkpoint(&path, &mut notes)?.with_context(|| {
                    format!(
                        "--resume {}: not a checkpoint and has no checkpoints/step_N inside",
                        path.display()
                    )
                })?
            };
            Ok(RunPlan {
                out: dir,
                resume_from: Some(ckpt),
                notes,
            })
        }
    }
}

fn save_config(dir: &Path, resolved: &Resolved) -> Result<()> {
    let snapshot = serde_json::json!({
        "ppo_rs_version": env!("CARGO_PKG_VERSION"),
        "git_commit": env!("PPO_RS_GIT_COMMIT"),
        "device": resolved.raw.device,
        "seed": resolved.raw.seed,
        "created": chrono::Local::now().to_rfc3339(),
        "total_steps": resolved.total_steps,
        "steps_per_epoch": resolved.steps_per_epoch,
        "train_samples": resolved.train_samples,
        "eval_samples": resolved.eval_samples,
        "prompt_fit": resolved.prompt_fit,
        "config": resolved.raw,
        "resolved": {
            "model": resolved.model,
            "ppo": resolved.ppo,
            "eval_sampling": resolved.eval_sampling,
            "policy_schedule": resolved.policy_schedule,
            "critic_schedule": resolved.critic_schedule,
        },
    });
    fs_err::write(
        dir.join("training_config.json"),
        serde_json::to_string_pretty(&snapshot)?,
    )?;
    fs_err::write(dir.join("training_config.toml"), config_toml(resolved)?)?;
    Ok(())
}

fn config_toml(resolved: &Resolved) -> Result<String> {
    Ok(format!(
        "# ppo-rs {} ({}), resolved configuration of this run\n{}",
        env!("CARGO_PKG_VERSION"),
        env!("PPO_RS_GIT_COMMIT"),
        toml::to_string_pretty(&resolved.raw)?
    ))
}

/// The MLflow tracker, when `[tracking] enabled` (environment variables override the keys).
fn start_tracker(resolved: &Resolved, out: &Path) -> Option<Tracker> {
    let t = &resolved.raw.tracking;
    if !t.enabled {
        return None;
    }
    let settings =
        resolve_tracking_settings(Some(&t.tracking_uri), Some(&t.experiment_name), |key| {
            std::env::var(key).ok()
        })?;
    let mut config = TrackingConfig::new(settings.tracking_uri, settings.experiment_name);
    config.run_name = Some(if t.run_name.is_empty() {
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ppo-rs".into())
    } else {
        t.run_name.clone()
    });
    let params = flatten_params(&serde_json::to_value(&resolved.raw).unwrap_or_default());
    let tags = vec![
        ("ppo_rs.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("ppo_rs.git_commit".into(), env!("PPO_RS_GIT_COMMIT").into()),
        ("ppo_rs.output_dir".into(), out.display().to_string()),
    ];
    let uri = config.tracking_uri.clone();
    match Tracker::start(config, params, tags) {
        Ok(tracker) => {
            info!(tracking_uri = %uri, "tracking metrics to MLflow");
            Some(tracker)
        }
        Err(err) => {
            warn!("experiment tracking disabled: {err}");
            None
        }
    }
}

/// Everything the loop needs, built identically for fresh and resumed runs.
struct Session {
    resolved: Resolved,
    out: PathBuf,
    trainer: PpoTrainer,
    train_set: Vec<ppo_core::PromptSample>,
    eval_set: Vec<ppo_core::PromptSample>,
    reward: Box<dyn Reward>,
    tokenizer: Box<dyn Tokenizer>,
    state: TrainingState,
    history: Vec<MetricsRecord>,
    metrics_out: MetricsWriter,
    tracker: Option<Tracker>,
    config_toml: String,
}

fn build_session(
    resolved: Resolved,
    out: PathBuf,
    loaded: Option<(PathBuf, Loaded)>,
) -> Result<Session> {
    let device = parse_device(&resolved.raw.device)?;
    let mut models = models::build(&resolved.raw, &resolved.model, &device)?;
    if let Some((dir, _)) = &loaded {
        models.critic = checkpoint::load_critic(dir, models.critic)?;
    }
    let reward = models::build_reward(&resolved.raw, &device, resolved.ppo.forward_batch_size)?;
    let mut rng = models.rng;
    let mut trainer = PpoTrainer::new(
        resolved.ppo.clone(),
        models.policy,
        models.critic,
        Scheduler::new(resolved.policy_schedule.clone())?,
        Scheduler::new(resolved.critic_schedule.clone())?,
        rng.fork(),
    )?;
    let mut train_set = resolved.prompts.clone();
    let mut eval_set = train_set.split_off(resolved.train_samples);
    eval_set.truncate(resolved.eval_samples);
    let tokenizer = models.tokenizer;
    let e = &resolved.raw.eval;
    let mut state = checkpoint::fresh_state(
        DataOrder::new(train_set.len(), resolved.raw.seed),
        &trainer,
        EarlyStopping::new(e.early_stopping_patience, e.early_stopping_threshold),
    );
    let metrics_path = out.join("logs").join("metrics.jsonl");
    let mut history = Vec::new();
    let metrics_out = match loaded {
        None => MetricsWriter::create(&metrics_path)?,
        Some((dir, loaded)) => {
            checkpoint::restore_trainer(&dir, &mut trainer, loaded.state.trainer.clone())?;
            state = loaded.state;
            history = loaded.history;
            // The checkpoint's history is the truth: the file is rewritten from it, so records
            // written after the checkpoint are dropped and a lost or damaged file is rebuilt
            // (a crash while rewriting loses nothing: the next resume rebuilds it again).
            if metrics_path.exists() {
                fs_err::remove_file(&metrics_path)?;
            }
            let mut w = MetricsWriter::create(&metrics_path)?;
            for record in &history {
                w.write(record)?;
            }
            w
        }
    };
    let tracker = start_tracker(&resolved, &out);
    Ok(Session {
        config_toml: config_toml(&resolved)?,
        reward,
        resolved,
        out,
        trainer,
        train_set,
        eval_set,
        tokenizer,
        state,
        history,
        metrics_out,
        tracker,
    })
}

impl Session {
    fn record(&mut self, kind: RecordKind, step: u64, metrics: &Metrics) -> Result<()> {
        let record = MetricsRecord::now(kind, step, metrics.0.clone());
        self.metrics_out.write(&record)?;
        if let Some(tracker) = &self.tracker {
            tracker.log_metrics(step, record.timestamp.timestamp_millis(), &record.values);
        }
        self.history.push(record);
        Ok(())
    }

    fn meta(&self, eval_reward: Option<f64>) -> CheckpointMeta {
        CheckpointMeta {
            step: self.state.global_step,
            epoch: self.state.data_order.epoch,
            eval_reward,
            created: chrono::Local::now().to_rfc3339(),
            ppo_rs_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// Writes `checkpoints/<name>` atomically (replacing an existing one).
    fn save_checkpoint(&mut self, name: &str, eval_reward: Option<f64>) -> Result<PathBuf> {
        self.state.trainer = self.trainer.state();
        let dir = ppo_ckpt::checkpoints_dir(&self.out).join(name);
        let meta = self.meta(eval_reward);
        ppo_ckpt::replace_atomic(&dir, |tmp| {
            checkpoint::fill_checkpoint(
                tmp,
                &self.trainer,
                &self.resolved.model,
                &self.state,
                &meta,
                &self.history,
                &self.config_toml,
            )
        })
        .with_context(|| format!("failed to save checkpoint {}", dir.display()))?;
        Ok(dir)
    }

    fn apply_retention(&self) {
        let keep = self.resolved.raw.checkpoint.keep_last_n;
        if keep == 0 {
            return;
        }
        let result = ppo_ckpt::plan_retention(&self.out, keep, true)
            .and_then(|plan| ppo_ckpt::apply_retention(&plan));
        match result {
            Ok(report) if report.freed_bytes > 0 => info!(
                freed_mib = format!("{:.1}", report.freed_bytes as f64 / 1048576.0),
                "removed old checkpoints (keep_last_n = {keep})"
            ),
            Ok(_) => {}
            Err(err) => warn!("checkpoint retention failed (nothing lost): {err}"),
        }
    }

    /// Policy and critic in Hugging Face format, and the config snapshot, in
    /// `OUTPUT_DIR/<name>/`.
    fn export(&self, name: &str) -> Result<PathBuf> {
        let dir = self.out.join(name);
        let raw = &self.resolved.raw;
        let dtype = export::parse_dtype(&raw.checkpoint.export_dtype)?;
        ppo_ckpt::replace_atomic(&dir, |tmp| -> Result<()> {
            export::write_hf(
                tmp,
                raw,
                self.trainer.policy(),
                self.trainer.critic(),
                dtype,
            )?;
            fs_err::write(tmp.join("config.toml"), &self.config_toml)?;
            Ok(())
        })
        .with_context(|| format!("failed to export {}", dir.display()))?;
        Ok(dir)
    }

    /// Evaluates on the held-out prompts; returns the eval reward.
    fn evaluate(&mut self, step: u64) -> Result<f64> {
        let mut rng = Rng::new(self.resolved.raw.seed ^ EVAL_SEED ^ step);
        let out = self
            .trainer
            .evaluate(
                &self.eval_set,
                self.tokenizer.as_ref(),
                self.reward.as_mut(),
                &self.resolved.eval_sampling,
                &mut rng,
            )
            .with_context(|| format!("evaluation at iteration {step} failed"))?;
        let m = &out.metrics;
        let eval_reward = m.get("eval_reward").unwrap_or(f64::NAN);
        info!(
            step,
            sample = %out.samples.first().map(|(p, r)| format!("{p:?} → {r:?}")).unwrap_or_default(),
            "eval: {}",
            m.0.iter()
                .map(|(k, v)| format!("{k}={v:.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        self.record(RecordKind::Eval, step, m)?;
        Ok(eval_reward)
    }
}

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

/// Runs `train`.
/// The run ended early on a signal (its number); the process exits with 128 + it.
#[derive(Debug)]
pub struct Interrupted(pub i32);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}", stop_signal::name(self.0))
    }
}

impl std::error::Error for Interrupted {}

/// The directory a run will write, known before anything in it is read: `--output-dir`, else
/// the run of `--resume PATH` (the run directory itself, or the one holding the checkpoint),
/// else a new timestamped directory.
fn run_dir_of(args: &TrainArgs) -> Result<PathBuf> {
    let resume_path = match args.resume.as_str() {
        "never" | "auto" => None,
        path => Some(Path::new(path)),
    };
    if let Some(path) = resume_path
        && !path.exists()
    {
        bail!(
            "--resume {}: no such checkpoint or run directory",
            path.display()
        );
    }
    if let Some(dir) = &args.output_dir {
        return Ok(dir.clone());
    }
    Ok(match resume_path {
        None => default_output_dir(),
        Some(path) if is_checkpoint_dir(path) => path
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        Some(path) => path.to_path_buf(),
    })
}

pub fn run(args: TrainArgs) -> Result<()> {
    let stop = StopSignal::install()?;
    // Locked before anything in it is read, removed (--overwrite) or written.
    let run_dir = run_dir_of(&args)?;
    let _lock = RunLock::acquire(&run_dir)?;
    // Under the lock no one else writes here: finish or undo saves a killed run left half done.
    let mut recovered = ppo_ckpt::recover_hidden_dirs(&run_dir)?;
    recovered.extend(ppo_ckpt::recover_hidden_dirs(&ppo_ckpt::checkpoints_dir(
        &run_dir,
    ))?);
    let sets = cli_sets(&args);
    let plan = plan_run(&args, run_dir)?;
    let (resolved, loaded) = match &plan.resume_from {
        None => (config::load(args.config.as_deref(), &sets)?, None),
        Some(dir) => {
            let loaded = checkpoint::read_checkpoint(dir)?;
            let name = format!("config snapshot {}/config.toml", dir.display());
            let original = config::load_over(&loaded.config_toml, &name, None, &[])?;
            let resolved =
                config::load_over(&loaded.config_toml, &name, args.config.as_deref(), &sets)?;
            let changed = config::differing_keys(&original.raw, &resolved.raw);
            let locked: Vec<&String> = changed
                .iter()
                .filter(|k| config::is_resume_locked(k))
                .collect();
            if !locked.is_empty() {
                bail!(
                    "cannot resume from {} with a different model or data: {} differ{} from the \
                     checkpoint's config (the frozen reference, the data split and the weights \
                     depend on them); start a new run instead",
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
                notes.push(format!(
                    "resuming with changed settings: {}",
                    changed.join(", ")
                ));
            }
            (resolved, Some((dir.clone(), loaded, notes)))
        }
    };
    let out = plan.out.clone();
    let guard = init_tracing(&LogConfig {
        log_dir: Some(out.join("logs")),
        ..LogConfig::default()
    })?;
    for note in &plan.notes {
        warn!("{note}");
    }
    for recovery in &recovered {
        warn!("interrupted save: {recovery}");
    }
    let fit = &resolved.prompt_fit;
    if fit.truncated > 0 || fit.dropped > 0 {
        warn!("{fit}");
    }
    let loaded = loaded.map(|(dir, loaded, notes)| {
        for note in &notes {
            warn!("{note}");
        }
        info!(checkpoint = %dir.display(), step = loaded.state.global_step, "resuming");
        (dir, loaded)
    });
    save_config(&out, &resolved)?;
    info!(output_dir = %out.display(), device = %resolved.raw.device, seed = resolved.raw.seed,
        steps = resolved.total_steps, train_prompts = resolved.train_samples,
        eval_prompts = resolved.eval_samples, "PPO training");
    let roles = memory::roles(&resolved.raw, &resolved.model);
    let (lines, warning) = memory::describe(&roles, memory::available_bytes());
    for line in lines {
        info!("{line}");
    }
    if let Some(warning) = warning {
        warn!("{warning}");
    }
    let mut session = build_session(resolved, out, loaded)?;
    info!(
        params = session.resolved.model.num_params(),
        "policy initialised; critic = policy backbone + value head; reference = frozen initial policy"
    );
    let result = train_loop(&mut session, &args, &guard, &stop);
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

/// The loop; `Ok(Some(signal))` when a signal stopped it (after a checkpoint).
fn train_loop(
    s: &mut Session,
    args: &TrainArgs,
    guard: &ppo_log::LogGuard,
    stop: &StopSignal,
) -> Result<Option<i32>> {
    let total = s.resolved.total_steps;
    let raw = s.resolved.raw.clone();
    let batch_size = s.resolved.ppo.batch_size;
    if s.state.stopped.is_some() || s.state.global_step >= total {
        info!(
            step = s.state.global_step,
            "the run is already complete{}",
            s.state
                .stopped
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        return Ok(None);
    }
    let progress = TrainProgress::new(total, s.state.global_step, std::io::stderr().is_terminal());
    guard.attach_progress(&progress);
    let plateau_metric = raw.training.plateau_metric.clone();
    let plateau_on_eval = plateau_metric.starts_with("eval_");
    let mut interrupted_at = None;
    let mut signalled = None;

    for step in s.state.global_step + 1..=total {
        let (indices, _) = s.state.data_order.next_batch(batch_size);
        let batch: Vec<_> = indices.iter().map(|&i| s.train_set[i].clone()).collect();
        let (rollout, mut metrics) = s
            .trainer
            .step(&batch, s.tokenizer.as_ref(), s.reward.as_mut())
            .with_context(|| format!("PPO iteration {step} failed"))?;
        drop(batch);
        let order = &s.state.data_order;
        metrics.push(
            "epoch",
            order.epoch as f64 + order.position as f64 / order.len.max(1) as f64,
        );
        metrics.push("memory_rss_mib", proc_status_mib("VmRSS:"));
        metrics.push("peak_memory_mib", proc_status_mib("VmHWM:"));
        s.state.global_step = step;
        s.record(RecordKind::Train, step, &metrics)?;
        progress.update(step, &metrics.as_pairs());
        if step == 1 || step % raw.log_every.max(1) == 0 || step == total {
            info!(
                step,
                sample = %format!("{:?} → {:?}", rollout.samples[0].prompt, rollout.responses[0]),
                "{} score={:.3} kl={:.4} lr={:.2e}",
                format_summary(&metrics.as_pairs()),
                metrics.get("score").unwrap_or(f64::NAN),
                metrics.get("kl_divergence").unwrap_or(f64::NAN),
                metrics.get("learning_rate").unwrap_or(f64::NAN),
            );
        }
        drop(rollout);
        if !plateau_on_eval
            && let Some(value) = metrics.get(&plateau_metric)
            && s.trainer.observe_eval(value)
        {
            info!(
                step,
                "{plateau_metric} plateaued: learning rate reduced to {:.3e}",
                s.trainer.learning_rates().0
            );
        }

        // epoch end: the next batch would start a new pass over the prompts
        let order = s.state.data_order;
        if order.position + batch_size > order.len {
            let epoch = order.epoch + 1;
            if raw.checkpoint.save_epoch_exports && epoch > s.state.epochs_exported {
                let dir = s.export(&format!("epoch_{epoch}"))?;
                info!(step, export = %dir.display(), "epoch {epoch} finished");
            }
            s.state.epochs_exported = s.state.epochs_exported.max(epoch);
        }

        let mut eval_reward = None;
        let mut improved = false;
        let eval_every = raw.eval.eval_every_n_steps;
        if eval_every > 0 && (step % eval_every == 0 || step == total) {
            let reward = s.evaluate(step)?;
            eval_reward = Some(reward);
            if plateau_on_eval
                && let Some(value) = s.history.last().and_then(|r| r.get(&plateau_metric))
                && s.trainer.observe_eval(value)
            {
                info!(
                    step,
                    "{plateau_metric} plateaued: learning rate reduced to {:.3e}",
                    s.trainer.learning_rates().0
                );
            }
            match s.state.early_stopping.observe(step, reward) {
                StopDecision::Improved { previous } => {
                    improved = true;
                    info!(step, eval_reward = reward, previous = ?previous, "new best eval_reward");
                }
                StopDecision::NoImprovement { bad_evals } => info!(
                    step,
                    "eval_reward {reward:.4} did not beat the best {:.4} (+{}) — {bad_evals}/{} evaluations without improvement",
                    s.state.early_stopping.best.unwrap_or(f64::NAN),
                    raw.eval.early_stopping_threshold,
                    raw.eval.early_stopping_patience,
                ),
                StopDecision::Stop { best, bad_evals } => {
                    s.state.stopped = Some(format!(
                        "early stopping at iteration {step}: eval_reward has not risen more than {} above its best {best:.4} (iteration {}) for {bad_evals} evaluations",
                        raw.eval.early_stopping_threshold,
                        s.state.early_stopping.best_step.unwrap_or(0),
                    ));
                }
            }
        }

        // A signal during the last iteration lets the run finish (only the export is left).
        signalled = stop.received().filter(|_| step < total);
        let stop_here = args.stop_after == Some(step) || signalled.is_some();
        let last = step == total || s.state.stopped.is_some() || stop_here;
        let every = raw.checkpoint.save_every_n_steps;
        if (every > 0 && step % every == 0) || last {
            let dir = s.save_checkpoint(&step_dir_name(step), eval_reward)?;
            info!(step, checkpoint = %dir.display(), "checkpoint saved");
            s.apply_retention();
        }
        if improved && raw.checkpoint.save_best {
            let dir = s.save_checkpoint(BEST_DIR, eval_reward)?;
            info!(step, best = %dir.display(), "best checkpoint updated");
        }
        if let Some(reason) = &s.state.stopped {
            warn!("{reason}; the best model is in checkpoints/best");
            break;
        }
        if stop_here {
            interrupted_at = Some(step);
            break;
        }
    }
    progress.finish();
    guard.detach_progress();

    if let Some(step) = interrupted_at {
        let out = s.out.display();
        match signalled {
            Some(signal) => warn!(
                step,
                "{} received: stopped after iteration {step} with a checkpoint; continue with: ppo-cli train --output-dir {out} --resume auto",
                stop_signal::name(signal)
            ),
            None => info!(
                step,
                "stopped after iteration {step} as asked (--stop-after); continue with: ppo-cli train --output-dir {out} --resume auto"
            ),
        }
        return Ok(signalled);
    }
    let final_dir = s.export("final")?;
    let scores: Vec<f64> = s
        .history
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .filter_map(|r| r.get("score"))
        .collect();
    let tail = &scores[scores.len().saturating_sub(10)..];
    info!(
        first_score = scores.first().copied().unwrap_or(f64::NAN),
        last10_mean_score = tail.iter().sum::<f64>() / tail.len().max(1) as f64,
        best_eval_reward = s.state.early_stopping.best.unwrap_or(f64::NAN),
        final_dir = %final_dir.display(),
        "training finished"
    );
    if raw.plots {
        match ppo_log::plot_run(&s.out) {
            Ok(paths) => info!(
                "plots: {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(err) => warn!("could not draw the plots: {err}"),
        }
    }
    Ok(None)
}
