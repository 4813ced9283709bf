//! Library half of `cargo xtask`: project chores that are easier to write (and test) in Rust than in shell.
//!
//! The binary in `src/main.rs` only dispatches subcommands; everything it runs lives here so that
//! integration tests (see `tests/layering.rs`) can call the same code against the real workspace.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub mod bench;
pub mod bench_ppo;
pub mod ci;
pub mod clean;
pub mod plot;
pub mod tidy;

/// Root of the Cargo workspace (the directory holding the top-level `Cargo.toml`).
///
/// Derived from this crate's manifest directory, so it does not depend on the current working
/// directory `cargo xtask` was invoked from.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.to_path_buf())
}

/// The `cargo` executable to use for sub-invocations: `$CARGO` when set (it is, under `cargo run`
/// and `cargo test`), otherwise `cargo` from `PATH`.
pub fn cargo_bin() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}
