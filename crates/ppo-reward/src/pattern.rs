//! The regex verifier: the answer captured by the last match of a pattern against the
//! reference.

use ppo_core::{Reward, RewardError, RewardInput};
use regex::Regex;

use crate::RewardBuildError;

/// Scores a response 1 when its answer equals the reference, and 0 otherwise.
///
/// The answer is taken from the *last* match of the pattern in the response: its capture
/// group 1 when the pattern has one and it took part in that match, else the whole match.
/// It is correct when, trimmed, it equals the trimmed reference. A sample with no reference
/// is correct when the pattern matches at all (a format check).
///
/// Patterns use the [`regex`] crate's syntax; flags go inline, e.g. `(?i)answer: (\w+)`.
#[derive(Clone, Debug)]
pub struct RegexVerifier {
    pattern: Regex,
}

impl RegexVerifier {
    /// A verifier for `pattern`; an invalid pattern is an error naming it.
    pub fn new(pattern: &str) -> Result<Self, RewardBuildError> {
        let compiled = Regex::new(pattern).map_err(|source| RewardBuildError::InvalidRegex {
            pattern: pattern.into(),
            source,
        })?;
        Ok(Self { pattern: compiled })
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// The answer in `response` (see the type's doc), or `None` when the pattern does not
    /// match.
    pub fn answer<'a>(&self, response: &'a str) -> Option<&'a str> {
        let captures = self.pattern.captures_iter(response).last()?;
        let answer = captures.get(1).or_else(|| captures.get(0))?;
        Some(answer.as_str())
    }

    /// Whether `input` is correct (see the type's doc).
    fn judge(&self, input: &RewardInput<'_>) -> bool {
        match (self.answer(input.response), input.reference) {
            (Some(answer), Some(reference)) => answer.trim() == reference.trim(),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

impl Reward for RegexVerifier {
    fn name(&self) -> &str {
        "regex"
    }

    fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError> {
        Ok(batch
            .iter()
            .map(|input| if self.judge(input) { 1.0 } else { 0.0 })
            .collect())
    }

    fn is_verifier(&self) -> bool {
        true
    }

    /// Always judges: without a reference, whether the pattern matches.
    fn is_correct(&self, input: &RewardInput<'_>) -> Option<bool> {
        Some(self.judge(input))
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
    fn last_match_group_one_against_reference() {
        let mut verifier = RegexVerifier::new(r"(?i)answer:\s*(\w+)").unwrap();
        assert_eq!(verifier.answer("Answer: no\nanswer: yes"), Some("yes"));
        let scores = verifier
            .score(&[
                input("answer: A ... Answer: B", Some(" B ")),
                input("answer: B ... answer: A", Some("B")),
                input("B", Some("B")),
                input("ANSWER: C", None),
                input("no match", None),
            ])
            .unwrap();
        assert_eq!(scores, [1.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(verifier.is_correct(&input("answer: x", None)), Some(true));
        assert_eq!(verifier.is_correct(&input("none", Some("x"))), Some(false));
        assert!(verifier.is_verifier());
    }

    #[test]
    fn whole_match_without_a_group_or_when_group_one_is_absent() {
        let plain = RegexVerifier::new(r"[0-9]+").unwrap();
        assert_eq!(plain.answer("1 then 22 then 333"), Some("333"));
        let optional = RegexVerifier::new(r"x(=[0-9])?").unwrap();
        assert_eq!(optional.answer("x=1 x"), Some("x"));
        assert_eq!(optional.answer("x x=2"), Some("=2"));
    }

    #[test]
    fn invalid_pattern_is_named() {
        let err = RegexVerifier::new("answer: (").unwrap_err();
        assert!(matches!(err, RewardBuildError::InvalidRegex { .. }));
        assert!(err.to_string().contains("answer: ("), "{err}");
    }
}
