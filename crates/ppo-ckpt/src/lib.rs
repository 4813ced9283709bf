//! Atomic, checksummed checkpoint directories.
//!
//! A checkpoint is written into a hidden temporary directory beside its final place, every
//! file is fsynced, a `manifest.json` with each file's size and FNV-1a 64 checksum is added,
//! and the directory is renamed into place in one step. A crash mid-save leaves at most a
//! stray temporary directory, never a half-written checkpoint; [`verify`] detects damage.
//!
//! ```
//! let root = tempfile::tempdir().unwrap();
//! let dir = root.path().join("step_1");
//! ppo_ckpt::write_atomic(&dir, |tmp| {
//!     std::fs::write(tmp.join("state.json"), b"{}")?;
//!     Ok(())
//! })
//! .unwrap();
//! let manifest = ppo_ckpt::verify(&dir).unwrap();
//! assert_eq!(manifest.files.len(), 1);
//! ```

mod atomic;
mod manifest;

pub use atomic::{CkptError, load_module, save_module, verify, write_atomic};
pub use manifest::{FileEntry, Manifest, fnv1a64};
