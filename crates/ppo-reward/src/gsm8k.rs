//! The GSM8K verifier: the final number of a response against the number after `####` in
//! the reference, compared exactly as decimals.

use std::sync::LazyLock;

use ppo_core::{Reward, RewardError, RewardInput};
use regex::Regex;

use crate::excerpt::excerpt;
use crate::number::{numbers, only_number};

/// `answer is` or `answer:`, any case, as in "The answer is 42" and "Answer: 42".
static ANSWER_IS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\banswer\s*(?:is\b|:)").expect("the answer pattern compiles")
});

/// Marks the answer in GSM8K's `output` field: "…reasoning…\n#### 1,234".
const ANSWER_MARK: &str = "####";

/// Scores a response 1 when its final number equals the reference's answer.
///
/// The reference's answer is the number after the last `####` in the reference (the GSM8K
/// `output` field); a reference without `####` must hold exactly one number, which is the
/// answer. A sample with no reference, or whose reference has no answer, is an error of
/// [`Reward::score`] (a dataset problem, not a wrong response).
///
/// The response's answer is found by the first of these rules that yields a number:
/// 1. the first number after the last `####`;
/// 2. the last number inside the last `\boxed{…}`;
/// 3. the first number after the last "answer is" or "answer:" (any case);
/// 4. the last number in the response.
///
/// Numbers are read as the crate's number rules say: commas as thousands separators, `$`
/// ignored, negative signs, decimals with trailing zeros dropped (`18.00` equals `18`), a
/// sentence-ending `.` and a `%` not part of the number. Answers compare as exact decimal
/// text, never as floats.
///
/// Scores: `correct_score` for a correct answer, `format_score` for a wrong answer that is
/// at least a number, and 0 for a response with no number.
#[derive(Clone, Debug)]
pub struct Gsm8kVerifier {
    /// Score of a correct answer (default 1).
    pub correct_score: f64,
    /// Score of a wrong answer that has a number (default 0): a small positive value
    /// rewards the format.
    pub format_score: f64,
}

impl Default for Gsm8kVerifier {
    fn default() -> Self {
        Self {
            correct_score: 1.0,
            format_score: 0.0,
        }
    }
}

impl Gsm8kVerifier {
    /// The canonical answer of a reference (see the type's doc), or `None` when it has none.
    pub fn reference_answer(reference: &str) -> Option<String> {
        match reference.rfind(ANSWER_MARK) {
            Some(at) => first_number(&reference[at + ANSWER_MARK.len()..]),
            None => only_number(reference),
        }
    }

    /// The canonical answer of a response (see the type's doc), or `None` when it has no
    /// number.
    pub fn response_answer(response: &str) -> Option<String> {
        let after_mark = response
            .rfind(ANSWER_MARK)
            .and_then(|at| first_number(&response[at + ANSWER_MARK.len()..]));
        after_mark
            .or_else(|| boxed_content(response).and_then(last_number))
            .or_else(|| {
                let last = ANSWER_IS.find_iter(response).last()?;
                first_number(&response[last.end()..])
            })
            .or_else(|| last_number(response))
    }

    /// The reference's answer, or an error naming the sample.
    fn expected(&self, input: &RewardInput<'_>) -> Result<String, RewardError> {
        let reference = input.reference.ok_or_else(|| RewardError {
            name: self.name().into(),
            message: format!(
                "prompt {:?} has no reference answer",
                excerpt(input.prompt, 80)
            ),
        })?;
        Self::reference_answer(reference).ok_or_else(|| RewardError {
            name: self.name().into(),
            message: format!(
                "reference {:?} of prompt {:?} has no number after `####` and is not a \
                 single number",
                excerpt(reference, 80),
                excerpt(input.prompt, 80)
            ),
        })
    }
}

/// The first number of `text`.
fn first_number(text: &str) -> Option<String> {
    numbers(text).into_iter().next().map(|n| n.value)
}

/// The last number of `text`.
fn last_number(text: &str) -> Option<String> {
    numbers(text).pop().map(|n| n.value)
}

/// What stands inside the last `\boxed{…}` of `text`, braces matched; to the end of the
/// text when the box is never closed.
fn boxed_content(text: &str) -> Option<&str> {
    const OPEN: &str = "\\boxed{";
    let start = text.rfind(OPEN)? + OPEN.len();
    let mut depth = 0usize;
    for (offset, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(&text[start..start + offset]),
            '}' => depth -= 1,
            _ => {}
        }
    }
    Some(&text[start..])
}

impl Reward for Gsm8kVerifier {
    fn name(&self) -> &str {
        "gsm8k"
    }

    fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError> {
        batch
            .iter()
            .map(|input| {
                let expected = self.expected(input)?;
                Ok(match Self::response_answer(input.response) {
                    Some(answer) if answer == expected => self.correct_score,
                    Some(_) => self.format_score,
                    None => 0.0,
                })
            })
            .collect()
    }

    /// True with the default scores (1 correct, 0 otherwise), when the mean score is the
    /// accuracy; a format score or another correct score makes scores more than
    /// correctness.
    fn is_verifier(&self) -> bool {
        self.correct_score == 1.0 && self.format_score == 0.0
    }

    /// `None` when the sample has no reference or its reference has no answer.
    fn is_correct(&self, input: &RewardInput<'_>) -> Option<bool> {
        let expected = Self::reference_answer(input.reference?)?;
        Some(Self::response_answer(input.response).is_some_and(|answer| answer == expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(response: &'a str, reference: Option<&'a str>) -> RewardInput<'a> {
        RewardInput {
            prompt: "How many?",
            response,
            reference,
            finished: true,
        }
    }

    #[test]
    fn reference_answers() {
        let gsm8k = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n\
                     Natalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72";
        assert_eq!(
            Gsm8kVerifier::reference_answer(gsm8k).as_deref(),
            Some("72")
        );
        assert_eq!(
            Gsm8kVerifier::reference_answer("so 1000+234\n#### 1,234").as_deref(),
            Some("1234")
        );
        assert_eq!(
            Gsm8kVerifier::reference_answer("#### -3").as_deref(),
            Some("-3")
        );
        // No `####`: the whole reference is the answer.
        assert_eq!(
            Gsm8kVerifier::reference_answer(" 18.50 ").as_deref(),
            Some("18.5")
        );
        assert_eq!(Gsm8kVerifier::reference_answer("$5").as_deref(), Some("5"));
        assert_eq!(Gsm8kVerifier::reference_answer("5 and 6"), None);
        assert_eq!(Gsm8kVerifier::reference_answer("five"), None);
        assert_eq!(Gsm8kVerifier::reference_answer("12 apples\n#### "), None);
    }

    #[test]
    fn response_answer_rules_in_order() {
        let answer = |text| Gsm8kVerifier::response_answer(text);
        // 1. after the last ####, even with numbers later
        assert_eq!(
            answer("3+4=7\n#### 7\nCheck: 2 times").as_deref(),
            Some("7")
        );
        assert_eq!(answer("#### 1\n#### 2").as_deref(), Some("2"));
        // 2. the last number in the last \boxed{}
        assert_eq!(
            answer(r"so \boxed{1,234} (from 5 steps)").as_deref(),
            Some("1234")
        );
        assert_eq!(
            answer(r"\boxed{\text{3 or }{-4}} then 9").as_deref(),
            Some("-4")
        );
        // 3. after "answer is" / "Answer:"
        assert_eq!(
            answer("The answer is $18.00, from 3 bags.").as_deref(),
            Some("18")
        );
        assert_eq!(answer("answer: 5\nANSWER: 6 (not 7)").as_deref(), Some("6"));
        // 4. the last number
        assert_eq!(
            answer("She has 3 apples and buys 4, so 7.").as_deref(),
            Some("7")
        );
        // markers with no number fall through to the next rule
        assert_eq!(answer("It is 12.\n####").as_deref(), Some("12"));
        assert_eq!(
            answer("12 is not the answer: unsure").as_deref(),
            Some("12")
        );
        assert_eq!(answer("no idea"), None);
        assert_eq!(answer(""), None);
    }

    #[test]
    fn scores_hand_computed() {
        let reference = "24 + 48 = 72\n#### 1,072";
        let mut verifier = Gsm8kVerifier::default();
        let scores = verifier
            .score(&[
                input("The total is 1072.", Some(reference)),
                input("The answer is $1,072.00", Some(reference)),
                input("#### 1072%", Some(reference)),
                input("She spends 1,072 - 2 = 1,070", Some(reference)),
                input("I don't know.", Some(reference)),
                input("Lost -5 dollars, so 1072", Some("#### -5")),
                input("Lost -5 dollars.", Some("#### -5")),
                input("Answer: 0.5", Some("0.50")),
                input("Answer: 0.5", Some("1/2")),
            ])
            .map_err(|e| e.to_string());
        // The last reference "1/2" holds two numbers: a dataset error naming the sample.
        let err = scores.unwrap_err();
        assert!(err.contains("gsm8k") && err.contains("1/2"), "{err}");

        let scores = verifier
            .score(&[
                input("The total is 1072.", Some(reference)),
                input("The answer is $1,072.00", Some(reference)),
                input("#### 1072%", Some(reference)),
                input("She spends 1,072 - 2 = 1,070", Some(reference)),
                input("I don't know.", Some(reference)),
                input("Lost -5 dollars, so 1072", Some("#### -5")),
                input("Lost -5 dollars.", Some("#### -5")),
                input("Answer: 0.5", Some("0.50")),
            ])
            .unwrap();
        assert_eq!(scores, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
        assert!(verifier.is_verifier());
    }

    #[test]
    fn format_score_for_wrong_numbers_only() {
        let mut verifier = Gsm8kVerifier {
            correct_score: 1.0,
            format_score: 0.1,
        };
        let scores = verifier
            .score(&[
                input("#### 5", Some("#### 5")),
                input("#### 6", Some("#### 5")),
                input("five", Some("#### 5")),
            ])
            .unwrap();
        assert_eq!(scores, [1.0, 0.1, 0.0]);
        assert!(!verifier.is_verifier());
    }

    #[test]
    fn correctness_and_missing_references() {
        let verifier = Gsm8kVerifier::default();
        assert_eq!(
            verifier.is_correct(&input("= 72", Some("#### 72"))),
            Some(true)
        );
        assert_eq!(
            verifier.is_correct(&input("= 71", Some("#### 72"))),
            Some(false)
        );
        assert_eq!(
            verifier.is_correct(&input("none", Some("#### 72"))),
            Some(false)
        );
        assert_eq!(verifier.is_correct(&input("= 72", None)), None);
        assert_eq!(verifier.is_correct(&input("= 72", Some("many"))), None);
        let err = Gsm8kVerifier::default()
            .score(&[input("72", None)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gsm8k") && err.contains("no reference"),
            "{err}"
        );
    }
}
