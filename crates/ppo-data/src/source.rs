//! What to read (`DataSource`, one `[[data.sources]]` table), what comes out (`Record`), and
//! the two entry points `load_source` / `load_sources`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::field::Fields;
use crate::{json, parquet_file};

/// File format of a source: `type = "jsonl" | "json" | "parquet"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// One JSON object per line; blank lines are skipped.
    Jsonl,
    /// One JSON document: an array of objects, or an object with a single array field.
    Json,
    /// Apache Parquet, as written by pyarrow, pandas or Hugging Face `datasets`.
    Parquet,
}

impl DataFormat {
    /// The format a file extension stands for, case-insensitively: .jsonl and .ndjson,
    /// .json, .parquet. `None` for anything else.
    pub fn from_path(path: &Path) -> Option<DataFormat> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "jsonl" | "ndjson" => Some(DataFormat::Jsonl),
            "json" => Some(DataFormat::Json),
            "parquet" => Some(DataFormat::Parquet),
            _ => None,
        }
    }
}

/// The default of [`DataSource::input`]: the column name TRL uses for prompt datasets.
pub const DEFAULT_INPUT_FIELD: &str = "prompt";

fn default_input() -> String {
    DEFAULT_INPUT_FIELD.to_owned()
}

/// One prompt file and how to read it; a `[[data.sources]]` table of the config.
///
/// ```toml
/// [[data.sources]]
/// path = "data/gsm8k/train.parquet"
/// type = "parquet"        # optional: inferred from the extension
/// input = "question"      # field with the prompt (default "prompt")
/// output = "answer"       # field with the reference answer (default: none)
/// max_samples = 1000      # optional: only the first 1000 records of this file
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// The file, read as given (the caller resolves relative paths).
    pub path: PathBuf,
    /// The format; `None` infers it from the extension ([`DataFormat::from_path`]).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DataFormat>,
    /// Field (json key or parquet column) holding the prompt; `a.b` addresses key `b` of
    /// the object or struct `a`. Defaults to [`DEFAULT_INPUT_FIELD`].
    #[serde(default = "default_input")]
    pub input: String,
    /// Field holding the reference answer; `None` reads prompts without references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Read only the first this many records of the file (at least 1); `None` reads all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_samples: Option<usize>,
}

impl DataSource {
    /// A source reading every record of `path`, format from the extension, prompt from the
    /// field [`DEFAULT_INPUT_FIELD`], no reference answer.
    pub fn new(path: impl Into<PathBuf>) -> DataSource {
        DataSource {
            path: path.into(),
            format: None,
            input: default_input(),
            output: None,
            max_samples: None,
        }
    }

    /// `format`, or the format of the extension when it is not set.
    pub fn resolved_format(&self) -> Result<DataFormat, DataError> {
        self.format
            .or_else(|| DataFormat::from_path(&self.path))
            .ok_or_else(|| DataError::UnknownFormat {
                path: self.path.clone(),
            })
    }
}

/// One prompt with its reference answer, as read from a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The prompt text (the `input` field), as stored: no template or trimming applied.
    pub input: String,
    /// The reference answer (the `output` field); `None` without an `output` field or where
    /// the value is null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// The records of one file, in file order, at most `max_samples` of them.
///
/// Errors on an unreadable file, a malformed one, a missing field, a value that is not a
/// scalar, a null input, or a file with no records; each error names the file.
pub fn load_source(source: &DataSource) -> Result<Vec<Record>, DataError> {
    let format = source.resolved_format()?;
    let limit = match source.max_samples {
        Some(0) => {
            return Err(DataError::ZeroMaxSamples {
                path: source.path.clone(),
            });
        }
        Some(n) => n,
        None => usize::MAX,
    };
    let fields = Fields {
        path: &source.path,
        input: &source.input,
        output: source.output.as_deref(),
    };
    let records = match format {
        DataFormat::Jsonl => json::read_jsonl(&fields, limit)?,
        DataFormat::Json => json::read_json(&fields, limit)?,
        DataFormat::Parquet => parquet_file::read_parquet(&fields, limit)?,
    };
    if records.is_empty() {
        return Err(DataError::Empty {
            path: source.path.clone(),
        });
    }
    Ok(records)
}

/// The records of every source, concatenated in the order given (no shuffling here).
/// An empty slice gives no records; the first failing source stops the reading.
pub fn load_sources(sources: &[DataSource]) -> Result<Vec<Record>, DataError> {
    let mut records = Vec::new();
    for source in sources {
        records.extend(load_source(source)?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_extension() {
        let of = |p: &str| DataFormat::from_path(Path::new(p));
        assert_eq!(of("a/train.jsonl"), Some(DataFormat::Jsonl));
        assert_eq!(of("train.NDJSON"), Some(DataFormat::Jsonl));
        assert_eq!(of("x.json"), Some(DataFormat::Json));
        assert_eq!(
            of("data/train-00000-of-00001.Parquet"),
            Some(DataFormat::Parquet)
        );
        assert_eq!(of("train.csv"), None);
        assert_eq!(of("train"), None);
        assert_eq!(of("train.jsonl.gz"), None);
    }

    #[test]
    fn toml_table_with_defaults() {
        let source: DataSource = toml::from_str(r#"path = "a.parquet""#).unwrap();
        assert_eq!(source, DataSource::new("a.parquet"));
        assert_eq!(source.input, "prompt");
        let source: DataSource = toml::from_str(
            "path = \"x.data\"\ntype = \"jsonl\"\ninput = \"question\"\noutput = \"answer\"\nmax_samples = 3",
        )
        .unwrap();
        assert_eq!(source.format, Some(DataFormat::Jsonl));
        assert_eq!(source.resolved_format().unwrap(), DataFormat::Jsonl);
        assert_eq!(source.input, "question");
        assert_eq!(source.output.as_deref(), Some("answer"));
        assert_eq!(source.max_samples, Some(3));
    }

    #[test]
    fn unknown_keys_and_formats_are_rejected() {
        let err = serde_json::from_str::<DataSource>(r#"{"path": "a", "inptu": "q"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `inptu`"), "{err}");
        let err = serde_json::from_str::<DataSource>(r#"{"path": "a", "type": "csv"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `csv`"), "{err}");
    }

    #[test]
    fn serialises_back_to_the_same_table() {
        let mut source = DataSource::new("d/train.jsonl");
        source.output = Some("answer".into());
        let text = serde_json::to_string(&source).unwrap();
        assert_eq!(
            text,
            r#"{"path":"d/train.jsonl","input":"prompt","output":"answer"}"#
        );
        assert_eq!(serde_json::from_str::<DataSource>(&text).unwrap(), source);
    }

    #[test]
    fn unknown_extension_without_type_names_the_file() {
        let err = load_source(&DataSource::new("prompts.csv")).unwrap_err();
        assert!(matches!(err, DataError::UnknownFormat { .. }));
        assert_eq!(
            err.to_string(),
            "cannot tell the format of prompts.csv from its extension: set `type` to \"jsonl\", \"json\" or \"parquet\""
        );
    }

    #[test]
    fn zero_max_samples_is_an_error() {
        let mut source = DataSource::new("train.jsonl");
        source.max_samples = Some(0);
        let err = load_source(&source).unwrap_err();
        assert!(matches!(err, DataError::ZeroMaxSamples { .. }));
        assert!(err.to_string().contains("train.jsonl"), "{err}");
    }

    #[test]
    fn no_sources_no_records() {
        assert_eq!(load_sources(&[]).unwrap(), []);
    }
}
