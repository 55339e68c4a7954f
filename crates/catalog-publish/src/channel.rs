//! A publish channel's settings: where, with which credentials, how fast, how often to retry.

use std::fmt;
use std::time::Duration;

/// A credential that never reaches `Debug`, `Display` or a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One sales channel (the storefront, a marketplace), drained by its own task with its own
/// concurrency and rate limit, so one slow or dead channel never delays another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The outbox channel name, e.g. `storefront`, `shopify`.
    pub name: String,
    /// `https://host[:port][/prefix]`; requests go to `{base_url}/v1/tenants/{tenant}/items/{item}/invalidate`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<Secret>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests started per second at most.
    pub requests_per_second: u32,
    /// A request without an answer by then counts as failed (and is retried).
    pub request_timeout: Duration,
    /// Attempts before an item version is dead-lettered as `retries_exhausted`.
    pub max_attempts: u32,
    /// First retry delay; it doubles per attempt, with jitter, up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A burst of versions of one item settles this long into one call…
    pub settle: Duration,
    /// …but an item waits at most this long, however often it changes.
    pub max_wait: Duration,
    /// How long claimed item versions stay reserved for this publisher. After a crash they
    /// are published again once it has passed (the idempotency key makes that safe).
    pub lease: Duration,
}

impl ChannelConfig {
    /// Defaults that suit a storefront: 16 in flight, 50 requests/s, 5 s timeout, 8 attempts,
    /// bursts settle for 50 ms and no item waits more than 250 ms.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>, token: Option<Secret>) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token,
            concurrency: 16,
            requests_per_second: 50,
            request_timeout: Duration::from_secs(5),
            max_attempts: 8,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(60),
            settle: Duration::from_millis(50),
            max_wait: Duration::from_millis(250),
            lease: Duration::from_secs(60),
        }
    }
}
