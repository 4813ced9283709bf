//! What a run will hold in memory, told before any model is built: parameters, gradients and
//! AdamW moments per role (all f32), against the memory the machine has available.

use std::path::Path;

use ppo_models::TransformerConfig;
use ppo_models::hf;

use crate::config::{CriticInit, RawConfig, RawRewardSource};

/// One model of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Role {
    /// "policy", "reference", "critic" or "reward".
    pub name: &'static str,
    /// Parameters.
    pub params: u64,
    /// Trained roles also hold a gradient and two AdamW moments per parameter.
    pub trained: bool,
}

impl Role {
    /// Bytes of weights (+ gradients + moments when trained), f32.
    pub fn bytes(&self) -> u64 {
        self.params * 4 * if self.trained { 4 } else { 1 }
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

/// The models `raw` will build, with `policy` the resolved policy shape.
pub fn roles(raw: &RawConfig, policy: &TransformerConfig) -> Vec<Role> {
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
    let mut roles = vec![
        Role {
            name: "policy",
            params: policy_params,
            trained: true,
        },
        Role {
            name: "reference",
            params: policy_params,
            trained: false,
        },
    ];
    if let Some(params) = critic {
        roles.push(Role {
            name: "critic",
            params,
            trained: true,
        });
    }
    let reward_model = raw
        .reward
        .sources
        .iter()
        .any(|s| matches!(s, RawRewardSource::Model { .. }));
    if reward_model && let Some(params) = value_model_params(&m.reward) {
        roles.push(Role {
            name: "reward",
            params,
            trained: false,
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

/// The plan as log lines: one per role, a total, and — when the total exceeds `available` —
/// a warning naming what lowers it. Returns `(info lines, warning)`.
pub fn describe(roles: &[Role], available: Option<u64>) -> (Vec<String>, Option<String>) {
    let mut lines = Vec::new();
    for r in roles {
        let weights = r.params * 4;
        let detail = if r.trained {
            format!(
                "weights {:.2} + gradients {:.2} + AdamW moments {:.2} GiB",
                gib(weights),
                gib(weights),
                gib(2 * weights)
            )
        } else {
            "weights only (frozen)".to_owned()
        };
        lines.push(format!(
            "memory: {} {:.1} M parameters, {:.2} GiB f32: {detail}",
            r.name,
            r.params as f64 / 1e6,
            gib(r.bytes())
        ));
    }
    let total: u64 = roles.iter().map(Role::bytes).sum();
    let avail = available.map_or("unknown".to_owned(), |a| format!("{:.1} GiB", gib(a)));
    lines.push(format!(
        "memory: {:.2} GiB for models, gradients and optimiser states, plus activations \
         (batch-dependent); available now: {avail}",
        gib(total)
    ));
    let warning = available.filter(|&a| total > a).map(|a| {
        format!(
            "this run needs at least {:.1} GiB but {:.1} GiB are available: it will likely be \
             killed for memory. Lower it with smaller training.mini_batch_size / \
             training.forward_batch_size (activations), training.gradient_checkpointing = true, \
             a smaller model, or a machine with more memory (bf16 frozen roles and LoRA are \
             not available in this version)",
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

    fn q06() -> TransformerConfig {
        TransformerConfig {
            vocab_size: 151_936,
            hidden_size: 1024,
            intermediate_size: 3072,
            num_hidden_layers: 28,
            num_attention_heads: 16,
            num_key_value_heads: 8,
            head_dim: 128,
            tie_word_embeddings: true,
            ..TransformerConfig::tiny(151_936)
        }
    }

    #[test]
    fn qwen3_06b_plan_by_hand() {
        let config = q06();
        // Qwen3-0.6B: 596 M parameters with tied embeddings (transformers counts 596,049,920).
        assert_eq!(config.num_params(), 596_049_920);
        let critic = critic_params(&config);
        assert_eq!(critic, 596_049_920 + 1024);
        let roles = [
            Role {
                name: "policy",
                params: 596_049_920,
                trained: true,
            },
            Role {
                name: "reference",
                params: 596_049_920,
                trained: false,
            },
            Role {
                name: "critic",
                params: critic,
                trained: true,
            },
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
}
