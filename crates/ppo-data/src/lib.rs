//! Prompt datasets from files: jsonl, json and parquet (as written by pyarrow, pandas and
//! Hugging Face `datasets`), with a configurable field for the prompt and one for the
//! reference answer.
//!
//! Each `[[data.sources]]` table of the config is a [`DataSource`]; [`load_sources`] reads
//! them in order into [`Record`]s. Mixing, shuffling, the global `max_samples` and the eval
//! split are the trainer's business, not this crate's.
//!
//! ```toml
//! [data]
//! task = "files"
//!
//! [[data.sources]]                 # GSM8K as downloaded from the Hugging Face Hub
//! path = "data/gsm8k/train-00000-of-00001.parquet"
//! input = "question"
//! output = "answer"                # "... #### 72"
//!
//! [[data.sources]]
//! path = "data/extra.data"
//! type = "jsonl"                   # the extension says nothing: name the format
//! input = "meta.prompt"            # key `prompt` of the object in key `meta`
//! max_samples = 500                # the first 500 records of this file
//! ```
//!
//! - jsonl (`.jsonl`, `.ndjson`): one JSON object per line, blank lines skipped.
//! - json (`.json`): an array of objects, or an object whose only field is that array
//!   (`{"data": [...]}`).
//! - parquet (`.parquet`): uncompressed, snappy, gzip, zstd and lz4 (not brotli); string,
//!   large_string, binary (UTF-8), integer, float, decimal and boolean columns; struct
//!   columns addressed as `struct.field`.
//!
//! Strings are kept as they are; numbers and booleans become their text. A null or missing
//! input is an error, as is any value that is not a scalar; a null output means "no
//! reference". Every [`DataError`] names the file, and the line or row and the field where
//! there is one.

mod error;
mod field;
mod json;
mod parquet_file;
mod source;

pub use error::{DataError, Location};
pub use source::{DEFAULT_INPUT_FIELD, DataFormat, DataSource, Record, load_source, load_sources};
