//! Experiment tracking on an MLflow server over its REST API (no MLflow SDK).
//!
//! [`Tracker::start`] returns at once; a background thread creates the experiment (if
//! needed) and the run, then sends the run's params and the metrics given to
//! [`Tracker::log_metrics`] in `runs/log-batch` requests. Training never waits on the
//! network: `log_metrics` only enqueues, an outage is a tracing WARNING followed by
//! retries with backoff while points stay buffered (up to a bound), and
//! [`Tracker::finish`] / [`Tracker::fail`] give the server a bounded time to take the
//! rest and the final run status.

mod batch;
mod client;
mod keys;
mod settings;
mod tracker;
mod worker;

#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod tests;

pub use keys::{MAX_KEY_CHARS, MAX_PARAM_VALUE_CHARS, MAX_TAG_VALUE_CHARS, flatten_params};
pub use settings::{
    DEFAULT_EXPERIMENT_NAME, MLFLOW_EXPERIMENT_NAME_ENV, MLFLOW_TRACKING_URI_ENV, TrackingConfig,
    TrackingError, TrackingSettings, resolve_tracking_settings,
};
pub use tracker::{Tracker, TrackingSummary};
