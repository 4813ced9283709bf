//! The JSONL metrics sink: create, resume after a checkpoint, append, read back.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::LogError;
use crate::record::MetricsRecord;

/// Appends [`MetricsRecord`]s to a JSONL file, one object per line.
///
/// Each record is written with a single `write_all` and flushed, so a reader
/// (or a crash) sees whole lines, except possibly a torn final line, which
/// [`read_metrics`] and [`MetricsWriter::resume`] tolerate.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: fs_err::File,
}

impl MetricsWriter {
    /// Starts a new metrics file at `path`, creating parent directories.
    ///
    /// An existing empty file is reused; an existing non-empty file is an
    /// error ([`LogError::MetricsFileNotEmpty`]) so a previous run's data is
    /// never lost. Use [`MetricsWriter::resume`] to continue a run.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, LogError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |source| LogError::OpenMetrics {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs_err::create_dir_all(parent).map_err(open_err)?;
        }
        let file = open_append(&path).map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        if len > 0 {
            return Err(LogError::MetricsFileNotEmpty { path });
        }
        Ok(Self { path, file })
    }

    /// Continues the metrics file of a run resumed from the checkpoint taken
    /// at `last_step`.
    ///
    /// Records with `step <= last_step` are kept verbatim; later ones were
    /// written after that checkpoint and are dropped. The file is rewritten
    /// atomically (temporary file in the same directory, fsync, rename) and
    /// then opened for appending. A missing file is created. A malformed line
    /// is an error naming the file and line; an unterminated, unparsable final
    /// line (a write torn by a crash) is dropped.
    pub fn resume(path: impl AsRef<Path>, last_step: u64) -> Result<Self, LogError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Self::create(&path);
        }
        let text = read_text(&path)?;
        let mut kept = String::with_capacity(text.len());
        let mut dropped = 0usize;
        for line in parse_lines(&path, &text)? {
            if line.record.step <= last_step {
                kept.push_str(line.text);
                kept.push('\n');
            } else {
                dropped += 1;
            }
        }
        rewrite_atomically(&path, kept.as_bytes()).map_err(|source| LogError::RewriteMetrics {
            path: path.clone(),
            source,
        })?;
        if dropped > 0 {
            tracing::info!(
                path = %path.display(),
                dropped,
                last_step,
                "dropped metrics records written after the resumed checkpoint"
            );
        }
        let file = open_append(&path).map_err(|source| LogError::OpenMetrics {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path, file })
    }

    /// Appends one record as a JSON line and flushes it.
    pub fn write(&mut self, record: &MetricsRecord) -> Result<(), LogError> {
        let mut line =
            serde_json::to_string(record).map_err(|source| LogError::SerializeRecord {
                path: self.path.clone(),
                source,
            })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| LogError::WriteMetrics {
                path: self.path.clone(),
                source,
            })
    }

    /// Forces written records to stable storage (fsync).
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.file
            .sync_all()
            .map_err(|source| LogError::WriteMetrics {
                path: self.path.clone(),
                source,
            })
    }

    /// The metrics file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads every record of a JSONL metrics file, in file order.
///
/// `null` values come back as NaN. Blank lines are skipped; a malformed line
/// is an error naming the file and line, except an unterminated final line
/// (a record still being written, or torn by a crash), which is skipped.
pub fn read_metrics(path: impl AsRef<Path>) -> Result<Vec<MetricsRecord>, LogError> {
    let path = path.as_ref();
    let text = read_text(path)?;
    Ok(parse_lines(path, &text)?
        .into_iter()
        .map(|line| line.record)
        .collect())
}

/// A parsed line together with its original text.
struct Line<'a> {
    text: &'a str,
    record: MetricsRecord,
}

fn parse_lines<'a>(path: &Path, text: &'a str) -> Result<Vec<Line<'a>>, LogError> {
    let mut lines = Vec::new();
    let mut rest = text;
    let mut number = 0usize;
    while !rest.is_empty() {
        number += 1;
        let (raw, terminated) = match rest.find('\n') {
            Some(end) => {
                let raw = &rest[..end];
                rest = &rest[end + 1..];
                (raw, true)
            }
            None => {
                let raw = rest;
                rest = "";
                (raw, false)
            }
        };
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<MetricsRecord>(raw) {
            Ok(record) => lines.push(Line { text: raw, record }),
            Err(_) if !terminated => {
                tracing::warn!(
                    path = %path.display(),
                    line = number,
                    "ignoring incomplete final metrics line"
                );
            }
            Err(source) => {
                return Err(LogError::MalformedRecord {
                    path: path.to_path_buf(),
                    line: number,
                    source,
                });
            }
        }
    }
    Ok(lines)
}

fn read_text(path: &Path) -> Result<String, LogError> {
    fs_err::read_to_string(path).map_err(|source| LogError::ReadMetrics {
        path: path.to_path_buf(),
        source,
    })
}

fn open_append(path: &Path) -> std::io::Result<fs_err::File> {
    fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Replaces `path` with `contents` so readers see either the old or the new file.
fn rewrite_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".resume-{}.tmp", std::process::id()));
    let tmp = dir.join(name);
    let result = (|| {
        let mut file = fs_err::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs_err::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs_err::remove_file(&tmp);
        return result;
    }
    sync_dir(&dir);
    Ok(())
}

/// Makes the rename durable where the platform allows fsync on directories.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs_err::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
