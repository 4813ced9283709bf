//! Tests of the tracking sink: pure helpers, and the whole tracker against the fake
//! server in `fake_server.rs` (outages, bad replies, refusals, timeouts).

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fake_server::{FakeServer, Reply, Request, mlflow_ok};
use super::keys::{prepare_key_values, sanitize_key, truncate_chars};
use super::*;

fn fast_config(uri: &str) -> TrackingConfig {
    TrackingConfig {
        flush_interval: Duration::from_millis(20),
        request_timeout: Duration::from_secs(2),
        max_retries: 3,
        retry_backoff: Duration::from_millis(5),
        finish_timeout: Duration::from_secs(5),
        ..TrackingConfig::new(uri, "exp")
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn metrics(values: &[(&str, f64)]) -> Vec<(String, f64)> {
    values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Every metric the server accepted, as (key, step, value), in order.
fn logged_metrics(server: &FakeServer) -> Vec<(String, i64, f64)> {
    server
        .requests_to("runs/log-batch")
        .iter()
        .flat_map(|r| r.body["metrics"].as_array().cloned().unwrap_or_default())
        .map(|m| {
            (
                m["key"].as_str().unwrap().to_owned(),
                m["step"].as_i64().unwrap(),
                m["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn flatten_params_gives_dotted_keys() {
    let config = json!({
        "training": {"learning_rate": 1e-5, "schedule": {"name": "cosine", "warmup": 10}},
        "model": {"tied": true, "dropout": null, "betas": [0.9, 0.95]},
        "empty": {},
        "seed": 42
    });
    let params: HashMap<String, String> = flatten_params(&config).into_iter().collect();
    let expected: HashMap<String, String> = [
        ("training.learning_rate", "0.00001"),
        ("training.schedule.name", "cosine"),
        ("training.schedule.warmup", "10"),
        ("model.tied", "true"),
        ("model.dropout", "null"),
        ("model.betas", "[0.9,0.95]"),
        ("seed", "42"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(params, expected);
    assert_eq!(
        flatten_params(&json!(3)),
        vec![(String::new(), "3".to_owned())]
    );
}

#[test]
fn sanitize_key_makes_valid_mlflow_names() {
    assert_eq!(sanitize_key("time/generate"), "time/generate");
    assert_eq!(sanitize_key("a-b_c.d e/f"), "a-b_c.d e/f");
    assert_eq!(sanitize_key("kl:mean"), "kl_mean");
    assert_eq!(sanitize_key("réward(x)"), "r_ward_x_");
    assert_eq!(sanitize_key("/lead//double/trail/"), "lead/double/trail");
    assert_eq!(sanitize_key("./a/../b"), "_/a/__/b");
    assert_eq!(sanitize_key(""), "_");
    assert_eq!(sanitize_key("//"), "_");
    let long = "x".repeat(300);
    assert_eq!(sanitize_key(&long).len(), MAX_KEY_CHARS);
}

#[test]
fn values_are_cut_on_char_boundaries_and_keys_deduplicated() {
    assert_eq!(truncate_chars("héllo", 2), "hé");
    assert_eq!(truncate_chars("hi", 5), "hi");
    let long = "é".repeat(MAX_PARAM_VALUE_CHARS + 10);
    let prepared = prepare_key_values(
        vec![
            ("a:b".to_owned(), long),
            ("a_b".to_owned(), "second".to_owned()),
            ("c".to_owned(), "1".to_owned()),
        ],
        MAX_PARAM_VALUE_CHARS,
        "param",
    );
    assert_eq!(prepared.len(), 2);
    assert_eq!(prepared[0].key, "a_b");
    assert_eq!(prepared[0].value.chars().count(), MAX_PARAM_VALUE_CHARS);
    assert_eq!(
        (prepared[1].key.as_str(), prepared[1].value.as_str()),
        ("c", "1")
    );
}

#[test]
fn environment_wins_over_config_for_tracking_settings() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |key: &str| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let settings = |uri: &str, experiment: &str| TrackingSettings {
        tracking_uri: uri.to_owned(),
        experiment_name: experiment.to_owned(),
    };
    // Nothing set anywhere: tracking is off.
    assert_eq!(resolve_tracking_settings(None, Some("cfg"), env(&[])), None);
    // Config only; experiment defaults to MLflow's.
    assert_eq!(
        resolve_tracking_settings(Some("http://cfg:5000"), None, env(&[])),
        Some(settings("http://cfg:5000", DEFAULT_EXPERIMENT_NAME))
    );
    // Environment over config, key by key.
    assert_eq!(
        resolve_tracking_settings(
            Some("http://cfg:5000"),
            Some("cfg-exp"),
            env(&[("MLFLOW_TRACKING_URI", "http://env:5000")])
        ),
        Some(settings("http://env:5000", "cfg-exp"))
    );
    assert_eq!(
        resolve_tracking_settings(
            None,
            Some("cfg-exp"),
            env(&[
                ("MLFLOW_TRACKING_URI", " http://env:5000 "),
                ("MLFLOW_EXPERIMENT_NAME", "env-exp")
            ])
        ),
        Some(settings("http://env:5000", "env-exp"))
    );
    // Empty values count as unset.
    assert_eq!(
        resolve_tracking_settings(
            Some("http://cfg:5000"),
            Some(""),
            env(&[
                ("MLFLOW_TRACKING_URI", ""),
                ("MLFLOW_EXPERIMENT_NAME", "  ")
            ])
        ),
        Some(settings("http://cfg:5000", DEFAULT_EXPERIMENT_NAME))
    );
}

#[test]
fn start_rejects_configs_that_can_never_work() {
    let start = |uri: &str, experiment: &str| {
        Tracker::start(TrackingConfig::new(uri, experiment), Vec::new(), Vec::new())
    };
    assert!(matches!(
        start("not a uri", "exp"),
        Err(TrackingError::InvalidUri { .. })
    ));
    assert!(matches!(
        start("file:///tmp/mlruns", "exp"),
        Err(TrackingError::UnsupportedUri { .. })
    ));
    assert!(matches!(
        start("databricks://profile", "exp"),
        Err(TrackingError::UnsupportedUri { .. })
    ));
    assert!(matches!(
        start("http://127.0.0.1:1", " "),
        Err(TrackingError::EmptyExperimentName)
    ));
}

#[test]
fn tracker_creates_run_and_sends_params_metrics_and_status() {
    let server = FakeServer::start(mlflow_ok);
    let config = TrackingConfig {
        run_name: Some("nightly".to_owned()),
        ..fast_config(&format!("{}/", server.uri()))
    };
    let params = vec![
        ("training.learning_rate".to_owned(), "0.0001".to_owned()),
        ("model.name".to_owned(), "tiny".to_owned()),
    ];
    let tags = vec![
        ("ppo_rs.version".to_owned(), "0.1.0".to_owned()),
        ("mlflow.runName".to_owned(), "other".to_owned()),
    ];
    let tracker = Tracker::start(config, params, tags).unwrap();
    tracker.log_metrics(1, 1000, &metrics(&[("reward", 0.5), ("kl:mean", 0.01)]));
    tracker.log_metrics(2, 2000, &metrics(&[("reward", 0.75), ("loss", f64::NAN)]));
    tracker.log_metrics(3, -5, &metrics(&[("time/generate", 1.25)]));
    let summary = tracker.finish();

    assert_eq!(
        summary,
        TrackingSummary {
            run_id: Some("run-1".to_owned()),
            points_sent: 4,
            points_dropped: 0,
            points_skipped: 1,
            status_recorded: true,
        }
    );
    let lookup = &server.requests_to("experiments/get-by-name")[0];
    assert_eq!(lookup.method, "GET");
    assert_eq!(lookup.query, "experiment_name=exp");
    assert_eq!(
        server.requests_to("experiments/create")[0].body,
        json!({"name": "exp"})
    );

    let create = &server.requests_to("runs/create")[0].body;
    assert_eq!(create["experiment_id"], "7");
    assert_eq!(create["run_name"], "nightly");
    assert!(create["start_time"].as_i64().unwrap() > 0);
    // The conflicting runName tag is left to the server.
    assert_eq!(
        create["tags"],
        json!([{"key": "ppo_rs.version", "value": "0.1.0"}])
    );

    let batches = server.requests_to("runs/log-batch");
    assert_eq!(batches[0].body["run_id"], "run-1");
    assert_eq!(
        batches[0].body["params"],
        json!([
            {"key": "training.learning_rate", "value": "0.0001"},
            {"key": "model.name", "value": "tiny"}
        ])
    );
    assert_eq!(
        logged_metrics(&server),
        vec![
            ("reward".to_owned(), 1, 0.5),
            ("kl_mean".to_owned(), 1, 0.01),
            ("reward".to_owned(), 2, 0.75),
            ("time/generate".to_owned(), 3, 1.25),
        ]
    );
    let timestamps: Vec<i64> = batches
        .iter()
        .flat_map(|r| r.body["metrics"].as_array().cloned().unwrap_or_default())
        .map(|m| m["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(timestamps, vec![1000, 1000, 2000, 0]);

    let update = &server.requests_to("runs/update")[0].body;
    assert_eq!(update["run_id"], "run-1");
    assert_eq!(update["status"], "FINISHED");
    assert!(update["end_time"].as_i64().unwrap() >= create["start_time"].as_i64().unwrap());
}

#[test]
fn server_errors_are_retried_until_the_batch_is_accepted() {
    let server = FakeServer::start(|request: &Request, earlier: usize| {
        if request.endpoint == "runs/log-batch" && earlier < 2 {
            return Reply::raw(500, "internal error");
        }
        mlflow_ok(request, earlier)
    });
    let tracker = Tracker::start(fast_config(&server.uri()), Vec::new(), Vec::new()).unwrap();
    tracker.log_metrics(1, 10, &metrics(&[("reward", 1.0), ("loss", 2.0)]));
    assert!(server.wait_for(Duration::from_secs(5), |requests| {
        requests
            .iter()
            .filter(|r| r.endpoint == "runs/log-batch")
            .count()
            >= 3
    }));
    let summary = tracker.finish();

    let batches = server.requests_to("runs/log-batch");
    assert_eq!(batches.len(), 3, "two failures, then one success");
    assert!(batches.iter().all(|b| b.body == batches[0].body));
    assert_eq!((summary.points_sent, summary.points_dropped), (2, 0));
    assert!(summary.status_recorded);
}

#[test]
fn malformed_replies_are_retried() {
    let server = FakeServer::start(|request: &Request, earlier: usize| {
        match (request.endpoint.as_str(), earlier) {
            ("experiments/get-by-name", 0) => Reply::raw(200, "<html>proxy page</html>"),
            ("runs/create", 0) => Reply::json(200, &json!({"run": {}})),
            // Old servers name the id `run_uuid` only.
            ("runs/create", _) => Reply::json(200, &json!({"run": {"info": {"run_uuid": "old"}}})),
            _ => mlflow_ok(request, earlier),
        }
    });
    let tracker = Tracker::start(fast_config(&server.uri()), Vec::new(), Vec::new()).unwrap();
    tracker.log_metrics(1, 10, &metrics(&[("reward", 1.0)]));
    let summary = tracker.finish();
    assert_eq!(summary.run_id.as_deref(), Some("old"));
    assert_eq!(server.requests_to("experiments/get-by-name").len(), 2);
    assert_eq!(server.requests_to("runs/create").len(), 2);
    assert_eq!((summary.points_sent, summary.points_dropped), (1, 0));
}

#[test]
fn refused_batch_is_dropped_and_later_ones_are_sent() {
    let server = FakeServer::start(|request: &Request, earlier: usize| {
        if request.endpoint == "runs/log-batch" && earlier == 0 {
            return Reply::json(
                400,
                &json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad metric"}),
            );
        }
        mlflow_ok(request, earlier)
    });
    let tracker = Tracker::start(fast_config(&server.uri()), Vec::new(), Vec::new()).unwrap();
    tracker.log_metrics(1, 10, &metrics(&[("reward", 1.0), ("loss", 2.0)]));
    assert!(server.wait_for(Duration::from_secs(5), |requests| {
        requests.iter().any(|r| r.endpoint == "runs/log-batch")
    }));
    tracker.log_metrics(2, 20, &metrics(&[("reward", 3.0)]));
    let summary = tracker.finish();

    assert_eq!(
        server.requests_to("runs/log-batch").len(),
        2,
        "no retry of a 400"
    );
    assert_eq!((summary.points_sent, summary.points_dropped), (1, 2));
    assert_eq!(
        logged_metrics(&server).last(),
        Some(&("reward".to_owned(), 2, 3.0))
    );
    assert!(summary.status_recorded);
}

#[test]
fn server_down_at_start_is_retried_in_the_background() {
    let port = free_port();
    let tracker = Tracker::start(
        fast_config(&format!("http://127.0.0.1:{port}")),
        vec![("seed".to_owned(), "1".to_owned())],
        Vec::new(),
    )
    .unwrap();
    tracker.log_metrics(1, 10, &metrics(&[("reward", 1.0)]));
    assert_eq!(tracker.run_id(), None);

    let server = FakeServer::start_on(port, mlflow_ok);
    // Creation and sending happen on the background thread, before any finish().
    assert!(server.wait_for(Duration::from_secs(5), |requests| {
        requests.iter().any(|r| r.endpoint == "runs/log-batch")
    }));
    assert_eq!(tracker.run_id().as_deref(), Some("run-1"));
    tracker.log_metrics(2, 20, &metrics(&[("reward", 2.0)]));
    let summary = tracker.finish();

    assert_eq!((summary.points_sent, summary.points_dropped), (2, 0));
    assert_eq!(
        server.requests_to("runs/log-batch")[0].body["params"],
        json!([{"key": "seed", "value": "1"}])
    );
}

#[test]
fn unreachable_server_never_blocks_training() {
    let port = free_port();
    let config = TrackingConfig {
        request_timeout: Duration::from_millis(200),
        finish_timeout: Duration::from_millis(300),
        ..fast_config(&format!("http://127.0.0.1:{port}"))
    };
    let started = Instant::now();
    let tracker = Tracker::start(config, Vec::new(), Vec::new()).unwrap();
    for step in 0..100 {
        tracker.log_metrics(step, 10, &metrics(&[("reward", 1.0), ("loss", 2.0)]));
    }
    let training_time = started.elapsed();
    let finishing = Instant::now();
    let summary = tracker.finish();
    let finish_time = finishing.elapsed();

    assert!(
        training_time < Duration::from_millis(200),
        "{training_time:?}"
    );
    assert!(finish_time < Duration::from_millis(1500), "{finish_time:?}");
    assert_eq!(
        summary,
        TrackingSummary {
            run_id: None,
            points_sent: 0,
            points_dropped: 200,
            points_skipped: 0,
            status_recorded: false,
        }
    );
}

#[test]
fn silent_server_is_bounded_by_timeouts() {
    // Accepts connections (the kernel does) but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    let config = TrackingConfig {
        request_timeout: Duration::from_millis(100),
        finish_timeout: Duration::from_millis(400),
        ..fast_config(&uri)
    };
    let tracker = Tracker::start(config, Vec::new(), Vec::new()).unwrap();
    tracker.log_metrics(1, 10, &metrics(&[("reward", 1.0)]));
    let finishing = Instant::now();
    let summary = tracker.finish();
    let finish_time = finishing.elapsed();
    assert!(finish_time < Duration::from_millis(1500), "{finish_time:?}");
    assert!(!summary.run_created());
    assert_eq!(summary.points_dropped, 1);
    drop(listener);
}

#[test]
fn full_buffer_drops_the_oldest_points() {
    let port = free_port();
    let config = TrackingConfig {
        max_buffered_points: 10,
        // One failed attempt at start, then quiet until finish().
        flush_interval: Duration::from_secs(60),
        retry_backoff: Duration::from_secs(60),
        ..fast_config(&format!("http://127.0.0.1:{port}"))
    };
    let tracker = Tracker::start(config, Vec::new(), Vec::new()).unwrap();
    for step in 0..25 {
        tracker.log_metrics(step, 10, &metrics(&[("reward", step as f64)]));
    }
    let server = FakeServer::start_on(port, mlflow_ok);
    let summary = tracker.finish();

    assert_eq!((summary.points_sent, summary.points_dropped), (10, 15));
    let steps: Vec<i64> = logged_metrics(&server).iter().map(|m| m.1).collect();
    assert_eq!(steps, (15..25).collect::<Vec<i64>>());
}

#[test]
fn fail_and_drop_mark_the_run_failed() {
    let server = FakeServer::start(mlflow_ok);
    let tracker = Tracker::start(fast_config(&server.uri()), Vec::new(), Vec::new()).unwrap();
    tracker.log_metrics(1, 10, &metrics(&[("reward", 1.0)]));
    let summary = tracker.fail();
    assert!(summary.status_recorded);

    let dropped = Tracker::start(fast_config(&server.uri()), Vec::new(), Vec::new()).unwrap();
    dropped.log_metrics(1, 10, &metrics(&[("reward", 1.0)]));
    drop(dropped);

    let statuses: Vec<Value> = server
        .requests_to("runs/update")
        .iter()
        .map(|r| r.body["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("FAILED"), json!("FAILED")]);
    assert_eq!(logged_metrics(&server).len(), 2);
}

#[test]
fn refused_run_turns_tracking_off() {
    let server = FakeServer::start(|request: &Request, earlier: usize| {
        if request.endpoint == "runs/create" {
            return Reply::json(
                403,
                &json!({"error_code": "PERMISSION_DENIED", "message": "no"}),
            );
        }
        mlflow_ok(request, earlier)
    });
    let tracker = Tracker::start(fast_config(&server.uri()), Vec::new(), Vec::new()).unwrap();
    tracker.log_metrics(1, 10, &metrics(&[("reward", 1.0)]));
    assert!(server.wait_for(Duration::from_secs(5), |requests| {
        requests.iter().any(|r| r.endpoint == "runs/create")
    }));
    tracker.log_metrics(2, 10, &metrics(&[("reward", 1.0)]));
    let summary = tracker.finish();
    assert_eq!(
        server.requests_to("runs/create").len(),
        1,
        "a 403 is not retried"
    );
    assert!(server.requests_to("runs/log-batch").is_empty());
    assert_eq!((summary.points_sent, summary.points_dropped), (0, 2));
    assert!(!summary.run_created());
}
