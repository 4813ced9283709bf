//! `cargo xtask clean-checkpoints RUN_DIR --keep N [--keep-best] [--dry-run]`: applies the
//! retention rules of `ppo_ckpt::plan_retention` to a run directory by hand, printing each
//! checkpoint's fate and size and the space freed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use ppo_ckpt::CleanOptions;

/// Usage line of the subcommand.
pub const USAGE: &str =
    "usage: cargo xtask clean-checkpoints RUN_DIR --keep N [--keep-best] [--dry-run]

  --keep N       keep the N newest complete checkpoints (the latest complete one and best/
                 are always kept, even with --keep 0)
  --keep-best    also keep the step_N that best/ was copied from
  --dry-run      print what would be deleted, delete nothing";

/// Parsed arguments of `clean-checkpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanArgs {
    /// The run directory (holding `checkpoints/`).
    pub run_dir: PathBuf,
    /// `--keep N`.
    pub keep_last_n: usize,
    /// `--keep-best`.
    pub keep_best: bool,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// Parses the arguments after `clean-checkpoints`. `--keep` is required and takes `N` as the
/// next argument or as `--keep=N`.
pub fn parse_args(args: &[&str]) -> Result<CleanArgs> {
    let mut run_dir: Option<PathBuf> = None;
    let mut keep_last_n = None;
    let mut keep_best = false;
    let mut dry_run = false;
    let mut rest = args.iter();
    while let Some(&arg) = rest.next() {
        let keep_value = match arg {
            "--keep-best" => {
                keep_best = true;
                continue;
            }
            "--dry-run" => {
                dry_run = true;
                continue;
            }
            "--keep" => Some(*rest.next().context("`--keep` needs a number")?),
            _ => arg.strip_prefix("--keep="),
        };
        if let Some(value) = keep_value {
            ensure!(keep_last_n.is_none(), "`--keep` given twice");
            let n = value
                .parse::<usize>()
                .with_context(|| format!("`--keep {value}`: expected a whole number"))?;
            keep_last_n = Some(n);
        } else if arg.starts_with('-') {
            bail!("unknown option `{arg}`");
        } else if let Some(first) = &run_dir {
            bail!(
                "one RUN_DIR expected, got `{}` and `{arg}`",
                first.display()
            );
        } else {
            run_dir = Some(PathBuf::from(arg));
        }
    }
    Ok(CleanArgs {
        run_dir: run_dir.context("missing RUN_DIR")?,
        keep_last_n: keep_last_n.context("missing `--keep N`")?,
        keep_best,
        dry_run,
    })
}

/// `cargo xtask clean-checkpoints …` with the raw arguments: prints [`USAGE`] for `--help`,
/// parses them (showing [`USAGE`] on a mistake) and runs [`clean_checkpoints`] on stdout.
pub fn main(args: &[&str]) -> Result<()> {
    if args.iter().any(|a| matches!(*a, "-h" | "--help")) {
        println!("{USAGE}");
        return Ok(());
    }
    let args = parse_args(args).map_err(|e| anyhow::anyhow!("{e:#}\n\n{USAGE}"))?;
    clean_checkpoints(&args, &mut std::io::stdout().lock())
}

/// Runs [`ppo_ckpt::clean_checkpoints`] for `args` (the same code as `ppo-cli
/// clean-checkpoints`), printing to `out`.
pub fn clean_checkpoints(args: &CleanArgs, out: &mut dyn Write) -> Result<()> {
    let options = CleanOptions {
        keep_last_n: args.keep_last_n,
        keep_best: args.keep_best,
        dry_run: args.dry_run,
    };
    Ok(ppo_ckpt::clean_checkpoints(&args.run_dir, &options, out)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppo_ckpt::CHECKPOINTS_DIR;
    use std::path::Path;

    fn args(run_dir: &Path, keep_last_n: usize, keep_best: bool, dry_run: bool) -> CleanArgs {
        CleanArgs {
            run_dir: run_dir.to_path_buf(),
            keep_last_n,
            keep_best,
            dry_run,
        }
    }

    fn fake_run(steps: &[u64], best_from: u64) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let checkpoints = root.path().join(CHECKPOINTS_DIR);
        let save = |dir: PathBuf, step: u64| {
            ppo_ckpt::write_atomic(&dir, |tmp| {
                let meta = ppo_ckpt::CheckpointMeta {
                    step,
                    epoch: 0,
                    eval_reward: None,
                    created: "2025-01-01T00:00:00Z".into(),
                    ppo_rs_version: "0.1.0".into(),
                };
                ppo_ckpt::write_meta(tmp, &meta)?;
                std::fs::write(tmp.join("weights.bpk"), vec![1u8; 2000])?;
                Ok::<_, ppo_ckpt::CkptError>(())
            })
            .unwrap();
        };
        for &step in steps {
            save(checkpoints.join(ppo_ckpt::step_dir_name(step)), step);
        }
        save(checkpoints.join("best"), best_from);
        root
    }

    fn remaining(run: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(run.join(CHECKPOINTS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn parses_flags_in_any_order() {
        assert_eq!(
            parse_args(&["runs/a", "--keep", "2"]).unwrap(),
            args(Path::new("runs/a"), 2, false, false)
        );
        assert_eq!(
            parse_args(&["--dry-run", "--keep=0", "--keep-best", "runs/a"]).unwrap(),
            args(Path::new("runs/a"), 0, true, true)
        );
        for (bad, message) in [
            (&["runs/a"][..], "missing `--keep N`"),
            (&["--keep", "2"], "missing RUN_DIR"),
            (&["runs/a", "--keep"], "`--keep` needs a number"),
            (&["runs/a", "--keep", "-1"], "expected a whole number"),
            (&["runs/a", "--keep", "1", "--keep", "2"], "given twice"),
            (&["runs/a", "runs/b", "--keep", "1"], "one RUN_DIR expected"),
            (
                &["runs/a", "--keep", "1", "--force"],
                "unknown option `--force`",
            ),
        ] {
            let err = format!("{:#}", parse_args(bad).unwrap_err());
            assert!(err.contains(message), "{bad:?}: {err}");
        }
    }

    #[test]
    fn dry_run_deletes_nothing_and_says_what_it_would_free() {
        let root = fake_run(&[1, 2, 3], 1);
        let before = remaining(root.path());
        let mut out = Vec::new();
        clean_checkpoints(&args(root.path(), 1, false, true), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(remaining(root.path()), before);
        assert!(out.contains("(dry run)"), "{out}");
        assert_eq!(out.matches("would delete").count(), 2, "{out}");
        let doomed: u64 = ["step_1", "step_2"]
            .iter()
            .map(|n| ppo_ckpt::dir_size(&root.path().join(CHECKPOINTS_DIR).join(n)))
            .sum();
        assert!(
            out.contains(&format!("would free 0.0 MiB ({doomed} bytes)")),
            "{out}"
        );
        assert!(out.contains("best (step_1)"), "{out}");
    }

    #[test]
    fn deletes_and_reports_freed_bytes() {
        let root = fake_run(&[1, 2, 3], 1);
        let step_2 = ppo_ckpt::dir_size(&root.path().join(CHECKPOINTS_DIR).join("step_2"));
        let mut out = Vec::new();
        clean_checkpoints(&args(root.path(), 0, true, false), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(remaining(root.path()), ["best", "step_1", "step_3"]);
        assert!(
            out.contains(&format!("freed 0.0 MiB ({step_2} bytes)")),
            "{out}"
        );
        let line = out.lines().find(|l| l.contains("step_2")).unwrap();
        assert!(
            line.trim_start().starts_with("delete") && line.contains("older than the latest"),
            "{line}"
        );
    }

    #[test]
    fn missing_run_dir_or_checkpoints_is_a_clear_error() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("nope");
        let err = clean_checkpoints(&args(&missing, 1, false, false), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not exist") && err.contains("nope"),
            "{err}"
        );
        let err = clean_checkpoints(&args(root.path(), 1, false, false), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no checkpoints/ directory"), "{err}");
    }
}
