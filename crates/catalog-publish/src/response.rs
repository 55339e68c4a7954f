//! What the storefront contract says each answer means, as a pure function: 202 published,
//! 409 superseded, 429 wait and retry, rejected 4xx dead-lettered, 5xx and transport failures
//! retried with backoff until the attempts run out.

use std::time::Duration;

use catalog_core::{Classify, FailureClass};
use serde::Deserialize;

/// How one attempt ended, before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The channel now holds this version.
    Published,
    /// The channel already holds a newer version: not an error.
    Superseded { current_version: u64 },
    /// Throttled: try again after at least this long, and hold the whole channel meanwhile.
    Throttled { retry_after: Duration },
    /// Transient (5xx, connection, timeout): try again after the backoff.
    Retry { reason: &'static str, error: String },
    /// Will not succeed by retrying: dead-letter it with the reason, error and body.
    DeadLetter { reason: String, error: String, body: Option<String> },
}

impl Verdict {
    /// The class of a failed attempt, for counting and alerting.
    pub fn failure_class(&self) -> Option<FailureClass> {
        match self {
            Verdict::Published | Verdict::Superseded { .. } => None,
            Verdict::Throttled { .. } | Verdict::Retry { .. } => Some(FailureClass::Retryable),
            Verdict::DeadLetter { .. } => Some(FailureClass::NeedsOperator),
        }
    }
}

/// When an attempt failed before any response: connect error, timeout, dropped connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TransportError {
    /// `connect`, `timeout` or `connection` (dropped mid-request).
    pub kind: &'static str,
    pub message: String,
}

impl Classify for TransportError {
    fn failure_class(&self) -> FailureClass {
        FailureClass::Retryable
    }
}

#[derive(Deserialize)]
struct ConflictBody {
    current_version: Option<u64>,
}

/// The longest `Retry-After` honoured: a broken header must not park a channel for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);
/// What a 429 without a usable `Retry-After` waits.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Classifies an HTTP answer to a publish of `version`.
pub fn classify_response(status: u16, retry_after: Option<&str>, body: &str, version: u64) -> Verdict {
    match status {
        200..=299 => Verdict::Published,
        409 => {
            // The contract says the body names the version the storefront holds; without it we
            // know at least that it holds this one or newer.
            let current_version = serde_json::from_str::<ConflictBody>(body)
                .ok()
                .and_then(|conflict| conflict.current_version)
                .unwrap_or(version)
                .max(version);
            Verdict::Superseded { current_version }
        }
        429 => {
            let retry_after = retry_after
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_RETRY_AFTER)
                .min(MAX_RETRY_AFTER);
            Verdict::Throttled { retry_after }
        }
        500..=599 => Verdict::Retry { reason: "server_error", error: format!("HTTP {status}: {}", truncate(body)) },
        _ => Verdict::DeadLetter {
            reason: format!("rejected_{status}"),
            error: format!("HTTP {status}"),
            body: Some(truncate(body).to_owned()),
        },
    }
}

/// Classifies a failure without a response.
pub fn classify_transport(error: &TransportError) -> Verdict {
    Verdict::Retry { reason: error.kind, error: error.message.clone() }
}

/// Bodies kept with attempts and dead letters are cut to this many bytes.
const MAX_BODY_BYTES: usize = 4_096;

fn truncate(body: &str) -> &str {
    if body.len() <= MAX_BODY_BYTES {
        return body;
    }
    let mut end = MAX_BODY_BYTES;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_of_the_contract_has_its_verdict() {
        let cases = [
            (202, None, r#"{"accepted": true}"#),
            (409, None, r#"{"accepted": false, "current_version": 9}"#),
            (409, None, "not json"),
            (429, Some("7"), ""),
            (429, Some("soon"), ""),
            (429, Some("999999"), ""),
            (400, None, "bad"),
            (401, None, "who"),
            (403, None, "no"),
            (404, None, "gone"),
            (422, None, r#"{"error":"sku unknown"}"#),
            (500, None, "oops"),
            (503, None, "busy"),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, retry_after, body)| {
                format!("{status} -> {:?}", classify_response(*status, *retry_after, body, 7))
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        202 -> Published
        409 -> Superseded { current_version: 9 }
        409 -> Superseded { current_version: 7 }
        429 -> Throttled { retry_after: 7s }
        429 -> Throttled { retry_after: 1s }
        429 -> Throttled { retry_after: 3600s }
        400 -> DeadLetter { reason: "rejected_400", error: "HTTP 400", body: Some("bad") }
        401 -> DeadLetter { reason: "rejected_401", error: "HTTP 401", body: Some("who") }
        403 -> DeadLetter { reason: "rejected_403", error: "HTTP 403", body: Some("no") }
        404 -> DeadLetter { reason: "rejected_404", error: "HTTP 404", body: Some("gone") }
        422 -> DeadLetter { reason: "rejected_422", error: "HTTP 422", body: Some("{\"error\":\"sku unknown\"}") }
        500 -> Retry { reason: "server_error", error: "HTTP 500: oops" }
        503 -> Retry { reason: "server_error", error: "HTTP 503: busy" }
        "#);
    }

    #[test]
    fn transport_failures_are_retried() {
        let verdict = classify_transport(&TransportError { kind: "timeout", message: "after 2s".into() });
        assert_eq!(verdict, Verdict::Retry { reason: "timeout", error: "after 2s".into() });
        assert_eq!(verdict.failure_class(), Some(FailureClass::Retryable));
    }
}
