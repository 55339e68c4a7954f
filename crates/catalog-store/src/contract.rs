//! The store contract suite: written once, run unchanged against every implementation.
//!
//! A store's integration test binary invokes [`store_contract_tests!`] with an async
//! factory `fn(StoreConfig) -> (Arc<dyn CatalogStore>, Guard)`; every case gets a fresh store.
//! The expected state always comes from `catalog-core`'s `ReferenceCatalog`, never from
//! hand-written numbers, so a store that re-decides anything differently fails here.

use std::collections::BTreeMap;
use std::sync::Arc;

use catalog_core::{
    decode, encode, ClockPolicy, Delivery, EventId, ItemKey, OfferKey, OfferState, ReferenceCatalog, Sku, StockChange,
    SupplierEvent, SupplierId, SyncFlags, TenantId,
};
use chrono::{DateTime, Duration, Utc};

use crate::batch::FlagTable;
use crate::{
    BatchInput, CatalogStore, Checkpoint, IncomingEvent, JournalWindow, Provenance, PublishOutcome, PublishRecord,
    SourceRef, StoreConfig,
};

/// Generates one `#[tokio::test]` per contract case, each on a fresh store from `$factory`.
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:path) => {
        $crate::store_contract_tests!(@cases $factory,
            applies_a_batch_like_the_reference,
            random_batches_match_the_reference,
            reapplying_a_committed_batch_changes_nothing,
            redelivery_with_a_different_payload_is_flagged,
            rejected_messages_keep_their_bytes_and_do_not_claim_the_id,
            held_events_are_decided_afresh_once_sync_is_on,
            first_sight_uses_the_configured_default_flag,
            outbox_holds_one_row_per_item_and_channel_at_its_newest_version,
            checkpoints_never_move_backwards,
            item_trace_explains_the_winner,
            journal_window_filters_by_time_and_supplier,
            sync_status_counts_outcomes,
            concurrent_batches_on_overlapping_keys_are_exact,
            concurrent_first_writes_of_new_offers_are_exact,
            outbox_claims_the_newest_version_and_coalesces_older_ones,
            a_version_queued_while_one_is_out_goes_once_that_one_is_recorded,
            a_retried_publish_is_due_again_and_counts_its_attempts,
            a_dead_lettered_publish_leaves_the_outbox_with_its_reason,
            a_round_of_records_has_each_outcome_s_effect,
            concurrent_claims_never_hand_out_the_same_item,
            a_burst_settles_into_one_claim_and_a_hot_item_is_not_starved,
            a_preview_decides_like_apply_and_leaves_nothing,
            republish_queues_the_current_version_again,
        );
    };
    (@cases $factory:path, $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::contract::$case($factory).await;
            }
        )*
    };
}

/// What a factory returns: the store, and whatever must live as long as it (a temp dir,
/// a database dropped on drop).
pub type Fresh<G> = (Arc<dyn CatalogStore>, G);

/// The time every fixture event is relative to.
pub fn base() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().expect("valid time")
}

/// The source name fixture events and batches carry.
pub const SOURCE: &str = "test:contract";

/// A small, deterministic generator: the suite needs no randomness crate and every run is the same.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// An offer key from valid parts.
pub fn offer(tenant: &str, supplier: &str, sku: &str) -> OfferKey {
    OfferKey {
        tenant: TenantId::parse(tenant).expect("valid tenant"),
        supplier: SupplierId::parse(supplier).expect("valid supplier"),
        sku: Sku::parse(sku).expect("valid sku"),
    }
}

/// The `n`-th fixture event id.
pub fn event_id(n: u64) -> EventId {
    EventId(uuid::Uuid::from_u128(u128::from(n) * 0x1_0000_0001))
}

/// An event as it arrives, through the wire format, at source offset `n`.
pub fn incoming(
    n: u64,
    offer: &OfferKey,
    change: StockChange,
    updated_second: i64,
    received_second: i64,
) -> IncomingEvent {
    let event =
        SupplierEvent::new(event_id(n), offer.clone(), change, base() + Duration::seconds(updated_second), Some(n))
            .expect("valid event");
    raw_incoming(n, encode(&event).into_bytes(), received_second)
}

fn raw_incoming(offset: u64, raw: Vec<u8>, received_second: i64) -> IncomingEvent {
    IncomingEvent {
        delivery: Delivery { decoded: decode(&raw), received_at: base() + Duration::seconds(received_second) },
        raw,
        source: SourceRef { source: SOURCE.into(), partition: 0, offset: offset as i64 },
        traceparent: Some(format!("00-{:032x}-{:016x}-01", offset + 1, offset + 1)),
        provenance: Provenance::Received,
    }
}

/// A batch of `events` that completes [`SOURCE`] up to its last offset.
pub fn batch(events: Vec<IncomingEvent>) -> BatchInput {
    let next_offset = events.iter().map(|event| event.source.offset + 1).max().unwrap_or(0);
    BatchInput { events, checkpoints: vec![Checkpoint { source: SOURCE.to_owned(), partition: 0, next_offset }] }
}

/// A mixed stream: three suppliers, four SKUs (two spellings of one), both kinds,
/// drifted clocks, exact redeliveries and a poison message every so often.
/// Event ids and source offsets are `first..first + n_events`.
fn stream(seed: u64, first: u64, n_events: u64) -> Vec<IncomingEvent> {
    let mut rng = Lcg(seed);
    let skus = ["SKU-1", " sku-1 ", "SKU-2", "SKU-3.A"];
    let mut events: Vec<IncomingEvent> = Vec::new();
    for n in first..first + n_events {
        if rng.next(25) == 0 {
            events.push(raw_incoming(n, format!("{{\"poison\": {n}").into_bytes(), 0));
            continue;
        }
        if n > first && rng.next(8) == 0 {
            let mut repeat = events[rng.next(events.len() as u64) as usize].clone();
            repeat.source.offset = n as i64;
            events.push(repeat);
            continue;
        }
        let key = offer(
            ["canary", "t2"][rng.next(2) as usize],
            ["acme", "globex", "initech"][rng.next(3) as usize],
            skus[rng.next(4) as usize],
        );
        let change = if rng.next(3) == 0 {
            StockChange::Adjusted { delta: rng.next(11) as i64 - 5 + i64::from(rng.next(11) == 5) }
        } else {
            StockChange::Updated { quantity: rng.next(40) as i64 }
        };
        let change = match change {
            StockChange::Adjusted { delta: 0 } => StockChange::Adjusted { delta: 1 },
            other => other,
        };
        // One event in ten comes from a clock an hour ahead: clamped.
        let drift = if rng.next(10) == 0 { 3_600 } else { 0 };
        events.push(incoming(n, &key, change, rng.next(20) as i64 + drift, rng.next(20) as i64));
    }
    events
}

fn deliveries(events: &[IncomingEvent]) -> Vec<Delivery> {
    events.iter().map(|event| event.delivery.clone()).collect()
}

/// The store's offers and items of the given tenants, in the reference catalog's shape.
async fn snapshot(
    store: &dyn CatalogStore,
    tenants: &[&str],
) -> (BTreeMap<OfferKey, OfferState>, BTreeMap<ItemKey, (i64, u64)>) {
    let mut offers = BTreeMap::new();
    let mut items = BTreeMap::new();
    for tenant in tenants {
        let tenant = TenantId::parse(tenant).expect("valid tenant");
        for item in store.items(&tenant).await.expect("items") {
            let trace = store.item_trace(item.item_id).await.expect("trace").expect("item exists");
            for stored in trace.offers {
                assert_eq!(stored.quantity, stored.state.quantity(), "stored offer quantity is derived from its state");
                offers.insert(
                    OfferKey { tenant: tenant.clone(), supplier: stored.supplier, sku: item.sku.clone() },
                    stored.state,
                );
            }
            items.insert(ItemKey { tenant: tenant.clone(), sku: item.sku.clone() }, (item.quantity, item.version));
        }
    }
    (offers, items)
}

fn reference_items(reference: &ReferenceCatalog) -> BTreeMap<ItemKey, (i64, u64)> {
    reference.items.iter().map(|(key, item)| (key.clone(), (item.quantity, item.version))).collect()
}

/// Offers the reference holds that have a non-empty state (the store creates an offer row
/// only when a change is written).
fn reference_offers(reference: &ReferenceCatalog) -> BTreeMap<OfferKey, OfferState> {
    reference
        .offers
        .iter()
        .filter(|(_, state)| **state != OfferState::default())
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect()
}

fn store_offers(offers: BTreeMap<OfferKey, OfferState>) -> BTreeMap<OfferKey, OfferState> {
    offers.into_iter().filter(|(_, state)| *state != OfferState::default()).collect()
}

pub async fn applies_a_batch_like_the_reference<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    store.migrate().await.expect("migrations are idempotent");
    let events = stream(1, 0, 60);
    let result = store.apply_batch(&batch(events.clone())).await.expect("apply");

    let mut reference = ReferenceCatalog::default();
    let plan = reference.apply(
        &deliveries(&events),
        &FlagTable { default_enabled: true, ..FlagTable::default() },
        ClockPolicy::default(),
    );
    assert_eq!(result.decisions, plan.decisions);
    let changed: Vec<_> = result.changed_items.iter().map(|item| (item.item_id, item.quantity, item.version)).collect();
    let expected: Vec<_> =
        plan.items.values().map(|change| (change.item_id, change.state.quantity, change.state.version)).collect();
    assert_eq!(changed, expected);
    let (offers, items) = snapshot(&*store, &["canary", "t2"]).await;
    assert_eq!(store_offers(offers), reference_offers(&reference));
    assert_eq!(items, reference_items(&reference));
}

pub async fn random_batches_match_the_reference<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let flags = FlagTable { default_enabled: true, ..FlagTable::default() };
    let mut reference = ReferenceCatalog::default();
    let mut rng = Lcg(7);
    let events = stream(2, 0, 400);
    let mut rest = events.as_slice();
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at((rng.next(60) as usize + 1).min(rest.len()));
        rest = tail;
        let result = store.apply_batch(&batch(chunk.to_vec())).await.expect("apply");
        let plan = reference.apply(&deliveries(chunk), &flags, ClockPolicy::default());
        assert_eq!(result.decisions, plan.decisions);
    }
    let (offers, items) = snapshot(&*store, &["canary", "t2"]).await;
    assert_eq!(store_offers(offers), reference_offers(&reference));
    assert_eq!(items, reference_items(&reference));
}

pub async fn reapplying_a_committed_batch_changes_nothing<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let events: Vec<_> = stream(3, 0, 80).into_iter().filter(|event| event.delivery.decoded.is_ok()).collect();
    let input = batch(events.clone());
    store.apply_batch(&input).await.expect("first apply");
    let before = snapshot(&*store, &["canary", "t2"]).await;

    let again = store.apply_batch(&input).await.expect("second apply");
    assert!(again.changed_items.is_empty(), "a re-applied batch changes no item");
    assert!(again.decisions.iter().all(|decision| decision.outcome.as_str() == "duplicate"));
    assert_eq!(snapshot(&*store, &["canary", "t2"]).await, before);

    // Every delivery is accounted for once: journal rows plus redeliveries counted on them.
    let tenant = TenantId::parse("canary").expect("valid");
    let rows = store
        .journal_window(&JournalWindow {
            tenant: tenant.clone(),
            since: base() - Duration::days(1),
            until: None,
            supplier: None,
        })
        .await
        .expect("journal");
    let canary_deliveries =
        events.iter().filter(|event| event.delivery.decoded.as_ref().is_ok_and(|e| e.offer().tenant == tenant)).count();
    let accounted: u64 = rows.iter().map(|row| 1 + u64::from(row.redelivery_count)).sum();
    assert_eq!(accounted, 2 * canary_deliveries as u64);
}

pub async fn redelivery_with_a_different_payload_is_flagged<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    let first = incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, 1);
    let mut changed = incoming(1, &key, StockChange::Updated { quantity: 55 }, 0, 2);
    changed.source.offset = 2;
    store.apply_batch(&batch(vec![first])).await.expect("apply");
    let result = store.apply_batch(&batch(vec![changed])).await.expect("apply");
    assert_eq!(result.decisions[0].outcome.as_str(), "duplicate");
    assert_eq!(result.decisions[0].reason(), Some("payload_differs"));

    let item = store.item(key.item_key().item_id()).await.expect("item").expect("exists");
    assert_eq!(item.quantity, 10, "the first accepted payload counts");
    let trace = store.item_trace(item.item_id).await.expect("trace").expect("exists");
    assert_eq!(trace.events.len(), 1);
    assert!(trace.events[0].payload_differs);
    assert_eq!(trace.events[0].redelivery_count, 1);
}

pub async fn rejected_messages_keep_their_bytes_and_do_not_claim_the_id<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    let good = incoming(1, &key, StockChange::Updated { quantity: 3 }, 0, 1);
    let bad_raw = String::from_utf8(good.raw.clone()).expect("utf-8").replace("ABC-1", "ABC 1").into_bytes();
    let bad = raw_incoming(0, bad_raw.clone(), 0);
    let result = store.apply_batch(&batch(vec![bad, good])).await.expect("apply");
    let outcomes: Vec<_> = result.decisions.iter().map(|decision| decision.outcome.to_string()).collect();
    assert_eq!(outcomes, ["rejected(malformed_sku)", "applied"]);

    let rows = store
        .journal_window(&JournalWindow {
            tenant: key.tenant.clone(),
            since: base() - Duration::days(1),
            until: None,
            supplier: None,
        })
        .await
        .expect("journal");
    let rejected = rows.iter().find(|row| row.outcome.as_str() == "rejected").expect("the rejection is journaled");
    assert_eq!(rejected.raw_payload.as_deref(), Some(bad_raw.as_slice()));
    assert_eq!(rejected.reason.as_deref(), Some("malformed_sku"));
    assert!(rejected.detail.as_deref().is_some_and(|detail| detail.contains("ABC 1")));
    assert_eq!(rejected.event_id, Some(event_id(1)));
    assert_eq!(rows.len(), 2);
}

pub async fn held_events_are_decided_afresh_once_sync_is_on<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    store.set_supplier_sync(&key.tenant, &key.supplier, false).await.expect("flag");
    let event = incoming(1, &key, StockChange::Updated { quantity: 9 }, 0, 1);
    let held = store.apply_batch(&batch(vec![event.clone()])).await.expect("apply");
    assert_eq!(held.decisions[0].outcome.to_string(), "held(supplier_sync_off)");
    assert!(held.changed_items.is_empty());
    let flags = store.tenant_flags(&key.tenant).await.expect("flags").expect("tenant exists");
    assert!(flags.sync_enabled);
    assert_eq!(flags.suppliers.get(&key.supplier), Some(&false));

    store.set_supplier_sync(&key.tenant, &key.supplier, true).await.expect("flag");
    let mut redelivered = event;
    redelivered.provenance = Provenance::Replayed;
    let applied = store.apply_batch(&batch(vec![redelivered])).await.expect("apply");
    assert_eq!(applied.decisions[0].outcome.as_str(), "applied");
    assert_eq!(applied.changed_items.len(), 1);
    let trace = store.item_trace(key.item_key().item_id()).await.expect("trace").expect("exists");
    assert_eq!(trace.events.len(), 1, "the held row is decided in place");
    assert_eq!(trace.events[0].outcome.as_str(), "applied");
    assert_eq!(trace.events[0].redelivery_count, 0, "a replay is not a redelivery");
}

pub async fn first_sight_uses_the_configured_default_flag<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig { default_sync_enabled: false, ..StoreConfig::default() }).await;
    let key = offer("newbie", "acme", "ABC-1");
    let result = store
        .apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 4 }, 0, 1)]))
        .await
        .expect("apply");
    assert_eq!(result.decisions[0].outcome.to_string(), "held(tenant_sync_off)");
    let flags = store.tenant_flags(&key.tenant).await.expect("flags").expect("created on first sight");
    assert!(!flags.sync_enabled);
    assert_eq!(flags.suppliers.get(&key.supplier), Some(&false));
    assert!(store.tenant_flags(&TenantId::parse("never-seen").expect("valid")).await.expect("flags").is_none());
}

pub async fn outbox_holds_one_row_per_item_and_channel_at_its_newest_version<G, F>(
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
    assert_eq!(trace.item.version, 2, "an applied event that leaves the quantity alone makes no version");
}

pub async fn checkpoints_never_move_backwards<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let at = |partition, next_offset| Checkpoint { source: "kafka:g:t".to_owned(), partition, next_offset };
    store
        .apply_batch(&BatchInput { events: vec![], checkpoints: vec![at(0, 10), at(1, 5), at(0, 12)] })
        .await
        .expect("apply");
    store.apply_batch(&BatchInput { events: vec![], checkpoints: vec![at(0, 3), at(1, 7)] }).await.expect("apply");
    let mut stored = store.checkpoints("kafka:g:t").await.expect("checkpoints");
    stored.sort();
    assert_eq!(stored, [at(0, 12), at(1, 7)]);
    assert!(store.checkpoints("kafka:other:t").await.expect("checkpoints").is_empty());
}

pub async fn item_trace_explains_the_winner<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = offer("canary", "acme", "ABC-1");
    let globex = offer("canary", "globex", "abc-1");
    let events = vec![
        incoming(1, &acme, StockChange::Updated { quantity: 7 }, 5, 6),
        incoming(2, &acme, StockChange::Updated { quantity: 10 }, 1, 7),
        incoming(3, &acme, StockChange::Adjusted { delta: -2 }, 6, 8),
        incoming(4, &globex, StockChange::Updated { quantity: 5 }, 1, 9),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let trace = store.item_trace(acme.item_key().item_id()).await.expect("trace").expect("exists");
    assert_eq!((trace.item.quantity, trace.item.version), (10, 1));
    let offers: Vec<_> = trace.offers.iter().map(|o| (o.supplier.to_string(), o.quantity, o.winner)).collect();
    assert_eq!(offers, [("acme".to_owned(), 5, Some(event_id(3))), ("globex".to_owned(), 5, Some(event_id(4)))]);
    let events: Vec<_> =
        trace.events.iter().map(|e| (e.event_id, e.outcome.as_str(), e.traceparent.is_some())).collect();
    assert_eq!(
        events,
        [
            (Some(event_id(2)), "stale", true),
            (Some(event_id(4)), "applied", true),
            (Some(event_id(1)), "applied", true),
            (Some(event_id(3)), "applied", true)
        ],
        "events in ordering-key order"
    );
    assert!(store
        .item_trace(ItemKey { tenant: acme.tenant.clone(), sku: Sku::parse("NONE").expect("valid") }.item_id())
        .await
        .expect("trace")
        .is_none());
}

pub async fn journal_window_filters_by_time_and_supplier<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = offer("canary", "acme", "ABC-1");
    let globex = offer("canary", "globex", "ABC-1");
    let other = offer("t2", "acme", "ABC-1");
    let events = vec![
        incoming(1, &acme, StockChange::Updated { quantity: 1 }, 0, 10),
        incoming(2, &globex, StockChange::Updated { quantity: 2 }, 0, 20),
        incoming(3, &acme, StockChange::Updated { quantity: 3 }, 0, 30),
        incoming(4, &other, StockChange::Updated { quantity: 4 }, 0, 20),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let window = |since: i64, until: Option<i64>, supplier: Option<&SupplierId>| JournalWindow {
        tenant: acme.tenant.clone(),
        since: base() + Duration::seconds(since),
        until: until.map(|until| base() + Duration::seconds(until)),
        supplier: supplier.cloned(),
    };
    let ids = |rows: Vec<crate::JournalEntry>| rows.into_iter().map(|row| row.event_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.journal_window(&window(0, None, None)).await.expect("journal")),
        [Some(event_id(1)), Some(event_id(2)), Some(event_id(3))]
    );
    assert_eq!(
        ids(store.journal_window(&window(10, Some(30), None)).await.expect("journal")),
        [Some(event_id(1)), Some(event_id(2))]
    );
    assert_eq!(
        ids(store.journal_window(&window(0, None, Some(&acme.supplier))).await.expect("journal")),
        [Some(event_id(1)), Some(event_id(3))]
    );
    assert!(store.journal_window(&window(31, None, None)).await.expect("journal").is_empty());
}

pub async fn sync_status_counts_outcomes<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    let first = incoming(1, &key, StockChange::Updated { quantity: 5 }, 5, 10);
    let events = vec![
        first.clone(),
        incoming(2, &key, StockChange::Updated { quantity: 6 }, 1, 11),
        first,
        raw_incoming(9, br#"{"tenant_id":"canary"}"#.to_vec(), 12),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let status = store.sync_status(&key.tenant).await.expect("status").expect("tenant exists");
    let counts: Vec<_> = status.events_by_outcome.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(counts, [("applied", 1), ("rejected", 1), ("stale", 1)]);
    assert_eq!(status.redeliveries, 1);
    assert_eq!(status.n_items, 1);
    assert_eq!(status.outbox_pending, 1);
    assert_eq!(status.last_received_at, Some(base() + Duration::seconds(12)));
    assert_eq!(status.last_applied_at, Some(base() + Duration::seconds(10)));
    assert!(store.sync_status(&TenantId::parse("nobody").expect("valid")).await.expect("status").is_none());
}

pub async fn concurrent_batches_on_overlapping_keys_are_exact<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    concurrent_callers_are_exact(&four_callers_of(store)).await;
}

/// One store, called from four tasks at once.
fn four_callers_of(store: Arc<dyn CatalogStore>) -> [Arc<dyn CatalogStore>; 4] {
    [Arc::clone(&store), Arc::clone(&store), Arc::clone(&store), store]
}

/// Four callers apply rounds of batches on the same few offers and items at once, some
/// events delivered to two of them; the result must equal the reference's. Callers may be
/// one store or several stores on one database (separate processes' worth of caches).
pub async fn concurrent_callers_are_exact(callers: &[Arc<dyn CatalogStore>; 4]) {
    const CALLERS: usize = 4;
    let mut all = Vec::new();
    for round in 0..40u64 {
        // Four callers on the same few offers and items, some events delivered to two of them.
        let events = stream(100 + round, 1_000 * round, 80);
        let mut parts: Vec<Vec<IncomingEvent>> = vec![Vec::new(); CALLERS];
        for (n, event) in events.iter().enumerate() {
            parts[n % CALLERS].push(event.clone());
            if n % 7 == 0 {
                parts[(n + 1) % CALLERS].push(event.clone());
            }
        }
        parts[1].reverse();
        all.extend(parts.iter().flatten().cloned());
        apply_side_by_side(callers, parts).await;
    }
    assert_matches_the_reference(&*callers[0], &all).await;
}

pub async fn concurrent_first_writes_of_new_offers_are_exact<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    concurrent_creators_are_exact(&four_callers_of(store)).await;
}

/// Round after round, four callers each send a snapshot of the same brand-new offers (and so
/// items) at once, each with its own `updated_at`: every caller plans them as new, and the
/// writes of all but the first to commit must find the row there and lose, not overwrite it.
pub async fn concurrent_creators_are_exact(callers: &[Arc<dyn CatalogStore>; 4]) {
    const CALLERS: u64 = 4;
    let suppliers = ["acme", "globex", "initech"];
    let mut all = Vec::new();
    for round in 0..30_u64 {
        let parts: Vec<Vec<IncomingEvent>> = (0..CALLERS)
            .map(|caller| {
                let mut part = Vec::new();
                for (n_supplier, supplier) in (0_u64..).zip(suppliers) {
                    for sku in 0..2_u64 {
                        let n = round * 1_000 + caller * 100 + n_supplier * 10 + sku;
                        let key = offer("canary", supplier, &format!("NEW-{round}-{sku}"));
                        // Which caller's snapshot is newest differs from offer to offer.
                        let updated_second = ((caller + n_supplier + sku) % CALLERS) as i64;
                        part.push(incoming(
                            n,
                            &key,
                            StockChange::Updated { quantity: n as i64 % 37 },
                            updated_second,
                            0,
                        ));
                    }
                }
                part
            })
            .collect();
        all.extend(parts.iter().flatten().cloned());
        apply_side_by_side(callers, parts).await;
    }
    assert_matches_the_reference(&*callers[0], &all).await;
}

/// Applies each part as one batch through its own caller, all at once.
async fn apply_side_by_side(callers: &[Arc<dyn CatalogStore>; 4], parts: Vec<Vec<IncomingEvent>>) {
    let mut running = tokio::task::JoinSet::new();
    for (part, store) in parts.into_iter().zip(callers) {
        let store = Arc::clone(store);
        running.spawn(async move { store.apply_batch(&batch(part)).await });
    }
    while let Some(result) = running.join_next().await {
        result.expect("task").expect("concurrent apply");
    }
}

/// The store's offers equal the reference's for `events`, and so do the non-zero item
/// quantities (versions depend on how callers interleaved; quantities must not, and an
/// item that never left zero in one history may have a row at zero in the other).
async fn assert_matches_the_reference(store: &dyn CatalogStore, events: &[IncomingEvent]) {
    let flags: &dyn SyncFlags = &FlagTable { default_enabled: true, ..FlagTable::default() };
    let mut reference = ReferenceCatalog::default();
    reference.apply(&deliveries(events), flags, ClockPolicy::default());
    let (offers, items) = snapshot(store, &["canary", "t2"]).await;
    assert_eq!(store_offers(offers), reference_offers(&reference));
    let quantities: BTreeMap<_, _> = items
        .iter()
        .filter(|(_, (quantity, _))| *quantity != 0)
        .map(|(key, (quantity, _))| (key.clone(), *quantity))
        .collect();
    let expected: BTreeMap<_, _> = reference
        .items
        .iter()
        .filter(|(_, item)| item.quantity != 0)
        .map(|(key, item)| (key.clone(), item.quantity))
        .collect();
    assert_eq!(quantities, expected);
}

fn published(entry: &crate::OutboxEntry, outcome: PublishOutcome) -> PublishRecord {
    PublishRecord {
        item_id: entry.item_id,
        channel: entry.channel.clone(),
        version: entry.version,
        attempt: entry.attempts + 1,
        outcome,
        status: Some(202),
        latency_ms: Some(3),
        error: None,
        dead_letter_reason: None,
        body: None,
    }
}

const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

fn immediate(limit: usize) -> crate::OutboxClaim {
    crate::OutboxClaim::immediate(limit, LEASE)
}

pub async fn outbox_claims_the_newest_version_and_coalesces_older_ones<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
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

    let mut claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    claimed.sort_by_key(|entry| entry.sku.to_string());
    let summary: Vec<_> = claimed.iter().map(|e| (e.sku.to_string(), e.quantity, e.version, e.attempts)).collect();
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

pub async fn a_version_queued_while_one_is_out_goes_once_that_one_is_recorded<G, F>(
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
    out.sort_by_key(|entry| entry.sku.to_string());
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
    next.sort_by_key(|entry| entry.sku.to_string());
    let next_summary: Vec<_> = next.iter().map(|e| (e.sku.to_string(), e.quantity, e.version, e.attempts)).collect();
    assert_eq!(
        next_summary,
        [("A-1".to_owned(), 5, 2, 0), ("B-1".to_owned(), 6, 2, 1)],
        "A's new version is a fresh run; B's retry carries its newest version and counts the failure"
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

pub async fn a_retried_publish_is_due_again_and_counts_its_attempts<G, F>(factory: impl FnOnce(StoreConfig) -> F)
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

    let later = published(&again[0], PublishOutcome::RetryAt(Utc::now() + Duration::hours(1)));
    store.record_publish(&later).await.expect("record");
    assert!(
        store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty(),
        "not due before its time"
    );
    let trace = store.item_trace(a.item_key().item_id()).await.expect("trace").expect("exists");
    let attempts: Vec<_> =
        trace.publish_attempts.iter().map(|p| (p.attempt, p.result.as_str(), p.error.clone())).collect();
    assert_eq!(attempts, [(1, "retry", Some("service unavailable".to_owned())), (2, "retry", None)]);
}

pub async fn a_dead_lettered_publish_leaves_the_outbox_with_its_reason<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
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

pub async fn a_round_of_records_has_each_outcome_s_effect<G, F>(factory: impl FnOnce(StoreConfig) -> F)
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
    claimed.sort_by_key(|entry| entry.sku.to_string());
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
    let again: Vec<_> = again.iter().map(|entry| (entry.sku.to_string(), entry.attempts)).collect();
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

pub async fn concurrent_claims_never_hand_out_the_same_item<G, F>(factory: impl FnOnce(StoreConfig) -> F)
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
                mine.extend(claimed.into_iter().map(|entry| entry.item_id));
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
        })
        .collect();
    store.record_publishes(&records).await.expect("record a round");
    assert_eq!(store.outbox_depth().await.expect("depth").iter().map(|d| d.pending).sum::<u64>(), 0);
    assert_eq!(store.stale_items("storefront").await.expect("stale"), 0);
}

pub async fn a_burst_settles_into_one_claim_and_a_hot_item_is_not_starved<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
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
        claimed.iter().map(|e| e.version).collect::<Vec<_>>(),
        [2],
        "waited long enough: the newest version goes"
    );
}

pub async fn a_preview_decides_like_apply_and_leaves_nothing<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let events = stream(9, 0, 40);
    let preview = store.preview_batch(&batch(events.clone())).await.expect("preview");
    assert!(store.items(&TenantId::parse("canary").expect("valid")).await.expect("items").is_empty());
    assert!(store.checkpoints(SOURCE).await.expect("checkpoints").is_empty());
    assert!(store.tenant_flags(&TenantId::parse("canary").expect("valid")).await.expect("flags").is_none());
    let applied = store.apply_batch(&batch(events)).await.expect("apply");
    assert_eq!(preview, applied);
}

pub async fn republish_queues_the_current_version_again<G, F>(factory: impl FnOnce(StoreConfig) -> F)
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
    assert_eq!(claimed.iter().map(|e| (e.item_id, e.version, e.quantity)).collect::<Vec<_>>(), [(item_id, 2, 6)]);
}
