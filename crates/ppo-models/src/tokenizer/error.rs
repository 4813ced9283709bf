//! Errors of the Hugging Face tokenizer; each names the file and the key, token or template.

use std::path::PathBuf;
use std::sync::Arc;

/// What can go wrong when loading a Hugging Face tokenizer directory or rendering its chat
/// template.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A file could not be read (for `tokenizer.json`: it is missing).
    #[error("failed to read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The directory has a SentencePiece `spm.model` but no `tokenizer.json`.
    #[error(
        "{dir} has spm.model but no tokenizer.json; convert it once with transformers \
         (pip install transformers sentencepiece protobuf): python -c \"from transformers \
         import AutoTokenizer; AutoTokenizer.from_pretrained('{dir}').save_pretrained('{dir}')\""
    )]
    OnlySentencePiece {
        /// The tokenizer directory.
        dir: PathBuf,
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
    /// The tokenizers library rejects `tokenizer.json` (invalid JSON or an unknown component).
    #[error("failed to load {path} with the tokenizers library")]
    TokenizerJson {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A key has the wrong type or an unusable value.
    #[error("{path}: key `{key}`: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A special token named in the configuration is not in the vocabulary.
    #[error("{path}: key `{key}`: token {token:?} is not in the vocabulary of tokenizer.json")]
    UnknownToken {
        /// The file that names the token.
        path: PathBuf,
        /// The key naming it (`eos_token`, `pad_token`, …).
        key: String,
        /// The token.
        token: String,
    },
    /// Neither `tokenizer_config.json` nor `generation_config.json` names an end-of-sequence
    /// token.
    #[error(
        "{dir}: no end-of-sequence token (no `eos_token` in tokenizer_config.json and no \
         `eos_token_id` in generation_config.json)"
    )]
    NoEosToken {
        /// The tokenizer directory.
        dir: PathBuf,
    },
    /// The chat template is needed but the directory has none.
    #[error(
        "{dir} has no chat template (no chat_template.jinja and no `chat_template` in \
         tokenizer_config.json); turn use_chat_template off for this tokenizer"
    )]
    NoChatTemplate {
        /// The tokenizer directory.
        dir: PathBuf,
    },
    /// The chat template does not parse (or uses syntax the renderer does not support).
    #[error("chat template in {path} does not parse")]
    TemplateSyntax {
        /// The file holding the template (`chat_template.jinja` or `tokenizer_config.json`).
        path: PathBuf,
        /// The cause, with the line.
        #[source]
        source: Arc<minijinja::Error>,
    },
    /// The chat template failed while rendering (e.g. it called `raise_exception`).
    #[error("chat template in {path} failed to render")]
    TemplateRender {
        /// The file holding the template.
        path: PathBuf,
        /// The cause, with the line.
        #[source]
        source: minijinja::Error,
    },
    /// The tokenizers library failed to decode token ids.
    #[error("{path}: failed to decode token ids")]
    Decode {
        /// The `tokenizer.json` in use.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The tokenizers library failed to encode text.
    #[error("{path}: failed to encode text")]
    Encode {
        /// The `tokenizer.json` in use.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
