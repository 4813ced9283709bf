//! The PPO algorithm for RLHF on causal language models, as specified in ppo-rs's
//! `PPO_DETAILS`: rollouts with the sampling temperature everywhere, per-token KL-shaped
//! rewards, GAE, whitened advantages, clipped policy and value losses, entropy bonus,
//! gradient accumulation by token counts and global-norm clipping.
//!
//! This crate does no file or network IO: rewards come through the [`Reward`] trait and
//! metrics are returned to the caller.
//!
//! ```
//! use burn::tensor::Device;
//! use ppo_core::{gae, whiten};
//!
//! let (adv, returns) = gae(&[0.0, 1.0], &[0.5, 0.5], &[true, true], 2, 1.0, 0.95);
//! let white = whiten(&adv, &[true, true]);
//! assert!((white[0] + white[1]).abs() < 1e-6);
//! # let _ = (returns, Device::flex());
//! ```

mod advantages;
mod config;
mod data;
mod early_stop;
mod error;
mod estimators;
mod evaluate;
mod grad;
mod kl;
pub mod loss;
mod metrics;
mod moments;
mod optim;
mod reward;
mod trainer;

pub use advantages::{explained_variance, gae, masked_mean_var, whiten};
pub use config::{AlgorithmConfig, KlConfig, OptimizerConfig, PpoConfig, PpoField, Role};
pub use data::{DataOrder, PromptSample, letters_task};
pub use early_stop::{EarlyStopping, StopDecision};
pub use error::CoreError;
pub use estimators::{
    AdvantageEstimator, GRPO_EPS, LossAggregation, critic_free_advantages, discounted_returns,
    group_advantages, overlong_penalty, row_weights, whiten_unbiased,
};
pub use evaluate::{EvalOutput, EvalSettings, evaluate};
pub use grad::{clip_grad_norm, global_grad_norm};
pub use kl::{KlController, KlEstimator};
pub use metrics::Metrics;
pub use moments::RunningMoments;
pub use optim::{AdamW, EXP_AVG, EXP_AVG_SQ, OptimizerTensors, ParamMoments};
pub use reward::{CharMatchReward, Reward, RewardError, RewardInput};
pub use trainer::{PpoTrainer, Rollout, TrainerState, UpdateStats};
