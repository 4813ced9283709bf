//! Errors of ppo-models.

/// What can go wrong when building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value is inconsistent; the message names the key.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// A precision name is neither `float32` nor `bfloat16`.
    #[error("unknown precision '{0}': expected float32 or bfloat16 (or f32, fp32, bf16)")]
    UnknownPrecision(String),
}
