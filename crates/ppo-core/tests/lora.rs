//! PPO with LoRA adapters on policy and critic: only the adapters (and the critic's value
//! head) move and carry optimiser state; the frozen weights and the reference stay the base
//! model; the first minibatch still sees a ratio of exactly 1.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Device;
use burn::tensor::Tensor;
use ppo_core::{CharMatchReward, PpoTrainer, letters_task};
use ppo_models::{
    ByteTokenizer, CausalLm, LoraConfig, Rng, TransformerConfig, ValueModel, to_f32_vec,
};

mod common;

use common::schedule;

fn lora() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 16.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    }
}

/// Stored values of every float parameter by path: the base, not base + adapter.
#[derive(Default)]
struct Stored {
    path: Vec<String>,
    values: BTreeMap<String, Vec<f32>>,
}

impl ModuleVisitor for Stored {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_owned());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.values
            .insert(self.path.join("."), to_f32_vec(param.base()));
    }
}

fn stored<M: Module>(m: &M) -> BTreeMap<String, Vec<f32>> {
    let mut s = Stored::default();
    m.visit(&mut s);
    s.values
}

const IDS: [u32; 8] = [3, 70, 71, 72, 9, 100, 101, 4];

fn logits(m: &CausalLm) -> Vec<f32> {
    to_f32_vec(m.forward(&IDS, &[true; 8], 1, None))
}

#[test]
fn lora_ppo_moves_only_the_adapters_and_keeps_the_base_as_reference() {
    let device = Device::flex();
    let model_config = TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE);
    let mut rng = Rng::new(5);
    let policy = CausalLm::init(&model_config, &mut rng, &device);
    let critic = ValueModel::from_backbone(policy.backbone(), &mut rng);
    let base_policy = policy.clone();
    let base_critic = stored(&critic);
    let mut t = PpoTrainer::new(
        common::config(),
        policy,
        Some(critic),
        schedule(2e-2),
        schedule(2e-2),
        rng,
    )
    .unwrap();
    let mut lora_rng = Rng::new(6);
    let cfg = lora();
    t.adapt(
        |p| p.with_lora(&cfg, &mut lora_rng),
        |c| c.with_lora(&cfg, &mut Rng::new(7)),
    );
    // B = 0: the adapted policy computes the base.
    assert_eq!(logits(&t.policy().valid()), logits(&base_policy));

    let tokenizer = ByteTokenizer;
    let mut reward = CharMatchReward::default();
    let rollout = t
        .rollout(&letters_task(4, 1), &tokenizer, &mut reward)
        .unwrap();
    let stats = t.update(&rollout).unwrap();
    let first = stats.minibatches[0];
    // Rollout (adapters folded in once) and update (adapters applied in the forward) compute
    // the same log-probabilities.
    assert_eq!((first.ratio_min, first.ratio_max), (1.0, 1.0));
    assert!(stats.grad_norm_policy > 0.0 && stats.grad_norm_critic > 0.0);
    for i in 0..2 {
        t.step(&letters_task(4, 10 + i), &tokenizer, &mut reward)
            .unwrap();
    }

    // The adapted function moved …
    let trained = logits(&t.policy().valid());
    let initial = logits(&base_policy);
    let moved = trained
        .iter()
        .zip(&initial)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        moved > 1e-4,
        "the adapters did not move the policy ({moved})"
    );
    // … but no stored base weight did, and the reference is still the initial policy.
    let base = stored(&base_policy);
    let now = stored(t.policy());
    for (path, values) in &base {
        assert_eq!(&now[path], values, "{path} changed");
    }
    assert_eq!(logits(t.reference()), initial);
    assert!(stored(t.reference()).keys().all(|p| !p.contains(".lora.")));
    let critic_now = stored(t.critic().unwrap());
    for (path, values) in &base_critic {
        let same = &critic_now[path] == values;
        assert_eq!(same, path.starts_with("model."), "{path}: unchanged {same}");
    }

    // Optimiser state exists for exactly the trained parameters.
    let (po, co) = t.optimizers();
    let (_, steps) = po.named_tensors();
    assert!(!steps.is_empty());
    assert!(steps.keys().all(|p| p.contains(".lora.")), "{steps:?}");
    assert_eq!(steps.len(), 2 * 3 * model_config.num_hidden_layers);
    let (_, steps) = co.unwrap().named_tensors();
    assert!(steps.contains_key("score.weight"));
    assert!(
        steps
            .keys()
            .all(|p| p.contains(".lora.") || p == "score.weight")
    );
}
