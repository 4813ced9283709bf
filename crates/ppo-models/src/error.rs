//! Errors of ppo-models.

/// What can go wrong when building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value is inconsistent; the message names the key.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
}
