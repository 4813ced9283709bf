//! ppo-ckpt
