//! The few MLflow REST calls the tracker makes, and the split of failures into
//! "try again later" and "will never work".

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest::blocking::{Client, RequestBuilder};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::json;

use super::batch::{KeyValue, Metric};

/// Final state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunStatus {
    Finished,
    Failed,
    /// Stopped by the user (a signal), resumable.
    Killed,
}

impl RunStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestError {
    /// May work later: no connection, timeout, HTTP 5xx/408/429, or a reply that is not
    /// the JSON expected.
    Transient(String),
    /// The server refused the request (other 4xx); sending it again will not help.
    Rejected {
        status: u16,
        error_code: String,
        message: String,
    },
}

impl RequestError {
    fn is_code(&self, code: &str) -> bool {
        matches!(self, Self::Rejected { error_code, .. } if error_code == code)
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transient(reason) => f.write_str(reason),
            Self::Rejected {
                status,
                error_code,
                message,
            } => write!(f, "HTTP {status} {error_code}: {message}"),
        }
    }
}

/// A blocking client for one tracking server; every call takes its own timeout.
#[derive(Debug)]
pub(crate) struct MlflowClient {
    http: Client,
    base_url: Url,
}

#[derive(Deserialize)]
struct ExperimentReply {
    experiment: ExperimentInfo,
}

#[derive(Deserialize)]
struct ExperimentInfo {
    experiment_id: String,
    #[serde(default)]
    lifecycle_stage: Option<String>,
}

#[derive(Deserialize)]
struct CreateExperimentReply {
    experiment_id: String,
}

#[derive(Deserialize)]
struct RunReply {
    run: RunBody,
}

#[derive(Deserialize)]
struct RunBody {
    info: RunInfo,
}

/// Servers send `run_id`, older ones only the deprecated `run_uuid`, current ones both.
#[derive(Deserialize)]
struct RunInfo {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
}

#[derive(Deserialize)]
struct ErrorReply {
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl MlflowClient {
    /// A client for the server at `base_url`. Proxies are not used: reqwest would take
    /// them from the environment, which only ppo-cli may read.
    pub(crate) fn new(base_url: Url, connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = Client::builder()
            .no_proxy()
            .connect_timeout(connect_timeout)
            .user_agent(concat!("ppo-rs/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, base_url })
    }

    /// The id of experiment `name`, creating it when missing.
    pub(crate) fn get_or_create_experiment(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<String, RequestError> {
        match self.get_experiment(name, timeout) {
            Err(err) if err.is_code("RESOURCE_DOES_NOT_EXIST") => {}
            other => return other,
        }
        let created: Result<CreateExperimentReply, _> = self.send(
            self.post("experiments/create")
                .json(&json!({ "name": name })),
            timeout,
        );
        match created {
            Ok(reply) => Ok(reply.experiment_id),
            // Another client created it in between.
            Err(err) if err.is_code("RESOURCE_ALREADY_EXISTS") => {
                self.get_experiment(name, timeout)
            }
            Err(err) => Err(err),
        }
    }

    fn get_experiment(&self, name: &str, timeout: Duration) -> Result<String, RequestError> {
        let mut url = self.endpoint("experiments/get-by-name");
        url.query_pairs_mut().append_pair("experiment_name", name);
        let reply: ExperimentReply = self.send(self.http.get(url), timeout)?;
        if reply.experiment.lifecycle_stage.as_deref() == Some("deleted") {
            return Err(RequestError::Rejected {
                status: 200,
                error_code: "EXPERIMENT_DELETED".to_owned(),
                message: format!(
                    "experiment {name:?} is deleted; restore it or choose another name"
                ),
            });
        }
        Ok(reply.experiment.experiment_id)
    }

    /// Creates a run and returns its id. `start_time` is in ms since the epoch.
    pub(crate) fn create_run(
        &self,
        experiment_id: &str,
        start_time: i64,
        run_name: Option<&str>,
        tags: &[KeyValue],
        timeout: Duration,
    ) -> Result<String, RequestError> {
        let mut body = json!({
            "experiment_id": experiment_id,
            "start_time": start_time,
            "tags": tags,
        });
        if let Some(run_name) = run_name {
            body["run_name"] = json!(run_name);
        }
        let reply: RunReply = self.send(self.post("runs/create").json(&body), timeout)?;
        let RunInfo { run_id, run_uuid } = reply.run.info;
        run_id.or(run_uuid).ok_or_else(|| {
            RequestError::Transient("runs/create replied without a run id".to_owned())
        })
    }

    /// Sends params and metrics in one `runs/log-batch` request.
    pub(crate) fn log_batch(
        &self,
        run_id: &str,
        params: &[KeyValue],
        metrics: &[Metric],
        timeout: Duration,
    ) -> Result<(), RequestError> {
        let body = json!({ "run_id": run_id, "params": params, "metrics": metrics });
        let _: IgnoredAny = self.send(self.post("runs/log-batch").json(&body), timeout)?;
        Ok(())
    }

    /// Sets the run's final status and end time (ms since the epoch).
    pub(crate) fn update_run(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time: i64,
        timeout: Duration,
    ) -> Result<(), RequestError> {
        let body = json!({ "run_id": run_id, "status": status.as_str(), "end_time": end_time });
        let _: IgnoredAny = self.send(self.post("runs/update").json(&body), timeout)?;
        Ok(())
    }

    fn endpoint(&self, path: &str) -> Url {
        let mut url = self.base_url.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}/api/2.0/mlflow/{path}"));
        url.set_query(None);
        url
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.endpoint(path))
    }

    fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        timeout: Duration,
    ) -> Result<T, RequestError> {
        let response = request
            .timeout(timeout)
            .send()
            .map_err(|err| RequestError::Transient(describe_reqwest_error(&err)))?;
        let status = response.status();
        let body = response.text().map_err(|err| {
            RequestError::Transient(format!(
                "HTTP {status}: failed to read the reply: {}",
                describe_reqwest_error(&err)
            ))
        })?;
        if status.is_success() {
            return serde_json::from_str(&body).map_err(|err| {
                RequestError::Transient(format!(
                    "HTTP {status} with a malformed reply ({err}): {}",
                    excerpt(&body)
                ))
            });
        }
        let code = status.as_u16();
        let retry_later = status.is_server_error() || matches!(code, 408 | 429);
        if !status.is_client_error() || retry_later {
            return Err(RequestError::Transient(format!(
                "HTTP {status}: {}",
                excerpt(&body)
            )));
        }
        let parsed: Option<ErrorReply> = serde_json::from_str(&body).ok();
        let (error_code, message) = match parsed {
            Some(ErrorReply {
                error_code: Some(error_code),
                message,
            }) => (error_code, message.unwrap_or_default()),
            _ => (
                status.canonical_reason().unwrap_or("error").to_owned(),
                excerpt(&body),
            ),
        };
        Err(RequestError::Rejected {
            status: code,
            error_code,
            message,
        })
    }
}

/// The error with its sources, which say what actually went wrong (refused, timed out).
fn describe_reqwest_error(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// At most 200 characters of a reply body on one line, for warnings.
fn excerpt(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut = super::keys::truncate_chars(&one_line, 200);
    if cut.len() < one_line.len() {
        format!("{cut}…")
    } else {
        cut.to_owned()
    }
}
