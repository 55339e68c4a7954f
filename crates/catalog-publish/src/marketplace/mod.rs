//! The marketplaces' adapters and what they share: one HTTP exchange, the answers every
//! platform means alike (429 wait, 408 and 5xx retry, other 4xx dead-letter with the body),
//! and a request made again once with a new access token when the platform says the one it
//! was sent has expired.

pub mod amazon;
pub mod ebay;
pub mod feeds;
pub mod mercadolibre;
pub mod shopify;
pub mod walmart;

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use crate::adapter::{Attempt, Publish, Sent};
use crate::body::{read_body_capped, MAX_ANSWER_BYTES, MAX_LIST_ANSWER_BYTES, MIB};
use crate::channel::Secret;
use crate::oauth::TokenCache;
use crate::publisher::PublishError;
use crate::readback::{read_error, ReadBackError};
use crate::response::{classify_transport, parse_retry_after, truncate, TransportError, Verdict};

/// A platform's answer, its body read up to its cap (a success longer than that is none:
/// [`ExchangeError::TooLong`]).
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    /// A header's value as text, if present and readable.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// The HTTP client of a channel: keeps up to `connections` connections open, gives up on a
/// request (and a connection attempt) after `request_timeout`, names itself when asked to,
/// and follows no redirect: a client re-sends a redirected POST as a GET without its body,
/// and the page it lands on (a gateway's login page) would answer 200 for a write the
/// platform never got. A 3xx is the platform's answer, classified as such.
pub(crate) fn http_client(
    request_timeout: Duration,
    connections: usize,
    user_agent: Option<&str>,
) -> Result<reqwest::Client, PublishError> {
    let mut builder = reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(request_timeout)
        .pool_max_idle_per_host(connections)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(user_agent) = user_agent {
        builder = builder.user_agent(user_agent);
    }
    builder.build().map_err(|error| PublishError::Client(error.to_string()))
}

/// Sends a batch one item version per request (`send_one` gives its attempt and any pause
/// the platform's budget asks for), in order. Once the platform throttles, the rest of the
/// batch waits as long, without spending requests on an empty bucket.
pub(crate) async fn one_at_a_time<'a, F, Fut>(batch: &'a [Publish], send_one: F) -> Sent
where
    F: Fn(&'a Publish) -> Fut,
    Fut: Future<Output = (Attempt, Option<Duration>)> + 'a,
{
    let mut sent = Sent::default();
    let mut throttled = None;
    for publish in batch {
        let attempt = match throttled {
            Some(retry_after) => {
                Attempt { verdict: Verdict::Throttled { retry_after }, status: None, latency: Duration::ZERO }
            }
            None => {
                let (attempt, pause) = send_one(publish).await;
                sent.pause = sent.pause.max(pause);
                attempt
            }
        };
        if let Verdict::Throttled { retry_after } = attempt.verdict {
            throttled = Some(retry_after);
        }
        sent.attempts.push(attempt);
    }
    sent
}

/// A header's value among `headers` (as pure classifiers take them), by name in any case.
pub(crate) fn header<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(candidate, _)| candidate.eq_ignore_ascii_case(name)).map(|(_, value)| *value)
}

/// An answer's headers as name and text pairs (headers that are not text are left out).
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(&str, &str)> {
    headers.iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))).collect()
}

/// A path segment or query value with every byte but RFC 3986's unreserved characters as
/// `%XX`: a seller SKU may hold `/`, spaces, `#` or `&`, which must not change what the
/// platform reads (Amazon's path, Walmart's query).
pub(crate) fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The reason of a success whose body is longer than its cap ([`ExchangeError::TooLong`]).
pub(crate) const ANSWER_TOO_LONG: &str = "answer_too_long";

/// Why a request has no answer to classify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// No answer came, or it was cut off: the connection failed or timed out.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A success whose body is longer than its cap: no answer of a platform's to the request
    /// is that long (a proxy's, or a platform gone wrong), and it was read no further.
    #[error("HTTP {status} with a body longer than the {} MiB such an answer may be", cap / MIB)]
    TooLong { status: u16, cap: usize },
}

impl From<ExchangeError> for Verdict {
    /// A transport failure as [`classify_transport`] says; a success too long to read is
    /// retried, as each adapter retries a success it cannot read (`unexpected_answer`).
    fn from(error: ExchangeError) -> Self {
        match &error {
            ExchangeError::Transport(transport) => classify_transport(transport),
            ExchangeError::TooLong { .. } => Verdict::Retry { reason: ANSWER_TOO_LONG, error: error.to_string() },
        }
    }
}

impl From<ExchangeError> for ReadBackError {
    /// A transport failure is transient; a success too long to read is no answer of the
    /// platform's, as one that does not parse.
    fn from(error: ExchangeError) -> Self {
        match &error {
            ExchangeError::Transport(transport) => ReadBackError::Transient(transport.to_string()),
            ExchangeError::TooLong { .. } => ReadBackError::Malformed(error.to_string()),
        }
    }
}

/// Sends `request`, the answer to which says how a write (or the read of one listing) went,
/// and reads the answer up to [`MAX_ANSWER_BYTES`].
pub(crate) async fn exchange(request: reqwest::RequestBuilder) -> Result<Answer, ExchangeError> {
    exchange_capped(request, MAX_ANSWER_BYTES).await
}

/// Sends `request`, whose answer lists many items (a read of listings, a feed's status or
/// report), and reads the answer up to [`MAX_LIST_ANSWER_BYTES`].
pub(crate) async fn exchange_list(request: reqwest::RequestBuilder) -> Result<Answer, ExchangeError> {
    exchange_capped(request, MAX_LIST_ANSWER_BYTES).await
}

/// Sends `request` and reads the answer up to `cap` bytes. A success longer than that is
/// [`ExchangeError::TooLong`]; any other answer is classified by what was read of it, the
/// status deciding and only its first bytes kept.
async fn exchange_capped(request: reqwest::RequestBuilder, cap: usize) -> Result<Answer, ExchangeError> {
    let response = request.send().await.map_err(|error| TransportError::from_reqwest(&error))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = read_body_capped(response, cap).await.map_err(|error| TransportError::from_reqwest(&error))?;
    if body.over_cap && (200..=299).contains(&status) {
        return Err(ExchangeError::TooLong { status, cap });
    }
    Ok(Answer { status, headers, body: body.into_text() })
}

/// What the statuses every platform means alike say, received at `now`: 429 wait
/// (`retry_after`, or a second), 408 and 5xx retry; `None` for the others, which each
/// platform reads its own way. Pure, so each platform's pure classifier asks it. A 502 or 504
/// is a gateway's answer for a platform that did not answer it (`bad_gateway`,
/// `gateway_timeout`): the request may have been taken and applied later, as one the worker
/// gave up on (`response::unanswered`, decision 0043).
pub(crate) fn common_verdict(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now: DateTime<Utc>,
) -> Option<Verdict> {
    match status {
        429 => Some(Verdict::Throttled { retry_after: parse_retry_after(retry_after, now) }),
        408 => Some(Verdict::Retry { reason: "request_timeout", error: format!("HTTP 408: {}", truncate(body)) }),
        502 | 504 => Some(Verdict::Retry {
            reason: if status == 502 { "bad_gateway" } else { "gateway_timeout" },
            error: format!("HTTP {status}: {}", truncate(body)),
        }),
        500..=599 => {
            Some(Verdict::Retry { reason: "server_error", error: format!("HTTP {status}: {}", truncate(body)) })
        }
        _ => None,
    }
}

/// A refusal that retrying will not change: dead-lettered as `rejected_{status}` with the
/// platform's body.
pub(crate) fn rejected(status: u16, error: impl Into<String>, body: &str) -> Verdict {
    Verdict::DeadLetter {
        reason: format!("rejected_{status}"),
        error: error.into(),
        body: Some(truncate(body).to_owned()),
    }
}

/// Every publish of a request ended as `verdict`.
pub(crate) fn all(batch: &[Publish], verdict: Verdict, status: Option<u16>, started: Instant) -> Sent {
    Sent::each(batch.len(), Attempt { verdict, status, latency: started.elapsed() })
}

/// How long a channel whose credentials were refused is held before a send asks again: the
/// token cache's own hold of a refusal, so the next send finds the endpoint asked anew.
pub(crate) const BLOCKED_FOR: Duration = crate::oauth::REFUSAL_HELD_FOR;

/// Fetches the channel's access token, if it has none that is good, ahead of a send
/// (`ChannelAdapter::obtain_credentials`), failing as [`with_token`] does without one.
pub(crate) async fn obtain_access_token(tokens: &TokenCache) -> Result<(), Verdict> {
    tokens.access_token().await.map(drop).map_err(Verdict::from)
}

/// Makes a request with the channel's access token (`send` builds and sends it), and once
/// more with a new token when `expired` says the platform refused the token it was sent;
/// credentials the token endpoint refused hold the channel (`Verdict::Blocked`), and so does
/// an answer that is no token (a login or maintenance page, no `access_token`: most likely a
/// `token_url` that is not the platform's token endpoint, for an operator to look at); an
/// endpoint that throttled or failed holds it until its `Retry-After`
/// (`Verdict::Unavailable`). No request was sent, and spending the items' attempts on the
/// token endpoint would dead-letter them without one. A transport failure, or a verdict
/// `send` gives instead of sending (a feed whose round's claims passed,
/// `feeds::exchange_while_held`), is the verdict for the request.
pub(crate) async fn with_token<F, Fut, E>(
    tokens: &TokenCache,
    expired: impl Fn(&Answer) -> bool,
    send: F,
) -> Result<Answer, Verdict>
where
    F: Fn(Secret) -> Fut,
    Fut: Future<Output = Result<Answer, E>>,
    E: Into<Verdict>,
{
    let mut retried = false;
    loop {
        let token = tokens.access_token().await.map_err(Verdict::from)?;
        let answer = send(token.clone()).await.map_err(Into::into)?;
        // A new token refused too is the adapter's to classify (`unauthorized`, which holds
        // the channel as `Verdict::Blocked`): the grant or the application's access was
        // revoked, and the platform's answer says how.
        if expired(&answer) && !retried {
            tracing::info!(status = answer.status, "access token expired, fetching a new one");
            tokens.expired(&token).await;
            retried = true;
            continue;
        }
        return Ok(answer);
    }
}

/// Makes a read with the channel's access token, once more with a new token when `expired`
/// says so, like [`with_token`]; a token that cannot be had, or a transport failure, is a
/// transient failure of the read.
pub(crate) async fn read_with_token<F, Fut>(
    tokens: &TokenCache,
    expired: impl Fn(&Answer) -> bool,
    send: F,
) -> Result<Answer, ReadBackError>
where
    F: Fn(Secret) -> Fut,
    Fut: Future<Output = Result<Answer, ExchangeError>>,
{
    with_token(tokens, expired, send).await.map_err(|verdict| match verdict {
        // A success too long to read, as `ReadBackError::from(ExchangeError)` says.
        Verdict::Retry { reason: ANSWER_TOO_LONG, error } => ReadBackError::Malformed(error),
        Verdict::Throttled { retry_after } | Verdict::Unavailable { retry_after, .. } => {
            ReadBackError::Throttled(retry_after)
        }
        // Credentials refused, or a token endpoint answering no token: taken for throttling,
        // a quiet channel's reconciler, the only one asking, waited and reported a rate problem
        // where an operator must act.
        Verdict::Blocked { reason, error, .. } => ReadBackError::Blocked { reason, error },
        Verdict::Retry { error, .. } | Verdict::DeadLetter { error, .. } => ReadBackError::Transient(error),
        Verdict::Answered(_) => ReadBackError::Transient("no answer".into()),
    })
}

/// A read's answer that is not a success, as what every platform means alike by its status.
pub(crate) fn read_refusal(answer: &Answer) -> ReadBackError {
    read_error(answer.status, answer.header("retry-after"), &answer.body)
}
