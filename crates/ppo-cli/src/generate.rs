//! `ppo-cli generate`: one completion from a Hugging Face model directory (or an export of
//! ours) or from a training checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ppo_models::hf::{self, HfHead};
use ppo_models::{CausalLm, PromptFormat, Rng, SamplingConfig, Stop, Tokenizer, generate};

use crate::{device, export, models};

/// Options of `generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// A Hugging Face `…ForCausalLM` directory, or an export of ours (its `policy/` is used).
    #[arg(
        long,
        conflicts_with = "checkpoint",
        required_unless_present = "checkpoint"
    )]
    pub model: Option<PathBuf>,
    /// A training checkpoint (`RUN/checkpoints/step_N`, `RUN/checkpoints/best`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// The prompt, tokenized as given (BOS added when the tokenizer adds one).
    #[arg(long)]
    pub prompt: String,
    /// Render the prompt with the tokenizer's chat template as a user turn.
    #[arg(long)]
    pub chat: bool,
    /// System turn of the chat template (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Keep the `top_k` most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Nucleus sampling threshold (1.0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Take the most likely token each step (log-probs then at temperature 1).
    #[arg(long)]
    pub greedy: bool,
    /// Also stop once the completion contains this text (repeatable). Generation always stops
    /// at every EOS id of the tokenizer and `generation_config.json`.
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend: flex, tch:cpu, tch:cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Print one JSON object: completion, prompt_ids, token_ids, logprobs, finished.
    #[arg(long)]
    pub json: bool,
}

/// The directory holding the causal LM: `dir` itself, or `dir/policy` for our exports.
fn model_dir(dir: &Path) -> Result<PathBuf> {
    if dir.join("config.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    if dir.join("policy/config.json").is_file() {
        return Ok(dir.join("policy"));
    }
    bail!(
        "{}: no config.json (expected a Hugging Face model directory or an export with policy/)",
        dir.display()
    )
}

fn load(
    args: &GenerateArgs,
    device: &burn::tensor::Device,
) -> Result<(CausalLm, Box<dyn Tokenizer>)> {
    let format = PromptFormat {
        use_chat_template: args.chat,
        system_prompt: args.system.clone(),
        enable_thinking: None,
    };
    if let Some(dir) = &args.model {
        let dir = model_dir(dir)?;
        let hf_config = hf::read_config(&dir)?;
        if hf_config.head != HfHead::CausalLm {
            bail!(
                "{}: `{}` is not a causal language model",
                dir.display(),
                hf_config.architecture
            );
        }
        let (config, policy) = hf::load_causal_lm(&dir, device)?;
        let tokenizer = models::hf_tokenizer(&dir, format)?;
        models::check_vocab(
            &config,
            &tokenizer,
            &format!("{}/config.json", dir.display()),
        )?;
        return Ok((policy, Box::new(tokenizer)));
    }
    let dir = args
        .checkpoint
        .as_deref()
        .context("give --model or --checkpoint")?;
    let m = export::load_checkpoint_models(dir, device, false)?;
    let tokenizer = models::policy_tokenizer(&m.raw, format)?;
    // LoRA adapters folded in once, not at every decoding step.
    Ok((ppo_models::merged(m.policy), tokenizer))
}

/// `ppo-cli generate`.
pub fn run(args: GenerateArgs) -> Result<()> {
    let device = device::parse_device(&args.device)?;
    let sampling = SamplingConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        max_new_tokens: args.max_new_tokens,
        greedy: args.greedy,
        use_cache: true,
        stop: args.stop.clone(),
    };
    let temperature_ok = args.temperature > 0.0 && args.temperature.is_finite();
    if !args.greedy && !temperature_ok {
        bail!(
            "--temperature {} must be > 0 (or use --greedy)",
            args.temperature
        );
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p {} must be in (0, 1]", args.top_p);
    }
    let (policy, tokenizer) = load(&args, &device)?;
    let prompt_ids = tokenizer.encode_prompt(&args.prompt);
    if prompt_ids.is_empty() {
        bail!("--prompt: the prompt has no tokens");
    }
    let limit = policy.config().max_position_embeddings;
    if prompt_ids.len() + args.max_new_tokens > limit {
        bail!(
            "prompt ({} tokens) + --max-new-tokens {} exceeds the model's max_position_embeddings ({limit})",
            prompt_ids.len(),
            args.max_new_tokens
        );
    }
    let out = generate(
        &policy,
        std::slice::from_ref(&prompt_ids),
        &sampling,
        Stop::new(tokenizer.as_ref(), &sampling.stop),
        tokenizer.pad_id(),
        &mut Rng::new(args.seed),
    );
    let token_ids = out.response(0);
    let r = out.response_len;
    let logprobs: Vec<f32> = out.logprobs[..r]
        .iter()
        .zip(&out.response_mask[..r])
        .filter(|(_, m)| **m)
        .map(|(&lp, _)| lp)
        .collect();
    let completion = tokenizer.decode(&token_ids);
    if args.json {
        let json = serde_json::json!({
            "completion": completion,
            "prompt_ids": prompt_ids,
            "token_ids": token_ids,
            "logprobs": logprobs,
            "finished": out.finished[0],
        });
        println!("{json}");
    } else {
        println!("{completion}");
    }
    Ok(())
}
