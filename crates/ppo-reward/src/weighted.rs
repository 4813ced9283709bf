//! A weighted sum of reward sources, e.g. a verifier plus a reward model, that remembers
//! each source's mean score for metrics such as `reward/gsm8k`.

use std::fmt;

use ppo_core::{Reward, RewardError, RewardInput};

use crate::RewardBuildError;

/// Scores `Σ wᵢ·sᵢ` over its parts, named like `0.8*gsm8k+0.2*reward_model`.
///
/// An error from a part, or a part returning the wrong number of scores or a non-finite
/// one, fails the whole batch with a message naming that part.
pub struct WeightedReward {
    parts: Vec<(f64, Box<dyn Reward>)>,
    name: String,
    last_components: Vec<(String, f64)>,
}

impl WeightedReward {
    /// A mix of `parts`, each `(weight, source)`. Needs at least one part and finite
    /// weights.
    pub fn new(parts: Vec<(f64, Box<dyn Reward>)>) -> Result<Self, RewardBuildError> {
        if parts.is_empty() {
            return Err(RewardBuildError::InvalidConfig {
                key: "rewards".into(),
                message: "needs at least one reward source".into(),
            });
        }
        if let Some((weight, part)) = parts.iter().find(|(w, _)| !w.is_finite()) {
            return Err(RewardBuildError::InvalidConfig {
                key: format!("weight of `{}`", part.name()),
                message: format!("is {weight}, not a finite number"),
            });
        }
        let name = mix_name(&parts);
        Ok(Self {
            parts,
            name,
            last_components: Vec::new(),
        })
    }

    /// Each part's name and its mean *unweighted* score over the last non-empty batch
    /// scored, in the order of the parts; empty before the first batch and after an empty
    /// one.
    pub fn last_components(&self) -> &[(String, f64)] {
        &self.last_components
    }
}

impl fmt::Debug for WeightedReward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeightedReward")
            .field("name", &self.name)
            .field("last_components", &self.last_components)
            .finish_non_exhaustive()
    }
}

/// `w1*name1+w2*name2-w3*name3`, weights written as Rust writes an `f64`.
fn mix_name(parts: &[(f64, Box<dyn Reward>)]) -> String {
    let mut name = String::new();
    for (idx, (weight, part)) in parts.iter().enumerate() {
        if idx > 0 && !weight.is_sign_negative() {
            name.push('+');
        }
        name.push_str(&format!("{weight}*{}", part.name()));
    }
    name
}

impl Reward for WeightedReward {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError> {
        let mut total = vec![0.0; batch.len()];
        let mut components = Vec::with_capacity(self.parts.len());
        for (weight, part) in &mut self.parts {
            let part_name = part.name().to_owned();
            let fail = |message: String| RewardError {
                name: self.name.clone(),
                message: format!("part `{part_name}`: {message}"),
            };
            let scores = part.score(batch).map_err(|err| fail(err.to_string()))?;
            if scores.len() != batch.len() {
                return Err(fail(format!(
                    "returned {} scores for {} samples",
                    scores.len(),
                    batch.len()
                )));
            }
            if let Some(idx) = scores.iter().position(|s| !s.is_finite()) {
                return Err(fail(format!("score {idx} is {}", scores[idx])));
            }
            for (sum, score) in total.iter_mut().zip(&scores) {
                *sum += *weight * score;
            }
            if !batch.is_empty() {
                let mean = scores.iter().sum::<f64>() / scores.len() as f64;
                components.push((part_name, mean));
            }
        }
        self.last_components = components;
        Ok(total)
    }

    /// True only for a single part with weight 1 that is a verifier: only then are the
    /// scores correctness, so that their mean is an accuracy.
    fn is_verifier(&self) -> bool {
        matches!(self.parts.as_slice(), [(weight, part)] if *weight == 1.0 && part.is_verifier())
    }

    /// Every part's counts, in the order of the parts.
    fn last_metrics(&self) -> Vec<(String, f64)> {
        self.parts
            .iter()
            .flat_map(|(_, part)| part.last_metrics())
            .collect()
    }

    /// The judgement of the first part that judges `input`.
    fn is_correct(&self, input: &RewardInput<'_>) -> Option<bool> {
        self.parts
            .iter()
            .find_map(|(_, part)| part.is_correct(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExactMatchVerifier, Gsm8kVerifier};

    /// A part that scores the response length, or fails, or returns a bad score.
    struct Length {
        mode: Mode,
    }

    enum Mode {
        Good,
        Fail,
        Short,
        NaN,
    }

    impl Reward for Length {
        fn name(&self) -> &str {
            "length"
        }

        fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError> {
            let lengths = batch.iter().map(|i| i.response.len() as f64);
            match self.mode {
                Mode::Good => Ok(lengths.collect()),
                Mode::Fail => Err(RewardError {
                    name: "length".into(),
                    message: "server down".into(),
                }),
                Mode::Short => Ok(lengths.skip(1).collect()),
                Mode::NaN => Ok(lengths.map(|_| f64::NAN).collect()),
            }
        }
    }

    fn input<'a>(response: &'a str, reference: Option<&'a str>) -> RewardInput<'a> {
        RewardInput {
            prompt: "p",
            response,
            reference,
            finished: true,
        }
    }

    fn length(mode: Mode) -> Box<dyn Reward> {
        Box::new(Length { mode })
    }

    #[test]
    fn weighted_sum_name_and_components() {
        let mut mix = WeightedReward::new(vec![
            (0.75, Box::new(Gsm8kVerifier::default())),
            (-0.5, length(Mode::Good)),
            (2.0, Box::new(ExactMatchVerifier::default())),
        ])
        .unwrap();
        assert_eq!(mix.name(), "0.75*gsm8k-0.5*length+2*exact_match");
        assert!(mix.last_components().is_empty());
        // gsm8k [1, 0], length [2, 4], exact [1, 0]
        let scores = mix
            .score(&[input("12", Some("12")), input("= 13", Some("12"))])
            .unwrap();
        // 0.75·1 − 0.5·2 + 2·1 = 1.75; 0.75·0 − 0.5·4 + 2·0 = −2
        assert_eq!(scores, [1.75, -2.0]);
        assert_eq!(
            mix.last_components(),
            [
                ("gsm8k".to_owned(), 0.5),
                ("length".to_owned(), 3.0),
                ("exact_match".to_owned(), 0.5)
            ]
        );
        assert_eq!(mix.score(&[]).unwrap(), Vec::<f64>::new());
        assert!(mix.last_components().is_empty());
    }

    #[test]
    fn part_failures_name_the_part() {
        for (mode, expected) in [
            (Mode::Fail, "server down"),
            (Mode::Short, "returned 1 scores for 2 samples"),
            (Mode::NaN, "score 0 is NaN"),
        ] {
            let mut mix = WeightedReward::new(vec![
                (1.0, Box::new(Gsm8kVerifier::default())),
                (1.0, length(mode)),
            ])
            .unwrap();
            let err = mix
                .score(&[input("1", Some("1")), input("2", Some("1"))])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("1*gsm8k+1*length") && err.contains("part `length`"),
                "{err}"
            );
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn verifier_only_for_one_unit_weight_verifier() {
        let single =
            |weight: f64| WeightedReward::new(vec![(weight, Box::new(Gsm8kVerifier::default()))]);
        assert!(single(1.0).unwrap().is_verifier());
        assert!(!single(0.5).unwrap().is_verifier());
        let pair = WeightedReward::new(vec![
            (1.0, Box::new(Gsm8kVerifier::default())),
            (0.0, length(Mode::Good)),
        ])
        .unwrap();
        assert!(!pair.is_verifier());
        let length_only = WeightedReward::new(vec![(1.0, length(Mode::Good))]).unwrap();
        assert!(!length_only.is_verifier());
    }

    #[test]
    fn correctness_from_the_first_judging_part() {
        let mix = WeightedReward::new(vec![
            (1.0, length(Mode::Good)),
            (1.0, Box::new(Gsm8kVerifier::default())),
            (1.0, Box::new(ExactMatchVerifier::default())),
        ])
        .unwrap();
        // gsm8k says correct (7 = 7.0); exact match would say wrong.
        assert_eq!(mix.is_correct(&input("7", Some("7.0"))), Some(true));
        assert_eq!(mix.is_correct(&input("7", None)), None);
        let no_judge = WeightedReward::new(vec![(1.0, length(Mode::Good))]).unwrap();
        assert_eq!(no_judge.is_correct(&input("7", Some("7"))), None);
    }

    #[test]
    fn rejects_empty_mixes_and_non_finite_weights() {
        assert!(WeightedReward::new(Vec::new()).is_err());
        let err = WeightedReward::new(vec![(f64::INFINITY, length(Mode::Good))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("length") && err.contains("inf"), "{err}");
    }
}
