//! Prompt samples, the built-in task, and a resumable, seeded order over a dataset.

use ppo_models::Rng;
use serde::{Deserialize, Serialize};

/// One training prompt with its optional reference answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptSample {
    /// Prompt text.
    pub prompt: String,
    /// Reference answer (used by rule rewards and verifiers).
    pub reference: Option<String>,
}

/// The built-in `letters` task: "write the letter k" in English or Chinese, reference "k".
/// Deterministic in `seed`.
pub fn letters_task(n: usize, seed: u64) -> Vec<PromptSample> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let letter = char::from(b'a' + rng.below(26) as u8);
            let prompt = if rng.below(2) == 0 {
                format!("Write the letter {letter}: ")
            } else {
                format!("写字母 {letter}：")
            };
            PromptSample {
                prompt,
                reference: Some(letter.to_string()),
            }
        })
        .collect()
}

/// Where a run is in its data: epoch and position in that epoch's shuffled order. The order
/// of epoch `e` is a pure function of `(seed, e)`, so this small state resumes it exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataOrder {
    /// Number of samples in the dataset.
    pub len: usize,
    /// Shuffle seed.
    pub seed: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Next position in the current epoch's order.
    pub position: usize,
}

impl DataOrder {
    /// Start of epoch 0.
    pub fn new(len: usize, seed: u64) -> Self {
        Self {
            len,
            seed,
            epoch: 0,
            position: 0,
        }
    }

    /// The shuffled indices of `epoch`.
    pub fn permutation(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        Rng::new(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)).shuffle(&mut order);
        order
    }

    /// The next `batch_size` indices. A batch never straddles two epochs: when fewer than
    /// `batch_size` samples remain, the epoch ends (the remainder is dropped) and the batch
    /// comes from the next epoch. Returns the indices and whether an epoch ended first.
    pub fn next_batch(&mut self, batch_size: usize) -> (Vec<usize>, bool) {
        let mut epoch_ended = false;
        if self.position + batch_size > self.len {
            self.epoch += 1;
            self.position = 0;
            epoch_ended = true;
        }
        let order = self.permutation(self.epoch);
        let end = (self.position + batch_size).min(self.len);
        let batch = order[self.position..end].to_vec();
        self.position = end;
        (batch, epoch_ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_task_is_seeded_and_has_references() {
        let a = letters_task(20, 1);
        assert_eq!(a, letters_task(20, 1));
        assert_ne!(a, letters_task(20, 2));
        for s in &a {
            let r = s.reference.as_deref().unwrap();
            assert!(s.prompt.contains(r));
        }
        assert!(a.iter().any(|s| s.prompt.starts_with('写')));
    }

    #[test]
    fn order_covers_each_epoch_and_resumes_from_its_state() {
        let mut order = DataOrder::new(10, 7);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (b, ended) = order.next_batch(3);
            assert!(!ended);
            seen.extend(b);
        }
        // 9 of 10 seen; the next batch starts epoch 1
        let saved = order;
        let (b, ended) = order.next_batch(3);
        assert!(ended);
        assert_eq!(order.epoch, 1);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 9);
        let mut resumed = saved;
        assert_eq!(resumed.next_batch(3).0, b);
        assert_ne!(order.permutation(0), order.permutation(1));
    }
}
