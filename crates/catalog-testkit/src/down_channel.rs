//! A channel that is down, as a store's claims see it: every item of its backlog failed and
//! waits out its backoff, while new items keep coming. What a claim costs then is what the
//! publishers' polls cost the store for as long as the channel stays down (decision 0057).

use std::time::{Duration, Instant};

use catalog_core::{EventId, OfferKey, Sku, StockChange, SupplierEvent, SupplierId, TenantId};
use catalog_store::{BatchInput, CatalogStore, OutboxClaim, PublishOutcome, PublishRecord};
use chrono::Utc;

/// Items of the channel, every one in backoff.
pub const DOWN_ITEMS: usize = 100_000;
/// A publisher's claim: what one round of a lane asks for.
const CLAIM_LIMIT: usize = 176;
/// Claims timed of each kind.
const CLAIMS: usize = 200;
/// Events per batch while the backlog is built.
const BATCH: usize = 5_000;

/// Milliseconds the claims took, of each kind.
#[derive(Debug)]
pub struct DownChannelClaims {
    /// Claims that found nothing due.
    pub nothing_due: Vec<f64>,
    /// Claims that each found the 10 items queued just before.
    pub new_due: Vec<f64>,
}

impl std::fmt::Display for DownChannelClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{DOWN_ITEMS} items in backoff, {CLAIMS} claims of {CLAIM_LIMIT} each: nothing due {}; 10 new items due {}",
            quantiles(&self.nothing_due),
            quantiles(&self.new_due)
        )
    }
}

/// Median and p99 of `times`, in milliseconds.
fn quantiles(times: &[f64]) -> String {
    let mut times = times.to_vec();
    times.sort_by(f64::total_cmp);
    let at = |share: usize| times[(times.len() * share / 100).min(times.len() - 1)];
    format!("median {:.2} ms, p99 {:.2} ms", at(50), at(99))
}

/// `n` events of new SKUs `first..first + n` of tenant `canary`, each its own item.
fn new_items(first: usize, n: usize) -> Vec<SupplierEvent> {
    let tenant = TenantId::parse("canary").expect("valid tenant");
    let supplier = SupplierId::parse("acme").expect("valid supplier");
    let at = Utc::now();
    (first..first + n)
        .map(|n| {
            let sku = Sku::parse(&format!("DOWN-{n}")).expect("valid sku");
            let key = OfferKey { tenant: tenant.clone(), supplier: supplier.clone(), sku };
            let id = EventId(uuid::Uuid::from_u128(n as u128 + 1));
            SupplierEvent::new(id, key, StockChange::Updated { quantity: 5 }, at, None).expect("valid event")
        })
        .collect()
}

/// Builds `DOWN_ITEMS` items of `channel` (which `store` queues every tenant's changes for),
/// claims each and records it failed with an hour's backoff, then times the claims
/// ([`time_claims`]).
pub async fn down_channel_claims(store: &dyn CatalogStore, channel: &str) -> DownChannelClaims {
    fail_a_backlog(store, channel).await;
    time_claims(store, channel, 0).await
}

/// Builds `DOWN_ITEMS` items of `channel`, claims each and records it failed with an hour's
/// backoff: a channel that went down.
pub async fn fail_a_backlog(store: &dyn CatalogStore, channel: &str) {
    for first in (0..DOWN_ITEMS).step_by(BATCH) {
        let events = crate::incoming(&new_items(first, BATCH), "raw", Utc::now());
        store.apply_batch(&BatchInput::new(events, vec![])).await.expect("apply");
    }
    let claim = OutboxClaim::immediate(1_000, Duration::from_secs(60));
    let failed = PublishOutcome::RetryAt(Utc::now() + chrono::Duration::hours(1));
    loop {
        let claimed = store.claim_outbox(channel, &claim).await.expect("claim");
        if claimed.is_empty() {
            break;
        }
        let records: Vec<PublishRecord> = claimed
            .iter()
            .map(|entry| PublishRecord {
                claim: entry.claim,
                item_id: entry.item.id(),
                channel: channel.to_owned(),
                version: entry.item.version(),
                attempt: 1,
                outcome: failed,
                status: Some(503),
                latency_ms: Some(1),
                error: Some("service unavailable".to_owned()),
                dead_letter_reason: None,
                body: None,
                sent: None,
            })
            .collect();
        store.record_publishes(&records).await.expect("record");
    }
}

/// Times `CLAIMS` claims of `channel` that find nothing due and `CLAIMS` that each find 10 new
/// items (the `run`-th set of new items: each call queues its own).
pub async fn time_claims(store: &dyn CatalogStore, channel: &str, run: usize) -> DownChannelClaims {
    let claim = OutboxClaim::immediate(CLAIM_LIMIT, Duration::from_secs(60));
    let mut nothing_due = Vec::with_capacity(CLAIMS);
    for _ in 0..CLAIMS {
        let started = Instant::now();
        let claimed = store.claim_outbox(channel, &claim).await.expect("claim");
        nothing_due.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(claimed.is_empty(), "every item is in backoff");
    }
    let mut new_due = Vec::with_capacity(CLAIMS);
    for round in 0..CLAIMS {
        let first = DOWN_ITEMS + (run * CLAIMS + round) * 10;
        let events = crate::incoming(&new_items(first, 10), "raw", Utc::now());
        store.apply_batch(&BatchInput::new(events, vec![])).await.expect("apply");
        let started = Instant::now();
        let claimed = store.claim_outbox(channel, &claim).await.expect("claim");
        new_due.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(claimed.len(), 10, "the new items are due, nothing else");
    }
    DownChannelClaims { nothing_due, new_due }
}
