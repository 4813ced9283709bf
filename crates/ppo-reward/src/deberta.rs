//! A DeBERTa-v2/v3 reward model (`DebertaV2ForSequenceClassification`, one label, e.g.
//! `OpenAssistant/reward-model-deberta-v3-large-v2`) scoring (prompt, response) as a text
//! pair, as the seed does with `tokenizer(question, answer)` and `logits[0]`.

use std::fmt;
use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use ppo_core::{Reward, RewardError, RewardInput};
use ppo_models::{
    DebertaForSequenceClassification, HfTokenizer, PairEncoding, Tokenizer, to_f32_vec,
};

use crate::{RewardBuildError, RewardModelConfig};

/// One scored pair: the score and the ids the model read (after truncation).
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredPair {
    /// `logits[0]`.
    pub score: f64,
    /// `[CLS] prompt [SEP] response [SEP]` as the tokenizer encodes it.
    pub input_ids: Vec<u32>,
    /// Whether the pair was cut to `max_length`.
    pub truncated: bool,
}

/// Scores each (prompt, response) pair with a DeBERTa sequence classifier.
///
/// A pair longer than `max_length` tokens loses tokens from the right end of the response
/// (then of the prompt), keeping the special tokens; a batch with such pairs logs a WARNING
/// and counts them in the `reward_truncated` metric. Pairs are right-padded with the tokenizer's
/// pad id (token type 0) in chunks of `batch_size` and run without autodiff; the score is
/// read at the first token, so padding does not change it.
pub struct DebertaReward {
    model: DebertaForSequenceClassification,
    tokenizer: HfTokenizer,
    config: RewardModelConfig,
    last_truncated: usize,
}

impl DebertaReward {
    /// A reward source from a loaded `model` (autodiff is switched off here) and its
    /// `tokenizer`.
    pub fn new(
        model: DebertaForSequenceClassification,
        tokenizer: HfTokenizer,
        config: RewardModelConfig,
    ) -> Result<Self, RewardBuildError> {
        for (key, value) in [
            ("batch_size", config.batch_size),
            ("max_length", config.max_length),
        ] {
            if value < 1 {
                return Err(RewardBuildError::InvalidConfig {
                    key: key.into(),
                    message: "must be at least 1".into(),
                });
            }
        }
        if config.max_length < 3 {
            return Err(RewardBuildError::InvalidConfig {
                key: "max_length".into(),
                message: format!(
                    "is {}: a pair needs at least its 3 special tokens",
                    config.max_length
                ),
            });
        }
        Ok(Self {
            model: model.valid(),
            tokenizer,
            config,
            last_truncated: 0,
        })
    }

    /// Loads the checkpoint and `tokenizer.json` of `dir` onto `device`. `max_length` 0
    /// means the model's `max_position_embeddings`.
    pub fn load(
        dir: impl AsRef<Path>,
        mut config: RewardModelConfig,
        device: &Device,
    ) -> Result<Self, RewardBuildError> {
        let dir = dir.as_ref();
        let load_error = |source| RewardBuildError::LoadModel {
            dir: dir.to_path_buf(),
            source,
        };
        let (model_config, model) =
            ppo_models::hf::load_deberta(dir, device).map_err(load_error)?;
        let tokenizer =
            HfTokenizer::from_dir(dir).map_err(|source| RewardBuildError::LoadTokenizer {
                dir: dir.to_path_buf(),
                source,
            })?;
        if config.max_length == 0 {
            config.max_length = model_config.max_position_embeddings;
        }
        Self::new(model, tokenizer, config)
    }

    /// The settings.
    pub fn config(&self) -> &RewardModelConfig {
        &self.config
    }

    /// Pairs cut to `max_length` in the last batch scored.
    pub fn last_truncated(&self) -> usize {
        self.last_truncated
    }

    /// Scores and ids of `(prompt, response)` pairs, in order.
    pub fn score_pairs(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<ScoredPair>, RewardError> {
        let vocab_size = self.model.config().vocab_size;
        let mut encoded: Vec<(PairEncoding, bool)> = Vec::with_capacity(pairs.len());
        for (idx, (prompt, response)) in pairs.iter().enumerate() {
            let mut pair = self
                .tokenizer
                .encode_pair(prompt, response)
                .map_err(|e| self.error(format!("sample {idx}: {e}")))?;
            if let Some(&id) = pair.ids.iter().find(|&&id| id as usize >= vocab_size) {
                return Err(self.error(format!(
                    "sample {idx} has token id {id}, outside the model's vocabulary of \
                     {vocab_size}: does the tokenizer belong to this model?"
                )));
            }
            let truncated = pair.truncate_second(self.config.max_length);
            encoded.push((pair, truncated));
        }
        self.last_truncated = encoded.iter().filter(|(_, t)| *t).count();
        if self.last_truncated > 0 {
            tracing::warn!(
                "reward model: {} of {} pairs longer than max_length = {} tokens were cut \
                 (the end of their responses is not scored)",
                self.last_truncated,
                pairs.len(),
                self.config.max_length
            );
        }
        let pad_id = self.tokenizer.pad_id();
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in encoded.chunks(self.config.batch_size) {
            let width = chunk.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
            let mut ids = Vec::with_capacity(chunk.len() * width);
            let mut types = Vec::with_capacity(chunk.len() * width);
            let mut mask = Vec::with_capacity(chunk.len() * width);
            for (pair, _) in chunk {
                let pad = width - pair.len();
                ids.extend(
                    pair.ids
                        .iter()
                        .copied()
                        .chain(std::iter::repeat_n(pad_id, pad)),
                );
                types.extend(
                    pair.type_ids
                        .iter()
                        .copied()
                        .chain(std::iter::repeat_n(0, pad)),
                );
                mask.extend(
                    std::iter::repeat_n(true, pair.len()).chain(std::iter::repeat_n(false, pad)),
                );
            }
            let logits = to_f32_vec(self.model.forward(&ids, &types, &mask, chunk.len()));
            let labels = self.model.config().num_labels;
            for (row, (pair, truncated)) in chunk.iter().enumerate() {
                out.push(ScoredPair {
                    score: f64::from(logits[row * labels]),
                    input_ids: pair.ids.clone(),
                    truncated: *truncated,
                });
            }
        }
        Ok(out)
    }

    fn error(&self, message: String) -> RewardError {
        RewardError {
            name: self.name().into(),
            message,
        }
    }
}

impl fmt::Debug for DebertaReward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebertaReward")
            .field("config", &self.config)
            .field("model", self.model.config())
            .finish_non_exhaustive()
    }
}

impl Reward for DebertaReward {
    fn name(&self) -> &str {
        "reward_model"
    }

    fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError> {
        let pairs: Vec<(&str, &str)> = batch.iter().map(|i| (i.prompt, i.response)).collect();
        Ok(self
            .score_pairs(&pairs)?
            .into_iter()
            .map(|s| s.score)
            .collect())
    }

    fn last_metrics(&self) -> Vec<(String, f64)> {
        vec![("reward_truncated".into(), self.last_truncated as f64)]
    }
}
