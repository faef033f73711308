//! Replies with an error status, as typed faults: what the status means, what the provider's
//! error body says, and how long a rate-limited client should wait.
//!
//! Providers put their explanation in `{"error": {"message", "type", "code"}}`; some send a bare
//! `{"error": "…"}` or `{"message": "…"}`, and proxies send HTML, so the message is best effort.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use crate::llm::LlmErrorKind;

/// The longest provider message kept in an error.
const MAX_MESSAGE_CHARS: usize = 500;

/// Reads an error reply's headers and body into a fault.
pub(super) async fn from_response(response: reqwest::Response) -> LlmErrorKind {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers(), Utc::now());
    let body = response.text().await.unwrap_or_default();
    classify(status, retry_after, &body)
}

fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> LlmErrorKind {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let explanation = || message(&json, body, status);
    match status {
        401 | 403 => LlmErrorKind::Unauthorized { status },
        429 if is_quota(&json) => LlmErrorKind::QuotaExhausted(explanation()),
        429 => LlmErrorKind::RateLimited { retry_after },
        500.. => LlmErrorKind::Server {
            status,
            message: explanation(),
        },
        _ => LlmErrorKind::BadRequest {
            status,
            message: explanation(),
        },
    }
}

/// Whether a 429 means the account is out of credit, which waiting does not fix.
fn is_quota(json: &Value) -> bool {
    ["/error/code", "/error/type"]
        .iter()
        .any(|pointer| json.pointer(pointer).and_then(Value::as_str) == Some("insufficient_quota"))
}

/// The provider's explanation, or the start of the body, or the status's reason.
fn message(json: &Value, body: &str, status: u16) -> String {
    let from_json = ["/error/message", "/error", "/message", "/detail"]
        .iter()
        .find_map(|pointer| json.pointer(pointer).and_then(Value::as_str));
    let text = match from_json {
        Some(text) => text,
        None if !body.trim().is_empty() => body.trim(),
        None => reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or("no details given"),
    };
    shorten(text)
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// How long the server asks to wait: `retry-after-ms` (OpenAI's, more precise) or
/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    if let Some(millis) = header("retry-after-ms").and_then(|text| seconds(text, 1000.0)) {
        return Some(millis);
    }
    let value = header(RETRY_AFTER.as_str())?;
    seconds(value, 1.0).or_else(|| {
        let date = DateTime::parse_from_rfc2822(value).ok()?;
        Some(
            (date.with_timezone(&Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO),
        )
    })
}

/// A non-negative number of `per_second` units, as a duration.
fn seconds(text: &str, per_second: f64) -> Option<Duration> {
    let amount: f64 = text.parse().ok()?;
    Duration::try_from_secs_f64(amount / per_second).ok()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.parse().unwrap(), HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn retry_after_is_read_in_seconds_milliseconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&Utc);
        let wait = |pairs| retry_after(&headers(pairs), now);
        assert_eq!(wait(&[("retry-after", "2")]), Some(Duration::from_secs(2)));
        assert_eq!(
            wait(&[("retry-after", "2"), ("retry-after-ms", "1500")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            wait(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            wait(&[("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")]),
            Some(Duration::ZERO)
        );
        assert_eq!(wait(&[("retry-after", "soon")]), None);
        assert_eq!(wait(&[("retry-after", "-1")]), None);
        assert_eq!(wait(&[]), None);
    }

    #[test]
    fn an_exhausted_quota_is_told_apart_from_a_rate_limit() {
        let body = r#"{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert_eq!(
            classify(429, None, body),
            LlmErrorKind::QuotaExhausted("You exceeded your current quota.".to_owned())
        );
        let body =
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        let wait = Some(Duration::from_secs(1));
        assert_eq!(
            classify(429, wait, body),
            LlmErrorKind::RateLimited { retry_after: wait }
        );
    }

    #[test]
    fn statuses_map_to_what_the_caller_can_do_about_them() {
        assert_eq!(
            classify(403, None, ""),
            LlmErrorKind::Unauthorized { status: 403 }
        );
        let body = r#"{"error":{"message":"Unknown parameter: 'foo'.","type":"invalid_request_error"}}"#;
        assert_eq!(
            classify(400, None, body),
            LlmErrorKind::BadRequest {
                status: 400,
                message: "Unknown parameter: 'foo'.".to_owned()
            }
        );
        assert_eq!(
            classify(502, None, ""),
            LlmErrorKind::Server {
                status: 502,
                message: "Bad Gateway".to_owned()
            }
        );
        let long = "x".repeat(MAX_MESSAGE_CHARS + 10);
        let LlmErrorKind::Server { message, .. } = classify(500, None, &long) else {
            panic!("a server error");
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
