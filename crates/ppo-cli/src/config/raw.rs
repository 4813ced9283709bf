//! `RawConfig`: the TOML file as written, every choice already an enum (read once, here).

use ppo_core::{AdvantageEstimator, KlEstimator, LossAggregation};
use ppo_models::hf::ExportDtype;
use ppo_models::{LoraConfig, Precision, TransformerConfig};
use ppo_sched::PlateauMode;
use serde::{Deserialize, Serialize};

/// The whole file, as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub seed: u64,
    pub device: String,
    pub max_steps: u64,
    pub log_every: u64,
    pub plots: bool,
    pub model: RawModel,
    pub data: RawData,
    pub reward: RawReward,
    pub training: RawTraining,
    pub algorithm: RawAlgorithm,
    pub checkpoint: RawCheckpoint,
    pub eval: RawEval,
    pub tracking: RawTracking,
    pub generation: RawGeneration,
    pub devices: RawDevices,
    pub precision: RawPrecision,
    pub lora: RawLora,
}

/// `[lora]`: LoRA adapters on the trained models (`rank = 0`: full fine-tuning).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLora {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub target_modules: Vec<String>,
    /// Adapters on the critic's backbone too (else the critic trains in full).
    pub critic: bool,
    /// Exports also write the policy's adapters as a PEFT directory (`policy-adapter/`).
    pub export_adapter: bool,
}

impl RawLora {
    /// The adapters' settings, `None` without adapters (`rank = 0`).
    pub fn config(&self) -> Option<LoraConfig> {
        (self.rank > 0).then(|| LoraConfig {
            rank: self.rank,
            alpha: self.alpha,
            target_modules: self.target_modules.clone(),
        })
    }

    /// The critic's adapters, `None` when it trains in full.
    pub fn critic_config(&self) -> Option<LoraConfig> {
        self.config().filter(|_| self.critic)
    }
}

/// `[precision]`: compute dtype per role (frozen roles also store their weights in it).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrecision {
    pub policy: Precision,
    pub reference: Precision,
    pub critic: Precision,
    pub reward: Precision,
}

/// `[devices]`: placement by role ("" = the top-level `device`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevices {
    pub policy: String,
    pub reference: String,
    pub critic: String,
    pub reward: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckpoint {
    pub save_every_n_steps: u64,
    pub keep_last_n: usize,
    pub save_best: bool,
    pub save_epoch_exports: bool,
    /// Weight dtype of `epoch_N/` and `final/` exports: "float32" or "bfloat16".
    pub export_dtype: ExportDtype,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEval {
    pub eval_every_n_steps: u64,
    pub eval_split: f64,
    pub max_eval_samples: usize,
    pub greedy: bool,
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub max_new_tokens: usize,
    pub early_stopping_patience: u32,
    pub early_stopping_threshold: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracking {
    pub enabled: bool,
    pub tracking_uri: String,
    pub experiment_name: String,
    pub run_name: String,
    /// TensorBoard event files in `OUTPUT_DIR/tb/` (no server involved).
    pub tensorboard: bool,
}

/// `[model]`: Hugging Face directories, prompt format, and the shape of the built-in model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct RawModel {
    /// Hugging Face `…ForCausalLM` directory; "" = the built-in model of `shape`.
    pub policy: String,
    /// `…ForSequenceClassification` (or `…ForCausalLM`) directory; "" = `critic_init`.
    pub critic: String,
    /// Backbone of a fresh critic when `critic` is "": "policy" or "reward".
    pub critic_init: CriticInit,
    /// Reward model directory, one label: a causal LM's `…ForSequenceClassification` (read at
    /// the last token) or a DeBERTa-v2/v3 `DebertaV2ForSequenceClassification` (reads
    /// (prompt, response) as a text pair); `config.json` says which.
    pub reward: String,
    /// Render prompts with the tokenizer's chat template.
    pub use_chat_template: bool,
    /// System message of the chat template ("" = none).
    pub system_prompt: String,
    /// `enable_thinking` passed to the chat template (Qwen3); `None` (written "") = not passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_thinking: Option<bool>,
    /// Shape of the built-in model (ignored when `policy` is set).
    #[serde(flatten)]
    pub shape: TransformerConfig,
}

impl TryFrom<toml::Table> for RawModel {
    type Error = String;

    fn try_from(mut table: toml::Table) -> Result<Self, String> {
        let mut take = |key: &str| table.remove(key);
        let string = |key: &str, v: Option<toml::Value>| -> Result<String, String> {
            match v {
                None => Ok(String::new()),
                Some(toml::Value::String(s)) => Ok(s),
                Some(other) => Err(format!(
                    "model.{key}: expected a string, found {}",
                    other.type_str()
                )),
            }
        };
        let policy = string("policy", take("policy"))?;
        let critic = string("critic", take("critic"))?;
        let critic_init = match string("critic_init", take("critic_init"))?.as_str() {
            "" | "policy" => CriticInit::Policy,
            "reward" => CriticInit::Reward,
            other => {
                return Err(format!(
                    "model.critic_init: {other:?} (expected \"policy\" or \"reward\")"
                ));
            }
        };
        let reward = string("reward", take("reward"))?;
        let use_chat_template = match take("use_chat_template") {
            None => false,
            Some(toml::Value::Boolean(b)) => b,
            Some(other) => {
                return Err(format!(
                    "model.use_chat_template: expected true or false, found {}",
                    other.type_str()
                ));
            }
        };
        let system_prompt = string("system_prompt", take("system_prompt"))?;
        let enable_thinking = match take("enable_thinking") {
            None => None,
            Some(toml::Value::Boolean(b)) => Some(b),
            Some(toml::Value::String(s)) if s.is_empty() => None,
            Some(other) => {
                return Err(format!(
                    "model.enable_thinking: expected true, false or \"\", found {}",
                    other.type_str()
                ));
            }
        };
        let shape: TransformerConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("[model] {}", e.message()))?;
        Ok(Self {
            policy,
            critic,
            critic_init,
            reward,
            use_chat_template,
            system_prompt,
            enable_thinking,
            shape,
        })
    }
}

/// `[data]`: the built-in task or prompt files.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    /// The built-in task or the files of `sources`.
    pub task: Task,
    /// Prompts of the built-in task.
    pub num_samples: usize,
    /// Files of the "files" task, mixed in order before the shuffle.
    #[serde(default)]
    pub sources: Vec<ppo_data::DataSource>,
    /// Keep at most this many prompts after the shuffle (0 = all).
    #[serde(default)]
    pub max_samples: usize,
    /// Shuffle the prompts (seeded) before `max_samples` and the eval split.
    #[serde(default = "yes")]
    pub shuffle: bool,
    /// Longest prompt in tokens (0 = the model's positions less the longest generation).
    #[serde(default)]
    pub max_prompt_length: usize,
    /// What a longer prompt gets.
    #[serde(default)]
    pub prompt_overflow: Overflow,
}

fn yes() -> bool {
    true
}

fn one() -> f64 {
    1.0
}

fn default_timeout() -> f64 {
    30.0
}

fn default_retries() -> u32 {
    3
}

/// `[reward]`: the sources combined by weight.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReward {
    /// char_match: credit for another lowercase letter.
    pub partial_credit: f64,
    /// Reward sources; the score is Σ weight × source score.
    pub sources: Vec<RawRewardSource>,
}

/// One `[[reward.sources]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawRewardSource {
    /// The built-in letters reward.
    CharMatch {
        #[serde(default = "one")]
        weight: f64,
    },
    /// GSM8K: final number of the response vs the number after `####` in the reference.
    Gsm8k {
        #[serde(default = "one")]
        weight: f64,
    },
    /// Trimmed response equals the trimmed reference.
    ExactMatch {
        #[serde(default = "one")]
        weight: f64,
        #[serde(default)]
        case_insensitive: bool,
    },
    /// The last match of `pattern` (group 1, or the whole match) equals the reference.
    Regex {
        #[serde(default = "one")]
        weight: f64,
        pattern: String,
    },
    /// The reward model of `model.reward`, scored at the last real token.
    Model {
        #[serde(default = "one")]
        weight: f64,
        /// Rows per forward pass (0 = training.forward_batch_size).
        #[serde(default)]
        batch_size: usize,
        /// Longest input in tokens (0 = the model's max_position_embeddings): a causal-LM
        /// reward model keeps the end, a DeBERTa one cuts the response's end (counted in
        /// `reward_truncated`).
        #[serde(default)]
        max_length: usize,
    },
    /// POST {prompts, responses, references} to `url`, read {scores}.
    Remote {
        #[serde(default = "one")]
        weight: f64,
        url: String,
        #[serde(default = "default_timeout")]
        timeout_secs: f64,
        #[serde(default = "default_retries")]
        max_retries: u32,
        /// Environment variable holding a bearer token ("" = none).
        #[serde(default)]
        token_env: String,
    },
}

impl RawRewardSource {
    /// The source's weight.
    pub fn weight(&self) -> f64 {
        match self {
            Self::CharMatch { weight }
            | Self::Gsm8k { weight }
            | Self::ExactMatch { weight, .. }
            | Self::Regex { weight, .. }
            | Self::Model { weight, .. }
            | Self::Remote { weight, .. } => *weight,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraining {
    pub learning_rate: f64,
    pub critic_learning_rate: f64,
    pub num_epochs: u64,
    pub batch_size: usize,
    pub group_size: usize,
    pub ppo_epochs: usize,
    pub mini_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub clip_range: f64,
    pub clip_range_low: f64,
    pub clip_range_high: f64,
    pub dual_clip: f64,
    pub clip_range_value: f64,
    pub entropy_coef: f64,
    pub value_loss_coef: f64,
    pub max_grad_norm: f64,
    pub gamma: f64,
    pub lam: f64,
    pub whiten_advantages: bool,
    pub kl_coef: f64,
    pub kl_estimator: KlEstimator,
    pub kl_target: f64,
    pub kl_horizon: f64,
    pub kl_in_loss: bool,
    pub missing_eos_penalty: f64,
    pub score_clip: f64,
    pub normalize_score: bool,
    pub forward_batch_size: usize,
    pub gradient_checkpointing: bool,
    pub max_consecutive_skips: usize,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_eps: f64,
    pub weight_decay: f64,
    pub lr_scheduler_type: ScheduleName,
    pub critic_lr_scheduler_type: ScheduleName,
    pub warmup_steps: u64,
    pub min_lr: f64,
    pub num_cycles: u32,
    pub wsd_decay_fraction: f64,
    pub plateau_metric: String,
    pub plateau_mode: PlateauMode,
    pub plateau_factor: f64,
    pub plateau_patience: u32,
    pub plateau_threshold: f64,
    pub plateau_cooldown: u32,
}

/// `[algorithm]`: the advantage estimator and the GRPO/DAPO variants.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlgorithm {
    pub advantage_estimator: AdvantageEstimator,
    pub loss_aggregation: LossAggregation,
    pub log_ratio_clamp: f64,
    pub mask_truncated: bool,
    pub overlong_buffer_len: usize,
    pub overlong_penalty_factor: f64,
    pub dynamic_sampling: bool,
    pub max_sampling_rounds: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeneration {
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub max_new_tokens: usize,
    /// Texts that also end a response (rollouts and evaluation).
    pub stop: Vec<String>,
}

/// `data.task`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// The built-in `letters` task (`data.num_samples` prompts).
    Letters,
    /// The files of `[[data.sources]]`.
    Files,
}

/// `data.prompt_overflow`: what a prompt longer than the limit gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Refused before any work, naming the prompt.
    #[default]
    Error,
    /// Removed.
    Drop,
    /// Kept; the trainer uses its last tokens.
    TruncateLeft,
}

/// `model.critic_init`: the backbone a fresh critic starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticInit {
    /// The policy's.
    Policy,
    /// The reward model's (`model.reward`).
    Reward,
}

/// `training.lr_scheduler_type` and `training.critic_lr_scheduler_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleName {
    Constant,
    Linear,
    Cosine,
    CosineWithRestarts,
    Wsd,
    Plateau,
    /// The critic's only: the policy's schedule.
    Same,
}
