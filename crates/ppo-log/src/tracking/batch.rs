//! The queue of params and metric points waiting for the server, and how it is cut
//! into `runs/log-batch` requests within MLflow's limits.

use std::collections::VecDeque;

use serde::Serialize;

use super::settings::MAX_METRICS_PER_BATCH;

/// Most params MLflow accepts in one `runs/log-batch` request.
pub(crate) const MAX_PARAMS_PER_BATCH: usize = 100;
/// Most metrics, params and tags together in one `runs/log-batch` request.
pub(crate) const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// Param bytes per request: with 1000 metrics of 250-character keys this keeps a
/// request under MLflow's 1 MB limit even when long values are multi-byte UTF-8.
pub(crate) const MAX_PARAM_BYTES_PER_BATCH: usize = 500_000;
/// JSON around one param: `{"key":"","value":""},`.
const PARAM_JSON_OVERHEAD: usize = 24;

/// A param or tag as the REST API spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct KeyValue {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// One metric point as the REST API spells it (`timestamp` in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Metric {
    pub(crate) key: String,
    pub(crate) value: f64,
    pub(crate) timestamp: i64,
    pub(crate) step: i64,
}

/// How many queued params and metrics the next request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSize {
    pub(crate) params: usize,
    pub(crate) metrics: usize,
}

/// Params and metric points not yet accepted by the server, oldest first.
#[derive(Debug)]
pub(crate) struct Pending {
    params: VecDeque<KeyValue>,
    metrics: VecDeque<Metric>,
    max_metrics: usize,
}

impl Pending {
    /// A queue holding `params` and at most `max_metrics` metric points.
    pub(crate) fn new(params: Vec<KeyValue>, max_metrics: usize) -> Self {
        Self {
            params: params.into(),
            metrics: VecDeque::new(),
            max_metrics: max_metrics.max(1),
        }
    }

    /// Queues a point; when full, drops the oldest one. Returns how many were dropped.
    pub(crate) fn push_metric(&mut self, metric: Metric) -> usize {
        let mut dropped = 0;
        while self.metrics.len() >= self.max_metrics {
            self.metrics.pop_front();
            dropped += 1;
        }
        self.metrics.push_back(metric);
        dropped
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.params.is_empty() && self.metrics.is_empty()
    }

    pub(crate) fn n_metrics(&self) -> usize {
        self.metrics.len()
    }

    /// Drops every queued param and point; returns the number of points dropped.
    pub(crate) fn clear(&mut self) -> usize {
        self.params.clear();
        let n_metrics = self.metrics.len();
        self.metrics.clear();
        n_metrics
    }

    /// The next request: params first (at most 100, and about 500 kB), then metrics up
    /// to `batch_size` (at most 1000) and to 1000 entities in all.
    pub(crate) fn next_batch_size(&self, batch_size: usize) -> BatchSize {
        let mut params = 0;
        let mut param_bytes = 0;
        for param in self.params.iter().take(MAX_PARAMS_PER_BATCH) {
            let bytes = param.key.len() + param.value.len() + PARAM_JSON_OVERHEAD;
            if params > 0 && param_bytes + bytes > MAX_PARAM_BYTES_PER_BATCH {
                break;
            }
            params += 1;
            param_bytes += bytes;
        }
        let metric_room = batch_size
            .clamp(1, MAX_METRICS_PER_BATCH)
            .min(MAX_ENTITIES_PER_BATCH - params);
        BatchSize {
            params,
            metrics: self.metrics.len().min(metric_room),
        }
    }

    /// Copies of the first `size` params and metrics, for the request body.
    pub(crate) fn front(&self, size: BatchSize) -> (Vec<KeyValue>, Vec<Metric>) {
        let params = self.params.iter().take(size.params).cloned().collect();
        let metrics = self.metrics.iter().take(size.metrics).cloned().collect();
        (params, metrics)
    }

    /// Removes the first `size` params and metrics (sent, or rejected for good).
    pub(crate) fn remove_front(&mut self, size: BatchSize) {
        self.params.drain(..size.params.min(self.params.len()));
        self.metrics.drain(..size.metrics.min(self.metrics.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(step: i64) -> Metric {
        Metric {
            key: "reward".to_owned(),
            value: step as f64,
            timestamp: 0,
            step,
        }
    }

    fn param(idx: usize) -> KeyValue {
        KeyValue {
            key: format!("p{idx}"),
            value: idx.to_string(),
        }
    }

    /// Drains the queue and returns the size of each request.
    fn drain(pending: &mut Pending, batch_size: usize) -> Vec<(usize, usize)> {
        let mut sizes = Vec::new();
        while !pending.is_empty() {
            let size = pending.next_batch_size(batch_size);
            let (params, metrics) = pending.front(size);
            assert_eq!((params.len(), metrics.len()), (size.params, size.metrics));
            pending.remove_front(size);
            sizes.push((size.params, size.metrics));
        }
        sizes
    }

    #[test]
    fn batches_respect_mlflow_limits() {
        let mut pending = Pending::new((0..250).map(param).collect(), 10_000);
        for step in 0..2500 {
            assert_eq!(pending.push_metric(metric(step)), 0);
        }
        // Params go first; metrics fill the room left under 1000 entities.
        assert_eq!(
            drain(&mut pending, 1000),
            vec![(100, 900), (100, 900), (50, 700)]
        );
    }

    #[test]
    fn batch_size_is_capped_at_the_metric_limit() {
        let mut pending = Pending::new(Vec::new(), 10_000);
        for step in 0..2500 {
            pending.push_metric(metric(step));
        }
        assert_eq!(
            drain(&mut pending, 5000),
            vec![(0, 1000), (0, 1000), (0, 500)]
        );
        for step in 0..25 {
            pending.push_metric(metric(step));
        }
        assert_eq!(drain(&mut pending, 10), vec![(0, 10), (0, 10), (0, 5)]);
        pending.push_metric(metric(0));
        assert_eq!(drain(&mut pending, 0), vec![(0, 1)]);
    }

    #[test]
    fn long_params_are_spread_over_requests() {
        let long = |idx: usize| KeyValue {
            key: format!("p{idx:02}"),
            value: "v".repeat(20_000),
        };
        // 20 027 bytes each: 24 fit in 500 kB, 25 do not.
        let mut pending = Pending::new((0..100).map(long).collect(), 10);
        pending.push_metric(metric(0));
        assert_eq!(
            drain(&mut pending, 1000),
            vec![(24, 1), (24, 0), (24, 0), (24, 0), (4, 0)]
        );
    }

    #[test]
    fn full_queue_drops_the_oldest_points() {
        let mut pending = Pending::new(Vec::new(), 3);
        let dropped: usize = (0..5).map(|step| pending.push_metric(metric(step))).sum();
        assert_eq!(dropped, 2);
        let (_, metrics) = pending.front(pending.next_batch_size(1000));
        let steps: Vec<i64> = metrics.iter().map(|m| m.step).collect();
        assert_eq!(steps, vec![2, 3, 4]);
        assert_eq!(pending.clear(), 3);
        assert!(pending.is_empty());
    }
}
