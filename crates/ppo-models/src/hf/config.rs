//! `config.json` as transformers 4.x and 5.x write it, resolved into a [`TransformerConfig`].
//!
//! Absent keys take the default of the transformers config class of the architecture (they
//! differ: Qwen3's `head_dim` defaults to 128, Mistral's `num_key_value_heads` to 8), except
//! the five shape keys, which are required. Anything that would make our model compute a
//! different function than transformers (RoPE scaling, sliding windows, `o_proj` or MLP bias,
//! quantisation) is refused with an error naming the key.

use std::path::Path;

use serde_json::{Map, Value};

use super::HfError;
use crate::TransformerConfig;

/// Model family of a supported checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HfFamily {
    /// `Llama*`: optional bias on all four attention projections (refused when on).
    Llama,
    /// `Qwen2*`: bias on q/k/v, none on o, regardless of `attention_bias`.
    Qwen2,
    /// `Qwen3*`: per-head RMSNorm on queries and keys.
    Qwen3,
    /// `Mistral*`: Llama without bias, accepted when no sliding window is in effect.
    Mistral,
}

impl HfFamily {
    const ALL: [HfFamily; 4] = [Self::Llama, Self::Qwen2, Self::Qwen3, Self::Mistral];

    /// The prefix of its architecture names (`Qwen2` in `Qwen2ForCausalLM`).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Llama => "Llama",
            Self::Qwen2 => "Qwen2",
            Self::Qwen3 => "Qwen3",
            Self::Mistral => "Mistral",
        }
    }
}

/// The head on top of the backbone, from the architecture name's suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HfHead {
    /// `…ForCausalLM`: `lm_head` (or the tied embedding).
    CausalLm,
    /// `…ForSequenceClassification`: a `score` projection (a value head when it has one label).
    SequenceClassification,
}

impl HfHead {
    const ALL: [HfHead; 2] = [Self::CausalLm, Self::SequenceClassification];

    /// The suffix of its architecture names.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::CausalLm => "ForCausalLM",
            Self::SequenceClassification => "ForSequenceClassification",
        }
    }
}

/// A parsed `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct HfConfig {
    /// The architecture as written (`architectures[0]`, or derived from `model_type`).
    pub architecture: String,
    /// Which code path of transformers it selects.
    pub family: HfFamily,
    /// The head on top of the backbone.
    pub head: HfHead,
    /// Dtype the weights were saved in (`dtype`, or `torch_dtype` before transformers 4.56),
    /// as written, e.g. `"bfloat16"`. Weights are converted to f32 on load regardless.
    pub dtype: Option<String>,
    /// Our model's configuration.
    pub transformer: TransformerConfig,
}

/// Typed access to the keys of one JSON object, with errors naming the file and the key.
pub(super) struct Keys<'a> {
    pub(super) path: &'a Path,
    pub(super) map: &'a Map<String, Value>,
}

impl Keys<'_> {
    pub(super) fn error(&self, key: &str, message: impl Into<String>) -> HfError {
        HfError::Config {
            path: self.path.to_path_buf(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// The value of `key`; `None` when absent or `null`.
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn usize(&self, key: &str) -> Result<Option<usize>, HfError> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        self.error(key, format!("expected a non-negative integer, found {v}"))
                    })
            })
            .transpose()
    }

    pub(super) fn i64(&self, key: &str) -> Result<Option<i64>, HfError> {
        self.get(key)
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| self.error(key, format!("expected an integer, found {v}")))
            })
            .transpose()
    }

    pub(super) fn required_usize(&self, key: &str) -> Result<usize, HfError> {
        self.usize(key)?
            .ok_or_else(|| self.error(key, "missing (required)"))
    }

    pub(super) fn f64(&self, key: &str) -> Result<Option<f64>, HfError> {
        self.get(key)
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| self.error(key, format!("expected a number, found {v}")))
            })
            .transpose()
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, HfError> {
        self.get(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| self.error(key, format!("expected true or false, found {v}")))
            })
            .transpose()
    }

    pub(super) fn str(&self, key: &str) -> Result<Option<&str>, HfError> {
        self.get(key)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.error(key, format!("expected a string, found {v}")))
            })
            .transpose()
    }
}

/// Parses the text of a `config.json` read from `path` (named in errors).
pub fn parse_config(text: &str, path: &Path) -> Result<HfConfig, HfError> {
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

fn architecture(keys: &Keys) -> Result<(String, HfFamily, HfHead), HfError> {
    let supported = "supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, \
                     MistralForCausalLM and their …ForSequenceClassification";
    let name = match keys.get("architectures") {
        Some(Value::Array(list)) => match list.as_slice() {
            [Value::String(name)] => name.clone(),
            _ => {
                return Err(keys.error(
                    "architectures",
                    format!(
                        "expected one architecture name, found {}",
                        Value::Array(list.clone())
                    ),
                ));
            }
        },
        Some(other) => {
            return Err(keys.error("architectures", format!("expected a list, found {other}")));
        }
        None => {
            // Configs written by hand may carry only `model_type`: take its causal LM.
            let model_type = keys
                .str("model_type")?
                .ok_or_else(|| keys.error("architectures", "missing (and no `model_type`)"))?;
            let family = HfFamily::ALL
                .into_iter()
                .find(|family| family.prefix().eq_ignore_ascii_case(model_type))
                .ok_or_else(|| {
                    keys.error(
                        "model_type",
                        format!("model type `{model_type}` is not supported ({supported})"),
                    )
                })?;
            let name = format!("{}{}", family.prefix(), HfHead::CausalLm.suffix());
            return Ok((name, family, HfHead::CausalLm));
        }
    };
    for family in HfFamily::ALL {
        for head in HfHead::ALL {
            if name.strip_prefix(family.prefix()) == Some(head.suffix()) {
                return Ok((name, family, head));
            }
        }
    }
    Err(keys.error(
        "architectures",
        format!("architecture `{name}` is not supported ({supported})"),
    ))
}

/// `rope_theta` from `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5),
/// refusing every RoPE type but `default`.
fn rope_theta(keys: &Keys) -> Result<f64, HfError> {
    const DEFAULT_THETA: f64 = 10_000.0;
    let top_theta = keys.f64("rope_theta")?;
    let factor_key = "partial_rotary_factor";
    check_partial_rotary_factor(keys, keys.map.get(factor_key), factor_key)?;
    // transformers 5 takes `rope_scaling` over `rope_parameters` when both are set.
    let key = ["rope_scaling", "rope_parameters"]
        .into_iter()
        .find(|key| keys.get(key).is_some());
    let Some(key) = key else {
        return Ok(top_theta.unwrap_or(DEFAULT_THETA));
    };
    let Some(Value::Object(params)) = keys.get(key) else {
        return Err(keys.error(key, "expected an object or null"));
    };
    if let Some((layer_type, _)) = params.iter().find(|(_, v)| v.is_object()) {
        return Err(keys.error(
            &format!("{key}.{layer_type}"),
            "RoPE parameters per layer type are not supported",
        ));
    }
    let rope_type = ["rope_type", "type"]
        .into_iter()
        .find_map(|k| params.get(k).map(|v| (k, v)));
    if let Some((type_key, value)) = rope_type {
        match value.as_str() {
            Some("default") => {}
            Some(other) => {
                return Err(keys.error(
                    &format!("{key}.{type_key}"),
                    format!("RoPE type `{other}` is not implemented (only `default`)"),
                ));
            }
            None => {
                return Err(keys.error(
                    &format!("{key}.{type_key}"),
                    format!("expected a string, found {value}"),
                ));
            }
        }
    }
    let nested_key = format!("{key}.{factor_key}");
    check_partial_rotary_factor(keys, params.get(factor_key), &nested_key)?;
    match params.get("rope_theta").filter(|v| !v.is_null()) {
        Some(v) => v.as_f64().ok_or_else(|| {
            keys.error(
                &format!("{key}.rope_theta"),
                format!("expected a number, found {v}"),
            )
        }),
        None => Ok(top_theta.unwrap_or(DEFAULT_THETA)),
    }
}

/// Refuses a `partial_rotary_factor` other than 1 (`value` of `key`).
fn check_partial_rotary_factor(
    keys: &Keys,
    value: Option<&Value>,
    key: &str,
) -> Result<(), HfError> {
    match value.filter(|v| !v.is_null()) {
        None => Ok(()),
        Some(v) if v.as_f64() == Some(1.0) => Ok(()),
        Some(v) => Err(keys.error(
            key,
            format!("partial rotary embeddings ({v}) are not implemented"),
        )),
    }
}

/// Refuses configurations in which some layer attends through a sliding window.
fn check_no_sliding_window(
    keys: &Keys,
    family: HfFamily,
    layers: usize,
    max_positions: usize,
) -> Result<(), HfError> {
    match family {
        HfFamily::Llama => Ok(()),
        HfFamily::Mistral => {
            // Every layer uses the window when it is set; absent means the class default 4096.
            let window = if keys.map.contains_key("sliding_window") {
                keys.usize("sliding_window")?
            } else {
                Some(4096)
            };
            match window {
                Some(window) if window < max_positions => Err(keys.error(
                    "sliding_window",
                    format!(
                        "sliding-window attention ({window} < max_position_embeddings \
                         {max_positions}) is not implemented"
                    ),
                )),
                _ => Ok(()),
            }
        }
        HfFamily::Qwen2 | HfFamily::Qwen3 => {
            if let Some(layer_types) = keys.get("layer_types") {
                let list = layer_types.as_array().ok_or_else(|| {
                    keys.error(
                        "layer_types",
                        format!("expected a list, found {layer_types}"),
                    )
                })?;
                if let Some(other) = list.iter().find(|t| t.as_str() != Some("full_attention")) {
                    return Err(keys.error(
                        "layer_types",
                        format!("layer type {other} is not implemented (only \"full_attention\")"),
                    ));
                }
                return Ok(());
            }
            let use_window = keys.bool("use_sliding_window")?.unwrap_or(false);
            let window = if keys.map.contains_key("sliding_window") {
                keys.usize("sliding_window")?
            } else {
                Some(4096)
            };
            let first_windowed = keys.usize("max_window_layers")?.unwrap_or(28);
            if use_window && window.is_some() && first_windowed < layers {
                return Err(keys.error(
                    "use_sliding_window",
                    format!(
                        "sliding-window attention from layer {first_windowed} on is not implemented"
                    ),
                ));
            }
            Ok(())
        }
    }
}

fn resolve(keys: &Keys) -> Result<HfConfig, HfError> {
    let (architecture, family, head) = architecture(keys)?;
    if keys.get("quantization_config").is_some() {
        return Err(keys.error(
            "quantization_config",
            "quantised checkpoints are not supported",
        ));
    }
    let vocab_size = keys.required_usize("vocab_size")?;
    let hidden_size = keys.required_usize("hidden_size")?;
    let intermediate_size = keys.required_usize("intermediate_size")?;
    let num_hidden_layers = keys.required_usize("num_hidden_layers")?;
    let num_attention_heads = keys.required_usize("num_attention_heads")?;
    if num_attention_heads == 0 {
        return Err(keys.error("num_attention_heads", "must be positive"));
    }
    // Absent: the class default; null: as many as query heads.
    let num_key_value_heads = match keys.map.get("num_key_value_heads") {
        None => match family {
            HfFamily::Llama => num_attention_heads,
            HfFamily::Qwen2 | HfFamily::Qwen3 => 32,
            HfFamily::Mistral => 8,
        },
        Some(_) => keys
            .usize("num_key_value_heads")?
            .unwrap_or(num_attention_heads),
    };
    let head_dim = match keys.usize("head_dim")? {
        Some(head_dim) => head_dim,
        None if family == HfFamily::Qwen3 && !keys.map.contains_key("head_dim") => 128,
        None => {
            if !hidden_size.is_multiple_of(num_attention_heads) {
                return Err(keys.error(
                    "head_dim",
                    format!(
                        "absent, and hidden_size ({hidden_size}) is not a multiple of \
                         num_attention_heads ({num_attention_heads})"
                    ),
                ));
            }
            hidden_size / num_attention_heads
        }
    };
    if let Some(act) = keys.str("hidden_act")?
        && act != "silu"
        && act != "swish"
    {
        return Err(keys.error(
            "hidden_act",
            format!("activation `{act}` is not implemented (only `silu`)"),
        ));
    }
    let max_position_embeddings = keys
        .usize("max_position_embeddings")?
        .unwrap_or(match family {
            HfFamily::Llama => 2048,
            HfFamily::Qwen2 | HfFamily::Qwen3 => 32_768,
            HfFamily::Mistral => 131_072,
        });
    check_no_sliding_window(keys, family, num_hidden_layers, max_position_embeddings)?;
    let attention_bias = match family {
        // Qwen2 hard-codes bias on q/k/v (none on o) and ignores the key; Mistral has none.
        HfFamily::Qwen2 => true,
        HfFamily::Mistral => false,
        HfFamily::Llama | HfFamily::Qwen3 => {
            if keys.bool("attention_bias")?.unwrap_or(false) {
                return Err(keys.error(
                    "attention_bias",
                    "bias on o_proj (which transformers adds with q/k/v bias for this \
                     architecture) is not implemented",
                ));
            }
            false
        }
    };
    if family == HfFamily::Llama && keys.bool("mlp_bias")?.unwrap_or(false) {
        return Err(keys.error("mlp_bias", "MLP bias is not implemented"));
    }
    let dtype = match keys.get("dtype") {
        Some(_) => keys.str("dtype")?,
        None => keys.str("torch_dtype")?,
    };
    let transformer = TransformerConfig {
        vocab_size,
        hidden_size,
        intermediate_size,
        num_hidden_layers,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        rms_norm_eps: keys.f64("rms_norm_eps")?.unwrap_or(1e-6),
        rope_theta: rope_theta(keys)?,
        max_position_embeddings,
        // transformers' base class defaults to true, but all four architectures pass false.
        tie_word_embeddings: keys.bool("tie_word_embeddings")?.unwrap_or(false),
        attention_bias,
        qk_norm: family == HfFamily::Qwen3,
        initializer_range: keys.f64("initializer_range")?.unwrap_or(0.02),
    };
    transformer
        .validate()
        .map_err(|source| HfError::InvalidConfig {
            path: keys.path.to_path_buf(),
            source,
        })?;
    Ok(HfConfig {
        architecture,
        family,
        head,
        dtype: dtype.map(str::to_owned),
        transformer,
    })
}
