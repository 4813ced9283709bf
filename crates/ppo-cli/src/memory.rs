//! What a run will hold in memory, told before any model is built: parameters, gradients and
//! AdamW moments per role (f32 masters; frozen roles in their `[precision]` dtype), per device,
//! against the memory the machine has available for the roles on CPU devices.

use std::path::Path;

use ppo_models::TransformerConfig;
use ppo_models::hf;

use ppo_models::Precision;

use crate::config::{CriticInit, RawConfig, RawRewardSource};
use crate::device::Placement;

/// One model of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Role {
    /// "policy", "reference", "critic" or "reward".
    pub name: &'static str,
    /// Parameters.
    pub params: u64,
    /// Trained roles also hold a gradient and two AdamW moments per trained parameter.
    pub trained: bool,
    /// Parameters that train (all of a trained role's, or its LoRA adapters and head).
    pub trained_params: u64,
    /// A frozen role that shares the weights of another (the reference of a LoRA run).
    pub shared_with: Option<&'static str>,
    /// Bytes per stored weight: 4 (f32; trained roles always keep f32 masters) or 2 (a frozen
    /// role in bfloat16).
    pub weight_bytes: u64,
    /// Where it lives (`[devices]`, resolved).
    pub device: String,
}

impl Role {
    /// A role of `params` parameters in f32 on `device`.
    fn new(name: &'static str, params: u64, trained: bool, device: &str) -> Self {
        Self {
            name,
            params,
            trained,
            trained_params: if trained { params } else { 0 },
            shared_with: None,
            weight_bytes: 4,
            device: device.to_owned(),
        }
    }

    /// Bytes of weights (+ f32 gradients + two f32 moments of the trained parameters).
    pub fn bytes(&self) -> u64 {
        if self.shared_with.is_some() {
            0
        } else if self.trained {
            self.params * 4 + self.trained_params * 3 * 4
        } else {
            self.params * self.weight_bytes
        }
    }

    /// Whether it lives in the machine's memory (flex, tch:cpu) rather than a GPU's.
    fn on_host(&self) -> bool {
        !self.device.starts_with("tch:cuda")
    }
}

/// Parameters of a critic on `backbone`: the causal LM's less its untied head, plus the
/// `[hidden, 1]` value head.
fn critic_params(backbone: &TransformerConfig) -> u64 {
    let head = if backbone.tie_word_embeddings {
        0
    } else {
        backbone.vocab_size * backbone.hidden_size
    };
    (backbone.num_params() - head + backbone.hidden_size) as u64
}

/// Parameters of a value model (critic or reward: backbone + one-output head) built from the
/// Hugging Face model in `dir` (`None` when its config cannot be read: the build reports that
/// error properly).
fn value_model_params(dir: &str) -> Option<u64> {
    if hf::is_deberta(Path::new(dir)).unwrap_or(false) {
        return hf::read_deberta_config(Path::new(dir))
            .ok()
            .map(|config| config.num_params() as u64);
    }
    hf::load_config(Path::new(dir))
        .ok()
        .map(|config| critic_params(&config))
}

/// The shape of the critic's backbone (`None` when its config cannot be read).
fn critic_backbone(raw: &RawConfig, policy: &TransformerConfig) -> Option<TransformerConfig> {
    let m = &raw.model;
    if !m.critic.is_empty() {
        hf::load_config(Path::new(&m.critic)).ok()
    } else if m.critic_init == CriticInit::Reward {
        hf::load_config(Path::new(&m.reward)).ok()
    } else {
        Some(policy.clone())
    }
}

/// The models `raw` will build, with `policy` the resolved policy shape, on the devices of
/// `placement`.
pub fn roles(raw: &RawConfig, policy: &TransformerConfig, placement: &Placement) -> Vec<Role> {
    let [
        policy_device,
        reference_device,
        critic_device,
        reward_device,
    ] = &placement.specs;
    let frozen_bytes = |p: Precision| if p == Precision::F32 { 4 } else { 2 };
    let m = &raw.model;
    let policy_params = policy.num_params() as u64;
    let critic = if !raw.algorithm.advantage_estimator.needs_critic() {
        None
    } else if !m.critic.is_empty() {
        value_model_params(&m.critic)
    } else if m.critic_init == CriticInit::Reward {
        value_model_params(&m.reward)
    } else {
        Some(critic_params(policy))
    };
    // LoRA: the adapters (and the critic's head) train over frozen weights; the reference is
    // the policy's base itself when it lives on the same device in the same dtype.
    let lora = raw.lora.config();
    let adapters = |lora: Option<&ppo_models::LoraConfig>, shape: &TransformerConfig| {
        lora.map(|l| l.num_params(shape) as u64)
    };
    let policy_adapters = adapters(lora.as_ref(), policy);
    let policy_role = match policy_adapters {
        Some(a) => Role {
            params: policy_params + a,
            trained_params: a,
            ..Role::new("policy", policy_params, true, policy_device)
        },
        None => Role::new("policy", policy_params, true, policy_device),
    };
    let shares = policy_adapters.is_some()
        && reference_device == policy_device
        && raw.precision.reference == Precision::F32;
    let mut roles = vec![
        policy_role,
        Role {
            weight_bytes: frozen_bytes(raw.precision.reference),
            shared_with: shares.then_some("policy"),
            ..Role::new("reference", policy_params, false, reference_device)
        },
    ];
    if let Some(params) = critic {
        let shape = critic_backbone(raw, policy);
        let critic_lora = raw.lora.critic_config();
        roles.push(match (critic_lora, shape) {
            (Some(l), Some(shape)) => {
                let a = l.num_params(&shape) as u64;
                Role {
                    params: params + a,
                    // The adapters and the value head.
                    trained_params: a + shape.hidden_size as u64,
                    ..Role::new("critic", params, true, critic_device)
                }
            }
            _ => Role::new("critic", params, true, critic_device),
        });
    }
    let reward_model = raw
        .reward
        .sources
        .iter()
        .any(|s| matches!(s, RawRewardSource::Model { .. }));
    if reward_model && let Some(params) = value_model_params(&m.reward) {
        roles.push(Role {
            weight_bytes: frozen_bytes(raw.precision.reward),
            ..Role::new("reward", params, false, reward_device)
        });
    }
    roles
}

/// `MemAvailable` of /proc/meminfo in bytes (Linux; `None` elsewhere).
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// The plan as log lines: one per role, a total per device, and — when the roles on CPU
/// devices exceed `available` — a warning naming what lowers it. Returns `(info lines,
/// warning)`.
pub fn describe(roles: &[Role], available: Option<u64>) -> (Vec<String>, Option<String>) {
    let mut lines = Vec::new();
    for r in roles {
        let weights = r.params * 4;
        let trained = r.trained_params * 4;
        let detail = if let Some(other) = r.shared_with {
            format!("frozen, the {other}'s base weights (LoRA: no copy of its own)")
        } else if r.trained && r.trained_params < r.params {
            format!(
                "weights {:.2} (frozen but {:.1} M trained: LoRA) + gradients {:.3} + AdamW \
                 moments {:.3} GiB",
                gib(weights),
                r.trained_params as f64 / 1e6,
                gib(trained),
                gib(2 * trained)
            )
        } else if r.trained {
            format!(
                "weights {:.2} + gradients {:.2} + AdamW moments {:.2} GiB",
                gib(weights),
                gib(weights),
                gib(2 * weights)
            )
        } else {
            "weights only (frozen)".to_owned()
        };
        let dtype = if r.weight_bytes == 4 { "f32" } else { "bf16" };
        lines.push(format!(
            "memory: {} {:.1} M parameters, {:.2} GiB {dtype} on {}: {detail}",
            r.name,
            r.params as f64 / 1e6,
            gib(r.bytes()),
            r.device
        ));
    }
    let mut devices: Vec<&str> = roles.iter().map(|r| r.device.as_str()).collect();
    devices.dedup();
    devices.sort_unstable();
    devices.dedup();
    for device in devices.iter().filter(|d| d.starts_with("tch:cuda")) {
        let total: u64 = roles
            .iter()
            .filter(|r| r.device == *device)
            .map(Role::bytes)
            .sum();
        lines.push(format!(
            "memory: {:.2} GiB on {device} for models, gradients and optimiser states, plus \
             activations (the GPU's free memory is not checked)",
            gib(total)
        ));
    }
    let total: u64 = roles.iter().filter(|r| r.on_host()).map(Role::bytes).sum();
    let avail = available.map_or("unknown".to_owned(), |a| format!("{:.1} GiB", gib(a)));
    lines.push(format!(
        "memory: {:.2} GiB in this machine's memory for models, gradients and optimiser states, \
         plus activations (batch-dependent); available now: {avail}",
        gib(total)
    ));
    let warning = available.filter(|&a| total > a).map(|a| {
        format!(
            "this run needs at least {:.1} GiB but {:.1} GiB are available: it will likely be \
             killed for memory. Lower it with smaller training.mini_batch_size / \
             training.forward_batch_size (activations), training.gradient_checkpointing = true, \
             precision.reference = \"bfloat16\" (a frozen role in half the memory), a smaller \
             model, or a machine with more memory",
            gib(total),
            gib(a)
        )
    });
    (lines, warning)
}

/// A field of `/proc/self/status` in MiB (Linux; NaN elsewhere).
pub fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen3_06b_plan_by_hand() {
        let config = TransformerConfig::qwen3_0_6b();
        // Qwen3-0.6B: 596 M parameters with tied embeddings (transformers counts 596,049,920).
        assert_eq!(config.num_params(), 596_049_920);
        let critic = critic_params(&config);
        assert_eq!(critic, 596_049_920 + 1024);
        let roles = [
            Role::new("policy", 596_049_920, true, "flex"),
            Role::new("reference", 596_049_920, false, "flex"),
            Role::new("critic", critic, true, "flex"),
        ];
        // 16 + 4 + 16 bytes per parameter.
        let total: u64 = roles.iter().map(Role::bytes).sum();
        assert_eq!(total, 596_049_920 * 36 + 1024 * 16);
        let (lines, warning) = describe(&roles, Some(16 << 30));
        assert_eq!(lines.len(), 4);
        assert!(
            lines[0].contains("policy 596.0 M") && lines[0].contains("8.88 GiB"),
            "{lines:?}"
        );
        assert!(lines[3].contains("19.98 GiB"), "{lines:?}");
        let warning = warning.unwrap();
        assert!(warning.contains("gradient_checkpointing"), "{warning}");
        assert!(describe(&roles, Some(32 << 30)).1.is_none());
        assert!(describe(&roles, None).1.is_none());
    }

    #[test]
    fn lora_plan_by_hand() {
        let sets: Vec<String> = [
            "lora.rank=16",
            "lora.target_modules=[\"q_proj\",\"v_proj\"]",
        ]
        .map(String::from)
        .to_vec();
        let resolved = crate::config::load(None, &sets).unwrap();
        let placement = Placement::of(&resolved.raw).unwrap();
        let roles = roles(&resolved.raw, &TransformerConfig::qwen3_0_6b(), &placement);
        let p = 596_049_920u64;
        // q_proj 1024 → 2048, v_proj 1024 → 1024: 16·(3072 + 2048) per layer, 28 layers.
        let adapters = 16 * (3072 + 2048) * 28;
        assert_eq!(roles[0].params, p + adapters);
        assert_eq!(roles[0].trained_params, adapters);
        // Weights in f32, gradients and two moments only for the adapters.
        assert_eq!(roles[0].bytes(), 4 * (p + adapters) + 12 * adapters);
        // The reference is the policy's base: nothing of its own.
        assert_eq!(roles[1].shared_with, Some("policy"));
        assert_eq!(roles[1].bytes(), 0);
        // The critic: its backbone's adapters and the value head train.
        assert_eq!(roles[2].trained_params, adapters + 1024);
        assert_eq!(roles[2].params, p + 1024 + adapters);
        let (lines, _) = describe(&roles, None);
        assert!(lines[1].contains("no copy of its own"), "{lines:?}");
        assert!(lines[0].contains("2.3 M trained: LoRA"), "{lines:?}");
        // In bf16 the reference is a copy of its own again (half the size).
        let sets = [sets, vec!["precision.reference=\"bfloat16\"".into()]].concat();
        let resolved = crate::config::load(None, &sets).unwrap();
        let roles = super::roles(&resolved.raw, &TransformerConfig::qwen3_0_6b(), &placement);
        assert_eq!(roles[1].shared_with, None);
        assert_eq!(roles[1].bytes(), 2 * p);
    }

    #[test]
    fn bf16_frozen_roles_and_gpu_roles_by_hand() {
        let p = 596_049_920u64;
        let roles = [
            Role::new("policy", p, true, "tch:cuda:0"),
            Role {
                weight_bytes: 2,
                ..Role::new("reference", p, false, "tch:cuda:0")
            },
            Role::new("critic", p + 1024, true, "tch:cuda:1"),
            Role {
                weight_bytes: 2,
                ..Role::new("reward", 1000, false, "flex")
            },
        ];
        // A frozen bf16 role: 2 bytes per parameter; trained roles keep f32 masters.
        assert_eq!(roles[1].bytes(), 2 * p);
        assert_eq!(roles[0].bytes(), 16 * p);
        let (lines, warning) = describe(&roles, Some(1 << 30));
        assert!(lines[1].contains("bf16 on tch:cuda:0"), "{lines:?}");
        // 18 bytes per parameter on GPU 0, 16 on GPU 1, only the reward model on the host.
        let gpu0 = lines
            .iter()
            .find(|l| l.contains("GiB on tch:cuda:0 for"))
            .unwrap();
        assert!(gpu0.contains(&format!("{:.2} GiB", gib(18 * p))), "{gpu0}");
        let gpu1 = lines
            .iter()
            .find(|l| l.contains("GiB on tch:cuda:1 for"))
            .unwrap();
        assert!(
            gpu1.contains(&format!("{:.2} GiB", gib(16 * (p + 1024)))),
            "{gpu1}"
        );
        let host = lines.last().unwrap();
        assert!(
            host.contains(&format!("{:.2} GiB in this machine", gib(2000))),
            "{host}"
        );
        assert!(
            warning.is_none(),
            "GPU roles do not count against host memory"
        );
    }
}
