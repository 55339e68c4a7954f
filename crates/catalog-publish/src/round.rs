//! How many items a lane claims per round and how long it leases them, so that a lease
//! covers its round. A claim that outlives its lease can be claimed again by another lane
//! or process, at a newer version, and sent before the slow round sends the older one; so
//! a round is sized to fit its lease (and the lease grown when even one item does not
//! fit), and the drain loop sends nothing whose lease has less than a request timeout left.

use std::time::{Duration, Instant};

use crate::channel::ChannelConfig;

/// What a lane asks of each claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoundPlan {
    /// Items per claim.
    pub(crate) limit: usize,
    /// How long they stay reserved for the lane.
    pub(crate) lease: Duration,
    /// For a round longer than the configured lease (a feed): that lease, which the claims
    /// are taken for and renewed by while the round runs (`holding`), so a killed worker's
    /// claims pass within it rather than within `lease`.
    pub(crate) renewed: Option<Duration>,
}

/// Sends a lane's round holds at most per send it may have in flight. Every round costs a
/// claim and a record, each a transaction that locks its rows, whatever its size; small
/// rounds spend the publisher's time (and the database's) on them rather than on sending.
const SENDS_PER_SLOT: usize = 16;

/// Items one round claims at most, unless one send takes more (a feed of up to 10,000
/// messages is one round): a claim and a record of this many rows stay a few milliseconds
/// each, and in the fan-out benchmark the batching channels' rounds held about 250 items
/// even when 1,000 were allowed.
const MAX_ROUND_ITEMS: usize = 512;

/// The longest a round of `n_items` can take until its last send has ended, when every
/// one of `n_lanes` lanes has a round as large waiting at the channel's shared rate limit:
/// the permits for all of them, one every `interval` (one per send of up to `max_batch`
/// items), plus one request timeout for each wave of `concurrency` sends.
fn longest_round(
    n_items: usize,
    n_lanes: usize,
    concurrency: usize,
    max_batch: usize,
    interval: Option<Duration>,
    request_timeout: Duration,
) -> Duration {
    let n_sends = n_items.div_ceil(max_batch.max(1));
    let waiting = interval.map_or(Duration::ZERO, |interval| {
        interval.saturating_mul(u32::try_from(n_lanes * n_sends).unwrap_or(u32::MAX))
    });
    let waves = u32::try_from(n_sends.div_ceil(concurrency.max(1))).unwrap_or(u32::MAX);
    waiting + request_timeout.saturating_mul(waves)
}

/// The part of a round's lease its sends may take: the rest, a tenth, is left for recording
/// the round (and giving back what it did not send) while its claims still hold. A round
/// planned to send up to the lease's end recorded after it: another lane or process could
/// claim an item meanwhile and send a newer version, then the late record found the claim
/// gone, its failure uncounted and its backoff skipped, or opened a dead letter for a version
/// already passed (found by review).
pub(crate) fn sending_budget(lease: Duration) -> Duration {
    lease - lease / 10
}

/// The lease whose sending budget is `sends` (`sending_budget`'s inverse).
fn lease_for(sends: Duration) -> Duration {
    sends + sends / 9
}

/// The largest round whose longest duration fits the configured lease's sending budget (the
/// budget at least two request timeouts), and that lease; a channel so slow that one send does not fit gets
/// rounds of one send (as many items as it takes) and a lease as long as such a round can
/// take. `max_batch` is how many items the channel's adapter takes in one send.
pub(crate) fn plan_round(config: &ChannelConfig, n_lanes: usize, concurrency: usize, max_batch: usize) -> RoundPlan {
    let lease = config.lease.max(lease_for(config.request_timeout * 2));
    let longest = |n_items| {
        longest_round(
            n_items,
            n_lanes,
            concurrency,
            max_batch,
            config.rate.map(|rate| rate.interval),
            config.request_timeout,
        )
    };
    let most =
        (concurrency.max(1) * SENDS_PER_SLOT).saturating_mul(max_batch.max(1)).min(MAX_ROUND_ITEMS.max(max_batch));
    let fitting = |lease| (1..=most).rev().find(|n_items| longest(*n_items) <= sending_budget(lease));
    let (limit, lease) = match fitting(lease) {
        Some(limit) => (limit, lease),
        // One send's round, as large as one send takes: a feed's whole batch, not one item.
        None => {
            let lease = lease_for(longest(1));
            (fitting(lease).unwrap_or(1), lease)
        }
    };
    RoundPlan { limit, lease, renewed: (lease > config.lease).then_some(config.lease) }
}

/// `publishes` in order, in batches of `max_batch` (at least 1), moving each once. Splitting
/// the rest off after each batch instead copied the rest every time: for a round of 512
/// one-item sends, 130,000 moves and 500 allocations of falling sizes, which raised the
/// worker's peak RSS by about 50 MiB with the log channel draining a backlog.
pub(crate) fn in_batches<T>(publishes: Vec<T>, max_batch: usize) -> Vec<Vec<T>> {
    let max_batch = max_batch.max(1);
    let mut batches = Vec::with_capacity(publishes.len().div_ceil(max_batch));
    let mut publishes = publishes.into_iter().peekable();
    while publishes.peek().is_some() {
        batches.push(publishes.by_ref().take(max_batch).collect());
    }
    batches
}

/// The hold a throttling answer (a 429's `Retry-After`, a budget running low) puts on the
/// whole channel, every lane, from the moment it is answered: no send starts before it has
/// passed, in the round that met it or any other. Shared with the channel's reconciler, whose
/// reads wait it out too and whose own 429s extend it (`ChannelPublisher::held_by`). It also
/// keeps how the platform refuses the channel until an operator acts (decision 0059): a drain
/// stops waiting for a channel refused twice in a row.
#[derive(Debug, Default)]
pub struct ChannelHold {
    until: std::sync::Mutex<Option<Instant>>,
    refused: std::sync::Mutex<Option<Refused>>,
}

/// The platform's last refusal of the channel (`Verdict::Blocked`: credentials refused, a shop
/// frozen or locked), while no send since got past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    pub error: String,
    /// Sends refused in a row: one may be about one item (a Mercado Libre 401 naming the
    /// user), two across the hold the first put on the channel are about the channel.
    pub in_a_row: u32,
}

impl ChannelHold {
    /// When the hold ends, while it has not.
    pub fn until(&self) -> Option<Instant> {
        let held = *self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.filter(|until| *until > Instant::now())
    }

    /// Holds the channel for `wait` from now, or longer if it is held longer already.
    pub fn extend(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut held = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *held = Some(held.map_or(until, |current| current.max(until)));
    }

    /// The platform refused a send for `reason` until an operator acts (`Verdict::Blocked`).
    pub fn refuse(&self, reason: &'static str, error: &str) {
        let mut refused = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let in_a_row = refused.as_ref().map_or(0, |refused| refused.in_a_row) + 1;
        *refused = Some(Refused { reason, error: error.to_owned(), in_a_row });
    }

    /// The platform took a send past what it refused.
    pub fn taken(&self) {
        *self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The platform's last refusal, unless a send got past it since.
    pub fn refused(&self) -> Option<Refused> {
        self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_the_order_and_hold_at_most_max_batch() {
        let batches = in_batches((1..=7).collect(), 3);
        assert_eq!(batches, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
        assert_eq!(in_batches((1..=2).collect(), 0), vec![vec![1], vec![2]], "a batch holds at least one");
        assert!(in_batches(Vec::<u8>::new(), 25).is_empty());
    }

    #[test]
    fn a_hold_lasts_its_longest_wait() {
        let hold = ChannelHold::default();
        assert_eq!(hold.until(), None);
        hold.extend(Duration::from_secs(30));
        let until = hold.until().expect("held");
        hold.extend(Duration::from_secs(1));
        assert_eq!(hold.until(), Some(until), "a shorter wait does not shorten it");
        assert_eq!(hold.refused(), None);
        hold.refuse("unauthorized", "401");
        hold.refuse("unauthorized", "401 again");
        let refused = Refused { reason: "unauthorized", error: "401 again".to_owned(), in_a_row: 2 };
        assert_eq!(hold.refused(), Some(refused));
        hold.taken();
        assert_eq!(hold.refused(), None, "a send taken ends the refusal");
        hold.refuse("unauthorized", "401");
        assert_eq!(hold.refused().map(|refused| refused.in_a_row), Some(1), "counted from the send taken");
    }

    #[test]
    fn a_round_fits_its_lease() {
        let cases = [
            // name, rate, concurrency in all, items per send, request timeout ms, lease ms
            ("defaults", 50, 16, 1, 5_000, 60_000),
            ("one per second", 1, 16, 1, 5_000, 60_000),
            ("one per second, short lease", 1, 16, 1, 5_000, 10_000),
            ("slow and tiny lease", 1, 2, 1, 500, 100),
            ("log: no limit", 0, 256, 1, 5_000, 30_000),
            ("no limit, timeouts only", 0, 4, 1, 5_000, 12_000),
            ("fast, one item per send", 20_000, 32, 1, 5_000, 60_000),
            ("fast, 25 items per send", 20_000, 32, 25, 5_000, 60_000),
            ("two per second, 250 items per send", 2, 4, 250, 5_000, 60_000),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(name, rate, concurrency, max_batch, timeout_ms, lease_ms)| {
                let mut config = ChannelConfig::new("storefront").with_rate(*rate);
                config.concurrency = *concurrency;
                config.request_timeout = Duration::from_millis(*timeout_ms);
                config.lease = Duration::from_millis(*lease_ms);
                let n_lanes = 2.min(*concurrency);
                let plan = plan_round(&config, n_lanes, concurrency / n_lanes, *max_batch);
                let longest = longest_round(
                    plan.limit,
                    n_lanes,
                    concurrency / n_lanes,
                    *max_batch,
                    config.rate.map(|rate| rate.interval),
                    config.request_timeout,
                );
                let budget = sending_budget(plan.lease);
                assert!(longest <= budget, "{name}: a round of {} may take {longest:?}, sends {budget:?}", plan.limit);
                format!("{name}: {} items, lease {:?} (longest round {longest:?})", plan.limit, plan.lease)
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        defaults: 80 items, lease 60s (longest round 53.2s)
        one per second: 19 items, lease 60s (longest round 53s)
        one per second, short lease: 2 items, lease 11.111111111s (longest round 9s)
        slow and tiny lease: 1 items, lease 2.777777777s (longest round 2.5s)
        log: no limit: 512 items, lease 30s (longest round 20s)
        no limit, timeouts only: 4 items, lease 12s (longest round 10s)
        fast, one item per send: 160 items, lease 60s (longest round 50.016s)
        fast, 25 items per send: 512 items, lease 60s (longest round 10.0021s)
        two per second, 250 items per send: 512 items, lease 60s (longest round 13s)
        "#);
    }

    #[test]
    fn a_feed_round_is_one_feed() {
        // Amazon's JSON_LISTINGS_FEED: one feed of up to 10,000 messages every two minutes,
        // each waited for up to 20 minutes.
        let mut config = ChannelConfig::new("amazon");
        config.rate = Some(crate::Rate::from_plan(0.0083, Some(15)).expect("valid plan"));
        config.concurrency = 4;
        config.request_timeout = Duration::from_secs(20 * 60);
        let plan = plan_round(&config, 2, 2, 10_000);
        assert_eq!(plan.limit, 10_000, "a round fills a feed, not 512 items of it");
        assert!(plan.lease >= Duration::from_secs(20 * 60 + 240), "the lease covers a permit and the wait: {plan:?}");
        assert_eq!(plan.renewed, Some(config.lease), "claims taken for the configured lease and renewed");

        // A feed waited for one minute does not fit the lease with its permits: the lease
        // grows to one send's round, and the round is still a whole feed.
        config.request_timeout = Duration::from_secs(60);
        let plan = plan_round(&config, 2, 2, 10_000);
        assert_eq!(plan.limit, 10_000, "{plan:?}");
        assert!(plan.lease >= Duration::from_secs(60 + 240), "{plan:?}");
    }
}
