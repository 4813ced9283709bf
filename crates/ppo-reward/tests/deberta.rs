//! `DebertaReward` against transformers: the committed DeBERTa-v3 fixture
//! (`v3_shared_c2p_p2c_bin`, written by `scripts/make_deberta_fixtures.py`) holds
//! transformers' `tokenizer(question, answer)` ids and `logits[0]` for four pairs.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ppo_core::{Reward, RewardInput};
use ppo_reward::{DebertaReward, RewardModelConfig};
use serde::Deserialize;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ppo-models/tests/fixtures/deberta/v3_shared_c2p_p2c_bin")
}

#[derive(Deserialize)]
struct Expected {
    pairs: Vec<(String, String)>,
    input_ids: Vec<Vec<u32>>,
    single_logits: Vec<f64>,
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(fixture().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn reward(batch_size: usize, max_length: usize) -> DebertaReward {
    let config = RewardModelConfig {
        batch_size,
        max_length,
    };
    DebertaReward::load(fixture(), config, &Device::flex()).unwrap()
}

#[test]
fn scores_equal_transformers_in_micro_batches() {
    let expected = expected();
    let inputs: Vec<RewardInput<'_>> = expected
        .pairs
        .iter()
        .map(|(prompt, response)| RewardInput {
            prompt,
            response,
            reference: None,
            finished: true,
        })
        .collect();
    // max_length 0: the model's max_position_embeddings (128), longer than every pair.
    let mut reward = reward(3, 0);
    assert_eq!(reward.config().max_length, 128);
    let scores = reward.score(&inputs).unwrap();
    let scale = expected
        .single_logits
        .iter()
        .fold(0.0f64, |m, s| m.max(s.abs()));
    for (idx, (ours, theirs)) in scores.iter().zip(&expected.single_logits).enumerate() {
        assert!(
            (ours - theirs).abs() / scale < 1e-4,
            "pair {idx}: {ours} vs transformers {theirs}"
        );
    }
    assert_eq!(
        reward.last_metrics(),
        [("reward_truncated".to_owned(), 0.0)]
    );
}

#[test]
fn long_pairs_lose_the_end_of_the_response_and_are_counted() {
    let expected = expected();
    let pairs: Vec<(&str, &str)> = expected
        .pairs
        .iter()
        .map(|(p, r)| (p.as_str(), r.as_str()))
        .collect();
    let max_length = 30;
    let mut reward = reward(2, max_length);
    let scored = reward.score_pairs(&pairs).unwrap();
    let long = expected
        .input_ids
        .iter()
        .filter(|ids| ids.len() > max_length)
        .count();
    assert!(long > 0 && long < pairs.len());
    assert_eq!(reward.last_truncated(), long);
    assert_eq!(
        reward.last_metrics(),
        [("reward_truncated".to_owned(), long as f64)]
    );
    let sep = *expected.input_ids[0].last().unwrap();
    for (scored, full) in scored.iter().zip(&expected.input_ids) {
        assert_eq!(scored.truncated, full.len() > max_length);
        if scored.truncated {
            assert_eq!(scored.input_ids.len(), max_length);
            // Everything up to the cut is the full encoding's start; the last [SEP] stays.
            assert_eq!(scored.input_ids[..max_length - 1], full[..max_length - 1]);
            assert_eq!(*scored.input_ids.last().unwrap(), sep);
        } else {
            assert_eq!(&scored.input_ids, full);
        }
    }
}
