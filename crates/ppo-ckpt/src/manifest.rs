//! The manifest of a checkpoint directory: every file with its size and checksum.

use serde::{Deserialize, Serialize};

/// Name of the manifest file inside a checkpoint directory.
pub const MANIFEST: &str = "manifest.json";

/// One file of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the checkpoint directory, with `/` separators.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// FNV-1a 64 of the contents, as 16 hex digits.
    pub fnv1a64: String,
}

/// All files of a checkpoint, sorted by path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of the manifest.
    pub version: u32,
    /// The files.
    pub files: Vec<FileEntry>,
}

/// FNV-1a, 64-bit: detects torn or corrupted files (not an integrity guarantee against tampering).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_update(FNV_OFFSET, bytes)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues an FNV-1a 64 `hash` over `bytes` (start from [`fnv1a64`] of the empty slice).
fn fnv1a64_update(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Size and FNV-1a 64 of the file at `path`, read through a 1 MiB buffer (never the whole
/// file in memory).
pub fn checksum_file(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::io::Read;
    let mut file = fs_err::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    let (mut size, mut hash) = (0u64, FNV_OFFSET);
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => return Ok((size, hash)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hash = fnv1a64_update(hash, &buffer[..n]);
        size += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn file_checksum_streams_across_buffer_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            checksum_file(&path).unwrap(),
            (bytes.len() as u64, fnv1a64(&bytes))
        );
    }
}
