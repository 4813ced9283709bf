//! Building the networks, tokenizer and reward of a run from `[model]` and `[reward]`:
//! Hugging Face directories when given, else the built-in model and byte tokenizer.
//!
//! The random draws happen in a fixed order from `Rng::new(seed)` (built-in policy, then the
//! critic's value head), so training, resume, `eval` and `export` rebuild the same initial
//! networks from the config alone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use ppo_core::{CharMatchReward, Reward};
use ppo_models::hf::{self, HfHead};
use ppo_models::{
    ByteTokenizer, CausalLm, HfTokenizer, PromptFormat, Rng, Tokenizer, TransformerConfig,
    ValueModel,
};
use ppo_reward::{
    DebertaReward, ExactMatchVerifier, Gsm8kVerifier, RegexVerifier, RemoteConfig, RemoteReward,
    RewardModel, RewardModelConfig, WeightedReward,
};

use crate::config::{CriticInit, RawConfig, RawRewardSource};
use ppo_models::Precision;

/// Policy, critic and tokenizer of a run, before training.
pub struct Models {
    /// The policy (its frozen copy becomes the reference).
    pub policy: CausalLm,
    /// The critic (`None` for the critic-free estimators of `[algorithm]`).
    pub critic: Option<ValueModel>,
    /// The policy's tokenizer, with the prompt format of `[model]`.
    pub tokenizer: Box<dyn Tokenizer>,
    /// What `rng` is left at, for the trainer's own stream.
    pub rng: Rng,
}

/// The prompt format of `[model]`.
pub fn prompt_format(raw: &RawConfig) -> PromptFormat {
    let m = &raw.model;
    PromptFormat {
        use_chat_template: m.use_chat_template,
        system_prompt: (!m.system_prompt.is_empty()).then(|| m.system_prompt.clone()),
        enable_thinking: m.enable_thinking,
    }
}

/// The tokenizer of a Hugging Face directory with `format`.
pub fn hf_tokenizer(dir: &Path, format: PromptFormat) -> Result<HfTokenizer> {
    HfTokenizer::from_dir(dir)
        .and_then(|t| t.with_prompt_format(format))
        .with_context(|| format!("cannot use the tokenizer of {}", dir.display()))
}

/// The policy's tokenizer: the byte tokenizer for the built-in model.
pub fn policy_tokenizer(raw: &RawConfig, format: PromptFormat) -> Result<Box<dyn Tokenizer>> {
    Ok(if raw.model.policy.is_empty() {
        Box::new(ByteTokenizer)
    } else {
        Box::new(hf_tokenizer(Path::new(&raw.model.policy), format)?)
    })
}

/// A frozen causal LM (the reference) computing in `dtype` and, below f32, also storing its
/// weights in it.
pub fn frozen_in(model: CausalLm, dtype: Precision) -> CausalLm {
    let model = model.with_compute_dtype(dtype);
    match dtype {
        Precision::F32 => model,
        dtype => model.into_storage_dtype(dtype),
    }
}

/// Checks that `tokenizer`'s ids fit the model of `config` (`what` names it in the error).
pub fn check_vocab(
    config: &TransformerConfig,
    tokenizer: &dyn Tokenizer,
    what: &str,
) -> Result<()> {
    if config.vocab_size < tokenizer.vocab_size() {
        bail!(
            "{what}: vocab_size {} is smaller than the tokenizer's vocabulary ({} ids)",
            config.vocab_size,
            tokenizer.vocab_size()
        );
    }
    Ok(())
}

/// Policy (on `device`), critic (on `critic_device`) and tokenizer as `[model]` describes
/// them; `model` is the resolved shape.
pub fn build(
    raw: &RawConfig,
    model: &TransformerConfig,
    device: &Device,
    critic_device: &Device,
) -> Result<Models> {
    let m = &raw.model;
    let mut rng = Rng::new(raw.seed);
    let tokenizer = policy_tokenizer(raw, prompt_format(raw))?;
    let policy = if m.policy.is_empty() {
        check_vocab(
            model,
            tokenizer.as_ref(),
            "invalid config key `model.vocab_size`",
        )?;
        CausalLm::init(model, &mut rng, device)
    } else {
        let (_, policy) = hf::load_causal_lm(&m.policy, device)
            .with_context(|| format!("cannot load the policy `model.policy` = {:?}", m.policy))?;
        check_vocab(
            model,
            tokenizer.as_ref(),
            &format!("{}/config.json", m.policy),
        )?;
        policy
    };
    let critic = if !raw.algorithm.advantage_estimator.needs_critic() {
        None
    } else if !m.critic.is_empty() {
        Some(
            load_critic(Path::new(&m.critic), &mut rng, critic_device).with_context(|| {
                format!("cannot load the critic `model.critic` = {:?}", m.critic)
            })?,
        )
    } else if m.critic_init == CriticInit::Reward {
        if hf::is_deberta(&m.reward).unwrap_or(false) {
            bail!(
                "`model.critic_init` = \"reward\" needs a causal-LM reward model (a `score` head \
                 on the policy's architecture); `model.reward` = {:?} is a DeBERTa encoder: \
                 use critic_init = \"policy\"",
                m.reward
            );
        }
        let (_, reward_model) =
            hf::load_value_model(&m.reward, critic_device).with_context(|| {
                format!(
                    "cannot load `model.reward` = {:?} for critic_init",
                    m.reward
                )
            })?;
        Some(ValueModel::from_backbone(reward_model.backbone(), &mut rng))
    } else {
        // Initialised from the policy's weights, then moved (f32 copies across devices).
        Some(burn::module::Module::to_device(
            ValueModel::from_backbone(policy.backbone(), &mut rng),
            critic_device,
        ))
    };
    // Trained roles keep f32 parameters (the masters) and compute in their dtype.
    let p = &raw.precision;
    let policy = policy.with_compute_dtype(p.policy);
    let critic = critic.map(|critic| critic.with_compute_dtype(p.critic));
    // The critic has no frozen copy to keep: its adapters go on here (the policy's are put on
    // by `with_policy_lora` once the reference is taken).
    let critic = match raw.lora.critic_config() {
        Some(lora) => critic.map(|c| c.with_lora(&lora, &mut lora_rng(raw.seed, LORA_CRITIC))),
        None => critic,
    };
    if let Some(critic) = &critic {
        check_vocab(
            critic.config(),
            tokenizer.as_ref(),
            "the critic (it reads the policy's tokens)",
        )?;
    }
    Ok(Models {
        policy,
        critic,
        tokenizer,
        rng,
    })
}

/// Streams of the LoRA `A` draws, apart from the other draws of a run (a run without
/// adapters draws exactly what it drew before adapters existed).
const LORA_POLICY: u64 = 0x4c6f_5241_0001;
const LORA_CRITIC: u64 = 0x4c6f_5241_0002;

fn lora_rng(seed: u64, stream: u64) -> Rng {
    Rng::new(seed ^ stream)
}

/// `policy` with the adapters of `[lora]` (as it is without).
pub fn with_policy_lora(raw: &RawConfig, policy: CausalLm) -> CausalLm {
    match raw.lora.config() {
        Some(lora) => policy.with_lora(&lora, &mut lora_rng(raw.seed, LORA_POLICY)),
        None => policy,
    }
}

/// A critic directory: a `…ForSequenceClassification` checkpoint as is, or a `…ForCausalLM`
/// backbone with a fresh value head.
fn load_critic(dir: &Path, rng: &mut Rng, device: &Device) -> Result<ValueModel> {
    Ok(match hf::read_config(dir)?.head {
        HfHead::SequenceClassification => hf::load_value_model(dir, device)?.1,
        HfHead::CausalLm => {
            let (_, lm) = hf::load_causal_lm(dir, device)?;
            ValueModel::from_backbone(lm.backbone(), rng)
        }
    })
}

/// The reward of `[reward]`: one source as is, several (or a weight ≠ 1) combined by weight.
pub fn build_reward(
    raw: &RawConfig,
    device: &Device,
    forward_batch_size: usize,
) -> Result<Box<dyn Reward>> {
    let mut parts: Vec<(f64, Box<dyn Reward>)> = Vec::new();
    for (i, source) in raw.reward.sources.iter().enumerate() {
        let reward = build_source(raw, source, device, forward_batch_size)
            .with_context(|| format!("invalid config key `reward.sources[{i}]`"))?;
        parts.push((source.weight(), reward));
    }
    if parts.len() == 1 && parts[0].0 == 1.0 {
        return Ok(parts.pop().expect("one part").1);
    }
    Ok(Box::new(WeightedReward::new(parts)?))
}

fn build_source(
    raw: &RawConfig,
    source: &RawRewardSource,
    device: &Device,
    forward_batch_size: usize,
) -> Result<Box<dyn Reward>> {
    Ok(match source {
        RawRewardSource::CharMatch { .. } => Box::new(CharMatchReward {
            partial_credit: raw.reward.partial_credit,
        }),
        RawRewardSource::Gsm8k { .. } => Box::new(Gsm8kVerifier::default()),
        RawRewardSource::ExactMatch {
            case_insensitive, ..
        } => Box::new(ExactMatchVerifier {
            case_insensitive: *case_insensitive,
        }),
        RawRewardSource::Regex { pattern, .. } => Box::new(RegexVerifier::new(pattern)?),
        RawRewardSource::Model {
            batch_size,
            max_length,
            ..
        } => {
            let dir = PathBuf::from(&raw.model.reward);
            let batch_size = if *batch_size == 0 {
                forward_batch_size
            } else {
                *batch_size
            };
            let is_deberta = hf::is_deberta(&dir).with_context(|| {
                format!(
                    "cannot read the reward model `model.reward` = {:?}",
                    raw.model.reward
                )
            })?;
            if is_deberta {
                if raw.precision.reward != Precision::F32 {
                    bail!(
                        "`precision.reward` = \"{}\": DeBERTa reward models run in float32 \
                         only",
                        raw.precision.reward
                    );
                }
                // max_length 0: the model's max_position_embeddings.
                let config = RewardModelConfig {
                    batch_size,
                    max_length: *max_length,
                };
                let reward = DebertaReward::load(&dir, config, device).with_context(|| {
                    format!(
                        "cannot load the reward model `model.reward` = {:?}",
                        raw.model.reward
                    )
                })?;
                return Ok(Box::new(reward));
            }
            let (config, model) = hf::load_value_model(&dir, device).with_context(|| {
                format!(
                    "cannot load the reward model `model.reward` = {:?}",
                    raw.model.reward
                )
            })?;
            // Frozen: stored and computed in its dtype.
            let model = match raw.precision.reward {
                Precision::F32 => model,
                dtype => model.into_storage_dtype(dtype).with_compute_dtype(dtype),
            };
            let format = PromptFormat {
                use_chat_template: raw.model.use_chat_template,
                ..prompt_format(raw)
            };
            let tokenizer = HfTokenizer::from_dir(&dir)
                .and_then(|t| {
                    if format.use_chat_template && !t.has_chat_template() {
                        Ok(t)
                    } else {
                        t.with_prompt_format(format)
                    }
                })
                .with_context(|| format!("cannot use the tokenizer of {}", dir.display()))?;
            check_vocab(
                &config,
                &tokenizer,
                &format!("{}/config.json", dir.display()),
            )?;
            let max_length = match *max_length {
                0 => config.max_position_embeddings,
                n => n,
            };
            Box::new(RewardModel::new(
                model,
                Box::new(tokenizer),
                RewardModelConfig {
                    batch_size,
                    max_length,
                },
            )?)
        }
        RawRewardSource::Remote {
            url,
            timeout_secs,
            max_retries,
            token_env,
            ..
        } => {
            let mut headers = Vec::new();
            if !token_env.is_empty() {
                let token = std::env::var(token_env).with_context(|| {
                    format!("token_env: environment variable {token_env} is not set")
                })?;
                headers.push(("Authorization".to_string(), format!("Bearer {token}")));
            }
            Box::new(RemoteReward::new(RemoteConfig {
                url: url.clone(),
                timeout: std::time::Duration::from_secs_f64(*timeout_secs),
                max_retries: *max_retries,
                headers,
                ..RemoteConfig::default()
            })?)
        }
    })
}
