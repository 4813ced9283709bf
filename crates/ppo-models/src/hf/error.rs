//! Errors of the Hugging Face checkpoint loader; each names the file and the key or tensor.

use std::path::PathBuf;

use crate::ModelError;

/// What can go wrong when reading a Hugging Face checkpoint directory.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    /// A PEFT adapter was asked of a model without LoRA adapters.
    #[error("cannot write a LoRA adapter to {dir}: the model has no adapter")]
    NoAdapter {
        /// The directory that was to hold it.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("failed to read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is not valid JSON.
    #[error("failed to parse {path} as JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A `config.json` key is missing, mistyped or names something we do not implement.
    #[error("{path}: key `{key}`: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The resolved configuration does not describe a buildable model.
    #[error("{path}: invalid model configuration")]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// The cause, naming the key.
        #[source]
        source: ModelError,
    },
    /// The directory holds none of `model.safetensors`, `model.safetensors.index.json` and
    /// `pytorch_model.bin`.
    #[error("no model.safetensors, model.safetensors.index.json or pytorch_model.bin in {dir}")]
    NoWeights {
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// A safetensors header is malformed or does not match the file.
    #[error("{path} is not a valid safetensors file: {reason}")]
    BadSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `pytorch_model.bin` could not be parsed.
    #[error("{path} is not a readable PyTorch checkpoint: {reason}")]
    BadPytorch {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model needs a tensor the checkpoint does not have.
    #[error("tensor `{tensor}` is missing from {path}")]
    MissingTensor {
        /// Hugging Face tensor name.
        tensor: String,
        /// The file that should hold it (a shard, or the index that does not list it).
        path: PathBuf,
    },
    /// A tensor has a different shape than the configuration implies.
    #[error("tensor `{tensor}` in {path} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Hugging Face tensor name.
        tensor: String,
        /// The file.
        path: PathBuf,
        /// Shape implied by `config.json`, in PyTorch's layout (`[out, in]` for Linear).
        expected: Vec<usize>,
        /// Shape stored in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype other than F32, BF16 or F16.
    #[error("tensor `{tensor}` in {path} has dtype {dtype}; only F32, BF16 and F16 are supported")]
    UnsupportedDtype {
        /// Hugging Face tensor name.
        tensor: String,
        /// The file.
        path: PathBuf,
        /// The dtype found.
        dtype: String,
    },
    /// The checkpoint has a tensor the model has no parameter for (loading it silently would
    /// change the function computed, e.g. an `o_proj.bias`).
    #[error("tensor `{tensor}` in {path} has no parameter in the model")]
    UnexpectedTensor {
        /// Hugging Face tensor name.
        tensor: String,
        /// The file.
        path: PathBuf,
    },
}
