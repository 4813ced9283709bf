//! Reward sources for ppo-rs, each an implementation of [`ppo_core::Reward`]:
//!
//! - verifiers that judge correctness against the dataset's reference:
//!   [`Gsm8kVerifier`] (final number, exact decimal comparison), [`ExactMatchVerifier`] and
//!   [`RegexVerifier`];
//! - [`RewardModel`]: a Hugging Face `…ForSequenceClassification` checkpoint read at the
//!   last token of each conversation;
//! - [`DebertaReward`]: a DeBERTa-v2/v3 `DebertaV2ForSequenceClassification` (the seed's
//!   reward model) reading (prompt, response) as a text pair;
//! - [`RemoteReward`]: an HTTP scoring server, with retries;
//! - [`WeightedReward`]: a weighted sum of any of these.
//!
//! Building a source can fail with a [`RewardBuildError`]; scoring fails with a
//! [`ppo_core::RewardError`] that names the source.
//!
//! ```
//! use ppo_core::{Reward, RewardInput};
//! use ppo_reward::{Gsm8kVerifier, RegexVerifier, WeightedReward};
//!
//! let mut reward = WeightedReward::new(vec![
//!     (0.9, Box::new(Gsm8kVerifier::default()) as Box<dyn Reward>),
//!     (0.1, Box::new(RegexVerifier::new(r"####\s*(\S+)")?)),
//! ])?;
//! let sample = RewardInput {
//!     prompt: "Tom has 3 bags of 4 apples. How many apples?",
//!     response: "3 * 4 = 12\n#### 12",
//!     reference: Some("12"),
//!     finished: true,
//! };
//! let scores = reward.score(&[sample])?;
//! assert!((scores[0] - 1.0).abs() < 1e-12);
//! assert_eq!(reward.name(), "0.9*gsm8k+0.1*regex");
//! assert_eq!(reward.is_correct(&sample), Some(true));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod deberta;
mod error;
mod exact;
mod excerpt;
mod gsm8k;
mod model;
mod number;
mod pattern;
mod remote;
mod weighted;

pub use deberta::{DebertaReward, ScoredPair};
pub use error::RewardBuildError;
pub use exact::ExactMatchVerifier;
pub use gsm8k::Gsm8kVerifier;
pub use model::{RewardModel, RewardModelConfig};
pub use pattern::RegexVerifier;
pub use remote::{RemoteConfig, RemoteReward};
pub use weighted::WeightedReward;
