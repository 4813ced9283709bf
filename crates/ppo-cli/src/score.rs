//! `ppo-cli score`: a reward model's score of (prompt, response) pairs, for checking a
//! reward model against transformers before training with it. DeBERTa-v2/v3 directories
//! read the pair as transformers' `tokenizer(prompt, response)`; causal-LM
//! `…ForSequenceClassification` directories read the conversation at its last token.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ppo_models::hf;
use ppo_models::{PromptFormat, Tokenizer};
use ppo_reward::{DebertaReward, RewardModel, RewardModelConfig, ScoredPair};
use serde_json::{Value, json};

use crate::{device, models};

/// Options of `score`.
#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// Reward model directory: config.json, model.safetensors or pytorch_model.bin,
    /// tokenizer.json.
    #[arg(long, value_name = "DIR")]
    pub reward_model: PathBuf,
    /// The prompt (with --response).
    #[arg(long, requires = "response", conflicts_with = "file")]
    pub prompt: Option<String>,
    /// The response (with --prompt).
    #[arg(long, requires = "prompt")]
    pub response: Option<String>,
    /// JSONL file of {"prompt": …, "response": …} objects: one score per line.
    #[arg(long, value_name = "F.jsonl")]
    pub file: Option<PathBuf>,
    /// Print one JSON object per pair: {"score", "input_ids", "truncated"}.
    #[arg(long)]
    pub json: bool,
    /// Pairs per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Longest pair in tokens (0 = the model's max_position_embeddings).
    #[arg(long, default_value_t = 0)]
    pub max_length: usize,
    /// Backend: flex, tch:cpu, tch:cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
}

/// `ppo-cli score`.
pub fn run(args: ScoreArgs) -> Result<()> {
    let pairs = match (&args.prompt, &args.response, &args.file) {
        (Some(prompt), Some(response), None) => vec![(prompt.clone(), response.clone())],
        (None, None, Some(file)) => read_pairs(file)?,
        _ => bail!("give --prompt and --response, or --file"),
    };
    let device = device::parse_device(&args.device)?;
    let config = RewardModelConfig {
        batch_size: args.batch_size,
        max_length: args.max_length,
    };
    let dir = &args.reward_model;
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(p, r)| (p.as_str(), r.as_str()))
        .collect();
    let scored = if hf::is_deberta(dir)
        .with_context(|| format!("cannot read the reward model {}", dir.display()))?
    {
        let mut reward = DebertaReward::load(dir, config, &device)
            .with_context(|| format!("cannot load the reward model {}", dir.display()))?;
        reward.score_pairs(&borrowed)?
    } else {
        score_causal(dir, config, &device, &borrowed)?
    };
    let mut out = std::io::stdout().lock();
    for (idx, pair) in scored.iter().enumerate() {
        if pair.truncated {
            eprintln!(
                "WARNING: pair {idx} was cut to {} tokens",
                pair.input_ids.len()
            );
        }
        if args.json {
            let line = json!({
                "score": pair.score,
                "input_ids": pair.input_ids,
                "truncated": pair.truncated,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{}", pair.score)?;
        }
    }
    Ok(())
}

/// A causal-LM reward model: the conversation as the tokenizer renders it (its chat template
/// when it has one), its last `max_length` tokens.
fn score_causal(
    dir: &Path,
    config: RewardModelConfig,
    device: &burn::tensor::Device,
    pairs: &[(&str, &str)],
) -> Result<Vec<ScoredPair>> {
    let (model_config, model) = hf::load_value_model(dir, device)
        .with_context(|| format!("cannot load the reward model {}", dir.display()))?;
    let plain = models::hf_tokenizer(dir, PromptFormat::default())?;
    let tokenizer = if plain.has_chat_template() {
        plain.with_prompt_format(PromptFormat {
            use_chat_template: true,
            ..PromptFormat::default()
        })?
    } else {
        plain
    };
    models::check_vocab(
        &model_config,
        &tokenizer,
        &format!("{}/config.json", dir.display()),
    )?;
    let max_length = match config.max_length {
        0 => model_config.max_position_embeddings,
        n => n,
    };
    let rows: Vec<Vec<u32>> = pairs
        .iter()
        .map(|(p, r)| tokenizer.encode_conversation(p, r))
        .collect();
    let reward = RewardModel::new(
        model,
        Box::new(tokenizer),
        RewardModelConfig {
            max_length,
            ..config
        },
    )?;
    let scores = reward.score_ids(&rows)?;
    Ok(rows
        .into_iter()
        .zip(scores)
        .map(|(row, score)| {
            let truncated = row.len() > max_length;
            ScoredPair {
                score,
                input_ids: row[row.len().saturating_sub(max_length)..].to_vec(),
                truncated,
            }
        })
        .collect())
}

/// (prompt, response) of each non-empty line of a JSONL file.
fn read_pairs(path: &Path) -> Result<Vec<(String, String)>> {
    let text = fs_err::read_to_string(path)?;
    let mut pairs = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), idx + 1);
        let value: Value =
            serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        let field = |key: &str| -> Result<String> {
            value
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("{}: field `{key}` is missing or not a string", at()))
        };
        pairs.push((field("prompt")?, field("response")?));
    }
    if pairs.is_empty() {
        bail!("{}: no pairs to score", path.display());
    }
    Ok(pairs)
}
