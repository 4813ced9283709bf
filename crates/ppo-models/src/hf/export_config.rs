//! The `config.json` of an exported model: the transformers architecture that computes the
//! model's function, every key that changes the function written from our
//! [`TransformerConfig`] over an optional base config, and a check that [`parse_config`]
//! reads it back as the same model.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::export::ExportOptions;
use super::{HfError, HfFamily, HfHead, parse_config};
use crate::TransformerConfig;

/// The family whose transformers class computes the function of `config`, if any.
fn derive_family(config: &TransformerConfig, path: &Path) -> Result<HfFamily, HfError> {
    match (config.qk_norm, config.attention_bias) {
        (false, false) => Ok(HfFamily::Llama),
        (false, true) => Ok(HfFamily::Qwen2),
        (true, false) => Ok(HfFamily::Qwen3),
        (true, true) => Err(config_error(
            path,
            "attention_bias",
            "q/k norm together with q/k/v bias has no transformers architecture: Qwen3 with \
             `attention_bias` also puts a bias on o_proj",
        )),
    }
}

/// Refuses a `family` whose transformers class would compute a different function.
fn check_family(family: HfFamily, config: &TransformerConfig, path: &Path) -> Result<(), HfError> {
    let name = family.prefix();
    let problem = match family {
        HfFamily::Llama | HfFamily::Mistral if config.attention_bias => Some((
            "attention_bias",
            format!("{name} has no q/k/v bias without an o_proj bias (Qwen2 has q/k/v bias alone)"),
        )),
        HfFamily::Qwen2 if !config.attention_bias => Some((
            "attention_bias",
            "Qwen2 always has q/k/v bias; this model has none".to_owned(),
        )),
        HfFamily::Qwen3 if config.attention_bias => Some((
            "attention_bias",
            "Qwen3 with q/k/v bias also has an o_proj bias".to_owned(),
        )),
        HfFamily::Llama | HfFamily::Qwen2 | HfFamily::Mistral if config.qk_norm => {
            Some(("qk_norm", format!("{name} has no q/k norm (Qwen3 has)")))
        }
        HfFamily::Qwen3 if !config.qk_norm => Some((
            "qk_norm",
            "Qwen3 always has q/k norm; this model has none".to_owned(),
        )),
        _ => None,
    };
    match problem {
        Some((key, message)) => Err(config_error(
            path,
            key,
            format!("cannot export as {name}: {message}"),
        )),
        None => Ok(()),
    }
}

/// The family named by a base config's `architectures` or `model_type`.
fn base_family(base: &Map<String, Value>, path: &Path) -> Result<Option<HfFamily>, HfError> {
    const FAMILIES: [HfFamily; 4] = [
        HfFamily::Llama,
        HfFamily::Qwen2,
        HfFamily::Qwen3,
        HfFamily::Mistral,
    ];
    let architecture = base
        .get("architectures")
        .and_then(Value::as_array)
        .and_then(|list| list.first())
        .and_then(Value::as_str);
    if let Some(name) = architecture {
        let found = FAMILIES.into_iter().find(|family| {
            let suffix = name.strip_prefix(family.prefix());
            [HfHead::CausalLm, HfHead::SequenceClassification]
                .iter()
                .any(|head| suffix == Some(head.suffix()))
        });
        return match found {
            Some(family) => Ok(Some(family)),
            None => Err(config_error(
                path,
                "architectures",
                format!("base config's architecture `{name}` cannot be exported"),
            )),
        };
    }
    match base.get("model_type").and_then(Value::as_str) {
        None => Ok(None),
        Some(model_type) => FAMILIES
            .into_iter()
            .find(|family| family.prefix().eq_ignore_ascii_case(model_type))
            .map(Some)
            .ok_or_else(|| {
                config_error(
                    path,
                    "model_type",
                    format!("base config's model type `{model_type}` cannot be exported"),
                )
            }),
    }
}

/// The `config.json` of `config` with `head`, checked to read back as the same model.
pub(super) fn config_json(
    config: &TransformerConfig,
    head: HfHead,
    options: &ExportOptions,
    path: &Path,
) -> Result<Value, HfError> {
    let mut map = match &options.base_config {
        None => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(config_error(
                path,
                "(root)",
                "base config is not a JSON object",
            ));
        }
    };
    let family = match options.family {
        Some(family) => family,
        None => match base_family(&map, path)? {
            Some(family) => family,
            None => derive_family(config, path)?,
        },
    };
    check_family(family, config, path)?;
    let c = config;
    let mut set = |key: &str, value: Value| {
        map.insert(key.to_owned(), value);
    };
    set(
        "architectures",
        json!([format!("{}{}", family.prefix(), head.suffix())]),
    );
    set("model_type", json!(family.prefix().to_ascii_lowercase()));
    set("vocab_size", json!(c.vocab_size));
    set("hidden_size", json!(c.hidden_size));
    set("intermediate_size", json!(c.intermediate_size));
    set("num_hidden_layers", json!(c.num_hidden_layers));
    set("num_attention_heads", json!(c.num_attention_heads));
    set("num_key_value_heads", json!(c.num_key_value_heads));
    set("head_dim", json!(c.head_dim));
    set("hidden_act", json!("silu"));
    set("rms_norm_eps", json!(c.rms_norm_eps));
    // transformers 4 reads the top-level `rope_theta`, transformers 5 `rope_parameters`.
    set("rope_theta", json!(c.rope_theta));
    set(
        "rope_parameters",
        json!({"rope_type": "default", "rope_theta": c.rope_theta}),
    );
    set("max_position_embeddings", json!(c.max_position_embeddings));
    set("tie_word_embeddings", json!(c.tie_word_embeddings));
    set("attention_bias", json!(c.attention_bias));
    set("initializer_range", json!(c.initializer_range));
    set("dtype", json!(options.dtype.name()));
    match family {
        HfFamily::Llama => set("mlp_bias", json!(false)),
        HfFamily::Mistral => set("sliding_window", Value::Null),
        HfFamily::Qwen2 | HfFamily::Qwen3 => {
            set("use_sliding_window", json!(false));
            set("sliding_window", Value::Null);
            set("max_window_layers", json!(c.num_hidden_layers));
            set(
                "layer_types",
                json!(vec!["full_attention"; c.num_hidden_layers]),
            );
        }
    }
    if head == HfHead::SequenceClassification {
        set("num_labels", json!(1));
        set("id2label", json!({"0": "LABEL_0"}));
        set("label2id", json!({"LABEL_0": 0}));
    }
    for (key, id) in options.token_ids.entries() {
        match id {
            Some(id) => set(key, json!(id)),
            None if options.base_config.is_none() => set(key, Value::Null),
            None => {}
        }
    }
    for key in [
        "rope_scaling",
        "partial_rotary_factor",
        "quantization_config",
    ] {
        map.remove(key);
    }
    if map.contains_key("torch_dtype") {
        map.insert("torch_dtype".into(), json!(options.dtype.name()));
    }
    let value = Value::Object(map);
    let parsed = parse_config(&value.to_string(), path)?;
    if parsed.transformer != *config || parsed.family != family || parsed.head != head {
        return Err(config_error(
            path,
            "(export)",
            format!(
                "the written config reads back as {:?} {:?} {:?}, not as the model's {config:?}",
                parsed.family, parsed.head, parsed.transformer
            ),
        ));
    }
    Ok(value)
}

fn config_error(path: &Path, key: &str, message: impl Into<String>) -> HfError {
    HfError::Config {
        path: path.to_path_buf(),
        key: key.to_owned(),
        message: message.into(),
    }
}
