//! `DataError`: everything that can go wrong reading a prompt file, each naming the file and,
//! where there is one, the record and the field.

use std::fmt;
use std::path::PathBuf;

/// Where a record sits in its file, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A line of a jsonl file, counted from 1 as editors do.
    Line(usize),
    /// A record of a json array or a parquet row, counted from 0 as dataframes do.
    Row(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(line) => write!(f, "line {line}"),
            Location::Row(row) => write!(f, "row {row}"),
        }
    }
}

/// Failure to read a prompt dataset. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read dataset file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file has no `type` and its extension is none of .jsonl, .ndjson, .json, .parquet.
    #[error(
        "cannot tell the format of {} from its extension: set `type` to \"jsonl\", \"json\" or \"parquet\"",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// `max_samples = 0` would read nothing.
    #[error("invalid max_samples for {}: it must be at least 1 (leave it out to read every record)", path.display())]
    ZeroMaxSamples {
        /// The file.
        path: PathBuf,
    },
    /// A jsonl line or a json file that is not valid JSON.
    #[error("invalid JSON in {} at line {line}, column {column}", path.display())]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// Line of the file, from 1.
        line: usize,
        /// Column of that line, from 1.
        column: usize,
        /// The parser's message.
        #[source]
        source: serde_json::Error,
    },
    /// A json file whose top level is not an array of records (nor `{"key": [records]}`).
    #[error(
        "unexpected layout of {}: expected an array of objects, or an object with a single array field such as {{\"data\": [...]}}, found {found}",
        path.display()
    )]
    JsonLayout {
        /// The file.
        path: PathBuf,
        /// What the top level is.
        found: String,
    },
    /// A record that is not a JSON object.
    #[error("{}: {location}: expected a JSON object, found {found}", path.display())]
    NotAnObject {
        /// The file.
        path: PathBuf,
        /// The record.
        location: Location,
        /// What the record is.
        found: &'static str,
    },
    /// The parquet reader failed: not a parquet file, truncated, or a codec that is not built in.
    #[error("cannot read parquet file {}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The reader's message.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// The configured field is not in the record (json) or not a column (parquet).
    #[error(
        "{}{}: no field `{field}` (available: {})",
        path.display(),
        location.map(|l| format!(": {l}")).unwrap_or_default(),
        list(available)
    )]
    MissingField {
        /// The file.
        path: PathBuf,
        /// The record (json); none for a parquet column missing from the schema.
        location: Option<Location>,
        /// The field as configured.
        field: String,
        /// The fields that are there, nested ones in dotted form.
        available: Vec<String>,
    },
    /// The field holds something that is not text, a number or a boolean, or the input is null.
    #[error(
        "{}: {location}: field `{field}` is {found}, expected a string, number or boolean",
        path.display()
    )]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The record.
        location: Location,
        /// The field as configured.
        field: String,
        /// What the field holds ("null", "an array", ...).
        found: String,
    },
    /// The file holds no records.
    #[error("dataset file {} has no records", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// At most this many field names are listed in a `MissingField` message.
const MAX_LISTED: usize = 40;

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    let shown = names.len().min(MAX_LISTED);
    let mut text = names[..shown].join(", ");
    if names.len() > shown {
        text.push_str(&format!(" and {} more", names.len() - shown));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_location_and_field() {
        let missing = DataError::MissingField {
            path: "data/train.jsonl".into(),
            location: Some(Location::Line(3)),
            field: "question".into(),
            available: vec!["prompt".into(), "meta.answer".into()],
        };
        assert_eq!(
            missing.to_string(),
            "data/train.jsonl: line 3: no field `question` (available: prompt, meta.answer)"
        );
        let column = DataError::MissingField {
            path: "train.parquet".into(),
            location: None,
            field: "q".into(),
            available: vec![],
        };
        assert_eq!(
            column.to_string(),
            "train.parquet: no field `q` (available: none)"
        );
        let wrong = DataError::WrongType {
            path: "t.parquet".into(),
            location: Location::Row(0),
            field: "answer".into(),
            found: "null".into(),
        };
        assert_eq!(
            wrong.to_string(),
            "t.parquet: row 0: field `answer` is null, expected a string, number or boolean"
        );
    }

    #[test]
    fn long_field_lists_are_cut() {
        let names: Vec<String> = (0..45).map(|i| format!("f{i}")).collect();
        let text = list(&names);
        assert!(text.starts_with("f0, f1, "), "{text}");
        assert!(text.ends_with("f39 and 5 more"), "{text}");
    }
}
