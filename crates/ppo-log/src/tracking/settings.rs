//! What the tracking sink is told (server, experiment, timeouts, buffer sizes), how the
//! server address is validated, and the precedence between environment and config file.

use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;

/// Environment variable MLflow clients read for the tracking server address.
pub const MLFLOW_TRACKING_URI_ENV: &str = "MLFLOW_TRACKING_URI";
/// Environment variable MLflow clients read for the experiment name.
pub const MLFLOW_EXPERIMENT_NAME_ENV: &str = "MLFLOW_EXPERIMENT_NAME";
/// Experiment used when neither the environment nor the config names one (MLflow's own
/// default experiment).
pub const DEFAULT_EXPERIMENT_NAME: &str = "Default";

/// Most metrics MLflow accepts in one `runs/log-batch` request.
pub(crate) const MAX_METRICS_PER_BATCH: usize = 1000;

type UrlParseError = <Url as FromStr>::Err;

/// Errors from [`crate::Tracker::start`]. Network trouble is never one of them: it is
/// logged and retried in the background.
#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    /// The tracking URI is not a URL.
    #[error("invalid MLflow tracking URI {uri:?}")]
    InvalidUri {
        /// The URI as configured.
        uri: String,
        /// Parse error.
        #[source]
        source: UrlParseError,
    },
    /// The tracking URI is a URL, but not an `http://` or `https://` one with a host.
    #[error(
        "unsupported MLflow tracking URI {uri:?}: only http:// and https:// tracking servers are supported"
    )]
    UnsupportedUri {
        /// The URI as configured.
        uri: String,
    },
    /// The experiment name is empty.
    #[error("the MLflow experiment name is empty")]
    EmptyExperimentName,
    /// The background thread could not be started.
    #[error("failed to start the MLflow tracking thread")]
    SpawnWorker(#[source] std::io::Error),
}

/// Where and how to send tracking data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingConfig {
    /// Base URL of the tracking server, e.g. `http://127.0.0.1:5000` (a path prefix is kept).
    pub tracking_uri: String,
    /// Experiment the run belongs to; created when missing.
    pub experiment_name: String,
    /// Run name shown by MLflow; `None` lets the server pick one.
    pub run_name: Option<String>,
    /// How often buffered points are sent while training runs (at least 10 ms).
    pub flush_interval: Duration,
    /// Limit on each HTTP request, connecting included.
    pub request_timeout: Duration,
    /// Retries of a failed request before waiting a whole `flush_interval` (data is kept).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one, capped at `flush_interval`.
    pub retry_backoff: Duration,
    /// Upper bound on [`crate::Tracker::finish`]: flushing plus setting the run status.
    pub finish_timeout: Duration,
    /// Metric points held while the server is unreachable; beyond it the oldest are dropped.
    pub max_buffered_points: usize,
    /// Metrics per `runs/log-batch` request, at most 1000 (MLflow's limit).
    pub batch_size: usize,
}

impl TrackingConfig {
    /// Settings for `tracking_uri` and `experiment_name` with the defaults below.
    ///
    /// No run name, flush every 5 s, 10 s per request, 3 retries starting at 1 s,
    /// 2 s to finish (a stopped server costs at most that at exit), 100 000 buffered points,
    /// 1000 metrics per request.
    pub fn new(tracking_uri: impl Into<String>, experiment_name: impl Into<String>) -> Self {
        Self {
            tracking_uri: tracking_uri.into(),
            experiment_name: experiment_name.into(),
            run_name: None,
            flush_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_retries: 3,
            retry_backoff: Duration::from_secs(1),
            finish_timeout: Duration::from_secs(2),
            max_buffered_points: 100_000,
            batch_size: MAX_METRICS_PER_BATCH,
        }
    }

    /// The tracking URI as a URL, checked to be `http` or `https` with a host.
    pub(crate) fn base_url(&self) -> Result<Url, TrackingError> {
        let uri = self.tracking_uri.trim();
        let url = Url::parse(uri).map_err(|source| TrackingError::InvalidUri {
            uri: self.tracking_uri.clone(),
            source,
        })?;
        let supported = matches!(url.scheme(), "http" | "https") && url.host_str().is_some();
        if !supported {
            return Err(TrackingError::UnsupportedUri {
                uri: self.tracking_uri.clone(),
            });
        }
        Ok(url)
    }
}

/// Tracking server and experiment after [`resolve_tracking_settings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingSettings {
    /// Base URL of the tracking server.
    pub tracking_uri: String,
    /// Experiment name.
    pub experiment_name: String,
}

/// Decides the tracking server and experiment from the config file and the environment.
///
/// Precedence, as in MLflow's own clients: a non-empty environment variable
/// ([`MLFLOW_TRACKING_URI_ENV`], [`MLFLOW_EXPERIMENT_NAME_ENV`]) wins over the config key,
/// which wins over the default ([`DEFAULT_EXPERIMENT_NAME`] for the experiment). Values
/// are trimmed and empty ones count as unset. Returns `None` when no tracking URI is set
/// anywhere: tracking is off.
///
/// `env` looks a variable up; ppo-log reads no environment itself, so the CLI passes
/// `|key| std::env::var(key).ok()`.
pub fn resolve_tracking_settings(
    config_uri: Option<&str>,
    config_experiment: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<TrackingSettings> {
    let pick = |key: &str, config: Option<&str>| {
        let from_env = env(key).map(|value| value.trim().to_owned());
        from_env.filter(|value| !value.is_empty()).or_else(|| {
            config
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        })
    };
    let tracking_uri = pick(MLFLOW_TRACKING_URI_ENV, config_uri)?;
    let experiment_name = pick(MLFLOW_EXPERIMENT_NAME_ENV, config_experiment)
        .unwrap_or_else(|| DEFAULT_EXPERIMENT_NAME.to_owned());
    Some(TrackingSettings {
        tracking_uri,
        experiment_name,
    })
}
