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
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
