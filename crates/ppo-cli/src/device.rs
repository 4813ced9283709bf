//! The device layer: the one place that names burn's backends, so that replacing LibTorch
//! (burn's `tch` backend is deprecated upstream) touches this file only.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;

use crate::config::RawConfig;

/// The backends this binary was built with, for `ppo-cli --version`.
#[cfg(feature = "tch")]
macro_rules! backends {
    () => {
        "flex, tch:cpu, tch:cuda:N (LibTorch)"
    };
}
/// The backends this binary was built with, for `ppo-cli --version`.
#[cfg(not(feature = "tch"))]
macro_rules! backends {
    () => {
        "flex (build with `--features tch` for tch:cpu, tch:cuda:N)"
    };
}
pub(crate) use backends;

/// Where each model of a run lives (`[devices]`, each "" = the top-level `device`).
#[derive(Clone, Debug)]
pub struct Placement {
    pub policy: Device,
    pub reference: Device,
    pub critic: Device,
    pub reward: Device,
    /// The device specs as resolved, in the order policy, reference, critic, reward.
    pub specs: [String; 4],
}

impl Placement {
    /// Parses `device` and `[devices]`; errors name the key.
    pub fn of(raw: &RawConfig) -> Result<Self> {
        parse_device(&raw.device).context("invalid config key `device` (or --device)")?;
        let d = &raw.devices;
        let spec = |role: &str, value: &str| -> Result<(String, Device)> {
            let spec = if value.is_empty() { &raw.device } else { value };
            let device = parse_device(spec)
                .with_context(|| format!("invalid config key `devices.{role}`"))?;
            Ok((spec.to_owned(), device))
        };
        let (policy_spec, policy) = spec("policy", &d.policy)?;
        let (reference_spec, reference) = spec("reference", &d.reference)?;
        let (critic_spec, critic) = spec("critic", &d.critic)?;
        let (reward_spec, reward) = spec("reward", &d.reward)?;
        Ok(Self {
            policy,
            reference,
            critic,
            reward,
            specs: [policy_spec, reference_spec, critic_spec, reward_spec],
        })
    }

    /// Whether every role shares one device.
    pub fn is_single(&self) -> bool {
        self.specs.iter().all(|s| s == &self.specs[0])
    }

    /// `policy=… reference=… critic=… reward=…` for the log.
    pub fn describe(&self) -> String {
        let [p, r, c, w] = &self.specs;
        format!("policy={p} reference={r} critic={c} reward={w}")
    }
}

/// Parses `flex`, `tch:cpu`, `tch:cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device> {
    match spec {
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "tch")]
        "tch:cpu" =>
        {
            #[allow(deprecated)]
            Ok(Device::libtorch())
        }
        #[cfg(feature = "tch")]
        s if s.starts_with("tch:cuda:") => {
            let index: usize =
                anyhow::Context::with_context(s["tch:cuda:".len()..].parse::<usize>(), || {
                    format!("device {s:?}: expected tch:cuda:N with N a GPU index")
                })?;
            #[allow(deprecated)]
            Ok(Device::libtorch_cuda(index))
        }
        s if s.starts_with("tch:") => {
            bail!("device {s:?} needs LibTorch: rebuild with `--features tch` (see README)")
        }
        s if s == "cuda" || s == "gpu" || s.starts_with("cuda:") => {
            let index = s.strip_prefix("cuda:").unwrap_or("0");
            bail!(
                "unknown device {s:?}: GPUs are reached through LibTorch, write \"tch:cuda:{index}\" \
                 (with a binary built with `--features tch`, see README)"
            )
        }
        s => bail!("unknown device {s:?} (expected flex, tch:cpu or tch:cuda:N)"),
    }
}
