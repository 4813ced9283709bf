//! What TensorBoard's own reader sees in a directory (`scripts/read_tensorboard.py`), shared by
//! the ppo-log and ppo-cli TensorBoard tests: included with `#[path = …] mod tensorboard_reader;`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// What TensorBoard's reader saw in a directory.
#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
pub struct Seen {
    pub files: Vec<String>,
    pub file_versions: Vec<String>,
    /// Values as TensorBoard's 32-bit floats; `None` for NaN and infinities.
    pub scalars: BTreeMap<String, Vec<(u64, Option<f64>)>>,
    pub texts: BTreeMap<String, Vec<(u64, String)>>,
    pub raw_counts: BTreeMap<String, u64>,
}

/// Runs `scripts/read_tensorboard.py` on `dir` with `python`.
pub fn read_with_tensorboard(python: &Path, dir: &Path) -> Seen {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/read_tensorboard.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dir)
        .output()
        .expect("the TensorBoard python runs");
    assert!(
        out.status.success(),
        "read_tensorboard.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("read_tensorboard.py prints JSON")
}
