//! Property tests for every claim of order independence and idempotence in the contract.

use std::collections::{BTreeMap, BTreeSet};

use catalog_core::{
    decode, encode, AllSyncOn, ClockPolicy, Delivery, EventId, HeldReason, ItemKey, OfferKey, OrderingKey,
    ReferenceCatalog, Sku, StockChange, SupplierEvent, SupplierId, SyncFlags, TenantId,
};
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::Config;

pub(crate) const CASES: u32 = 1_000;

pub(crate) fn base_time() -> DateTime<Utc> {
    crate::scenario::time("12:00:00")
}

/// A generated event before it gets its unique id.
#[derive(Debug, Clone)]
pub(crate) struct EventSpec {
    tenant: usize,
    supplier: usize,
    sku: usize,
    change: StockChange,
    updated_second: i64,
    received_second: i64,
    /// Minutes the supplier clock runs ahead: beyond 5 the event is clamped.
    clock_ahead_minutes: i64,
    sequence: Option<u64>,
}

const TENANTS: [&str; 2] = ["canary", "t2"];
const SUPPLIERS: [&str; 2] = ["acme", "globex"];
// The same SKU in two spellings: normalization must make them one offer.
const SKUS: [&str; 3] = ["ABC-1", " abc-1", "XYZ.9"];

pub(crate) fn event_spec() -> impl Strategy<Value = EventSpec> {
    let change = prop_oneof![
        (0i64..50).prop_map(|quantity| StockChange::Updated { quantity }),
        (-20i64..20)
            .prop_filter("delta is non-zero", |delta| *delta != 0)
            .prop_map(|delta| StockChange::Adjusted { delta }),
    ];
    (
        0..2usize,
        0..2usize,
        0..3usize,
        change,
        0i64..4,
        0i64..4,
        prop_oneof![3 => Just(0i64), 1 => 0i64..20],
        proptest::option::of(0u64..3),
    )
        .prop_map(
            |(tenant, supplier, sku, change, updated_second, received_second, clock_ahead_minutes, sequence)| {
                EventSpec {
                    tenant,
                    supplier,
                    sku,
                    change,
                    updated_second,
                    received_second,
                    clock_ahead_minutes,
                    sequence,
                }
            },
        )
}

pub(crate) fn build(index: usize, spec: &EventSpec) -> Delivery {
    let offer = OfferKey {
        tenant: TenantId::parse(TENANTS[spec.tenant]).expect("valid tenant"),
        supplier: SupplierId::parse(SUPPLIERS[spec.supplier]).expect("valid supplier"),
        sku: Sku::parse(SKUS[spec.sku]).expect("valid sku"),
    };
    let updated_at = base_time() + Duration::seconds(spec.updated_second) + Duration::minutes(spec.clock_ahead_minutes);
    let event = SupplierEvent::new(EventId(uuid_for(index)), offer, spec.change, updated_at, spec.sequence)
        .expect("generated values are in range");
    // Half the events travel through the wire format, so decoding is part of the property.
    let decoded = if index % 2 == 0 { decode(encode(&event).as_bytes()) } else { Ok(event) };
    Delivery { decoded, received_at: base_time() + Duration::seconds(spec.received_second) }
}

pub(crate) fn uuid_for(index: usize) -> uuid::Uuid {
    // Spread ids so their order is unrelated to generation order.
    uuid::Uuid::from_u128((index as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

/// Unique events, some delivered several times (exact redeliveries), plus poison messages.
pub(crate) fn deliveries() -> impl Strategy<Value = Vec<Delivery>> {
    (
        proptest::collection::vec(event_spec(), 1..30),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        0..3usize,
    )
        .prop_map(|(specs, repeats, n_poison)| {
            let mut deliveries: Vec<Delivery> =
                specs.iter().enumerate().map(|(index, spec)| build(index, spec)).collect();
            let originals = deliveries.clone();
            deliveries.extend(repeats.iter().map(|repeat| repeat.get(&originals).clone()));
            for poison in 0..n_poison {
                deliveries.push(Delivery {
                    decoded: decode(format!("poison {poison}").as_bytes()),
                    received_at: base_time(),
                });
            }
            deliveries
        })
}

/// Deliveries shuffled and cut into batches.
pub(crate) fn shuffled_batches(deliveries: Vec<Delivery>) -> impl Strategy<Value = Vec<Vec<Delivery>>> {
    let n = deliveries.len();
    (Just(deliveries).prop_shuffle(), proptest::collection::vec(1..=n.max(1), 1..6))
        .prop_map(|(shuffled, sizes)| split(shuffled, &sizes))
}

pub(crate) fn split(deliveries: Vec<Delivery>, sizes: &[usize]) -> Vec<Vec<Delivery>> {
    let mut batches = Vec::new();
    let mut rest = deliveries.as_slice();
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at((*size).min(rest.len()));
        batches.push(batch.to_vec());
        rest = tail;
    }
    batches
}

/// The contract's formula, computed directly from the distinct events: for each offer,
/// latest snapshot + every adjustment newer than it, never below zero; items sum offers.
pub(crate) fn oracle(deliveries: &[Delivery]) -> BTreeMap<ItemKey, i64> {
    let clock = ClockPolicy::default();
    let mut distinct: BTreeMap<EventId, (SupplierEvent, OrderingKey)> = BTreeMap::new();
    for delivery in deliveries {
        if let Ok(event) = &delivery.decoded {
            distinct
                .entry(event.event_id())
                .or_insert_with(|| (event.clone(), clock.effective(event, delivery.received_at).key));
        }
    }
    let mut offers: BTreeMap<OfferKey, Vec<(StockChange, OrderingKey)>> = BTreeMap::new();
    for (event, key) in distinct.values() {
        offers.entry(event.offer().clone()).or_default().push((event.change(), *key));
    }
    let mut items = BTreeMap::new();
    for (offer, events) in offers {
        let snapshot = events
            .iter()
            .filter_map(|(change, key)| match change {
                StockChange::Updated { quantity } => Some((*key, *quantity)),
                StockChange::Adjusted { .. } => None,
            })
            .max();
        let deltas: i64 = events
            .iter()
            .filter_map(|(change, key)| match change {
                StockChange::Adjusted { delta } if snapshot.is_none_or(|(snapshot_key, _)| *key > snapshot_key) => {
                    Some(*delta)
                }
                _ => None,
            })
            .sum();
        let quantity = (snapshot.map_or(0, |(_, quantity)| quantity) + deltas).max(0);
        *items.entry(offer.item_key()).or_insert(0) += quantity;
    }
    without_zeros(items)
}

/// An item that never left zero has no row; one that went back to zero has: compare the rest.
pub(crate) fn without_zeros(items: BTreeMap<ItemKey, i64>) -> BTreeMap<ItemKey, i64> {
    items.into_iter().filter(|(_, quantity)| *quantity != 0).collect()
}

/// Applies batches in turn, checking per batch that a version moves exactly when the quantity does.
pub(crate) fn apply_all(catalog: &mut ReferenceCatalog, batches: &[Vec<Delivery>], flags: &dyn SyncFlags) {
    for batch in batches {
        let before = catalog.items().clone();
        let plan = catalog.apply(batch, flags, ClockPolicy::default());
        assert_eq!(plan.decisions.len(), batch.len(), "one decision per delivery");
        for (key, item) in catalog.items() {
            let previous = before.get(key).copied().unwrap_or_default();
            let expected_version = previous.version + u64::from(previous.quantity != item.quantity);
            assert_eq!(item.version, expected_version, "version of {key}");
            assert!(item.quantity >= 0, "item {key} below zero");
        }
    }
}

/// The same event id with another payload: another quantity or delta, an hour later.
pub(crate) fn tampered(delivery: &Delivery) -> Delivery {
    let Ok(event) = &delivery.decoded else { return delivery.clone() };
    let change = match event.change() {
        StockChange::Updated { quantity } => StockChange::Updated { quantity: quantity + 100 },
        StockChange::Adjusted { delta } => StockChange::Adjusted { delta: -delta },
    };
    let other = SupplierEvent::new(
        event.event_id(),
        event.offer().clone(),
        change,
        event.updated_at() + Duration::hours(1),
        event.sequence(),
    )
    .expect("tampered values stay in range");
    Delivery { decoded: Ok(other), received_at: delivery.received_at }
}

pub(crate) struct OffFor(pub(crate) BTreeSet<(usize, usize)>);

impl SyncFlags for OffFor {
    fn check(&self, tenant: &TenantId, supplier: &SupplierId) -> Result<(), HeldReason> {
        let tenant = TENANTS.iter().position(|name| *name == tenant.as_str()).expect("generated tenant");
        let supplier = SUPPLIERS.iter().position(|name| *name == supplier.as_str()).expect("generated supplier");
        if self.0.contains(&(tenant, supplier)) {
            Err(HeldReason::SupplierSyncOff)
        } else {
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(Config::with_cases(CASES))]

    /// Any permutation and any split into batches ends in the same offers, and in the
    /// item quantities of the contract's formula; every delivery is accounted for once.
    #[test]
    fn any_order_and_any_batching_converge(
        (deliveries, batches) in deliveries().prop_flat_map(|deliveries| (Just(deliveries.clone()), shuffled_batches(deliveries)))
    ) {
        let mut in_order = ReferenceCatalog::default();
        apply_all(&mut in_order, std::slice::from_ref(&deliveries), &AllSyncOn);
        let mut shuffled = ReferenceCatalog::default();
        apply_all(&mut shuffled, &batches, &AllSyncOn);

        prop_assert_eq!(shuffled.offers(), in_order.offers());
        prop_assert_eq!(without_zeros(shuffled.item_quantities()), oracle(&deliveries));
        prop_assert_eq!(without_zeros(in_order.item_quantities()), oracle(&deliveries));
        for (key, item) in shuffled.items() {
            let offers_sum: i64 = shuffled.offers().iter().filter(|(offer, _)| offer.item_key() == *key).map(|(_, offer)| offer.quantity()).sum();
            prop_assert_eq!(item.quantity, offers_sum);
        }
    }

    /// Each distinct valid event is decided exactly once as applied, stale or superseded;
    /// every other delivery of it is a duplicate.
    #[test]
    fn every_event_claims_its_id_exactly_once(deliveries in deliveries(), sizes in proptest::collection::vec(1usize..10, 1..4)) {
        let mut catalog = ReferenceCatalog::default();
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for batch in split(deliveries.clone(), &sizes) {
            let plan = catalog.apply(&batch, &AllSyncOn, ClockPolicy::default());
            for decision in plan.decisions {
                *counts.entry(decision.outcome.as_str()).or_insert(0) += 1;
            }
        }
        let valid: Vec<EventId> = deliveries.iter().filter_map(|delivery| delivery.decoded.as_ref().ok()).map(SupplierEvent::event_id).collect();
        let distinct: BTreeSet<EventId> = valid.iter().copied().collect();
        let claimed = counts.get("applied").unwrap_or(&0) + counts.get("stale").unwrap_or(&0) + counts.get("superseded").unwrap_or(&0);
        prop_assert_eq!(claimed, distinct.len());
        prop_assert_eq!(*counts.get("duplicate").unwrap_or(&0), valid.len() - distinct.len());
        prop_assert_eq!(*counts.get("rejected").unwrap_or(&0), deliveries.len() - valid.len());
    }

    /// Re-applying any subset, in any order and batching, changes nothing, versions included.
    #[test]
    fn reapplying_any_subset_changes_nothing(
        deliveries in deliveries(),
        subset in proptest::collection::vec(any::<prop::sample::Index>(), 1..20),
        sizes in proptest::collection::vec(1usize..8, 1..4),
    ) {
        let mut catalog = ReferenceCatalog::default();
        apply_all(&mut catalog, std::slice::from_ref(&deliveries), &AllSyncOn);
        let settled = catalog.clone();
        let again: Vec<Delivery> = subset.iter().map(|index| index.get(&deliveries).clone()).collect();
        for batch in split(again, &sizes) {
            let plan = catalog.apply(&batch, &AllSyncOn, ClockPolicy::default());
            prop_assert!(plan.offers.is_empty() && plan.items.is_empty());
            for decision in plan.decisions {
                prop_assert!(matches!(decision.outcome.as_str(), "duplicate" | "rejected"), "{}", decision.outcome);
            }
        }
        prop_assert_eq!(catalog, settled);
    }

    /// Events held while a supplier was off, replayed once it is on, end exactly where
    /// they would have had sync been on all along.
    #[test]
    fn held_events_replayed_converge(
        deliveries in deliveries(),
        off in proptest::collection::btree_set((0..2usize, 0..2usize), 0..4),
        sizes in proptest::collection::vec(1usize..10, 1..4),
    ) {
        let mut catalog = ReferenceCatalog::default();
        apply_all(&mut catalog, &split(deliveries.clone(), &sizes), &OffFor(off));
        apply_all(&mut catalog, std::slice::from_ref(&deliveries), &AllSyncOn);
        prop_assert_eq!(without_zeros(catalog.item_quantities()), oracle(&deliveries));
    }

    /// The first accepted payload counts: events held while a supplier was off and then
    /// redelivered with other payloads (same ids, other quantities and times) once it is on
    /// end exactly where the payloads first journaled would have.
    #[test]
    fn held_events_redelivered_with_other_payloads_count_as_first_journaled(
        deliveries in deliveries(),
        off in proptest::collection::btree_set((0..2usize, 0..2usize), 1..4),
        sizes in proptest::collection::vec(1usize..10, 1..4),
    ) {
        let mut catalog = ReferenceCatalog::default();
        apply_all(&mut catalog, &split(deliveries.clone(), &sizes), &OffFor(off));
        let tampered: Vec<Delivery> = deliveries.iter().map(tampered).collect();
        apply_all(&mut catalog, &split(tampered, &sizes), &AllSyncOn);
        prop_assert_eq!(without_zeros(catalog.item_quantities()), oracle(&deliveries));
    }

    /// The encoder and decoder are inverse for every valid event.
    #[test]
    fn encode_then_decode_is_identity(spec in event_spec(), index in 0usize..1_000) {
        let delivery = build(1, &spec);
        let event = delivery.decoded.expect("built events are valid");
        let event = SupplierEvent::new(EventId(uuid_for(index)), event.offer().clone(), event.change(), event.updated_at(), event.sequence())
            .expect("valid");
        prop_assert_eq!(decode(encode(&event).as_bytes()), Ok(event));
    }

    /// Decoding never panics, whatever the bytes.
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }

    /// Decoding never panics on JSON objects with contract fields of any type.
    #[test]
    fn decode_never_panics_on_json(fields in proptest::collection::btree_map(
        prop::sample::select(vec!["event_id", "type", "tenant_id", "supplier_id", "sku", "quantity", "delta", "updated_at", "sequence"]),
        prop_oneof![Just(serde_json::Value::Null), any::<i64>().prop_map(serde_json::Value::from), any::<f64>().prop_map(serde_json::Value::from), ".{0,70}".prop_map(serde_json::Value::from)],
        0..9,
    )) {
        let object = serde_json::Value::Object(fields.into_iter().map(|(name, value)| (name.to_owned(), value)).collect());
        let _ = decode(object.to_string().as_bytes());
    }
}

/// The journal's applied events of each offer, as a store records them.
fn applied_journal(
    catalog: &mut ReferenceCatalog,
    batches: &[Vec<Delivery>],
) -> BTreeMap<OfferKey, Vec<catalog_core::AppliedChange>> {
    let mut journal: BTreeMap<OfferKey, Vec<catalog_core::AppliedChange>> = BTreeMap::new();
    for batch in batches {
        let plan = catalog.apply(batch, &AllSyncOn, ClockPolicy::default());
        for (delivery, decision) in batch.iter().zip(&plan.decisions) {
            let (Ok(event), Some(effective)) = (&delivery.decoded, decision.effective) else { continue };
            if decision.outcome == catalog_core::Outcome::Applied {
                journal
                    .entry(event.offer().clone())
                    .or_default()
                    .push(catalog_core::AppliedChange { key: effective.key, change: event.change() });
            }
        }
    }
    journal
}

/// Every offer of `catalog`'s item `key` with its journal, as trace coverage checks it.
fn offer_traces(
    catalog: &ReferenceCatalog,
    journal: &BTreeMap<OfferKey, Vec<catalog_core::AppliedChange>>,
    key: &ItemKey,
) -> Vec<catalog_core::OfferTrace> {
    catalog
        .offers()
        .iter()
        .filter(|(offer, _)| offer.tenant == key.tenant && offer.sku == key.sku)
        .map(|(offer, state)| catalog_core::OfferTrace {
            supplier: offer.supplier.clone(),
            winner: state.winner().map(|winner| winner.event_id),
            applied: journal.get(offer).cloned().unwrap_or_default(),
        })
        .collect()
}

proptest! {
    #![proptest_config(Config { cases: CASES, ..Config::default() })]

    /// Trace coverage's claim: whatever the arrival order and batching, every item's stored
    /// quantity re-derives exactly from the journal's applied events, and every offer's
    /// winner is one of them.
    #[test]
    fn every_item_re_derives_from_its_journal(batches in deliveries().prop_flat_map(shuffled_batches)) {
        let mut catalog = ReferenceCatalog::default();
        let journal = applied_journal(&mut catalog, &batches);
        for (key, item) in catalog.items() {
            let offers = offer_traces(&catalog, &journal, key);
            prop_assert_eq!(catalog_core::check_item(item.quantity, &offers), Ok(()), "item {:?}", key);
        }
    }

    /// The tracer's bound: any newest cut of an item's journal (across its offers, in
    /// ordering-key order) that `tail_settles` accepts, with each offer's winner looked up by
    /// id when the cut lacks it, checks exactly as the whole journal does, for the stored
    /// quantity and for a wrong one.
    #[test]
    fn a_settled_tail_checks_as_the_whole_journal(batches in deliveries().prop_flat_map(shuffled_batches)) {
        let mut catalog = ReferenceCatalog::default();
        let journal = applied_journal(&mut catalog, &batches);
        for (key, item) in catalog.items() {
            let whole = offer_traces(&catalog, &journal, key);
            let mut keys: Vec<catalog_core::OrderingKey> =
                whole.iter().flat_map(|offer| offer.applied.iter().map(|event| event.key)).collect();
            keys.sort_unstable();
            for cut in 0..=keys.len() {
                let newest = &keys[cut..];
                let tail: Vec<catalog_core::OfferTrace> = whole
                    .iter()
                    .map(|offer| catalog_core::OfferTrace {
                        applied: offer.applied.iter().filter(|event| newest.contains(&event.key)).copied().collect(),
                        ..offer.clone()
                    })
                    .collect();
                if !catalog_core::tail_settles(&tail) {
                    continue;
                }
                let looked_up: Vec<catalog_core::OfferTrace> = tail
                    .into_iter()
                    .zip(&whole)
                    .map(|(mut offer, all)| {
                        let winner = all.applied.iter().find(|event| Some(event.key.event_id) == offer.winner);
                        if let Some(winner) = winner.filter(|winner| !offer.applied.contains(winner)) {
                            offer.applied.push(*winner);
                        }
                        offer
                    })
                    .collect();
                for stored in [item.quantity, item.quantity + 1] {
                    prop_assert_eq!(
                        catalog_core::check_item(stored, &looked_up),
                        catalog_core::check_item(stored, &whole),
                        "item {:?} cut at {} of {}", key, cut, keys.len()
                    );
                }
            }
        }
    }

    /// And the check can tell: with an offer's winning journal row missing, the item is named.
    #[test]
    fn a_missing_winning_row_is_a_gap(batches in deliveries().prop_flat_map(shuffled_batches)) {
        let mut catalog = ReferenceCatalog::default();
        let mut journal = applied_journal(&mut catalog, &batches);
        let Some((offer, state)) = catalog.offers().iter().find(|(_, state)| state.winner().is_some()) else {
            return Ok(());
        };
        let winner = state.winner().expect("filtered on a winner").event_id;
        journal.entry(offer.clone()).or_default().retain(|event| event.key.event_id != winner);
        let key = ItemKey { tenant: offer.tenant.clone(), sku: offer.sku.clone() };
        let offers = offer_traces(&catalog, &journal, &key);
        let gap = catalog_core::check_item(catalog.items().get(&key).map_or(0, |item| item.quantity), &offers);
        prop_assert!(
            matches!(gap, Err(catalog_core::TraceGap::WinnerNotJournaled { ref event_id, .. }) if *event_id == winner),
            "got {:?}", gap
        );
    }
}

proptest! {
    #![proptest_config(Config { cases: CASES, ..Config::default() })]

    /// Trace coverage after retention: whatever the arrival order and batching, once the rows
    /// received before any horizon are dropped, every item still re-derives from the rows
    /// kept and what each offer's state counts that retention explains
    /// (`JournalReach::archived_changes`); and with a kept winning row missing, it does not.
    #[test]
    fn every_item_re_derives_from_its_kept_journal_and_what_retention_explains(
        batches in deliveries().prop_flat_map(shuffled_batches),
        horizon_pick in any::<prop::sample::Index>(),
    ) {
        let mut catalog = ReferenceCatalog::default();
        let mut journal: BTreeMap<OfferKey, Vec<(catalog_core::AppliedChange, DateTime<Utc>)>> = BTreeMap::new();
        for batch in &batches {
            let plan = catalog.apply(batch, &AllSyncOn, ClockPolicy::default());
            for (delivery, decision) in batch.iter().zip(&plan.decisions) {
                let (Ok(event), Some(effective)) = (&delivery.decoded, decision.effective) else { continue };
                if decision.outcome == catalog_core::Outcome::Applied {
                    let change = catalog_core::AppliedChange { key: effective.key, change: event.change() };
                    journal.entry(event.offer().clone()).or_default().push((change, delivery.received_at));
                }
            }
        }
        let mut receipts: Vec<DateTime<Utc>> = journal.values().flatten().map(|(_, received)| *received).collect();
        receipts.sort_unstable();
        receipts.push(receipts.last().copied().unwrap_or_else(base_time) + Duration::seconds(1));
        let kept_since = receipts[horizon_pick.index(receipts.len())];
        let reach = catalog_core::JournalReach { kept_since, max_skew: ClockPolicy::default().max_skew };
        let traces = |key: &ItemKey, lose: Option<catalog_core::EventId>| -> Vec<catalog_core::OfferTrace> {
            catalog
                .offers()
                .iter()
                .filter(|(offer, _)| offer.tenant == key.tenant && offer.sku == key.sku)
                .map(|(offer, state)| {
                    let kept: Vec<catalog_core::AppliedChange> = journal
                        .get(offer)
                        .into_iter()
                        .flatten()
                        .filter(|(change, received)| *received >= kept_since && Some(change.key.event_id) != lose)
                        .map(|(change, _)| *change)
                        .collect();
                    let mut applied = reach.archived_changes(state, &kept);
                    applied.extend(kept);
                    catalog_core::OfferTrace {
                        supplier: offer.supplier.clone(),
                        winner: state.winner().map(|winner| winner.event_id),
                        applied,
                    }
                })
                .collect()
        };
        for (key, item) in catalog.items() {
            prop_assert_eq!(catalog_core::check_item(item.quantity, &traces(key, None)), Ok(()), "item {:?}", key);
        }
        // A winner whose row retention kept, lost: named.
        let kept_winner = catalog.offers().iter().find_map(|(offer, state)| {
            let winner = state.winner()?;
            let (_, received) = journal.get(offer)?.iter().find(|(change, _)| change.key == winner)?;
            (*received >= kept_since && !reach.may_have_dropped(&winner)).then_some((offer, winner.event_id))
        });
        if let Some((offer, winner)) = kept_winner {
            let key = ItemKey { tenant: offer.tenant.clone(), sku: offer.sku.clone() };
            let quantity = catalog.items().get(&key).map_or(0, |item| item.quantity);
            let gap = catalog_core::check_item(quantity, &traces(&key, Some(winner)));
            prop_assert!(matches!(gap, Err(catalog_core::TraceGap::WinnerNotJournaled { .. })), "got {:?}", gap);
        }
    }
}
