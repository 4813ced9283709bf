//! `cargo xtask ci`: runs the same checks as `.ci/run`, in the same order, stopping at the first failure.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One step of the CI pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Run `cargo` with these arguments in the workspace root.
    Cargo(&'static [&'static str]),
    /// The layering check, run in-process (what `cargo xtask tidy` does).
    Tidy,
}

impl Step {
    /// The command line as `.ci/run` spells it, e.g. `cargo test --workspace`.
    pub fn command_line(&self) -> String {
        match self {
            Step::Cargo(args) => format!("cargo {}", args.join(" ")),
            Step::Tidy => "cargo xtask tidy".to_owned(),
        }
    }
}

/// The CI steps, in order. Keep in sync with `.ci/run` (a test checks this).
pub const CI_STEPS: &[Step] = &[
    Step::Cargo(&["fmt", "--all", "--", "--check"]),
    Step::Cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]),
    Step::Tidy,
    Step::Cargo(&["test", "--workspace", "--release"]),
];

/// Runs every step of [`CI_STEPS`] in the workspace at `root`, printing each command first and
/// stopping at (and returning) the first failure.
pub fn run_ci(root: &Path) -> Result<()> {
    for step in CI_STEPS {
        let line = step.command_line();
        println!("==> {line}");
        match step {
            Step::Cargo(args) => {
                let status = Command::new(crate::cargo_bin())
                    .args(*args)
                    .current_dir(root)
                    .status()
                    .with_context(|| format!("starting `{line}`"))?;
                if !status.success() {
                    bail!("`{line}` failed ({status})");
                }
            }
            Step::Tidy => {
                let summary =
                    crate::tidy::tidy(root).with_context(|| format!("`{line}` failed"))?;
                print_tidy_summary(&summary);
            }
        }
    }
    println!("==> ci: all {} steps passed", CI_STEPS.len());
    Ok(())
}

/// Prints the one-line success message of `cargo xtask tidy`.
pub fn print_tidy_summary(summary: &crate::tidy::TidySummary) {
    println!(
        "tidy: crate layering OK ({} crates, {} workspace dependency edges)",
        summary.crates, summary.edges
    );
}

/// Extracts the `cargo ...` command lines from the text of a `.ci/run` script (comments, blank
/// lines and other shell lines skipped; a leading `exec ` dropped; whitespace normalised).
pub fn script_cargo_commands(script: &str) -> Vec<String> {
    script
        .lines()
        .map(str::trim)
        .map(|l| l.strip_prefix("exec ").unwrap_or(l).trim_start())
        .filter(|l| l.starts_with("cargo "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_the_documented_commands_in_order() {
        let lines: Vec<String> = CI_STEPS.iter().map(Step::command_line).collect();
        assert_eq!(
            lines,
            [
                "cargo fmt --all -- --check",
                "cargo clippy --workspace --all-targets -- -D warnings",
                "cargo xtask tidy",
                "cargo test --workspace --release",
            ]
        );
    }

    #[test]
    fn script_commands_are_extracted() {
        let script = "#!/usr/bin/env bash\n# CI entry point\nset -euo pipefail\ncd \"$(dirname \"$0\")/..\"\n\ncargo fmt --all -- --check\n  cargo   test --workspace\nexec cargo xtask tidy\n";
        assert_eq!(
            script_cargo_commands(script),
            [
                "cargo fmt --all -- --check",
                "cargo test --workspace",
                "cargo xtask tidy"
            ]
        );
    }
}
