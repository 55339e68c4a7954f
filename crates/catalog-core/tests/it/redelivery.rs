//! Property tests of the event id as the idempotency key: a redelivery carrying anything
//! else changes nothing, a rejection claims nothing, and a held event replayed later is
//! decided as first received.

use std::collections::BTreeSet;

use catalog_core::{decode, encode, AllSyncOn, ClockPolicy, Delivery, Outcome, ReferenceCatalog};
use chrono::Duration;
use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::properties::{
    apply_all, deliveries, oracle, shuffled_batches, split, tampered, without_zeros, OffFor, CASES,
};

/// The same event id with another payload (`tampered`), received `lag_seconds` later.
fn redelivered(delivery: &Delivery, lag_seconds: i64) -> Delivery {
    Delivery { received_at: delivery.received_at + Duration::seconds(lag_seconds), ..tampered(delivery) }
}

/// A message with the event's id that breaks one rule of the contract (`rule` picks which).
fn rejected(delivery: &Delivery, rule: usize) -> Delivery {
    let Ok(event) = &delivery.decoded else { return delivery.clone() };
    let mut message: serde_json::Value = serde_json::from_str(&encode(event)).expect("encode writes JSON");
    let (field, value) = match rule % 4 {
        0 => ("sku", serde_json::json!("not a sku")),
        1 => ("tenant_id", serde_json::json!("Canary")),
        2 => ("updated_at", serde_json::json!("yesterday")),
        _ => (if message.get("quantity").is_some() { "quantity" } else { "delta" }, serde_json::json!(-2_000_000_000)),
    };
    message[field] = value;
    let decoded = decode(message.to_string().as_bytes());
    assert_eq!(decoded.as_ref().err().and_then(|rejection| rejection.event_id), Some(event.event_id()));
    Delivery { decoded, received_at: delivery.received_at }
}

proptest! {
    #![proptest_config(Config::with_cases(CASES))]

    /// The first accepted delivery of an id counts: copies with another quantity or delta,
    /// another time and a later receipt, in the same batch as the original or any later one,
    /// are duplicates, and the catalog ends as without them.
    #[test]
    fn a_redelivery_with_another_payload_changes_nothing(
        originals in deliveries(),
        copies in proptest::collection::vec((any::<prop::sample::Index>(), 0i64..600), 1..20),
        sizes in proptest::collection::vec(1usize..10, 1..4),
    ) {
        let valid: Vec<Delivery> = originals.iter().filter(|delivery| delivery.decoded.is_ok()).cloned().collect();
        let again: Vec<Delivery> = copies.iter().map(|(index, lag)| redelivered(index.get(&valid), *lag)).collect();
        let mut alone = ReferenceCatalog::default();
        apply_all(&mut alone, &split(originals.clone(), &sizes), &AllSyncOn);

        let mut catalog = ReferenceCatalog::default();
        let all = [originals.clone(), again.clone()].concat();
        let mut decided = Vec::new();
        for batch in split(all, &sizes) {
            decided.extend(catalog.apply(&batch, &AllSyncOn, ClockPolicy::default()).decisions);
        }
        for decision in &decided[originals.len()..] {
            prop_assert_eq!(decision.outcome, Outcome::Duplicate);
            prop_assert!(decision.redelivery.is_some());
        }
        prop_assert_eq!(catalog.offers(), alone.offers());
        prop_assert_eq!(without_zeros(catalog.item_quantities()), oracle(&originals));
    }

    /// A rejected message claims nothing: rejected copies of any events (the same event id,
    /// one rule broken), anywhere in any batch, before or after the original, leave the
    /// catalog, versions and journal included, exactly as it is without them.
    #[test]
    fn a_rejected_delivery_changes_nothing_and_claims_nothing(
        batches in deliveries().prop_flat_map(shuffled_batches),
        copies in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0usize..4), 1..20),
    ) {
        let mut without = ReferenceCatalog::default();
        apply_all(&mut without, &batches, &AllSyncOn);

        let valid: Vec<Delivery> = batches.iter().flatten().filter(|delivery| delivery.decoded.is_ok()).cloned().collect();
        prop_assume!(!valid.is_empty());
        let mut with_rejections = batches.clone();
        for (event, place, rule) in &copies {
            let batch = &mut with_rejections[place.index(batches.len())];
            let position = place.index(batch.len() + 1);
            batch.insert(position, rejected(event.get(&valid), *rule));
        }
        let mut catalog = ReferenceCatalog::default();
        apply_all(&mut catalog, &with_rejections, &AllSyncOn);
        prop_assert_eq!(catalog, without);
    }

    /// A held event is decided afresh with the ordering key of its first receipt: replayed
    /// a day or two later (a supplier clock ahead is clamped to the first receipt, not the
    /// replay's), the catalog ends where sync on all along would have.
    #[test]
    fn held_events_replayed_later_are_decided_as_first_received(
        deliveries in deliveries(),
        off in proptest::collection::btree_set((0..2usize, 0..2usize), 1..4),
        sizes in proptest::collection::vec(1usize..10, 1..4),
        replay_lag_minutes in 1i64..3 * 24 * 60,
    ) {
        let mut catalog = ReferenceCatalog::default();
        apply_all(&mut catalog, &split(deliveries.clone(), &sizes), &OffFor(off));
        let replay: Vec<Delivery> = deliveries
            .iter()
            .map(|delivery| Delivery { received_at: delivery.received_at + Duration::minutes(replay_lag_minutes), ..delivery.clone() })
            .collect();
        apply_all(&mut catalog, &split(replay, &sizes), &AllSyncOn);
        prop_assert_eq!(without_zeros(catalog.item_quantities()), oracle(&deliveries));
        let held: BTreeSet<_> = catalog.journal().iter().filter(|(_, prior)| !prior.claimed).map(|(id, _)| *id).collect();
        prop_assert!(held.is_empty(), "still held: {:?}", held);
    }
}

proptest! {
    #![proptest_config(Config::with_cases(CASES))]

    /// Every copy carrying another payload than the journaled original says so
    /// (`payload_differs`), the second such copy in one batch too: it was compared with the
    /// first copy of the batch, not with the original.
    #[test]
    fn every_copy_with_another_payload_than_the_original_is_flagged(
        originals in deliveries(),
        copies in proptest::collection::vec(any::<prop::sample::Index>(), 1..10),
        sizes in proptest::collection::vec(1usize..10, 1..4),
    ) {
        let valid: Vec<Delivery> = originals.iter().filter(|delivery| delivery.decoded.is_ok()).cloned().collect();
        prop_assume!(!valid.is_empty());
        let again: Vec<Delivery> = copies.iter().map(|index| tampered(index.get(&valid))).collect();
        let mut catalog = ReferenceCatalog::default();
        let mut decided = Vec::new();
        for batch in split([originals.clone(), again].concat(), &sizes) {
            decided.extend(catalog.apply(&batch, &AllSyncOn, ClockPolicy::default()).decisions);
        }
        for decision in &decided[originals.len()..] {
            prop_assert_eq!(decision.redelivery.map(|redelivery| redelivery.payload_differs), Some(true), "{:?}", decision);
        }
    }
}
