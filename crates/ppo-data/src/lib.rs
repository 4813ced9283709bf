//! Prompt datasets from files (work in progress).
