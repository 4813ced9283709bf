//! PPO update properties: ratio 1 at the start, accumulation equivalence, reward shaping,
//! dynamic sampling, truncated responses (learning: `estimators.rs`).

use burn::tensor::Device;
use ppo_core::{CharMatchReward, PpoConfig, PpoTrainer, letters_task};
use ppo_models::{ByteTokenizer, CausalLm, Rng, TransformerConfig, ValueModel, to_f32_vec};

mod common;

use common::schedule;

use common::config;

fn trainer(config: PpoConfig, seed: u64) -> PpoTrainer {
    let device = Device::flex();
    let model_config = TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE);
    let mut rng = Rng::new(seed);
    let policy = CausalLm::init(&model_config, &mut rng, &device);
    let critic = config
        .has_critic()
        .then(|| ValueModel::from_backbone(policy.backbone(), &mut rng));
    PpoTrainer::new(config, policy, critic, schedule(1e-3), schedule(1e-3), rng).unwrap()
}

#[test]
fn ratio_is_exactly_one_on_the_first_minibatch() {
    for accumulation in [1, 2, 4] {
        let cfg = PpoConfig {
            gradient_accumulation_steps: accumulation,
            ..config()
        };
        let mut t = trainer(cfg, 1);
        let samples = letters_task(4, 5);
        let rollout = t
            .rollout(&samples, &ByteTokenizer, &mut CharMatchReward::default())
            .unwrap();
        let stats = t.update(&rollout).unwrap();
        let first = stats.minibatches[0];
        assert!(first.tokens > 0.0);
        assert_eq!(
            first.ratio_min, 1.0,
            "gradient_accumulation_steps {accumulation}"
        );
        assert_eq!(
            first.ratio_max, 1.0,
            "gradient_accumulation_steps {accumulation}"
        );
        assert_eq!(first.clipped, 0.0);
        // later minibatches see updated weights
        let last = stats.minibatches.last().unwrap();
        assert!(last.ratio_min < 1.0 || last.ratio_max > 1.0);
    }
}

#[test]
fn accumulated_micro_batches_give_the_same_update_as_one_batch() {
    use ppo_core::{AdvantageEstimator as E, LossAggregation as A};
    for (estimator, aggregation) in [
        (E::Gae, A::TokenMean),
        (E::Gae, A::SeqMeanTokenMean),
        (E::Grpo, A::SeqMeanTokenMean),
        (E::DrGrpo, A::SeqMeanTokenSumNorm),
        (E::Rloo, A::SeqMeanTokenSum),
        (E::ReinforcePp, A::TokenMean),
    ] {
        let mut cfg = common::with_estimator(config(), estimator);
        cfg.algorithm.loss_aggregation = aggregation;
        check_accumulation(cfg, &format!("{estimator:?} {aggregation:?}"));
    }
}

fn check_accumulation(base: PpoConfig, case: &str) {
    let probe: Vec<u32> = vec![ByteTokenizer::BOS, 104, 105, 33];
    let run = |accumulation: usize| {
        let cfg = PpoConfig {
            gradient_accumulation_steps: accumulation,
            mini_batch_size: 8,
            ppo_epochs: 1,
            ..base.clone()
        };
        let mut t = trainer(cfg, 2);
        let before = to_f32_vec(t.policy().forward(&probe, &[true; 4], 1, None));
        let rollout = t
            .rollout(
                &letters_task(4, 9),
                &ByteTokenizer,
                &mut CharMatchReward::default(),
            )
            .unwrap();
        t.update(&rollout).unwrap();
        let after = to_f32_vec(t.policy().forward(&probe, &[true; 4], 1, None));
        let values = t
            .critic()
            .map(|c| to_f32_vec(c.forward(&probe, &[true; 4], 1)))
            .unwrap_or_default();
        (rollout.generation.sequences, before, after, values)
    };
    let (seq1, before, one, v1) = run(1);
    let (seq4, _, four, v4) = run(4);
    assert_eq!(seq1, seq4, "{case}: both trainers saw the same rollout");
    let moved = before
        .iter()
        .zip(&one)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        moved > 1e-4,
        "{case}: the update changed the policy ({moved})"
    );
    let diff = one
        .iter()
        .zip(&four)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "{case}: policy differs by {diff}");
    let vdiff = v1
        .iter()
        .zip(&v4)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(vdiff < 1e-5, "{case}: critic differs by {vdiff}");
}

#[test]
fn rollout_shapes_rewards_with_kl_and_score_on_the_last_token() {
    let mut t = trainer(config(), 3);
    let rollout = t
        .rollout(
            &letters_task(4, 1),
            &ByteTokenizer,
            &mut CharMatchReward::default(),
        )
        .unwrap();
    let g = &rollout.generation;
    let r = g.response_len;
    for row in 0..g.batch_size {
        let len = g.response_length(row);
        for i in 0..r {
            let idx = row * r + i;
            let expected_kl_reward = -0.05 * f64::from(rollout.kl[idx]);
            let expected = if i + 1 == len {
                expected_kl_reward + rollout.shaped_scores[row]
            } else {
                expected_kl_reward
            };
            assert!((f64::from(rollout.rewards[idx]) - expected).abs() < 1e-6);
        }
    }
    // the reference is the initial policy: KL is 0 before any update
    assert!(rollout.kl.iter().all(|k| k.abs() < 1e-6));
}

#[test]
fn prompts_longer_than_the_limit_keep_their_last_tokens() {
    let samples = letters_task(4, 5);
    let lengths: Vec<usize> = samples
        .iter()
        .map(|s| ppo_models::Tokenizer::encode_prompt(&ByteTokenizer, &s.prompt).len())
        .collect();
    let limit = 6;
    assert!(lengths.iter().all(|&n| n > limit), "{lengths:?}");
    let cfg = PpoConfig {
        max_prompt_tokens: Some(limit),
        ..config()
    };
    let mut t = trainer(cfg, 3);
    let rollout = t
        .rollout(&samples, &ByteTokenizer, &mut CharMatchReward::default())
        .unwrap();
    assert_eq!(rollout.prompts_truncated, samples.len());
    assert_eq!(rollout.generation.prompt_len, limit);
    // the kept tokens are the prompt's end
    let full = ppo_models::Tokenizer::encode_prompt(&ByteTokenizer, &samples[0].prompt);
    let row = &rollout.generation.sequences[..limit];
    assert_eq!(row, &full[full.len() - limit..]);
    let (_, metrics) = t
        .step(&samples, &ByteTokenizer, &mut CharMatchReward::default())
        .unwrap();
    assert_eq!(metrics.get("prompts_truncated"), Some(4.0));
}

/// Scores 1 for every response to a prompt that starts with an even byte (such groups are
/// uninformative), and the response's length in bytes otherwise.
struct HalfConstant;

impl ppo_core::Reward for HalfConstant {
    fn name(&self) -> &str {
        "half_constant"
    }

    fn score(
        &mut self,
        batch: &[ppo_core::RewardInput<'_>],
    ) -> Result<Vec<f64>, ppo_core::RewardError> {
        Ok(batch
            .iter()
            .map(|input| {
                if input.prompt.as_bytes()[0] % 2 == 0 {
                    1.0
                } else {
                    input.response.len() as f64
                }
            })
            .collect())
    }
}

#[test]
fn dynamic_sampling_keeps_only_groups_whose_scores_differ() {
    let mut cfg = common::with_estimator(config(), ppo_core::AdvantageEstimator::Grpo);
    cfg.algorithm.dynamic_sampling = true;
    cfg.algorithm.max_sampling_rounds = 8;
    let mut t = trainer(cfg, 4);
    let first = letters_task(4, 21);
    let constant_first = first
        .iter()
        .filter(|s| s.prompt.as_bytes()[0] % 2 == 0)
        .count();
    let mut seed = 21;
    let mut asked = 0;
    let mut more = || {
        seed += 1;
        asked += 1;
        Some(letters_task(4, seed))
    };
    let rollout = t
        .rollout_with(&first, &mut more, &ByteTokenizer, &mut HalfConstant)
        .unwrap();
    let g = &rollout.generation;
    assert_eq!(g.batch_size, 4 * 2, "batch_size groups of group_size rows");
    assert_eq!(rollout.samples.len(), 8);
    for group in rollout.scores.chunks(2) {
        assert_ne!(
            group[0], group[1],
            "an uninformative group was kept: {group:?}"
        );
    }
    assert!(rollout.filtered_groups >= constant_first);
    assert_eq!(rollout.sampling_rounds, 1 + asked);
    // Rows of a group share their prompt, and every kept row's tensors line up.
    for pair in rollout.samples.chunks(2) {
        assert_eq!(pair[0].prompt, pair[1].prompt);
    }
    for row in 0..g.batch_size {
        let response = ppo_models::Tokenizer::decode(&ByteTokenizer, &g.response(row));
        assert_eq!(response, rollout.responses[row]);
    }
    let stats = t.update(&rollout).unwrap();
    assert_eq!(stats.minibatches[0].ratio_min, 1.0);
}

#[test]
fn mask_truncated_leaves_responses_without_eos_out_of_the_loss() {
    let mut cfg = config();
    cfg.algorithm.mask_truncated = true;
    cfg.sampling.max_new_tokens = 2; // most rows are cut before EOS
    let mut t = trainer(cfg, 5);
    let rollout = t
        .rollout(
            &letters_task(4, 2),
            &ByteTokenizer,
            &mut CharMatchReward::default(),
        )
        .unwrap();
    let g = &rollout.generation;
    let r = g.response_len;
    assert!(g.finished.iter().any(|f| !f), "some row is truncated");
    for row in 0..g.batch_size {
        for i in 0..r {
            let idx = row * r + i;
            assert_eq!(
                rollout.loss_mask[idx],
                g.response_mask[idx] && g.finished[row]
            );
        }
    }
    let stats = t.update(&rollout).unwrap();
    let loss_tokens: usize = rollout.loss_mask.iter().filter(|&&m| m).count();
    assert_eq!(
        stats.tokens.tokens,
        (loss_tokens * 2) as f64,
        "2 PPO epochs"
    );
}

/// A rollout of `trainer` on the letters task.
fn letters_rollout(t: &mut PpoTrainer) -> ppo_core::Rollout {
    t.rollout(
        &letters_task(4, 3),
        &ByteTokenizer,
        &mut CharMatchReward::default(),
    )
    .unwrap()
}

#[test]
fn nan_losses_skip_their_optimiser_steps_and_leave_the_weights_untouched() {
    let probe: Vec<u32> = vec![ByteTokenizer::BOS, 104, 105, 33];
    let cfg = PpoConfig {
        max_consecutive_skips: 10,
        ..config()
    };
    // 8 rows, minibatches of 4, 2 epochs: 4 optimiser steps per update.
    let mut t = trainer(cfg.clone(), 5);
    let mut rollout = letters_rollout(&mut t);
    let before = to_f32_vec(t.policy().forward(&probe, &[true; 4], 1, None));
    let critic_before = to_f32_vec(t.critic().unwrap().forward(&probe, &[true; 4], 1));
    rollout.advantages.iter_mut().for_each(|a| *a = f32::NAN);
    let stats = t.update(&rollout).unwrap();
    assert_eq!(stats.skipped_steps, 4);
    assert_eq!(t.state().consecutive_skips, 4);
    let after = to_f32_vec(t.policy().forward(&probe, &[true; 4], 1, None));
    let critic_after = to_f32_vec(t.critic().unwrap().forward(&probe, &[true; 4], 1));
    assert_eq!(before, after, "no skipped step reached the policy");
    assert_eq!(critic_before, critic_after, "nor the critic");

    // One poisoned row: only the minibatches holding it (one per epoch) are skipped, the
    // others update, and a step taken resets the count of skips in a row.
    let mut t = trainer(cfg.clone(), 5);
    let mut rollout = letters_rollout(&mut t);
    let r = rollout.generation.response_len;
    rollout.returns[3 * r] = f32::INFINITY;
    let stats = t.update(&rollout).unwrap();
    assert_eq!(
        stats.skipped_steps, 2,
        "an infinite return poisons the value loss"
    );
    let after = to_f32_vec(t.policy().forward(&probe, &[true; 4], 1, None));
    assert!(after.iter().all(|x| x.is_finite()));
    assert_ne!(before, after, "the clean minibatches updated the policy");
    assert!(
        t.state().consecutive_skips <= 1,
        "the last step was taken, or skipped alone"
    );

    // Through `step`, the metric says it.
    let mut t = trainer(cfg, 5);
    let (_, metrics) = t
        .step(
            &letters_task(4, 3),
            &ByteTokenizer,
            &mut CharMatchReward::default(),
        )
        .unwrap();
    assert_eq!(metrics.get("skipped_steps"), Some(0.0));
}

#[test]
fn too_many_skipped_steps_in_a_row_stop_the_update_with_a_clear_error() {
    let mut t = trainer(config(), 6); // max_consecutive_skips = 3
    let mut rollout = letters_rollout(&mut t);
    rollout.advantages.iter_mut().for_each(|a| *a = f32::NAN);
    let err = t.update(&rollout).unwrap_err();
    assert!(
        matches!(err, ppo_core::CoreError::TooManySkippedSteps { count: 3 }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("max_consecutive_skips = 3"), "{text}");
    assert!(text.contains("NaN or infinite"), "{text}");
}
