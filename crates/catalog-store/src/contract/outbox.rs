//! Contract cases of `OutboxStore`: one row per item and channel, claims, leases, records,
//! retries, dead letters and republishing.

use std::sync::Arc;

use catalog_core::{ItemKey, Sku, StockChange, TenantId};
use chrono::{Duration, Utc};

use super::fixtures::*;
use crate::{PublishOutcome, PublishRecord, StoreConfig};

pub(super) async fn outbox_holds_one_row_per_item_and_channel_at_its_newest_version<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let channels = vec![
        crate::ChannelRoute::all("storefront"),
        crate::ChannelRoute::all("shopify"),
        crate::ChannelRoute::for_tenants("wide-only", [TenantId::parse("wide").expect("valid")]),
    ];
    let (store, _guard) = factory(StoreConfig { channels, ..StoreConfig::default() }).await;
    let key = offer("canary", "acme", "ABC-1");
    store
        .apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 4 }, 0, 1)]))
        .await
        .expect("apply");
    store
        .apply_batch(&batch(vec![incoming(2, &key, StockChange::Updated { quantity: 4 }, 1, 2)]))
        .await
        .expect("apply");
    store.apply_batch(&batch(vec![incoming(3, &key, StockChange::Adjusted { delta: 2 }, 2, 3)])).await.expect("apply");
    let trace = store.item_trace(key.item_key().item_id()).await.expect("trace").expect("exists");
    let mut pending: Vec<_> = trace.pending_publishes.iter().map(|p| (p.channel.clone(), p.version)).collect();
    pending.sort();
    assert_eq!(
        pending,
        [("shopify".to_owned(), 2), ("storefront".to_owned(), 2)],
        "version 2 replaced version 1 while it waited"
    );
    assert_eq!(trace.item.version(), 2, "an applied event that leaves the quantity alone makes no version");
}

pub(super) async fn outbox_claims_the_newest_version_and_coalesces_older_ones<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    let b = offer("canary", "acme", "B-1");
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    store.apply_batch(&batch(vec![incoming(2, &a, StockChange::Updated { quantity: 5 }, 1, 2)])).await.expect("apply");
    store.apply_batch(&batch(vec![incoming(3, &b, StockChange::Updated { quantity: 6 }, 1, 3)])).await.expect("apply");
    let depth = store.outbox_depth().await.expect("depth");
    assert_eq!(
        depth.iter().map(|d| (d.channel.as_str(), d.pending)).collect::<Vec<_>>(),
        [("storefront", 2)],
        "A's two versions wait as one"
    );
    // A drain compares queue times with the store's clock: rows queued before are older.
    let clock = store.outbox_clock().await.expect("clock");
    assert!(depth[0].oldest_enqueued_at.is_some_and(|oldest| oldest <= clock), "{depth:?} at {clock}");

    let mut claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    claimed.sort_by_key(|entry| entry.item.sku().to_string());
    let summary: Vec<_> =
        claimed.iter().map(|e| (e.item.sku().to_string(), e.item.quantity(), e.item.version(), e.attempts)).collect();
    assert_eq!(summary, [("A-1".to_owned(), 5, 2, 0), ("B-1".to_owned(), 6, 1, 0)]);
    assert!(claimed.iter().all(|entry| entry.traceparent.is_some()), "the winning event's traceparent travels along");
    assert!(
        store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty(),
        "claimed entries are leased"
    );
    assert!(store.claim_outbox("shopify", &immediate(10)).await.expect("claim").is_empty());

    store.record_publish(&published(&claimed[0], PublishOutcome::Published)).await.expect("record");
    store
        .record_publish(&published(&claimed[1], PublishOutcome::Superseded { current_version: 4 }))
        .await
        .expect("record");
    assert_eq!(store.outbox_depth().await.expect("depth").iter().map(|d| d.pending).sum::<u64>(), 0);
    let trace = store.item_trace(a.item_key().item_id()).await.expect("trace").expect("exists");
    assert!(trace.pending_publishes.is_empty(), "version 1 was coalesced into version 2");
    let attempts: Vec<_> =
        trace.publish_attempts.iter().map(|p| (p.version, p.attempt, p.result.as_str(), p.status)).collect();
    assert_eq!(attempts, [(2, 1, "published", Some(202))]);
}

pub(super) async fn a_version_queued_while_one_is_out_goes_once_that_one_is_recorded<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    let b = offer("canary", "acme", "B-1");
    let events = vec![
        incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1),
        incoming(2, &b, StockChange::Updated { quantity: 4 }, 0, 1),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let mut out = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    out.sort_by_key(|entry| entry.item.sku().to_string());
    let events = vec![
        incoming(3, &a, StockChange::Updated { quantity: 5 }, 1, 2),
        incoming(4, &b, StockChange::Updated { quantity: 6 }, 1, 2),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    assert!(
        store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty(),
        "no second send of an item while one is out"
    );
    let mut failed = published(&out[1], PublishOutcome::RetryAt(Utc::now() - Duration::seconds(1)));
    failed.status = Some(503);
    store.record_publishes(&[published(&out[0], PublishOutcome::Published), failed]).await.expect("record");

    let mut next = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    next.sort_by_key(|entry| entry.item.sku().to_string());
    let next_summary: Vec<_> =
        next.iter().map(|e| (e.item.sku().to_string(), e.item.quantity(), e.item.version(), e.attempts)).collect();
    assert_eq!(
        next_summary,
        [("A-1".to_owned(), 5, 2, 0), ("B-1".to_owned(), 6, 2, 0)],
        "A's new version is a fresh run; B's retry carries its newest version, which did not fail yet"
    );
    assert_eq!(store.stale_items("storefront").await.expect("stale"), 2, "both lag until version 2 lands");
    let round: Vec<_> = next.iter().map(|entry| published(entry, PublishOutcome::Published)).collect();
    store.record_publishes(&round).await.expect("record");
    assert_eq!(store.outbox_depth().await.expect("depth").iter().map(|d| d.pending).sum::<u64>(), 0);
    assert_eq!(store.stale_items("storefront").await.expect("stale"), 0);
    let trace = store.item_trace(a.item_key().item_id()).await.expect("trace").expect("exists");
    let attempts: Vec<_> = trace.publish_attempts.iter().map(|p| (p.version, p.result.as_str())).collect();
    assert_eq!(attempts, [(1, "published"), (2, "published")]);
}

pub(super) async fn a_retried_publish_is_due_again_and_counts_its_attempts<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    let mut failure = published(&claimed[0], PublishOutcome::RetryAt(Utc::now() - Duration::seconds(1)));
    failure.status = Some(503);
    failure.error = Some("service unavailable".into());
    store.record_publish(&failure).await.expect("record");
    let again = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);

    let retry_at = Utc::now() + Duration::hours(1);
    let later = published(&again[0], PublishOutcome::RetryAt(retry_at));
    store.record_publish(&later).await.expect("record");
    assert!(
        store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty(),
        "not due before its time"
    );
    let trace = store.item_trace(a.item_key().item_id()).await.expect("trace").expect("exists");
    // Support sees when it goes again and how many sends failed.
    let pending = &trace.pending_publishes[0];
    assert_eq!(pending.failed_attempts, 2);
    assert!((pending.not_before - retry_at).num_milliseconds().abs() <= 1, "{pending:?} at {retry_at}");
    let attempts: Vec<_> =
        trace.publish_attempts.iter().map(|p| (p.attempt, p.result.as_str(), p.error.clone())).collect();
    assert_eq!(attempts, [(1, "retry", Some("service unavailable".to_owned())), (2, "retry", None)]);
}

pub(super) async fn a_throttled_publish_is_due_again_and_spends_no_attempt<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    let mut results = Vec::new();
    // Throttled, failed, throttled: only the failure is counted against the budget.
    for (outcome, status) in [
        (PublishOutcome::ThrottledUntil(Utc::now() - Duration::seconds(1)), 429),
        (PublishOutcome::RetryAt(Utc::now() - Duration::seconds(1)), 503),
        (PublishOutcome::ThrottledUntil(Utc::now() - Duration::seconds(1)), 429),
    ] {
        let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
        assert_eq!(claimed.len(), 1, "due again after {results:?}");
        results.push(claimed[0].attempts);
        store
            .record_publish(&PublishRecord { status: Some(status), ..published(&claimed[0], outcome) })
            .await
            .expect("record");
    }
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    results.push(claimed[0].attempts);
    assert_eq!(results, [0, 0, 1, 1], "failures before each claim");

    let later = published(&claimed[0], PublishOutcome::ThrottledUntil(Utc::now() + Duration::hours(1)));
    store.record_publish(&PublishRecord { status: Some(429), ..later }).await.expect("record");
    assert!(
        store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty(),
        "not due before the throttle's time"
    );
    let trace = store.item_trace(a.item_key().item_id()).await.expect("trace").expect("exists");
    let attempts: Vec<_> = trace.publish_attempts.iter().map(|p| (p.attempt, p.result.as_str(), p.status)).collect();
    assert_eq!(
        attempts,
        [
            (1, "throttled", Some(429)),
            (1, "retry", Some(503)),
            (2, "throttled", Some(429)),
            (2, "throttled", Some(429))
        ],
        "every throttled attempt is recorded, with the budget's attempt number"
    );
    assert!(store.open_dead_letters(10).await.expect("dead letters").is_empty());
}

pub(super) async fn a_newer_version_starts_with_no_failures_and_keeps_the_backoff<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    for _ in 0..2 {
        let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
        let failure = published(&claimed[0], PublishOutcome::RetryAt(Utc::now() - Duration::seconds(1)));
        store.record_publish(&failure).await.expect("record");
    }
    // Version 2 is queued into the row while version 1 waits out its backoff.
    store.apply_batch(&batch(vec![incoming(2, &a, StockChange::Updated { quantity: 5 }, 1, 2)])).await.expect("apply");
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|e| (e.item.version(), e.attempts)).collect::<Vec<_>>(),
        [(2, 0)],
        "version 2 does not inherit version 1's two failures"
    );
    let failure = published(&claimed[0], PublishOutcome::RetryAt(Utc::now() + Duration::hours(1)));
    store.record_publish(&failure).await.expect("record");
    store.apply_batch(&batch(vec![incoming(3, &a, StockChange::Updated { quantity: 6 }, 2, 3)])).await.expect("apply");
    assert!(
        store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty(),
        "version 3 waits out the backoff the row had: a failing channel is not sent every change at once"
    );
    let trace = store.item_trace(a.item_key().item_id()).await.expect("trace").expect("exists");
    assert_eq!(trace.pending_publishes.iter().map(|p| p.version).collect::<Vec<_>>(), [3]);
}

pub(super) async fn a_dead_lettered_publish_leaves_the_outbox_with_its_reason<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    let mut rejected = published(&claimed[0], PublishOutcome::DeadLettered);
    rejected.status = Some(422);
    rejected.dead_letter_reason = Some("rejected_4xx".into());
    rejected.error = Some("unprocessable entity".into());
    rejected.body = Some(r#"{"error":"sku unknown"}"#.into());
    store.record_publish(&rejected).await.expect("record");
    assert!(store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty());

    // The same item failing again is counted on the open dead letter.
    store.apply_batch(&batch(vec![incoming(2, &a, StockChange::Updated { quantity: 9 }, 1, 2)])).await.expect("apply");
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    let mut again = published(&claimed[0], PublishOutcome::DeadLettered);
    again.dead_letter_reason = Some("rejected_4xx".into());
    again.body = Some("second body".into());
    store.record_publish(&again).await.expect("record");

    let letters = store.open_dead_letters(10).await.expect("dead letters");
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (letter.stage.as_str(), letter.reason.as_str(), letter.channel.as_deref()),
        ("publish", "rejected_4xx", Some("storefront"))
    );
    assert_eq!(letter.subject, a.item_key().item_id().to_string());
    assert_eq!((letter.attempts, letter.body.as_deref()), (2, Some("second body")));
}

pub(super) async fn a_round_of_records_has_each_outcome_s_effect<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let skus = ["A-1", "B-1", "C-1", "D-1", "E-1"];
    let events = skus
        .iter()
        .enumerate()
        .map(|(n, sku)| {
            incoming(n as u64 + 1, &offer("canary", "acme", sku), StockChange::Updated { quantity: 4 }, 0, 1)
        })
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let mut claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    claimed.sort_by_key(|entry| entry.item.sku().to_string());
    assert_eq!(claimed.len(), 5);
    let mut dead = published(&claimed[3], PublishOutcome::DeadLettered);
    dead.dead_letter_reason = Some("rejected_4xx".into());
    dead.body = Some("no such sku".into());
    // One round: every outcome at once, then the same item twice (retried, then accepted).
    let round = [
        published(&claimed[0], PublishOutcome::Published),
        published(&claimed[1], PublishOutcome::Superseded { current_version: 7 }),
        published(&claimed[2], PublishOutcome::RetryAt(Utc::now() - Duration::seconds(1))),
        dead,
    ];
    store.record_publishes(&round).await.expect("record a round");
    let twice = [
        published(&claimed[4], PublishOutcome::RetryAt(Utc::now() + Duration::hours(1))),
        PublishRecord { attempt: 2, ..published(&claimed[4], PublishOutcome::Published) },
    ];
    store.record_publishes(&twice).await.expect("record the same item twice");

    let again = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    let again: Vec<_> = again.iter().map(|entry| (entry.item.sku().to_string(), entry.attempts)).collect();
    assert_eq!(again, [("C-1".to_owned(), 1)], "only the retried item is due again, with its attempt counted");
    let letters = store.open_dead_letters(10).await.expect("dead letters");
    let letters: Vec<_> = letters.iter().map(|l| (l.subject.clone(), l.reason.clone(), l.body.clone())).collect();
    let d_item = offer("canary", "acme", "D-1").item_key().item_id().to_string();
    assert_eq!(letters, [(d_item, "rejected_4xx".to_owned(), Some("no such sku".to_owned()))]);
    for (sku, expected) in
        [("A-1", vec!["published"]), ("B-1", vec!["superseded"]), ("E-1", vec!["retry", "published"])]
    {
        let trace =
            store.item_trace(offer("canary", "acme", sku).item_key().item_id()).await.expect("trace").expect("exists");
        let results: Vec<&str> = trace.publish_attempts.iter().map(|attempt| attempt.result.as_str()).collect();
        assert_eq!(results, expected, "{sku}");
        assert!(trace.pending_publishes.is_empty(), "{sku} has nothing left to publish");
    }
    assert_eq!(
        store.stale_items("storefront").await.expect("stale items"),
        2,
        "C (retrying) and D (dead-lettered) lag; A, B and E do not"
    );
}

pub(super) async fn concurrent_claims_never_hand_out_the_same_item<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let events: Vec<_> = (0..60u64)
        .map(|n| {
            incoming(
                n,
                &offer("canary", "acme", &format!("SKU-{}", n % 40)),
                StockChange::Updated { quantity: n as i64 + 1 },
                n as i64,
                0,
            )
        })
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let mut claimers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let store = Arc::clone(&store);
        claimers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim_outbox("storefront", &immediate(3)).await.expect("claim");
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|entry| entry.item.id()));
            }
        });
    }
    let mut all = Vec::new();
    while let Some(mine) = claimers.join_next().await {
        all.extend(mine.expect("claimer"));
    }
    let distinct: std::collections::BTreeSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "an item was handed to two claimers");
    assert_eq!(distinct.len(), 40);

    // A round of sends is recorded in one call.
    let records: Vec<PublishRecord> = all
        .iter()
        .map(|item_id| PublishRecord {
            claim: None,
            item_id: *item_id,
            channel: "storefront".into(),
            version: 1,
            attempt: 1,
            outcome: PublishOutcome::Published,
            status: Some(202),
            latency_ms: Some(1),
            error: None,
            dead_letter_reason: None,
            body: None,
            sent: None,
        })
        .collect();
    store.record_publishes(&records).await.expect("record a round");
    assert_eq!(store.outbox_depth().await.expect("depth").iter().map(|d| d.pending).sum::<u64>(), 0);
    assert_eq!(store.stale_items("storefront").await.expect("stale"), 0);
}

pub(super) async fn a_burst_settles_into_one_claim_and_a_hot_item_is_not_starved<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    let settling = crate::OutboxClaim {
        limit: 10,
        lease: LEASE,
        settle: std::time::Duration::from_secs(3_600),
        max_wait: std::time::Duration::from_secs(7_200),
    };
    assert!(store.claim_outbox("storefront", &settling).await.expect("claim").is_empty(), "still settling");
    let starving = crate::OutboxClaim { max_wait: std::time::Duration::ZERO, ..settling };
    store.apply_batch(&batch(vec![incoming(2, &a, StockChange::Updated { quantity: 5 }, 1, 2)])).await.expect("apply");
    let claimed = store.claim_outbox("storefront", &starving).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|e| e.item.version()).collect::<Vec<_>>(),
        [2],
        "waited long enough: the newest version goes"
    );
}

pub(super) async fn republish_queues_the_current_version_again<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    store.apply_batch(&batch(vec![incoming(2, &a, StockChange::Updated { quantity: 6 }, 1, 2)])).await.expect("apply");
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    store.record_publish(&published(&claimed[0], PublishOutcome::Published)).await.expect("record");
    assert_eq!(store.outbox_depth().await.expect("depth").iter().map(|d| d.pending).sum::<u64>(), 0);
    let item_id = a.item_key().item_id();
    assert_eq!(
        store
            .republish(&[
                item_id,
                ItemKey { tenant: a.tenant.clone(), sku: Sku::parse("NONE").expect("valid") }.item_id()
            ])
            .await
            .expect("republish"),
        1
    );
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|e| (e.item.id(), e.item.version(), e.item.quantity())).collect::<Vec<_>>(),
        [(item_id, 2, 6)]
    );
}

/// A record made after its claim's lease passed, once another publisher claimed the row, is
/// recorded (its attempt, its failure) and changes nothing of the row: the row stays with the
/// claim that holds it. Before, a late retry's backoff landed on the other publisher's lease,
/// and a third claimed the row and sent it while the second's request was out (an older
/// version could then land after a newer one on a last-write platform).
pub(super) async fn a_record_after_its_lease_leaves_another_claim_s_row_alone<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    let short = crate::OutboxClaim::immediate(10, std::time::Duration::from_millis(1));
    let first = store.claim_outbox("storefront", &short).await.expect("claim");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = store.claim_outbox("storefront", &immediate(10)).await.expect("claim again");
    assert_eq!(second.len(), 1, "the first lease passed");
    assert_ne!(first[0].claim, second[0].claim, "each claim has its own token");

    let late = published(&first[0], PublishOutcome::RetryAt(Utc::now() - Duration::seconds(1)));
    store.record_publish(&PublishRecord { status: Some(503), ..late }).await.expect("record");
    assert!(
        store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty(),
        "still the second claim's, for its lease"
    );
    let retry = published(&second[0], PublishOutcome::RetryAt(Utc::now() - Duration::seconds(1)));
    store.record_publish(&PublishRecord { status: Some(503), ..retry }).await.expect("record");
    let third = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(third.iter().map(|entry| entry.attempts).collect::<Vec<_>>(), [1], "the failure of the row's claim");
    // The first claim's late acceptance is the channel's word: kept, and the row left alone.
    store.record_publish(&published(&first[0], PublishOutcome::Published)).await.expect("record");
    assert_eq!(store.outbox_depth().await.expect("depth").iter().map(|depth| depth.pending).sum::<u64>(), 1);
    let trace = store.item_trace(a.item_key().item_id()).await.expect("trace").expect("exists");
    assert_eq!(trace.publish_attempts.len(), 3, "every record's attempt is kept");
}
