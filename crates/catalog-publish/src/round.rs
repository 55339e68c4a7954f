//! How many items a lane claims per round and how long it leases them, so that a lease
//! covers its round. A claim that outlives its lease can be claimed again by another lane
//! or process, at a newer version, and sent before the slow round sends the older one; so
//! a round is sized to fit its lease (and the lease grown when even one item does not
//! fit), and the drain loop sends nothing whose lease has less than a request timeout left.

use std::time::Duration;

use crate::channel::ChannelConfig;

/// What a lane asks of each claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoundPlan {
    /// Items per claim.
    pub(crate) limit: usize,
    /// How long they stay reserved for the lane.
    pub(crate) lease: Duration,
}

/// Items a lane claims at most per round, per send it may have in flight: enough to keep
/// its sends busy while another lane claims or records.
const ITEMS_PER_SEND: usize = 4;

/// The longest a round of `n_items` can take until its last send has ended, when every
/// one of `n_lanes` lanes has a round as large waiting at the channel's shared rate limit:
/// the permits for all of them at `requests_per_second`, plus one request timeout for
/// each wave of `concurrency` sends.
fn longest_round(
    n_items: usize,
    n_lanes: usize,
    concurrency: usize,
    requests_per_second: Option<u32>,
    request_timeout: Duration,
) -> Duration {
    let waiting = requests_per_second.map_or(Duration::ZERO, |per_second| {
        Duration::from_secs_f64((n_lanes * n_items) as f64 / f64::from(per_second))
    });
    let waves = u32::try_from(n_items.div_ceil(concurrency.max(1))).unwrap_or(u32::MAX);
    waiting + request_timeout.saturating_mul(waves)
}

/// The largest round whose longest duration fits the configured lease (at least two
/// request timeouts), and that lease; a channel so slow that one item does not fit gets
/// rounds of one and a lease as long as such a round can take.
pub(crate) fn plan_round(config: &ChannelConfig, n_lanes: usize, concurrency: usize) -> RoundPlan {
    let lease = config.lease.max(config.request_timeout * 2);
    let longest = |n_items| {
        longest_round(n_items, n_lanes, concurrency, config.requests_per_second.map(u32::from), config.request_timeout)
    };
    let most = concurrency.max(1) * ITEMS_PER_SEND;
    match (1..=most).rev().find(|n_items| longest(*n_items) <= lease) {
        Some(limit) => RoundPlan { limit, lease },
        None => RoundPlan { limit: 1, lease: longest(1) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_fits_its_lease() {
        let cases = [
            // name, rate, concurrency in all, request timeout ms, lease ms
            ("defaults", 50, 16, 5_000, 60_000),
            ("one per second", 1, 16, 5_000, 60_000),
            ("one per second, short lease", 1, 16, 5_000, 10_000),
            ("slow and tiny lease", 1, 2, 500, 100),
            ("log: no limit", 0, 256, 5_000, 30_000),
            ("no limit, timeouts only", 0, 4, 5_000, 12_000),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(name, rate, concurrency, timeout_ms, lease_ms)| {
                let mut config = ChannelConfig::new("storefront").with_rate(*rate);
                config.concurrency = *concurrency;
                config.request_timeout = Duration::from_millis(*timeout_ms);
                config.lease = Duration::from_millis(*lease_ms);
                let n_lanes = 2.min(*concurrency);
                let plan = plan_round(&config, n_lanes, concurrency / n_lanes);
                let longest = longest_round(
                    plan.limit,
                    n_lanes,
                    concurrency / n_lanes,
                    config.requests_per_second.map(u32::from),
                    config.request_timeout,
                );
                assert!(longest <= plan.lease, "{name}: a round of {} may take {longest:?}", plan.limit);
                format!("{name}: {} items, lease {:?} (longest round {longest:?})", plan.limit, plan.lease)
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        defaults: 32 items, lease 60s (longest round 21.28s)
        one per second: 22 items, lease 60s (longest round 59s)
        one per second, short lease: 2 items, lease 10s (longest round 9s)
        slow and tiny lease: 1 items, lease 2.5s (longest round 2.5s)
        log: no limit: 512 items, lease 30s (longest round 20s)
        no limit, timeouts only: 4 items, lease 12s (longest round 10s)
        "#);
    }
}
