//! `ppo-cli train`: builds models, data, reward and trainer from the resolved config, runs the
//! loop, and writes the run directory (config, logs, metrics, final weights).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use ppo_core::{CharMatchReward, DataOrder, PpoTrainer, letters_task};
use ppo_log::{
    LogConfig, MetricsRecord, MetricsWriter, RecordKind, TrainProgress, format_summary,
    init_tracing,
};
use ppo_models::{ByteTokenizer, CausalLm, Rng, Tokenizer, ValueModel};
use ppo_sched::Scheduler;
use tracing::info;

use crate::TrainArgs;
use crate::config::{self, Resolved};

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

/// Peak resident memory of this process in MiB (Linux; NaN elsewhere).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn prepare_output_dir(requested: Option<PathBuf>, overwrite: bool) -> Result<PathBuf> {
    let dir = match requested {
        Some(dir) => dir,
        None => {
            let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S").to_string();
            let mut dir = PathBuf::from("runs").join(&stamp);
            let mut n = 1;
            while dir.exists() {
                dir = PathBuf::from("runs").join(format!("{stamp}_{n}"));
                n += 1;
            }
            dir
        }
    };
    let non_empty = dir.is_dir() && fs_err::read_dir(&dir)?.next().is_some();
    if non_empty && !overwrite {
        bail!(
            "output directory {} is not empty; choose another --output-dir or pass --overwrite",
            dir.display()
        );
    }
    fs_err::create_dir_all(&dir)?;
    Ok(dir)
}

fn save_config(dir: &Path, resolved: &Resolved, device: &str) -> Result<()> {
    let snapshot = serde_json::json!({
        "ppo_rs_version": env!("CARGO_PKG_VERSION"),
        "git_commit": option_env!("PPO_RS_GIT_COMMIT").unwrap_or("unknown"),
        "device": device,
        "seed": resolved.raw.seed,
        "total_steps": resolved.total_steps,
        "config": resolved.raw,
    });
    fs_err::write(
        dir.join("training_config.json"),
        serde_json::to_string_pretty(&snapshot)?,
    )?;
    fs_err::write(
        dir.join("training_config.toml"),
        toml::to_string_pretty(&resolved.raw)?,
    )?;
    Ok(())
}

/// Runs `train`.
pub fn run(args: TrainArgs) -> Result<()> {
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
    let resolved = config::load(args.config.as_deref(), &sets)?;
    let device = parse_device(&resolved.raw.device)?;
    let out = prepare_output_dir(args.output_dir.clone(), args.overwrite)?;
    let guard = init_tracing(&LogConfig {
        log_dir: Some(out.join("logs")),
        ..LogConfig::default()
    })?;
    save_config(&out, &resolved, &resolved.raw.device)?;
    info!(output_dir = %out.display(), device = %resolved.raw.device, seed = resolved.raw.seed, steps = resolved.total_steps, "starting PPO training");

    let tokenizer = ByteTokenizer;
    if resolved.model.vocab_size < tokenizer.vocab_size() {
        bail!(
            "invalid config key `model.vocab_size`: {} is smaller than the tokenizer vocabulary ({})",
            resolved.model.vocab_size,
            tokenizer.vocab_size()
        );
    }
    let model_config = resolved.model.clone();
    let mut rng = Rng::new(resolved.raw.seed);
    let policy = CausalLm::init(&model_config, &mut rng, &device);
    let critic = ValueModel::from_backbone(policy.backbone(), &mut rng);
    info!(
        params = model_config.num_params(),
        "policy initialised; critic = policy backbone + value head"
    );
    let mut trainer = PpoTrainer::new(
        resolved.ppo.clone(),
        policy,
        critic,
        Scheduler::new(resolved.policy_schedule.clone())?,
        Scheduler::new(resolved.critic_schedule.clone())?,
        rng.fork(),
    )?;
    let samples = letters_task(resolved.raw.data.num_samples, resolved.raw.seed ^ 0x5eed);
    let mut order = DataOrder::new(samples.len(), resolved.raw.seed);
    let mut reward = CharMatchReward {
        partial_credit: resolved.raw.reward.partial_credit,
    };
    let mut metrics_out = MetricsWriter::create(out.join("logs").join("metrics.jsonl"))?;
    let progress = TrainProgress::new(resolved.total_steps, 0, std::io::stderr().is_terminal());
    guard.attach_progress(&progress);

    let (mut first_score, mut last_scores) = (None, Vec::new());
    for step in 1..=resolved.total_steps {
        let (indices, _) = order.next_batch(resolved.ppo.batch_size);
        let batch: Vec<_> = indices.iter().map(|&i| samples[i].clone()).collect();
        let (rollout, mut metrics) = trainer
            .step(&batch, &tokenizer, &mut reward)
            .with_context(|| format!("PPO iteration {step} failed"))?;
        metrics.push("epoch", order.epoch as f64);
        metrics.push("peak_memory_mib", peak_rss_mib());
        let score = metrics.get("score").unwrap_or(f64::NAN);
        first_score.get_or_insert(score);
        last_scores.push(score);
        metrics_out.write(&MetricsRecord::now(
            RecordKind::Train,
            step,
            metrics.0.clone(),
        ))?;
        progress.update(step, &metrics.as_pairs());
        if step == 1 || step % resolved.raw.log_every.max(1) == 0 || step == resolved.total_steps {
            info!(
                step,
                sample = %format!("{:?} → {:?}", rollout.samples[0].prompt, rollout.responses[0]),
                "{} score={:.3} kl={:.4} lr={:.2e}",
                format_summary(&metrics.as_pairs()),
                score,
                metrics.get("kl_divergence").unwrap_or(f64::NAN),
                metrics.get("learning_rate").unwrap_or(f64::NAN),
            );
        }
    }
    progress.finish();
    guard.detach_progress();

    let final_dir = out.join("final");
    ppo_ckpt::write_atomic(&final_dir, |tmp| {
        ppo_ckpt::save_module(trainer.policy(), &tmp.join("policy.bpk"))?;
        ppo_ckpt::save_module(trainer.critic(), &tmp.join("critic.bpk"))?;
        let model_json = serde_json::to_vec_pretty(&model_config).map_err(std::io::Error::other)?;
        fs_err::write(tmp.join("config.json"), model_json)?;
        Ok(())
    })
    .with_context(|| format!("failed to save final weights to {}", final_dir.display()))?;
    let tail = &last_scores[last_scores.len().saturating_sub(10)..];
    let last_mean = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    info!(
        first_score = first_score.unwrap_or(f64::NAN),
        last10_mean_score = last_mean,
        final_dir = %final_dir.display(),
        "training finished"
    );
    Ok(())
}
