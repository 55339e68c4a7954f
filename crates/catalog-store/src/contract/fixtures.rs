//! Fixtures the contract cases share: deterministic events and streams, batches, and
//! comparisons with `catalog-core`'s `ReferenceCatalog`.

use std::collections::BTreeMap;
use std::sync::Arc;

use catalog_core::{
    decode, encode, ClockPolicy, Delivery, EventId, ItemKey, OfferKey, OfferState, ReferenceCatalog, Sku, StockChange,
    SupplierEvent, SupplierId, SyncFlags, TenantId,
};
use chrono::{DateTime, Duration, Utc};

use crate::batch::FlagTable;
use crate::{
    BatchInput, CatalogStore, Checkpoint, IncomingEvent, JournalWindow, Position, Provenance, PublishOutcome,
    PublishRecord, SourceRef,
};

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
pub(super) struct Lcg(pub(super) u64);

impl Lcg {
    pub(super) fn next(&mut self, below: u64) -> u64 {
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

/// A message as it arrives from its bytes (valid or not), at source offset `offset`.
pub fn raw_incoming(offset: u64, raw: Vec<u8>, received_second: i64) -> IncomingEvent {
    IncomingEvent {
        delivery: Delivery { decoded: decode(&raw), received_at: base() + Duration::seconds(received_second) },
        payload_length: raw.len() as u64,
        raw,
        source: SourceRef { source: SOURCE.into(), partition: 0, offset: offset as i64 },
        traceparent: Some(
            format!("00-{:032x}-{:016x}-01", offset + 1, offset + 1).parse().expect("a valid traceparent"),
        ),
        provenance: Provenance::Received,
    }
}

/// A batch of `events` that completes [`SOURCE`] up to its last offset.
pub fn batch(events: Vec<IncomingEvent>) -> BatchInput {
    let next_offset = events.iter().map(|event| event.source.offset + 1).max().unwrap_or(0);
    BatchInput::new(
        events,
        vec![Checkpoint { source: SOURCE.to_owned(), partition: 0, position: Position::at(next_offset) }],
    )
}

/// A mixed stream: three suppliers, four SKUs (two spellings of one), both kinds,
/// drifted clocks, exact redeliveries and a poison message every so often.
/// Event ids and source offsets are `first..first + n_events`.
pub(super) fn stream(seed: u64, first: u64, n_events: u64) -> Vec<IncomingEvent> {
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

pub(super) fn deliveries(events: &[IncomingEvent]) -> Vec<Delivery> {
    events.iter().map(|event| event.delivery.clone()).collect()
}

/// How many deliveries of `tenant` the store's journal accounts for: its rows plus the
/// redeliveries counted on them.
pub(super) async fn journal_accounted(store: &dyn CatalogStore, tenant: &TenantId) -> u64 {
    let window = JournalWindow {
        tenant: tenant.clone(),
        since: base() - Duration::days(1),
        until: None,
        supplier: None,
        held_only: false,
    };
    let rows = store.journal_window(&window).await.expect("journal");
    rows.iter().map(|row| 1 + u64::from(row.redelivery_count)).sum()
}

/// The messages of `events` that decode as `tenant`'s.
pub(super) fn messages_of(events: &[IncomingEvent], tenant: &TenantId) -> u64 {
    events.iter().filter(|event| event.delivery.decoded.as_ref().is_ok_and(|e| e.offer().tenant == *tenant)).count()
        as u64
}

/// The store's offers and items of the given tenants, in the reference catalog's shape.
pub(super) async fn snapshot(
    store: &dyn CatalogStore,
    tenants: &[&str],
) -> (BTreeMap<OfferKey, OfferState>, BTreeMap<ItemKey, (i64, u64)>) {
    let mut offers = BTreeMap::new();
    let mut items = BTreeMap::new();
    for tenant in tenants {
        let tenant = TenantId::parse(tenant).expect("valid tenant");
        for item in store.items(&tenant).await.expect("items") {
            let trace = store.item_trace(item.id()).await.expect("trace").expect("item exists");
            for stored in trace.offers {
                assert_eq!(stored.quantity, stored.state.quantity(), "stored offer quantity is derived from its state");
                offers.insert(
                    OfferKey { tenant: tenant.clone(), supplier: stored.supplier, sku: item.sku().clone() },
                    stored.state,
                );
            }
            items
                .insert(ItemKey { tenant: tenant.clone(), sku: item.sku().clone() }, (item.quantity(), item.version()));
        }
    }
    (offers, items)
}

pub(super) fn reference_items(reference: &ReferenceCatalog) -> BTreeMap<ItemKey, (i64, u64)> {
    reference.items().iter().map(|(key, item)| (key.clone(), (item.quantity, item.version))).collect()
}

/// Offers the reference holds that have a non-empty state (the store creates an offer row
/// only when a change is written).
pub(super) fn reference_offers(reference: &ReferenceCatalog) -> BTreeMap<OfferKey, OfferState> {
    reference
        .offers()
        .iter()
        .filter(|(_, state)| **state != OfferState::default())
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect()
}

pub(super) fn store_offers(offers: BTreeMap<OfferKey, OfferState>) -> BTreeMap<OfferKey, OfferState> {
    offers.into_iter().filter(|(_, state)| *state != OfferState::default()).collect()
}

/// One store, called from four tasks at once.
pub(super) fn four_callers_of(store: Arc<dyn CatalogStore>) -> [Arc<dyn CatalogStore>; 4] {
    [Arc::clone(&store), Arc::clone(&store), Arc::clone(&store), store]
}

/// The statement that makes item A-1's storefront outbox row unreadable (a SKU the rules
/// refuse, as one stored before a rule changed would be), for a store's own connection to run
/// between [`queue_two_items`] and [`an_unreadable_outbox_row_is_left_out`].
pub const MAKE_A_1_UNREADABLE: &str = "UPDATE outbox SET sku = 'a 1' WHERE sku = 'A-1'";

/// Queues items A-1 and B-2 of tenant canary (supplier acme) on the storefront, a batch each.
pub async fn queue_two_items(store: &dyn CatalogStore) {
    for (n, sku) in [(1, "A-1"), (2, "B-2")] {
        let event = incoming(n, &offer("canary", "acme", sku), StockChange::Updated { quantity: 4 }, 0, n as i64);
        store.apply_batch(&batch(vec![event])).await.expect("apply");
    }
}

/// After [`MAKE_A_1_UNREADABLE`]: a claim goes on past A-1's row and claims B-2, and the
/// unreadable row stays counted in the outbox, waiting for an operator.
pub async fn an_unreadable_outbox_row_is_left_out(store: &dyn CatalogStore) {
    let claim = crate::OutboxClaim::immediate(10, std::time::Duration::from_secs(60));
    let claimed = store.claim_outbox("storefront", &claim).await.expect("the claim goes on past the row");
    let skus: Vec<String> = claimed.iter().map(|entry| entry.item.sku().to_string()).collect();
    assert_eq!(skus, ["B-2"]);
    let depth = store.outbox_depth().await.expect("depth");
    assert_eq!(depth.iter().map(|depth| depth.pending).sum::<u64>(), 2, "the unreadable row waits for an operator");
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
pub(super) async fn apply_side_by_side(callers: &[Arc<dyn CatalogStore>; 4], parts: Vec<Vec<IncomingEvent>>) {
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
pub(super) async fn assert_matches_the_reference(store: &dyn CatalogStore, events: &[IncomingEvent]) {
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
        .items()
        .iter()
        .filter(|(_, item)| item.quantity != 0)
        .map(|(key, item)| (key.clone(), item.quantity))
        .collect();
    assert_eq!(quantities, expected);
}

/// The record of a send of `entry` that ended in `outcome` (a 202 in 3 ms).
pub fn published(entry: &crate::OutboxEntry, outcome: PublishOutcome) -> PublishRecord {
    PublishRecord {
        claim: entry.claim,
        item_id: entry.item.id(),
        channel: entry.channel.clone(),
        version: entry.item.version(),
        attempt: entry.attempts + 1,
        outcome,
        status: Some(202),
        latency_ms: Some(3),
        error: None,
        dead_letter_reason: None,
        body: None,
        sent: None,
    }
}

/// Claims everything due on the storefront and records each as refused for good (422,
/// dead-lettered): an open dead letter per item.
pub(super) async fn dead_letter_every_due(store: &dyn CatalogStore) {
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    let records: Vec<PublishRecord> = claimed
        .iter()
        .map(|entry| PublishRecord {
            claim: entry.claim,
            dead_letter_reason: Some("rejected_422".into()),
            status: Some(422),
            ..published(entry, PublishOutcome::DeadLettered)
        })
        .collect();
    store.record_publishes(&records).await.expect("record");
}

pub(super) const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) fn immediate(limit: usize) -> crate::OutboxClaim {
    crate::OutboxClaim::immediate(limit, LEASE)
}

/// A rollout change from `from` to `to`, decided now on the stage's time and the tenant's sync
/// switch as the store holds them.
pub async fn rollout_change(
    store: &dyn CatalogStore,
    tenant: &catalog_core::TenantId,
    from: &catalog_core::Rollout,
    to: &catalog_core::Rollout,
    step: &str,
) -> crate::RolloutChange {
    crate::RolloutChange {
        tenant: tenant.clone(),
        from: from.clone(),
        from_since: store.rollout(tenant).await.expect("rollout").changed_at,
        from_sync: store.tenant_flags(tenant).await.expect("flags").map(|flags| flags.sync_enabled),
        to: to.clone(),
        step: step.to_owned(),
        actor: "ops".to_owned(),
        at: Utc::now(),
    }
}
