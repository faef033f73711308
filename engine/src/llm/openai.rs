//! The client for OpenAI's Chat Completions protocol, which every configured provider speaks.
//!
//! An [`OpenAiClient`] owns one [`Endpoint`] and makes each call in attempts. An attempt sends
//! the request (`body`), then reads the reply whole (`reply`) or as server-sent events
//! (`stream`), all under the endpoint's timeout; a refused or failed HTTP exchange becomes a
//! typed fault (`failure`). Retryable faults are tried again, up to the endpoint's attempts in
//! all, after the pause the server asked for or a jittered exponential backoff.
//! The API key goes into a request header and nowhere else: not into errors, not into logs.

mod body;
mod failure;
mod reply;
mod stream;

use std::error::Error;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::Value;

use super::config::{Auth, Endpoint};
use super::{LlmClient, LlmError, LlmErrorKind, LlmRequest, LlmResponse, TokenSink, Usage};

/// The longest pause a server's `Retry-After` can impose between two attempts.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The backoff ceiling after the first failed attempt; it doubles with each further one.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// The highest backoff ceiling.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// A model behind an OpenAI-compatible Chat Completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    endpoint: Endpoint,
    http: reqwest::Client,
}

/// What one successful attempt brought back.
#[derive(Debug, Clone, PartialEq)]
struct Completion {
    text: String,
    usage: Usage,
}

impl OpenAiClient {
    pub fn new(endpoint: Endpoint) -> OpenAiClient {
        // `Client::new()` would read proxy settings from the environment; the engine reads none.
        let http = reqwest::Client::builder().no_proxy().build().unwrap_or_default();
        OpenAiClient { endpoint, http }
    }

    /// Makes attempts until one succeeds, a fault is not worth retrying, or none are left.
    async fn call(&self, request: &LlmRequest, tokens: Option<&TokenSink>) -> Result<LlmResponse, LlmError> {
        let started = Instant::now();
        let body = body::build(&self.endpoint, request);
        let mut attempt = 1;
        loop {
            match self.attempt(&body, tokens).await {
                Ok(completion) => return Ok(self.response(completion, started, attempt)),
                Err(kind) if kind.is_retryable() && attempt < self.endpoint.attempts => {
                    tokio::time::sleep(retry_delay(&kind, attempt, rand::random())).await;
                    attempt += 1;
                }
                Err(kind) => return Err(LlmError::new(&self.endpoint.provider, &self.endpoint.model, kind)),
            }
        }
    }

    /// One request and its whole reply, under the endpoint's timeout.
    async fn attempt(&self, body: &Value, tokens: Option<&TokenSink>) -> Result<Completion, LlmErrorKind> {
        let timeout = self.endpoint.timeout;
        tokio::time::timeout(timeout, self.exchange(body, tokens))
            .await
            .unwrap_or(Err(LlmErrorKind::Timeout(timeout)))
    }

    async fn exchange(&self, body: &Value, tokens: Option<&TokenSink>) -> Result<Completion, LlmErrorKind> {
        let response = self.send(body).await?;
        if !response.status().is_success() {
            return Err(failure::from_response(response).await);
        }
        match self.endpoint.stream {
            true => stream::read(response, tokens).await,
            false => reply::read(response).await,
        }
    }

    async fn send(&self, body: &Value) -> Result<reqwest::Response, LlmErrorKind> {
        let mut builder = self
            .http
            .post(&self.endpoint.url)
            .query(&self.endpoint.query)
            .json(body);
        if let Some((name, value)) = auth_header(&self.endpoint.auth)? {
            builder = builder.header(name, value);
        }
        builder.send().await.map_err(|err| match err.is_builder() {
            true => LlmErrorKind::Config(format!("cannot build the request: {}", describe(&err))),
            false => LlmErrorKind::Transport(describe(&err)),
        })
    }

    fn response(&self, completion: Completion, started: Instant, attempts: u32) -> LlmResponse {
        LlmResponse {
            text: completion.text,
            usage: completion.usage,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            provider: self.endpoint.provider.clone(),
            model: self.endpoint.model.clone(),
            attempts,
        }
    }
}

impl LlmClient for OpenAiClient {
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        tokens: Option<&'a TokenSink>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(self.call(request, tokens))
    }
}

/// The header that carries the key, marked sensitive so that it never shows in debug output.
fn auth_header(auth: &Auth) -> Result<Option<(HeaderName, HeaderValue)>, LlmErrorKind> {
    let (name, value) = match auth {
        Auth::None => return Ok(None),
        Auth::Bearer(key) => (AUTHORIZATION, format!("Bearer {key}")),
        Auth::ApiKeyHeader(key) => (HeaderName::from_static("api-key"), key.clone()),
    };
    let mut value = HeaderValue::from_str(&value).map_err(|_| {
        LlmErrorKind::Config("the API key is not a valid HTTP header value; check how it was set".to_owned())
    })?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}

/// An error and its causes, one after the other: reqwest's own message alone rarely says what failed.
fn describe(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The pause before the attempt after `attempt` (counted from 1), which failed with `kind`.
/// `unit`, in [0, 1), picks the point in the jitter range.
fn retry_delay(kind: &LlmErrorKind, attempt: u32, unit: f64) -> Duration {
    match kind {
        LlmErrorKind::RateLimited {
            retry_after: Some(after),
        } => (*after).min(MAX_RETRY_AFTER),
        _ => backoff_ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0)),
    }
}

/// Full jitter's upper bound after `attempt` failures: 250 ms, doubling, at most 8 s.
fn backoff_ceiling(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_ceiling_doubles_from_a_quarter_second_up_to_eight_seconds() {
        let ceilings: Vec<u128> = (1..=8).map(|n| backoff_ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(backoff_ceiling(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn jitter_picks_a_point_between_zero_and_the_ceiling() {
        let server = LlmErrorKind::Server {
            status: 503,
            message: "busy".to_owned(),
        };
        assert_eq!(retry_delay(&server, 3, 0.0), Duration::ZERO);
        assert_eq!(retry_delay(&server, 3, 0.5), Duration::from_millis(500));
        assert!(retry_delay(&server, 3, 0.999_999) < Duration::from_secs(1));
        let limited = LlmErrorKind::RateLimited { retry_after: None };
        assert_eq!(retry_delay(&limited, 1, 0.5), Duration::from_millis(125));
    }

    #[test]
    fn a_rate_limit_waits_as_long_as_the_server_asked_up_to_a_minute() {
        let after = |secs| LlmErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(retry_delay(&after(2), 1, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay(&after(3600), 1, 0.0), MAX_RETRY_AFTER);
    }

    #[test]
    fn the_key_header_is_marked_sensitive() {
        let (name, value) = auth_header(&Auth::ApiKeyHeader("k-1".to_owned()))
            .unwrap()
            .unwrap();
        assert_eq!((name.as_str(), value.is_sensitive()), ("api-key", true));
        let (name, value) = auth_header(&Auth::Bearer("sk-1".to_owned())).unwrap().unwrap();
        assert_eq!((name, value.to_str().unwrap()), (AUTHORIZATION, "Bearer sk-1"));
        assert_eq!(auth_header(&Auth::None), Ok(None));
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_reported_without_the_key() {
        let err = auth_header(&Auth::Bearer("sk-\nsecret".to_owned())).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(!err.is_retryable());
    }
}
