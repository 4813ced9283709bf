//! One `train` at a time per output directory: an exclusive advisory lock on
//! `OUTPUT_DIR/.lock` (holding the owner's PID), taken before anything in the directory is
//! read or written and released by the kernel when the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ppo_ckpt::{LOCK_FILE, RunDir};

/// The held lock. Dropping it leaves the file (its lock is gone with the descriptor); a
/// directory this lock created and nothing else wrote into is removed again, so a run that
/// fails before writing (a bad config, say) leaves no empty directory behind.
pub struct RunLock {
    _file: File,
    dir: PathBuf,
    /// The highest directory `acquire` created (`dir` itself or an ancestor, e.g. `runs/`).
    created: Option<PathBuf>,
}

impl RunLock {
    /// Locks `dir` (created if absent), or fails naming the PID of the process holding it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let created = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .last()
            .map(Path::to_path_buf);
        fs_err::create_dir_all(dir)?;
        let path = RunDir::new(dir).lock_file();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "unknown PID".to_owned(),
                    pid => format!("PID {pid}"),
                };
                bail!(
                    "output directory {} is in use by another ppo-cli train ({holder}); wait for \
                     it to end, stop it, or choose another --output-dir",
                    dir.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(Self {
            _file: file,
            dir: dir.to_path_buf(),
            created,
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let Some(created) = &self.created else {
            return;
        };
        let only_the_lock = std::fs::read_dir(&self.dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .all(|e| e.file_name() == LOCK_FILE)
        });
        if only_the_lock {
            let _ = std::fs::remove_dir_all(&self.dir);
            // Directories created on the way (`runs/` for the default runs/<timestamp>) go too
            // while empty; `remove_dir` leaves a non-empty one alone.
            for parent in self.dir.ancestors().skip(1) {
                if !parent.starts_with(created) || std::fs::remove_dir(parent).is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_pid_and_released_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        let first = RunLock::acquire(&dir).unwrap();
        let err = RunLock::acquire(&dir).err().unwrap().to_string();
        let pid = std::process::id().to_string();
        assert!(err.contains("in use") && err.contains(&pid), "{err}");
        std::fs::write(dir.join("metrics.jsonl"), "{}").unwrap();
        drop(first);
        // released, and a directory with content is kept
        let again = RunLock::acquire(&dir).unwrap();
        drop(again);
        assert!(dir.join("metrics.jsonl").exists());
    }

    #[test]
    fn a_directory_left_empty_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("new");
        drop(RunLock::acquire(&dir).unwrap());
        assert!(!dir.exists());
        // one that existed before stays
        std::fs::create_dir(&dir).unwrap();
        drop(RunLock::acquire(&dir).unwrap());
        assert!(dir.is_dir());
    }
}
