//! Where a `train` invocation runs and what it resumes from: the output directory (fresh,
//! overwritten, or an existing run), the checkpoint to resume, and the questions asked on a
//! terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ppo_ckpt::{CHECKPOINTS_DIR, LOCK_FILE, RunDir};

use crate::TrainArgs;

/// Where this invocation runs and what it resumes from.
pub struct RunPlan {
    pub out: PathBuf,
    pub resume_from: Option<PathBuf>,
    /// Messages to log once logging is up.
    pub notes: Vec<String>,
}

fn is_checkpoint_dir(path: &Path) -> bool {
    path.join("training_state.json").is_file() || path.join(ppo_ckpt::MANIFEST).is_file()
}

fn ask_yes_no(question: &str) -> Result<bool> {
    eprint!("{question} (y/n): ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn default_output_dir() -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S").to_string();
    let mut dir = PathBuf::from("runs").join(&stamp);
    let mut n = 1;
    while dir.exists() {
        dir = PathBuf::from("runs").join(format!("{stamp}_{n}"));
        n += 1;
    }
    dir
}

/// A fresh run in `dir`: refuses a non-empty directory unless `overwrite`, in which case the
/// previous run's checkpoints, exports, metrics and plots are removed.
fn fresh_output_dir(dir: PathBuf, overwrite: bool, notes: &mut Vec<String>) -> Result<RunPlan> {
    let non_empty = dir.is_dir()
        && fs_err::read_dir(&dir)?.any(|e| e.is_ok_and(|e| e.file_name() != LOCK_FILE));
    if non_empty {
        if !overwrite {
            bail!(
                "output directory {} is not empty; choose another --output-dir, resume it with \
                 --resume auto, or start over there with --resume never --overwrite",
                dir.display()
            );
        }
        for entry in fs_err::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if RunDir::is_run_output(&name) {
                if path.is_dir() {
                    fs_err::remove_dir_all(&path)?;
                } else {
                    fs_err::remove_file(&path)?;
                }
            }
        }
        let metrics = RunDir::new(&dir).metrics_file();
        if metrics.exists() {
            fs_err::remove_file(&metrics)?;
        }
        notes.push(format!(
            "--overwrite: removed the previous run's checkpoints, exports and metrics in {}",
            dir.display()
        ));
    }
    fs_err::create_dir_all(&dir)?;
    Ok(RunPlan {
        out: dir,
        resume_from: None,
        notes: std::mem::take(notes),
    })
}

/// Whether `dir` only holds what a run writes before its first checkpoint (logs, config
/// snapshot, leftovers of an interrupted save): safe to start over without `--overwrite`.
fn holds_only_an_aborted_start(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Ok(false);
    }
    // Nothing but our own lock: a new directory, not an aborted run.
    let mut anything = false;
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ok = match name.as_str() {
            LOCK_FILE => continue,
            CHECKPOINTS_DIR => fs_err::read_dir(&path)?
                .all(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with('.'))),
            name => RunDir::is_written_before_first_checkpoint(name),
        };
        if !ok {
            return Ok(false);
        }
        anything = true;
    }
    Ok(anything)
}

/// The checkpoint to resume from inside `run_dir`: the newest complete one, saying so when a
/// newer one is damaged. `None` when the run has no checkpoint.
fn newest_good_checkpoint(run_dir: &Path, notes: &mut Vec<String>) -> Result<Option<PathBuf>> {
    let Some(candidate) = ppo_ckpt::resume_candidate(run_dir)? else {
        return Ok(None);
    };
    if let Some(warning) = candidate.damage_warning() {
        match candidate.resume_from() {
            Some(_) => notes.push(warning),
            None => bail!("{warning}; start over with --resume never --overwrite"),
        }
    }
    Ok(candidate.resume_from().map(|e| e.path.clone()))
}

/// What this invocation does in `dir`, the run directory [`run_dir_of`] chose (and locked).
pub fn plan_run(args: &TrainArgs, dir: PathBuf) -> Result<RunPlan> {
    let mut notes = Vec::new();
    match args.resume.as_str() {
        "never" => fresh_output_dir(dir, args.overwrite, &mut notes),
        "auto" => match newest_good_checkpoint(&dir, &mut notes)? {
            None => {
                let aborted = holds_only_an_aborted_start(&dir)?;
                if aborted {
                    notes.push(format!(
                        "{} holds a run that stopped before its first checkpoint; starting it over",
                        dir.display()
                    ));
                }
                fresh_output_dir(dir, args.overwrite || aborted, &mut notes)
            }
            Some(ckpt) => {
                let resume = if std::io::stdin().is_terminal() {
                    for note in &notes {
                        eprintln!("warning: {note}");
                    }
                    ask_yes_no(&format!("found checkpoint {}, resume?", ckpt.display()))?
                } else {
                    true
                };
                if resume {
                    Ok(RunPlan {
                        out: dir,
                        resume_from: Some(ckpt),
                        notes,
                    })
                } else {
                    fresh_output_dir(dir, args.overwrite, &mut notes)
                }
            }
        },
        path => {
            let path = PathBuf::from(path);
            let ckpt = if is_checkpoint_dir(&path) {
                if let Err(err) = ppo_ckpt::verify(&path) {
                    let run = path.parent().and_then(Path::parent);
                    let fallback = run
                        .and_then(|r| ppo_ckpt::latest_complete(r).ok().flatten())
                        .map(|e| {
                            format!("; the newest complete checkpoint is {}", e.path.display())
                        })
                        .unwrap_or_default();
                    bail!("cannot resume: {err}{fallback}");
                }
                path.clone()
            } else {
                newest_good_checkpoint(&path, &mut notes)?.with_context(|| {
                    format!(
                        "--resume {}: not a checkpoint and has no checkpoints/step_N inside",
                        path.display()
                    )
                })?
            };
            Ok(RunPlan {
                out: dir,
                resume_from: Some(ckpt),
                notes,
            })
        }
    }
}

/// The directory a run will write, known before anything in it is read: `--output-dir`, else
/// the run of `--resume PATH` (the run directory itself, or the one holding the checkpoint),
/// else a new timestamped directory.
pub fn run_dir_of(args: &TrainArgs) -> Result<PathBuf> {
    let resume_path = match args.resume.as_str() {
        "never" | "auto" => None,
        path => Some(Path::new(path)),
    };
    if let Some(path) = resume_path
        && !path.exists()
    {
        bail!(
            "--resume {}: no such checkpoint or run directory",
            path.display()
        );
    }
    if let Some(dir) = &args.output_dir {
        return Ok(dir.clone());
    }
    Ok(match resume_path {
        None => default_output_dir(),
        Some(path) if is_checkpoint_dir(path) => path
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        Some(path) => path.to_path_buf(),
    })
}
