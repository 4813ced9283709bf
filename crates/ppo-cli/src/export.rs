//! Hugging Face exports: `ppo-cli export --checkpoint DIR --out DIR`, and the `epoch_N/` and
//! `final/` directories of a run. An export holds `policy/` (`…ForCausalLM`) and, when the run
//! has a critic, `critic/` (`…ForSequenceClassification` with one label: the value head as
//! `score`), each with
//! `config.json`, `model.safetensors` and the tokenizer files, plus the run's `config.toml`.
//! LoRA adapters are folded into the exported weights; with `lora.export_adapter` the policy's
//! are also written as a PEFT directory, `policy-adapter/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use ppo_models::hf::{self, ExportDtype, ExportOptions};
use ppo_models::{ByteTokenizer, CausalLm, LoraRole, Tokenizer, ValueModel};

use crate::config::{self, CriticInit, RawConfig};
use crate::models;

/// Options of `export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// A checkpoint directory (`RUN/checkpoints/step_N`, `RUN/checkpoints/best`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Where to write the export (replaced atomically if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Weight dtype: float32 or bfloat16.
    #[arg(long, default_value = "float32")]
    pub dtype: String,
}

/// The dtype named on the command line or in the config.
pub fn parse_dtype(name: &str) -> Result<ExportDtype> {
    name.parse()
        .with_context(|| format!("invalid export dtype (--dtype {name:?})"))
}

/// Writes `policy/` and (when there is a critic) `critic/` in Hugging Face format under `dir`
/// (which must exist).
pub fn write_hf(
    dir: &Path,
    raw: &RawConfig,
    policy: &CausalLm,
    critic: Option<&ValueModel>,
    dtype: ExportDtype,
) -> Result<()> {
    let policy_dir = dir.join("policy");
    let critic_dir = dir.join("critic");
    fs_err::create_dir_all(&policy_dir)?;
    if critic.is_some() {
        fs_err::create_dir_all(&critic_dir)?;
    }
    let source = (!raw.model.policy.is_empty()).then(|| PathBuf::from(&raw.model.policy));
    let base_config = match &source {
        Some(src) => Some(read_json(&src.join("config.json"))?),
        None => None,
    };
    let critic_base = if !raw.model.critic.is_empty() {
        Some(read_json(
            &Path::new(&raw.model.critic).join("config.json"),
        )?)
    } else if raw.model.critic_init == CriticInit::Reward {
        Some(read_json(
            &Path::new(&raw.model.reward).join("config.json"),
        )?)
    } else {
        base_config.clone()
    };
    let token_ids = match &source {
        Some(_) => None,
        None => Some(hf::TokenIds {
            bos: ByteTokenizer.bos_id(),
            eos: Some(ByteTokenizer.eos_id()),
            pad: Some(ByteTokenizer.pad_id()),
        }),
    };
    let options = |base: Option<serde_json::Value>| ExportOptions {
        dtype,
        base_config: base,
        token_ids: token_ids.unwrap_or_default(),
        ..ExportOptions::default()
    };
    hf::save_causal_lm(policy, &policy_dir, &options(base_config.clone()))?;
    let mut targets = vec![&policy_dir];
    if let Some(critic) = critic {
        hf::save_value_model(critic, &critic_dir, &options(critic_base))?;
        targets.push(&critic_dir);
    }
    for target in targets {
        match &source {
            Some(src) => {
                hf::copy_tokenizer_files(src, target)?;
            }
            None => {
                hf::write_byte_tokenizer_files(target)?;
                if let Some(ids) = &token_ids {
                    hf::write_generation_config(target, ids)?;
                }
            }
        }
    }
    if let Some(lora) = raw.lora.config().filter(|_| raw.lora.export_adapter) {
        // The base the adapters go on: the policy's directory (absolute where it resolves),
        // "" for the built-in model, which has none on disk.
        let base = match &source {
            Some(src) => fs_err::canonicalize(src)
                .unwrap_or_else(|_| src.clone())
                .display()
                .to_string(),
            None => String::new(),
        };
        hf::save_peft_adapter(policy, &lora, &base, dir.join("policy-adapter"))?;
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    serde_json::from_str(&fs_err::read_to_string(path)?)
        .with_context(|| format!("{} is not valid JSON", path.display()))
}

/// The networks of a checkpoint, with the run's initial ones (the reference of evaluation).
pub struct CheckpointModels {
    /// The run's configuration (the checkpoint's snapshot over the current defaults).
    pub raw: RawConfig,
    /// The policy as the run started (rebuilt from the configuration and seed), when asked for.
    pub initial_policy: Option<CausalLm>,
    /// The checkpoint's policy.
    pub policy: CausalLm,
    /// The checkpoint's critic (`None` for a critic-free run).
    pub critic: Option<ValueModel>,
    /// The policy's tokenizer, with the run's prompt format.
    pub tokenizer: Box<dyn Tokenizer>,
}

/// Rebuilds the networks of the verified checkpoint at `dir`: configuration from its snapshot,
/// weights from its files. With `keep_initial` the run's initial policy is kept as well (a
/// second copy of the policy: only evaluation, which needs the reference, asks for it).
pub fn load_checkpoint_models(
    dir: &Path,
    device: &Device,
    keep_initial: bool,
) -> Result<CheckpointModels> {
    ppo_ckpt::verify(dir)
        .with_context(|| format!("{} is not a complete checkpoint", dir.display()))?;
    let snapshot = fs_err::read_to_string(dir.join("config.toml"))?;
    let name = format!("{}/config.toml", dir.display());
    let raw = config::load_raw(Some((&snapshot, &name)), None, &[])?;
    let model = config::model_config(&raw)?;
    let built = models::build(&raw, &model, device, device)?;
    let initial_policy = keep_initial.then(|| built.policy.clone());
    // Without the initial policy the loads replace the only copy, one parameter at a time
    // (with LoRA only the adapters are read, over the rebuilt base).
    let policy = models::with_policy_lora(&raw, built.policy);
    let policy =
        crate::checkpoint::load_model(policy, LoraRole::Policy, &dir.join("policy/model.bpk"))?;
    let critic = crate::checkpoint::load_critic(dir, built.critic)?;
    Ok(CheckpointModels {
        raw,
        initial_policy,
        policy,
        critic,
        tokenizer: built.tokenizer,
    })
}

/// `ppo-cli export`.
pub fn run(args: ExportArgs) -> Result<()> {
    let dtype = parse_dtype(&args.dtype)?;
    let device = Device::flex();
    let m = load_checkpoint_models(&args.checkpoint, &device, false)?;
    let snapshot = fs_err::read_to_string(args.checkpoint.join("config.toml"))?;
    ppo_ckpt::replace_atomic(&args.out, |tmp| -> Result<()> {
        write_hf(tmp, &m.raw, &m.policy, m.critic.as_ref(), dtype)?;
        fs_err::write(tmp.join("config.toml"), &snapshot)?;
        Ok(())
    })
    .with_context(|| format!("failed to export to {}", args.out.display()))?;
    let parts = if m.critic.is_some() {
        "policy/, critic/"
    } else {
        "policy/"
    };
    println!(
        "exported {} to {} ({parts}: Hugging Face format, {})",
        args.checkpoint.display(),
        args.out.display(),
        args.dtype
    );
    Ok(())
}
