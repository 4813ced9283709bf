//! The JSON formats: jsonl (one object per line) and json (an array of objects, or an object
//! whose single field is that array, as in `{"data": [...]}`).
//!
//! Strings are taken as they are; numbers and booleans become their text (`72`, `0.5`,
//! `true`; a float with no fractional part is written without one, `72.0` → `72`).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use crate::error::{DataError, Location};
use crate::field::{Fields, Node, Text, field_names, find};
use crate::source::Record;

/// Byte order mark some Windows editors put at the start of UTF-8 files.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The first `limit` records of a jsonl file. Lines after the last record read are not
/// looked at, so a malformed line past `limit` is no error.
pub(crate) fn read_jsonl(fields: &Fields<'_>, limit: usize) -> Result<Vec<Record>, DataError> {
    let file = File::open(fields.path).map_err(|source| io_error(fields.path, source))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut line_number = 0;
    let mut records = Vec::new();
    while records.len() < limit {
        line.clear();
        let n_bytes = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| io_error(fields.path, source))?;
        if n_bytes == 0 {
            break;
        }
        line_number += 1;
        let text = match line_number {
            1 => line.strip_prefix(BOM).unwrap_or(&line),
            _ => &line[..],
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value =
            serde_json::from_slice(text).map_err(|source| DataError::InvalidJson {
                path: fields.path.to_path_buf(),
                line: line_number,
                column: source.column(),
                source,
            })?;
        records.push(record(fields, Location::Line(line_number), &value)?);
    }
    Ok(records)
}

/// The first `limit` records of a json file.
pub(crate) fn read_json(fields: &Fields<'_>, limit: usize) -> Result<Vec<Record>, DataError> {
    let bytes = std::fs::read(fields.path).map_err(|source| io_error(fields.path, source))?;
    let text = bytes.strip_prefix(BOM).unwrap_or(&bytes);
    let document: Value =
        serde_json::from_slice(text).map_err(|source| DataError::InvalidJson {
            path: fields.path.to_path_buf(),
            line: source.line(),
            column: source.column(),
            source,
        })?;
    let items = records_of(fields.path, document)?;
    items
        .iter()
        .take(limit)
        .enumerate()
        .map(|(row, value)| record(fields, Location::Row(row), value))
        .collect()
}

/// The array of records of a json document: the document itself, or its single field.
fn records_of(path: &Path, document: Value) -> Result<Vec<Value>, DataError> {
    let layout_error = |found: String| DataError::JsonLayout {
        path: path.to_path_buf(),
        found,
    };
    match document {
        Value::Array(items) => Ok(items),
        Value::Object(object) => {
            let mut keys: Vec<String> = object.keys().map(|k| format!("`{k}`")).collect();
            keys.sort();
            match object.into_iter().next() {
                Some((_, Value::Array(items))) if keys.len() == 1 => Ok(items),
                Some((_, other)) if keys.len() == 1 => Err(layout_error(format!(
                    "an object whose only field {} is {}",
                    keys[0],
                    describe(&other)
                ))),
                _ => Err(layout_error(format!(
                    "an object with fields {}",
                    if keys.is_empty() {
                        "(none)".into()
                    } else {
                        keys.join(", ")
                    }
                ))),
            }
        }
        other => Err(layout_error(describe(&other).into())),
    }
}

/// The record in `value` (one jsonl line or json array element) at `location`.
fn record(fields: &Fields<'_>, location: Location, value: &Value) -> Result<Record, DataError> {
    if !value.is_object() {
        return Err(DataError::NotAnObject {
            path: fields.path.to_path_buf(),
            location,
            found: describe(value),
        });
    }
    let lookup = |name: &str| {
        find(value, name).ok_or_else(|| {
            // Sorted: key order depends on serde_json's `preserve_order` feature.
            let mut names = field_names(value);
            names.sort();
            fields.missing(Some(location), name, names)
        })
    };
    let input = text(lookup(fields.input)?);
    let output = match fields.output {
        Some(name) => Some(text(lookup(name)?)),
        None => None,
    };
    fields.record(location, input, output)
}

/// A scalar as text; see the module doc for numbers.
fn text(value: &Value) -> Text {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => f.to_string(),
            (None, None, None) => n.to_string(),
        })),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Array(_) | Value::Object(_) => Err(describe(value).into()),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Node for Value {
    fn child(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }

    fn children(&self) -> Vec<(&str, &Value)> {
        match self {
            Value::Object(object) => object.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_become_text() {
        assert_eq!(
            text(&json!("  keep  spaces\n")),
            Ok(Some("  keep  spaces\n".into()))
        );
        assert_eq!(text(&json!(72)), Ok(Some("72".into())));
        assert_eq!(text(&json!(-3)), Ok(Some("-3".into())));
        assert_eq!(
            text(&json!(u64::MAX)),
            Ok(Some("18446744073709551615".into()))
        );
        assert_eq!(text(&json!(72.0)), Ok(Some("72".into())));
        assert_eq!(text(&json!(0.1)), Ok(Some("0.1".into())));
        assert_eq!(text(&json!(-1.25e-7)), Ok(Some("-0.000000125".into())));
        assert_eq!(text(&json!(true)), Ok(Some("true".into())));
        assert_eq!(text(&json!(null)), Ok(None));
        assert_eq!(text(&json!([1])), Err("an array".into()));
        assert_eq!(text(&json!({"a": 1})), Err("an object".into()));
    }

    #[test]
    fn top_level_layouts() {
        let path = Path::new("d.json");
        assert_eq!(
            records_of(path, json!([{"a": 1}])).unwrap(),
            [json!({"a": 1})]
        );
        assert_eq!(
            records_of(path, json!({"rows": [{"a": 1}]})).unwrap(),
            [json!({"a": 1})]
        );
        let message = |doc| records_of(path, doc).unwrap_err().to_string();
        assert!(
            message(json!({"a": [], "b": []})).ends_with("found an object with fields `a`, `b`"),
            "{}",
            message(json!({"a": [], "b": []}))
        );
        assert!(
            message(json!({"data": 3}))
                .ends_with("found an object whose only field `data` is a number")
        );
        assert!(message(json!({})).ends_with("found an object with fields (none)"));
        assert!(message(json!("text")).ends_with("found a string"));
    }
}
