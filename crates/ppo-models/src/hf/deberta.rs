//! DeBERTa-v2/v3 sequence classifiers (`DebertaV2ForSequenceClassification`, one label) from a
//! Hugging Face directory: `config.json` resolved into a [`DebertaConfig`] with transformers'
//! defaults, weights from `model.safetensors` or `pytorch_model.bin`.
//!
//! Options that would make the model compute something else than transformers does (an
//! unknown `pos_att_type` entry or activation, grouped or even-sized convolutions, a pooler
//! of another width) and classifiers with more than one label are refused, naming the key.

use std::path::Path;

use burn::tensor::Device;
use serde_json::Value;

use super::HfError;
use super::config::Keys;
use super::weights::{WeightFiles, load_into};
use crate::deberta::{Activation, DebertaConfig, DebertaForSequenceClassification};

/// The architecture name this loader reads.
pub const DEBERTA_ARCHITECTURE: &str = "DebertaV2ForSequenceClassification";

fn read_json(dir: &Path) -> Result<(std::path::PathBuf, Value), HfError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| HfError::Io {
        path: path.clone(),
        source,
    })?;
    let value = serde_json::from_str(&text).map_err(|source| HfError::Json {
        path: path.clone(),
        source,
    })?;
    Ok((path, value))
}

/// Whether `dir/config.json` describes a DeBERTa-v2/v3 model (`model_type` `deberta-v2`, or a
/// `DebertaV2…` architecture).
pub fn is_deberta(dir: impl AsRef<Path>) -> Result<bool, HfError> {
    let (_, value) = read_json(dir.as_ref())?;
    let model_type = value.get("model_type").and_then(Value::as_str);
    let architecture = value
        .get("architectures")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str);
    Ok(
        model_type == Some("deberta-v2")
            || architecture.is_some_and(|a| a.starts_with("DebertaV2")),
    )
}

/// Parses the text of a DeBERTa `config.json` read from `path` (named in errors).
pub fn parse_deberta_config(text: &str, path: &Path) -> Result<DebertaConfig, HfError> {
    let value: Value = serde_json::from_str(text).map_err(|source| HfError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let Value::Object(map) = &value else {
        return Err(HfError::Config {
            path: path.to_path_buf(),
            key: "(root)".into(),
            message: "expected a JSON object".into(),
        });
    };
    resolve(&Keys { path, map })
}

fn activation(keys: &Keys, key: &str, default: &str) -> Result<Activation, HfError> {
    let name = keys.str(key)?.unwrap_or(default);
    Activation::from_hf(name).ok_or_else(|| {
        keys.error(
            key,
            format!("activation `{name}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, tanh)"),
        )
    })
}

/// `pos_att_type`: a list, or a string joined by `|`; (c2p, p2c).
fn pos_att_type(keys: &Keys) -> Result<(bool, bool), HfError> {
    let key = "pos_att_type";
    let entries: Vec<String> = match keys.get(key) {
        None => Vec::new(),
        Some(Value::String(s)) => s.split('|').map(|x| x.trim().to_lowercase()).collect(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| keys.error(key, format!("expected strings, found {v}")))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(keys.error(key, format!("expected a list or a string, found {other}")));
        }
    };
    let (mut c2p, mut p2c) = (false, false);
    for entry in entries {
        match entry.as_str() {
            "c2p" => c2p = true,
            "p2c" => p2c = true,
            other => {
                return Err(keys.error(
                    key,
                    format!("entry `{other}` is not supported (only \"c2p\" and \"p2c\")"),
                ));
            }
        }
    }
    Ok((c2p, p2c))
}

/// The number of labels: `num_labels`, else the size of `id2label`, else transformers'
/// default of 2.
fn num_labels(keys: &Keys) -> Result<usize, HfError> {
    if let Some(n) = keys.usize("num_labels")? {
        return Ok(n);
    }
    Ok(match keys.get("id2label") {
        Some(Value::Object(map)) => map.len(),
        Some(other) => {
            return Err(keys.error("id2label", format!("expected an object, found {other}")));
        }
        None => 2,
    })
}

fn resolve(keys: &Keys) -> Result<DebertaConfig, HfError> {
    if let Some(model_type) = keys.str("model_type")?
        && model_type != "deberta-v2"
    {
        return Err(keys.error(
            "model_type",
            format!("`{model_type}` is not a DeBERTa-v2/v3 model (`deberta-v2`)"),
        ));
    }
    if let Some(Value::Array(list)) = keys.get("architectures")
        && list.first().and_then(Value::as_str) != Some(DEBERTA_ARCHITECTURE)
    {
        return Err(keys.error(
            "architectures",
            format!(
                "expected [\"{DEBERTA_ARCHITECTURE}\"], found {}",
                Value::Array(list.clone())
            ),
        ));
    }
    let hidden_size = keys.required_usize("hidden_size")?;
    let num_attention_heads = keys.required_usize("num_attention_heads")?;
    let attention_head_size = match keys.usize("attention_head_size")? {
        Some(n) => n,
        None => {
            if num_attention_heads == 0 || !hidden_size.is_multiple_of(num_attention_heads) {
                return Err(keys.error(
                    "num_attention_heads",
                    format!("{num_attention_heads} does not divide hidden_size {hidden_size}"),
                ));
            }
            hidden_size / num_attention_heads
        }
    };
    let max_position_embeddings = keys.usize("max_position_embeddings")?.unwrap_or(512);
    let max_relative_positions = match keys.i64("max_relative_positions")?.unwrap_or(-1) {
        n if n < 1 => max_position_embeddings,
        n => n as usize,
    };
    let position_buckets = keys.i64("position_buckets")?.unwrap_or(-1).max(0) as usize;
    let (c2p, p2c) = pos_att_type(keys)?;
    let norm_rel_ebd = {
        let text = keys.str("norm_rel_ebd")?.unwrap_or("none").to_lowercase();
        let mut on = false;
        for entry in text.split('|').map(str::trim) {
            match entry {
                "layer_norm" => on = true,
                "none" => {}
                other => {
                    return Err(keys.error(
                        "norm_rel_ebd",
                        format!("entry `{other}` is not supported (\"layer_norm\" or \"none\")"),
                    ));
                }
            }
        }
        on
    };
    let conv_kernel_size = keys.i64("conv_kernel_size")?.unwrap_or(0).max(0) as usize;
    if conv_kernel_size > 0 {
        if conv_kernel_size.is_multiple_of(2) {
            return Err(keys.error(
                "conv_kernel_size",
                format!("{conv_kernel_size} is even: transformers' ConvLayer only works with odd kernels"),
            ));
        }
        if let Some(groups) = keys.usize("conv_groups")?
            && groups != 1
        {
            return Err(keys.error(
                "conv_groups",
                format!("{groups} groups are not supported (only 1)"),
            ));
        }
    }
    if let Some(pooler) = keys.usize("pooler_hidden_size")?
        && pooler != hidden_size
    {
        return Err(keys.error(
            "pooler_hidden_size",
            format!(
                "{pooler} differs from hidden_size {hidden_size}: the classifier reads hidden_size"
            ),
        ));
    }
    let num_labels = num_labels(keys)?;
    if num_labels != 1 {
        return Err(keys.error(
            if keys.get("num_labels").is_some() {
                "num_labels"
            } else {
                "id2label"
            },
            format!("{num_labels} labels: a reward model has exactly one"),
        ));
    }
    let config = DebertaConfig {
        vocab_size: keys.required_usize("vocab_size")?,
        hidden_size,
        embedding_size: keys.usize("embedding_size")?.unwrap_or(hidden_size),
        num_hidden_layers: keys.required_usize("num_hidden_layers")?,
        num_attention_heads,
        attention_head_size,
        intermediate_size: keys.required_usize("intermediate_size")?,
        hidden_act: activation(keys, "hidden_act", "gelu")?,
        max_position_embeddings,
        type_vocab_size: keys.usize("type_vocab_size")?.unwrap_or(0),
        layer_norm_eps: keys.f64("layer_norm_eps")?.unwrap_or(1e-7),
        position_biased_input: keys.bool("position_biased_input")?.unwrap_or(true),
        relative_attention: keys.bool("relative_attention")?.unwrap_or(false),
        max_relative_positions,
        position_buckets,
        c2p,
        p2c,
        share_att_key: keys.bool("share_att_key")?.unwrap_or(false),
        norm_rel_ebd,
        conv_kernel_size,
        conv_act: activation(keys, "conv_act", "tanh")?,
        pooler_hidden_act: activation(keys, "pooler_hidden_act", "gelu")?,
        num_labels,
        initializer_range: keys.f64("initializer_range")?.unwrap_or(0.02),
    };
    Ok(config)
}

/// Reads and resolves `dir/config.json` of a DeBERTa-v2/v3 classifier.
pub fn read_deberta_config(dir: impl AsRef<Path>) -> Result<DebertaConfig, HfError> {
    let path = dir.as_ref().join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| HfError::Io {
        path: path.clone(),
        source,
    })?;
    parse_deberta_config(&text, &path)
}

/// Loads a `DebertaV2ForSequenceClassification` checkpoint with one label from `dir`
/// (`model.safetensors`, sharded safetensors or `pytorch_model.bin`). As transformers does,
/// `position_ids` buffers and, without `position_biased_input`, a stored
/// `position_embeddings` table are ignored; any other tensor without a parameter is refused.
pub fn load_deberta(
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<(DebertaConfig, DebertaForSequenceClassification), HfError> {
    let dir = dir.as_ref();
    let config = read_deberta_config(dir)?;
    let files = WeightFiles::locate(dir)?;
    let model = DebertaForSequenceClassification::zeros(&config, device);
    let biased = config.position_biased_input;
    let model = load_into(model, &files, |name| {
        name.ends_with("embeddings.position_ids")
            || (!biased && name.ends_with("embeddings.position_embeddings.weight"))
    })?;
    Ok((config, model))
}
