//! The files next to `tokenizer.json` (`tokenizer_config.json`, `special_tokens_map.json`,
//! `generation_config.json`, `chat_template.jinja`) resolved once into a [`TokenizerConfig`],
//! following transformers 5:
//!
//! - the seven named special tokens (`bos_token`, `eos_token`, …) are strings or
//!   `{"content": …}` objects; `special_tokens_map.json` overrides them only when
//!   `tokenizer_config.json` has no `added_tokens_decoder` (the legacy layout);
//! - extra special tokens come from `additional_special_tokens`, `extra_special_tokens` (a
//!   list or a map) and any other `*_token` key with a string value;
//! - `chat_template.jinja` takes precedence over the `chat_template` key, which is a string
//!   or a list of `{name, template}` of which the one named `default` is used;
//! - `add_bos_token` / `add_eos_token` are not read: with a `tokenizer.json`, transformers 5
//!   drops them and its post-processor alone decides what is added.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::TokenizerError;

/// The special-token attributes transformers names (`SPECIAL_TOKENS_ATTRIBUTES`), in its
/// order; a chat template sees each one that is set as a variable.
pub(super) const NAMED_TOKENS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// A special token and where it was named.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct SpecialToken {
    /// The key naming it (`eos_token`, `additional_special_tokens`, …).
    pub key: String,
    /// The token's text.
    pub content: String,
    /// The file naming it.
    pub path: PathBuf,
}

/// A chat template's source and the file holding it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct TemplateSource {
    /// The Jinja source.
    pub source: String,
    /// `chat_template.jinja` or `tokenizer_config.json`.
    pub path: PathBuf,
}

/// What the configuration files say, with no JSON left.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct TokenizerConfig {
    /// Named special tokens that are set, in [`NAMED_TOKENS`] order.
    pub named: Vec<SpecialToken>,
    /// Extra special tokens.
    pub extra: Vec<SpecialToken>,
    /// The `eos_token_id`s of `generation_config.json` (one or a list, in order), and that
    /// file.
    pub generation_eos: Option<(Vec<u32>, PathBuf)>,
    /// `clean_up_tokenization_spaces`.
    pub clean_up_tokenization_spaces: bool,
    /// `clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output`.
    pub clean_up_for_bpe: bool,
    /// `split_special_tokens`: special tokens written in text are encoded as plain text.
    pub split_special_tokens: bool,
    /// The default chat template.
    pub chat_template: Option<TemplateSource>,
}

impl TokenizerConfig {
    /// The named special token `key` (one of [`NAMED_TOKENS`]), when set.
    pub fn named(&self, key: &str) -> Option<&SpecialToken> {
        self.named.iter().find(|t| t.key == key)
    }
}

/// Reads the configuration files of the tokenizer directory `dir`; each is optional.
pub(super) fn read_config(dir: &Path) -> Result<TokenizerConfig, TokenizerError> {
    let config_path = dir.join("tokenizer_config.json");
    let config = read_object(&config_path)?.unwrap_or_default();
    let mut out = TokenizerConfig::default();

    let mut named: Vec<(&str, Option<String>, PathBuf)> = Vec::new();
    for key in NAMED_TOKENS {
        let content = config
            .get(key)
            .map(|v| token_content(v, &config_path, key))
            .transpose()?
            .flatten();
        named.push((key, content, config_path.clone()));
    }
    let mut extra = extra_tokens(&config, &config_path)?;

    let map_path = dir.join("special_tokens_map.json");
    if !config.contains_key("added_tokens_decoder")
        && let Some(map) = read_object(&map_path)?
    {
        for (key, content, path) in &mut named {
            if let Some(value) = map.get(*key) {
                *content = token_content(value, &map_path, key)?;
                *path = map_path.clone();
            }
        }
        for token in extra_tokens(&map, &map_path)? {
            if !extra.iter().any(|t| t.content == token.content) {
                extra.push(token);
            }
        }
    }
    out.named = named
        .into_iter()
        .filter_map(|(key, content, path)| {
            content.map(|content| SpecialToken {
                key: key.to_owned(),
                content,
                path,
            })
        })
        .collect();
    out.extra = extra;

    out.clean_up_tokenization_spaces = flag(&config, &config_path, "clean_up_tokenization_spaces")?;
    out.clean_up_for_bpe = flag(
        &config,
        &config_path,
        "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output",
    )?;
    out.split_special_tokens = flag(&config, &config_path, "split_special_tokens")?;
    out.chat_template = chat_template(dir, &config, &config_path)?;
    out.generation_eos = generation_eos(&dir.join("generation_config.json"))?;
    Ok(out)
}

/// The JSON object in `path`, or `None` when the file does not exist.
fn read_object(path: &Path) -> Result<Option<Map<String, Value>>, TokenizerError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenizerError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(key_error(path, "(top level)", "expected a JSON object")),
        Err(source) => Err(TokenizerError::Json {
            path: path.to_owned(),
            source,
        }),
    }
}

fn key_error(path: &Path, key: &str, message: impl Into<String>) -> TokenizerError {
    TokenizerError::Key {
        path: path.to_owned(),
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A token written as a string, an `{"content": …}` object, or null (not set).
fn token_content(value: &Value, path: &Path, key: &str) -> Result<Option<String>, TokenizerError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Object(o) => match o.get("content") {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(key_error(path, key, "object without a string `content`")),
        },
        _ => Err(key_error(
            path,
            key,
            "expected a string, an object with `content`, or null",
        )),
    }
}

/// Extra special tokens of one file, without duplicates.
fn extra_tokens(
    map: &Map<String, Value>,
    path: &Path,
) -> Result<Vec<SpecialToken>, TokenizerError> {
    let mut out: Vec<SpecialToken> = Vec::new();
    let mut push = |key: &str, value: &Value| -> Result<(), TokenizerError> {
        if let Some(content) = token_content(value, path, key)?
            && !out.iter().any(|t| t.content == content)
        {
            out.push(SpecialToken {
                key: key.to_owned(),
                content,
                path: path.to_owned(),
            });
        }
        Ok(())
    };
    for key in ["additional_special_tokens", "extra_special_tokens"] {
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => items.iter().try_for_each(|v| push(key, v))?,
            Some(Value::Object(items)) => items.values().try_for_each(|v| push(key, v))?,
            Some(_) => return Err(key_error(path, key, "expected a list of tokens")),
        }
    }
    for (key, value) in map {
        if key.ends_with("_token") && !NAMED_TOKENS.contains(&key.as_str()) && value.is_string() {
            push(key, value)?;
        }
    }
    Ok(out)
}

/// A boolean key; absent or null is false.
fn flag(map: &Map<String, Value>, path: &Path, key: &str) -> Result<bool, TokenizerError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(key_error(path, key, "expected true or false")),
    }
}

/// The default chat template: `chat_template.jinja`, else the `chat_template` key.
fn chat_template(
    dir: &Path,
    config: &Map<String, Value>,
    config_path: &Path,
) -> Result<Option<TemplateSource>, TokenizerError> {
    let file = dir.join("chat_template.jinja");
    match std::fs::read_to_string(&file) {
        Ok(source) => return Ok(Some(TemplateSource { source, path: file })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(TokenizerError::Io { path: file, source }),
    }
    let key = "chat_template";
    let source = match config.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(templates)) => {
            let mut default = None;
            for entry in templates {
                let name = entry.get("name").and_then(Value::as_str);
                let template = entry.get("template").and_then(Value::as_str);
                match (name, template) {
                    (Some("default"), Some(t)) => default = Some(t.to_owned()),
                    (Some(_), Some(_)) => {}
                    _ => {
                        return Err(key_error(
                            config_path,
                            key,
                            "list entries must be objects with string `name` and `template`",
                        ));
                    }
                }
            }
            default.ok_or_else(|| key_error(config_path, key, "no template named `default`"))?
        }
        Some(_) => {
            return Err(key_error(
                config_path,
                key,
                "expected a string or a list of {name, template}",
            ));
        }
    };
    Ok(Some(TemplateSource {
        source,
        path: config_path.to_owned(),
    }))
}

/// The `eos_token_id`s of `generation_config.json` (an id or a list of ids).
fn generation_eos(path: &Path) -> Result<Option<(Vec<u32>, PathBuf)>, TokenizerError> {
    let Some(map) = read_object(path)? else {
        return Ok(None);
    };
    let key = "eos_token_id";
    let values = match map.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(ids)) => ids.clone(),
        Some(id) => vec![id.clone()],
    };
    let ids = values
        .iter()
        .map(|id| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| key_error(path, key, "expected a token id or a list of token ids"))
        })
        .collect::<Result<Vec<u32>, _>>()?;
    if ids.is_empty() {
        return Ok(None);
    }
    Ok(Some((ids, path.to_owned())))
}
