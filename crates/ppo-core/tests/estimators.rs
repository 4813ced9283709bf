//! Every advantage estimator trains the policy: on the letters task the score rises within
//! a short seeded run (PPO with GAE as the reference), the critic-free estimators building no
//! critic.

use burn::tensor::Device;
use ppo_core::{
    AdvantageEstimator, CharMatchReward, KlConfig, KlEstimator, LossAggregation, PpoConfig,
    PpoTrainer, letters_task,
};
use ppo_models::{ByteTokenizer, CausalLm, Rng, SamplingConfig, TransformerConfig, ValueModel};

mod common;

use common::schedule;

/// Scores of `iterations` iterations at learning rate `lr` of 16 prompts × 4 samples on the letters task.
fn scores(config: PpoConfig, iterations: usize, lr: f64) -> Vec<f64> {
    let device = Device::flex();
    let model_config = TransformerConfig {
        hidden_size: 64,
        intermediate_size: 128,
        head_dim: 16,
        ..TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE)
    };
    let mut rng = Rng::new(42);
    let policy = CausalLm::init(&model_config, &mut rng, &device);
    let critic = config
        .has_critic()
        .then(|| ValueModel::from_backbone(policy.backbone(), &mut rng));
    let has_critic = critic.is_some();
    let mut t = PpoTrainer::new(config, policy, critic, schedule(lr), schedule(lr), rng).unwrap();
    let samples = letters_task(16 * iterations * 4, 3);
    let mut batches = samples.chunks(16);
    let mut scores = Vec::new();
    for _ in 0..iterations {
        let first = batches.next().unwrap();
        let mut more = || batches.next().map(<[_]>::to_vec);
        let (_, metrics) = t
            .step_with(
                first,
                &mut more,
                &ByteTokenizer,
                &mut CharMatchReward::default(),
            )
            .unwrap();
        for name in ["policy_loss", "entropy", "kl_divergence", "approx_kl"] {
            assert!(
                metrics.get(name).unwrap().is_finite(),
                "{name} is not finite"
            );
        }
        assert_eq!(metrics.get("value_loss").is_some(), has_critic);
        assert_eq!(metrics.get("explained_variance").is_some(), has_critic);
        scores.push(metrics.get("score").unwrap());
    }
    scores
}

fn config(estimator: AdvantageEstimator) -> PpoConfig {
    let cfg = PpoConfig {
        batch_size: 16,
        group_size: 4,
        ppo_epochs: 4,
        mini_batch_size: 32,
        kl: KlConfig {
            estimator: KlEstimator::K1,
            coef: 0.01,
            target: None,
            horizon: 10_000.0,
            in_loss: false,
        },
        sampling: SamplingConfig {
            max_new_tokens: 6,
            temperature: 1.0,
            ..Default::default()
        },
        ..common::config()
    };
    common::with_estimator(cfg, estimator)
}

fn assert_rises(case: &str, scores: &[f64]) {
    let first: f64 = scores[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = scores[scores.len() - 5..].iter().sum::<f64>() / 5.0;
    assert!(
        last > first + 0.08,
        "{case}: score went from {first:.3} to {last:.3}: {scores:?}"
    );
}

#[test]
fn ppo_with_gae_raises_the_reward() {
    assert_rises("gae", &scores(config(AdvantageEstimator::Gae), 35, 3e-3));
}

#[test]
fn grpo_raises_the_reward() {
    assert_rises("grpo", &scores(config(AdvantageEstimator::Grpo), 35, 3e-3));
}

#[test]
fn dr_grpo_raises_the_reward() {
    // No std division: advantages keep the reward's scale, small here (scores ≈ 0.05), so the
    // scores are normalised by their running moments first, as a user would.
    let mut cfg = config(AdvantageEstimator::DrGrpo);
    cfg.algorithm.loss_aggregation = LossAggregation::SeqMeanTokenSumNorm;
    cfg.normalize_score = true;
    assert_rises("dr_grpo", &scores(cfg, 35, 3e-3));
}

#[test]
fn rloo_raises_the_reward() {
    // As Dr. GRPO: no std division, scores normalised by their running moments.
    let mut cfg = config(AdvantageEstimator::Rloo);
    cfg.normalize_score = true;
    assert_rises("rloo", &scores(cfg, 35, 3e-3));
}

#[test]
fn reinforce_pp_raises_the_reward() {
    assert_rises(
        "reinforce_pp",
        &scores(config(AdvantageEstimator::ReinforcePp), 35, 3e-3),
    );
}

#[test]
fn reinforce_pp_baseline_raises_the_reward() {
    assert_rises(
        "reinforce_pp_baseline",
        &scores(config(AdvantageEstimator::ReinforcePpBaseline), 35, 3e-3),
    );
}

#[test]
fn dapo_raises_the_reward() {
    // DAPO: clip-higher, token-mean, dynamic sampling, overlong shaping, KL in the loss.
    let mut cfg = config(AdvantageEstimator::Grpo);
    cfg.algorithm.clip_range_high = Some(0.28);
    cfg.algorithm.dynamic_sampling = true;
    cfg.algorithm.overlong_buffer_len = 2;
    cfg.algorithm.overlong_penalty_factor = 0.1;
    cfg.kl.in_loss = true;
    cfg.kl.estimator = KlEstimator::K3;
    assert_rises("DAPO", &scores(cfg, 35, 3e-3));
}
