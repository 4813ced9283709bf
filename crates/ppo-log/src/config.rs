//! Settings for the console and log-file sinks.

use std::path::PathBuf;

use tracing::Level;

/// Where logs go and how verbose each sink is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Directory for `training_YYYYMMDD_HHMMSS.log`; `None` logs to the console only.
    pub log_dir: Option<PathBuf>,
    /// Most verbose level printed on stderr.
    pub console_level: Level,
    /// Most verbose level written to the log file.
    pub file_level: Level,
}

impl Default for LogConfig {
    /// Console at INFO, file at DEBUG, no log directory.
    fn default() -> Self {
        Self {
            log_dir: None,
            console_level: Level::INFO,
            file_level: Level::DEBUG,
        }
    }
}
