//! The device layer: the one place that names burn's backends, so that replacing LibTorch
//! (burn's `tch` backend is deprecated upstream) touches this file only.

use anyhow::{Result, bail};
use burn::tensor::Device;

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
