//! Loading Hugging Face checkpoints (`config.json` + safetensors, single file or sharded) of
//! Llama, Qwen2, Qwen3 and Mistral causal LMs, and of their sequence-classification variant
//! as a critic; and DeBERTa-v2/v3 sequence classifiers (reward models, also from
//! `pytorch_model.bin`) with [`load_deberta`].
//!
//! Parameter paths of [`CausalLm`] and [`ValueModel`] equal the Hugging Face tensor names, so
//! loading is a walk over the module that looks each path up in the files. Weights stored in
//! F32, BF16 or F16 are converted to f32.
//!
//! Exporting writes the same layout back ([`save_causal_lm`], [`save_value_model`]): a
//! `model.safetensors` in F32 or BF16 and a `config.json` of the transformers class that
//! computes the model's function, plus the tokenizer files transformers needs
//! ([`copy_tokenizer_files`], or [`write_byte_tokenizer_files`] for the built-in byte
//! tokenizer) and a [`write_generation_config`] when the source has none.
//!
//! ```no_run
//! use burn::tensor::Device;
//! use ppo_models::hf::{self, ExportOptions};
//!
//! let (config, policy) = hf::load_causal_lm("Qwen2.5-0.5B", &Device::flex())?;
//! assert_eq!(policy.config(), &config);
//! // … after training, back to a directory transformers loads:
//! let options = ExportOptions {
//!     base_config: Some(hf::read_config_json("Qwen2.5-0.5B")?),
//!     ..ExportOptions::default()
//! };
//! hf::save_causal_lm(&policy, "policy-hf", &options)?;
//! hf::copy_tokenizer_files("Qwen2.5-0.5B", "policy-hf")?;
//! # Ok::<(), ppo_models::hf::HfError>(())
//! ```

mod config;
mod deberta;
mod error;
mod export;
mod export_config;
mod export_weights;
mod pytorch_io;
mod safetensors_io;
mod tokenizer_files;
mod weights;

use std::path::Path;

use burn::tensor::Device;

pub use config::{HfConfig, HfFamily, HfHead, parse_config};
pub use deberta::{
    DEBERTA_ARCHITECTURE, is_deberta, load_deberta, parse_deberta_config, read_deberta_config,
};
pub use error::HfError;
pub use export::{
    ExportDtype, ExportOptions, TokenIds, read_config_json, save_causal_lm, save_peft_adapter,
    save_value_model,
};
pub use tokenizer_files::{
    BYTE_TOKENIZER_SPECIAL_TOKENS, copy_tokenizer_files, write_byte_tokenizer_files,
    write_generation_config,
};

use crate::{CausalLm, TransformerConfig, ValueModel};
use weights::{WeightFiles, load_into};

/// Reads and resolves `dir/config.json`.
pub fn read_config(dir: impl AsRef<Path>) -> Result<HfConfig, HfError> {
    let path = dir.as_ref().join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| HfError::Io {
        path: path.clone(),
        source,
    })?;
    parse_config(&text, &path)
}

/// Our configuration for the checkpoint in `dir`.
pub fn load_config(dir: impl AsRef<Path>) -> Result<TransformerConfig, HfError> {
    Ok(read_config(dir)?.transformer)
}

/// Buffers older checkpoints saved next to the weights; not parameters.
fn is_buffer(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq")
}

/// Loads a `…ForCausalLM` checkpoint. With tied embeddings an `lm_head.weight` in the file is
/// ignored, as transformers does.
pub fn load_causal_lm(
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<(TransformerConfig, CausalLm), HfError> {
    let dir = dir.as_ref();
    let hf = read_config(dir)?;
    if hf.head != HfHead::CausalLm {
        return Err(HfError::Config {
            path: dir.join("config.json"),
            key: "architectures".into(),
            message: format!("`{}` has no language-model head", hf.architecture),
        });
    }
    let files = WeightFiles::locate(dir)?;
    let config = hf.transformer;
    let model = CausalLm::zeros(&config, device);
    let tied = config.tie_word_embeddings;
    let model = load_into(model, &files, |name| {
        is_buffer(name) || (tied && name == "lm_head.weight")
    })?;
    Ok((config, model))
}

/// Loads a `…ForSequenceClassification` checkpoint with one label (a reward or value model)
/// as a critic: backbone plus `score` `[1, hidden]`, applied at every position.
///
/// To start a critic from a causal LM instead, load it with [`load_causal_lm`] and use
/// [`ValueModel::from_backbone`].
pub fn load_value_model(
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<(TransformerConfig, ValueModel), HfError> {
    let dir = dir.as_ref();
    let hf = read_config(dir)?;
    if hf.head != HfHead::SequenceClassification {
        return Err(HfError::Config {
            path: dir.join("config.json"),
            key: "architectures".into(),
            message: format!(
                "`{}` has no `score` head; load it with load_causal_lm and use \
                 ValueModel::from_backbone",
                hf.architecture
            ),
        });
    }
    let files = WeightFiles::locate(dir)?;
    let config = hf.transformer;
    let model = ValueModel::zeros(&config, device);
    let model = load_into(model, &files, is_buffer)?;
    Ok((config, model))
}
