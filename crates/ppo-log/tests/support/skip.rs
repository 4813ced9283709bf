//! `report_skip`, shared by the tests that need an outside program (MLflow, TensorBoard,
//! transformers) across crates: included with `#[path = …] mod skip;`.

/// Says that `test` did not run and why: on stdout, and as a line of the file named by
/// `PPO_RS_SKIPPED` when set (`.ci/run` prints that file's lines at the end, so a green run
/// shows what it did not check).
pub fn report_skip(test: &str, reason: &str) {
    println!("SKIPPED {test}: {reason}");
    if let Some(path) = std::env::var_os("PPO_RS_SKIPPED").filter(|p| !p.is_empty()) {
        use std::io::Write;
        let line = format!("{test}: {reason}\n");
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            panic!("cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
}
