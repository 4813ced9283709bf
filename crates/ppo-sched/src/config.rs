//! Schedule configuration (what the user writes in a config file) and its validation.

use serde::{Deserialize, Serialize};

use crate::error::SchedError;
use crate::plateau::PlateauConfig;

/// Learning-rate schedule configuration.
///
/// Every schedule starts with a linear warmup (which may be empty) and then
/// follows its [`ScheduleKind`]. With `w = warmup_steps` and `s` the number of
/// optimiser steps taken so far, the warmup phase is
///
/// ```text
/// lr(s) = learning_rate * (s + 1) / (w + 1)        for s < w
/// ```
///
/// so the first step already uses a positive learning rate, the ramp is
/// strictly increasing and `lr(w) = learning_rate` (the start of the
/// post-warmup phase). During warmup the learning rate may be below `min_lr`;
/// afterwards it never is.
///
/// Serialised form (e.g. TOML):
///
/// ```toml
/// learning_rate = 1e-5
/// min_lr = 1e-6
/// warmup_steps = 100
/// total_steps = 10000
/// kind = { type = "cosine" }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Peak (base) learning rate, reached at the end of warmup. Finite and `> 0`.
    pub learning_rate: f64,
    /// Floor of the learning rate after warmup. `0 <= min_lr <= learning_rate`.
    pub min_lr: f64,
    /// Number of linear warmup steps (`0` disables warmup).
    pub warmup_steps: u64,
    /// Total number of optimiser steps planned. Decaying kinds decay over
    /// `total_steps - warmup_steps` steps and stay at `min_lr` from step
    /// `total_steps` on. Ignored by `constant` and `plateau`.
    pub total_steps: u64,
    /// Shape of the schedule after warmup.
    pub kind: ScheduleKind,
}

/// Shape of the learning-rate schedule after warmup.
///
/// In the formulas below `t = s - warmup_steps` is the number of post-warmup
/// steps taken, `T = total_steps - warmup_steps` the decay horizon,
/// `peak = learning_rate` and `min = min_lr`. For `s >= total_steps` every
/// decaying kind returns `min`. If `T == 0` there is no decay phase and the
/// learning rate drops to `min` right after warmup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleKind {
    /// `lr = peak` forever.
    Constant,
    /// Linear decay: `lr = min + (peak - min) * (T - t) / T`.
    Linear,
    /// Cosine decay: `lr = min + (peak - min) * (1 + cos(pi * t / T)) / 2`.
    Cosine,
    /// Cosine decay with hard restarts: the horizon is split into
    /// `num_cycles` equal cycles, each a full cosine decay from `peak` to
    /// `min`: `lr = min + (peak - min) * (1 + cos(pi * frac(num_cycles * t / T))) / 2`.
    CosineWithRestarts {
        /// Number of cosine cycles within the decay horizon (`>= 1`).
        num_cycles: u32,
    },
    /// Warmup-stable-decay: `lr = peak` until the last `D` post-warmup steps,
    /// then linear decay `lr = min + (peak - min) * (total_steps - s) / D`,
    /// where `D = round(decay_fraction * T)` clamped to `[1, T]`.
    Wsd {
        /// Fraction of the post-warmup steps used for the final decay, in `(0, 1]`.
        decay_fraction: f64,
    },
    /// Reduce on plateau of a monitored metric (see [`PlateauConfig`] and
    /// [`Scheduler::observe`](crate::Scheduler::observe)).
    Plateau(PlateauConfig),
}

impl ScheduleKind {
    /// The kind's name as written in the `type` field of config files.
    pub fn name(&self) -> &'static str {
        match self {
            ScheduleKind::Constant => "constant",
            ScheduleKind::Linear => "linear",
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::CosineWithRestarts { .. } => "cosine_with_restarts",
            ScheduleKind::Wsd { .. } => "wsd",
            ScheduleKind::Plateau(_) => "plateau",
        }
    }

    /// Whether this kind decays over `total_steps` (and so needs a horizon).
    pub fn has_horizon(&self) -> bool {
        !matches!(self, ScheduleKind::Constant | ScheduleKind::Plateau(_))
    }
}

impl ScheduleConfig {
    /// Checks every field; the error names the first offending key.
    pub fn validate(&self) -> Result<(), SchedError> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(SchedError::InvalidLearningRate(self.learning_rate));
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0) {
            return Err(SchedError::InvalidMinLr(self.min_lr));
        }
        if self.min_lr > self.learning_rate {
            return Err(SchedError::MinLrAboveLearningRate {
                min_lr: self.min_lr,
                learning_rate: self.learning_rate,
            });
        }
        if self.kind.has_horizon() {
            if self.total_steps == 0 {
                return Err(SchedError::ZeroTotalSteps {
                    kind: self.kind.name(),
                });
            }
            if self.warmup_steps > self.total_steps {
                return Err(SchedError::WarmupExceedsTotal {
                    warmup_steps: self.warmup_steps,
                    total_steps: self.total_steps,
                    kind: self.kind.name(),
                });
            }
        }
        match &self.kind {
            ScheduleKind::Constant | ScheduleKind::Linear | ScheduleKind::Cosine => Ok(()),
            ScheduleKind::CosineWithRestarts { num_cycles } => {
                if *num_cycles == 0 {
                    Err(SchedError::ZeroCycles)
                } else {
                    Ok(())
                }
            }
            ScheduleKind::Wsd { decay_fraction } => {
                if *decay_fraction > 0.0 && *decay_fraction <= 1.0 {
                    Ok(())
                } else {
                    Err(SchedError::InvalidDecayFraction(*decay_fraction))
                }
            }
            ScheduleKind::Plateau(plateau) => plateau.validate(),
        }
    }

    /// Learning rate after `step` optimiser steps, ignoring any plateau
    /// reductions (for `plateau` this is the unreduced warmup-then-constant
    /// curve). Useful for plotting a schedule; [`Scheduler::lr`](crate::Scheduler::lr)
    /// is the stateful equivalent. Assumes the config is valid.
    pub fn lr_at(&self, step: u64) -> f64 {
        crate::schedule::lr_at(self, step, self.learning_rate)
    }
}
