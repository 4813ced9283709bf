//! Shared set-up of the trainer tests.

use ppo_core::{AlgorithmConfig, KlConfig, KlEstimator, OptimizerConfig, PpoConfig};
use ppo_models::SamplingConfig;
use ppo_sched::{ScheduleConfig, ScheduleKind, Scheduler};

/// A small PPO configuration: 4 prompts × 2 samples, 2 PPO epochs, minibatch 4.
pub fn config() -> PpoConfig {
    PpoConfig {
        batch_size: 4,
        group_size: 2,
        ppo_epochs: 2,
        mini_batch_size: 4,
        gradient_accumulation_steps: 1,
        clip_range: 0.2,
        clip_range_value: 0.2,
        entropy_coef: 0.01,
        value_loss_coef: 0.5,
        max_grad_norm: 1.0,
        gamma: 1.0,
        lam: 0.95,
        whiten_advantages: true,
        kl: KlConfig {
            estimator: KlEstimator::K1,
            coef: 0.05,
            target: None,
            horizon: 10_000.0,
            in_loss: false,
        },
        sampling: SamplingConfig {
            max_new_tokens: 6,
            temperature: 0.8,
            ..Default::default()
        },
        forward_batch_size: 8,
        gradient_checkpointing: false,
        max_consecutive_skips: 3,
        missing_eos_penalty: None,
        score_clip: None,
        normalize_score: false,
        policy_optimizer: OptimizerConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
        critic_optimizer: OptimizerConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
        max_prompt_tokens: None,
        algorithm: AlgorithmConfig::default(),
    }
}

/// `config` with another advantage estimator.
#[allow(dead_code)]
pub fn with_estimator(config: PpoConfig, estimator: ppo_core::AdvantageEstimator) -> PpoConfig {
    PpoConfig {
        algorithm: AlgorithmConfig {
            advantage_estimator: estimator,
            ..config.algorithm.clone()
        },
        ..config
    }
}

/// Every advantage estimator.
#[allow(dead_code)]
pub const ESTIMATORS: [ppo_core::AdvantageEstimator; 6] = {
    use ppo_core::AdvantageEstimator as E;
    [
        E::Gae,
        E::Grpo,
        E::DrGrpo,
        E::Rloo,
        E::ReinforcePp,
        E::ReinforcePpBaseline,
    ]
};

/// A constant learning rate `lr` for 1000 steps.
#[allow(dead_code)]
pub fn schedule(lr: f64) -> Scheduler {
    Scheduler::new(ScheduleConfig {
        learning_rate: lr,
        min_lr: 0.0,
        warmup_steps: 0,
        total_steps: 1000,
        kind: ScheduleKind::Constant,
    })
    .unwrap()
}
