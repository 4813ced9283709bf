//! A `train` session: models, reward, data split, trainer and state built for a fresh or a
//! resumed run, and the loop — iterations, evaluation, early stopping, checkpoints with
//! retention, best and epoch exports, metrics to the JSONL file, TensorBoard and the tracking
//! server, plots at the end.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use ppo_ckpt::{BEST_DIR, CheckpointMeta, RunDir, step_dir_name};
use ppo_core::{DataOrder, EarlyStopping, Metrics, PpoTrainer, PromptSample, Reward, StopDecision};
use ppo_log::{
    MetricsRecord, MetricsWriter, RecordKind, TensorBoardSink, Tracker, TrackingConfig,
    TrainProgress, flatten_params, format_summary, resolve_tracking_settings,
};
use ppo_models::{Rng, Tokenizer};
use ppo_sched::Scheduler;
use tracing::{info, warn};

use crate::TrainArgs;
use crate::checkpoint::{self, Loaded, TrainingState};
use crate::config::{Resolved, RunShape};
use crate::data::PromptFit;
use crate::device::Placement;
use crate::models::frozen_in;
use crate::stop_signal::{self, StopSignal};
use crate::{export, memory, models};

/// Seeds of the evaluation passes: a pure function of (seed, step), so evaluation never
/// consumes the training random stream and a resumed run evaluates identically.
const EVAL_SEED: u64 = 0xE7A1_5EED_0000_0000;

/// Writes `training_config.json` (the resolved config with its provenance and the run's
/// shape) and `training_config.toml` (the config alone).
pub fn save_config(
    run: &RunDir,
    resolved: &Resolved,
    shape: &RunShape,
    prompt_fit: &PromptFit,
) -> Result<()> {
    let snapshot = serde_json::json!({
        "ppo_rs_version": env!("CARGO_PKG_VERSION"),
        "git_commit": env!("PPO_RS_GIT_COMMIT"),
        "device": resolved.raw.device,
        "seed": resolved.raw.seed,
        "created": chrono::Local::now().to_rfc3339(),
        "total_steps": shape.total_steps,
        "steps_per_epoch": shape.steps_per_epoch,
        "train_samples": shape.train_samples,
        "eval_samples": shape.eval_samples,
        "prompt_fit": prompt_fit,
        "config": resolved.raw,
        "resolved": {
            "model": resolved.model,
            "ppo": resolved.ppo,
            "eval_sampling": resolved.eval_sampling,
            "policy_schedule": shape.policy_schedule,
            "critic_schedule": shape.critic_schedule,
        },
    });
    fs_err::write(run.config_json(), serde_json::to_string_pretty(&snapshot)?)?;
    fs_err::write(run.config_toml(), config_toml(resolved)?)?;
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
fn start_tracker(resolved: &Resolved, run: &RunDir) -> Option<Tracker> {
    let out = run.root();
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

/// The TensorBoard sink in `tb/`, when `[tracking] tensorboard`: the resolved config as text,
/// then `history` (a resumed run's records, replacing what the directory held).
fn start_tensorboard(
    resolved: &Resolved,
    run: &RunDir,
    config_toml: &str,
    history: &[MetricsRecord],
) -> Option<TensorBoardSink> {
    if !resolved.raw.tracking.tensorboard {
        return None;
    }
    // A fenced block: TensorBoard renders the text as markdown.
    let text = format!("```toml\n{}\n```", config_toml.trim_end());
    Some(TensorBoardSink::start(
        &run.tensorboard(),
        &hostname(),
        &text,
        history,
    ))
}

/// This machine's name for the event file's name (`localhost` when it cannot be found).
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Everything the loop needs, built identically for fresh and resumed runs.
pub struct Session {
    resolved: Resolved,
    shape: RunShape,
    run: RunDir,
    trainer: PpoTrainer,
    train_set: Vec<ppo_core::PromptSample>,
    eval_set: Vec<ppo_core::PromptSample>,
    reward: Box<dyn Reward>,
    tokenizer: Box<dyn Tokenizer>,
    state: TrainingState,
    history: Vec<MetricsRecord>,
    metrics_out: MetricsWriter,
    tensorboard: Option<TensorBoardSink>,
    pub tracker: Option<Tracker>,
    config_toml: String,
}

/// Builds models, reward, trainer and data split for a fresh run or from the checkpoint
/// `loaded`, each model on its device of `place`; `prompts` are the run's, in training order.
pub fn build_session(
    resolved: Resolved,
    place: &Placement,
    shape: RunShape,
    prompts: Vec<PromptSample>,
    run: RunDir,
    loaded: Option<(PathBuf, Loaded)>,
) -> Result<Session> {
    let mut models = models::build(&resolved.raw, &resolved.model, &place.policy, &place.critic)?;
    if let Some((dir, _)) = &loaded {
        models.critic = checkpoint::load_critic(dir, models.critic)?;
    }
    let reward = models::build_reward(
        &resolved.raw,
        &place.reward,
        resolved.ppo.forward_batch_size,
    )?;
    let mut rng = models.rng;
    let mut trainer = PpoTrainer::new(
        resolved.ppo.clone(),
        models.policy,
        models.critic,
        Scheduler::new(shape.policy_schedule.clone())?,
        Scheduler::new(shape.critic_schedule.clone())?,
        rng.fork(),
    )?;
    // LoRA: the reference above is the base; the policy trains adapters over the same weights.
    if resolved.raw.lora.config().is_some() {
        trainer.adapt(
            |policy| models::with_policy_lora(&resolved.raw, policy),
            |critic| critic,
        );
    }
    // The frozen reference: on its device, stored and computed in its dtype.
    let moved = place.specs[1] != place.specs[0];
    let dtype = resolved.raw.precision.reference;
    trainer.map_reference(|reference| {
        let reference = if moved {
            burn::module::Module::to_device(reference, &place.reference)
        } else {
            reference
        };
        frozen_in(reference, dtype)
    });
    let mut train_set = prompts;
    let mut eval_set = train_set.split_off(shape.train_samples);
    eval_set.truncate(shape.eval_samples);
    let tokenizer = models.tokenizer;
    let e = &resolved.raw.eval;
    let mut state = checkpoint::fresh_state(
        DataOrder::new(train_set.len(), resolved.raw.seed),
        &trainer,
        EarlyStopping::new(e.early_stopping_patience, e.early_stopping_threshold),
    );
    let metrics_path = run.metrics_file();
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
    let tracker = start_tracker(&resolved, &run);
    let config_toml = config_toml(&resolved)?;
    let tensorboard = start_tensorboard(&resolved, &run, &config_toml, &history);
    Ok(Session {
        config_toml,
        tensorboard,
        reward,
        resolved,
        shape,
        run,
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
        if let Some(tensorboard) = &mut self.tensorboard {
            tensorboard.record(&record);
        }
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
        let dir = self.run.checkpoint(name);
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
        let result = ppo_ckpt::plan_retention(self.run.root(), keep, true)
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

    /// Policy and critic in Hugging Face format, and the config snapshot, in `dir` (an
    /// export directory of the run).
    fn export(&self, dir: PathBuf) -> Result<PathBuf> {
        let raw = &self.resolved.raw;
        let dtype = raw.checkpoint.export_dtype;
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

/// The loop; `Ok(Some(signal))` when a signal stopped it (after a checkpoint).
pub fn train_loop(
    s: &mut Session,
    args: &TrainArgs,
    guard: &ppo_log::LogGuard,
    stop: &StopSignal,
) -> Result<Option<i32>> {
    let total = s.shape.total_steps;
    let raw = s.resolved.raw.clone();
    let batch_size = s.resolved.ppo.batch_size;
    if s.state.stopped.is_some() || s.state.global_step >= total {
        info!(
            step = s.state.global_step,
            "the run is already complete{} at iteration {} of {total}: nothing to do. To train \
             further pass a larger --max-steps (the learning-rate schedules are then re-planned \
             over the new length); to start over: --resume never --overwrite",
            s.state
                .stopped
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            s.state.global_step
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
        // Dynamic sampling draws further batches from the same order (resumable with it).
        let (order, train_set) = (&mut s.state.data_order, &s.train_set);
        let mut more = || {
            let (indices, _) = order.next_batch(batch_size);
            Some(indices.iter().map(|&i| train_set[i].clone()).collect())
        };
        let (rollout, mut metrics) = s
            .trainer
            .step_with(&batch, &mut more, s.tokenizer.as_ref(), s.reward.as_mut())
            .with_context(|| format!("PPO iteration {step} failed"))?;
        drop(batch);
        let skipped = metrics.get("skipped_steps").unwrap_or(0.0);
        if skipped > 0.0 {
            warn!(
                step,
                "skipped {skipped} optimiser step(s) of this iteration: NaN or infinite loss or \
                 gradient (the weights keep their previous values; {} in a row stop training)",
                raw.training.max_consecutive_skips
            );
        }
        let order = &s.state.data_order;
        metrics.push(
            "epoch",
            order.epoch as f64 + order.position as f64 / order.len.max(1) as f64,
        );
        metrics.push("memory_rss_mib", memory::proc_status_mib("VmRSS:"));
        metrics.push("peak_memory_mib", memory::proc_status_mib("VmHWM:"));
        s.state.global_step = step;
        s.record(RecordKind::Train, step, &metrics)?;
        progress.update(step, &metrics.as_pairs());
        if step == 1 || step % raw.log_every.max(1) == 0 || step == total {
            info!(
                step,
                sample = %format!("{:?} → {:?}", rollout.samples[0].prompt, rollout.responses[0]),
                "{} lr={:.2e}",
                format_summary(&metrics.as_pairs()),
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
                let dir = s.export(s.run.epoch_export(epoch))?;
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
                    let previous = previous.map_or("none".into(), |p| format!("{p:.4}"));
                    info!(
                        step,
                        "new best eval_reward {reward:.4} (previous best {previous})"
                    );
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
        let out = s.run.root().display();
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
    let final_dir = s.export(s.run.final_export())?;
    let scores: Vec<f64> = s
        .history
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .filter_map(|r| r.get("score"))
        .collect();
    let tail = &scores[scores.len().saturating_sub(10)..];
    info!(
        final_dir = %final_dir.display(),
        "training finished: score {:.4} at the first iteration, {:.4} over the last {}; best \
         eval_reward {:.4}",
        scores.first().copied().unwrap_or(f64::NAN),
        tail.iter().sum::<f64>() / tail.len().max(1) as f64,
        tail.len(),
        s.state.early_stopping.best.unwrap_or(f64::NAN),
    );
    if raw.plots {
        match ppo_log::plot_file(&s.run.metrics_file(), s.run.root()) {
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
