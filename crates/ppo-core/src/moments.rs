//! Running mean and standard deviation of scores, merged batch by batch (Chan et al.).

use serde::{Deserialize, Serialize};

/// Running moments of every value seen so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningMoments {
    /// Values seen.
    pub count: f64,
    /// Their mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl RunningMoments {
    /// Adds a batch of values.
    pub fn update(&mut self, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let m2: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
        let total = self.count + n;
        let delta = mean - self.mean;
        self.mean += delta * n / total;
        self.m2 += m2 + delta * delta * self.count * n / total;
        self.count = total;
    }

    /// Population standard deviation of everything seen (1 before any value).
    pub fn std(&self) -> f64 {
        if self.count > 0.0 {
            (self.m2 / self.count).sqrt()
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_merge_to_the_moments_of_everything() {
        let mut m = RunningMoments::default();
        m.update(&[1.0, 2.0]);
        m.update(&[3.0, 4.0, 5.0]);
        assert!((m.mean - 3.0).abs() < 1e-12);
        assert!((m.std() - 2f64.sqrt()).abs() < 1e-12);
    }
}
