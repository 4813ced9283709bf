//! Deciding which checkpoints of a run to delete ([`plan_retention`]) and deleting them safely
//! ([`apply_retention`]).
//!
//! Rules, applied to `RUN_DIR/checkpoints`:
//!
//! - `best/` is never deleted.
//! - The latest complete `step_N` is never deleted, even with `keep_last_n = 0`.
//! - The `keep_last_n` newest complete `step_N` are kept; complete ones older than those are
//!   deleted.
//! - With `keep_best`, the `step_N` named by `best/checkpoint.json` is kept, whatever its state.
//! - A damaged `step_N` newer than the latest complete one (or in a run with no complete one)
//!   is kept for inspection; a damaged one older than that is deleted.
//! - A `.deleting-…` directory (a deletion interrupted by a crash) is deleted.
//! - A temporary directory `.{name}.tmp-{pid}` of an interrupted save is deleted only when
//!   process `pid` is known not to be running (Linux: no `/proc/{pid}`; elsewhere it is kept),
//!   and, when `name` is `step_N`, only when `N` is not newer than the latest complete
//!   checkpoint: a save newer than everything complete may be in progress in another process
//!   whose pid this machine cannot see (another host or container sharing the directory).
//!
//! Checkpoints are verified newest first, only until `max(keep_last_n, 1)` complete ones are
//! found; older ones are deleted (or kept as the best source) without being read.

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::atomic::CkptError;
use crate::run_dir::{
    BEST_DIR, CheckpointStatus, StrayKind, checkpoint_entry, checkpoints_dir, deleting_path,
    dir_size, list_stray_dirs, read_meta, step_dirs,
};

/// What a [`PlanEntry`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanKind {
    /// `checkpoints/step_N`; `status` is `None` when it was not verified because its fate does
    /// not depend on it.
    Step {
        /// `N`.
        step: u64,
        /// Verification result, when it was verified.
        status: Option<CheckpointStatus>,
    },
    /// `checkpoints/best`; `source_step` from its `checkpoint.json` (`None` if unreadable).
    Best {
        /// The step it was copied from.
        source_step: Option<u64>,
    },
    /// A hidden leftover of an interrupted save or deletion.
    Stray(StrayKind),
}

/// Why a directory is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeepReason {
    /// `best/` is never deleted.
    Best,
    /// The newest complete `step_N` is never deleted.
    LatestComplete,
    /// One of the `keep_last_n` newest complete checkpoints.
    Recent {
        /// The configured `keep_last_n`.
        keep_last_n: usize,
    },
    /// `best/` was copied from it and `keep_best` is set.
    BestSource,
    /// Damaged, but newer than the latest complete checkpoint: kept for inspection.
    DamagedNewest(String),
    /// Temporary directory whose writing process is still running.
    WriterRunning(u32),
    /// Temporary directory whose writing process may or may not be running.
    WriterUnknown(u32),
    /// Temporary directory of a save newer than the latest complete checkpoint.
    SaveMayBeInProgress(u32),
}

/// Why a directory is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// Complete (or not verified) and older than the `keep` newest complete checkpoints.
    Superseded {
        /// `max(keep_last_n, 1)`.
        keep: usize,
    },
    /// Damaged and older than the latest complete checkpoint.
    Damaged(String),
    /// Temporary directory of a save whose process is gone.
    AbandonedTemp(u32),
    /// Left by an interrupted deletion.
    InterruptedDeletion,
}

/// The fate of one directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Left alone.
    Keep(KeepReason),
    /// Removed by [`apply_retention`].
    Delete(DeleteReason),
}

/// One directory under `checkpoints/` and what retention does with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEntry {
    /// The directory.
    pub path: PathBuf,
    /// What it is.
    pub kind: PlanKind,
    /// Its size in bytes ([`dir_size`]) when the plan was made.
    pub bytes: u64,
    /// Keep or delete, and why.
    pub decision: Decision,
}

impl PlanEntry {
    /// Whether [`apply_retention`] deletes it.
    pub fn deletes(&self) -> bool {
        matches!(self.decision, Decision::Delete(_))
    }

    /// The directory's name, e.g. `step_300` or `.step_400.tmp-12345`.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// What [`apply_retention`] would do. Only [`plan_retention`] makes one, so a plan never names
/// `best/` or the latest complete checkpoint for deletion.
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionPlan {
    run_dir: PathBuf,
    keep_last_n: usize,
    keep_best: bool,
    latest_complete: Option<u64>,
    entries: Vec<PlanEntry>,
}

impl RetentionPlan {
    /// The run directory the plan is for.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The `keep_last_n` it was made with.
    pub fn keep_last_n(&self) -> usize {
        self.keep_last_n
    }

    /// The `keep_best` it was made with.
    pub fn keep_best(&self) -> bool {
        self.keep_best
    }

    /// Step of the latest complete checkpoint, if any.
    pub fn latest_complete(&self) -> Option<u64> {
        self.latest_complete
    }

    /// Every directory considered: `step_N` ascending, then `best/`, then stray directories.
    pub fn entries(&self) -> &[PlanEntry] {
        &self.entries
    }

    /// The entries to delete.
    pub fn to_delete(&self) -> impl Iterator<Item = &PlanEntry> {
        self.entries.iter().filter(|e| e.deletes())
    }

    /// Sum of the sizes of the entries to delete.
    pub fn bytes_to_free(&self) -> u64 {
        self.to_delete().map(|e| e.bytes).sum()
    }
}

/// One directory [`apply_retention`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedDir {
    /// Where it was (before being renamed to `.deleting-…`).
    pub path: PathBuf,
    /// Its size in bytes, measured just before removal.
    pub bytes: u64,
}

/// What [`apply_retention`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// The removed directories, in plan order.
    pub deleted: Vec<DeletedDir>,
    /// Planned for deletion but already gone (e.g. removed by another cleaner).
    pub already_gone: Vec<PathBuf>,
    /// Sum of `deleted[..].bytes`.
    pub freed_bytes: u64,
}

/// Decides the fate of every directory under `RUN_DIR/checkpoints` (see the module docs for
/// the rules). Reads nothing but directory listings, `best/checkpoint.json` and the newest
/// checkpoints' files; deletes nothing. A missing `checkpoints/` gives an empty plan.
pub fn plan_retention(
    run_dir: &Path,
    keep_last_n: usize,
    keep_best: bool,
) -> Result<RetentionPlan, CkptError> {
    let keep = keep_last_n.max(1);
    let best_dir = checkpoints_dir(run_dir).join(BEST_DIR);
    let best_source = if best_dir.is_dir() {
        read_meta(&best_dir).ok().map(|meta| meta.step)
    } else {
        None
    };
    let protected_source = if keep_best { best_source } else { None };

    let mut entries = Vec::new();
    let mut latest_complete = None;
    let mut n_complete = 0usize;
    // Newest first: the fate of older checkpoints depends on how many newer ones are complete.
    for (step, path) in step_dirs(run_dir)?.into_iter().rev() {
        let mut status = None;
        let decision = if n_complete >= keep {
            if protected_source == Some(step) {
                Decision::Keep(KeepReason::BestSource)
            } else {
                Decision::Delete(DeleteReason::Superseded { keep })
            }
        } else {
            let verified = checkpoint_entry(step, path.clone()).status;
            status = Some(verified.clone());
            match verified {
                CheckpointStatus::Complete => {
                    n_complete += 1;
                    if latest_complete.is_none() {
                        latest_complete = Some(step);
                        Decision::Keep(KeepReason::LatestComplete)
                    } else {
                        Decision::Keep(KeepReason::Recent { keep_last_n })
                    }
                }
                CheckpointStatus::Damaged(reason) if latest_complete.is_none() => {
                    Decision::Keep(KeepReason::DamagedNewest(reason))
                }
                CheckpointStatus::Damaged(_) if protected_source == Some(step) => {
                    Decision::Keep(KeepReason::BestSource)
                }
                CheckpointStatus::Damaged(reason) => {
                    Decision::Delete(DeleteReason::Damaged(reason))
                }
            }
        };
        entries.push(PlanEntry {
            bytes: dir_size(&path),
            path,
            kind: PlanKind::Step { step, status },
            decision,
        });
    }
    entries.reverse();

    if best_dir.is_dir() {
        entries.push(PlanEntry {
            bytes: dir_size(&best_dir),
            path: best_dir,
            kind: PlanKind::Best {
                source_step: best_source,
            },
            decision: Decision::Keep(KeepReason::Best),
        });
    }

    for stray in list_stray_dirs(run_dir)? {
        let decision = match &stray.kind {
            StrayKind::Deleting => Decision::Delete(DeleteReason::InterruptedDeletion),
            StrayKind::Temp { step, pid, .. } => match process_running(*pid) {
                Some(true) => Decision::Keep(KeepReason::WriterRunning(*pid)),
                None => Decision::Keep(KeepReason::WriterUnknown(*pid)),
                Some(false) => match (step, latest_complete) {
                    (Some(step), Some(latest)) if *step <= latest => {
                        Decision::Delete(DeleteReason::AbandonedTemp(*pid))
                    }
                    (Some(_), _) => Decision::Keep(KeepReason::SaveMayBeInProgress(*pid)),
                    (None, _) => Decision::Delete(DeleteReason::AbandonedTemp(*pid)),
                },
            },
        };
        entries.push(PlanEntry {
            bytes: dir_size(&stray.path),
            path: stray.path,
            kind: PlanKind::Stray(stray.kind),
            decision,
        });
    }

    Ok(RetentionPlan {
        run_dir: run_dir.to_path_buf(),
        keep_last_n,
        keep_best,
        latest_complete,
        entries,
    })
}

/// Whether process `pid` is running: `Some(true)` for this process, `Some(running)` on Linux
/// with `/proc` mounted, `None` when this cannot be told.
fn process_running(pid: u32) -> Option<bool> {
    if pid == std::process::id() {
        return Some(true);
    }
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        return Some(Path::new("/proc").join(pid.to_string()).exists());
    }
    None
}

/// Deletes the plan's doomed directories. Each is first renamed to a hidden `.deleting-…`
/// name (and the rename made durable), then removed, so a crash or error part-way never
/// leaves a half-deleted directory that looks like a checkpoint; the next plan deletes the
/// leftover. Stops at the first error. A directory already gone is skipped.
pub fn apply_retention(plan: &RetentionPlan) -> Result<RetentionReport, CkptError> {
    let mut report = RetentionReport::default();
    for entry in plan.to_delete() {
        if let Err(e) = entry.path.symlink_metadata()
            && e.kind() == ErrorKind::NotFound
        {
            report.already_gone.push(entry.path.clone());
            continue;
        }
        let doomed = if entry.kind == PlanKind::Stray(StrayKind::Deleting) {
            entry.path.clone()
        } else {
            let hidden = deleting_path(&entry.path);
            fs_err::rename(&entry.path, &hidden)?;
            if let Some(parent) = hidden.parent() {
                fs_err::File::open(parent)?.sync_all()?;
            }
            hidden
        };
        let bytes = dir_size(&doomed);
        match fs_err::remove_dir_all(&doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        report.freed_bytes += bytes;
        report.deleted.push(DeletedDir {
            path: entry.path.clone(),
            bytes,
        });
    }
    Ok(report)
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Best => write!(f, "best checkpoint (never deleted)"),
            Self::LatestComplete => write!(f, "latest complete checkpoint (never deleted)"),
            Self::Recent { keep_last_n } => {
                write!(f, "one of the {keep_last_n} newest complete checkpoints")
            }
            Self::BestSource => write!(f, "best/ was copied from it (keep best)"),
            Self::DamagedNewest(reason) => write!(
                f,
                "damaged ({reason}); newer than the latest complete checkpoint, kept for inspection"
            ),
            Self::WriterRunning(pid) => {
                write!(f, "save in progress: process {pid} is still running")
            }
            Self::WriterUnknown(pid) => {
                write!(f, "cannot tell whether process {pid} is still running")
            }
            Self::SaveMayBeInProgress(pid) => write!(
                f,
                "process {pid} is not running here, but a save newer than the latest complete \
                 checkpoint may be in progress elsewhere"
            ),
        }
    }
}

impl fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Superseded { keep: 1 } => write!(f, "older than the latest complete checkpoint"),
            Self::Superseded { keep } => {
                write!(f, "older than the {keep} newest complete checkpoints")
            }
            Self::Damaged(reason) => write!(
                f,
                "damaged ({reason}) and older than the latest complete checkpoint"
            ),
            Self::AbandonedTemp(pid) => {
                write!(f, "interrupted save: process {pid} is not running")
            }
            Self::InterruptedDeletion => write!(f, "left over from an interrupted deletion"),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keep(reason) => write!(f, "keep: {reason}"),
            Self::Delete(reason) => write!(f, "delete: {reason}"),
        }
    }
}
