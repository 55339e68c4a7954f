//! A publish channel's settings: how fast, how many at once, how often to retry, how long a
//! burst settles. What the channel speaks (the storefront contract, the log) is its adapter.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use catalog_core::{ChannelRules, Listings};

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
    /// How fast sends may start; `None` for a channel with no limit (the log).
    pub rate: Option<Rate>,
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
    /// The other channels that write the same seller account's listings (two channels on one
    /// Amazon seller and marketplace, one for each tenant): a SKU that items of several
    /// tenants served by those of them that list it hold is written by none (decision 0056).
    pub shares_account_with: Vec<AccountChannel>,
}

/// Another channel on a channel's seller account, and which listing each SKU is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChannel {
    pub name: String,
    pub listings: Listings,
}

impl ChannelConfig {
    /// Defaults that suit a storefront: 16 in flight, 50 requests/s, 5 s timeout, 8 failures,
    /// bursts settle for 10 ms and no item waits more than 250 ms.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            concurrency: 16,
            rate: NonZeroU32::new(50).map(Rate::per_second),
            request_timeout: Duration::from_secs(5),
            max_attempts: 8,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(60),
            settle: Duration::from_millis(10),
            max_wait: Duration::from_millis(250),
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(50),
            rules: ChannelRules::default(),
            shares_account_with: Vec::new(),
        }
    }

    /// Sets the rate limit in whole requests per second; 0 means none.
    pub fn with_rate(mut self, requests_per_second: u32) -> Self {
        self.rate = NonZeroU32::new(requests_per_second).map(Rate::per_second);
        self
    }
}

/// How fast a channel may start sends: one every `interval`, and up to `burst` at once after
/// a quiet spell (a token bucket, as the platforms document their usage plans). Amazon's
/// `createFeed` allows 0.0083 requests per second with a burst of 15: one feed every two
/// minutes, fifteen at once after half an hour without any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval: Duration,
    pub burst: NonZeroU32,
}

/// The longest interval a rate may have: one request a day.
const LONGEST_INTERVAL: Duration = Duration::from_secs(86_400);

impl Rate {
    /// One request every `interval`, `burst` at once (at least one): a platform's documented
    /// plan as a constant.
    pub const fn every(interval: Duration, burst: u32) -> Self {
        let burst = match NonZeroU32::new(burst) {
            Some(burst) => burst,
            None => NonZeroU32::MIN,
        };
        Self { interval, burst }
    }

    /// `n` requests per second, `n` at once.
    pub fn per_second(n: NonZeroU32) -> Self {
        Self { interval: Duration::from_secs(1) / n.get(), burst: n }
    }

    /// A platform's usage plan: `per_second` requests per second (below 1 for a slow
    /// operation) and the burst; the burst is the rate rounded up (at least 1) when not
    /// given. Refuses a rate that is not a number above zero, slower than one a day, or
    /// faster than one a nanosecond.
    pub fn from_plan(per_second: f64, burst: Option<u32>) -> Result<Self, String> {
        if !per_second.is_finite() || per_second <= 0.0 {
            return Err(format!("requests_per_second must be a number above 0, not {per_second}"));
        }
        let interval = Duration::from_secs_f64(1.0 / per_second);
        if interval > LONGEST_INTERVAL || interval.is_zero() {
            return Err(format!("requests_per_second {per_second} is outside one a day to one a nanosecond"));
        }
        let burst = match burst {
            Some(burst) => NonZeroU32::new(burst).ok_or("burst must be at least 1")?,
            None => NonZeroU32::new(per_second.ceil().min(f64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN),
        };
        Ok(Self { interval, burst })
    }

    /// Requests per second, for logs.
    pub fn per_second_f64(&self) -> f64 {
        1.0 / self.interval.as_secs_f64()
    }

    /// The governor quota of this rate.
    pub(crate) fn quota(&self) -> governor::Quota {
        governor::Quota::with_period(self.interval)
            .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MAX))
            .allow_burst(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_plan_becomes_an_interval_and_a_burst() {
        let shown = |per_second: f64, burst: Option<u32>| match Rate::from_plan(per_second, burst) {
            Ok(rate) => format!("{per_second} burst {burst:?} -> every {:?}, burst {}", rate.interval, rate.burst),
            Err(error) => format!("{per_second} burst {burst:?} -> {error}"),
        };
        let rendered: Vec<String> = [
            (50.0, None),
            (0.0083, Some(15)),
            (0.0083, None),
            (2.5, None),
            (5.0, Some(10)),
            (0.0, None),
            (-1.0, None),
            (f64::NAN, None),
            (f64::INFINITY, None),
            (0.00001, None),
            (2e9, None),
            (1.0, Some(0)),
        ]
        .into_iter()
        .map(|(per_second, burst)| shown(per_second, burst))
        .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r"
        50 burst None -> every 20ms, burst 50
        0.0083 burst Some(15) -> every 120.481927711s, burst 15
        0.0083 burst None -> every 120.481927711s, burst 1
        2.5 burst None -> every 400ms, burst 3
        5 burst Some(10) -> every 200ms, burst 10
        0 burst None -> requests_per_second must be a number above 0, not 0
        -1 burst None -> requests_per_second must be a number above 0, not -1
        NaN burst None -> requests_per_second must be a number above 0, not NaN
        inf burst None -> requests_per_second must be a number above 0, not inf
        0.00001 burst None -> requests_per_second 0.00001 is outside one a day to one a nanosecond
        2000000000 burst None -> every 1ns, burst 2000000000
        1 burst Some(0) -> burst must be at least 1
        ");
    }

    #[test]
    fn whole_requests_per_second_keep_their_meaning() {
        let rate = Rate::per_second(NonZeroU32::new(50).expect("not zero"));
        assert_eq!((rate.interval, rate.burst.get()), (Duration::from_millis(20), 50));
        assert_eq!(Rate::from_plan(50.0, None), Ok(rate));
        assert_eq!(ChannelConfig::new("storefront").with_rate(0).rate, None);
    }
}
