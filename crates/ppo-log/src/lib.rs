//! Logging and metrics sinks for ppo-rs: console, log file, JSONL metrics, TensorBoard
//! event files, the MLflow tracking server and the training progress bar. No other crate
//! knows where output goes.
//!
//! ```
//! use ppo_log::{format_summary, read_metrics, MetricsRecord, MetricsWriter, RecordKind};
//!
//! # fn main() -> Result<(), ppo_log::LogError> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("metrics.jsonl");
//!
//! let mut writer = MetricsWriter::create(&path)?;
//! let values = vec![("policy_loss".to_owned(), 0.0123), ("reward".to_owned(), 0.25)];
//! writer.write(&MetricsRecord::now(RecordKind::Train, 1, values))?;
//!
//! let records = read_metrics(&path)?;
//! assert_eq!(records.len(), 1);
//! assert_eq!(records[0].get("reward"), Some(0.25));
//!
//! assert_eq!(format_summary(&[("reward", 0.25), ("policy_loss", 0.0123)]), "pl=0.012 r=0.25");
//!
//! // Console-only logging; pass a `log_dir` to also write a log file.
//! let guard = ppo_log::init_tracing(&ppo_log::LogConfig::default())?;
//! assert!(guard.log_file().is_none());
//! tracing::info!(step = 1, "logging is up");
//! # Ok(())
//! # }
//! ```

mod config;
mod console;
mod error;
mod format;
mod guard;
mod init;
mod metrics;
mod plot;
mod progress;
mod record;
mod shared_writer;
mod tensorboard;
mod tracking;

pub use config::LogConfig;
pub use error::LogError;
pub use format::{LineFormat, TIMESTAMP_FORMAT, level_label};
pub use guard::LogGuard;
pub use init::{init_tracing, log_file_name};
pub use metrics::{MetricsWriter, read_metrics};
pub use plot::{DETAILED_PLOT_FILE, PPO_PLOT_FILE, plot_file, plot_metrics};
pub use progress::{TrainProgress, format_summary};
pub use record::{MetricsRecord, RESERVED_KEYS, RecordKind};
pub use tensorboard::{
    CONFIG_TEXT_TAG, EVENT_FILE_MARKER, EventFileWriter, FILE_VERSION, TensorBoardSink,
    event_file_name, masked_crc32c,
};
pub use tracking::{
    DEFAULT_EXPERIMENT_NAME, MAX_KEY_CHARS, MAX_PARAM_VALUE_CHARS, MAX_TAG_VALUE_CHARS,
    MLFLOW_EXPERIMENT_NAME_ENV, MLFLOW_TRACKING_URI_ENV, Tracker, TrackingConfig, TrackingError,
    TrackingSettings, TrackingSummary, flatten_params, resolve_tracking_settings,
};
