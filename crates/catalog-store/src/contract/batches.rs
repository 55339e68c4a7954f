//! Contract cases of `BatchStore`: batches applied as the reference applies them, exactly
//! once, concurrently, previewed, with checkpoints that never move back.

use catalog_core::{ClockPolicy, ReferenceCatalog, StockChange, TenantId};
use chrono::Duration;

use super::fixtures::*;
use crate::batch::FlagTable;
use crate::{BatchInput, Checkpoint, IncomingEvent, JournalWindow, Position, StoreConfig, RAW_PAYLOAD_PREFIX_BYTES};

pub(super) async fn applies_a_batch_like_the_reference<G, F>(factory: impl FnOnce(StoreConfig) -> F)
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
    let changed: Vec<_> = result
        .changed_items
        .iter()
        .map(|changed| (changed.item.id(), changed.item.quantity(), changed.item.version()))
        .collect();
    let expected: Vec<_> =
        plan.items.values().map(|change| (change.item_id, change.state.quantity, change.state.version)).collect();
    assert_eq!(changed, expected);
    let (offers, items) = snapshot(&*store, &["canary", "t2"]).await;
    assert_eq!(store_offers(offers), reference_offers(&reference));
    assert_eq!(items, reference_items(&reference));
}

pub(super) async fn random_batches_match_the_reference<G, F>(factory: impl FnOnce(StoreConfig) -> F)
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

pub(super) async fn reapplying_a_committed_batch_changes_nothing<G, F>(factory: impl FnOnce(StoreConfig) -> F)
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
    assert_eq!(journal_accounted(&*store, &tenant).await, 2 * messages_of(&events, &tenant));
}

pub(super) async fn redelivery_with_a_different_payload_is_flagged<G, F>(factory: impl FnOnce(StoreConfig) -> F)
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
    assert_eq!(item.quantity(), 10, "the first accepted payload counts");
    let trace = store.item_trace(item.id()).await.expect("trace").expect("exists");
    assert_eq!(trace.events.len(), 1);
    assert!(trace.events[0].payload_differs);
    assert_eq!(trace.events[0].redelivery_count, 1);
}

pub(super) async fn rejected_messages_keep_their_bytes_and_do_not_claim_the_id<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
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
            held_only: false,
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

pub(super) async fn a_rejected_message_keeps_a_prefix_of_its_bytes_and_its_length<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let tenant = TenantId::parse("canary").expect("valid tenant");
    // 64 KiB of a valid event's fields and a malformed SKU: rejected, with its tenant known.
    let padding = "x".repeat(60 * 1024);
    let large = format!(
        r#"{{"padding":"{padding}","event_id":"{}","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"AB C","quantity":1,"updated_at":"2026-06-01T12:00:00Z"}}"#,
        event_id(1)
    )
    .into_bytes();
    let small = br#"{"tenant_id":"canary"}"#.to_vec();
    // A source that kept only the first bytes of a longer message tells its whole length.
    let mut cut = raw_incoming(1, small.clone(), 0);
    cut.payload_length = 10 * 1024 * 1024;
    let result = store
        .apply_batch(&batch(vec![raw_incoming(0, large.clone(), 0), cut, raw_incoming(2, small.clone(), 0)]))
        .await
        .expect("apply");
    assert!(result.decisions.iter().all(|decision| decision.outcome.as_str() == "rejected"));

    let window =
        JournalWindow { tenant, since: base() - Duration::days(1), until: None, supplier: None, held_only: false };
    let mut rows = store.journal_window(&window).await.expect("journal");
    rows.sort_by_key(|row| row.source.offset);
    let kept: Vec<(Option<usize>, Option<u64>)> =
        rows.iter().map(|row| (row.raw_payload.as_ref().map(Vec::len), row.raw_payload_length)).collect();
    assert_eq!(
        kept,
        [
            (Some(RAW_PAYLOAD_PREFIX_BYTES), Some(large.len() as u64)),
            (Some(small.len()), Some(10 * 1024 * 1024)),
            (Some(small.len()), Some(small.len() as u64)),
        ]
    );
    assert_eq!(
        rows[0].raw_payload.as_deref(),
        Some(&large[..RAW_PAYLOAD_PREFIX_BYTES]),
        "the first bytes, as received"
    );
    assert_eq!(rows[2].raw_payload.as_deref(), Some(small.as_slice()), "a short message is kept whole");
}

pub(super) async fn checkpoints_never_move_backwards<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let at =
        |partition, offset| Checkpoint { source: "kafka:g:t".to_owned(), partition, position: Position::at(offset) };
    let with_cursor = |partition, offset, cursor: &str| Checkpoint {
        position: Position { offset, cursor: Some(cursor.to_owned()) },
        ..at(partition, offset)
    };
    store.apply_batch(&BatchInput::new(vec![], vec![at(0, 10), at(1, 5), at(0, 12)])).await.expect("apply");
    store.apply_batch(&BatchInput::new(vec![], vec![at(0, 3), with_cursor(1, 7, "page-7")])).await.expect("apply");
    let mut stored = store.checkpoints("kafka:g:t").await.expect("checkpoints");
    stored.sort();
    assert_eq!(stored, [at(0, 12), with_cursor(1, 7, "page-7")]);
    // A cursor travels with the furthest offset: an older position does not replace it.
    store.apply_batch(&BatchInput::new(vec![], vec![with_cursor(1, 6, "page-6")])).await.expect("apply");
    let mut stored = store.checkpoints("kafka:g:t").await.expect("checkpoints");
    stored.sort();
    assert_eq!(stored, [at(0, 12), with_cursor(1, 7, "page-7")]);
    assert!(store.checkpoints("kafka:other:t").await.expect("checkpoints").is_empty());
}

/// A checkpoint moves back only when rewound, and only from where it stands (decision 0040):
/// then what lies below its old position is applied, no longer taken for applied.
pub(super) async fn a_checkpoint_moves_back_only_when_rewound_from_where_it_stands<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let at = |offset| Checkpoint { source: SOURCE.to_owned(), partition: 0, position: Position::at(offset) };
    let beyond = Checkpoint { position: Position { offset: 1_000, cursor: Some("old".to_owned()) }, ..at(1_000) };
    store.apply_batch(&BatchInput::new(vec![], vec![beyond.clone()])).await.expect("apply");
    let key = offer("canary", "acme", "ABC-1");
    let event = incoming(5, &key, StockChange::Updated { quantity: 4 }, 0, 1);
    let fenced = store.apply_batch(&batch(vec![event.clone()]).skipping_applied()).await.expect("apply");
    assert_eq!(fenced.applied_before, [0], "below the checkpoint: taken for applied");

    assert!(!store.rewind_checkpoint(SOURCE, 0, 999, &Position::at(0)).await.expect("rewind"), "not where it stands");
    assert!(!store.rewind_checkpoint(SOURCE, 1, 1_000, &Position::at(0)).await.expect("rewind"), "no such partition");
    assert!(
        !store.rewind_checkpoint("kafka:other:t", 0, 1_000, &Position::at(0)).await.expect("rewind"),
        "no such source"
    );
    assert_eq!(store.checkpoints(SOURCE).await.expect("checkpoints"), [beyond]);
    assert!(store.rewind_checkpoint(SOURCE, 0, 1_000, &Position::at(2)).await.expect("rewind"));
    assert_eq!(store.checkpoints(SOURCE).await.expect("checkpoints"), [at(2)], "moved back, cursor cleared");
    assert!(!store.rewind_checkpoint(SOURCE, 0, 1_000, &Position::at(2)).await.expect("rewind"), "once");

    let applied = store.apply_batch(&batch(vec![event]).skipping_applied()).await.expect("apply");
    assert!(applied.applied_before.is_empty(), "{:?}", applied.applied_before);
    assert_eq!(applied.decisions[0].outcome.as_str(), "applied");
    assert_eq!(store.checkpoints(SOURCE).await.expect("checkpoints"), [at(6)]);
}

pub(super) async fn concurrent_batches_on_overlapping_keys_are_exact<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    concurrent_callers_are_exact(&four_callers_of(store)).await;
}

pub(super) async fn concurrent_first_writes_of_new_offers_are_exact<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    concurrent_creators_are_exact(&four_callers_of(store)).await;
}

pub(super) async fn a_preview_decides_like_apply_and_leaves_nothing<G, F>(factory: impl FnOnce(StoreConfig) -> F)
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

pub(super) async fn an_offer_of_adjustments_only_is_folded_and_stored_like_the_reference<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ADJ-1");
    // One adjustment every two minutes for three days: most of them end up folded.
    let events: Vec<IncomingEvent> = (0..2_160_u64)
        .map(|n| {
            let delta = if n % 3 == 0 { 3 } else { -1 };
            incoming(n, &key, StockChange::Adjusted { delta }, (n * 120) as i64, (n * 120) as i64)
        })
        .collect();
    let mut reference = ReferenceCatalog::default();
    let flags = FlagTable { default_enabled: true, ..FlagTable::default() };
    for chunk in events.chunks(500) {
        let result = store.apply_batch(&batch(chunk.to_vec())).await.expect("apply");
        let plan = reference.apply(&deliveries(chunk), &flags, ClockPolicy::default());
        assert_eq!(result.decisions, plan.decisions);
    }
    let (offers, items) = snapshot(&*store, &["canary"]).await;
    let stored = offers.get(&key).expect("the offer is stored");
    assert!(stored.folded().is_some(), "three days of adjustments are folded beyond the horizon");
    assert_eq!(store_offers(offers), reference_offers(&reference));
    assert_eq!(items, reference_items(&reference));
}
