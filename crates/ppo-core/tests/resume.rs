//! Restoring a trainer from its state, optimiser bytes and burnpack weights continues the
//! run bit for bit; evaluation and gradient checkpointing do not change training.

use burn::module::Module;
use burn::tensor::Device;
use ppo_core::{
    CharMatchReward, KlConfig, KlEstimator, Metrics, OptimizerConfig, PpoConfig, PpoTrainer,
    letters_task,
};
use ppo_models::{ByteTokenizer, CausalLm, Rng, SamplingConfig, TransformerConfig, ValueModel};
use ppo_sched::{ScheduleConfig, ScheduleKind, Scheduler};

mod common;

/// The shared configuration with accumulation, an adaptive k3 KL, score shaping and weight
/// decay switched on, so that every piece of restored state matters.
fn config() -> PpoConfig {
    PpoConfig {
        gradient_accumulation_steps: 2,
        kl: KlConfig {
            estimator: KlEstimator::K3,
            coef: 0.05,
            target: Some(0.5),
            horizon: 1000.0,
            in_loss: false,
        },
        sampling: SamplingConfig {
            max_new_tokens: 5,
            temperature: 0.9,
            ..Default::default()
        },
        forward_batch_size: 3,
        missing_eos_penalty: Some(0.1),
        normalize_score: true,
        policy_optimizer: OptimizerConfig {
            weight_decay: 0.01,
            ..Default::default()
        },
        critic_optimizer: OptimizerConfig::default(),
        ..common::config()
    }
}

fn trainer(config: PpoConfig) -> PpoTrainer {
    trainer_on(config, &Device::flex())
}

fn trainer_on(config: PpoConfig, device: &Device) -> PpoTrainer {
    let model_config = TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE);
    let mut rng = Rng::new(11);
    let policy = CausalLm::init(&model_config, &mut rng, device);
    let critic = config
        .has_critic()
        .then(|| ValueModel::from_backbone(policy.backbone(), &mut rng));
    let schedule = |lr| {
        Scheduler::new(ScheduleConfig {
            learning_rate: lr,
            min_lr: 1e-5,
            warmup_steps: 3,
            total_steps: 40,
            kind: ScheduleKind::Cosine,
        })
        .unwrap()
    };
    PpoTrainer::new(config, policy, critic, schedule(2e-3), schedule(1e-3), rng).unwrap()
}

/// Metrics that are functions of the computation (timings excluded).
fn deterministic(m: &Metrics) -> Vec<(String, u64)> {
    m.0.iter()
        .filter(|(k, _)| !k.starts_with("time/") && k != "tokens_per_second")
        .map(|(k, v)| (k.clone(), v.to_bits()))
        .collect()
}

fn step(t: &mut PpoTrainer, i: usize) -> Vec<(String, u64)> {
    let batch = letters_task(4, 100 + i as u64);
    // Under dynamic sampling, further batches come from a stream that is a function of `i`.
    let mut round = 0;
    let mut more = || {
        round += 1;
        Some(letters_task(4, 10_000 + 100 * i as u64 + round))
    };
    let (_, m) = t
        .step_with(
            &batch,
            &mut more,
            &ByteTokenizer,
            &mut CharMatchReward::default(),
        )
        .unwrap();
    deterministic(&m)
}

/// Saves after two steps, takes three more; a trainer rebuilt from the seed and restored from
/// the files takes the same three steps bit for bit.
fn check_resume(config: PpoConfig) {
    check_resume_on(config, &Device::flex());
}

fn check_resume_on(config: PpoConfig, device: &Device) {
    let dir = tempfile::tempdir().unwrap();
    let mut a = trainer_on(config.clone(), device);
    for i in 0..2 {
        step(&mut a, i);
    }
    let state = a.state();
    let po = a.optimizers().0.named_tensors();
    let co = a.optimizers().1.map(|o| o.named_tensors());
    a.policy()
        .clone()
        .save_file(dir.path().join("p.bpk"))
        .unwrap();
    if let Some(critic) = a.critic() {
        critic.clone().save_file(dir.path().join("c.bpk")).unwrap();
    }
    let expected: Vec<_> = (2..5).map(|i| step(&mut a, i)).collect();

    // a new process: everything rebuilt from the seed, then overwritten from the files
    let state: ppo_core::TrainerState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let mut b = trainer_on(config, device);
    let policy = b
        .policy()
        .clone()
        .try_load_file(dir.path().join("p.bpk"))
        .unwrap();
    let critic = b.critic().map(|c| {
        let critic = c.clone().try_load_file(dir.path().join("c.bpk")).unwrap();
        (critic, co.unwrap())
    });
    b.restore(state, policy, critic, po).unwrap();
    let resumed: Vec<_> = (2..5).map(|i| step(&mut b, i)).collect();
    assert_eq!(resumed, expected);
}

#[test]
fn restored_trainer_continues_bit_for_bit() {
    check_resume(config());
}

/// LibTorch's CPU kernels are deterministic for a given thread count: resume is exact there
/// too (with and without a critic).
#[cfg(feature = "tch")]
#[test]
fn restored_trainer_continues_bit_for_bit_on_libtorch() {
    #[allow(deprecated)]
    let device = Device::libtorch();
    check_resume_on(config(), &device);
    let grpo = common::with_estimator(config(), ppo_core::AdvantageEstimator::Grpo);
    check_resume_on(grpo, &device);
}

#[test]
fn every_estimator_resumes_bit_for_bit() {
    for estimator in common::ESTIMATORS {
        check_resume(common::with_estimator(config(), estimator));
    }
}

#[test]
fn dapo_resumes_bit_for_bit() {
    // Dynamic sampling (extra prompt batches), clip-higher, token-level aggregation, overlong
    // shaping, truncated responses masked out, KL in the loss.
    let mut config = common::with_estimator(config(), ppo_core::AdvantageEstimator::Grpo);
    config.algorithm.dynamic_sampling = true;
    config.algorithm.clip_range_high = Some(0.28);
    config.algorithm.overlong_buffer_len = 2;
    config.algorithm.mask_truncated = true;
    config.algorithm.dual_clip = Some(3.0);
    config.kl.in_loss = true;
    check_resume(config);
}

#[test]
fn restore_without_optimizer_state_would_differ() {
    // guards the test above: losing the AdamW moments must change the continuation
    let mut a = trainer(config());
    step(&mut a, 0);
    let state = a.state();
    let fresh = trainer(config());
    let po = fresh.optimizers().0.named_tensors();
    let co = fresh.optimizers().1.unwrap().named_tensors();
    let (policy, critic) = (a.policy().clone(), a.critic().unwrap().clone());
    let expected = step(&mut a, 1);
    let mut b = trainer(config());
    b.restore(state, policy, Some((critic, co)), po).unwrap();
    assert_ne!(step(&mut b, 1), expected);
}

#[test]
fn evaluation_reports_metrics_and_leaves_training_untouched() {
    let mut a = trainer(config());
    let mut b = trainer(config());
    step(&mut a, 0);
    step(&mut b, 0);
    let eval_set = letters_task(5, 7);
    let greedy = SamplingConfig {
        greedy: true,
        max_new_tokens: 5,
        ..Default::default()
    };
    let out = a
        .evaluate(
            &eval_set,
            &ByteTokenizer,
            &mut CharMatchReward::default(),
            &greedy,
            &mut Rng::new(0),
        )
        .unwrap();
    let m = &out.metrics;
    for key in [
        "eval_reward",
        "eval_entropy",
        "eval_response_length",
        "eval_kl",
        "eval_accuracy",
    ] {
        assert!(m.get(key).unwrap().is_finite(), "{key}");
    }
    assert!((0.0..=5.0).contains(&m.get("eval_response_length").unwrap()));
    assert_eq!(out.samples.len(), 5);
    // greedy evaluation is deterministic
    let again = a
        .evaluate(
            &eval_set,
            &ByteTokenizer,
            &mut CharMatchReward::default(),
            &greedy,
            &mut Rng::new(99),
        )
        .unwrap();
    assert_eq!(again.metrics, out.metrics);
    // and it does not consume the trainer's random stream
    assert_eq!(step(&mut a, 1), step(&mut b, 1));
}

#[test]
fn gradient_checkpointing_gives_the_same_training() {
    let mut plain = trainer(config());
    let mut ckpt = trainer(PpoConfig {
        gradient_checkpointing: true,
        ..config()
    });
    let strategy = |t: &PpoTrainer| {
        format!(
            "{:?}",
            t.policy()
                .backbone()
                .device()
                .gradient_checkpointing_strategy()
        )
    };
    assert_ne!(strategy(&plain), strategy(&ckpt), "{}", strategy(&ckpt));
    for i in 0..2 {
        let (x, y) = (step(&mut plain, i), step(&mut ckpt, i));
        assert_eq!(
            strategy(&ckpt),
            "Some(Balanced)",
            "kept after optimiser steps"
        );
        for ((k, a), (_, b)) in x.iter().zip(&y) {
            let (a, b) = (f64::from_bits(*a), f64::from_bits(*b));
            assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{k}: {a} vs {b}");
        }
    }
}
