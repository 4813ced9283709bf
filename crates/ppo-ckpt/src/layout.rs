//! The layout of a run directory, in one place: every crate and command that reads or writes
//! a run asks [`RunDir`] for the path instead of spelling it.
//!
//! ```text
//! RUN_DIR/
//! ├── .lock                         one `train` at a time
//! ├── training_config.json/.toml    the resolved config of the run
//! ├── *.png                         plots of the metrics
//! ├── logs/                         log files, metrics.jsonl
//! ├── tb/                           TensorBoard event files (`[tracking] tensorboard`)
//! ├── checkpoints/                  step_N/, best/ (see `run_dir`)
//! ├── epoch_N/                      Hugging Face exports at each epoch end
//! └── final/                        the same at the end
//! ```

use std::path::{Path, PathBuf};

use crate::run_dir::{BEST_DIR, CHECKPOINTS_DIR};

/// Lock file of a running `train`.
pub const LOCK_FILE: &str = ".lock";
/// Directory of the log files and the metrics file.
pub const LOGS_DIR: &str = "logs";
/// The metrics file inside [`LOGS_DIR`]: one JSON record per iteration and evaluation.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Directory of the TensorBoard event files.
pub const TENSORBOARD_DIR: &str = "tb";
/// The resolved configuration with its provenance.
pub const CONFIG_JSON: &str = "training_config.json";
/// The configuration alone, usable with `--config`.
pub const CONFIG_TOML: &str = "training_config.toml";
/// The export written when training ends.
pub const FINAL_DIR: &str = "final";
/// Prefix of the per-epoch exports (`epoch_1`, …).
pub const EPOCH_PREFIX: &str = "epoch_";
/// Extension of the plots drawn into the run directory.
pub const PLOT_EXTENSION: &str = "png";

/// A run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir(PathBuf);

impl RunDir {
    /// The run directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self(root.into())
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// `.lock`.
    pub fn lock_file(&self) -> PathBuf {
        self.0.join(LOCK_FILE)
    }

    /// `logs/`.
    pub fn logs(&self) -> PathBuf {
        self.0.join(LOGS_DIR)
    }

    /// `logs/metrics.jsonl`.
    pub fn metrics_file(&self) -> PathBuf {
        self.logs().join(METRICS_FILE)
    }

    /// `tb/`: TensorBoard event files.
    pub fn tensorboard(&self) -> PathBuf {
        self.0.join(TENSORBOARD_DIR)
    }

    /// `training_config.json`.
    pub fn config_json(&self) -> PathBuf {
        self.0.join(CONFIG_JSON)
    }

    /// `training_config.toml`.
    pub fn config_toml(&self) -> PathBuf {
        self.0.join(CONFIG_TOML)
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.0.join(CHECKPOINTS_DIR)
    }

    /// `checkpoints/<name>` (`step_N` or `best`).
    pub fn checkpoint(&self, name: &str) -> PathBuf {
        self.checkpoints().join(name)
    }

    /// `checkpoints/best`.
    pub fn best_checkpoint(&self) -> PathBuf {
        self.checkpoint(BEST_DIR)
    }

    /// `final/`.
    pub fn final_export(&self) -> PathBuf {
        self.0.join(FINAL_DIR)
    }

    /// `epoch_<epoch>`: the export at the end of epoch `epoch` (1-based).
    pub fn epoch_export(&self, epoch: u64) -> PathBuf {
        self.0.join(format!("{EPOCH_PREFIX}{epoch}"))
    }

    /// Whether the entry `name` of a run directory is the output of a run (checkpoints,
    /// exports, plots, config snapshots, TensorBoard events) — what starting over in the
    /// directory removes; logs and the lock are not.
    pub fn is_run_output(name: &str) -> bool {
        name == CHECKPOINTS_DIR
            || name == TENSORBOARD_DIR
            || name == FINAL_DIR
            || name == CONFIG_JSON
            || name == CONFIG_TOML
            || name
                .strip_prefix(EPOCH_PREFIX)
                .is_some_and(|n| n.parse::<u64>().is_ok())
            || Path::new(name)
                .extension()
                .is_some_and(|e| e == PLOT_EXTENSION)
    }

    /// Whether the entry `name` is written by a run before its first checkpoint.
    pub fn is_written_before_first_checkpoint(name: &str) -> bool {
        matches!(name, LOGS_DIR | CONFIG_JSON | CONFIG_TOML | TENSORBOARD_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_run_outputs() {
        let run = RunDir::new("/r");
        assert_eq!(run.metrics_file(), Path::new("/r/logs/metrics.jsonl"));
        assert_eq!(run.checkpoint("step_3"), Path::new("/r/checkpoints/step_3"));
        assert_eq!(run.best_checkpoint(), Path::new("/r/checkpoints/best"));
        assert_eq!(run.epoch_export(2), Path::new("/r/epoch_2"));
        assert_eq!(run.final_export(), Path::new("/r/final"));
        assert_eq!(run.tensorboard(), Path::new("/r/tb"));
        for name in [
            "checkpoints",
            "tb",
            "final",
            "epoch_12",
            "a.png",
            "training_config.toml",
        ] {
            assert!(RunDir::is_run_output(name), "{name}");
        }
        for name in ["logs", ".lock", "epoch_x", "notes.txt", "my_data"] {
            assert!(!RunDir::is_run_output(name), "{name}");
        }
    }
}
