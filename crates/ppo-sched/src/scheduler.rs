//! The stateful scheduler driven by the training loop, and its serialisable state.

use serde::{Deserialize, Serialize};

use crate::config::{ScheduleConfig, ScheduleKind};
use crate::error::SchedError;
use crate::plateau::PlateauState;
use crate::schedule;

/// Everything a [`Scheduler`] needs, besides its config, to resume exactly
/// where it left off (e.g. from a checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerState {
    /// Number of [`Scheduler::step`] calls so far.
    pub steps_taken: u64,
    /// Reduce-on-plateau bookkeeping; `Some` exactly for the `plateau` kind.
    pub plateau: Option<PlateauState>,
}

/// Learning-rate scheduler: call [`lr`](Self::lr) before each optimiser step,
/// [`step`](Self::step) after it, and [`observe`](Self::observe) after each
/// evaluation of the monitored metric.
#[derive(Clone, Debug)]
pub struct Scheduler {
    config: ScheduleConfig,
    steps_taken: u64,
    plateau: Option<PlateauState>,
}

impl Scheduler {
    /// A fresh scheduler at step 0. Fails if the config is invalid.
    pub fn new(config: ScheduleConfig) -> Result<Self, SchedError> {
        config.validate()?;
        let plateau = match config.kind {
            ScheduleKind::Plateau(_) => Some(PlateauState::new(config.learning_rate)),
            _ => None,
        };
        Ok(Self {
            config,
            steps_taken: 0,
            plateau,
        })
    }

    /// Resumes from a state previously returned by [`state`](Self::state).
    /// Fails if the config is invalid or the state cannot belong to it (plateau
    /// state present for a non-plateau kind or missing for a plateau kind,
    /// plateau LR outside `[min_lr, learning_rate]`, counters above
    /// `patience`/`cooldown`, non-finite best metric).
    pub fn from_state(config: ScheduleConfig, state: SchedulerState) -> Result<Self, SchedError> {
        config.validate()?;
        match (&config.kind, &state.plateau) {
            (ScheduleKind::Plateau(plateau_config), Some(plateau)) => {
                plateau.validate(plateau_config, config.learning_rate, config.min_lr)?;
            }
            (ScheduleKind::Plateau(_), None) => {
                return Err(SchedError::InvalidState {
                    key: "state.plateau",
                    reason: "missing, but the plateau schedule needs it".to_owned(),
                });
            }
            (kind, Some(_)) => {
                return Err(SchedError::InvalidState {
                    key: "state.plateau",
                    reason: format!("present, but the {} schedule has none", kind.name()),
                });
            }
            (_, None) => {}
        }
        Ok(Self {
            config,
            steps_taken: state.steps_taken,
            plateau: state.plateau,
        })
    }

    /// Learning rate to use for the next optimiser step (the step with index
    /// [`steps_taken`](Self::steps_taken)).
    pub fn lr(&self) -> f64 {
        let base = self
            .plateau
            .as_ref()
            .map_or(self.config.learning_rate, |p| p.lr);
        schedule::lr_at(&self.config, self.steps_taken, base)
    }

    /// Advances the schedule after one optimiser step.
    pub fn step(&mut self) {
        self.steps_taken = self.steps_taken.saturating_add(1);
    }

    /// Reports one evaluation of the monitored metric.
    ///
    /// For the `plateau` kind this applies the `ReduceLROnPlateau` rule and
    /// returns `true` when it reduced the learning rate. NaN and infinite
    /// metrics count as not improved. Evaluations made during warmup
    /// (`steps_taken < warmup_steps`) are ignored entirely, so reductions only
    /// ever happen after warmup. For every other kind this is a no-op
    /// returning `false`.
    pub fn observe(&mut self, metric: f64) -> bool {
        let (ScheduleKind::Plateau(plateau_config), Some(plateau)) =
            (&self.config.kind, self.plateau.as_mut())
        else {
            return false;
        };
        if self.steps_taken < self.config.warmup_steps {
            return false;
        }
        plateau.observe(plateau_config, self.config.min_lr, metric)
    }

    /// Number of [`step`](Self::step) calls so far.
    pub fn steps_taken(&self) -> u64 {
        self.steps_taken
    }

    /// Snapshot of the mutable state, for checkpointing.
    pub fn state(&self) -> SchedulerState {
        SchedulerState {
            steps_taken: self.steps_taken,
            plateau: self.plateau.clone(),
        }
    }

    /// The (validated) configuration.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }
}
