//! Reward sources (work in progress).
