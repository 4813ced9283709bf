//! The crate's error type: every failure names the file or directory involved.

use std::path::PathBuf;

/// Errors raised by the logging and metrics sinks.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log directory could not be created.
    #[error("failed to create log directory {}", path.display())]
    CreateLogDir {
        /// Directory that was being created.
        path: PathBuf,
        /// Underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// The log file could not be opened.
    #[error("failed to open log file {}", path.display())]
    OpenLogFile {
        /// Log file that was being opened.
        path: PathBuf,
        /// Underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// A global tracing subscriber was already installed before `init_tracing` ran.
    #[error("a global tracing subscriber is already installed")]
    SubscriberAlreadyInstalled,
    /// Installing the global tracing subscriber failed.
    #[error("failed to install the global tracing subscriber")]
    InstallSubscriber(#[source] tracing_subscriber::util::TryInitError),
    /// The metrics file could not be opened or created.
    #[error("failed to open metrics file {}", path.display())]
    OpenMetrics {
        /// Metrics file that was being opened.
        path: PathBuf,
        /// Underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// `MetricsWriter::create` refused to reuse a file that already holds data.
    #[error(
        "metrics file {} already exists and is not empty; resume the run instead of starting a new one",
        path.display()
    )]
    MetricsFileNotEmpty {
        /// The existing metrics file.
        path: PathBuf,
    },
    /// The metrics file could not be read.
    #[error("failed to read metrics file {}", path.display())]
    ReadMetrics {
        /// Metrics file that was being read.
        path: PathBuf,
        /// Underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the metrics file is not a valid record.
    #[error("malformed metrics record in {} at line {line}", path.display())]
    MalformedRecord {
        /// The metrics file.
        path: PathBuf,
        /// 1-based line number of the bad record.
        line: usize,
        /// Parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A record could not be serialised (for example a duplicate or reserved key).
    #[error("failed to serialise a metrics record for {}", path.display())]
    SerializeRecord {
        /// The metrics file the record was meant for.
        path: PathBuf,
        /// Serialisation error.
        #[source]
        source: serde_json::Error,
    },
    /// Appending to the metrics file failed.
    #[error("failed to write metrics file {}", path.display())]
    WriteMetrics {
        /// The metrics file.
        path: PathBuf,
        /// Underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// Rewriting the metrics file while resuming failed (the original is left untouched).
    #[error("failed to rewrite metrics file {} while resuming", path.display())]
    RewriteMetrics {
        /// The metrics file being rewritten.
        path: PathBuf,
        /// Underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// There was nothing to plot: no records, or none with a metric value.
    #[error("no metrics to plot in {}", path.display())]
    NoMetrics {
        /// The metrics file read, or the output directory when records were passed in.
        path: PathBuf,
    },
    /// Drawing, encoding or writing a plot image failed.
    #[error("failed to write plot {}", path.display())]
    WritePlot {
        /// The image file (or output directory) being written.
        path: PathBuf,
        /// Underlying drawing, PNG or IO error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Writing a TensorBoard event file failed.
    #[error("failed to write TensorBoard event file {}", path.display())]
    WriteEvents {
        /// The event file being written.
        path: PathBuf,
        /// Underlying IO error.
        #[source]
        source: std::io::Error,
    },
}
