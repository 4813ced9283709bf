//! The handle training code holds: start a run, log metrics, end the run.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::client::RunStatus;
use super::keys::{MAX_PARAM_VALUE_CHARS, MAX_TAG_VALUE_CHARS, prepare_key_values};
use super::settings::{TrackingConfig, TrackingError};
use super::worker::{Command, Shared, Worker, WorkerSetup};

/// Tag MLflow shows as the run name.
const RUN_NAME_TAG: &str = "mlflow.runName";
/// How long `finish` waits beyond `finish_timeout` for the thread's answer.
const FINISH_GRACE: Duration = Duration::from_millis(500);

/// An MLflow run fed from a background thread over the REST API.
///
/// [`start`](Self::start) and [`log_metrics`](Self::log_metrics) never wait on the
/// network. Ending it with [`finish`](Self::finish) marks the run FINISHED;
/// [`fail`](Self::fail), or dropping it without either, marks it FAILED. Both give the
/// thread at most [`TrackingConfig::finish_timeout`] (plus half a second).
///
/// ```no_run
/// use ppo_log::{Tracker, TrackingConfig, flatten_params};
///
/// # fn main() -> Result<(), ppo_log::TrackingError> {
/// let config = TrackingConfig::new("http://127.0.0.1:5000", "ppo-rs");
/// let params = flatten_params(&serde_json::json!({"training": {"learning_rate": 1e-5}}));
/// let tags = vec![("ppo_rs.version".to_owned(), "0.1.0".to_owned())];
/// let tracker = Tracker::start(config, params, tags)?;
/// tracker.log_metrics(1, 1_700_000_000_000, &[("reward".to_owned(), 0.25)]);
/// let summary = tracker.finish();
/// tracing::info!("{summary}");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Tracker {
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: Sender<Command>,
    shared: Arc<Shared>,
    finish_timeout: Duration,
    thread: JoinHandle<()>,
}

/// What a [`Tracker`] achieved, for the caller to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackingSummary {
    /// The MLflow run id; `None` if the run was never created.
    pub run_id: Option<String>,
    /// Metric points the server accepted.
    pub points_sent: u64,
    /// Metric points given up on: buffer overflow, batches the server refused, and
    /// points still unsent when the finish timeout ran out.
    pub points_dropped: u64,
    /// Non-finite metric values, which are never sent.
    pub points_skipped: u64,
    /// Whether the final status (FINISHED or FAILED) reached the server.
    pub status_recorded: bool,
}

impl TrackingSummary {
    /// Whether the run exists on the server.
    pub fn run_created(&self) -> bool {
        self.run_id.is_some()
    }
}

impl fmt::Display for TrackingSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.run_id {
            Some(run_id) => write!(f, "MLflow run {run_id}: ")?,
            None => f.write_str("MLflow run not created: ")?,
        }
        write!(
            f,
            "{} points sent, {} dropped, {} non-finite skipped, final status {}",
            self.points_sent,
            self.points_dropped,
            self.points_skipped,
            if self.status_recorded {
                "recorded"
            } else {
                "not recorded"
            }
        )
    }
}

impl Tracker {
    /// Starts the background thread that creates the run and sends data; returns at once.
    ///
    /// `params` (e.g. from [`crate::flatten_params`]) and `tags` (e.g. the ppo-rs version
    /// or git commit) are sent once; keys are sanitised and values cut to MLflow's
    /// limits. A server that is down is no error: the thread keeps retrying and
    /// buffering. Errors only for a configuration that can never work: a tracking URI
    /// that is not `http(s)://host…`, or an empty experiment name.
    pub fn start(
        config: TrackingConfig,
        params: Vec<(String, String)>,
        tags: Vec<(String, String)>,
    ) -> Result<Self, TrackingError> {
        let base_url = config.base_url()?;
        if config.experiment_name.trim().is_empty() {
            return Err(TrackingError::EmptyExperimentName);
        }
        let params = prepare_key_values(params, MAX_PARAM_VALUE_CHARS, "param");
        let mut tags = prepare_key_values(tags, MAX_TAG_VALUE_CHARS, "tag");
        if config.run_name.is_some() {
            // The server sets this tag from `run_name` and refuses a different one.
            tags.retain(|tag| tag.key != RUN_NAME_TAG);
        }
        let finish_timeout = config.finish_timeout;
        let setup = WorkerSetup {
            config,
            base_url,
            params,
            tags,
            start_time_ms: chrono::Utc::now().timestamp_millis(),
        };
        let shared = Arc::new(Shared::default());
        let (commands, receiver) = mpsc::channel();
        let worker_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("mlflow-tracking".to_owned())
            .spawn(move || Worker::new(setup, worker_shared).run(receiver))
            .map_err(TrackingError::SpawnWorker)?;
        Ok(Self {
            inner: Some(Inner {
                commands,
                shared,
                finish_timeout,
                thread,
            }),
        })
    }

    /// Queues the metric values of `step` (`timestamp_ms`: ms since the Unix epoch) and
    /// returns at once. Non-finite values are skipped: JSON cannot carry them to MLflow.
    pub fn log_metrics(&self, step: u64, timestamp_ms: i64, values: &[(String, f64)]) {
        let Some(inner) = &self.inner else {
            return;
        };
        let mut finite = Vec::with_capacity(values.len());
        for (key, value) in values {
            if value.is_finite() {
                finite.push((key.clone(), *value));
                continue;
            }
            inner.shared.skipped.fetch_add(1, Ordering::Relaxed);
            if !inner.shared.warned_non_finite.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "metric {key:?} is {value} at step {step}; non-finite values are not sent to MLflow"
                );
            }
        }
        if finite.is_empty() {
            return;
        }
        let n_points = finite.len() as u64;
        inner.shared.accepted.fetch_add(n_points, Ordering::Relaxed);
        let command = Command::Metrics {
            step,
            timestamp_ms,
            values: finite,
        };
        if inner.commands.send(command).is_err() {
            inner.shared.dropped.fetch_add(n_points, Ordering::Relaxed);
        }
    }

    /// The MLflow run id, once the background thread has created the run.
    pub fn run_id(&self) -> Option<String> {
        self.inner.as_ref().and_then(|inner| inner.shared.run_id())
    }

    /// Sends what is buffered and marks the run FINISHED, within the finish timeout.
    pub fn finish(mut self) -> TrackingSummary {
        self.end(RunStatus::Finished)
    }

    /// Sends what is buffered and marks the run FAILED, within the finish timeout.
    pub fn fail(mut self) -> TrackingSummary {
        self.end(RunStatus::Failed)
    }

    /// Sends what is buffered and marks the run KILLED (stopped by a signal, resumable),
    /// within the finish timeout.
    pub fn kill(mut self) -> TrackingSummary {
        self.end(RunStatus::Killed)
    }

    fn end(&mut self, status: RunStatus) -> TrackingSummary {
        let Some(inner) = self.inner.take() else {
            return TrackingSummary::default();
        };
        let deadline = Instant::now() + inner.finish_timeout;
        inner.shared.ending.store(true, Ordering::Relaxed);
        let (reply, answer) = mpsc::channel();
        let command = Command::End {
            status,
            deadline,
            reply,
        };
        let answered = inner.commands.send(command).is_ok()
            && answer
                .recv_timeout(inner.finish_timeout + FINISH_GRACE)
                .is_ok();
        if answered || inner.thread.is_finished() {
            if inner.thread.join().is_err() {
                tracing::warn!("the MLflow tracking thread panicked");
            }
        } else {
            tracing::warn!(
                "MLflow tracking did not end within {:?}; leaving it behind",
                inner.finish_timeout
            );
        }
        summarize(&inner.shared)
    }
}

impl Drop for Tracker {
    /// Marks the run FAILED (bounded by the finish timeout) unless it was ended already.
    fn drop(&mut self) {
        if self.inner.is_some() {
            tracing::warn!("MLflow tracker dropped without finish(); marking the run FAILED");
            let summary = self.end(RunStatus::Failed);
            tracing::info!("{summary}");
        }
    }
}

fn summarize(shared: &Shared) -> TrackingSummary {
    let accepted = shared.accepted.load(Ordering::Relaxed);
    let sent = shared.sent.load(Ordering::Relaxed);
    let dropped = shared.dropped.load(Ordering::Relaxed);
    // Points still with a thread that missed the deadline are lost as well.
    let unsent = accepted.saturating_sub(sent + dropped);
    TrackingSummary {
        run_id: shared.run_id(),
        points_sent: sent,
        points_dropped: dropped + unsent,
        points_skipped: shared.skipped.load(Ordering::Relaxed),
        status_recorded: shared.status_recorded.load(Ordering::Relaxed),
    }
}
