//! Reduce-on-plateau: configuration, state and the per-evaluation update rule
//! (same semantics as PyTorch's `ReduceLROnPlateau`).

use serde::{Deserialize, Serialize};

use crate::error::SchedError;

/// Whether the monitored metric should go down or up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateauMode {
    /// Lower is better (e.g. a loss).
    Min,
    /// Higher is better (e.g. a reward).
    Max,
}

/// How `threshold` defines a significant improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// Relative: better than `best * (1 - threshold)` (min) or `best * (1 + threshold)` (max).
    Rel,
    /// Absolute: better than `best - threshold` (min) or `best + threshold` (max).
    Abs,
}

/// Reduce-on-plateau parameters. Missing fields take the PyTorch defaults
/// (see [`PlateauConfig::default`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlateauConfig {
    /// Direction of improvement of the monitored metric.
    pub mode: PlateauMode,
    /// Multiplier applied on a reduction, in `(0, 1)`.
    pub factor: f64,
    /// Number of consecutive non-improving evaluations tolerated; the
    /// reduction happens on the `patience + 1`-th one.
    pub patience: u32,
    /// Minimal significant improvement (finite, `>= 0`), see [`ThresholdMode`].
    pub threshold: f64,
    /// Relative or absolute interpretation of `threshold`.
    pub threshold_mode: ThresholdMode,
    /// Number of evaluations after a reduction during which non-improving
    /// evaluations are not counted.
    pub cooldown: u32,
}

impl Default for PlateauConfig {
    /// PyTorch's defaults: `min`, factor 0.1, patience 10, threshold 1e-4 `rel`, cooldown 0.
    fn default() -> Self {
        Self {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
        }
    }
}

impl PlateauConfig {
    /// Checks `factor` and `threshold`; the error names the offending key.
    pub fn validate(&self) -> Result<(), SchedError> {
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return Err(SchedError::InvalidFactor(self.factor));
        }
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return Err(SchedError::InvalidThreshold(self.threshold));
        }
        Ok(())
    }

    /// Whether `metric` is a significant improvement over `best`
    /// (`None` = nothing observed yet). Non-finite metrics never improve.
    pub fn is_improvement(&self, metric: f64, best: Option<f64>) -> bool {
        if !metric.is_finite() {
            return false;
        }
        let Some(best) = best else {
            return true;
        };
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => metric < best * (1.0 - self.threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => metric < best - self.threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => metric > best * (1.0 + self.threshold),
            (PlateauMode::Max, ThresholdMode::Abs) => metric > best + self.threshold,
        }
    }
}

/// Mutable reduce-on-plateau bookkeeping, part of [`SchedulerState`](crate::SchedulerState).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    /// Current post-warmup learning rate (starts at `learning_rate`, only ever reduced).
    pub lr: f64,
    /// Best metric seen so far (`None` before the first finite evaluation).
    pub best: Option<f64>,
    /// Consecutive non-improving evaluations counted towards `patience`.
    pub num_bad_evals: u32,
    /// Evaluations left in the current cooldown.
    pub cooldown_counter: u32,
}

impl PlateauState {
    /// Fresh state starting at the peak learning rate.
    pub fn new(learning_rate: f64) -> Self {
        Self {
            lr: learning_rate,
            best: None,
            num_bad_evals: 0,
            cooldown_counter: 0,
        }
    }

    /// Records one evaluation of the monitored metric and reduces `lr` to
    /// `max(lr * factor, min_lr)` after more than `patience` consecutive
    /// non-improving evaluations outside cooldown. Returns `true` when the
    /// learning rate actually decreased.
    pub fn observe(&mut self, config: &PlateauConfig, min_lr: f64, metric: f64) -> bool {
        if config.is_improvement(metric, self.best) {
            self.best = Some(metric);
            self.num_bad_evals = 0;
        } else {
            self.num_bad_evals = self.num_bad_evals.saturating_add(1);
        }

        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_evals = 0;
        }

        if self.num_bad_evals > config.patience {
            self.cooldown_counter = config.cooldown;
            self.num_bad_evals = 0;
            let old = self.lr;
            self.lr = (old * config.factor).max(min_lr);
            return self.lr < old;
        }
        false
    }

    /// Checks that this state can belong to a scheduler with this config.
    pub(crate) fn validate(
        &self,
        config: &PlateauConfig,
        learning_rate: f64,
        min_lr: f64,
    ) -> Result<(), SchedError> {
        if !(self.lr.is_finite() && self.lr >= min_lr && self.lr <= learning_rate) {
            return Err(SchedError::InvalidState {
                key: "state.plateau.lr",
                reason: format!(
                    "{:e} must lie between min_lr ({min_lr:e}) and learning_rate ({learning_rate:e})",
                    self.lr
                ),
            });
        }
        if let Some(best) = self.best
            && !best.is_finite()
        {
            return Err(SchedError::InvalidState {
                key: "state.plateau.best",
                reason: format!("{best} must be finite"),
            });
        }
        if self.num_bad_evals > config.patience {
            return Err(SchedError::InvalidState {
                key: "state.plateau.num_bad_evals",
                reason: format!(
                    "{} must not exceed patience ({})",
                    self.num_bad_evals, config.patience
                ),
            });
        }
        if self.cooldown_counter > config.cooldown {
            return Err(SchedError::InvalidState {
                key: "state.plateau.cooldown_counter",
                reason: format!(
                    "{} must not exceed cooldown ({})",
                    self.cooldown_counter, config.cooldown
                ),
            });
        }
        Ok(())
    }
}
