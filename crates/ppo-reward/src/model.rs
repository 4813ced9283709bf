//! A learned reward model: a sequence-classification transformer (backbone + one-label
//! `score` head) read at the last token of each (prompt, response) conversation.

use std::fmt;
use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use ppo_core::{Reward, RewardError, RewardInput};
use ppo_models::{Tokenizer, ValueModel, left_pad, to_f32_vec};

use crate::RewardBuildError;

/// Settings of a [`RewardModel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewardModelConfig {
    /// Conversations per forward pass (default 8).
    pub batch_size: usize,
    /// Longest conversation in tokens; longer ones keep their last `max_length` tokens
    /// (default 1024).
    pub max_length: usize,
}

impl Default for RewardModelConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            max_length: 1024,
        }
    }
}

/// Scores each (prompt, response) pair with a reward model, as transformers'
/// `…ForSequenceClassification` does: the `score` head's output at the last real token.
///
/// Each pair is encoded with [`Tokenizer::encode_conversation`]. A conversation longer than
/// `max_length` keeps its *last* `max_length` tokens: the end of the response, which the
/// score is read at, stays, and the start of the prompt is dropped. Conversations are
/// left-padded with the tokenizer's pad id in chunks of `batch_size` and run without
/// autodiff; padding does not change a score.
pub struct RewardModel {
    model: ValueModel,
    tokenizer: Box<dyn Tokenizer>,
    config: RewardModelConfig,
}

impl RewardModel {
    /// A reward source from a loaded `model` (autodiff is switched off here) and the
    /// `tokenizer` it was trained with.
    pub fn new(
        model: ValueModel,
        tokenizer: Box<dyn Tokenizer>,
        config: RewardModelConfig,
    ) -> Result<Self, RewardBuildError> {
        for (key, value) in [
            ("batch_size", config.batch_size),
            ("max_length", config.max_length),
        ] {
            if value == 0 {
                return Err(RewardBuildError::InvalidConfig {
                    key: key.into(),
                    message: "must be at least 1".into(),
                });
            }
        }
        Ok(Self {
            model: model.valid(),
            tokenizer,
            config,
        })
    }

    /// Loads a `…ForSequenceClassification` checkpoint with one label from `dir` (see
    /// [`ppo_models::hf::load_value_model`]) onto `device`.
    pub fn load(
        dir: impl AsRef<Path>,
        tokenizer: Box<dyn Tokenizer>,
        config: RewardModelConfig,
        device: &Device,
    ) -> Result<Self, RewardBuildError> {
        let dir = dir.as_ref();
        let (_, model) = ppo_models::hf::load_value_model(dir, device).map_err(|source| {
            RewardBuildError::LoadModel {
                dir: dir.to_path_buf(),
                source,
            }
        })?;
        Self::new(model, tokenizer, config)
    }

    /// The settings.
    pub fn config(&self) -> &RewardModelConfig {
        &self.config
    }

    /// Scores of already encoded conversations, one per row, each truncated to its last
    /// `max_length` tokens. Errors on an empty row or an id outside the model's vocabulary.
    pub fn score_ids(&self, rows: &[Vec<u32>]) -> Result<Vec<f64>, RewardError> {
        let vocab_size = self.model.config().vocab_size;
        let mut truncated = Vec::with_capacity(rows.len());
        for (idx, row) in rows.iter().enumerate() {
            if row.is_empty() {
                return Err(self.error(format!("sample {idx} encodes to no tokens")));
            }
            if let Some(&id) = row.iter().find(|&&id| id as usize >= vocab_size) {
                return Err(self.error(format!(
                    "sample {idx} has token id {id}, outside the model's vocabulary of \
                     {vocab_size}: does the tokenizer belong to this model?"
                )));
            }
            truncated.push(keep_last(row, self.config.max_length));
        }
        let mut scores = Vec::with_capacity(rows.len());
        for chunk in truncated.chunks(self.config.batch_size) {
            let batch = left_pad(chunk, self.tokenizer.pad_id());
            let values =
                self.model
                    .forward(&batch.input_ids, &batch.attention_mask, batch.batch_size);
            let values = to_f32_vec(values); // [batch, seq]
            let last = last_real_positions(&batch.attention_mask, batch.batch_size, batch.seq_len);
            scores.extend(
                last.iter()
                    .enumerate()
                    .map(|(row, &pos)| f64::from(values[row * batch.seq_len + pos])),
            );
        }
        Ok(scores)
    }

    fn error(&self, message: String) -> RewardError {
        RewardError {
            name: self.name().into(),
            message,
        }
    }
}

impl fmt::Debug for RewardModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RewardModel")
            .field("config", &self.config)
            .field("model", self.model.config())
            .field("pad_id", &self.tokenizer.pad_id())
            .finish_non_exhaustive()
    }
}

impl Reward for RewardModel {
    fn name(&self) -> &str {
        "reward_model"
    }

    fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError> {
        let rows: Vec<Vec<u32>> = batch
            .iter()
            .map(|input| {
                self.tokenizer
                    .encode_conversation(input.prompt, input.response)
            })
            .collect();
        self.score_ids(&rows)
    }
}

/// The last `max_length` tokens of `row`.
fn keep_last(row: &[u32], max_length: usize) -> Vec<u32> {
    row[row.len().saturating_sub(max_length)..].to_vec()
}

/// For each row of `mask` `[batch, seq_len]`, the index of its rightmost real token (0 for
/// a row with none): the position transformers' sequence classifiers pool, whatever side
/// the padding is on.
fn last_real_positions(mask: &[bool], batch_size: usize, seq_len: usize) -> Vec<usize> {
    mask.chunks(seq_len.max(1))
        .take(batch_size)
        .map(|row| row.iter().rposition(|&real| real).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_real_token_for_any_padding() {
        // left-padded, right-padded, unpadded, a hole in the middle
        let mask = [
            false, true, true, //
            true, true, false, //
            true, true, true, //
            true, false, true,
        ];
        assert_eq!(last_real_positions(&mask, 4, 3), [2, 1, 2, 2]);
    }

    #[test]
    fn truncation_keeps_the_end() {
        assert_eq!(keep_last(&[1, 2, 3, 4], 2), [3, 4]);
        assert_eq!(keep_last(&[1, 2], 5), [1, 2]);
    }
}
