//! Error type for invalid schedule configurations and inconsistent resumed state.

use thiserror::Error;

/// Why a [`ScheduleConfig`](crate::ScheduleConfig) or a
/// [`SchedulerState`](crate::SchedulerState) was rejected.
///
/// Every message starts with the name of the offending configuration key (or,
/// for resumed state, the `state.` field path) so it can be traced back to the
/// config file.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum SchedError {
    /// `learning_rate` is not a finite number greater than zero.
    #[error("learning_rate ({0:e}) must be finite and greater than 0")]
    InvalidLearningRate(f64),

    /// `min_lr` is negative, NaN or infinite.
    #[error("min_lr ({0:e}) must be finite and at least 0")]
    InvalidMinLr(f64),

    /// `min_lr` is larger than `learning_rate`.
    #[error("min_lr ({min_lr:e}) must not exceed learning_rate ({learning_rate:e})")]
    MinLrAboveLearningRate {
        /// The configured floor.
        min_lr: f64,
        /// The configured peak learning rate.
        learning_rate: f64,
    },

    /// `warmup_steps` is larger than `total_steps` for a schedule with a decay horizon.
    #[error(
        "warmup_steps ({warmup_steps}) must not exceed total_steps ({total_steps}) \
         for the {kind} schedule"
    )]
    WarmupExceedsTotal {
        /// The configured warmup length.
        warmup_steps: u64,
        /// The configured total number of optimiser steps.
        total_steps: u64,
        /// Name of the schedule kind (as written in config files).
        kind: &'static str,
    },

    /// `total_steps` is zero for a schedule that decays over `total_steps`.
    #[error("total_steps must be greater than 0 for the {kind} schedule")]
    ZeroTotalSteps {
        /// Name of the schedule kind (as written in config files).
        kind: &'static str,
    },

    /// `num_cycles` of the `cosine_with_restarts` schedule is zero.
    #[error("num_cycles (0) must be at least 1 for the cosine_with_restarts schedule")]
    ZeroCycles,

    /// `decay_fraction` of the `wsd` schedule is outside `(0, 1]`.
    #[error("decay_fraction ({0}) must be in (0, 1] for the wsd schedule")]
    InvalidDecayFraction(f64),

    /// `factor` of the `plateau` schedule is outside `(0, 1)`.
    #[error("factor ({0}) must be in (0, 1) for the plateau schedule")]
    InvalidFactor(f64),

    /// `threshold` of the `plateau` schedule is negative, NaN or infinite.
    #[error("threshold ({0}) must be finite and at least 0 for the plateau schedule")]
    InvalidThreshold(f64),

    /// A resumed [`SchedulerState`](crate::SchedulerState) does not fit the configuration.
    #[error("{key}: {reason}")]
    InvalidState {
        /// Path of the offending state field, e.g. `state.plateau.lr`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}
