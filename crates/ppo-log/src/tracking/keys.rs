//! Names and values as MLflow accepts them: flattened config params, sanitised keys,
//! truncated values.

use std::collections::HashMap;

use serde_json::Value;

use super::batch::KeyValue;

/// Longest metric, param or tag key MLflow stores (characters).
pub const MAX_KEY_CHARS: usize = 250;
/// Longest param value sent; longer values are truncated. MLflow ≥ 2.x stores 6000
/// characters (older servers stored 500 and reject longer values with a 400, which
/// drops that batch of params with a warning).
pub const MAX_PARAM_VALUE_CHARS: usize = 6000;
/// Longest tag value sent; 5000 is what every MLflow backend guarantees.
pub const MAX_TAG_VALUE_CHARS: usize = 5000;

/// Flattens a nested JSON config into `(dotted.key, value)` pairs for MLflow params.
///
/// Objects recurse (`{"training": {"lr": 1e-5}}` → `training.lr`), strings are taken
/// as they are, numbers, booleans and `null` are written as JSON (`0.00001`, `true`,
/// `null`) and arrays as compact JSON (`[0.9,0.95]`). Empty objects give nothing; a
/// value that is not an object gives one pair with an empty key. Keys are not
/// sanitised here; [`crate::Tracker::start`] does that.
pub fn flatten_params(config: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten_into(String::new(), config, &mut out);
    out
}

fn flatten_into(prefix: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten_into(child_key, child, out);
            }
        }
        Value::String(text) => out.push((prefix, text.clone())),
        other => out.push((prefix, other.to_string())),
    }
}

/// Makes `key` a valid MLflow metric/param/tag key.
///
/// Characters other than ASCII letters, digits, `_`, `-`, `.`, space and `/` become
/// `_` (MLflow also allows `:` except on Windows servers, and Unicode word characters;
/// both are replaced to be safe). The key is cut to [`MAX_KEY_CHARS`], and then
/// made a normalised relative path as MLflow requires: empty components (`a//b`,
/// leading or trailing `/`) are removed and `.` / `..` components become `_` / `__`.
/// An empty key becomes `_`.
pub(crate) fn sanitize_key(key: &str) -> String {
    let mapped: String = key
        .chars()
        .take(MAX_KEY_CHARS)
        .map(|c| {
            let allowed = c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/');
            if allowed { c } else { '_' }
        })
        .collect();
    let components: Vec<&str> = mapped
        .split('/')
        .filter(|component| !component.is_empty())
        .map(|component| match component {
            "." => "_",
            ".." => "__",
            other => other,
        })
        .collect();
    if components.is_empty() {
        return "_".to_owned();
    }
    components.join("/")
}

/// The first `max_chars` characters of `text`.
pub(crate) fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((byte_idx, _)) => &text[..byte_idx],
        None => text,
    }
}

/// Sanitises keys and truncates values of params or tags (`what` names them in
/// warnings). A key that appears again after sanitising keeps its first value; MLflow
/// refuses to change a param, so later values would make the whole batch fail.
pub(crate) fn prepare_key_values(
    pairs: Vec<(String, String)>,
    max_value_chars: usize,
    what: &str,
) -> Vec<KeyValue> {
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(pairs.len());
    let mut out: Vec<KeyValue> = Vec::with_capacity(pairs.len());
    for (raw_key, raw_value) in pairs {
        let key = sanitize_key(&raw_key);
        if key != raw_key {
            tracing::warn!("MLflow {what} key {raw_key:?} is sent as {key:?}");
        }
        let value = truncate_chars(&raw_value, max_value_chars);
        if value.len() < raw_value.len() {
            tracing::warn!(
                "MLflow {what} {key:?} is cut to {max_value_chars} characters (MLflow's limit)"
            );
        }
        if let Some(&idx) = seen.get(&key) {
            if out[idx].value != value {
                tracing::warn!(
                    "MLflow {what} {key:?} given twice with different values; keeping the first"
                );
            }
            continue;
        }
        seen.insert(key.clone(), out.len());
        out.push(KeyValue {
            key,
            value: value.to_owned(),
        });
    }
    out
}
