//! Finding checkpoints in a run directory: `checkpoints/step_N`, `checkpoints/best`, their
//! `checkpoint.json`, stray temporary directories, and which checkpoint to resume from.
//!
//! ```text
//! RUN_DIR/checkpoints/
//! ├── step_100/              complete or damaged, decided by `verify`
//! ├── .step_300.tmp-12345/   left by a crash mid-save (write_atomic's temporary directory)
//! ├── .deleting-step_50/     left by a crash mid-deletion (see `apply_retention`)
//! └── best/                  full copy of the best checkpoint
//! ```
//!
//! Only real directories count: a symlink or a file named `step_5` is ignored, as are hidden
//! names other than the two temporary forms above.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::{CkptError, verify};

/// Name of the file describing a checkpoint, inside each checkpoint directory.
pub const CHECKPOINT_META: &str = "checkpoint.json";
/// Directory of a run that holds the step checkpoints and `best/`.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Directory, inside [`CHECKPOINTS_DIR`], holding a copy of the best checkpoint.
pub const BEST_DIR: &str = "best";

const DELETING_PREFIX: &str = ".deleting-";

/// Contents of `checkpoint.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Optimiser step the checkpoint was taken after.
    pub step: u64,
    /// Epoch over the prompt data at that step.
    pub epoch: u64,
    /// Evaluation reward at that step, if an evaluation ran.
    pub eval_reward: Option<f64>,
    /// When the checkpoint was written, RFC 3339.
    pub created: String,
    /// Version of ppo-rs that wrote it.
    pub ppo_rs_version: String,
}

/// Whether a checkpoint passed [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointStatus {
    /// The manifest is present and every file matches its size and checksum.
    Complete,
    /// What [`verify`] found wrong, e.g. `policy/model.bpk checksum … differs from manifest …`.
    Damaged(String),
}

/// One `checkpoints/step_N` directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// The `N` of `step_N`.
    pub step: u64,
    /// The directory.
    pub path: PathBuf,
    /// Result of verifying it.
    pub status: CheckpointStatus,
}

impl CheckpointEntry {
    /// Whether the checkpoint passed verification.
    pub fn is_complete(&self) -> bool {
        self.status == CheckpointStatus::Complete
    }
}

/// A hidden directory under `checkpoints/` left behind by an interrupted save or deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrayDir {
    /// The directory.
    pub path: PathBuf,
    /// What left it.
    pub kind: StrayKind,
}

/// What left a [`StrayDir`] behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrayKind {
    /// `.{name}.tmp-{pid}`: [`crate::write_atomic`] of `name` by process `pid` that did not
    /// finish (or is still running).
    Temp {
        /// The destination name, e.g. `step_300` or `best`.
        name: String,
        /// `N` when `name` is `step_N`.
        step: Option<u64>,
        /// Process that created it.
        pid: u32,
    },
    /// `.deleting-…`: a directory renamed for deletion whose removal did not finish.
    Deleting,
}

/// `step_{step}`, the directory name of the checkpoint taken after `step`.
pub fn step_dir_name(step: u64) -> String {
    format!("step_{step}")
}

/// The step of a directory named by [`step_dir_name`]; `None` for any other name, including
/// non-canonical ones such as `step_007` or `step_+7`.
pub fn parse_step_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step_")?;
    let step: u64 = digits.parse().ok()?;
    (step.to_string() == digits).then_some(step)
}

/// `RUN_DIR/checkpoints`.
pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(CHECKPOINTS_DIR)
}

/// Reads `dir/checkpoint.json`. A file that is not valid JSON of the right shape is reported
/// as [`CkptError::Damaged`]; a missing file as [`CkptError::Io`] naming the path.
pub fn read_meta(dir: &Path) -> Result<CheckpointMeta, CkptError> {
    let bytes = fs_err::read(dir.join(CHECKPOINT_META))?;
    serde_json::from_slice(&bytes).map_err(|e| CkptError::Damaged {
        dir: dir.to_path_buf(),
        reason: format!("{CHECKPOINT_META} is not valid ({e})"),
    })
}

/// Writes `meta` as `dir/checkpoint.json` (call it inside [`crate::write_atomic`]'s `fill`, so
/// that the manifest covers it).
pub fn write_meta(dir: &Path, meta: &CheckpointMeta) -> Result<(), CkptError> {
    let json = serde_json::to_vec_pretty(meta).map_err(CkptError::Json)?;
    fs_err::write(dir.join(CHECKPOINT_META), json)?;
    Ok(())
}

/// The real subdirectories of `RUN_DIR/checkpoints` by name; empty when it does not exist.
fn subdirs(run_dir: &Path) -> Result<Vec<(String, PathBuf)>, CkptError> {
    let dir = checkpoints_dir(run_dir);
    let entries = match fs_err::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            out.push((name.to_owned(), entry.path()));
        }
    }
    Ok(out)
}

/// Every `checkpoints/step_N` directory with its step, sorted by step ascending, not verified.
/// A missing `checkpoints/` gives an empty list.
pub fn step_dirs(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>, CkptError> {
    let mut dirs: Vec<(u64, PathBuf)> = subdirs(run_dir)?
        .into_iter()
        .filter_map(|(name, path)| parse_step_dir_name(&name).map(|step| (step, path)))
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Verifies the checkpoint at `path` (reads every file in it).
pub fn checkpoint_entry(step: u64, path: PathBuf) -> CheckpointEntry {
    let status = match verify(&path) {
        Ok(_) => CheckpointStatus::Complete,
        Err(CkptError::Damaged { reason, .. }) => CheckpointStatus::Damaged(reason),
        Err(other) => CheckpointStatus::Damaged(other.to_string()),
    };
    CheckpointEntry { step, path, status }
}

/// Every `checkpoints/step_N` directory, sorted by step ascending, each verified.
///
/// Cost: this reads every file of every checkpoint. [`latest_complete`], [`resume_candidate`]
/// and [`crate::plan_retention`] verify only as many as they need, newest first.
pub fn list_checkpoints(run_dir: &Path) -> Result<Vec<CheckpointEntry>, CkptError> {
    Ok(step_dirs(run_dir)?
        .into_iter()
        .map(|(step, path)| checkpoint_entry(step, path))
        .collect())
}

/// Stray temporary directories under `checkpoints/` (see [`StrayKind`]), sorted by name.
pub fn list_stray_dirs(run_dir: &Path) -> Result<Vec<StrayDir>, CkptError> {
    let mut strays: Vec<StrayDir> = subdirs(run_dir)?
        .into_iter()
        .filter_map(|(name, path)| parse_stray_name(&name).map(|kind| StrayDir { path, kind }))
        .collect();
    strays.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(strays)
}

fn parse_stray_name(name: &str) -> Option<StrayKind> {
    if name.len() > DELETING_PREFIX.len() && name.starts_with(DELETING_PREFIX) {
        return Some(StrayKind::Deleting);
    }
    let (target, "tmp", pid) = crate::atomic::parse_hidden(name)? else {
        return None;
    };
    Some(StrayKind::Temp {
        name: target.to_owned(),
        step: parse_step_dir_name(target),
        pid,
    })
}

/// Hidden name a directory is renamed to before it is removed: `.deleting-{name}`, with a
/// numeric suffix when that is taken.
pub(crate) fn deleting_path(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut candidate = parent.join(format!("{DELETING_PREFIX}{name}"));
    let mut suffix = 1u32;
    while candidate.symlink_metadata().is_ok() {
        suffix += 1;
        candidate = parent.join(format!("{DELETING_PREFIX}{name}-{suffix}"));
    }
    candidate
}

/// The newest complete `step_N` checkpoint, verifying newest first until one passes.
pub fn latest_complete(run_dir: &Path) -> Result<Option<CheckpointEntry>, CkptError> {
    Ok(step_dirs(run_dir)?
        .into_iter()
        .rev()
        .map(|(step, path)| checkpoint_entry(step, path))
        .find(CheckpointEntry::is_complete))
}

/// What to resume from: the newest checkpoint, and when it is damaged the one before it that
/// is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeCandidate {
    /// The newest `step_N` checkpoint, complete or damaged.
    pub newest: CheckpointEntry,
    /// When `newest` is damaged: the newest complete checkpoint older than it, if any. `None`
    /// when `newest` is complete.
    pub fallback: Option<CheckpointEntry>,
}

impl ResumeCandidate {
    /// The checkpoint to resume from: `newest` when complete, else `fallback`.
    pub fn resume_from(&self) -> Option<&CheckpointEntry> {
        if self.newest.is_complete() {
            Some(&self.newest)
        } else {
            self.fallback.as_ref()
        }
    }

    /// A sentence for the user when `newest` is damaged, e.g. "checkpoint runs/a/checkpoints/
    /// step_300 is damaged (policy/model.bpk checksum …); the previous complete one is
    /// runs/a/checkpoints/step_200"; `None` when it is complete.
    pub fn damage_warning(&self) -> Option<String> {
        let CheckpointStatus::Damaged(reason) = &self.newest.status else {
            return None;
        };
        let what_next = match &self.fallback {
            Some(fallback) => format!("the previous complete one is {}", fallback.path.display()),
            None => "there is no earlier complete checkpoint".to_owned(),
        };
        Some(format!(
            "checkpoint {} is damaged ({reason}); {what_next}",
            self.newest.path.display()
        ))
    }
}

/// The newest `step_N` checkpoint and, when it is damaged, the newest complete one before it.
/// `None` when the run has no step checkpoints. Verifies newest first and stops at the first
/// complete one.
pub fn resume_candidate(run_dir: &Path) -> Result<Option<ResumeCandidate>, CkptError> {
    let mut dirs = step_dirs(run_dir)?.into_iter().rev();
    let Some((step, path)) = dirs.next() else {
        return Ok(None);
    };
    let newest = checkpoint_entry(step, path);
    let fallback = if newest.is_complete() {
        None
    } else {
        dirs.map(|(step, path)| checkpoint_entry(step, path))
            .find(CheckpointEntry::is_complete)
    };
    Ok(Some(ResumeCandidate { newest, fallback }))
}

/// `checkpoints/best` and its `checkpoint.json` (whose `step` says which checkpoint it was
/// copied from); `None` when there is no `best/`. Not verified: call [`verify`] for that.
pub fn best_checkpoint(run_dir: &Path) -> Result<Option<(PathBuf, CheckpointMeta)>, CkptError> {
    let best = checkpoints_dir(run_dir).join(BEST_DIR);
    if !best.is_dir() {
        return Ok(None);
    }
    let meta = read_meta(&best)?;
    Ok(Some((best, meta)))
}

/// Total size in bytes of the files under `path` (or of `path` itself when it is a file).
/// Symlinks are not followed; entries that cannot be read count as 0.
pub fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = path.symlink_metadata() else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| dir_size(&entry.path()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_round_trip_and_reject_non_canonical() {
        assert_eq!(step_dir_name(300), "step_300");
        assert_eq!(parse_step_dir_name("step_300"), Some(300));
        assert_eq!(parse_step_dir_name("step_0"), Some(0));
        for bad in [
            "step_", "step_007", "step_+7", "step_3a", "best", "Step_3", "step_-1",
        ] {
            assert_eq!(parse_step_dir_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn stray_names() {
        assert_eq!(
            parse_stray_name(".step_300.tmp-12345"),
            Some(StrayKind::Temp {
                name: "step_300".into(),
                step: Some(300),
                pid: 12345
            })
        );
        assert_eq!(
            parse_stray_name(".best.tmp-7"),
            Some(StrayKind::Temp {
                name: "best".into(),
                step: None,
                pid: 7
            })
        );
        assert_eq!(
            parse_stray_name(".deleting-step_5"),
            Some(StrayKind::Deleting)
        );
        for other in [
            ".deleting-",
            "step_3.tmp-1",
            "..tmp-1",
            ".step_3.tmp-",
            ".step_3.tmp-x",
        ] {
            assert_eq!(parse_stray_name(other), None, "{other}");
        }
    }
}
