//! Errors of ppo-core.

/// What can go wrong in a PPO iteration.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A configuration value is out of range.
    #[error("invalid PpoConfig field `{field}`: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: crate::PpoField,
        /// Why it is rejected.
        reason: String,
    },
    /// The reward source failed.
    #[error(transparent)]
    Reward(#[from] crate::RewardError),
    /// The reward source returned the wrong number of scores or a non-finite one.
    #[error("reward '{name}' returned {got} scores for {expected} samples, or a non-finite score")]
    BadScores {
        /// Reward name.
        name: String,
        /// Scores returned.
        got: usize,
        /// Samples sent.
        expected: usize,
    },
    /// A critic was given to a critic-free estimator, or none to GAE.
    #[error(
        "advantage_estimator {estimator:?} {}",
        if *given { "builds no critic, but one was given" } else { "needs a critic, but none was given" }
    )]
    CriticMismatch {
        /// The estimator's config name.
        estimator: &'static str,
        /// Whether a critic was given.
        given: bool,
    },
    /// Optimiser steps were skipped `count` times in a row for a NaN or infinite loss or
    /// gradient.
    #[error(
        "{count} optimiser steps in a row were skipped for a NaN or infinite loss or gradient \
         (max_consecutive_skips = {count}); the weights were left as they were before them. \
         Lower the learning rate or max_grad_norm, check the reward for extreme scores, or \
         resume from an earlier checkpoint"
    )]
    TooManySkippedSteps {
        /// Steps skipped in a row.
        count: usize,
    },
    /// A batch had no prompt.
    #[error("empty prompt batch")]
    EmptyBatch,
    /// Optimiser state could not be serialised or restored.
    #[error("failed to {action} the {model} optimiser state: {message}")]
    OptimizerState {
        /// "save" or "restore".
        action: &'static str,
        /// "policy" or "critic".
        model: &'static str,
        /// burn's message.
        message: String,
    },
    /// A learning-rate schedule state could not be restored.
    #[error(transparent)]
    Schedule(#[from] ppo_sched::SchedError),
}
