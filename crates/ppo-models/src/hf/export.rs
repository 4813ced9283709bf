//! Writing [`CausalLm`] and [`ValueModel`] as Hugging Face checkpoints: `model.safetensors`
//! (tensor names as transformers names them, PyTorch's `[out, in]` layout for Linear weights,
//! F32 or BF16) and a `config.json` that transformers and our own loader both read back as
//! the same model.
//!
//! The architecture written is the transformers class that computes our function: q/k norm →
//! Qwen3, q/k/v bias → Qwen2, neither → Llama (Mistral too, when the base config is one). A
//! base config (the source checkpoint's `config.json`) keeps its other keys (token ids, names,
//! `use_cache`, …); every key that changes the computed function is written from our
//! [`TransformerConfig`], and the result is parsed back with [`parse_config`] before any file
//! is written.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::module::Module;
use safetensors::Dtype;
use serde_json::Value;

use super::export_config::config_json;
use super::export_weights::ExportTensors;
use super::{HfError, HfFamily, HfHead};
use crate::{CausalLm, Tokenizer, TransformerConfig, ValueModel};

const WEIGHTS_FILE: &str = "model.safetensors";
pub(super) const CONFIG_FILE: &str = "config.json";

/// Precision of the exported weights: float32 reloads bit for bit; bfloat16 is rounded to
/// nearest (ties to even), half the size, as most checkpoints ship. The one float32/bfloat16
/// choice of the crate ([`crate::Precision`]), named for its use here.
pub type ExportDtype = crate::Precision;

/// The safetensors dtype of weights exported in `dtype`.
pub(super) fn safetensors_dtype(dtype: ExportDtype) -> Dtype {
    match dtype {
        ExportDtype::F32 => Dtype::F32,
        ExportDtype::Bf16 => Dtype::BF16,
    }
}

/// Special token ids for `config.json` and `generation_config.json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenIds {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence: generation stops after it.
    pub eos: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
}

impl TokenIds {
    /// The ids `tokenizer` uses.
    pub fn of(tokenizer: &(impl Tokenizer + ?Sized)) -> Self {
        Self {
            bos: tokenizer.bos_id(),
            eos: Some(tokenizer.eos_id()),
            pad: Some(tokenizer.pad_id()),
        }
    }

    /// `(config key, id)` pairs.
    pub(super) fn entries(&self) -> [(&'static str, Option<u32>); 3] {
        [
            ("bos_token_id", self.bos),
            ("eos_token_id", self.eos),
            ("pad_token_id", self.pad),
        ]
    }
}

/// How [`save_causal_lm`] and [`save_value_model`] write a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportOptions {
    /// Precision of `model.safetensors`.
    pub dtype: ExportDtype,
    /// The source checkpoint's `config.json` (see [`read_config_json`]). Its keys are kept
    /// except those that describe the computed function (shapes, RoPE, attention windows,
    /// head, dtype, quantisation), which are written from the model's configuration.
    pub base_config: Option<Value>,
    /// The architecture family; `None` takes the base config's, else derives it from the
    /// model's configuration. Refused when that family computes a different function.
    pub family: Option<HfFamily>,
    /// Token ids; each one given replaces the base config's. Without a base config, ids not
    /// given are written as `null` (transformers' Llama defaults would otherwise apply).
    pub token_ids: TokenIds,
}

/// Reads `dir/config.json` as JSON, for [`ExportOptions::base_config`].
pub fn read_config_json(dir: impl AsRef<Path>) -> Result<Value, HfError> {
    let path = dir.as_ref().join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| HfError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| HfError::Json { path, source })
}

/// Writes `model` as a `…ForCausalLM` checkpoint (`model.safetensors` + `config.json`) into
/// `dir`, creating it if needed. Tied embeddings are written once, as transformers saves
/// them: `model.embed_tokens.weight` and no `lm_head.weight`.
pub fn save_causal_lm(
    model: &CausalLm,
    dir: impl AsRef<Path>,
    options: &ExportOptions,
) -> Result<(), HfError> {
    save(
        model,
        model.config(),
        HfHead::CausalLm,
        dir.as_ref(),
        options,
    )
}

/// Writes the critic as a `…ForSequenceClassification` checkpoint with one label: the
/// backbone plus `score.weight` `[1, hidden]`. transformers' class pools the value of the last
/// non-padding token; the per-token values are `score(model(…).last_hidden_state)`.
pub fn save_value_model(
    model: &ValueModel,
    dir: impl AsRef<Path>,
    options: &ExportOptions,
) -> Result<(), HfError> {
    let head = HfHead::SequenceClassification;
    save(model, model.config(), head, dir.as_ref(), options)
}

fn save<M: Module>(
    module: &M,
    config: &TransformerConfig,
    head: HfHead,
    dir: &Path,
    options: &ExportOptions,
) -> Result<(), HfError> {
    let config_path = dir.join(CONFIG_FILE);
    let config_json = config_json(config, head, options, &config_path)?;
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    // LoRA adapters are folded into the weights they adapt: the file is a plain checkpoint.
    let mut tensors = ExportTensors::new(options.dtype);
    crate::merged(module.clone()).visit(&mut tensors);
    write_weights(&dir.join(WEIGHTS_FILE), &tensors)?;
    write_json(&config_path, &config_json)
}

fn write_weights(path: &Path, tensors: &ExportTensors) -> Result<(), HfError> {
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    write_atomically(path, |temp| {
        super::safetensors_io::write_file(temp, &tensors.tensors, &metadata).map_err(|e| match e {
            HfError::Io { source, .. } => io_error(path, source),
            e => e,
        })
    })
}

/// PEFT's name of an adapter factor (`…q_proj.weight.lora.a` → `base_model.model.…q_proj
/// .lora_A.weight`); other parameters are not part of an adapter file.
fn peft_name(path: &str) -> Option<String> {
    let (module, factor) = path
        .strip_suffix(".weight.lora.a")
        .map(|m| (m, "lora_A"))
        .or_else(|| path.strip_suffix(".weight.lora.b").map(|m| (m, "lora_B")))?;
    Some(format!("base_model.model.{module}.{factor}.weight"))
}

/// Writes the policy's LoRA adapters as a PEFT adapter directory: `adapter_model.safetensors`
/// (`lora_A.weight` `[r, in]`, `lora_B.weight` `[out, r]`, float32) and `adapter_config.json`,
/// which `peft.PeftModel.from_pretrained(base, dir)` loads over `base_model` (the base
/// checkpoint's directory or hub name, written as given). Fails when `model` has no adapter.
pub fn save_peft_adapter(
    model: &CausalLm,
    lora: &crate::LoraConfig,
    base_model: &str,
    dir: impl AsRef<Path>,
) -> Result<(), HfError> {
    let dir = dir.as_ref();
    let mut tensors = ExportTensors::renamed(ExportDtype::F32, peft_name);
    model.visit(&mut tensors);
    if tensors.tensors.is_empty() {
        return Err(HfError::NoAdapter {
            dir: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    write_weights(&dir.join("adapter_model.safetensors"), &tensors)?;
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "lora_dropout": 0.0,
        "target_modules": lora.target_modules,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
    });
    write_json(&dir.join("adapter_config.json"), &config)
}

pub(super) fn io_error(path: &Path, source: std::io::Error) -> HfError {
    HfError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs `write` on a temporary file next to `path`, then renames it to `path`: the final
/// name never holds a partial file. The temporary file is removed when anything fails.
pub(super) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), HfError>,
) -> Result<(), HfError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = path.with_file_name(format!(".{name}.{}-{unique}.tmp", std::process::id()));
    let result = write(&temp)
        .and_then(|()| std::fs::rename(&temp, path).map_err(|source| io_error(path, source)));
    if result.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Writes `value` as pretty-printed JSON to `path`, atomically.
pub(super) fn write_json(path: &Path, value: &Value) -> Result<(), HfError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| HfError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    text.push('\n');
    write_atomically(path, |temp| {
        std::fs::write(temp, text).map_err(|source| io_error(path, source))
    })
}
