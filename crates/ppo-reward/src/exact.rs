//! The exact-match verifier: the trimmed response against the trimmed reference.

use ppo_core::{Reward, RewardError, RewardInput};

use crate::excerpt::excerpt;

/// Scores a response 1 when, trimmed of surrounding whitespace, it equals the trimmed
/// reference, and 0 otherwise. A sample with no reference is an error of
/// [`Reward::score`].
#[derive(Clone, Debug, Default)]
pub struct ExactMatchVerifier {
    /// Compare ignoring case (Unicode lowercase of both sides).
    pub case_insensitive: bool,
}

impl ExactMatchVerifier {
    /// Whether `response` matches `reference` under this verifier's rules.
    pub fn matches(&self, response: &str, reference: &str) -> bool {
        let (response, reference) = (response.trim(), reference.trim());
        if self.case_insensitive {
            response.to_lowercase() == reference.to_lowercase()
        } else {
            response == reference
        }
    }
}

impl Reward for ExactMatchVerifier {
    fn name(&self) -> &str {
        "exact_match"
    }

    fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError> {
        batch
            .iter()
            .map(|input| {
                let reference = input.reference.ok_or_else(|| RewardError {
                    name: self.name().into(),
                    message: format!(
                        "prompt {:?} has no reference answer",
                        excerpt(input.prompt, 80)
                    ),
                })?;
                Ok(if self.matches(input.response, reference) {
                    1.0
                } else {
                    0.0
                })
            })
            .collect()
    }

    fn is_verifier(&self) -> bool {
        true
    }

    /// `None` when the sample has no reference.
    fn is_correct(&self, input: &RewardInput<'_>) -> Option<bool> {
        input
            .reference
            .map(|reference| self.matches(input.response, reference))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(response: &'a str, reference: Option<&'a str>) -> RewardInput<'a> {
        RewardInput {
            prompt: "Capital of France?",
            response,
            reference,
            finished: true,
        }
    }

    #[test]
    fn trimmed_equality() {
        let mut verifier = ExactMatchVerifier::default();
        let scores = verifier
            .score(&[
                input(" Paris\n", Some("Paris ")),
                input("paris", Some("Paris")),
                input("Paris.", Some("Paris")),
                input("", Some("")),
            ])
            .unwrap();
        assert_eq!(scores, [1.0, 0.0, 0.0, 1.0]);
        assert_eq!(
            verifier.is_correct(&input("Paris", Some("Paris"))),
            Some(true)
        );
        assert_eq!(
            verifier.is_correct(&input("Lyon", Some("Paris"))),
            Some(false)
        );
        assert_eq!(verifier.is_correct(&input("Paris", None)), None);
        assert!(verifier.is_verifier());
    }

    #[test]
    fn case_insensitive_option() {
        let mut verifier = ExactMatchVerifier {
            case_insensitive: true,
        };
        let scores = verifier
            .score(&[
                input("PARIS", Some("paris")),
                input("ÉTÉ", Some("été")),
                input("Pari", Some("paris")),
            ])
            .unwrap();
        assert_eq!(scores, [1.0, 1.0, 0.0]);
    }

    #[test]
    fn missing_reference_is_an_error_naming_the_prompt() {
        let err = ExactMatchVerifier::default()
            .score(&[input("Paris", None)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exact_match") && err.contains("Capital of France?"),
            "{err}"
        );
    }
}
