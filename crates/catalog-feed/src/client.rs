//! The HTTP client of one feed: requests a page (of a window or of the snapshot), classifies
//! the answer by the contract's error table (`verdict::classify_response`, pure), and
//! retries what the table says to retry: throttling after its `Retry-After`, 5xx, connection
//! errors, timeouts and garbage pages with exponential backoff and jitter, up to a bound.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use catalog_app::Metrics;
use chrono::{DateTime, SecondsFormat, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::body::{read_body_capped, MAX_PAGE_BYTES, MIB};
use crate::record::{parse_page, InvalidPage, Page};
pub use crate::verdict::{classify_response, Verdict, DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER, MAX_WAIT_IN_RUN};

/// How much of an answer's body a failure keeps for the operator.
const BODY_PREFIX_BYTES: usize = 4 * 1024;

/// The reason of an answer that is no page (a 200 whose body is not the contract's shape).
const INVALID_PAGE: &str = "invalid_page";

/// A bearer token, read from the environment variable a feed names; never shown.
#[derive(Clone)]
pub struct FeedToken(String);

impl FeedToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token a variable holds, without the blanks around it (a secret made from a file
    /// keeps the file's last line break); `None` when nothing is left.
    pub fn from_variable(value: &str) -> Option<Self> {
        let token = value.trim();
        (!token.is_empty()).then(|| Self(token.to_owned()))
    }

    /// Whether an `Authorization: Bearer` header can carry the token.
    pub fn is_valid_header(&self) -> bool {
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.0)).is_ok()
    }
}

impl std::fmt::Debug for FeedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedToken(***)")
    }
}

/// How a feed's requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Attempts at one page that failed (5xx, connection, timeout, garbage), the first included.
    pub max_attempts: u32,
    /// Throttled answers one page may get before the run gives up on it (and resumes later).
    pub max_throttled: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long one request may take, answer included.
    pub request_timeout: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            max_throttled: 100,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a page could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// 410: the window has to start again.
    #[error("the cursor expired (410)")]
    CursorExpired,
    /// The feed refused the request (400, 401, 403, 404, …): an operator must look.
    #[error("the feed refused the request with {status}")]
    Refused { status: u16, body: String },
    /// Retries ran out on 5xx, connection errors, timeouts or garbage: the run resumes later.
    #[error("the feed is unavailable after {attempts} attempts: {error}")]
    Unavailable { reason: &'static str, attempts: u32, error: String, body: Option<String> },
    /// The feed's token variable is not set: an operator must set it.
    #[error("the token variable {0} is not set (or holds only blanks)")]
    NoToken(String),
    /// The feed's token variable holds what no `Authorization` header can carry (a line
    /// break or another control character inside it): an operator must mend it.
    #[error("the token variable {0} holds a character no Authorization header can carry (a line break inside it?)")]
    InvalidToken(String),
    /// A 429 asked for a longer wait than a run waits out ([`MAX_WAIT_IN_RUN`]): the run ends,
    /// and the feed is held that long (at most [`MAX_RETRY_AFTER`]).
    #[error("the feed asked to wait {} s before the next request (429 Retry-After): the feed is held that long", wait.as_secs())]
    HeldOff { wait: Duration },
    /// The feed named a cursor it had already named in this pass: following it would page
    /// for ever. The feed's paging is broken; its supplier must fix it.
    #[error("the feed returned a cursor it had already returned in this pass, after {pages} pages: following it would never end")]
    CursorLoop { pages: u64 },
    /// The feed gave [`MAX_EMPTY_PAGES_IN_A_ROW`](crate::paging::MAX_EMPTY_PAGES_IN_A_ROW) pages in a row with no record, each naming a
    /// new next cursor: following them may never end. Its supplier must fix its paging.
    #[error(
        "the feed gave {pages} pages in a row with no record, each naming a next cursor: following them may never end"
    )]
    EmptyPages { pages: u32 },
    /// No request can be made at the feed's base URL (a port past 65535, a space in the host,
    /// a redirect to no URL: `invalid_url`), or its redirects loop (`too_many_redirects`): no
    /// retry mends either. Sent as connection errors, they were retried for ever as the
    /// supplier's; the feed's settings are the operator's.
    #[error("the feed cannot be asked at its base URL: {error}")]
    UnusableUrl { reason: &'static str, error: String },
    /// Shutting down.
    #[error("abandoned at shutdown")]
    Abandoned,
}

impl PullError {
    /// The dead letter's reason (and metric label).
    pub fn reason(&self) -> String {
        match self {
            PullError::CursorExpired => "cursor_expired".to_owned(),
            PullError::Refused { status, .. } => format!("http_{status}"),
            PullError::Unavailable { reason, .. } | PullError::UnusableUrl { reason, .. } => (*reason).to_owned(),
            PullError::HeldOff { .. } => "throttled".to_owned(),
            PullError::NoToken(_) => "token_missing".to_owned(),
            PullError::InvalidToken(_) => "token_invalid".to_owned(),
            PullError::CursorLoop { .. } => "cursor_loop".to_owned(),
            PullError::EmptyPages { .. } => "empty_pages".to_owned(),
            PullError::Abandoned => "abandoned".to_owned(),
        }
    }

    /// The feed's answer, when one came with the failure.
    pub fn body(&self) -> Option<String> {
        match self {
            PullError::Refused { body, .. } => Some(body.clone()),
            PullError::Unavailable { body, .. } => body.clone(),
            _ => None,
        }
    }
}

/// Which page to ask for.
#[derive(Debug, Clone, Copy)]
pub enum PageRequest<'a> {
    Window { since: DateTime<Utc>, until: DateTime<Utc>, cursor: Option<&'a str> },
    Snapshot { cursor: Option<&'a str> },
}

/// The client of one feed. Cloning shares its connection pool and rate limiter.
#[derive(Debug, Clone)]
pub struct FeedClient {
    http: reqwest::Client,
    base_url: String,
    token: Option<FeedToken>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    retry: RetrySettings,
    page_size: u32,
    /// The feed's metric label: `tenant/supplier`.
    feed: String,
    metrics: Metrics,
}

/// One failed attempt, for the retry loop.
enum Attempt {
    Page(Page),
    Throttled(Duration),
    Failed { reason: &'static str, error: String, body: Option<String> },
}

impl FeedClient {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        token: Option<FeedToken>,
        requests_per_second: Option<u32>,
        retry: RetrySettings,
        page_size: u32,
        feed: String,
        metrics: Metrics,
    ) -> Self {
        let limiter = requests_per_second.and_then(NonZeroU32::new).map(|rate| Arc::new(page_limiter(rate)));
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            limiter,
            retry,
            page_size: page_size.clamp(1, 1_000),
            feed,
            metrics,
        }
    }

    fn url(&self, request: PageRequest<'_>) -> (String, Vec<(&'static str, String)>) {
        let mut query = vec![("limit", self.page_size.to_string())];
        let (path, cursor) = match request {
            PageRequest::Window { since, until, cursor } => {
                query.push(("updated_since", since.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
                query.push(("updated_until", until.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
                ("/v1/inventory", cursor)
            }
            PageRequest::Snapshot { cursor } => ("/v1/inventory/snapshot", cursor),
        };
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        (format!("{}{path}", self.base_url), query)
    }

    /// Gets one page, retrying as the contract says; a 410 and a refusal come back at once.
    pub async fn page(&self, request: PageRequest<'_>, shutdown: &CancellationToken) -> Result<Page, PullError> {
        let snapshot = matches!(request, PageRequest::Snapshot { .. });
        let mut failures = 0_u32;
        let mut throttled = 0_u32;
        // The body of the last answer that was not a page: kept for the dead letter when the
        // attempts run out on one without an answer (a timeout after 5xx answers).
        let mut last_body: Option<String> = None;
        // The last attempt that was answered with no page (its error and body): the page is
        // classed by it whatever came after, as the most specific cause seen.
        let mut last_invalid_page: Option<(String, Option<String>)> = None;
        let mut backoff = self.retry.initial_backoff;
        loop {
            if let Some(limiter) = &self.limiter {
                tokio::select! {
                    _ = limiter.until_ready() => {}
                    _ = shutdown.cancelled() => return Err(PullError::Abandoned),
                }
            }
            let wait = match self.attempt(request, snapshot).await? {
                Attempt::Page(page) => {
                    self.metrics.feed_pages.with_label_values(&[&self.feed]).inc();
                    return Ok(page);
                }
                Attempt::Throttled(wait) if wait > MAX_WAIT_IN_RUN => {
                    return Err(PullError::HeldOff { wait: wait.min(MAX_RETRY_AFTER) });
                }
                Attempt::Throttled(wait) => {
                    self.metrics.feed_retries.with_label_values(&["throttled"]).inc();
                    throttled += 1;
                    if throttled > self.retry.max_throttled {
                        // A page that was garbage at an attempt is `invalid_page` whatever its
                        // last attempts met, as when its failures run out (decision 0015).
                        if let Some((invalid, body)) = last_invalid_page.take() {
                            return Err(PullError::Unavailable {
                                reason: INVALID_PAGE,
                                attempts: throttled + failures,
                                error: format!("{invalid} (the last attempts: throttled too often)"),
                                body,
                            });
                        }
                        return Err(PullError::Unavailable {
                            reason: "throttled",
                            attempts: throttled,
                            error: "throttled too often".to_owned(),
                            body: None,
                        });
                    }
                    tracing::debug!(feed = %self.feed, wait_ms = wait.as_millis() as u64, "throttled by the feed");
                    wait
                }
                Attempt::Failed { reason, error, body } => {
                    failures += 1;
                    if body.is_some() {
                        last_body.clone_from(&body);
                    }
                    if reason == INVALID_PAGE {
                        last_invalid_page = Some((error.clone(), body.clone()));
                    }
                    if failures >= self.retry.max_attempts {
                        // Classed by its last attempt alone, a page that was garbage and then
                        // timed out was the supplier's service (retryable), the reverse its
                        // feed (needs the supplier): the same broken page changed class from
                        // run to run, and alerts on the supplier's missed it.
                        return Err(match last_invalid_page {
                            Some((invalid, body)) if reason != INVALID_PAGE => PullError::Unavailable {
                                reason: INVALID_PAGE,
                                attempts: failures,
                                error: format!("{invalid} (the last attempt: {error})"),
                                body,
                            },
                            _ => PullError::Unavailable { reason, attempts: failures, error, body: last_body },
                        });
                    }
                    self.metrics.feed_retries.with_label_values(&[reason]).inc();
                    tracing::warn!(feed = %self.feed, reason, %error, class = catalog_core::FailureClass::Retryable.as_str(), body = body.as_deref().unwrap_or(""), attempt = failures, "feed page failed, retrying");
                    // Full jitter over the upper half: feeds that failed together do not
                    // come back together.
                    let wait = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return Err(PullError::Abandoned),
            }
        }
    }

    async fn attempt(&self, request: PageRequest<'_>, snapshot: bool) -> Result<Attempt, PullError> {
        let (url, query) = self.url(request);
        let mut builder = self.http.get(&url).query(&query).timeout(self.retry.request_timeout);
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(&token.0);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(error) if error.is_builder() => {
                return Err(PullError::UnusableUrl { reason: "invalid_url", error: with_causes(&error) });
            }
            Err(error) if error.is_redirect() => {
                return Err(PullError::UnusableUrl { reason: "too_many_redirects", error: with_causes(&error) });
            }
            Err(error) => {
                let reason = if error.is_timeout() { "timeout" } else { "connection" };
                return Ok(Attempt::Failed { reason, error: with_causes(&error), body: None });
            }
        };
        let status = response.status().as_u16();
        let retry_after = response.headers().get(reqwest::header::RETRY_AFTER).and_then(|value| value.to_str().ok());
        let verdict = classify_response(status, retry_after);
        // A page is read up to its cap; any other answer only as far as a failure keeps of it.
        let cap = if verdict == Verdict::Page { MAX_PAGE_BYTES } else { BODY_PREFIX_BYTES };
        let (body, over_cap) = match read_body_capped(response, cap).await {
            Ok(body) => (body.bytes, body.over_cap),
            // A failure's status says what it is; its body only adds the supplier's words.
            // Its body cut short (a proxy closing early, the timeout), a 429 was retried at
            // once instead of after its `Retry-After`, a 410 never restarted its window, and a
            // refusal was retried as a connection failure instead of going to an operator.
            Err(error) if verdict != Verdict::Page && verdict != Verdict::Retry => {
                let cut = format!("(the body could not be read: {})", with_causes(&error));
                (cut.into_bytes(), false)
            }
            Err(error) => {
                let reason = if error.is_timeout() { "timeout" } else { "connection" };
                return Ok(Attempt::Failed { reason, error: with_causes(&error), body: None });
            }
        };
        match verdict {
            Verdict::Page if over_cap => Ok(Attempt::Failed {
                reason: INVALID_PAGE,
                error: format!("a 200 whose body is longer than the {} MiB a page may be", MAX_PAGE_BYTES / MIB),
                body: Some(prefix(&body)),
            }),
            Verdict::Page => match parse_page(&body, snapshot) {
                Ok(page) => Ok(Attempt::Page(page)),
                Err(invalid) => Ok(Attempt::Failed {
                    reason: INVALID_PAGE,
                    error: invalid_page(&invalid),
                    body: Some(prefix(&body)),
                }),
            },
            Verdict::Throttled(wait) => Ok(Attempt::Throttled(wait)),
            Verdict::Retry => Ok(Attempt::Failed {
                reason: "server_error",
                error: format!("status {status}"),
                body: Some(prefix(&body)),
            }),
            Verdict::CursorExpired => Err(PullError::CursorExpired),
            Verdict::Refused => Err(PullError::Refused { status, body: prefix(&body) }),
        }
    }
}

fn invalid_page(invalid: &InvalidPage) -> String {
    format!("a 200 that is not a page: {invalid}")
}

/// The first bytes of a body, as text, for an operator.
fn prefix(body: &[u8]) -> String {
    let end = body.len().min(BODY_PREFIX_BYTES);
    String::from_utf8_lossy(&body[..end]).into_owned()
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

/// At most `rate` requests in any second, spaced evenly: a supplier's limit holds second by
/// second, not on average. `Quota::per_second` alone lets a burst of `rate` requests through
/// at once after a pause, and up to twice the rate in the second after it.
fn page_limiter(rate: NonZeroU32) -> DefaultDirectRateLimiter {
    RateLimiter::direct(Quota::per_second(rate).allow_burst(NonZeroU32::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five requests a second are five in any second: the second request of a fresh limiter
    /// waits its fifth of a second (a burst of five let it, and three more, through at once).
    #[test]
    fn a_feed_s_rate_holds_second_by_second() {
        let limiter = page_limiter(NonZeroU32::new(5).expect("above 0"));
        assert!(limiter.check().is_ok(), "the first request goes at once");
        assert!(limiter.check().is_err(), "the next waits its turn");
    }

    /// A failed connection tells why: reqwest's own text names only the URL.
    #[tokio::test]
    async fn a_connection_failure_tells_its_cause() {
        // Nothing listens on port 1 of the loopback address: the connection is refused.
        let error = reqwest::Client::new().get("http://127.0.0.1:1/v1/inventory").send().await.expect_err("refused");
        let text = with_causes(&error);
        assert!(text.contains("127.0.0.1:1") && text.to_lowercase().contains("connection refused"), "{text}");
    }

    #[test]
    fn a_token_never_shows() {
        assert_eq!(format!("{:?}", FeedToken::new("s3cret".to_owned())), "FeedToken(***)");
    }
}
