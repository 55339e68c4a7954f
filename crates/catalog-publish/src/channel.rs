//! A publish channel's settings: how fast, how many at once, how often to retry, how long a
//! burst settles. What the channel speaks (the storefront contract, the log) is its adapter.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use catalog_core::ChannelRules;

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

/// One sales channel (the storefront, a marketplace, the log), drained by its own task with
/// its own concurrency and rate limit, so one slow or dead channel never delays another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The outbox channel name, e.g. `storefront`, `shopify`.
    pub name: String,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Sends started per second at most; `None` for a channel with no limit (the log).
    pub requests_per_second: Option<NonZeroU32>,
    /// A send without an answer by then counts as failed (and is retried).
    pub request_timeout: Duration,
    /// Failures (5xx, 408, timeouts, dropped connections) before an item version is
    /// dead-lettered as `retries_exhausted`; throttling (429) is not a failure.
    pub max_attempts: u32,
    /// First retry delay; it doubles per attempt, with jitter, up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A burst of versions of one item settles this long into one call…
    pub settle: Duration,
    /// …but an item waits at most this long, however often it changes.
    pub max_wait: Duration,
    /// How long claimed item versions stay reserved for this publisher. After a crash they
    /// are published again once it has passed (the idempotency key makes that safe). Rounds
    /// are sized to fit it; it is lengthened only for a channel so slow that a round of one
    /// item would not (`round::plan_round`).
    pub lease: Duration,
    /// How often an idle channel looks at the outbox when no batch says there is work.
    pub idle_poll: Duration,
    /// Which listing each SKU is on this channel and how much of its stock the channel is
    /// offered; by default every SKU as it is, at the catalog quantity.
    pub rules: ChannelRules,
}

impl ChannelConfig {
    /// Defaults that suit a storefront: 16 in flight, 50 requests/s, 5 s timeout, 8 failures,
    /// bursts settle for 10 ms and no item waits more than 250 ms.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            concurrency: 16,
            requests_per_second: NonZeroU32::new(50),
            request_timeout: Duration::from_secs(5),
            max_attempts: 8,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(60),
            settle: Duration::from_millis(10),
            max_wait: Duration::from_millis(250),
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(50),
            rules: ChannelRules::default(),
        }
    }

    /// Sets the rate limit; 0 means none.
    pub fn with_rate(mut self, requests_per_second: u32) -> Self {
        self.requests_per_second = NonZeroU32::new(requests_per_second);
        self
    }
}
