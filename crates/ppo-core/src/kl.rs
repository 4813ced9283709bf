//! KL estimators between policy and reference, and the KL coefficient controllers.

use serde::{Deserialize, Serialize};

/// Per-token estimator of KL(π‖π_ref) from d = log π − log π_ref on sampled tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlEstimator {
    /// k1 = d (unbiased, can be negative per token).
    K1,
    /// k2 = d²/2.
    K2,
    /// k3 = (e^(−d) − 1) + d (unbiased, never negative).
    K3,
}

impl KlEstimator {
    /// The estimate for one token with log-ratio `d`.
    pub fn estimate(self, d: f64) -> f64 {
        match self {
            KlEstimator::K1 => d,
            KlEstimator::K2 => 0.5 * d * d,
            KlEstimator::K3 => (-d).exp() - 1.0 + d,
        }
    }
}

/// The KL penalty coefficient β: fixed, or adapted toward a target KL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KlController {
    /// β never changes.
    Fixed {
        /// β
        value: f64,
    },
    /// Proportional controller (Ziegler et al. 2019):
    /// e = clip(KL/target − 1, −0.2, 0.2); β ← β·(1 + e·n_steps/horizon).
    Adaptive {
        /// Current β.
        value: f64,
        /// KL the controller steers toward.
        target: f64,
        /// Number of samples over which β may change by the full error.
        horizon: f64,
    },
}

impl KlController {
    /// Current β.
    pub fn value(&self) -> f64 {
        match self {
            KlController::Fixed { value } | KlController::Adaptive { value, .. } => *value,
        }
    }

    /// Feeds the KL measured on a batch of `n_steps` samples.
    pub fn update(&mut self, current_kl: f64, n_steps: usize) {
        if let KlController::Adaptive {
            value,
            target,
            horizon,
        } = self
        {
            if !current_kl.is_finite() {
                return;
            }
            let error = (current_kl / *target - 1.0).clamp(-0.2, 0.2);
            *value *= 1.0 + error * n_steps as f64 / *horizon;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimators_hand_computed() {
        let d = 0.5f64;
        assert!((KlEstimator::K1.estimate(d) - 0.5).abs() < 1e-12);
        assert!((KlEstimator::K2.estimate(d) - 0.125).abs() < 1e-12);
        // e^-0.5 − 1 + 0.5 = 0.6065306597 − 0.5 = 0.1065306597
        assert!((KlEstimator::K3.estimate(d) - 0.106_530_659_7).abs() < 1e-9);
        assert!((KlEstimator::K3.estimate(-0.5) - (0.5f64.exp() - 1.5)).abs() < 1e-12);
        for e in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
            assert_eq!(e.estimate(0.0), 0.0);
        }
    }

    #[test]
    fn adaptive_controller_hand_computed_and_clipped() {
        let mut c = KlController::Adaptive {
            value: 0.1,
            target: 6.0,
            horizon: 10_000.0,
        };
        // KL 7.5: error = 0.25 → clipped 0.2; β = 0.1·(1 + 0.2·256/10000) = 0.100512
        c.update(7.5, 256);
        assert!((c.value() - 0.100_512).abs() < 1e-12);
        // KL 5.4: error = −0.1; β = 0.100512·(1 − 0.1·100/10000) = 0.100411488
        c.update(5.4, 100);
        assert!((c.value() - 0.100_411_488).abs() < 1e-12);
        let mut f = KlController::Fixed { value: 0.05 };
        f.update(100.0, 1000);
        assert_eq!(f.value(), 0.05);
    }
}
