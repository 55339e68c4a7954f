//! What the storefront contract says each answer means, as a pure function: 202 published,
//! 409 superseded, 429 wait and retry (outside the failure budget), rejected 4xx
//! dead-lettered, 408, 5xx, any other 2xx and transport failures retried with backoff until
//! the attempts run out. `Retry-After` is read per RFC 9110: delta-seconds (a fraction
//! allowed) or an HTTP-date, measured from the `now` passed in.

use std::time::Duration;

use catalog_core::{CatalogItem, Classify, FailureClass, PublishResult, MAX_REACHABLE_VERSION};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

/// How one attempt ended, before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The channel answered: it accepted this version (202), or holds a newer one (409,
    /// not an error).
    Answered(PublishResult),
    /// Throttled: try again after at least this long, and hold the whole channel meanwhile.
    /// Not a failure: it spends none of the channel's failure budget.
    Throttled { retry_after: Duration },
    /// The channel cannot be written to for a while for a cause that is no item's: its token
    /// endpoint throttled or failed, and no request was sent. Held like a 429, this long, and
    /// spending none of the item's failure budget; recorded with its reason.
    Unavailable { reason: &'static str, error: String, retry_after: Duration },
    /// Transient (408, 5xx, connection, timeout): try again after the backoff.
    Retry { reason: &'static str, error: String },
    /// The channel takes no write until an operator acts (its credentials were refused, or a
    /// fresh access token was refused too): hold the whole channel this long, like a 429,
    /// and spend none of the item's failure budget, which a refusal lasting an evening would
    /// otherwise spend, dead-lettering and then quarantining every item it touched.
    Blocked { reason: &'static str, error: String, retry_after: Duration },
    /// Will not succeed by retrying: dead-letter it with the reason, error and body.
    DeadLetter { reason: String, error: String, body: Option<String> },
}

impl Verdict {
    /// The class of a failed attempt, for counting and alerting.
    pub fn failure_class(&self) -> Option<FailureClass> {
        match self {
            Verdict::Answered(_) => None,
            Verdict::Throttled { .. } | Verdict::Unavailable { .. } | Verdict::Retry { .. } => {
                Some(FailureClass::Retryable)
            }
            Verdict::DeadLetter { .. } | Verdict::Blocked { .. } => Some(FailureClass::NeedsOperator),
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

impl TransportError {
    /// What an HTTP client failure was: `timeout`, `connect` or `connection`.
    pub fn from_reqwest(error: &reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            "timeout"
        } else if error.is_connect() {
            "connect"
        } else {
            "connection"
        };
        Self { kind, message: without_query(error) }
    }
}

/// The error's text without its URL's query: a presigned URL's query is its credential (an
/// Amazon feed document's upload and download URLs, valid for minutes), and the query of no
/// platform's request is needed to tell what failed. The text is stored with the publish
/// attempt, shown in the trace and logged.
fn without_query(error: &reqwest::Error) -> String {
    let text = with_causes(error);
    match error.url().and_then(|url| url.query()) {
        Some(query) if !query.is_empty() => text.replace(query, "<query redacted>"),
        _ => text,
    }
}

/// An error's text and its causes', `: ` apart: reqwest's own says "error sending request
/// for url (…)", and only its causes tell a refused connection from a name that does not
/// resolve or a certificate refused.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text = format!("{text}: {next}");
        cause = next.source();
    }
    text
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
/// The shortest wait a throttling answer gets: `Retry-After: 0`, or a date already past (a
/// clock behind the platform's), would send the item again at once, for good, at the
/// channel's whole rate; a throttled send counts no failed attempt, so nothing would end it.
pub(crate) const MIN_RETRY_AFTER: Duration = Duration::from_millis(250);

/// Classifies an HTTP answer to a publish of `item`, received at `now`.
pub fn classify_response(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    item: &CatalogItem,
    now: DateTime<Utc>,
) -> Verdict {
    match status {
        // The status is the contract's signal of acceptance, and the body only repeats it: a
        // 202 whose body is empty or no JSON (a storefront that leaves it out, a proxy that
        // cut it, a body that could not be read) is accepted. Refused, every item of such a
        // storefront would be sent until its attempts ran out and dead-lettered, though each
        // was taken. Only a body saying the opposite, `"accepted": false`, is believed (decision 0067).
        202 if says_not_accepted(body) => Verdict::Retry {
            reason: "not_accepted",
            error: format!("HTTP 202 saying it did not accept: {}", truncate(body)),
        },
        202 => Verdict::Answered(item.accepted()),
        // The contract accepts with 202 alone. Another 2xx is most likely not the storefront's
        // answer (a gateway's or maintenance page's 200, a 204): taken for accepted, the version
        // was recorded published though the storefront may never have got it.
        200..=299 => Verdict::Retry {
            reason: "unexpected_status",
            error: format!("HTTP {status}, where the contract accepts with 202: {}", truncate(body)),
        },
        409 => {
            // The contract says the body names the version the storefront holds; without it
            // the item's own rule applies: it holds this one or newer.
            let current_version =
                serde_json::from_str::<ConflictBody>(body).ok().and_then(|conflict| conflict.current_version);
            // A version no correction can pass (`catalog_core::MAX_REACHABLE_VERSION`): taken
            // for superseded, the item would be recorded as held there at the stores' largest
            // version, every later version of it refused as older. An operator clears it on
            // the storefront, then retries the dead letter.
            if let Some(beyond) = current_version.filter(|version| *version > MAX_REACHABLE_VERSION) {
                return Verdict::DeadLetter {
                    reason: "version_out_of_reach".to_owned(),
                    error: format!(
                        "HTTP 409: the storefront says it holds version {beyond}, beyond any the catalog can issue \
                         ({MAX_REACHABLE_VERSION}): clear the item's version on the storefront, then retry"
                    ),
                    body: Some(truncate(body).to_owned()),
                };
            }
            // A 409 says the storefront holds a newer version. One naming an older version
            // contradicts itself: taken for superseded, the version sent was recorded held
            // while the storefront shows the older one, and every correction reconciliation
            // sent met the same answer. Sent again with backoff, it ends in a dead letter an
            // operator reads if the storefront keeps saying it.
            if let Some(older) = current_version.filter(|version| *version < item.version()) {
                return Verdict::Retry {
                    reason: "conflict_older_version",
                    error: format!(
                        "HTTP 409 naming version {older}, older than version {} sent: {}",
                        item.version(),
                        truncate(body)
                    ),
                };
            }
            Verdict::Answered(item.superseded(current_version))
        }
        429 => Verdict::Throttled { retry_after: parse_retry_after(retry_after, now) },
        // The server gave up waiting for the request: nothing was decided, send it again.
        408 => Verdict::Retry { reason: "request_timeout", error: format!("HTTP 408: {}", truncate(body)) },
        500..=599 => Verdict::Retry { reason: "server_error", error: format!("HTTP {status}: {}", truncate(body)) },
        _ => Verdict::DeadLetter {
            reason: format!("rejected_{status}"),
            error: format!("HTTP {status}"),
            body: Some(truncate(body).to_owned()),
        },
    }
}

/// Whether a body is JSON saying `"accepted": false`.
fn says_not_accepted(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .is_ok_and(|answer| answer.get("accepted") == Some(&serde_json::Value::Bool(false)))
}

/// How long a `Retry-After` header asks to wait: delta-seconds, with a fraction allowed
/// (`"7"`, `"1.5"`), or an HTTP-date in any of the three forms RFC 9110 has a recipient
/// accept: IMF-fixdate (`"Sun, 06 Nov 1994 08:49:37 GMT"`), RFC 850 (`"Sunday, 06-Nov-94
/// 08:49:37 GMT"`) and asctime (`"Sun Nov  6 08:49:37 1994"`). Anything else (a weekday that
/// is not the date's among it), or no header, waits [`DEFAULT_RETRY_AFTER`]; no answer waits
/// less than [`MIN_RETRY_AFTER`] (`0`, a date already past) or more than [`MAX_RETRY_AFTER`].
pub(crate) fn parse_retry_after(value: Option<&str>, now: DateTime<Utc>) -> Duration {
    let Some(value) = value.map(str::trim) else {
        return DEFAULT_RETRY_AFTER;
    };
    let wait = delta_seconds(value).or_else(|| {
        let date = http_date(value)?;
        Some((date - now).to_std().unwrap_or(Duration::ZERO))
    });
    wait.unwrap_or(DEFAULT_RETRY_AFTER).clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER)
}

/// An HTTP-date in one of RFC 9110's three forms. RFC 850's two-digit year is read as POSIX
/// reads it (`00`–`68` are 2000–2068, `69`–`99` 1969–1999): a date this century, or one long
/// past, which waits no longer than a past date does.
fn http_date(value: &str) -> Option<DateTime<Utc>> {
    const FORMS: [&str; 3] = ["%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"];
    FORMS.iter().find_map(|form| NaiveDateTime::parse_from_str(value, form).ok()).map(|date| date.and_utc())
}

/// `digits[.digits]`, nothing else: no sign, exponent, `inf` or `NaN`.
fn delta_seconds(value: &str) -> Option<Duration> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, "0"));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    // Anything past the cap is the cap; parsing it as a float keeps huge numbers finite.
    let seconds: f64 = value.parse().ok()?;
    Some(Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// Classifies a failure without a response.
pub fn classify_transport(error: &TransportError) -> Verdict {
    Verdict::Retry { reason: error.kind, error: error.message.clone() }
}

impl From<TransportError> for Verdict {
    /// What [`classify_transport`] says of the failure.
    fn from(error: TransportError) -> Self {
        classify_transport(&error)
    }
}

/// Whether a failure's reason says the request may have reached the platform without an
/// answer coming back: the worker's timeout, the connection lost after it was open, or a
/// gateway in front of a marketplace that answered for it (502, 504: `common_verdict`). A
/// platform may still apply such a request (decision 0043).
pub(crate) fn unanswered(reason: &str) -> bool {
    matches!(reason, "timeout" | "connection" | "bad_gateway" | "gateway_timeout")
}

/// Text as every store can keep it: PostgreSQL's `text` refuses the NUL character, which a
/// platform's answer may hold (a raw byte in a body, `\u0000` in a JSON string); it becomes
/// U+FFFD, the rest is kept as it is. A record PostgreSQL refused would stop the channel's
/// lane, retrying it for good.
pub(crate) fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// Bodies kept with attempts and dead letters are cut to this many bytes.
pub(crate) const MAX_BODY_BYTES: usize = 4_096;

pub(crate) fn truncate(body: &str) -> &str {
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
    #[tokio::test]
    async fn a_transport_error_tells_the_url_without_its_query() {
        // Nothing listens on port 1 of the loopback address: the connection is refused.
        let url = "http://127.0.0.1:1/feeds/doc-7?X-Amz-Credential=AKIA1234&X-Amz-Signature=5f1c";
        let error = reqwest::Client::new().put(url).send().await.expect_err("nothing listens there");
        let transport = super::TransportError::from_reqwest(&error);
        assert_eq!(transport.kind, "connect");
        assert!(transport.message.contains("127.0.0.1:1/feeds/doc-7?<query redacted>"), "{transport}");
        assert!(!transport.message.contains("AKIA1234") && !transport.message.contains("5f1c"), "{transport}");
        assert!(transport.message.to_lowercase().contains("connection refused"), "the cause is told: {transport}");
    }

    use super::*;

    /// The answers as the snapshot reads them; an answer always names the item sent.
    fn render(verdict: Verdict) -> String {
        match verdict {
            Verdict::Answered(result) => {
                assert_eq!((result.item_id(), result.version()), (item_at_7().id(), 7));
                match result.current_version() {
                    None => "Published".to_owned(),
                    Some(current_version) => format!("Superseded {{ current_version: {current_version} }}"),
                }
            }
            other => format!("{other:?}"),
        }
    }

    fn item_at_7() -> CatalogItem {
        let key = catalog_core::ItemKey {
            tenant: catalog_core::TenantId::parse("canary").expect("valid"),
            sku: catalog_core::Sku::parse("A-1").expect("valid"),
        };
        CatalogItem::new(key, 3, 7).expect("valid item")
    }

    #[test]
    fn every_answer_of_the_contract_has_its_verdict() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let item = item_at_7();
        let cases = [
            (202, None, r#"{"accepted": true}"#),
            (202, None, ""),
            (202, None, "not json"),
            (202, None, r#"{"accepted": false}"#),
            (200, None, r#"{"accepted": true}"#),
            (200, None, "<html>down for maintenance</html>"),
            (204, None, ""),
            (409, None, r#"{"accepted": false, "current_version": 9}"#),
            (409, None, "not json"),
            (409, None, r#"{"accepted": false, "current_version": 3}"#),
            (409, None, r#"{"accepted": false, "current_version": 4611686018427387905}"#),
            (429, None, ""),
            (429, Some("7"), ""),
            (429, Some(" 7 "), ""),
            (429, Some("1.5"), ""),
            (429, Some("0.25"), ""),
            (429, Some("0"), ""),
            (429, Some("soon"), ""),
            (429, Some("-1"), ""),
            (429, Some("1e3"), ""),
            (429, Some(".5"), ""),
            (429, Some("5."), ""),
            (429, Some("inf"), ""),
            (429, Some("999999"), ""),
            (429, Some("99999999999999999999999.5"), ""),
            (429, Some("Mon, 01 Jun 2026 12:00:30 GMT"), ""),
            (429, Some("Mon, 01 Jun 2026 11:59:00 GMT"), ""),
            (429, Some("Fri, 01 Jan 2027 00:00:00 GMT"), ""),
            (429, Some("Monday, 01-Jun-26 12:00:30 GMT"), ""),
            (429, Some("Mon Jun  1 12:00:30 2026"), ""),
            (429, Some("Mon Jun 1 12:00:45 2026"), ""),
            (429, Some("Sunday, 01-Jun-26 12:00:30 GMT"), ""),
            (429, Some("Mon, 01 Jun 2026 12:00:30 +0000"), ""),
            (429, Some("Tue, 01 Jun 2026 12:00:30 GMT"), ""),
            (400, None, "bad"),
            (401, None, "who"),
            (403, None, "no"),
            (404, None, "gone"),
            (408, None, "too slow"),
            (422, None, r#"{"error":"sku unknown"}"#),
            (500, None, "oops"),
            (503, None, "busy"),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, retry_after, body)| {
                let header = retry_after.map_or_else(String::new, |value| format!(" Retry-After: {value:?}"));
                format!("{status}{header} -> {}", render(classify_response(*status, *retry_after, body, &item, now)))
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        202 -> Published
        202 -> Published
        202 -> Published
        202 -> Retry { reason: "not_accepted", error: "HTTP 202 saying it did not accept: {\"accepted\": false}" }
        200 -> Retry { reason: "unexpected_status", error: "HTTP 200, where the contract accepts with 202: {\"accepted\": true}" }
        200 -> Retry { reason: "unexpected_status", error: "HTTP 200, where the contract accepts with 202: <html>down for maintenance</html>" }
        204 -> Retry { reason: "unexpected_status", error: "HTTP 204, where the contract accepts with 202: " }
        409 -> Superseded { current_version: 9 }
        409 -> Superseded { current_version: 7 }
        409 -> Retry { reason: "conflict_older_version", error: "HTTP 409 naming version 3, older than version 7 sent: {\"accepted\": false, \"current_version\": 3}" }
        409 -> DeadLetter { reason: "version_out_of_reach", error: "HTTP 409: the storefront says it holds version 4611686018427387905, beyond any the catalog can issue (4611686018427387904): clear the item's version on the storefront, then retry", body: Some("{\"accepted\": false, \"current_version\": 4611686018427387905}") }
        429 -> Throttled { retry_after: 1s }
        429 Retry-After: "7" -> Throttled { retry_after: 7s }
        429 Retry-After: " 7 " -> Throttled { retry_after: 7s }
        429 Retry-After: "1.5" -> Throttled { retry_after: 1.5s }
        429 Retry-After: "0.25" -> Throttled { retry_after: 250ms }
        429 Retry-After: "0" -> Throttled { retry_after: 250ms }
        429 Retry-After: "soon" -> Throttled { retry_after: 1s }
        429 Retry-After: "-1" -> Throttled { retry_after: 1s }
        429 Retry-After: "1e3" -> Throttled { retry_after: 1s }
        429 Retry-After: ".5" -> Throttled { retry_after: 1s }
        429 Retry-After: "5." -> Throttled { retry_after: 1s }
        429 Retry-After: "inf" -> Throttled { retry_after: 1s }
        429 Retry-After: "999999" -> Throttled { retry_after: 3600s }
        429 Retry-After: "99999999999999999999999.5" -> Throttled { retry_after: 3600s }
        429 Retry-After: "Mon, 01 Jun 2026 12:00:30 GMT" -> Throttled { retry_after: 30s }
        429 Retry-After: "Mon, 01 Jun 2026 11:59:00 GMT" -> Throttled { retry_after: 250ms }
        429 Retry-After: "Fri, 01 Jan 2027 00:00:00 GMT" -> Throttled { retry_after: 3600s }
        429 Retry-After: "Monday, 01-Jun-26 12:00:30 GMT" -> Throttled { retry_after: 30s }
        429 Retry-After: "Mon Jun  1 12:00:30 2026" -> Throttled { retry_after: 30s }
        429 Retry-After: "Mon Jun 1 12:00:45 2026" -> Throttled { retry_after: 45s }
        429 Retry-After: "Sunday, 01-Jun-26 12:00:30 GMT" -> Throttled { retry_after: 1s }
        429 Retry-After: "Mon, 01 Jun 2026 12:00:30 +0000" -> Throttled { retry_after: 1s }
        429 Retry-After: "Tue, 01 Jun 2026 12:00:30 GMT" -> Throttled { retry_after: 1s }
        400 -> DeadLetter { reason: "rejected_400", error: "HTTP 400", body: Some("bad") }
        401 -> DeadLetter { reason: "rejected_401", error: "HTTP 401", body: Some("who") }
        403 -> DeadLetter { reason: "rejected_403", error: "HTTP 403", body: Some("no") }
        404 -> DeadLetter { reason: "rejected_404", error: "HTTP 404", body: Some("gone") }
        408 -> Retry { reason: "request_timeout", error: "HTTP 408: too slow" }
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
