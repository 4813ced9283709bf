//! `RewardModel` against transformers: the committed `qwen2_value_head` fixture
//! (`Qwen2ForSequenceClassification`, one label) holds the `score` head's output at every
//! position of two unpadded 8-token rows. The model is causal, so the value at position
//! `k` is the score of the prefix of length `k + 1`; scoring prefixes of different lengths
//! in one left-padded batch must give those values.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ppo_core::{Reward, RewardInput};
use ppo_models::Tokenizer;
use ppo_reward::{RewardBuildError, RewardModel, RewardModelConfig};
use serde::Deserialize;

const REL_TOL: f64 = 1e-4;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ppo-models/tests/fixtures/hf/qwen2_value_head")
}

#[derive(Deserialize)]
struct Expected {
    input_ids: Vec<Vec<u32>>,
    values_shape: [usize; 2],
    values: Vec<f64>,
}

impl Expected {
    fn read() -> Self {
        let text = std::fs::read_to_string(fixture().join("expected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// transformers' value at `position` of fixture row `row`.
    fn value(&self, row: usize, position: usize) -> f64 {
        self.values[row * self.values_shape[1] + position]
    }
}

/// Text is token ids written in decimal, separated by spaces; no BOS. The fixture's
/// `pad_token_id` is 0.
struct IdTokenizer;

impl Tokenizer for IdTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        text.split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect()
    }

    fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
    }

    fn vocab_size(&self) -> usize {
        80
    }

    fn eos_id(&self) -> u32 {
        1
    }

    fn pad_id(&self) -> u32 {
        0
    }

    fn bos_id(&self) -> Option<u32> {
        None
    }
}

fn load(batch_size: usize, max_length: usize) -> RewardModel {
    let config = RewardModelConfig {
        batch_size,
        max_length,
    };
    RewardModel::load(fixture(), Box::new(IdTokenizer), config, &Device::flex()).unwrap()
}

/// `ids` split into a prompt (the first `prompt_len` ids) and a response, as texts.
fn texts(ids: &[u32], prompt_len: usize) -> (String, String) {
    let tok = IdTokenizer;
    (
        tok.decode(&ids[..prompt_len]),
        tok.decode(&ids[prompt_len..]),
    )
}

/// Largest |ours − theirs| over the largest |theirs|.
fn relative_difference(ours: &[f64], theirs: &[f64]) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    let max_diff = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let scale = theirs.iter().map(|b| b.abs()).fold(0.0, f64::max);
    max_diff / (scale + 1e-12)
}

#[test]
fn left_padded_batch_scores_each_row_at_its_last_token() {
    let expected = Expected::read();
    // (fixture row, prefix length, prompt length): four lengths in one batch.
    let cases = [(0, 8, 3), (1, 3, 2), (0, 5, 5), (1, 1, 0), (1, 8, 4)];
    let pairs: Vec<(String, String)> = cases
        .iter()
        .map(|&(row, len, prompt_len)| texts(&expected.input_ids[row][..len], prompt_len))
        .collect();
    let inputs: Vec<RewardInput<'_>> = pairs
        .iter()
        .map(|(prompt, response)| RewardInput {
            prompt,
            response,
            reference: None,
            finished: true,
        })
        .collect();
    let theirs: Vec<f64> = cases
        .iter()
        .map(|&(row, len, _)| expected.value(row, len - 1))
        .collect();

    let mut one_batch = load(8, 64);
    let ours = one_batch.score(&inputs).unwrap();
    let rel = relative_difference(&ours, &theirs);
    println!("ours {ours:?}\ntheirs {theirs:?}\nrelative difference {rel:.3e}");
    assert!(rel <= REL_TOL, "relative difference {rel:e}");
    assert!(!one_batch.is_verifier());
    assert_eq!(one_batch.is_correct(&inputs[0]), None);

    // Chunks of 2 (2 + 2 + 1 rows, padded differently) give the same scores.
    let chunked = load(2, 64).score(&inputs).unwrap();
    let rel = relative_difference(&chunked, &ours);
    assert!(
        rel <= REL_TOL,
        "chunked vs one batch: relative difference {rel:e}"
    );
}

#[test]
fn long_conversations_keep_their_last_tokens() {
    let expected = Expected::read();
    let row = &expected.input_ids[0];
    let truncated = load(4, 5).score_ids(std::slice::from_ref(row)).unwrap();
    let last_five = load(4, 64).score_ids(&[row[3..].to_vec()]).unwrap();
    assert_eq!(truncated, last_five);
    // Keeping the first five tokens instead would score the prefix of length 5.
    assert!((truncated[0] - expected.value(0, 4)).abs() > 1e-3);
}

#[test]
fn rejects_empty_rows_and_foreign_token_ids() {
    let model = load(4, 64);
    let err = model
        .score_ids(&[vec![5, 6], vec![]])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("reward_model") && err.contains("sample 1"),
        "{err}"
    );
    let err = model.score_ids(&[vec![5, 80]]).unwrap_err().to_string();
    assert!(
        err.contains("token id 80") && err.contains("vocabulary of 80"),
        "{err}"
    );
}

#[test]
fn construction_errors_name_the_problem() {
    let config = RewardModelConfig {
        batch_size: 0,
        max_length: 8,
    };
    let err = RewardModel::load(fixture(), Box::new(IdTokenizer), config, &Device::flex())
        .err()
        .unwrap();
    assert!(err.to_string().contains("`batch_size`"), "{err}");

    let missing = tempfile::tempdir().unwrap();
    let err = RewardModel::load(
        missing.path(),
        Box::new(IdTokenizer),
        RewardModelConfig::default(),
        &Device::flex(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, RewardBuildError::LoadModel { .. }));
    assert!(
        err.to_string()
            .contains(&missing.path().display().to_string()),
        "{err}"
    );
}
