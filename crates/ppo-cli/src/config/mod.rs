//! Configuration: the TOML file as written ([`RawConfig`], `raw`), merged over the embedded
//! default and `--set` overrides (`load`), then resolved once into validated library configs
//! (`resolve`). Prompts are not read here: the command that needs them loads them and asks
//! [`Resolved::shape`] for the split and the length of the run.

mod aliases;
mod load;
mod raw;
mod resolve;
#[cfg(test)]
mod tests;

pub use load::{differing_keys, is_resume_locked, load, load_over, load_raw};
pub use raw::*;
pub use resolve::{Resolved, RunShape, eval_sampling, model_config, ppo_config, resolve};

/// The embedded default configuration (`configs/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../../../configs/default.toml");
