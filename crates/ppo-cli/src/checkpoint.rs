//! What a run writes to `OUTPUT_DIR/checkpoints/step_N/` (and `best/`, `epoch_N/`, `final/`)
//! and how a run is put back from it.
//!
//! ```text
//! step_N/
//! ├── manifest.json          # size + FNV-1a 64 of every file (ppo-ckpt)
//! ├── checkpoint.json        # step, epoch, eval_reward, time, version
//! ├── policy/model.bpk       # weights (burnpack, parameter ids kept; with LoRA the adapters only)
//! ├── policy/config.json     # model shape
//! ├── critic/model.bpk       # only with a critic (advantage_estimator = "gae")
//! ├── optimizer/policy.bpk   # AdamW moments (`{param}.exp_avg`, `.exp_avg_sq`) and step counts
//! ├── optimizer/critic.bpk   # only with a critic
//! ├── training_state.json    # step, data position, schedules, KL controller, RNG, early stopping
//! ├── metrics_history.jsonl  # every train/eval record up to step N
//! └── config.toml            # the run's configuration snapshot
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use ppo_ckpt::CheckpointMeta;
use ppo_core::{DataOrder, EarlyStopping, PpoTrainer, TrainerState};
use ppo_log::{MetricsRecord, MetricsWriter, read_metrics};
use ppo_models::{CausalLm, LoraRole, TransformerConfig, ValueModel, adapter_counts, lora_trains};
use serde::{Deserialize, Serialize};

/// Format version of `training_state.json` (2: AdamW moments keyed by parameter path).
const STATE_VERSION: u32 = 2;

/// Everything of the loop that is not in the trainer or the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainingState {
    /// Format version.
    pub version: u32,
    /// Iterations completed.
    pub global_step: u64,
    /// Position in the shuffled prompt order.
    pub data_order: DataOrder,
    /// Schedules, KL controller, score moments, RNG.
    pub trainer: TrainerState,
    /// Early-stopping counters and the best eval reward.
    pub early_stopping: EarlyStopping,
    /// Epoch exports written so far (`epoch_1` … `epoch_K`).
    pub epochs_exported: u64,
    /// Why the run stopped before `total_steps`, if it did.
    pub stopped: Option<String>,
}

/// Writes policy and (when there is one) critic weights, with the model shape, under `dir`.
pub fn write_models(dir: &Path, trainer: &PpoTrainer, model: &TransformerConfig) -> Result<()> {
    let shape = serde_json::to_vec_pretty(model)?;
    let critic = trainer.critic();
    let names: &[&str] = if critic.is_some() {
        &["policy", "critic"]
    } else {
        &["policy"]
    };
    for name in names {
        fs_err::create_dir_all(dir.join(name))?;
        fs_err::write(dir.join(name).join("config.json"), &shape)?;
    }
    save_model(
        trainer.policy(),
        LoraRole::Policy,
        &dir.join("policy/model.bpk"),
    )?;
    if let Some(critic) = critic {
        save_model(critic, LoraRole::Critic, &dir.join("critic/model.bpk"))?;
    }
    Ok(())
}

/// Saves a model's weights; one with LoRA adapters saves only what it trains (the adapters
/// and a critic's value head: the base is rebuilt from the configuration).
fn save_model<M: Module>(model: &M, role: LoraRole, path: &Path) -> Result<()> {
    if adapter_counts(model).1 > 0 {
        ppo_ckpt::save_module_where(model, path, &|p| lora_trains(role, p))?;
    } else {
        ppo_ckpt::save_module(model, path)?;
    }
    Ok(())
}

/// Loads weights written by `save_model` into `model` (built from the run's configuration:
/// with LoRA adapters, every trained tensor must be in the file and the base keeps its values).
pub fn load_model<M: Module>(model: M, role: LoraRole, path: &Path) -> Result<M> {
    Ok(if adapter_counts(&model).1 > 0 {
        ppo_ckpt::load_module_part(model, path, &|p| lora_trains(role, p))?
    } else {
        ppo_ckpt::load_module(model, path)?
    })
}

/// Fills a checkpoint directory (called inside `write_atomic` / `replace_atomic`).
pub fn fill_checkpoint(
    dir: &Path,
    trainer: &PpoTrainer,
    model: &TransformerConfig,
    state: &TrainingState,
    meta: &CheckpointMeta,
    history: &[MetricsRecord],
    config_toml: &str,
) -> Result<()> {
    write_models(dir, trainer, model)?;
    fs_err::create_dir_all(dir.join("optimizer"))?;
    let (policy_optim, critic_optim) = trainer.optimizers();
    let optimizers = std::iter::once(("policy", policy_optim))
        .chain(critic_optim.map(|optim| ("critic", optim)));
    for (name, optim) in optimizers {
        let (tensors, steps) = optim.named_tensors();
        ppo_ckpt::save_tensors(&dir.join(format!("optimizer/{name}.bpk")), tensors, &steps)?;
    }
    let json = serde_json::to_vec_pretty(state)?;
    fs_err::write(dir.join("training_state.json"), json)?;
    let mut writer = MetricsWriter::create(dir.join("metrics_history.jsonl"))?;
    for record in history {
        writer.write(record)?;
    }
    fs_err::write(dir.join("config.toml"), config_toml)?;
    ppo_ckpt::write_meta(dir, meta)?;
    Ok(())
}

/// A checkpoint read back: the loop state, the metrics history and the config snapshot.
pub struct Loaded {
    /// Loop state.
    pub state: TrainingState,
    /// Train and eval records up to the checkpoint.
    pub history: Vec<MetricsRecord>,
    /// The configuration the run was started with.
    pub config_toml: String,
}

/// Reads the non-tensor parts of the verified checkpoint at `dir`.
pub fn read_checkpoint(dir: &Path) -> Result<Loaded> {
    let state: TrainingState =
        serde_json::from_slice(&fs_err::read(dir.join("training_state.json"))?)
            .with_context(|| format!("{}/training_state.json is not valid", dir.display()))?;
    if state.version == 1 {
        anyhow::bail!(
            "{} was written by an earlier ppo-rs (training state format 1, burn's optimiser \
             records); this ppo-rs cannot resume it. Its weights still export: ppo-cli export \
             --checkpoint {}",
            dir.display(),
            dir.display()
        );
    }
    if state.version != STATE_VERSION {
        anyhow::bail!(
            "{}/training_state.json has format version {}, this ppo-rs reads {STATE_VERSION}",
            dir.display(),
            state.version
        );
    }
    let history = read_metrics(dir.join("metrics_history.jsonl"))?;
    let config_toml = fs_err::read_to_string(dir.join("config.toml"))?;
    Ok(Loaded {
        state,
        history,
        config_toml,
    })
}

/// Loads the checkpoint's critic weights into `critic` before a trainer is built on it: the
/// caller holds the only copy, so parameters are replaced one by one and the load needs about
/// one tensor of memory beyond the critic.
pub fn load_critic(dir: &Path, critic: Option<ValueModel>) -> Result<Option<ValueModel>> {
    let Some(critic) = critic else {
        return Ok(None);
    };
    let path = dir.join("critic/model.bpk");
    if !path.exists() {
        bail!(
            "{} has no critic/: it was written by a run without a critic (another \
             algorithm.advantage_estimator), so this run, which trains one, cannot resume it",
            dir.display()
        );
    }
    Ok(Some(load_model(critic, LoraRole::Critic, &path)?))
}

/// Loads the checkpoint's policy weights and optimiser states into `trainer` (built fresh from
/// the same configuration and seed, on a critic loaded with [`load_critic`]) and restores its
/// state. The policy's old values stay as the frozen reference.
pub fn restore_trainer(dir: &Path, trainer: &mut PpoTrainer, state: TrainerState) -> Result<()> {
    let policy: CausalLm = load_model(
        trainer.policy().clone(),
        LoraRole::Policy,
        &dir.join("policy/model.bpk"),
    )?;
    // Each optimiser's moments go to its model's device.
    let optim = |name: &str, device: &Device| -> Result<ppo_core::OptimizerTensors> {
        let pack = ppo_ckpt::load_tensors(&dir.join(format!("optimizer/{name}.bpk")), device)?;
        Ok((pack.tensors, pack.scalars))
    };
    let critic = match trainer.critic() {
        Some(critic) => Some((critic.clone(), optim("critic", trainer.critic_device())?)),
        None => None,
    };
    let policy_optim = optim("policy", trainer.device())?;
    trainer
        .restore(state, policy, critic, policy_optim)
        .with_context(|| format!("failed to restore the trainer from {}", dir.display()))
}

/// New `TrainingState` at the start of a run.
pub fn fresh_state(
    data_order: DataOrder,
    trainer: &PpoTrainer,
    early_stopping: EarlyStopping,
) -> TrainingState {
    TrainingState {
        version: STATE_VERSION,
        global_step: 0,
        data_order,
        trainer: trainer.state(),
        early_stopping,
        epochs_exported: 0,
        stopped: None,
    }
}
