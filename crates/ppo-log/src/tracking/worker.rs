//! The background thread behind [`crate::Tracker`]: creates the run, buffers points,
//! sends them in batches, retries with backoff through outages, and ends the run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::Url;

use super::batch::{KeyValue, Metric, Pending};
use super::client::{MlflowClient, RequestError, RunStatus};
use super::keys::sanitize_key;
use super::settings::TrackingConfig;

/// Repeated warnings about one outage or one full buffer come at most this often.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// A request is not started with less time than this left before the finish deadline.
const MIN_REQUEST_TIME: Duration = Duration::from_millis(5);
/// Shortest flush interval, so that a zero cannot make the thread spin.
const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(10);

/// What the [`crate::Tracker`] handle sends to the thread.
pub(crate) enum Command {
    /// Finite metric values of one step.
    Metrics {
        step: u64,
        timestamp_ms: i64,
        values: Vec<(String, f64)>,
    },
    /// Flush, set the run status, reply, and stop, all before `deadline`.
    End {
        status: RunStatus,
        deadline: Instant,
        reply: Sender<()>,
    },
}

/// Counters and state the handle reads without waiting for the thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Finite points handed to the thread.
    pub(crate) accepted: AtomicU64,
    /// Points the server accepted.
    pub(crate) sent: AtomicU64,
    /// Points given up on (buffer overflow, refused batch, unsent at the end).
    pub(crate) dropped: AtomicU64,
    /// Non-finite values not sent.
    pub(crate) skipped: AtomicU64,
    /// Whether the final run status reached the server.
    pub(crate) status_recorded: AtomicBool,
    /// Set by the handle before `End`: stop sending a backlog so `End` is seen soon.
    pub(crate) ending: AtomicBool,
    /// Whether the non-finite warning was given.
    pub(crate) warned_non_finite: AtomicBool,
    /// The run id once the run exists.
    pub(crate) run_id: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn run_id(&self) -> Option<String> {
        self.run_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Everything the thread starts from.
pub(crate) struct WorkerSetup {
    pub(crate) config: TrackingConfig,
    pub(crate) base_url: Url,
    pub(crate) params: Vec<KeyValue>,
    pub(crate) tags: Vec<KeyValue>,
    pub(crate) start_time_ms: i64,
}

enum RunState {
    NotCreated,
    Created(String),
    /// The server refused to create the run (or no client could be built): nothing is sent.
    Disabled,
}

/// Rate-limits warnings about one outage and says when it is over.
#[derive(Default)]
struct OutageLog {
    failing: bool,
    last_warning: Option<Instant>,
}

impl OutageLog {
    fn failure(&mut self, err: &RequestError, next: &str, buffered: usize) {
        let now = Instant::now();
        let due = !self.failing
            || self
                .last_warning
                .is_none_or(|last| now.duration_since(last) >= WARNING_INTERVAL);
        self.failing = true;
        if due {
            self.last_warning = Some(now);
            tracing::warn!(
                "MLflow tracking server request failed: {err}; {next} ({buffered} points buffered)"
            );
        } else {
            tracing::debug!("MLflow tracking server request failed: {err}; {next}");
        }
    }

    fn success(&mut self) {
        if self.failing {
            tracing::info!("MLflow tracking server reachable again; buffered points sent");
        }
        self.failing = false;
        self.last_warning = None;
    }
}

pub(crate) struct Worker {
    config: TrackingConfig,
    shared: Arc<Shared>,
    client: Option<MlflowClient>,
    run: RunState,
    experiment_id: Option<String>,
    tags: Vec<KeyValue>,
    start_time_ms: i64,
    pending: Pending,
    /// Caller's metric key → key sent to MLflow.
    metric_keys: HashMap<String, String>,
    /// Failed attempts in the current round.
    attempt: u32,
    outage: OutageLog,
    last_drop_warning: Option<Instant>,
}

impl Worker {
    /// Builds the HTTP client here, on the worker thread: reqwest's blocking client must
    /// not be made inside an async runtime, which the caller might be in.
    pub(crate) fn new(setup: WorkerSetup, shared: Arc<Shared>) -> Self {
        let WorkerSetup {
            config,
            base_url,
            params,
            tags,
            start_time_ms,
        } = setup;
        let config = TrackingConfig {
            batch_size: config.batch_size.max(1),
            flush_interval: config.flush_interval.max(MIN_FLUSH_INTERVAL),
            ..config
        };
        let client = MlflowClient::new(base_url, config.request_timeout)
            .inspect_err(|err| {
                tracing::warn!("MLflow tracking is off: failed to build the HTTP client: {err}");
            })
            .ok();
        let run = match client {
            Some(_) => RunState::NotCreated,
            None => RunState::Disabled,
        };
        Self {
            pending: Pending::new(params, config.max_buffered_points),
            config,
            shared,
            client,
            run,
            experiment_id: None,
            tags,
            start_time_ms,
            metric_keys: HashMap::new(),
            attempt: 0,
            outage: OutageLog::default(),
            last_drop_warning: None,
        }
    }

    /// Runs until the handle says `End` (or disappears).
    pub(crate) fn run(mut self, commands: Receiver<Command>) {
        let mut next_flush = Instant::now();
        loop {
            if Instant::now() >= next_flush {
                next_flush = self.flush_round();
            }
            let wait = next_flush.saturating_duration_since(Instant::now());
            match commands.recv_timeout(wait) {
                Ok(Command::Metrics {
                    step,
                    timestamp_ms,
                    values,
                }) => {
                    self.enqueue(step, timestamp_ms, values);
                    let healthy = self.attempt == 0 && matches!(self.run, RunState::Created(_));
                    if healthy && self.pending.n_metrics() >= self.config.batch_size {
                        next_flush = Instant::now();
                    }
                }
                Ok(Command::End {
                    status,
                    deadline,
                    reply,
                }) => {
                    self.end(status, deadline);
                    // The handle may have stopped waiting; nothing to do then.
                    let _ = reply.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let deadline = Instant::now() + self.config.finish_timeout;
                    self.end(RunStatus::Failed, deadline);
                    return;
                }
            }
        }
    }

    fn enqueue(&mut self, step: u64, timestamp_ms: i64, values: Vec<(String, f64)>) {
        if matches!(self.run, RunState::Disabled) {
            self.add_dropped(values.len());
            return;
        }
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        // MLflow rejects negative timestamps.
        let timestamp = timestamp_ms.max(0);
        let mut dropped = 0;
        for (raw_key, value) in values {
            let key = self.metric_key(raw_key);
            dropped += self.pending.push_metric(Metric {
                key,
                value,
                timestamp,
                step,
            });
        }
        if dropped > 0 {
            self.add_dropped(dropped);
            let now = Instant::now();
            let due = self
                .last_drop_warning
                .is_none_or(|last| now.duration_since(last) >= WARNING_INTERVAL);
            if due {
                self.last_drop_warning = Some(now);
                tracing::warn!(
                    "MLflow tracking buffer is full ({} points): {} points dropped so far, oldest first",
                    self.config.max_buffered_points,
                    self.shared.dropped.load(Ordering::Relaxed)
                );
            }
        }
    }

    fn metric_key(&mut self, raw_key: String) -> String {
        if let Some(key) = self.metric_keys.get(&raw_key) {
            return key.clone();
        }
        let key = sanitize_key(&raw_key);
        if key != raw_key {
            tracing::warn!("metric key {raw_key:?} is sent to MLflow as {key:?}");
        }
        self.metric_keys.insert(raw_key, key.clone());
        key
    }

    fn add_dropped(&self, n: usize) {
        self.shared.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// One attempt to send everything; returns when to wake up next.
    fn flush_round(&mut self) -> Instant {
        let result = self.send_pending(None);
        let now = Instant::now();
        let interval = self.config.flush_interval;
        match result {
            Ok(()) => {
                self.outage.success();
                self.attempt = 0;
                now + interval
            }
            Err(err) => {
                self.attempt += 1;
                let buffered = self.pending.n_metrics();
                if self.attempt <= self.config.max_retries {
                    let wait = self.backoff(self.attempt);
                    self.outage
                        .failure(&err, &format!("retrying in {wait:?}"), buffered);
                    now + wait
                } else {
                    let next = format!(
                        "gave up after {} attempts, trying again in {interval:?}",
                        self.attempt
                    );
                    self.attempt = 0;
                    self.outage.failure(&err, &next, buffered);
                    now + interval
                }
            }
        }
    }

    /// `retry_backoff · 2^(attempt-1)`, at most `flush_interval` (or `retry_backoff`).
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let cap = self.config.flush_interval.max(self.config.retry_backoff);
        self.config.retry_backoff.saturating_mul(factor).min(cap)
    }

    /// Creates the run if needed and sends queued data. An `Err` is always transient:
    /// refused batches are dropped here, a refused run turns tracking off.
    fn send_pending(&mut self, deadline: Option<Instant>) -> Result<(), RequestError> {
        let Some(run_id) = self.ensure_run(deadline)? else {
            return Ok(());
        };
        while !self.pending.is_empty() {
            if deadline.is_none() && self.shared.ending.load(Ordering::Relaxed) {
                // `end` takes over with its own deadline.
                return Ok(());
            }
            let timeout = self.request_timeout(deadline)?;
            let Some(client) = self.client.as_ref() else {
                return Ok(());
            };
            let size = self.pending.next_batch_size(self.config.batch_size);
            let (params, metrics) = self.pending.front(size);
            match client.log_batch(&run_id, &params, &metrics, timeout) {
                Ok(()) => {
                    self.shared
                        .sent
                        .fetch_add(size.metrics as u64, Ordering::Relaxed);
                }
                Err(err @ RequestError::Rejected { .. }) => {
                    tracing::warn!(
                        "MLflow refused a batch of {} metric points and {} params, dropping it: {err}",
                        size.metrics,
                        size.params
                    );
                    self.add_dropped(size.metrics);
                }
                Err(err) => return Err(err),
            }
            self.pending.remove_front(size);
        }
        Ok(())
    }

    /// The run id, creating experiment and run on first success; `None` when tracking is off.
    fn ensure_run(&mut self, deadline: Option<Instant>) -> Result<Option<String>, RequestError> {
        match &self.run {
            RunState::Created(run_id) => return Ok(Some(run_id.clone())),
            RunState::Disabled => return Ok(None),
            RunState::NotCreated => {}
        }
        match self.create_run(deadline) {
            Ok(run_id) => {
                tracing::info!(
                    "MLflow run {run_id} created in experiment {:?} at {}",
                    self.config.experiment_name,
                    self.config.tracking_uri
                );
                *self
                    .shared
                    .run_id
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(run_id.clone());
                self.run = RunState::Created(run_id.clone());
                Ok(Some(run_id))
            }
            Err(err @ RequestError::Rejected { .. }) => {
                let dropped = self.pending.clear();
                self.add_dropped(dropped);
                self.run = RunState::Disabled;
                tracing::warn!(
                    "MLflow tracking is off for this run: the server refused to create it in experiment {:?}: {err}; {dropped} buffered points dropped",
                    self.config.experiment_name
                );
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    fn create_run(&mut self, deadline: Option<Instant>) -> Result<String, RequestError> {
        let Some(client) = self.client.as_ref() else {
            return Err(RequestError::Transient("no HTTP client".to_owned()));
        };
        let experiment_id = match &self.experiment_id {
            Some(id) => id.clone(),
            None => {
                let timeout = self.request_timeout(deadline)?;
                let id = client.get_or_create_experiment(&self.config.experiment_name, timeout)?;
                self.experiment_id = Some(id.clone());
                id
            }
        };
        let timeout = self.request_timeout(deadline)?;
        client.create_run(
            &experiment_id,
            self.start_time_ms,
            self.config.run_name.as_deref(),
            &self.tags,
            timeout,
        )
    }

    /// The timeout for the next request, or an error when `deadline` leaves no time.
    fn request_timeout(&self, deadline: Option<Instant>) -> Result<Duration, RequestError> {
        let Some(deadline) = deadline else {
            return Ok(self.config.request_timeout);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_REQUEST_TIME {
            return Err(RequestError::Transient(
                "out of time before the finish deadline".to_owned(),
            ));
        }
        Ok(left.min(self.config.request_timeout))
    }

    /// Sends what is left, then the run status, all before `deadline`.
    fn end(&mut self, status: RunStatus, deadline: Instant) {
        // Keep time for the status update.
        let reserve = self
            .config
            .request_timeout
            .min(self.config.finish_timeout / 4);
        let flush_deadline = deadline.checked_sub(reserve).unwrap_or(deadline);
        self.retry_until(flush_deadline, "flush the remaining points", |worker| {
            worker.send_pending(Some(flush_deadline))
        });
        let unsent = self.pending.clear();
        if unsent > 0 {
            self.add_dropped(unsent);
            tracing::warn!(
                "MLflow tracking: {unsent} points were not sent before the finish timeout"
            );
        }
        if !matches!(self.run, RunState::Created(_)) {
            return;
        }
        let end_time = chrono::Utc::now().timestamp_millis();
        let what = format!("set the run status to {}", status.as_str());
        self.retry_until(deadline, &what, |worker| {
            let timeout = worker.request_timeout(Some(deadline))?;
            let (Some(client), RunState::Created(run_id)) = (&worker.client, &worker.run) else {
                return Ok(());
            };
            match client.update_run(run_id, status, end_time, timeout) {
                Ok(()) => {
                    worker.shared.status_recorded.store(true, Ordering::Relaxed);
                    Ok(())
                }
                Err(err @ RequestError::Rejected { .. }) => {
                    tracing::warn!("MLflow refused to {}: {err}", what);
                    Ok(())
                }
                Err(err) => Err(err),
            }
        });
    }

    /// Calls `attempt` until it succeeds, `max_retries` retries are spent, or the next
    /// backoff would pass `deadline` (so the sleeps between attempts stay within it).
    fn retry_until(
        &mut self,
        deadline: Instant,
        what: &str,
        mut attempt: impl FnMut(&mut Self) -> Result<(), RequestError>,
    ) {
        let mut failures = 0;
        loop {
            let Err(err) = attempt(self) else {
                self.outage.success();
                return;
            };
            failures += 1;
            let wait = self.backoff(failures);
            if failures > self.config.max_retries || Instant::now() + wait >= deadline {
                tracing::warn!("MLflow tracking could not {what} before finishing: {err}");
                return;
            }
            thread::sleep(wait);
        }
    }
}
