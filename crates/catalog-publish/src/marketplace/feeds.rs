//! What the marketplaces' feeds share (Amazon's `JSON_LISTINGS_FEED`, Walmart's bulk
//! inventory feed): how long a submitted feed is waited for, and reading it patiently once
//! it is submitted, so that one failed read never abandons a feed.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::adapter::{Attempt, Publish, Sent};
use crate::holding::claims_still_held;
use crate::marketplace::{all, exchange, header_pairs, Answer};
use crate::response::Verdict;

/// What each call of a feed may take; the whole feed has [`FeedSettings::timeout`].
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A step that failed: the verdict for every message, and the status that said so.
pub(crate) type Refused = (Verdict, Option<u16>);

/// What a feed not created answers when its round's claims passed their lease before it
/// could be (`claims_still_held`): nothing reached the platform; sent again in a later round.
fn lapsed() -> Verdict {
    Verdict::Retry {
        reason: crate::publisher::LEASE_RAN_OUT,
        error: "the round's claims passed their lease before the feed was created: not created".to_owned(),
    }
}

/// Sends `request`, the call that creates a feed, only while the round's claims are still
/// held (`claims_still_held`), else answers [`lapsed`] (decision 0046). It is the send of
/// `with_token`, so the claims are checked just before the call goes out: after the access
/// token was fetched (a slow token endpoint takes up to a call's timeout), and again before
/// the call is sent again with a new token.
pub(crate) async fn exchange_while_held(request: reqwest::RequestBuilder) -> Result<Answer, Verdict> {
    if !claims_still_held() {
        return Err(lapsed());
    }
    exchange(request).await.map_err(Verdict::from)
}

/// How a submitted feed is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// How often its processing status is read (`getFeed` allows 2 requests per second).
    pub poll_interval: Duration,
    /// How long it is waited for before its messages are sent again in a new feed.
    pub timeout: Duration,
}

impl FeedSettings {
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

    /// How long the drain loop gives one send of a channel of feeds: the feed's timeout,
    /// and one call to end on, so the adapter's own deadline is the one that fires.
    pub fn send_timeout(&self) -> Duration {
        self.timeout + CALL_TIMEOUT
    }
}

/// What the HTTP client of a channel whose sends take `request_timeout` gives one call: all
/// of it, or for a channel of feeds (`feed`), [`CALL_TIMEOUT`] at most.
pub(crate) fn call_timeout(feed: Option<FeedSettings>, request_timeout: Duration) -> Duration {
    match feed {
        Some(_) => request_timeout.min(CALL_TIMEOUT),
        None => request_timeout,
    }
}

/// What a platform's answer that is not a success means.
pub(crate) type Refusal = fn(u16, &[(&str, &str)], &str, DateTime<Utc>) -> Verdict;

/// A feed call's answer if it succeeded (2xx); otherwise what `refusal`, the platform's
/// reading of an answer that is not a success, says of it, for every item of the feed.
pub(crate) fn succeeded(answer: Answer, refusal: Refusal) -> Result<Answer, Refused> {
    if (200..300).contains(&answer.status) {
        return Ok(answer);
    }
    let headers = header_pairs(&answer.headers);
    Err((refusal(answer.status, &headers, &answer.body, Utc::now()), Some(answer.status)))
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self { poll_interval: Self::DEFAULT_POLL_INTERVAL, timeout: Self::DEFAULT_TIMEOUT }
    }
}

/// Calls `call` until it answers, once the feed has been submitted: a throttled call waits as
/// long as the platform says, a failed one (a 5xx, a dropped connection) `pause`, and the call is
/// made again, up to `deadline`; `wait_first` waits `pause` before the first call. A refusal
/// that waiting cannot change sends the messages again; so does the deadline, with the last
/// failure named.
pub(crate) async fn patiently<T, F, Fut>(
    deadline: Instant,
    pause: Duration,
    wait_first: bool,
    call: F,
) -> Result<T, Refused>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, Refused>>,
{
    let mut wait = wait_first.then_some(pause);
    let mut last = None;
    loop {
        if let Some(wait) = wait {
            if Instant::now() + wait > deadline {
                let error = match last {
                    Some(last) => format!("the feed was not done before its timeout; the last read failed: {last}"),
                    None => "the feed was not done before its timeout; its messages are sent again".to_owned(),
                };
                return Err((Verdict::Retry { reason: "feed_not_done", error }, None));
            }
            tokio::time::sleep(wait).await;
        }
        match call().await {
            Ok(value) => return Ok(value),
            Err((Verdict::Throttled { retry_after }, _)) => {
                last = Some(format!("throttled for {} ms", retry_after.as_millis()));
                wait = Some(retry_after);
            }
            // The token endpoint throttled or failed (a token expires during a long poll):
            // the submitted feed is read again once it answers, not given up on.
            Err((Verdict::Unavailable { reason, error, retry_after }, _)) => {
                tracing::warn!(reason, %error, "no token to read a submitted feed with, reading it again later");
                last = Some(format!("{reason}: {error}"));
                wait = Some(retry_after.max(pause));
            }
            Err((Verdict::Retry { reason, error }, _)) => {
                tracing::warn!(reason, %error, "reading a submitted feed failed, reading it again");
                last = Some(format!("{reason}: {error}"));
                wait = Some(pause);
            }
            // A refusal of a feed already submitted says nothing against its messages
            // (a 404 for its id, say): they are sent again, never dead-lettered for it.
            Err((Verdict::DeadLetter { reason, error, .. }, status)) => {
                let error = format!("reading the submitted feed: {reason}: {error}");
                return Err((Verdict::Retry { reason: "feed_unreadable", error }, status));
            }
            Err(refused) => return Err(refused),
        }
    }
}

/// What a feed's send answers: each item version's verdict (`verdict` of its outcome in the
/// platform's report, in the batch's order), or the one verdict of a step that failed for
/// all of them. The platform's report was read with a 200.
pub(crate) fn feed_sent<O>(
    batch: &[Publish],
    outcomes: Result<Vec<O>, Refused>,
    started: Instant,
    verdict: impl Fn(O, &Publish) -> Verdict,
) -> Sent {
    match outcomes {
        Ok(outcomes) => Sent {
            attempts: outcomes
                .into_iter()
                .zip(batch)
                .map(|(outcome, publish)| Attempt {
                    verdict: verdict(outcome, publish),
                    status: Some(200),
                    latency: started.elapsed(),
                })
                .collect(),
            pause: None,
        },
        Err((verdict, status)) => all(batch, verdict, status, started),
    }
}
