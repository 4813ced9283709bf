//! Reward sources: the [`Reward`] trait and the rule rewards of the built-in tasks.

/// One scored sample: the prompt text, the sampled response and an optional reference.
#[derive(Clone, Copy, Debug)]
pub struct RewardInput<'a> {
    /// Prompt as the user wrote it (before any template).
    pub prompt: &'a str,
    /// Decoded response, without special tokens.
    pub response: &'a str,
    /// Reference answer from the dataset, when it has one.
    pub reference: Option<&'a str>,
    /// The response ended with EOS.
    pub finished: bool,
}

/// Why a reward source could not score a batch.
#[derive(Debug, thiserror::Error)]
#[error("reward '{name}' failed: {message}")]
pub struct RewardError {
    /// Name of the reward source.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

/// A batch of (prompt, response) pairs in, one score per pair out.
pub trait Reward: Send {
    /// Name used in logs and errors.
    fn name(&self) -> &str;
    /// Scores for `batch`, in order.
    fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError>;
    /// Whether scores are correctness (0 or 1), so their mean is an accuracy.
    fn is_verifier(&self) -> bool {
        false
    }
    /// Whether `input` is a correct answer, for sources that can tell (`eval_accuracy`).
    /// `None`: this source does not judge correctness.
    fn is_correct(&self, input: &RewardInput<'_>) -> Option<bool> {
        let _ = input;
        None
    }
    /// Counts about the last batch scored, reported with the iteration's metrics (e.g.
    /// `reward_truncated`: pairs a reward model cut to its length). Empty by default.
    fn last_metrics(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
}

/// Reward of the built-in `letters` task: the mean, over the response's characters, of 1 for
/// a character that appears in the reference, `partial_credit` for any other ASCII lowercase
/// letter, and 0 otherwise. An empty response scores 0. A response is *correct* (for
/// `eval_accuracy`) when, trimmed of whitespace, it equals the reference.
#[derive(Clone, Debug)]
pub struct CharMatchReward {
    /// Credit for a lowercase letter that is not the asked one.
    pub partial_credit: f64,
}

impl Default for CharMatchReward {
    fn default() -> Self {
        Self {
            partial_credit: 0.25,
        }
    }
}

impl Reward for CharMatchReward {
    fn name(&self) -> &str {
        "char_match"
    }

    fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError> {
        batch
            .iter()
            .map(|input| {
                let target = input.reference.ok_or_else(|| RewardError {
                    name: self.name().into(),
                    message: format!("prompt {:?} has no reference answer", input.prompt),
                })?;
                let chars: Vec<char> = input.response.chars().collect();
                if chars.is_empty() {
                    return Ok(0.0);
                }
                let credit: f64 = chars
                    .iter()
                    .map(|c| {
                        if target.contains(*c) {
                            1.0
                        } else if c.is_ascii_lowercase() {
                            self.partial_credit
                        } else {
                            0.0
                        }
                    })
                    .sum();
                Ok(credit / chars.len() as f64)
            })
            .collect()
    }

    fn is_correct(&self, input: &RewardInput<'_>) -> Option<bool> {
        input.reference.map(|r| input.response.trim() == r.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(response: &'a str, reference: Option<&'a str>) -> RewardInput<'a> {
        RewardInput {
            prompt: "p",
            response,
            reference,
            finished: true,
        }
    }

    #[test]
    fn char_match_hand_computed() {
        let mut r = CharMatchReward::default();
        let s = r
            .score(&[
                input("kkab", Some("k")),
                input("", Some("k")),
                input("K9好", Some("k")),
            ])
            .unwrap();
        // (1 + 1 + 0.25 + 0.25) / 4 = 0.625
        assert_eq!(s, vec![0.625, 0.0, 0.0]);
        assert_eq!(r.is_correct(&input(" k\n", Some("k"))), Some(true));
        assert_eq!(r.is_correct(&input("kk", Some("k"))), Some(false));
        assert_eq!(r.is_correct(&input("k", None)), None);
        let err = r.score(&[input("k", None)]).unwrap_err().to_string();
        assert!(
            err.contains("char_match") && err.contains("no reference"),
            "{err}"
        );
    }
}
