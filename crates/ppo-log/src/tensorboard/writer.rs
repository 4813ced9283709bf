//! The event file of one invocation: started (and, on resume, rebuilt from the kept history)
//! atomically, then appended one record at a time; and the sink that never stops training.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::event::{file_version_event, frame, scalars_event, text_event};
use crate::error::LogError;
use crate::record::MetricsRecord;

/// `file_version` of the first event of every file: the format TensorBoard reads today.
pub const FILE_VERSION: &str = "brain.Event:2";
/// Tag of the configuration text (TensorBoard's TEXT tab).
pub const CONFIG_TEXT_TAG: &str = "config";
/// TensorBoard reads every file whose name contains this; nothing else here may.
pub const EVENT_FILE_MARKER: &str = "tfevents";

/// `events.out.tfevents.<unix seconds>.<host>`, TensorFlow's name for an event file; `host`
/// is reduced to `[A-Za-z0-9._-]` (`localhost` when nothing is left).
pub fn event_file_name(created: DateTime<Utc>, host: &str) -> String {
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let host = if host.is_empty() { "localhost" } else { &host };
    format!(
        "events.out.{EVENT_FILE_MARKER}.{}.{host}",
        created.timestamp()
    )
}

/// Writes the event file of one invocation into a directory of its own.
///
/// [`create`](Self::create) writes the file version, the config text and the records a
/// resumed run keeps into a temporary file (no `tfevents` in its name, so no reader sees
/// it), syncs it, removes the directory's earlier event files and renames it into place:
/// the directory ends up with one file in which every step appears once. A crash in
/// between leaves either the old files or none, and the next resume rebuilds them.
#[derive(Debug)]
pub struct EventFileWriter {
    path: PathBuf,
    file: fs_err::File,
}

impl EventFileWriter {
    /// Starts `dir/events.out.tfevents.<now>.<host>` with `config_text` (markdown; shown
    /// under [`CONFIG_TEXT_TAG`] at step 0) and then `history`, replacing the event files
    /// already in `dir`. `dir` is created if missing.
    pub fn create(
        dir: &Path,
        host: &str,
        config_text: &str,
        history: &[MetricsRecord],
    ) -> Result<Self, LogError> {
        let now = Utc::now();
        let path = dir.join(event_file_name(now, host));
        let err = |source| LogError::WriteEvents {
            path: path.clone(),
            source,
        };
        fs_err::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join(format!(".rebuild-{}.tmp", std::process::id()));
        let wall_time = seconds(now);
        let mut contents = frame(&file_version_event(wall_time, FILE_VERSION));
        contents.extend(frame(&text_event(
            wall_time,
            0,
            CONFIG_TEXT_TAG,
            config_text,
        )));
        for record in history {
            contents.extend(frame(&record_event(record)));
        }
        let written = (|| {
            let mut file = fs_err::File::create(&tmp)?;
            file.write_all(&contents)?;
            file.sync_all()?;
            remove_event_files(dir)?;
            fs_err::rename(&tmp, &path)?;
            sync_dir(dir);
            Ok(file)
        })();
        match written {
            Ok(file) => Ok(Self { path, file }),
            Err(source) => {
                let _ = fs_err::remove_file(&tmp);
                Err(err(source))
            }
        }
    }

    /// Appends `record` (every value a scalar at its step) as one event and flushes it.
    pub fn write(&mut self, record: &MetricsRecord) -> Result<(), LogError> {
        let bytes = frame(&record_event(record));
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.flush())
            .map_err(|source| LogError::WriteEvents {
                path: self.path.clone(),
                source,
            })
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn record_event(record: &MetricsRecord) -> Vec<u8> {
    scalars_event(seconds(record.timestamp), record.step, &record.values)
}

/// Seconds since the Unix epoch, as `Event::wall_time` holds them.
fn seconds(time: DateTime<Utc>) -> f64 {
    time.timestamp_micros() as f64 / 1e6
}

/// Removes every file of `dir` that TensorBoard would read, and temporary files left by an
/// interrupted rebuild.
fn remove_event_files(dir: &Path) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_tmp = name.starts_with(".rebuild-") && name.ends_with(".tmp");
        let ours = format!(".rebuild-{}.tmp", std::process::id());
        if (name.contains(EVENT_FILE_MARKER) || (stale_tmp && name != ours))
            && entry.file_type()?.is_file()
        {
            fs_err::remove_file(entry.path())?;
        }
    }
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

/// The TensorBoard sink of a training run: an [`EventFileWriter`] whose failures never
/// stop training.
///
/// A directory that cannot be written, or a failed append, is one WARNING; the sink then
/// writes nothing more in this invocation (a torn record is never followed by more), and
/// the next resume rebuilds the file from the checkpoint's history.
///
/// ```
/// use ppo_log::{MetricsRecord, RecordKind, TensorBoardSink};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut sink = TensorBoardSink::start(dir.path(), "host", "    lr = 1e-5", &[]);
/// sink.record(&MetricsRecord::now(RecordKind::Train, 1, vec![("reward".into(), 0.25)]));
/// assert!(sink.is_active());
/// ```
#[derive(Debug)]
pub struct TensorBoardSink {
    writer: Option<EventFileWriter>,
}

impl TensorBoardSink {
    /// Starts the event file (see [`EventFileWriter::create`]); a failure is a WARNING and
    /// an inactive sink.
    pub fn start(dir: &Path, host: &str, config_text: &str, history: &[MetricsRecord]) -> Self {
        match EventFileWriter::create(dir, host, config_text, history) {
            Ok(writer) => {
                tracing::info!(path = %writer.path().display(), "writing TensorBoard events");
                Self {
                    writer: Some(writer),
                }
            }
            Err(err) => {
                tracing::warn!(
                    "TensorBoard logging disabled, training continues: {}",
                    with_sources(&err)
                );
                Self { writer: None }
            }
        }
    }

    /// Appends `record`; the first failure is a WARNING and ends the sink's writing.
    pub fn record(&mut self, record: &MetricsRecord) {
        let Some(writer) = &mut self.writer else {
            return;
        };
        if let Err(err) = writer.write(record) {
            tracing::warn!(
                step = record.step,
                "TensorBoard logging stopped, training continues (a resume rewrites the file): {}",
                with_sources(&err)
            );
            self.writer = None;
        }
    }

    /// Whether records are still being written.
    pub fn is_active(&self) -> bool {
        self.writer.is_some()
    }
}

/// `err` followed by its sources: "failed to write …: No space left on device".
fn with_sources(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;
    use crate::tensorboard::masked_crc32c;

    fn record(step: u64, value: f64) -> MetricsRecord {
        MetricsRecord::now(RecordKind::Train, step, vec![("reward".to_owned(), value)])
    }

    /// The payloads of a TFRecord file, checking both CRCs of every record.
    fn read_frames(path: &Path) -> Vec<Vec<u8>> {
        let bytes = fs_err::read(path).unwrap();
        let mut rest = bytes.as_slice();
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let (length, tail) = rest.split_at(8);
            let n = u64::from_le_bytes(length.try_into().unwrap()) as usize;
            assert_eq!(
                u32::from_le_bytes(tail[..4].try_into().unwrap()),
                masked_crc32c(length)
            );
            let data = &tail[4..4 + n];
            let crc = u32::from_le_bytes(tail[4 + n..8 + n].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(data));
            frames.push(data.to_vec());
            rest = &tail[8 + n..];
        }
        frames
    }

    fn event_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<_> = fs_err::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn file_names_follow_tensorflow() {
        let t = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        assert_eq!(
            event_file_name(t, "gpu-node.lab"),
            "events.out.tfevents.1700000000.gpu-node.lab"
        );
        assert_eq!(
            event_file_name(t, " a/b c "),
            "events.out.tfevents.1700000000.a_b_c"
        );
        assert_eq!(
            event_file_name(t, ""),
            "events.out.tfevents.1700000000.localhost"
        );
    }

    #[test]
    fn create_writes_version_config_history_then_appends() {
        let dir = tempfile::tempdir().unwrap();
        let tb = dir.path().join("tb");
        let history = [record(1, 0.5), record(2, 0.75)];
        let mut writer = EventFileWriter::create(&tb, "h", "cfg", &history).unwrap();
        writer.write(&record(3, 1.0)).unwrap();
        let frames = read_frames(writer.path());
        assert_eq!(frames.len(), 5);
        assert_eq!(
            frames[0][9..],
            [&[0x1a, 13][..], FILE_VERSION.as_bytes()].concat()
        );
        let wall_time = |r: &MetricsRecord| seconds(r.timestamp);
        assert_eq!(
            frames[2],
            scalars_event(wall_time(&history[0]), 1, &history[0].values)
        );
        assert_eq!(event_files(&tb), [writer.path()]);
    }

    #[test]
    fn create_replaces_earlier_event_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let tb = dir.path();
        fs_err::write(tb.join("events.out.tfevents.1.old"), b"stale").unwrap();
        fs_err::write(tb.join(".rebuild-999999999.tmp"), b"torn").unwrap();
        fs_err::write(tb.join("notes.txt"), b"mine").unwrap();
        let writer = EventFileWriter::create(tb, "h", "cfg", &[record(1, 0.5)]).unwrap();
        assert_eq!(event_files(tb), [writer.path(), &tb.join("notes.txt")]);
        assert_eq!(read_frames(writer.path()).len(), 3);
    }

    #[test]
    fn sink_warns_and_carries_on_when_the_directory_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("tb");
        fs_err::write(&blocker, b"a file where the directory should be").unwrap();
        let mut sink = TensorBoardSink::start(&blocker, "h", "cfg", &[]);
        assert!(!sink.is_active());
        sink.record(&record(1, 0.5)); // no panic, nothing written
        assert!(blocker.is_file());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sink_stops_after_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = TensorBoardSink::start(dir.path(), "h", "cfg", &[]);
        // Writes to /dev/full fail with "No space left on device".
        sink.writer.as_mut().unwrap().file = fs_err::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        sink.record(&record(1, 0.5));
        assert!(!sink.is_active());
        sink.record(&record(2, 0.5));
    }
}
