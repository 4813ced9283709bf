//! A reward computed by an HTTP server: the batch is POSTed as JSON and the scores come
//! back as JSON, with retries and exponential backoff on transient failures.
//!
//! Request body: `{"prompts": [...], "responses": [...], "references": [...]}` with `null`
//! for a sample without a reference. Reply: `{"scores": [...]}` or a bare JSON array, one
//! finite number per sample, in order.

use std::fmt;
use std::time::Duration;

use ppo_core::{Reward, RewardError, RewardInput};
use reqwest::Url;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::RewardBuildError;
use crate::excerpt::excerpt;

/// Characters of a reply body quoted in errors.
const BODY_EXCERPT_CHARS: usize = 200;

/// Settings of a [`RemoteReward`].
#[derive(Clone)]
pub struct RemoteConfig {
    /// Where the batch is POSTed (`http` or `https`).
    pub url: String,
    /// Name in logs, errors and weighted mixes (default `remote`).
    pub name: String,
    /// Limit on one whole request, connection to last byte of the reply (default 60 s).
    pub timeout: Duration,
    /// Attempts after the first one on a transient failure (default 3).
    pub max_retries: u32,
    /// Wait before the first retry; it doubles with each retry (default 0.5 s).
    pub initial_backoff: Duration,
    /// Cap on the wait between attempts (default 8 s).
    pub max_backoff: Duration,
    /// Extra request headers, e.g. `("Authorization", "Bearer …")` from the caller.
    pub headers: Vec<(String, String)>,
}

impl RemoteConfig {
    /// Default settings for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// The defaults documented on the fields, with an empty `url` that
/// [`RemoteReward::new`] rejects: set it.
impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            name: "remote".into(),
            timeout: Duration::from_secs(60),
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            headers: Vec::new(),
        }
    }
}

/// Header values are left out: they often hold credentials.
impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("RemoteConfig")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("header_names", &header_names)
            .finish()
    }
}

/// Scores from an HTTP server (see the module doc for the wire format).
///
/// Connection errors, timeouts, HTTP 5xx and HTTP 429 are retried up to `max_retries`
/// times, waiting `initial_backoff · 2^(retry − 1)` capped at `max_backoff` before each
/// retry. Any other HTTP error fails at once, and so does a reply that is not JSON, has the
/// wrong number of scores or a score that is not a finite number. Proxies from the
/// environment are not used.
#[derive(Debug)]
pub struct RemoteReward {
    name: String,
    url: Url,
    client: Client,
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

/// What one attempt ended with, when it did not end with scores.
enum Failure {
    /// Worth another attempt.
    Transient(String),
    /// Will fail the same way again.
    Permanent(String),
}

/// The request body.
#[derive(Serialize)]
struct ScoreRequest<'a> {
    prompts: Vec<&'a str>,
    responses: Vec<&'a str>,
    references: Vec<Option<&'a str>>,
}

impl RemoteReward {
    /// A client for `config.url`; errors name the bad URL, header or setting.
    pub fn new(config: RemoteConfig) -> Result<Self, RewardBuildError> {
        let url = Url::parse(&config.url).map_err(|err| RewardBuildError::InvalidUrl {
            url: config.url.clone(),
            message: err.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RewardBuildError::InvalidUrl {
                url: config.url,
                message: format!("scheme `{}` is not http or https", url.scheme()),
            });
        }
        if config.timeout.is_zero() {
            return Err(RewardBuildError::InvalidConfig {
                key: "timeout".into(),
                message: "must be positive".into(),
            });
        }
        let client = Client::builder()
            .no_proxy()
            .timeout(config.timeout)
            .default_headers(header_map(&config.headers)?)
            .user_agent(concat!("ppo-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| RewardBuildError::HttpClient {
                url: config.url.clone(),
                source,
            })?;
        Ok(Self {
            name: config.name,
            url,
            client,
            max_retries: config.max_retries,
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
        })
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// One POST of `body`, expecting `expected` scores.
    fn attempt(&self, body: &[u8], expected: usize) -> Result<Vec<f64>, Failure> {
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .map_err(|err| Failure::Transient(describe_reqwest_error(&err)))?;
        let status = response.status();
        let text = response.text();
        if !status.is_success() {
            let body = match &text {
                Ok(text) => excerpt(text, BODY_EXCERPT_CHARS),
                Err(err) => format!("(body unreadable: {})", describe_reqwest_error(err)),
            };
            let what = format!("HTTP {status}: {body}");
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                Failure::Transient(what)
            } else {
                Failure::Permanent(what)
            });
        }
        let text = text.map_err(|err| {
            Failure::Transient(format!(
                "reading the reply failed: {}",
                describe_reqwest_error(&err)
            ))
        })?;
        parse_scores(&text, expected).map_err(Failure::Permanent)
    }

    /// The error for `message`, prefixed with the request.
    fn error(&self, message: impl fmt::Display) -> RewardError {
        RewardError {
            name: self.name.clone(),
            message: format!("POST {}: {message}", self.url),
        }
    }
}

impl Reward for RemoteReward {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let request = ScoreRequest {
            prompts: batch.iter().map(|i| i.prompt).collect(),
            responses: batch.iter().map(|i| i.response).collect(),
            references: batch.iter().map(|i| i.reference).collect(),
        };
        let body = serde_json::to_vec(&request)
            .map_err(|err| self.error(format!("failed to encode the request: {err}")))?;
        let attempts = self.max_retries.saturating_add(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                let wait = backoff_delay(attempt - 1, self.initial_backoff, self.max_backoff);
                tracing::warn!(
                    reward = %self.name,
                    url = %self.url,
                    "reward server attempt {} of {attempts} failed: {last}; retrying in {wait:?}",
                    attempt - 1
                );
                std::thread::sleep(wait);
            }
            match self.attempt(&body, batch.len()) {
                Ok(scores) => return Ok(scores),
                Err(Failure::Permanent(what)) => {
                    return Err(self.error(format!("{what} (not retried)")));
                }
                Err(Failure::Transient(what)) => last = what,
            }
        }
        let plural = if attempts == 1 { "" } else { "s" };
        Err(self.error(format!(
            "failed after {attempts} attempt{plural}; last failure: {last}"
        )))
    }
}

/// The wait before retry number `retry` (1-based): `initial · 2^(retry − 1)`, at most
/// `max`.
fn backoff_delay(retry: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    initial.saturating_mul(factor).min(max)
}

/// `headers` as a header map; errors name the header, never its value.
fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, RewardBuildError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let invalid = |message: String| RewardBuildError::InvalidHeader {
            name: name.clone(),
            message,
        };
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid("not a valid header name".into()))?;
        let mut header_value = HeaderValue::from_str(value)
            .map_err(|_| invalid("value has characters HTTP headers cannot carry".into()))?;
        header_value.set_sensitive(true);
        map.insert(header_name, header_value);
    }
    Ok(map)
}

/// The scores in a reply body, checked against the batch size.
fn parse_scores(body: &str, expected: usize) -> Result<Vec<f64>, String> {
    let value: Value = serde_json::from_str(body).map_err(|err| {
        let hint = if ["NaN", "Infinity"].iter().any(|t| body.contains(t)) {
            " (NaN and Infinity are not JSON numbers: scores must be finite)"
        } else {
            ""
        };
        format!(
            "reply is not JSON ({err}){hint}: {}",
            excerpt(body, BODY_EXCERPT_CHARS)
        )
    })?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove("scores") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(format!(
                    "reply has no `scores` array: {}",
                    excerpt(body, BODY_EXCERPT_CHARS)
                ));
            }
        },
        _ => {
            return Err(format!(
                "reply is neither an array nor an object with `scores`: {}",
                excerpt(body, BODY_EXCERPT_CHARS)
            ));
        }
    };
    if items.len() != expected {
        return Err(format!(
            "reply has {} scores for {expected} samples",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(idx, item)| match item.as_f64() {
            Some(score) if score.is_finite() => Ok(score),
            _ => Err(format!("score {idx} is {item}, not a finite number")),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let delays: Vec<Duration> = (1..=6)
            .map(|r| backoff_delay(r, ms(100), ms(1000)))
            .collect();
        assert_eq!(
            delays,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(backoff_delay(200, ms(100), ms(1000)), ms(1000));
    }

    #[test]
    fn parses_both_reply_shapes_and_rejects_bad_ones() {
        assert_eq!(
            parse_scores(r#"{"scores": [1, -0.5]}"#, 2),
            Ok(vec![1.0, -0.5])
        );
        assert_eq!(parse_scores("[0.25]", 1), Ok(vec![0.25]));
        let err = parse_scores("[1, 2]", 3).unwrap_err();
        assert!(err.contains("2 scores for 3 samples"), "{err}");
        let err = parse_scores(r#"{"scores": [1, null]}"#, 2).unwrap_err();
        assert!(err.contains("score 1 is null"), "{err}");
        let err = parse_scores(r#"{"scores": [NaN]}"#, 1).unwrap_err();
        assert!(err.contains("not JSON") && err.contains("finite"), "{err}");
        let err = parse_scores(r#"{"rewards": [1]}"#, 1).unwrap_err();
        assert!(err.contains("no `scores` array"), "{err}");
        let err = parse_scores("<html>oops</html>", 1).unwrap_err();
        assert!(
            err.contains("not JSON") && err.contains("<html>oops</html>"),
            "{err}"
        );
    }

    #[test]
    fn construction_errors_name_what_is_wrong() {
        let err = RemoteReward::new(RemoteConfig::default()).unwrap_err();
        assert!(
            err.to_string().contains("invalid reward server URL"),
            "{err}"
        );
        let err = RemoteReward::new(RemoteConfig::new("not a url")).unwrap_err();
        assert!(err.to_string().contains("not a url"), "{err}");
        let err = RemoteReward::new(RemoteConfig::new("ftp://host/score")).unwrap_err();
        assert!(err.to_string().contains("scheme `ftp`"), "{err}");
        let mut config = RemoteConfig::new("http://127.0.0.1:1/score");
        config.headers = vec![("Bad Name".into(), "x".into())];
        let err = RemoteReward::new(config.clone()).unwrap_err();
        assert!(err.to_string().contains("Bad Name"), "{err}");
        config.headers = vec![("Authorization".into(), "secret\n".into())];
        let err = RemoteReward::new(config.clone()).unwrap_err().to_string();
        assert!(
            err.contains("Authorization") && !err.contains("secret"),
            "{err}"
        );
        assert!(!format!("{config:?}").contains("secret"));
        config.headers.clear();
        config.timeout = Duration::ZERO;
        let err = RemoteReward::new(config).unwrap_err();
        assert!(err.to_string().contains("`timeout`"), "{err}");
    }
}
