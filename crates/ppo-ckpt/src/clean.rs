//! Cleaning a run's checkpoints by hand (`ppo-cli clean-checkpoints`, `cargo xtask
//! clean-checkpoints`): the plan of [`plan_retention`] printed entry by entry, then applied.

use std::io::{self, Write};
use std::path::Path;

use crate::atomic::CkptError;
use crate::retention::{Decision, PlanKind, apply_retention, plan_retention};
use crate::run_dir::CHECKPOINTS_DIR;

/// What to keep when cleaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanOptions {
    /// Keep the N newest complete checkpoints (the latest complete one and `best/` are always
    /// kept).
    pub keep_last_n: usize,
    /// Also keep the `step_N` that `best/` was copied from.
    pub keep_best: bool,
    /// Print what would be deleted, delete nothing.
    pub dry_run: bool,
}

fn not_a_run(message: String) -> CkptError {
    CkptError::Io(io::Error::new(io::ErrorKind::NotFound, message))
}

/// Plans retention for `run_dir`, prints every directory under `checkpoints/` with its fate,
/// size and reason to `out`, deletes (unless `dry_run`) and prints the space freed.
pub fn clean_checkpoints(
    run_dir: &Path,
    options: &CleanOptions,
    out: &mut dyn Write,
) -> Result<(), CkptError> {
    if !run_dir.is_dir() {
        return Err(not_a_run(format!(
            "run directory {} does not exist",
            run_dir.display()
        )));
    }
    let checkpoints = run_dir.join(CHECKPOINTS_DIR);
    if !checkpoints.is_dir() {
        return Err(not_a_run(format!(
            "{} has no {CHECKPOINTS_DIR}/ directory; is it a run directory?",
            run_dir.display()
        )));
    }
    let plan = plan_retention(run_dir, options.keep_last_n, options.keep_best)?;
    let recent = match options.keep_last_n {
        0 | 1 => String::new(),
        n => format!(", the {n} newest complete ones"),
    };
    let best_source = if options.keep_best {
        ", best's source"
    } else {
        ""
    };
    let dry_run = if options.dry_run { " (dry run)" } else { "" };
    writeln!(
        out,
        "{}: keeping best/, the latest complete checkpoint{recent}{best_source}{dry_run}",
        checkpoints.display(),
    )?;
    if plan.entries().is_empty() {
        writeln!(out, "  (no checkpoints)")?;
    }
    for entry in plan.entries() {
        let (fate, reason) = match &entry.decision {
            Decision::Keep(reason) => ("keep", reason.to_string()),
            Decision::Delete(reason) if options.dry_run => ("would delete", reason.to_string()),
            Decision::Delete(reason) => ("delete", reason.to_string()),
        };
        let name = match entry.kind {
            PlanKind::Best {
                source_step: Some(step),
            } => format!("{} (step_{step})", entry.name()),
            _ => entry.name(),
        };
        writeln!(
            out,
            "  {fate:<12} {name:<28} {:>10}  {reason}",
            human_size(entry.bytes)
        )?;
    }
    if options.dry_run {
        let bytes = plan.bytes_to_free();
        writeln!(out, "would free {} ({bytes} bytes)", mib(bytes))?;
        return Ok(());
    }
    let report = apply_retention(&plan)?;
    for gone in &report.already_gone {
        writeln!(out, "  note: {} was already gone", gone.display())?;
    }
    writeln!(
        out,
        "freed {} ({} bytes)",
        mib(report.freed_bytes),
        report.freed_bytes
    )?;
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `512 B`, `3.4 KiB`, `12.0 MiB`, `1.5 GiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_readable() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 * 1024 + 512), "3.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        assert_eq!(mib(5 << 20), "5.0 MiB");
    }
}
