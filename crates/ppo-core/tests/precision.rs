//! PPO with a bf16-compute policy and critic: the step runs, its metrics are finite, the
//! parameters and optimiser moments stay f32 (master weights), and the first minibatch sees a
//! ratio of 1 (inference and training forward compute the same bf16 arithmetic).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Device, Tensor};
use ppo_core::{CharMatchReward, PpoTrainer, letters_task};
use ppo_models::{ByteTokenizer, CausalLm, Precision, Rng, TransformerConfig, ValueModel};

mod common;

use common::schedule;

/// A GAE trainer (policy and critic) whose models compute in `precision`.
fn trainer(precision: Precision, seed: u64) -> PpoTrainer {
    let config = common::config();
    assert!(config.has_critic());
    let device = Device::flex();
    let model_config = TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE);
    let mut rng = Rng::new(seed);
    let policy = CausalLm::init(&model_config, &mut rng, &device).with_compute_dtype(precision);
    let critic = ValueModel::from_backbone(policy.backbone(), &mut rng);
    assert_eq!(critic.compute_dtype(), precision);
    PpoTrainer::new(
        config,
        policy,
        Some(critic),
        schedule(1e-3),
        schedule(1e-3),
        rng,
    )
    .unwrap()
}

/// dtype of every float parameter.
#[derive(Default)]
struct Dtypes(Vec<DType>);

impl ModuleVisitor for Dtypes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().dtype());
    }
}

fn all_f32<M: Module>(module: &M) -> bool {
    let mut dtypes = Dtypes::default();
    module.visit(&mut dtypes);
    !dtypes.0.is_empty() && dtypes.0.iter().all(|d| *d == DType::F32)
}

#[test]
fn bf16_compute_ppo_step_keeps_f32_master_weights() {
    let mut t = trainer(Precision::Bf16, 1);
    let tokenizer = ByteTokenizer;
    let mut reward = CharMatchReward::default();

    let rollout = t
        .rollout(&letters_task(4, 5), &tokenizer, &mut reward)
        .unwrap();
    assert!(rollout.old_logprobs.iter().all(|l| l.is_finite()));
    assert!(rollout.values.iter().all(|v| v.is_finite()));
    let stats = t.update(&rollout).unwrap();
    let first = stats.minibatches[0];
    assert!(first.tokens > 0.0);
    println!(
        "bf16 first minibatch: ratio mean {}, min {}, max {}",
        first.ratio / first.tokens,
        first.ratio_min,
        first.ratio_max
    );
    // The rollout's inference pass (no autodiff) and the update's forward (autodiff) run the
    // same bf16 operations on the same values, so the ratio is exactly 1 as in f32.
    assert_eq!(first.ratio_min, 1.0);
    assert_eq!(first.ratio_max, 1.0);
    assert_eq!(first.clipped, 0.0);
    assert!(stats.grad_norm_policy.is_finite() && stats.grad_norm_policy > 0.0);
    assert!(stats.grad_norm_critic.is_finite() && stats.grad_norm_critic > 0.0);

    let (_, metrics) = t
        .step(&letters_task(4, 6), &tokenizer, &mut reward)
        .unwrap();
    for (name, value) in &metrics.0 {
        assert!(value.is_finite(), "{name} = {value}");
    }
    println!(
        "bf16 step: ratio_mean {:?}, approx_kl {:?}",
        metrics.get("ratio_mean"),
        metrics.get("approx_kl")
    );

    // Master weights: the parameters and the AdamW moments stay f32, the compute stays bf16.
    assert_eq!(t.policy().compute_dtype(), Precision::Bf16);
    let critic = t.critic().unwrap();
    assert_eq!(critic.compute_dtype(), Precision::Bf16);
    assert!(all_f32(t.policy()), "policy parameters are f32");
    assert!(all_f32(critic), "critic parameters are f32");
    let (policy_optim, critic_optim) = t.optimizers();
    for optim in [policy_optim, critic_optim.unwrap()] {
        let (moments, _) = optim.named_tensors();
        assert!(!moments.is_empty());
        for (name, tensor) in &moments {
            assert_eq!(tensor.dtype(), DType::F32, "{name}");
        }
    }
}
