//! ppo-core
