//! Why a reward source could not be built. Failures while scoring are
//! [`ppo_core::RewardError`]s instead.

use std::path::PathBuf;

use ppo_models::hf::HfError;

/// What can go wrong when building a reward source from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum RewardBuildError {
    /// A [`crate::RegexVerifier`] pattern does not compile.
    #[error("invalid regex pattern {pattern:?}")]
    InvalidRegex {
        /// The pattern as given.
        pattern: String,
        /// The cause.
        #[source]
        source: regex::Error,
    },
    /// A [`crate::RemoteReward`] URL does not parse or is not `http`/`https`.
    #[error("invalid reward server URL {url:?}: {message}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// A request header has a name or value HTTP does not allow. The value is not repeated
    /// here: it may be a secret.
    #[error("invalid HTTP header {name:?}: {message}")]
    InvalidHeader {
        /// The header name as given.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// The HTTP client could not be created.
    #[error("failed to create the HTTP client for {url}")]
    HttpClient {
        /// The server URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A reward model checkpoint could not be loaded.
    #[error("failed to load the reward model from {dir}")]
    LoadModel {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: HfError,
    },
    /// A reward model's tokenizer could not be loaded.
    #[error("failed to load the reward model's tokenizer from {dir}")]
    LoadTokenizer {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: ppo_models::TokenizerError,
    },
    /// A configuration value is out of range.
    #[error("invalid reward configuration: `{key}` {message}")]
    InvalidConfig {
        /// The offending key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}
