//! A tiny HTTP/1.1 server for the tracking tests: answers from a closure, records every
//! request, and lets a test wait for one without sleeping.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// Path after `/api/2.0/mlflow/`, e.g. `runs/log-batch`.
    pub(crate) endpoint: String,
    pub(crate) query: String,
    /// The JSON body, `Null` when empty.
    pub(crate) body: Value,
}

/// What the server answers.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            body: body.to_string(),
        }
    }

    pub(crate) fn raw(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
        }
    }
}

/// Answers a request; `earlier` counts the requests to the same endpoint before it.
pub(crate) type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// The happy MLflow server: experiment missing then created, run `run-1`, `{}` for the rest.
pub(crate) fn mlflow_ok(request: &Request, _earlier: usize) -> Reply {
    match request.endpoint.as_str() {
        "experiments/get-by-name" => Reply::json(
            404,
            &json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such experiment"}),
        ),
        "experiments/create" => Reply::json(200, &json!({"experiment_id": "7"})),
        "runs/create" => Reply::json(
            200,
            &json!({"run": {"info": {"run_uuid": "run-1", "run_id": "run-1", "status": "RUNNING"}}}),
        ),
        "runs/log-batch" | "runs/update" => Reply::json(200, &json!({})),
        _ => Reply::json(404, &json!({"error_code": "ENDPOINT_NOT_FOUND"})),
    }
}

#[derive(Default)]
struct Log {
    requests: Mutex<Vec<Request>>,
    changed: Condvar,
}

/// Serves on 127.0.0.1 until dropped.
pub(crate) struct FakeServer {
    addr: SocketAddr,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Serves on a free port.
    pub(crate) fn start(
        handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_on(0, handler)
    }

    /// Serves on `port` (0 picks a free one).
    pub(crate) fn start_on(
        port: u16,
        handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Log::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let log = Arc::clone(&log);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve(stream, &*handler, &log);
                    }
                }
            })
        };
        Self {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.log.requests.lock().unwrap().clone()
    }

    /// Requests to `endpoint`, in order.
    pub(crate) fn requests_to(&self, endpoint: &str) -> Vec<Request> {
        let requests = self.requests();
        requests
            .into_iter()
            .filter(|r| r.endpoint == endpoint)
            .collect()
    }

    /// Waits until `done` holds for the requests so far; false after `timeout`.
    pub(crate) fn wait_for(&self, timeout: Duration, done: impl Fn(&[Request]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut requests = self.log.requests.lock().unwrap();
        while !done(&requests) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            requests = self.log.changed.wait_timeout(requests, left).unwrap().0;
        }
        true
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Log) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let Some(request) = read_request(&stream) else {
        return;
    };
    let earlier = {
        let requests = log.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.endpoint == request.endpoint)
            .count()
    };
    let reply = handler(&request, earlier);
    {
        let mut requests = log.requests.lock().unwrap();
        requests.push(request);
        log.changed.notify_all();
    }
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(reply.body.as_bytes());
    let _ = stream.flush();
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut content_length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let endpoint = path
        .split_once("/api/2.0/mlflow/")
        .map_or(path, |(_, endpoint)| endpoint);
    Some(Request {
        method,
        endpoint: endpoint.to_owned(),
        query: query.to_owned(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}
