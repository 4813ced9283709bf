//! Writing a checkpoint directory atomically, verifying it, and saving modules into it.

use std::path::{Path, PathBuf};

use crate::manifest::{FileEntry, MANIFEST, Manifest, checksum_file};

/// What can go wrong with a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CkptError {
    /// Filesystem error, with the path in the message.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The destination already exists.
    #[error("checkpoint directory {0} already exists")]
    Exists(PathBuf),
    /// A JSON file of the checkpoint could not be written.
    #[error("failed to serialise checkpoint JSON")]
    Json(#[source] serde_json::Error),
    /// A file is missing, has the wrong size or checksum, or the manifest is unreadable.
    #[error("checkpoint {dir} is damaged: {reason}")]
    Damaged {
        /// Checkpoint directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// burn could not save or load a module record.
    #[error("failed to {action} module weights at {path}: {message}")]
    Record {
        /// "save" or "load".
        action: &'static str,
        /// The weights file.
        path: PathBuf,
        /// burn's message.
        message: String,
    },
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CkptError> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

fn manifest_of(dir: &Path) -> Result<Manifest, CkptError> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.retain(|p| p != Path::new(MANIFEST));
    files.sort();
    let mut entries = Vec::new();
    for rel in files {
        let (size, sum) = checksum_file(&dir.join(&rel))?;
        entries.push(FileEntry {
            path: rel.to_string_lossy().replace('\\', "/"),
            size,
            fnv1a64: format!("{sum:016x}"),
        });
    }
    Ok(Manifest {
        version: 1,
        files: entries,
    })
}

fn fsync_tree(dir: &Path) -> Result<(), CkptError> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    for rel in files {
        fs_err::File::open(dir.join(rel))?.sync_all()?;
    }
    fs_err::File::open(dir)?.sync_all()?;
    Ok(())
}

/// `dest`'s parent and the hidden sibling `.{name}.{tag}-{pid}` used while writing it.
fn hidden_sibling(dest: &Path, tag: &str) -> (PathBuf, PathBuf) {
    // A bare relative name (`exported`) has the empty path as parent: that is `.`, which can
    // be opened and fsynced.
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sibling = parent.join(format!(".{name}.{tag}-{}", std::process::id()));
    (parent, sibling)
}

/// Creates `dest` atomically: `fill` writes the files into a temporary directory, then the
/// manifest is added, everything is fsynced and the directory is renamed to `dest`.
/// Fails if `dest` exists. On error the temporary directory is removed. `fill` may fail with
/// any error that a [`CkptError`] converts into (its own error type, `anyhow::Error`, …), and
/// that error comes back unchanged.
pub fn write_atomic<E: From<CkptError>>(
    dest: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<Manifest, E> {
    if dest.exists() {
        return Err(CkptError::Exists(dest.to_path_buf()).into());
    }
    let (parent, tmp) = hidden_sibling(dest, "tmp");
    let prepare = || -> Result<(), CkptError> {
        fs_err::create_dir_all(&parent)?;
        if tmp.exists() {
            fs_err::remove_dir_all(&tmp)?;
        }
        fs_err::create_dir_all(&tmp)?;
        Ok(())
    };
    prepare()?;
    let finish = || -> Result<Manifest, CkptError> {
        let manifest = manifest_of(&tmp)?;
        let json = serde_json::to_vec_pretty(&manifest).map_err(CkptError::Json)?;
        fs_err::write(tmp.join(MANIFEST), json)?;
        fsync_tree(&tmp)?;
        fs_err::rename(&tmp, dest)?;
        fs_err::File::open(&parent)?.sync_all()?;
        Ok(manifest)
    };
    let result = fill(&tmp).and_then(|()| finish().map_err(E::from));
    if result.is_err() {
        let _ = fs_err::remove_dir_all(&tmp);
    }
    result
}

/// Like [`write_atomic`], but replaces an existing `dest`: the new directory is completed
/// first, then the old one is renamed aside, the new one renamed into place, and the old one
/// removed. A crash leaves either the old or the new directory in place (or, between the two
/// renames, the old one under a hidden `.{name}.old-{pid}` name, which
/// [`recover_hidden_dirs`] puts back).
pub fn replace_atomic<E: From<CkptError>>(
    dest: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<Manifest, E> {
    let (parent, staged) = hidden_sibling(dest, "new");
    if staged.exists() {
        fs_err::remove_dir_all(&staged).map_err(CkptError::from)?;
    }
    let manifest = write_atomic(&staged, fill)?;
    let swap = || -> Result<(), CkptError> {
        let (_, old) = hidden_sibling(dest, "old");
        if dest.exists() {
            fs_err::rename(dest, &old)?;
        }
        fs_err::rename(&staged, dest)?;
        fs_err::File::open(&parent)?.sync_all()?;
        if old.exists() {
            fs_err::remove_dir_all(&old)?;
        }
        Ok(())
    };
    swap()?;
    Ok(manifest)
}

/// What [`recover_hidden_dirs`] did with one leftover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// A complete replacement (`.{name}.new-{pid}`) whose swap was cut short, put in place.
    Completed(PathBuf),
    /// The previous copy (`.{name}.old-{pid}`) put back where the swap had taken it from.
    Restored(PathBuf),
    /// A leftover nothing needs, removed.
    Removed(PathBuf),
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Completed(p) => write!(
                f,
                "completed the interrupted replacement of {}",
                p.display()
            ),
            Self::Restored(p) => write!(f, "restored the previous {}", p.display()),
            Self::Removed(p) => write!(f, "removed the leftover {}", p.display()),
        }
    }
}

/// `(name, tag, pid)` of a hidden sibling `.{name}.{tag}-{pid}` that [`hidden_sibling`]
/// names (tags `tmp`, `new`, `old`).
pub(crate) fn parse_hidden(file_name: &str) -> Option<(&str, &str, u32)> {
    let rest = file_name.strip_prefix('.')?;
    let (head, pid) = rest.rsplit_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (name, tag) = head.rsplit_once('.')?;
    let ours = !name.is_empty() && matches!(tag, "tmp" | "new" | "old");
    ours.then_some((name, tag, pid.parse().ok()?))
}

/// Cleans up after writers of `parent` that died mid-save (call only while no writer runs,
/// e.g. under the run's lock): an interrupted [`replace_atomic`] is completed when its new
/// copy verifies, or undone when only the old one survives; unfinished temporary directories
/// and leftover old copies are removed. Returns what was done.
pub fn recover_hidden_dirs(parent: &Path) -> Result<Vec<Recovery>, CkptError> {
    if !parent.is_dir() {
        return Ok(Vec::new());
    }
    let mut hidden: Vec<(String, String, PathBuf)> = Vec::new();
    for entry in fs_err::read_dir(parent)? {
        let path = entry?.path();
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(file_name) = file_name
            && path.is_dir()
            && let Some((name, tag, _)) = parse_hidden(&file_name)
        {
            hidden.push((name.to_owned(), tag.to_owned(), path));
        }
    }
    // Temporary directories first (a `.new` may hold one), then new copies before old ones.
    let rank = |tag: &str| match tag {
        "tmp" => 0,
        "new" => 1,
        _ => 2,
    };
    hidden.sort_by(|a, b| rank(&a.1).cmp(&rank(&b.1)).then(a.2.cmp(&b.2)));
    let mut done = Vec::new();
    for (name, tag, path) in hidden {
        let dest = parent.join(&name);
        let usable = tag != "tmp" && !dest.exists() && verify(&path).is_ok();
        if usable {
            fs_err::rename(&path, &dest)?;
            fs_err::File::open(parent)?.sync_all()?;
            done.push(if tag == "new" {
                Recovery::Completed(dest)
            } else {
                Recovery::Restored(dest)
            });
        } else {
            fs_err::remove_dir_all(&path)?;
            done.push(Recovery::Removed(path));
        }
    }
    Ok(done)
}

/// Checks every file of the checkpoint at `dir` against its manifest.
pub fn verify(dir: &Path) -> Result<Manifest, CkptError> {
    let damaged = |reason: String| CkptError::Damaged {
        dir: dir.to_path_buf(),
        reason,
    };
    let text = fs_err::read(dir.join(MANIFEST))
        .map_err(|e| damaged(format!("no readable manifest ({e})")))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| damaged(format!("manifest is not valid JSON ({e})")))?;
    for entry in &manifest.files {
        let (size, sum) = checksum_file(&dir.join(&entry.path))
            .map_err(|e| damaged(format!("{} unreadable ({e})", entry.path)))?;
        if size != entry.size {
            return Err(damaged(format!(
                "{} has {size} bytes, manifest says {}",
                entry.path, entry.size
            )));
        }
        let sum = format!("{sum:016x}");
        if sum != entry.fnv1a64 {
            return Err(damaged(format!(
                "{} checksum {sum} differs from manifest {}",
                entry.path, entry.fnv1a64
            )));
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_relative_destination_is_staged_in_the_current_directory() {
        let (parent, staged) = hidden_sibling(Path::new("exported"), "new");
        assert_eq!(parent, Path::new("."));
        assert_eq!(staged.parent(), Some(Path::new(".")));
        let (parent, _) = hidden_sibling(Path::new("runs/a/final"), "new");
        assert_eq!(parent, Path::new("runs/a"));
    }
    use crate::{load_module, save_module};
    use burn::module::Module;
    use burn::module::Param;
    use burn::tensor::{Device, Tensor, TensorData};

    #[derive(Module, Debug)]
    struct Small {
        weight: Param<Tensor<2>>,
    }

    fn small(values: Vec<f32>) -> Small {
        Small {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(values, [2, 2]),
                &Device::flex(),
            )),
        }
    }

    #[test]
    fn module_round_trip_is_bit_exact_and_damage_is_detected() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("final");
        let m = small(vec![1.5, -2.25, 1e-7, 3.0]);
        write_atomic(&dir, |tmp| save_module(&m, &tmp.join("policy.bpk"))).unwrap();
        verify(&dir).unwrap();
        let loaded = load_module(small(vec![0.0; 4]), &dir.join("policy.bpk")).unwrap();
        let a: Vec<f32> = m
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        let b: Vec<f32> = loaded
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        assert_eq!(a, b);
        // no temporary directory left behind
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
        // flip one byte: verify names the file
        let path = dir.join("policy.bpk");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();
        let err = verify(&dir).unwrap_err().to_string();
        assert!(
            err.contains("policy.bpk") && err.contains("damaged"),
            "{err}"
        );
    }

    #[test]
    fn replace_swaps_in_a_complete_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("best");
        replace_atomic(&dir, |tmp| {
            fs_err::write(tmp.join("a"), b"1").map_err(CkptError::Io)
        })
        .unwrap();
        replace_atomic(&dir, |tmp| {
            fs_err::write(tmp.join("b"), b"2").map_err(CkptError::Io)
        })
        .unwrap();
        assert!(!dir.join("a").exists());
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"2");
        verify(&dir).unwrap();
        // a failed fill leaves the old directory untouched
        let failed = replace_atomic(&dir, |_| {
            Err(CkptError::Io(std::io::Error::from(
                std::io::ErrorKind::StorageFull,
            )))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"2");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn leftovers_of_a_killed_swap_are_completed_restored_or_removed() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        let write = |name: &str, content: &[u8]| {
            write_atomic(&p.join(name), |tmp| {
                fs_err::write(tmp.join("a"), content).map_err(CkptError::Io)
            })
            .unwrap();
        };
        // killed between the two renames of replace_atomic: best/ gone, both copies hidden
        write(".best.new-41", b"new");
        write(".best.old-41", b"old");
        // killed after renaming the old copy back in place... of final/: old copy left over
        write("final", b"current");
        write(".final.old-42", b"stale");
        // a swap whose new copy never completed: the old one is put back
        std::fs::create_dir(p.join(".epoch_1.new-43")).unwrap();
        write(".epoch_1.old-43", b"epoch");
        // an unfinished write, and something that is not ours
        std::fs::create_dir_all(p.join(".step_3.tmp-44/policy")).unwrap();
        std::fs::create_dir(p.join(".cache")).unwrap();
        let done = recover_hidden_dirs(p).unwrap();
        assert_eq!(std::fs::read(p.join("best/a")).unwrap(), b"new");
        assert_eq!(std::fs::read(p.join("final/a")).unwrap(), b"current");
        assert_eq!(std::fs::read(p.join("epoch_1/a")).unwrap(), b"epoch");
        let mut left: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".cache", "best", "epoch_1", "final"]);
        assert!(done.contains(&Recovery::Completed(p.join("best"))));
        assert!(done.contains(&Recovery::Restored(p.join("epoch_1"))));
        assert_eq!(done.len(), 6, "{done:?}");
    }

    #[test]
    fn failed_fill_leaves_nothing_and_existing_dest_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("step_2");
        let err = write_atomic(&dir, |tmp| {
            std::fs::write(tmp.join("a"), b"x")?;
            Err(CkptError::Io(std::io::Error::from(
                std::io::ErrorKind::StorageFull,
            )))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
        write_atomic(&dir, |_| Ok::<_, CkptError>(())).unwrap();
        assert!(matches!(
            write_atomic(&dir, |_| Ok::<_, CkptError>(())),
            Err(CkptError::Exists(_))
        ));
    }
}
