//! Early stopping on an evaluation metric that should rise (the evaluation reward).

use serde::{Deserialize, Serialize};

/// What one evaluation meant for early stopping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StopDecision {
    /// A new best value (better than the previous best by more than the threshold).
    Improved {
        /// The previous best, if any.
        previous: Option<f64>,
    },
    /// Not better by more than the threshold; `bad_evals` in a row so far.
    NoImprovement {
        /// Evaluations in a row without improvement.
        bad_evals: u32,
    },
    /// `patience` evaluations in a row without improvement: stop training.
    Stop {
        /// Best value seen.
        best: f64,
        /// Evaluations in a row without improvement.
        bad_evals: u32,
    },
}

/// Stops when the monitored value has not exceeded `best + threshold` for `patience`
/// evaluations in a row. `patience = 0` disables stopping (the best value is still tracked).
/// The whole state is serialisable, so a resumed run continues the count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Evaluations without improvement before stopping (0 = never stop).
    pub patience: u32,
    /// Minimum rise over the best value that counts as an improvement.
    pub threshold: f64,
    /// Best value seen so far.
    pub best: Option<f64>,
    /// Step of the best value.
    pub best_step: Option<u64>,
    /// Evaluations in a row without improvement.
    pub bad_evals: u32,
}

impl EarlyStopping {
    /// Fresh state.
    pub fn new(patience: u32, threshold: f64) -> Self {
        Self {
            patience,
            threshold,
            best: None,
            best_step: None,
            bad_evals: 0,
        }
    }

    /// Records the evaluation `value` taken at `step`. A NaN value never improves.
    pub fn observe(&mut self, step: u64, value: f64) -> StopDecision {
        let improved = match self.best {
            None => !value.is_nan(),
            Some(best) => value > best + self.threshold,
        };
        if improved {
            let previous = self.best.replace(value);
            self.best_step = Some(step);
            self.bad_evals = 0;
            return StopDecision::Improved { previous };
        }
        self.bad_evals += 1;
        match self.best {
            Some(best) if self.patience > 0 && self.bad_evals >= self.patience => {
                StopDecision::Stop {
                    best,
                    bad_evals: self.bad_evals,
                }
            }
            _ => StopDecision::NoImprovement {
                bad_evals: self.bad_evals,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_evaluations_without_enough_improvement() {
        let mut es = EarlyStopping::new(2, 0.01);
        assert_eq!(
            es.observe(10, 0.5),
            StopDecision::Improved { previous: None }
        );
        // +0.005 is below the threshold: no improvement
        assert_eq!(
            es.observe(20, 0.505),
            StopDecision::NoImprovement { bad_evals: 1 }
        );
        // a real improvement resets the count
        assert_eq!(
            es.observe(30, 0.52),
            StopDecision::Improved {
                previous: Some(0.5)
            }
        );
        assert_eq!(es.best_step, Some(30));
        assert_eq!(
            es.observe(40, 0.1),
            StopDecision::NoImprovement { bad_evals: 1 }
        );
        assert_eq!(
            es.observe(50, 0.529),
            StopDecision::Stop {
                best: 0.52,
                bad_evals: 2
            }
        );
    }

    #[test]
    fn patience_zero_never_stops_and_nan_never_improves() {
        let mut es = EarlyStopping::new(0, 0.0);
        assert_eq!(
            es.observe(1, f64::NAN),
            StopDecision::NoImprovement { bad_evals: 1 }
        );
        es.observe(2, 1.0);
        for step in 3..20 {
            assert!(!matches!(es.observe(step, 0.0), StopDecision::Stop { .. }));
        }
        assert_eq!(es.best, Some(1.0));
    }

    #[test]
    fn state_round_trips() {
        let mut es = EarlyStopping::new(5, 0.001);
        es.observe(3, 0.25);
        es.observe(6, 0.2);
        let json = serde_json::to_string(&es).unwrap();
        let back: EarlyStopping = serde_json::from_str(&json).unwrap();
        assert_eq!(back, es);
    }
}
