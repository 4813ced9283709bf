//! Installing the global tracing subscriber with console and file layers.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Local};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogConfig;
use crate::console::{ConsoleWriter, ProgressSlot};
use crate::error::LogError;
use crate::format::LineFormat;
use crate::guard::LogGuard;
use crate::shared_writer::SharedWriter;

/// Name of the log file for a run started at `now`:
/// `training_YYYYMMDD_HHMMSS.log`.
pub fn log_file_name(now: DateTime<Local>) -> String {
    format!("training_{}.log", now.format("%Y%m%d_%H%M%S"))
}

/// Installs the process-wide tracing subscriber: stderr at
/// `config.console_level` and, when `config.log_dir` is set, a new file
/// `log_dir/training_YYYYMMDD_HHMMSS.log` at `config.file_level` (the
/// directory is created). Every line is flushed as it is written.
///
/// Fails with [`LogError::SubscriberAlreadyInstalled`] (before creating any
/// file) if a global subscriber is already set.
pub fn init_tracing(config: &LogConfig) -> Result<LogGuard, LogError> {
    if tracing::dispatcher::has_been_set() {
        return Err(LogError::SubscriberAlreadyInstalled);
    }
    let progress: ProgressSlot = Arc::new(Mutex::new(None));
    let console = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .event_format(LineFormat::new(false))
        .with_writer(ConsoleWriter::new(Arc::clone(&progress)))
        .with_filter(LevelFilter::from_level(config.console_level));

    let (file_layer, log_file) = match &config.log_dir {
        Some(dir) => {
            let path = dir.join(log_file_name(Local::now()));
            let file = open_log_file(dir, &path)?;
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .event_format(LineFormat::new(true))
                .with_writer(SharedWriter::new(Arc::new(Mutex::new(file))))
                .with_filter(LevelFilter::from_level(config.file_level));
            (Some(layer), Some(path))
        }
        None => (None, None),
    };

    tracing_subscriber::registry()
        .with(console)
        .with(file_layer)
        .try_init()
        .map_err(LogError::InstallSubscriber)?;
    Ok(LogGuard::new(log_file, progress))
}

fn open_log_file(dir: &Path, path: &Path) -> Result<std::fs::File, LogError> {
    fs_err::create_dir_all(dir).map_err(|source| LogError::CreateLogDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::OpenLogFile {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(file.into_parts().0)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn log_file_name_uses_compact_local_time() {
        let now = Local.with_ymd_and_hms(2026, 1, 20, 14, 30, 22).unwrap();
        assert_eq!(log_file_name(now), "training_20260120_143022.log");
        let early = Local.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        assert_eq!(log_file_name(early), "training_20260304_050607.log");
    }
}
