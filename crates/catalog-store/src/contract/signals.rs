//! Contract cases of `SignalStore` and `RolloutStore`: the signals' facts counted as
//! `catalog_core::signals` defines them, the tracer's work and checks, the sampled history,
//! and a rollout that drives the sync flags in the same transaction.

use catalog_core::{ItemId, ItemKey, Outcome, PartitionProgress, Rollout, StockChange, SupplierId, TenantId, TraceGap};
use chrono::{DateTime, Duration, Utc};

use super::fixtures::*;
use crate::{FactsQuery, PublishOutcome, RolloutChange, SampledValue, SignOff, SignalSample, StoreConfig, TraceCheck};

pub(super) fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).expect("valid tenant")
}

pub(super) fn item_id(tenant_name: &str, sku: &str) -> ItemId {
    let key = offer(tenant_name, "acme", sku);
    ItemKey { tenant: key.tenant, sku: key.sku }.item_id()
}

pub(super) fn query(now: chrono::DateTime<Utc>, max_named: usize) -> FactsQuery {
    FactsQuery {
        now,
        stale_grace: Duration::seconds(60),
        publish_window: Duration::minutes(15),
        trace_grace: Duration::minutes(5),
        max_named,
    }
}

fn progress(partition: &str, reported_at: chrono::DateTime<Utc>) -> PartitionProgress {
    PartitionProgress {
        source: "kafka:g:supplier-events".to_owned(),
        partition: partition.to_owned(),
        reported_at,
        oldest_unapplied_at: Some(reported_at - Duration::seconds(3)),
    }
}

pub(super) async fn signal_facts_count_stale_items_failed_attempts_and_untraced_items<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let events = ["A-1", "B-1", "C-1"]
        .iter()
        .enumerate()
        .map(|(n, sku)| {
            incoming(n as u64 + 1, &offer("canary", "acme", sku), StockChange::Updated { quantity: 5 }, 0, n as i64)
        })
        .chain([incoming(9, &offer("other", "acme", "Z-1"), StockChange::Updated { quantity: 1 }, 0, 9)])
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    let outcome_of = |item: ItemId| {
        if item == item_id("canary", "A-1") {
            Some(PublishOutcome::Published)
        } else if item == item_id("canary", "B-1") {
            Some(PublishOutcome::DeadLettered)
        } else if item == item_id("canary", "C-1") {
            Some(PublishOutcome::ThrottledUntil(Utc::now() + Duration::hours(1)))
        } else {
            None
        }
    };
    for entry in &claimed {
        if let Some(outcome) = outcome_of(entry.item.id()) {
            store.record_publish(&published(entry, outcome)).await.expect("record");
        }
    }
    let (a, b) = (item_id("canary", "A-1"), item_id("canary", "B-1"));
    let checked_at = Utc::now();
    store
        .record_trace_checks(&[
            TraceCheck { item_id: a, version: 1, checked_at, gap: None },
            TraceCheck {
                item_id: b,
                version: 1,
                checked_at,
                gap: Some(TraceGap::QuantityDiffers { stored: 5, rederived: 4 }),
            },
        ])
        .await
        .expect("checks");
    let reported = Utc::now();
    store.report_progress(&[progress("0", reported), progress("1", reported)]).await.expect("progress");
    store.report_progress(&[progress("1", reported + Duration::seconds(1))]).await.expect("progress again");
    store.forget_progress("kafka:g:supplier-events", "0").await.expect("forget");

    // Ten minutes on: every change is past the stale and the trace grace.
    let later = store.signal_facts(&query(Utc::now() + Duration::minutes(10), 50)).await.expect("facts");
    let canary = &later.tenants[&tenant("canary")];
    assert_eq!((canary.items, canary.stale_items), (3, 2), "A was accepted; B dead-lettered, C throttled");
    assert_eq!(
        (canary.publish_attempts, canary.publish_failures),
        (2, 1),
        "a throttled record is no attempt; a dead letter is a failure"
    );
    assert_eq!((canary.items_due_for_trace, canary.untraced_items), (3, 2));
    let named: Vec<(String, TraceGap)> =
        canary.untraced.iter().map(|item| (item.sku.to_string(), item.gap.clone())).collect();
    assert_eq!(
        named,
        [
            ("B-1".to_owned(), TraceGap::QuantityDiffers { stored: 5, rederived: 4 }),
            ("C-1".to_owned(), TraceGap::NotChecked)
        ]
    );
    assert_eq!(canary.partitions.len(), 1, "the forgotten partition is gone");
    assert_eq!(canary.partitions[0].partition, "1");
    assert_eq!(
        canary.partitions[0].reported_at.timestamp_millis(),
        (reported + Duration::seconds(1)).timestamp_millis()
    );
    let other = &later.tenants[&tenant("other")];
    assert_eq!((other.items, other.stale_items, other.untraced_items), (1, 1, 1));
    assert_eq!(other.partitions, canary.partitions, "an unapplied message may be any tenant's");
    assert_eq!(
        (later.overall.items, later.overall.stale_items, later.overall.untraced_items),
        (4, 3, 3),
        "overall is the sum"
    );
    assert_eq!((later.overall.publish_attempts, later.overall.publish_failures), (2, 1));

    // At most `max_named` are named; the count stays whole.
    let one = store.signal_facts(&query(Utc::now() + Duration::minutes(10), 1)).await.expect("facts");
    assert_eq!(one.tenants[&tenant("canary")].untraced.len(), 1);
    assert_eq!(one.tenants[&tenant("canary")].untraced_items, 2);
    assert_eq!(one.overall.untraced.len(), 1);

    // Now: nothing is past its grace, so nothing is stale, and only checked items are due.
    let now = store.signal_facts(&query(Utc::now(), 50)).await.expect("facts");
    let canary = &now.tenants[&tenant("canary")];
    assert_eq!(canary.stale_items, 0);
    assert_eq!((canary.items_due_for_trace, canary.untraced_items), (2, 1), "B's gap counts at once");

    // Outside the window no attempt counts.
    let mut far = query(Utc::now() + Duration::hours(1), 50);
    far.publish_window = Duration::minutes(15);
    let far = store.signal_facts(&far).await.expect("facts");
    assert_eq!(far.overall.publish_attempts, 0);
}

pub(super) async fn a_journal_tail_is_the_newest_rows_with_older_winners_found_by_id<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    // acme's one snapshot is the oldest row; beta sends ten newer ones, then acme adjusts.
    let acme = offer("canary", "acme", "A-1");
    let beta = offer("canary", "beta", "A-1");
    let mut events = vec![incoming(1, &acme, StockChange::Updated { quantity: 5 }, 0, 0)];
    events
        .extend((2..=11).map(|n| incoming(n, &beta, StockChange::Updated { quantity: n as i64 }, n as i64, n as i64)));
    store.apply_batch(&batch(events)).await.expect("apply");
    let item = item_id("canary", "A-1");
    let ids = |entries: &[crate::JournalEntry]| entries.iter().map(|entry| entry.event_id).collect::<Vec<_>>();

    let tail = store.journal_tail(item, 4).await.expect("tail").expect("the item");
    assert_eq!(ids(&tail.newest), (8..=11).map(|n| Some(event_id(n))).collect::<Vec<_>>(), "the newest, in key order");
    assert!(!tail.whole);
    assert_eq!(ids(&tail.winners), [Some(event_id(1))], "acme's winner, older than the tail");
    assert_eq!(tail.check(), None, "acme has no snapshot in the tail: older rows are needed");

    let whole = store.journal_tail(item, 11).await.expect("tail").expect("the item");
    assert_eq!(ids(&whole.newest), (1..=11).map(|n| Some(event_id(n))).collect::<Vec<_>>());
    assert!(!whole.whole, "as many rows as asked: there may be more");
    assert!(whole.winners.is_empty(), "every winner is in the tail");
    assert_eq!(whole.check(), Some(Ok(())), "5 + 11 re-derived");
    let more = store.journal_tail(item, 100).await.expect("tail").expect("the item");
    assert!(more.whole);

    // acme adjusts: a tail of two holds beta's snapshot and acme's adjustment, not acme's
    // snapshot, so it does not settle.
    store
        .apply_batch(&batch(vec![incoming(12, &acme, StockChange::Adjusted { delta: 3 }, 12, 12)]))
        .await
        .expect("apply");
    let tail = store.journal_tail(item, 2).await.expect("tail").expect("the item");
    assert_eq!(ids(&tail.newest), [Some(event_id(11)), Some(event_id(12))]);
    assert_eq!(tail.check(), None);
    let tail = store.journal_tail(item, 100).await.expect("tail").expect("the item");
    assert_eq!(tail.check(), Some(Ok(())), "5 + 3 + 11");
    assert!(store.journal_tail(item_id("canary", "NONE"), 4).await.expect("tail").is_none());
}

pub(super) async fn signal_samples_are_kept_per_tenant_and_overall<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let at = base();
    let value = |value: f64, green: bool| SampledValue { value, green };
    let sample = |tenant_id: Option<TenantId>, minute: i64, green: bool| SignalSample {
        tenant_id,
        at: at + Duration::minutes(minute),
        green,
        stale_items: value(0.001, true),
        queue_lag: value(if green { 2.5 } else { 120.0 }, green),
        publish_errors: value(0.0, true),
        trace_coverage: value(1.0, true),
    };
    let canary = Some(tenant("canary"));
    let samples: Vec<SignalSample> = (0..5)
        .map(|minute| sample(canary.clone(), minute, minute != 2))
        .chain([sample(None, 0, true), sample(None, 1, true)])
        .collect();
    store.record_signal_samples(&samples).await.expect("record");

    let kept = store.signal_samples(canary.as_ref(), at, 100).await.expect("samples");
    assert_eq!(kept, samples[..5].to_vec(), "oldest first, as recorded");
    let newest = store.signal_samples(canary.as_ref(), at, 2).await.expect("samples");
    assert_eq!(newest, samples[3..5].to_vec(), "the newest, oldest first");
    let since = store.signal_samples(canary.as_ref(), at + Duration::minutes(3), 100).await.expect("samples");
    assert_eq!(since.len(), 2);
    assert_eq!(store.signal_samples(None, at, 100).await.expect("overall").len(), 2);
    assert!(store.signal_samples(Some(&tenant("all")), at, 100).await.expect("none").is_empty());
    assert_eq!(kept[2].gate_sample().red, [catalog_core::SignalName::QueueLag]);

    assert_eq!(store.prune_signal_samples(at + Duration::minutes(1)).await.expect("prune"), 2);
    assert_eq!(store.signal_samples(canary.as_ref(), at, 100).await.expect("samples").len(), 4);
}

/// Three workers sample every tenant every 30 s for a day: the gate reads one sample per span,
/// red where any worker saw red, and finds the run green since the span after the red one.
pub(super) async fn gate_samples_merge_every_worker_s_samples_of_a_span<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let start = base();
    let canary = Some(tenant("canary"));
    let at = |worker: i64, n: i64| start + Duration::seconds(30 * n + 7 * worker);
    let mut samples: Vec<SignalSample> = (0..3)
        .flat_map(|worker| (0..2_880).map(move |n| (worker, n)))
        .map(|(worker, n)| all_green(&canary, at(worker, n)))
        .collect();
    samples.sort_by_key(|sample| sample.at);
    // One worker saw the queue lag red once, twelve hours in.
    let red_at = at(1, 1_440);
    let red = samples.iter_mut().find(|sample| sample.at == red_at).expect("the red sample");
    (red.green, red.queue_lag) = (false, SampledValue { value: 240.0, green: false });
    store.record_signal_samples(&samples).await.expect("record");

    let span = Duration::seconds(75);
    let gate = store.gate_samples(canary.as_ref(), start, span).await.expect("gate samples");
    assert!(gate.len() <= 2 * (24 * 60 * 60 / 75 + 1), "two per span, not one per worker: {}", gate.len());
    assert_eq!(gate.last().expect("some").at, at(2, 2_879), "the newest span ends at the newest sample");
    let reds: Vec<&catalog_core::GateSample> = gate.iter().filter(|sample| !sample.red.is_empty()).collect();
    assert_eq!(reds.len(), 2, "only the red sample's span is red, at its first and last time");
    assert_eq!(reds[0].red, [catalog_core::SignalName::QueueLag]);
    let since = catalog_core::green_since(&gate, at(2, 2_879), Duration::minutes(5)).expect("green now");
    assert!(since > red_at && since <= red_at + span * 2, "green since {since}, red at {red_at}");

    let after_red = store.gate_samples(canary.as_ref(), red_at + span, span).await.expect("gate samples");
    let since = catalog_core::green_since(&after_red, at(2, 2_879), Duration::minutes(5)).expect("green now");
    assert!(since <= red_at + span * 2, "green since the first span read: {since}");
    assert!(store.gate_samples(None, start, span).await.expect("overall").is_empty());
}

/// Merging spans adds no gap the samples do not have: samples 4 min 55 s apart, the later one
/// first in a span that runs on past it, are green all along under a five-minute gap.
pub(super) async fn merged_gate_spans_show_no_gap_the_samples_do_not_have<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let start = base();
    let canary = Some(tenant("canary"));
    let at = |second: i64| start + Duration::seconds(second);
    let samples: Vec<SignalSample> = [10, 305, 370].into_iter().map(|second| all_green(&canary, at(second))).collect();
    store.record_signal_samples(&samples).await.expect("record");

    // Spans of 75 s from the start: 10 s alone in the first, 305 s and 370 s in the fifth.
    let gate = store.gate_samples(canary.as_ref(), start, Duration::seconds(75)).await.expect("gate samples");
    let times: Vec<DateTime<Utc>> = gate.iter().map(|sample| sample.at).collect();
    assert_eq!(times, [at(10), at(305), at(370)]);
    assert_eq!(catalog_core::green_since(&gate, at(370), Duration::minutes(5)), Some(at(10)));
}

/// A sample of `tenant` at `at` with every signal green.
fn all_green(tenant: &Option<TenantId>, at: DateTime<Utc>) -> SignalSample {
    let green = SampledValue { value: 0.0, green: true };
    SignalSample {
        tenant_id: tenant.clone(),
        at,
        green: true,
        stale_items: green,
        queue_lag: green,
        publish_errors: green,
        trace_coverage: green,
    }
}

fn supplier(name: &str) -> SupplierId {
    SupplierId::parse(name).expect("valid supplier")
}

async fn change(store: &dyn crate::CatalogStore, from: &Rollout, to: &Rollout, step: &str) -> RolloutChange {
    rollout_change(store, &tenant("canary"), from, to, step).await
}

pub(super) async fn a_rollout_drives_the_sync_flags_and_holds_suppliers_not_listed<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let canary = tenant("canary");
    store
        .apply_batch(&batch(vec![
            incoming(1, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 5 }, 0, 0),
            incoming(2, &offer("canary", "globex", "A-1"), StockChange::Updated { quantity: 2 }, 0, 1),
        ]))
        .await
        .expect("apply");
    let state = store.rollout(&canary).await.expect("rollout");
    assert_eq!((state.rollout, state.changed_at), (Rollout::Closed, None), "never moved");

    let first = Rollout::Canary { supplier: supplier("acme") };
    assert!(store
        .change_rollout(&change(&*store, &Rollout::Closed, &first, "canary").await)
        .await
        .expect("canary")
        .is_some());
    let flags = store.tenant_flags(&canary).await.expect("flags").expect("known");
    assert!(flags.sync_enabled);
    assert!(flags.suppliers[&supplier("acme")]);
    assert!(!flags.suppliers[&supplier("globex")], "a supplier not listed is held");
    assert!(
        store
            .change_rollout(&change(&*store, &Rollout::Closed, &Rollout::Open, "open").await)
            .await
            .expect("stale")
            .is_none(),
        "a step decided on a rollout that moved on changes nothing"
    );
    assert_eq!(store.rollout(&canary).await.expect("rollout").rollout, first);

    // A supplier first seen while the tenant is at canary is held too.
    let result = store
        .apply_batch(&batch(vec![
            incoming(3, &offer("canary", "initech", "A-1"), StockChange::Updated { quantity: 1 }, 0, 2),
            incoming(4, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 6 }, 1, 3),
        ]))
        .await
        .expect("apply");
    let outcomes: Vec<Outcome> = result.decisions.iter().map(|decision| decision.outcome).collect();
    assert!(matches!(outcomes[0], Outcome::Held(_)), "{outcomes:?}");
    assert_eq!(outcomes[1], Outcome::Applied);

    let widened = Rollout::Widening { suppliers: [supplier("acme"), supplier("globex")].into_iter().collect() };
    assert!(store.change_rollout(&change(&*store, &first, &widened, "widen").await).await.expect("widen").is_some());
    let flags = store.tenant_flags(&canary).await.expect("flags").expect("known");
    assert!(flags.suppliers[&supplier("globex")]);
    assert!(!flags.suppliers[&supplier("initech")]);

    assert!(store
        .change_rollout(&change(&*store, &widened, &Rollout::Closed, "rollback").await)
        .await
        .expect("rollback")
        .is_some());
    assert!(!store.tenant_flags(&canary).await.expect("flags").expect("known").sync_enabled, "closed holds all");

    assert!(store
        .change_rollout(&change(&*store, &Rollout::Closed, &Rollout::Open, "open").await)
        .await
        .expect("open")
        .is_some());
    let flags = store.tenant_flags(&canary).await.expect("flags").expect("known");
    assert!(flags.sync_enabled && flags.suppliers.values().all(|on| *on), "{flags:?}");
    let result = store
        .apply_batch(&batch(vec![incoming(
            5,
            &offer("canary", "umbrella", "A-1"),
            StockChange::Updated { quantity: 1 },
            0,
            5,
        )]))
        .await
        .expect("apply");
    assert_eq!(result.decisions[0].outcome, Outcome::Applied, "open applies a supplier first seen");

    let history = store.rollout_history(&canary, 10).await.expect("history");
    let steps: Vec<(&str, &str, &str)> = history
        .iter()
        .map(|change| (change.step.as_str(), change.from_stage.as_str(), change.to_stage.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("open", "closed", "open"),
            ("rollback", "widening", "closed"),
            ("widen", "canary", "widening"),
            ("canary", "closed", "canary")
        ],
        "newest first"
    );
    assert_eq!(history[2].suppliers, ["acme", "globex"]);
    assert!(store.rollout(&canary).await.expect("rollout").changed_at.is_some());
}

pub(super) async fn sign_offs_and_applied_items_are_found_since_a_time<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let canary = tenant("canary");
    let events = (0..5u64)
        .map(|n| {
            let sku = format!("S-{}", n % 3);
            incoming(
                n + 1,
                &offer("canary", "acme", &sku),
                StockChange::Updated { quantity: n as i64 },
                n as i64,
                n as i64,
            )
        })
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let applied = store.applied_items_since(&canary, base() + Duration::seconds(1), 10).await.expect("applied");
    let skus: Vec<String> = applied.iter().map(|item| item.sku.to_string()).collect();
    assert_eq!(skus, ["S-1", "S-2", "S-0"], "distinct items, the first applied first");
    assert_eq!(applied[0].item_id, item_id("canary", "S-1"));
    assert_eq!(store.applied_items_since(&canary, base(), 2).await.expect("applied").len(), 2);
    // A hot item's many rows do not crowd the others out of the sample: 61 applied events of
    // A-1, then one each of B-1 and C-1.
    let hot = (0..61u64).map(|n| (n, "A-1")).chain([(61, "B-1"), (62, "C-1")]).map(|(n, sku)| {
        incoming(100 + n, &offer("hot", "acme", sku), StockChange::Updated { quantity: n as i64 }, n as i64, n as i64)
    });
    store.apply_batch(&batch(hot.collect())).await.expect("apply");
    let applied = store.applied_items_since(&tenant("hot"), base(), 3).await.expect("applied");
    let skus: Vec<String> = applied.iter().map(|item| item.sku.to_string()).collect();
    assert_eq!(skus, ["A-1", "B-1", "C-1"], "three distinct items, the first applied first");

    let signed_at = Utc::now();
    let sign_off = SignOff {
        tenant: canary.clone(),
        item_id: applied[0].item_id,
        sku: applied[0].sku.clone(),
        version: 2,
        signed_by: "support-1".to_owned(),
        signed_at,
        note: "matches the supplier's feed".to_owned(),
    };
    let id = store.record_sign_off(&sign_off).await.expect("sign off");
    let kept = store.sign_offs(&canary, signed_at - Duration::seconds(1)).await.expect("sign-offs");
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].sign_off_id, kept[0].version, kept[0].signed_by.as_str()), (id, 2, "support-1"));
    assert!(store.sign_offs(&canary, signed_at + Duration::seconds(1)).await.expect("sign-offs").is_empty());
}
