//! The MLflow tracker against a real `mlflow server` on 127.0.0.1 (SQLite store in a
//! temporary directory), checked through the server's own REST API.
//!
//! Runs when `PPO_RS_MLFLOW` names the `mlflow` executable or `mlflow` is on `PATH`
//! (`scripts/install-mlflow.sh` installs one); otherwise it says so and passes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ppo_log::{Tracker, TrackingConfig, TrackingSummary, flatten_params};
use serde_json::{Value, json};

#[path = "support/skip.rs"]
mod skip;
use skip::report_skip;

const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;

/// `PPO_RS_MLFLOW` if set (it must then exist), else `mlflow` on `PATH`.
fn mlflow_executable() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PPO_RS_MLFLOW").filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "PPO_RS_MLFLOW={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let search_path = std::env::var_os("PATH")?;
    std::env::split_paths(&search_path)
        .map(|dir| dir.join("mlflow"))
        .find(|candidate| candidate.is_file())
}

#[cfg(unix)]
mod server {
    use std::fs::File;
    use std::net::TcpListener;
    use std::os::unix::process::CommandExt;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::thread;
    use std::time::{Duration, Instant};

    /// A running `mlflow server`; dropping it kills its whole process group (the
    /// server starts uvicorn workers as children).
    pub struct MlflowServer {
        child: Child,
        pub uri: String,
        dir: tempfile::TempDir,
    }

    impl MlflowServer {
        pub fn start(mlflow: &Path, ready_timeout: Duration) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = File::create(dir.path().join("server.log")).unwrap();
            let backend = format!("sqlite:///{}", dir.path().join("mlflow.db").display());
            let artifacts = dir.path().join("artifacts");
            let child = Command::new(mlflow)
                .arg("server")
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--workers", "1", "--backend-store-uri", &backend])
                .arg("--default-artifact-root")
                .arg(&artifacts)
                .current_dir(dir.path())
                .env("MLFLOW_DISABLE_TELEMETRY", "true")
                .env("DO_NOT_TRACK", "true")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|err| panic!("failed to start {}: {err}", mlflow.display()));
            let mut server = Self {
                child,
                uri: format!("http://127.0.0.1:{port}"),
                dir,
            };
            server.wait_ready(ready_timeout);
            server
        }

        fn log(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        }

        /// Polls `/health` until it answers 200.
        fn wait_ready(&mut self, timeout: Duration) {
            let client = reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let started = Instant::now();
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    panic!(
                        "mlflow server exited ({status}) before it was ready:\n{}",
                        self.log()
                    );
                }
                let health = client.get(format!("{}/health", self.uri)).send();
                if health.is_ok_and(|reply| reply.status().is_success()) {
                    println!(
                        "mlflow server ready at {} after {:?}",
                        self.uri,
                        started.elapsed()
                    );
                    return;
                }
                if started.elapsed() > timeout {
                    panic!(
                        "mlflow server not ready within {timeout:?}:\n{}",
                        self.log()
                    );
                }
                thread::sleep(Duration::from_millis(250));
            }
        }
    }

    impl Drop for MlflowServer {
        fn drop(&mut self) {
            let group = format!("-{}", self.child.id());
            let signal = |name: &str| {
                let _ = Command::new("kill").args([name, "--", &group]).status();
            };
            signal("-TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(100));
            }
            // Also reaps uvicorn workers that outlive the server process.
            signal("-KILL");
            let _ = self.child.wait();
        }
    }
}

/// `GET /api/2.0/mlflow/{endpoint}?{query}` as JSON.
fn get_json(uri: &str, endpoint: &str, query: &[(&str, &str)]) -> Value {
    let mut url = reqwest::Url::parse(&format!("{uri}/api/2.0/mlflow/{endpoint}")).unwrap();
    url.query_pairs_mut().extend_pairs(query);
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let reply = client.get(url).send().unwrap();
    let status = reply.status();
    let body = reply.text().unwrap();
    assert!(
        status.is_success(),
        "GET {endpoint} {query:?}: {status} {body}"
    );
    serde_json::from_str(&body).unwrap()
}

/// `{key, value}` entries as a map.
fn key_values(entries: &Value) -> HashMap<String, String> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let key = e["key"].as_str().unwrap().to_owned();
            (key, e["value"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The run's `(step, value, timestamp)` history of `key`, by step.
fn history(uri: &str, run_id: &str, key: &str) -> Vec<(i64, f64, i64)> {
    let reply = get_json(
        uri,
        "metrics/get-history",
        &[("run_id", run_id), ("metric_key", key)],
    );
    let mut points: Vec<(i64, f64, i64)> = reply["metrics"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m["step"].as_i64().unwrap(),
                m["value"].as_f64().unwrap(),
                m["timestamp"].as_i64().unwrap(),
            )
        })
        .collect();
    points.sort_by_key(|p| p.0);
    points
}

fn config(uri: &str, run_name: &str) -> TrackingConfig {
    TrackingConfig {
        run_name: Some(run_name.to_owned()),
        flush_interval: Duration::from_millis(200),
        retry_backoff: Duration::from_millis(200),
        finish_timeout: Duration::from_secs(30),
        ..TrackingConfig::new(uri, "ppo-rs-integration")
    }
}

/// Checks a run's status, name and end time; returns its `run` object.
fn check_run(uri: &str, summary: &TrackingSummary, run_name: &str, status: &str) -> Value {
    let run_id = summary.run_id.as_deref().expect("run created");
    let run = get_json(uri, "runs/get", &[("run_id", run_id)])["run"].clone();
    assert_eq!(run["info"]["status"], status);
    assert_eq!(run["info"]["run_name"], run_name);
    let start = run["info"]["start_time"].as_i64().unwrap();
    assert!(run["info"]["end_time"].as_i64().unwrap() >= start);
    run
}

#[cfg(not(unix))]
fn run_against(_mlflow: &Path) {
    report_skip(
        "ppo-log mlflow",
        "the mlflow test runs the server as a Unix process group",
    );
}

#[cfg(unix)]
fn run_against(mlflow: &Path) {
    let server = server::MlflowServer::start(mlflow, Duration::from_secs(120));
    let uri = server.uri.as_str();

    // A finished run: params, tags, three steps of metrics.
    let params = flatten_params(&json!({
        "training": {"learning_rate": 1e-4, "batch_size": 8},
        "model": {"name": "tiny", "betas": [0.9, 0.95]}
    }));
    let tags = vec![
        (
            "ppo_rs.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        ("ppo_rs.git_commit".to_owned(), "0123abc".to_owned()),
    ];
    let tracker = Tracker::start(config(uri, "it-finished"), params, tags).unwrap();
    for step in 1..=3u64 {
        let x = step as f64;
        let values = vec![
            ("reward".to_owned(), 0.5 * x),
            ("time/generate".to_owned(), 0.1 * x),
            ("kl:mean".to_owned(), 1e-3 / x),
        ];
        tracker.log_metrics(step, BASE_TIMESTAMP_MS + step as i64, &values);
    }
    let summary = tracker.finish();
    println!("finished run: {summary}");
    assert_eq!((summary.points_sent, summary.points_dropped), (9, 0));
    assert!(summary.status_recorded);

    let run = check_run(uri, &summary, "it-finished", "FINISHED");
    let run_id = summary.run_id.as_deref().unwrap();
    let params = key_values(&run["data"]["params"]);
    assert_eq!(params["training.learning_rate"], "0.0001");
    assert_eq!(params["training.batch_size"], "8");
    assert_eq!(params["model.name"], "tiny");
    assert_eq!(params["model.betas"], "[0.9,0.95]");
    let tags = key_values(&run["data"]["tags"]);
    assert_eq!(tags["ppo_rs.git_commit"], "0123abc");
    assert_eq!(tags["mlflow.runName"], "it-finished");
    let expect = |f: fn(f64) -> f64| -> Vec<(i64, f64, i64)> {
        (1..=3)
            .map(|step| (step, f(step as f64), BASE_TIMESTAMP_MS + step))
            .collect()
    };
    assert_eq!(history(uri, run_id, "reward"), expect(|x| 0.5 * x));
    assert_eq!(history(uri, run_id, "time/generate"), expect(|x| 0.1 * x));
    assert_eq!(history(uri, run_id, "kl_mean"), expect(|x| 1e-3 / x));

    // A failed run in the same (now existing) experiment.
    let tracker = Tracker::start(config(uri, "it-failed"), Vec::new(), Vec::new()).unwrap();
    tracker.log_metrics(7, BASE_TIMESTAMP_MS, &[("reward".to_owned(), -1.5)]);
    let failed = tracker.fail();
    println!("failed run: {failed}");
    assert!(failed.status_recorded);
    let failed_run = check_run(uri, &failed, "it-failed", "FAILED");
    assert_eq!(
        failed_run["info"]["experiment_id"],
        run["info"]["experiment_id"]
    );
    let failed_id = failed.run_id.as_deref().unwrap();
    assert_eq!(
        history(uri, failed_id, "reward"),
        vec![(7, -1.5, BASE_TIMESTAMP_MS)]
    );
    println!("mlflow integration passed: run {run_id} FINISHED, run {failed_id} FAILED");
}

#[test]
fn tracker_logs_runs_to_a_real_mlflow_server() {
    let Some(mlflow) = mlflow_executable() else {
        report_skip(
            "ppo-log mlflow",
            "mlflow not installed (set PPO_RS_MLFLOW or run scripts/install-mlflow.sh)",
        );
        return;
    };
    // Show the tracker's warnings with the test output.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    run_against(&mlflow);
}
