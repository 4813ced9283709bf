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
//! // `fill` returns any error a `CkptError` converts into: here `CkptError` itself.
//! ppo_ckpt::write_atomic(&dir, |tmp| {
//!     std::fs::write(tmp.join("state.json"), b"{}")?;
//!     Ok::<_, ppo_ckpt::CkptError>(())
//! })
//! .unwrap();
//! let manifest = ppo_ckpt::verify(&dir).unwrap();
//! assert_eq!(manifest.files.len(), 1);
//! ```

mod atomic;
mod clean;
mod layout;
mod manifest;
mod pack;
mod retention;
mod run_dir;

pub use atomic::{CkptError, Recovery, recover_hidden_dirs, replace_atomic, verify, write_atomic};
pub use clean::{CleanOptions, clean_checkpoints};
pub use layout::{
    CONFIG_JSON, CONFIG_TOML, EPOCH_PREFIX, FINAL_DIR, LOCK_FILE, LOGS_DIR, METRICS_FILE, RunDir,
    TENSORBOARD_DIR,
};
pub use manifest::{FileEntry, MANIFEST, Manifest, checksum_file, fnv1a64};
pub use pack::{
    TensorPack, load_module, load_module_part, load_tensors, save_module, save_module_where,
    save_tensors,
};
pub use retention::{
    Decision, DeleteReason, DeletedDir, KeepReason, PlanEntry, PlanKind, RetentionPlan,
    RetentionReport, apply_retention, plan_retention,
};
pub use run_dir::{
    BEST_DIR, CHECKPOINT_META, CHECKPOINTS_DIR, CheckpointEntry, CheckpointMeta, CheckpointStatus,
    ResumeCandidate, StrayDir, StrayKind, best_checkpoint, checkpoint_entry, checkpoints_dir,
    dir_size, latest_complete, list_checkpoints, list_stray_dirs, parse_step_dir_name, read_meta,
    resume_candidate, step_dir_name, step_dirs, write_meta,
};
