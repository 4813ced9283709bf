//! `RemoteReward` against a hand-written HTTP/1.1 server on 127.0.0.1 that replies from a
//! script and records every request.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ppo_core::{Reward, RewardInput};
use ppo_reward::{RemoteConfig, RemoteReward};
use serde_json::{Value, json};

/// What the server does with one request.
#[derive(Clone)]
enum Reply {
    /// Answer with this status and body.
    Status(u16, &'static str),
    /// Never answer; wait until the client hangs up.
    Hang,
}

/// A request as the server received it.
#[derive(Clone, Debug)]
struct Recorded {
    /// Request line and headers.
    head: String,
    body: String,
}

struct FakeServer {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeServer {
    /// Serves request `i` with `script[i]`, the last entry repeating.
    fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/score", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                let reply = {
                    let mut log = log.lock().unwrap();
                    log.push(request);
                    script[(log.len() - 1).min(script.len() - 1)].clone()
                };
                match reply {
                    Reply::Status(status, body) => write_reply(&mut stream, status, body),
                    Reply::Hang => {
                        // Returns when the client closes the connection (or after 30 s).
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                        let _ = stream.read(&mut [0u8; 64]);
                    }
                }
            }
        });
        Self { url, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads one request: the head up to the blank line, then `Content-Length` bytes of body.
fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        data.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned();
    Some(Recorded { head, body })
}

fn write_reply(stream: &mut TcpStream, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Other",
    };
    let reply = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.flush();
}

/// A client for `url` that retries at once (no backoff wait).
fn client(url: &str, max_retries: u32) -> RemoteReward {
    let mut config = RemoteConfig::new(url);
    config.max_retries = max_retries;
    config.initial_backoff = Duration::ZERO;
    config.timeout = Duration::from_secs(10);
    RemoteReward::new(config).unwrap()
}

fn batch() -> Vec<RewardInput<'static>> {
    vec![
        RewardInput {
            prompt: "2+2=?",
            response: "4",
            reference: Some("4"),
            finished: true,
        },
        RewardInput {
            prompt: "如何制作一杯好咖啡？",
            response: "Grind \"fresh\" beans.",
            reference: None,
            finished: false,
        },
    ]
}

#[test]
fn posts_the_batch_as_json_and_reads_scores() {
    let server = FakeServer::start(vec![Reply::Status(200, r#"{"scores": [0.5, -1.25]}"#)]);
    let mut config = RemoteConfig::new(&server.url);
    config.name = "judge".into();
    config.headers = vec![("Authorization".into(), "Bearer t0k3n".into())];
    let mut reward = RemoteReward::new(config).unwrap();
    assert_eq!(reward.name(), "judge");
    assert_eq!(reward.score(&batch()).unwrap(), [0.5, -1.25]);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let head = requests[0].head.to_ascii_lowercase();
    assert!(head.starts_with("post /score http/1.1"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("authorization: bearer t0k3n"), "{head}");
    let body: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "prompts": ["2+2=?", "如何制作一杯好咖啡？"],
            "responses": ["4", "Grind \"fresh\" beans."],
            "references": ["4", null],
        })
    );
}

#[test]
fn accepts_a_bare_array() {
    let server = FakeServer::start(vec![Reply::Status(200, "[1, 0]")]);
    assert_eq!(client(&server.url, 0).score(&batch()).unwrap(), [1.0, 0.0]);
}

#[test]
fn an_empty_batch_sends_nothing() {
    let server = FakeServer::start(vec![Reply::Status(500, "")]);
    assert!(client(&server.url, 0).score(&[]).unwrap().is_empty());
    assert!(server.requests().is_empty());
}

#[test]
fn retries_server_errors_and_too_many_requests() {
    let server = FakeServer::start(vec![
        Reply::Status(500, "oops"),
        Reply::Status(429, "slow down"),
        Reply::Status(503, "busy"),
        Reply::Status(200, r#"{"scores": [3, 4]}"#),
    ]);
    let scores = client(&server.url, 3).score(&batch()).unwrap();
    assert_eq!(scores, [3.0, 4.0]);
    assert_eq!(server.requests().len(), 4);
    // Every attempt sends the same body.
    let bodies: Vec<String> = server.requests().into_iter().map(|r| r.body).collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]));
}

#[test]
fn gives_up_after_the_last_retry() {
    let server = FakeServer::start(vec![Reply::Status(500, "model server overloaded")]);
    let err = client(&server.url, 2)
        .score(&batch())
        .unwrap_err()
        .to_string();
    assert_eq!(server.requests().len(), 3);
    assert!(err.contains(&server.url), "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
    assert!(
        err.contains("HTTP 500 Internal Server Error: model server overloaded"),
        "{err}"
    );
}

#[test]
fn client_errors_fail_at_once() {
    let server = FakeServer::start(vec![Reply::Status(400, r#"{"error": "bad field"}"#)]);
    let err = client(&server.url, 5)
        .score(&batch())
        .unwrap_err()
        .to_string();
    assert_eq!(server.requests().len(), 1);
    assert!(
        err.contains("HTTP 400") && err.contains("bad field") && err.contains("not retried"),
        "{err}"
    );
}

#[test]
fn times_out_on_a_silent_server() {
    let server = FakeServer::start(vec![Reply::Hang]);
    let mut config = RemoteConfig::new(&server.url);
    config.max_retries = 1;
    config.initial_backoff = Duration::ZERO;
    config.timeout = Duration::from_millis(300);
    let err = RemoteReward::new(config)
        .unwrap()
        .score(&batch())
        .unwrap_err()
        .to_string();
    assert!(err.contains("after 2 attempts"), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn retries_refused_connections() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/score");
    let err = client(&url, 1).score(&batch()).unwrap_err().to_string();
    assert!(
        err.contains(&url) && err.contains("after 2 attempts"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("connect"), "{err}");
}

#[test]
fn rejects_replies_of_the_wrong_length() {
    let server = FakeServer::start(vec![Reply::Status(200, r#"{"scores": [1, 2, 3]}"#)]);
    let err = client(&server.url, 3)
        .score(&batch())
        .unwrap_err()
        .to_string();
    assert_eq!(server.requests().len(), 1);
    assert!(
        err.contains(&server.url) && err.contains("3 scores for 2 samples"),
        "{err}"
    );
}

#[test]
fn rejects_replies_that_are_not_json_or_not_finite() {
    for (body, expected) in [
        ("<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (r#"{"scores": [1.0, NaN]}"#, "must be finite"),
        (r#"{"scores": [1.0, "high"]}"#, "score 1 is \"high\""),
    ] {
        let server = FakeServer::start(vec![Reply::Status(200, body)]);
        let err = client(&server.url, 3)
            .score(&batch())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&server.url) && err.contains(expected),
            "{body}: {err}"
        );
    }
}
