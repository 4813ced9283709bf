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
    let parent = dest.parent().unwrap_or(Path::new(".")).to_path_buf();
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sibling = parent.join(format!(".{name}.{tag}-{}", std::process::id()));
    (parent, sibling)
}

/// Creates `dest` atomically: `fill` writes the files into a temporary directory, then the
/// manifest is added, everything is fsynced and the directory is renamed to `dest`.
/// Fails if `dest` exists. On error the temporary directory is removed.
pub fn write_atomic(
    dest: &Path,
    fill: impl FnOnce(&Path) -> Result<(), CkptError>,
) -> Result<Manifest, CkptError> {
    if dest.exists() {
        return Err(CkptError::Exists(dest.to_path_buf()));
    }
    let (parent, tmp) = hidden_sibling(dest, "tmp");
    fs_err::create_dir_all(&parent)?;
    if tmp.exists() {
        fs_err::remove_dir_all(&tmp)?;
    }
    fs_err::create_dir_all(&tmp)?;
    let result = (|| {
        fill(&tmp)?;
        let manifest = manifest_of(&tmp)?;
        let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
        fs_err::write(tmp.join(MANIFEST), json)?;
        fsync_tree(&tmp)?;
        fs_err::rename(&tmp, dest)?;
        fs_err::File::open(&parent)?.sync_all()?;
        Ok(manifest)
    })();
    if result.is_err() {
        let _ = fs_err::remove_dir_all(&tmp);
    }
    result
}

/// Like [`write_atomic`], but replaces an existing `dest`: the new directory is completed
/// first, then the old one is renamed aside, the new one renamed into place, and the old one
/// removed. A crash leaves either the old or the new directory in place (or, between the two
/// renames, the old one under a hidden `.{name}.old-{pid}` name).
pub fn replace_atomic(
    dest: &Path,
    fill: impl FnOnce(&Path) -> Result<(), CkptError>,
) -> Result<Manifest, CkptError> {
    let (parent, staged) = hidden_sibling(dest, "new");
    if staged.exists() {
        fs_err::remove_dir_all(&staged)?;
    }
    let manifest = write_atomic(&staged, fill)?;
    let (_, old) = hidden_sibling(dest, "old");
    if dest.exists() {
        fs_err::rename(dest, &old)?;
    }
    fs_err::rename(&staged, dest)?;
    fs_err::File::open(&parent)?.sync_all()?;
    if old.exists() {
        fs_err::remove_dir_all(&old)?;
    }
    Ok(manifest)
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
        replace_atomic(&dir, |tmp| Ok(std::fs::write(tmp.join("a"), b"1")?)).unwrap();
        replace_atomic(&dir, |tmp| Ok(std::fs::write(tmp.join("b"), b"2")?)).unwrap();
        assert!(!dir.join("a").exists());
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"2");
        verify(&dir).unwrap();
        // a failed fill leaves the old directory untouched
        let failed = replace_atomic(&dir, |_| Err(CkptError::Io(std::io::Error::other("full"))));
        assert!(failed.is_err());
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"2");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_fill_leaves_nothing_and_existing_dest_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("step_2");
        let err = write_atomic(&dir, |tmp| {
            std::fs::write(tmp.join("a"), b"x")?;
            Err(CkptError::Io(std::io::Error::other("disk full")))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
        write_atomic(&dir, |_| Ok(())).unwrap();
        assert!(matches!(
            write_atomic(&dir, |_| Ok(())),
            Err(CkptError::Exists(_))
        ));
    }
}
