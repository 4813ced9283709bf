//! `cargo xtask plot RUN_DIR [--out DIR]`: draws a run's `logs/metrics.jsonl` as PNG charts
//! with [`ppo_log::plot_file`] and prints the paths written.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Help text for `cargo xtask plot`.
pub const USAGE: &str = "\
usage: cargo xtask plot RUN_DIR [--out DIR]

Draws RUN_DIR/logs/metrics.jsonl as training_metrics_detailed.png (every metric) and
ppo_metrics_with_entropy.png (policy_loss, value_loss, reward, advantage, entropy).

options:
  --out DIR   write the images to DIR instead of RUN_DIR (created if missing)
  -h, --help  print this message";

/// Parsed `cargo xtask plot` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotArgs {
    /// The run directory holding `logs/metrics.jsonl`.
    pub run_dir: PathBuf,
    /// Where to write the images; `None` means the run directory.
    pub out_dir: Option<PathBuf>,
}

impl PlotArgs {
    /// The directory the images go to.
    pub fn out_dir(&self) -> &Path {
        self.out_dir.as_deref().unwrap_or(&self.run_dir)
    }
}

/// Parses the arguments after `plot`: one `RUN_DIR` and an optional `--out DIR`
/// (or `--out=DIR`).
pub fn parse_args(args: &[&str]) -> Result<PlotArgs> {
    let mut run_dir = None;
    let mut out_dir = None;
    let mut rest = args.iter();
    while let Some(&arg) = rest.next() {
        let out = match arg {
            "--out" => Some(*rest.next().context("`--out` needs a directory")?),
            _ => arg.strip_prefix("--out="),
        };
        if let Some(dir) = out {
            if dir.is_empty() {
                bail!("`--out` needs a directory");
            }
            if out_dir.replace(PathBuf::from(dir)).is_some() {
                bail!("`--out` given more than once");
            }
        } else if arg.starts_with('-') {
            bail!("unknown option `{arg}`");
        } else if run_dir.replace(PathBuf::from(arg)).is_some() {
            bail!("expected one RUN_DIR, got another: `{arg}`");
        }
    }
    let run_dir = run_dir.context("missing RUN_DIR")?;
    Ok(PlotArgs { run_dir, out_dir })
}

/// `cargo xtask plot …` with the raw arguments: prints [`USAGE`] for `--help`,
/// parses them (showing [`USAGE`] on a mistake) and runs [`plot`] on stdout.
pub fn main(args: &[&str]) -> Result<()> {
    if args.iter().any(|a| matches!(*a, "-h" | "--help")) {
        println!("{USAGE}");
        return Ok(());
    }
    let args = parse_args(args).map_err(|e| anyhow::anyhow!("{e:#}\n\n{USAGE}"))?;
    plot(&args, &mut std::io::stdout().lock()).map(drop)
}

/// Writes the charts for `args.run_dir` and prints one `wrote PATH` line per image.
pub fn plot(args: &PlotArgs, out: &mut dyn Write) -> Result<Vec<PathBuf>> {
    let metrics = ppo_ckpt::RunDir::new(&args.run_dir).metrics_file();
    let written = ppo_log::plot_file(&metrics, args.out_dir())
        .with_context(|| format!("plotting run {}", args.run_dir.display()))?;
    for path in &written {
        writeln!(out, "wrote {}", path.display())?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppo_log::{MetricsRecord, MetricsWriter, RecordKind};

    fn args(run_dir: &str, out_dir: Option<&str>) -> PlotArgs {
        PlotArgs {
            run_dir: run_dir.into(),
            out_dir: out_dir.map(PathBuf::from),
        }
    }

    #[test]
    fn parses_run_dir_and_out() {
        assert_eq!(parse_args(&["runs/a"]).unwrap(), args("runs/a", None));
        assert_eq!(
            parse_args(&["--out", "pics", "runs/a"]).unwrap(),
            args("runs/a", Some("pics"))
        );
        assert_eq!(
            parse_args(&["runs/a", "--out=pics"]).unwrap(),
            args("runs/a", Some("pics"))
        );
        assert_eq!(args("runs/a", None).out_dir(), Path::new("runs/a"));
    }

    #[test]
    fn rejects_bad_arguments() {
        for (bad, message) in [
            (&[][..], "missing RUN_DIR"),
            (&["a", "b"][..], "expected one RUN_DIR, got another: `b`"),
            (&["a", "--out"][..], "`--out` needs a directory"),
            (&["a", "--out="][..], "`--out` needs a directory"),
            (
                &["a", "--out", "x", "--out", "y"][..],
                "`--out` given more than once",
            ),
            (&["a", "--keep"][..], "unknown option `--keep`"),
        ] {
            let err = parse_args(bad).unwrap_err();
            assert_eq!(err.to_string(), message, "{bad:?}");
        }
    }

    #[test]
    fn plots_a_run_and_prints_the_paths() {
        let run = tempfile::tempdir().unwrap();
        let mut writer = MetricsWriter::create(run.path().join("logs/metrics.jsonl")).unwrap();
        for step in 1..=5 {
            let values = vec![("reward".to_owned(), step as f64 * 0.1)];
            writer
                .write(&MetricsRecord::now(RecordKind::Train, step, values))
                .unwrap();
        }
        let out_dir = run.path().join("pics");
        let args = PlotArgs {
            run_dir: run.path().to_path_buf(),
            out_dir: Some(out_dir.clone()),
        };
        let mut printed = Vec::new();
        let written = plot(&args, &mut printed).unwrap();
        assert_eq!(written.len(), 2);
        assert!(
            written
                .iter()
                .all(|p| p.starts_with(&out_dir) && p.is_file())
        );
        let expected: String = written
            .iter()
            .map(|p| format!("wrote {}\n", p.display()))
            .collect();
        assert_eq!(String::from_utf8(printed).unwrap(), expected);
    }

    #[test]
    fn missing_metrics_file_is_reported_with_its_path() {
        let run = tempfile::tempdir().unwrap();
        let err = plot(&args(run.path().to_str().unwrap(), None), &mut Vec::new()).unwrap_err();
        let chain = format!("{err:#}");
        assert!(chain.contains("metrics.jsonl"), "{chain}");
    }
}
