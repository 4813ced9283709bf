//! Configuration: the TOML file as written (`RawConfig`), merged over the embedded default
//! and `--set` overrides, then resolved once into validated library configs.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ppo_core::{
    CoreError, KlConfig, KlEstimator, OptimizerConfig, PpoConfig, PpoField, PromptSample,
};
use ppo_models::{SamplingConfig, TransformerConfig};
use ppo_sched::{
    PlateauConfig, PlateauMode, SchedError, ScheduleConfig, ScheduleKind, ThresholdMode,
};
use serde::{Deserialize, Serialize};

/// The embedded default configuration (`configs/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../../configs/default.toml");

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
    pub checkpoint: RawCheckpoint,
    pub eval: RawEval,
    pub tracking: RawTracking,
    pub generation: RawGeneration,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckpoint {
    pub save_every_n_steps: u64,
    pub keep_last_n: usize,
    pub save_best: bool,
    pub save_epoch_exports: bool,
    /// Weight dtype of `epoch_N/` and `final/` exports: "float32" or "bfloat16".
    pub export_dtype: String,
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
    pub critic_init: String,
    /// Reward model directory (`…ForSequenceClassification`, one label).
    pub reward: String,
    /// Render prompts with the tokenizer's chat template.
    pub use_chat_template: bool,
    /// System message of the chat template ("" = none).
    pub system_prompt: String,
    /// `enable_thinking` passed to the chat template (Qwen3); "" = not passed.
    pub enable_thinking: String,
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
        let critic_init = string("critic_init", take("critic_init"))?;
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
            None => String::new(),
            Some(toml::Value::Boolean(b)) => b.to_string(),
            Some(toml::Value::String(s)) => s,
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
            critic_init: if critic_init.is_empty() {
                "policy".into()
            } else {
                critic_init
            },
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
    /// "letters" (built-in) or "files" (`sources`).
    pub task: String,
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
    /// What a longer prompt gets: "error" (refused before any work), "drop" or "truncate_left".
    #[serde(default = "overflow_error")]
    pub prompt_overflow: String,
}

fn overflow_error() -> String {
    "error".to_owned()
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
        /// Longest input in tokens, keeping the end (0 = the model's max_position_embeddings).
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
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_eps: f64,
    pub weight_decay: f64,
    pub lr_scheduler_type: String,
    pub critic_lr_scheduler_type: String,
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

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeneration {
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub max_new_tokens: usize,
}

/// Everything a run needs, validated.
#[derive(Clone, Debug, Serialize)]
pub struct Resolved {
    pub raw: RawConfig,
    pub model: TransformerConfig,
    pub ppo: PpoConfig,
    pub policy_schedule: ScheduleConfig,
    pub critic_schedule: ScheduleConfig,
    /// Sampling of evaluation passes.
    pub eval_sampling: SamplingConfig,
    /// Prompts used for training (the rest of `num_samples` is the eval split).
    pub train_samples: usize,
    /// Held-out prompts evaluated each time.
    pub eval_samples: usize,
    /// All prompts in training order: `train_samples` for training, then the held-out ones.
    #[serde(skip)]
    pub prompts: Vec<PromptSample>,
    /// What fitting the prompts to the model's positions did (dropped, truncated).
    pub prompt_fit: crate::data::PromptFit,
    /// PPO iterations to run.
    pub total_steps: u64,
    /// Iterations per pass over the prompts.
    pub steps_per_epoch: u64,
}

/// Merges `overlay` into `base`, table by table.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Applies one `section.key=value` override (`--set`); the value is read as TOML, or else as a
/// string. Returns the dotted key.
fn apply_set(table: &mut toml::Table, assignment: &str) -> Result<String> {
    let (path, value) = assignment
        .split_once('=')
        .with_context(|| format!("--set {assignment:?}: expected section.key=value"))?;
    let value: toml::Value = match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.trim().into()),
    };
    let keys: Vec<&str> = path.trim().split('.').collect();
    let (last, sections) = keys.split_last().context("--set: empty key")?;
    let mut current = table;
    for section in sections {
        current = match current.get_mut(*section) {
            Some(toml::Value::Table(t)) => t,
            _ => bail!("--set {path}: unknown section `{section}`"),
        };
    }
    if !current.contains_key(*last) {
        bail!("--set {path}: unknown key `{path}`");
    }
    current.insert((*last).to_string(), value);
    Ok(path.trim().to_owned())
}

/// Default ⊕ file ⊕ overrides → validated config, with its prompts loaded. Errors name the key.
pub fn load(file: Option<&Path>, sets: &[String]) -> Result<Resolved> {
    resolve_with_prompts(load_raw(None, file, sets)?)
}

/// `raw` resolved with its prompts, loaded and fitted to the model's positions.
fn resolve_with_prompts(raw: RawConfig) -> Result<Resolved> {
    let (prompts, fit) = fitted_prompts(&raw)?;
    resolve(raw, prompts, fit)
}

/// The prompts of `raw`, checked against the longest prompt the model's positions leave room
/// for and handled as `data.prompt_overflow` says, before any model is built.
fn fitted_prompts(raw: &RawConfig) -> Result<(Vec<PromptSample>, crate::data::PromptFit)> {
    let prompts = crate::data::load_prompts(raw)?;
    let limit = prompt_limit(raw)?;
    let tokenizer = crate::models::policy_tokenizer(raw, crate::models::prompt_format(raw))?;
    crate::data::fit_prompts(
        prompts,
        tokenizer.as_ref(),
        limit,
        &raw.data.prompt_overflow,
    )
}

/// The longest prompt in tokens: `data.max_prompt_length`, or the model's positions less the
/// longest generation; refuses generation lengths the positions cannot hold.
pub fn prompt_limit(raw: &RawConfig) -> Result<usize> {
    let positions = model_config(raw)?.max_position_embeddings;
    let eval_new = eval_sampling(raw)?.max_new_tokens;
    for (key, n) in [
        ("generation.max_new_tokens", raw.generation.max_new_tokens),
        ("eval.max_new_tokens", eval_new),
    ] {
        if n >= positions {
            bail!(
                "invalid config key `{key}`: {n} new tokens leave no room for a prompt in the \
                 model's {positions} positions (model.max_position_embeddings)"
            );
        }
    }
    let room = positions - raw.generation.max_new_tokens.max(eval_new);
    match raw.data.max_prompt_length {
        0 => Ok(room),
        n if n > room => bail!(
            "invalid config key `data.max_prompt_length`: {n} prompt tokens + {} new tokens \
             exceed the model's {positions} positions (model.max_position_embeddings)",
            positions - room
        ),
        n => Ok(n),
    }
}

/// `base` (TOML text, e.g. a checkpoint's config snapshot) ⊕ file ⊕ overrides, resolved.
pub fn load_over(
    base: &str,
    base_name: &str,
    file: Option<&Path>,
    sets: &[String],
) -> Result<Resolved> {
    resolve_with_prompts(load_raw(Some((base, base_name)), file, sets)?)
}

/// The embedded default ⊕ `base` ⊕ file ⊕ overrides, as written (not validated). Keys added
/// to ppo-rs after `base` was written take their default.
pub fn load_raw(
    base: Option<(&str, &str)>,
    file: Option<&Path>,
    sets: &[String],
) -> Result<RawConfig> {
    let mut table: toml::Table = DEFAULT_TOML
        .parse()
        .context("embedded default config is not valid TOML")?;
    // Where each key's value came from, so that an error names the user's line, not ours.
    let mut origins: Origins = BTreeMap::new();
    if let Some((text, name)) = base {
        let overlay: toml::Table = text
            .parse()
            .with_context(|| format!("{name} is not valid TOML"))?;
        record_origins(
            "",
            &overlay,
            &Origin::Text(name.to_owned(), text.to_owned()),
            &mut origins,
        );
        merge(&mut table, overlay);
    }
    if let Some(path) = file {
        let text = fs_err::read_to_string(path)?;
        let overlay: toml::Table = text
            .parse()
            .with_context(|| format!("failed to parse config file {}", path.display()))?;
        let origin = Origin::Text(path.display().to_string(), text);
        record_origins("", &overlay, &origin, &mut origins);
        merge(&mut table, overlay);
    }
    for set in sets {
        let key = apply_set(&mut table, set)?;
        origins.insert(key, Origin::Set(set.clone()));
    }
    // Re-read as text: the error's position in it says which key is wrong.
    let merged = toml::to_string(&table).context("failed to merge configuration")?;
    toml::from_str(&merged).map_err(|e| {
        let key = e.span().and_then(|span| key_at(&merged, span.start));
        let message = e.message().trim();
        match key {
            Some(key) => {
                let origin = origins
                    .get(&key)
                    .map_or_else(|| "the embedded default".to_owned(), |o| o.describe(&key));
                anyhow::anyhow!("invalid config key `{key}` ({origin}): {message}")
            }
            None => anyhow::anyhow!("invalid configuration: {e}"),
        }
    })
}

/// Where a configuration value was written.
#[derive(Clone, Debug)]
enum Origin {
    /// A TOML text (a `--config` file, a checkpoint's snapshot): its name and contents.
    Text(String, String),
    /// A `--set` argument.
    Set(String),
}

type Origins = BTreeMap<String, Origin>;

impl Origin {
    /// "FILE line N" or "--set ARG".
    fn describe(&self, key: &str) -> String {
        match self {
            Self::Set(arg) => format!("--set {arg}"),
            Self::Text(name, text) => match line_of(text, key) {
                Some(line) => format!("{name} line {line}"),
                None => name.clone(),
            },
        }
    }
}

/// Records `origin` for every key of `table` (dotted, under `prefix`); an array of tables
/// counts as one key.
fn record_origins(prefix: &str, table: &toml::Table, origin: &Origin, out: &mut Origins) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => record_origins(&key, t, origin, out),
            _ => {
                out.insert(key, origin.clone());
            }
        }
    }
}

/// The section header a TOML line opens (`[a.b]` or `[[a.b]]`), if it is one.
fn section_of(line: &str) -> Option<&str> {
    let line = line.trim();
    let inner = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]"));
    inner
        .or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')))
        .map(str::trim)
}

/// The key a `key = value` line sets, if it is one.
fn key_of(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('#')).then_some(key)
}

/// Each line of the TOML `text`: its byte range and the dotted key it sets, if it sets one.
fn keyed_lines(text: &str) -> impl Iterator<Item = (Range<usize>, Option<String>)> + '_ {
    let mut section = String::new();
    let mut start = 0;
    text.split_inclusive('\n').map(move |line| {
        let range = start..start + line.len();
        start = range.end;
        let key = match section_of(line) {
            Some(s) => {
                section = s.to_owned();
                None
            }
            None => key_of(line).map(|k| match section.as_str() {
                "" => k.to_owned(),
                s => format!("{s}.{k}"),
            }),
        };
        (range, key)
    })
}

/// The dotted key whose line holds byte `offset` of the TOML `text`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    keyed_lines(text)
        .find(|(range, _)| range.contains(&offset))?
        .1
}

/// The 1-based line of `text` that sets the dotted `key`.
fn line_of(text: &str, key: &str) -> Option<usize> {
    keyed_lines(text)
        .position(|(_, k)| k.as_deref() == Some(key))
        .map(|i| i + 1)
}

/// Dotted keys whose values differ between two configs, in file order.
pub fn differing_keys(a: &RawConfig, b: &RawConfig) -> Vec<String> {
    fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            v => out.push((prefix.to_string(), v.to_string())),
        }
    }
    let flat = |c: &RawConfig| {
        let mut out = Vec::new();
        if let Ok(v) = toml::Value::try_from(c) {
            flatten("", &v, &mut out);
        }
        out
    };
    let (fa, fb) = (flat(a), flat(b));
    let mut keys: Vec<String> = fa
        .iter()
        .filter(|(k, v)| fb.iter().find(|(kb, _)| kb == k).map(|(_, vb)| vb) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    keys.extend(
        fb.iter()
            .filter(|(k, _)| !fa.iter().any(|(ka, _)| ka == k))
            .map(|(k, _)| k.clone()),
    );
    keys
}

/// Keys a resumed run may not change: the model shape, the seed (the frozen reference and the
/// data order are rebuilt from it) and the data and its split.
pub fn is_resume_locked(key: &str) -> bool {
    key.starts_with("model.")
        || key == "seed"
        || key.starts_with("data.")
        || key == "eval.eval_split"
}

fn option_if_positive(v: f64) -> Option<f64> {
    (v > 0.0).then_some(v)
}

/// The policy's shape: from the Hugging Face `config.json` of `model.policy`, or the built-in
/// shape keys of `[model]`.
pub fn model_config(raw: &RawConfig) -> Result<TransformerConfig> {
    let m = &raw.model;
    if m.policy.is_empty() {
        m.shape.validate().context("invalid [model] section")?;
        return Ok(m.shape.clone());
    }
    let config = ppo_models::hf::load_config(&m.policy).with_context(|| {
        format!(
            "invalid config key `model.policy`: cannot use {:?}",
            m.policy
        )
    })?;
    config
        .validate()
        .with_context(|| format!("{}/config.json", m.policy))?;
    Ok(config)
}

/// Checks the keys that pick models and rewards (paths are opened later).
fn check_sources(raw: &RawConfig) -> Result<()> {
    let m = &raw.model;
    if !matches!(m.critic_init.as_str(), "policy" | "reward") {
        bail!(
            "invalid config key `model.critic_init`: {:?} (expected \"policy\" or \"reward\")",
            m.critic_init
        );
    }
    if m.critic.is_empty() && m.critic_init == "reward" && m.reward.is_empty() {
        bail!("invalid config key `model.critic_init`: \"reward\" needs `model.reward`");
    }
    if !matches!(m.enable_thinking.as_str(), "" | "true" | "false") {
        bail!(
            "invalid config key `model.enable_thinking`: {:?} (expected true, false or \"\")",
            m.enable_thinking
        );
    }
    if (m.use_chat_template || !m.system_prompt.is_empty()) && m.policy.is_empty() {
        bail!(
            "invalid config key `model.use_chat_template`: the built-in byte tokenizer has no chat template (set `model.policy`)"
        );
    }
    if !matches!(raw.checkpoint.export_dtype.as_str(), "float32" | "bfloat16") {
        bail!(
            "invalid config key `checkpoint.export_dtype`: {:?} (expected \"float32\" or \"bfloat16\")",
            raw.checkpoint.export_dtype
        );
    }
    if raw.reward.sources.is_empty() {
        bail!("invalid config key `reward.sources`: name at least one reward source");
    }
    for (i, source) in raw.reward.sources.iter().enumerate() {
        let w = source.weight();
        if !w.is_finite() {
            bail!("invalid config key `reward.sources[{i}].weight`: {w} is not finite");
        }
        match source {
            RawRewardSource::Model { .. } if m.reward.is_empty() => bail!(
                "invalid config key `reward.sources[{i}]`: type \"model\" needs `model.reward` (a reward model directory)"
            ),
            RawRewardSource::Remote {
                url, timeout_secs, ..
            } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!(
                        "invalid config key `reward.sources[{i}].url`: {url:?} is not an http(s) URL"
                    );
                }
                if !(*timeout_secs > 0.0 && timeout_secs.is_finite()) {
                    bail!(
                        "invalid config key `reward.sources[{i}].timeout_secs`: {timeout_secs} must be > 0"
                    );
                }
            }
            _ => {}
        }
    }
    if !(0.0..=1.0).contains(&raw.reward.partial_credit) {
        bail!(
            "invalid config key `reward.partial_credit`: {} must be in [0, 1]",
            raw.reward.partial_credit
        );
    }
    Ok(())
}

/// PPO settings of `[training]` and `[generation]`.
pub fn ppo_config(raw: &RawConfig) -> Result<PpoConfig> {
    let t = &raw.training;
    let g = &raw.generation;
    let ppo = PpoConfig {
        batch_size: t.batch_size,
        group_size: t.group_size,
        ppo_epochs: t.ppo_epochs,
        mini_batch_size: t.mini_batch_size,
        gradient_accumulation_steps: t.gradient_accumulation_steps,
        clip_range: t.clip_range,
        clip_range_value: t.clip_range_value,
        entropy_coef: t.entropy_coef,
        value_loss_coef: t.value_loss_coef,
        max_grad_norm: t.max_grad_norm,
        gamma: t.gamma,
        lam: t.lam,
        whiten_advantages: t.whiten_advantages,
        kl: KlConfig {
            estimator: t.kl_estimator,
            coef: t.kl_coef,
            target: option_if_positive(t.kl_target),
            horizon: t.kl_horizon,
            in_loss: t.kl_in_loss,
        },
        sampling: SamplingConfig {
            temperature: g.temperature,
            top_k: g.top_k,
            top_p: g.top_p,
            max_new_tokens: g.max_new_tokens,
            greedy: false,
            use_cache: true,
        },
        forward_batch_size: t.forward_batch_size,
        gradient_checkpointing: t.gradient_checkpointing,
        missing_eos_penalty: option_if_positive(t.missing_eos_penalty),
        score_clip: option_if_positive(t.score_clip),
        normalize_score: t.normalize_score,
        policy_optimizer: OptimizerConfig {
            beta1: t.adam_beta1,
            beta2: t.adam_beta2,
            eps: t.adam_eps,
            weight_decay: t.weight_decay,
        },
        critic_optimizer: OptimizerConfig {
            beta1: t.adam_beta1,
            beta2: t.adam_beta2,
            eps: t.adam_eps,
            weight_decay: t.weight_decay,
        },
        max_prompt_tokens: Some(prompt_limit(raw)?),
    };
    ppo.validate().map_err(|e| match e {
        CoreError::InvalidConfig { field, reason } => {
            anyhow::anyhow!("invalid config key `{}`: {reason}", toml_key(field))
        }
        other => other.into(),
    })?;
    Ok(ppo)
}

/// The TOML key a [`PpoConfig`] field is read from. Exhaustive: a new field needs its key.
pub fn toml_key(field: PpoField) -> &'static str {
    use PpoField as F;
    match field {
        F::BatchSize => "training.batch_size",
        F::GroupSize => "training.group_size",
        F::PpoEpochs => "training.ppo_epochs",
        F::MiniBatchSize => "training.mini_batch_size",
        F::GradientAccumulationSteps => "training.gradient_accumulation_steps",
        F::ForwardBatchSize => "training.forward_batch_size",
        F::MaxNewTokens => "generation.max_new_tokens",
        F::Temperature => "generation.temperature",
        F::TopP => "generation.top_p",
        F::Gamma => "training.gamma",
        F::Lam => "training.lam",
        F::ClipRange => "training.clip_range",
        F::ClipRangeValue => "training.clip_range_value",
        F::MaxGradNorm => "training.max_grad_norm",
        F::EntropyCoef => "training.entropy_coef",
        F::ValueLossCoef => "training.value_loss_coef",
        F::KlCoef => "training.kl_coef",
        F::KlTarget => "training.kl_target",
        F::KlHorizon => "training.kl_horizon",
        F::ScoreClip => "training.score_clip",
        F::MissingEosPenalty => "training.missing_eos_penalty",
        F::MaxPromptTokens => "data.max_prompt_length",
        // One key sets both models' AdamW.
        F::Beta1(_) => "training.adam_beta1",
        F::Beta2(_) => "training.adam_beta2",
        F::Eps(_) => "training.adam_eps",
        F::WeightDecay(_) => "training.weight_decay",
    }
}

/// Sampling of evaluation passes (`[eval]`).
pub fn eval_sampling(raw: &RawConfig) -> Result<SamplingConfig> {
    let g = &raw.generation;
    let e = &raw.eval;
    let eval_sampling = SamplingConfig {
        temperature: e.temperature,
        top_k: e.top_k,
        top_p: e.top_p,
        max_new_tokens: if e.max_new_tokens == 0 {
            g.max_new_tokens
        } else {
            e.max_new_tokens
        },
        greedy: e.greedy,
        use_cache: true,
    };
    let temperature_ok = e.temperature > 0.0 && e.temperature.is_finite();
    if !e.greedy && !temperature_ok {
        bail!(
            "invalid config key `eval.temperature`: {} must be > 0",
            e.temperature
        );
    }
    if !(e.top_p > 0.0 && e.top_p <= 1.0) {
        bail!(
            "invalid config key `eval.top_p`: {} must be in (0, 1]",
            e.top_p
        );
    }
    if !(e.early_stopping_threshold >= 0.0 && e.early_stopping_threshold.is_finite()) {
        bail!(
            "invalid config key `eval.early_stopping_threshold`: {} must be ≥ 0",
            e.early_stopping_threshold
        );
    }
    Ok(eval_sampling)
}

/// The `[training]` key a schedule error is about; `lr_key` is the learning rate the schedule
/// was built from. Exhaustive: a new error must say which key it blames.
fn schedule_error_key<'a>(error: &SchedError, lr_key: &'a str) -> &'a str {
    match error {
        SchedError::InvalidLearningRate(_) | SchedError::InvalidState { .. } => lr_key,
        SchedError::InvalidMinLr(_) | SchedError::MinLrAboveLearningRate { .. } => "min_lr",
        SchedError::WarmupExceedsTotal { .. } => "warmup_steps",
        SchedError::ZeroTotalSteps { .. } => "num_epochs",
        SchedError::ZeroCycles => "num_cycles",
        SchedError::InvalidDecayFraction(_) => "wsd_decay_fraction",
        SchedError::InvalidFactor(_) => "plateau_factor",
        SchedError::InvalidThreshold(_) => "plateau_threshold",
    }
}

/// Turns the raw file and its loaded prompts (fitted as `prompt_fit` says) into library
/// configs, checking every range once.
pub fn resolve(
    raw: RawConfig,
    prompts: Vec<PromptSample>,
    prompt_fit: crate::data::PromptFit,
) -> Result<Resolved> {
    let t = &raw.training;
    let model = model_config(&raw)?;
    check_sources(&raw)?;
    if !(0.0..1.0).contains(&raw.eval.eval_split) {
        bail!(
            "invalid config key `eval.eval_split`: {} must be in [0, 1)",
            raw.eval.eval_split
        );
    }
    let n_prompts = prompts.len();
    let held_out = (n_prompts as f64 * raw.eval.eval_split).round() as usize;
    let held_out = if raw.eval.eval_every_n_steps > 0 && raw.eval.eval_split > 0.0 {
        held_out.max(1)
    } else {
        held_out
    };
    let train_samples = n_prompts - held_out.min(n_prompts);
    let eval_samples = match raw.eval.max_eval_samples {
        0 => held_out,
        n => held_out.min(n),
    };
    if raw.eval.eval_every_n_steps > 0 && eval_samples == 0 {
        bail!(
            "invalid config key `eval.eval_split`: evaluation is on (eval.eval_every_n_steps = {}) but no prompt is held out",
            raw.eval.eval_every_n_steps
        );
    }
    if train_samples < t.batch_size {
        bail!(
            "invalid config key `training.batch_size`: {train_samples} training prompts (of {n_prompts}, after the eval split) is fewer than training.batch_size ({})",
            t.batch_size
        );
    }
    if t.num_epochs == 0 {
        bail!("invalid config key `training.num_epochs`: must be at least 1");
    }
    let ppo = ppo_config(&raw)?;
    let eval_sampling = eval_sampling(&raw)?;
    let steps_per_epoch = (train_samples / t.batch_size) as u64;
    let mut total_steps = steps_per_epoch * t.num_epochs;
    if raw.max_steps > 0 {
        total_steps = total_steps.min(raw.max_steps);
    }
    let optimizer_steps_per_iteration =
        (t.ppo_epochs * ppo.rollout_size() / t.mini_batch_size) as u64;
    let kind = |name: &str, key: &str| -> Result<ScheduleKind> {
        Ok(match name {
            "constant" => ScheduleKind::Constant,
            "linear" => ScheduleKind::Linear,
            "cosine" => ScheduleKind::Cosine,
            "cosine_with_restarts" => ScheduleKind::CosineWithRestarts {
                num_cycles: t.num_cycles,
            },
            "wsd" => ScheduleKind::Wsd {
                decay_fraction: t.wsd_decay_fraction,
            },
            "plateau" => ScheduleKind::Plateau(PlateauConfig {
                mode: t.plateau_mode,
                factor: t.plateau_factor,
                patience: t.plateau_patience,
                threshold: t.plateau_threshold,
                threshold_mode: ThresholdMode::Rel,
                cooldown: t.plateau_cooldown,
            }),
            other => bail!(
                "invalid config key `training.{key}`: unknown schedule {other:?} \
                 (constant, linear, cosine, cosine_with_restarts, wsd, plateau)"
            ),
        })
    };
    let policy_kind = kind(&t.lr_scheduler_type, "lr_scheduler_type")?;
    let critic_kind = match t.critic_lr_scheduler_type.as_str() {
        "same" => policy_kind.clone(),
        name => kind(name, "critic_lr_scheduler_type")?,
    };
    let uses_plateau = [&policy_kind, &critic_kind]
        .iter()
        .any(|k| matches!(k, ScheduleKind::Plateau(_)));
    if uses_plateau && t.plateau_metric.trim().is_empty() {
        bail!("invalid config key `training.plateau_metric`: name the monitored metric");
    }
    if uses_plateau && t.plateau_metric.starts_with("eval_") && raw.eval.eval_every_n_steps == 0 {
        bail!(
            "invalid config key `training.plateau_metric`: {:?} is an evaluation metric but eval.eval_every_n_steps = 0",
            t.plateau_metric
        );
    }
    // Refused even when the schedule in force does not read it: a value that can never be
    // right is a mistake worth naming.
    if !(t.wsd_decay_fraction > 0.0 && t.wsd_decay_fraction <= 1.0) {
        bail!(
            "invalid config key `training.wsd_decay_fraction`: {} must be in (0, 1]",
            t.wsd_decay_fraction
        );
    }
    let schedule = |lr: f64, kind: ScheduleKind, key: &str| -> Result<ScheduleConfig> {
        let c = ScheduleConfig {
            learning_rate: lr,
            min_lr: t.min_lr,
            warmup_steps: t.warmup_steps,
            total_steps: (total_steps * optimizer_steps_per_iteration).max(t.warmup_steps),
            kind,
        };
        c.validate().map_err(|e| {
            anyhow::anyhow!(
                "invalid config key `training.{}`: {e} (the training.{key} schedule)",
                schedule_error_key(&e, key)
            )
        })?;
        Ok(c)
    };
    if raw.tracking.enabled && raw.tracking.experiment_name.trim().is_empty() {
        bail!("invalid config key `tracking.experiment_name`: must not be empty");
    }
    Ok(Resolved {
        policy_schedule: schedule(t.learning_rate, policy_kind, "learning_rate")?,
        critic_schedule: schedule(t.critic_learning_rate, critic_kind, "critic_learning_rate")?,
        eval_sampling,
        train_samples,
        eval_samples,
        prompts,
        prompt_fit,
        model,
        ppo,
        total_steps,
        steps_per_epoch,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(sets: &[&str]) -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        format!("{:#}", load(None, &sets).unwrap_err())
    }

    #[test]
    fn type_errors_name_the_key_and_where_the_user_wrote_it() {
        assert_eq!(
            err(&["training.learning_rate=\"fast\""]),
            "invalid config key `training.learning_rate` (--set training.learning_rate=\"fast\"): \
             invalid type: string \"fast\", expected f64"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my.toml");
        std::fs::write(
            &path,
            "seed = 1\n\n[training]\n# batch\nbatch_size = \"x\"\n",
        )
        .unwrap();
        let message = format!("{:#}", load(Some(&path), &[]).unwrap_err());
        assert_eq!(
            message,
            format!(
                "invalid config key `training.batch_size` ({} line 5): invalid type: string \"x\", \
                 expected usize",
                path.display()
            )
        );
        std::fs::write(&path, "[training]\ncliprange = 0.2\n").unwrap();
        let message = format!("{:#}", load(Some(&path), &[]).unwrap_err());
        assert!(
            message.starts_with(&format!(
                "invalid config key `training.cliprange` ({} line 2): unknown field `cliprange`",
                path.display()
            )),
            "{message}"
        );
    }

    /// Every refusal of PpoConfig::validate, as the user sees it: the key they wrote.
    #[test]
    fn library_refusals_name_the_users_key() {
        let cases: [(&str, &str); 22] = [
            (
                "training.batch_size=0",
                "invalid config key `training.batch_size`: must be at least 1",
            ),
            (
                "training.group_size=0",
                "invalid config key `training.group_size`: must be at least 1",
            ),
            (
                "training.ppo_epochs=0",
                "invalid config key `training.ppo_epochs`: must be at least 1",
            ),
            (
                "training.mini_batch_size=5",
                "invalid config key `training.mini_batch_size`: 5 must divide batch_size × group_size = 64",
            ),
            (
                "training.gradient_accumulation_steps=3",
                "invalid config key `training.gradient_accumulation_steps`: 3 must divide mini_batch_size = 32",
            ),
            (
                "training.forward_batch_size=0",
                "invalid config key `training.forward_batch_size`: must be at least 1",
            ),
            (
                "generation.temperature=0",
                "invalid config key `generation.temperature`: 0 must be positive",
            ),
            (
                "generation.top_p=1.5",
                "invalid config key `generation.top_p`: 1.5 must be in (0, 1]",
            ),
            (
                "training.gamma=2",
                "invalid config key `training.gamma`: 2 must be in [0, 1]",
            ),
            (
                "training.lam=-1",
                "invalid config key `training.lam`: -1 must be in [0, 1]",
            ),
            (
                "training.clip_range=0",
                "invalid config key `training.clip_range`: 0 must be positive",
            ),
            (
                "training.clip_range_value=-1",
                "invalid config key `training.clip_range_value`: -1 must be positive",
            ),
            (
                "training.max_grad_norm=0",
                "invalid config key `training.max_grad_norm`: 0 must be positive",
            ),
            (
                "training.entropy_coef=-1",
                "invalid config key `training.entropy_coef`: -1 must be ≥ 0",
            ),
            (
                "training.value_loss_coef=-1",
                "invalid config key `training.value_loss_coef`: -1 must be ≥ 0",
            ),
            (
                "training.kl_coef=-1",
                "invalid config key `training.kl_coef`: -1 must be ≥ 0",
            ),
            (
                "training.kl_horizon=0",
                "invalid config key `training.kl_horizon`: 0 must be positive",
            ),
            (
                "training.adam_beta1=1.5",
                "invalid config key `training.adam_beta1`: 1.5 must be in [0, 1)",
            ),
            (
                "training.adam_beta2=1",
                "invalid config key `training.adam_beta2`: 1 must be in [0, 1)",
            ),
            (
                "training.adam_eps=0",
                "invalid config key `training.adam_eps`: 0 must be positive",
            ),
            (
                "training.weight_decay=-1",
                "invalid config key `training.weight_decay`: -1 must be ≥ 0",
            ),
            (
                "generation.max_new_tokens=0",
                "invalid config key `generation.max_new_tokens`: must be at least 1",
            ),
        ];
        for (set, expected) in cases {
            assert_eq!(err(&[set]), expected, "--set {set}");
        }
        // the fields an optional value guards (score_clip, kl_target, missing_eos_penalty: 0
        // turns them off) and max_prompt_tokens (from data.max_prompt_length) map as well
        for field in [
            PpoField::ScoreClip,
            PpoField::KlTarget,
            PpoField::MissingEosPenalty,
            PpoField::MaxPromptTokens,
        ] {
            assert!(toml_key(field).contains('.'), "{field}");
        }
    }

    #[test]
    fn default_resolves() {
        let r = load(None, &[]).unwrap();
        assert_eq!(r.ppo.rollout_size(), 64);
        assert!(r.total_steps > 0);
    }

    #[test]
    fn overrides_apply_and_bad_values_name_the_key() {
        let r = load(
            None,
            &[
                "training.batch_size=8".into(),
                "training.mini_batch_size=16".into(),
            ],
        )
        .unwrap();
        assert_eq!(r.ppo.batch_size, 8);
        assert!(err(&["training.nope=1"]).contains("training.nope"));
        assert!(err(&["training.learning_rate=\"fast\""]).contains("learning_rate"));
        assert!(err(&["training.gamma=1.5"]).contains("training.gamma"));
        assert!(err(&["training.mini_batch_size=7"]).contains("training.mini_batch_size"));
        assert!(err(&["model.num_key_value_heads=3"]).contains("num_key_value_heads"));
        assert!(err(&["training.lr_scheduler_type=\"zigzag\""]).contains("lr_scheduler_type"));
    }

    #[test]
    fn schedules_resolve_and_differing_keys_are_listed() {
        for kind in [
            "cosine_with_restarts",
            "wsd",
            "plateau",
            "linear",
            "constant",
        ] {
            let r = load(None, &[format!("training.lr_scheduler_type=\"{kind}\"")]).unwrap();
            assert_eq!(r.policy_schedule.kind.name(), kind);
            assert_eq!(r.critic_schedule.kind.name(), kind);
        }
        let r = load(
            None,
            &[
                "training.lr_scheduler_type=\"wsd\"".into(),
                "training.critic_lr_scheduler_type=\"constant\"".into(),
            ],
        )
        .unwrap();
        assert_eq!(r.critic_schedule.kind.name(), "constant");
        assert!(
            err(&[
                "training.plateau_factor=1.5",
                "training.lr_scheduler_type=\"plateau\""
            ])
            .contains("`training.plateau_factor`")
        );
        for (set, key) in [
            ("training.min_lr=1", "`training.min_lr`"),
            (
                "training.wsd_decay_fraction=0",
                "`training.wsd_decay_fraction`",
            ),
            ("training.num_cycles=0", "`training.num_cycles`"),
        ] {
            let message = err(&[set, "training.lr_scheduler_type=\"cosine_with_restarts\""]);
            assert!(message.contains(key), "{set}: {message}");
        }
        let a = load(None, &[]).unwrap().raw;
        let b = load(
            None,
            &[
                "model.hidden_size=32".into(),
                "seed=3".into(),
                "training.learning_rate=1e-4".into(),
                "training.min_lr=0".into(),
            ],
        )
        .unwrap()
        .raw;
        let mut keys = differing_keys(&a, &b);
        keys.sort();
        assert_eq!(
            keys,
            [
                "model.hidden_size",
                "seed",
                "training.learning_rate",
                "training.min_lr"
            ]
        );
        let locked: Vec<_> = keys.iter().filter(|k| is_resume_locked(k)).collect();
        assert_eq!(locked, ["model.hidden_size", "seed"]);
    }

    #[test]
    fn eval_split_holds_prompts_out() {
        let r = load(
            None,
            &[
                "data.num_samples=100".into(),
                "eval.eval_split=0.1".into(),
                "training.batch_size=8".into(),
                "training.mini_batch_size=16".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            (r.train_samples, r.eval_samples, r.steps_per_epoch),
            (90, 10, 11)
        );
        assert!(err(&["eval.eval_split=0.0"]).contains("eval.eval_split"));
        let r = load(
            None,
            &[
                "eval.eval_split=0.0".into(),
                "eval.eval_every_n_steps=0".into(),
            ],
        )
        .unwrap();
        assert_eq!(r.eval_samples, 0);
    }

    #[test]
    fn unknown_key_in_file_is_rejected_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[training]\nlearning_rat = 1e-4\n").unwrap();
        let e = format!("{:#}", load(Some(&path), &[]).unwrap_err());
        assert!(e.contains("learning_rat"), "{e}");
    }
}
