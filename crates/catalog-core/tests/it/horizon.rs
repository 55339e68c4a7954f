//! The adjustment horizon (decision 0009): an offer that only ever receives adjustments keeps
//! a bounded state, and any arrival order within the horizon ends at the same quantity.

use catalog_core::{
    Adjustment, AllSyncOn, ClockPolicy, Delivery, EventId, FoldedAdjustments, OfferKey, OfferState, OrderingKey,
    Outcome, ReferenceCatalog, Sku, StockChange, SupplierEvent, SupplierId, TenantId, ADJUSTMENT_HORIZON,
    MAX_LISTED_ADJUSTMENTS,
};
use chrono::Duration;
use proptest::prelude::*;
use proptest::test_runner::Config;

fn key(minute: i64, n: u64) -> OrderingKey {
    OrderingKey {
        effective_at: crate::scenario::time("00:00:00") + Duration::minutes(minute),
        sequence: 0,
        event_id: EventId(uuid::Uuid::from_u128(u128::from(n))),
    }
}

fn adjusted(delta: i64) -> StockChange {
    StockChange::Adjusted { delta }
}

#[test]
fn an_offer_of_adjustments_only_keeps_a_bounded_list() {
    let mut offer = OfferState::default();
    // Ten thousand adjustments, one a minute for a week: a week of +1.
    for n in 0..10_000 {
        assert_eq!(offer.apply(adjusted(1), key(n, n as u64)), Outcome::Applied);
        assert!(offer.adjustments().len() <= MAX_LISTED_ADJUSTMENTS, "at {n}: {} listed", offer.adjustments().len());
    }
    assert_eq!(offer.quantity(), 10_000);
    let folded = offer.folded().expect("old adjustments are folded");
    assert_eq!(folded.count as usize + offer.adjustments().len(), 10_000);
    let horizon_minutes = ADJUSTMENT_HORIZON.num_minutes();
    let newest = 9_999;
    assert!(offer.adjustments().iter().all(|adjustment| adjustment.key >= key(newest - horizon_minutes, 0)));
    assert_eq!(offer.winner(), Some(key(newest, newest as u64)));
}

#[test]
fn a_late_adjustment_within_the_fold_adds_to_it() {
    let mut offer = OfferState::default();
    for n in 0..3_000 {
        offer.apply(adjusted(1), key(n, n as u64));
    }
    let through = offer.folded().expect("folded").through;
    let late = key(100, 99_999);
    assert!(late < through);
    assert_eq!(offer.apply(adjusted(5), late), Outcome::Applied);
    assert_eq!(offer.quantity(), 3_005);
}

#[test]
fn a_snapshot_older_than_the_fold_is_stale_and_a_newer_one_replaces_it() {
    let mut offer = OfferState::default();
    offer.apply(StockChange::Updated { quantity: 100 }, key(-1, 50_000));
    for n in 0..3_000 {
        offer.apply(adjusted(-1), key(n, n as u64));
    }
    let through = offer.folded().expect("folded").through;
    assert_eq!(offer.quantity(), 0, "never below zero");

    let beyond = key(10, 60_000);
    assert!(beyond < through && offer.is_beyond_horizon(beyond));
    assert_eq!(offer.apply(StockChange::Updated { quantity: 7 }, beyond), Outcome::Stale);

    let newer = key(2_500, 60_001);
    assert!(newer > through && !offer.is_beyond_horizon(newer));
    assert_eq!(offer.apply(StockChange::Updated { quantity: 7_000 }, newer), Outcome::Applied);
    assert_eq!(offer.folded(), None, "the fold is older than the new snapshot, which contains it");
    // Adjustments newer than the snapshot still count: minutes 2,501..2,999.
    assert_eq!(offer.quantity(), 7_000 - 499);
}

/// One offer's events: many adjustments over three days, and a few snapshots within the
/// horizon of the newest adjustment.
fn events() -> impl Strategy<Value = Vec<(StockChange, OrderingKey)>> {
    let span = 3 * 24 * 60_i64;
    let adjustments = proptest::collection::vec(((-5_i64..6).prop_filter("non-zero", |d| *d != 0), 0..span), 80..400);
    let snapshots = proptest::collection::vec((0_i64..1_000, 0..ADJUSTMENT_HORIZON.num_minutes()), 0..4);
    (adjustments, snapshots).prop_map(move |(adjustments, snapshots)| {
        let newest = adjustments.iter().map(|(_, minute)| *minute).max().unwrap_or(0);
        let mut events: Vec<(StockChange, OrderingKey)> = Vec::new();
        for (n, (delta, minute)) in adjustments.into_iter().enumerate() {
            events.push((adjusted(delta), key(minute, n as u64)));
        }
        for (n, (quantity, minutes_back)) in snapshots.into_iter().enumerate() {
            events.push((StockChange::Updated { quantity }, key(newest - minutes_back, 1_000_000 + n as u64)));
        }
        events
    })
}

/// The contract's formula: latest snapshot plus every adjustment newer than it, never below zero.
fn oracle(events: &[(StockChange, OrderingKey)]) -> i64 {
    let snapshot = events
        .iter()
        .filter_map(|(change, key)| match change {
            StockChange::Updated { quantity } => Some((*key, *quantity)),
            StockChange::Adjusted { .. } => None,
        })
        .max();
    let adjustments: i64 = events
        .iter()
        .filter_map(|(change, key)| match change {
            StockChange::Adjusted { delta } if snapshot.is_none_or(|(snapshot, _)| *key > snapshot) => Some(*delta),
            _ => None,
        })
        .sum();
    (snapshot.map_or(0, |(_, quantity)| quantity) + adjustments).max(0)
}

proptest! {
    #![proptest_config(Config::with_cases(300))]

    /// Any arrival order of events within the horizon ends at the contract's quantity, however
    /// many adjustments were folded on the way.
    #[test]
    fn any_order_within_the_horizon_gives_the_contract_quantity(
        (events, order) in events().prop_flat_map(|events| {
            let n = events.len();
            (Just(events), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        })
    ) {
        let mut offer = OfferState::default();
        for index in order {
            let (change, key) = events[index];
            offer.apply(change, key);
            prop_assert!(offer.adjustments().len() <= MAX_LISTED_ADJUSTMENTS);
        }
        prop_assert_eq!(offer.quantity(), oracle(&events));
    }
}

/// Parts out of order never make an offer state, from a store's columns or from JSON.
#[test]
fn parts_that_break_the_ordering_are_refused() {
    let mut offer = OfferState::default();
    offer.apply(StockChange::Updated { quantity: 10 }, key(10, 0));
    offer.apply(StockChange::Adjusted { delta: 1 }, key(20, 0));
    offer.apply(StockChange::Adjusted { delta: 2 }, key(30, 0));
    let snapshot = offer.snapshot();
    let listed = offer.adjustments().to_vec();
    let reversed: Vec<Adjustment> = listed.iter().rev().copied().collect();
    let fold = FoldedAdjustments { through: key(25, 0), delta: 1, count: 1 };
    let cases = [
        ("reversed", OfferState::from_parts(snapshot, None, reversed)),
        ("twice", OfferState::from_parts(snapshot, None, vec![listed[0], listed[0]])),
        ("before the snapshot", OfferState::from_parts(snapshot, None, vec![Adjustment { key: key(5, 0), delta: 1 }])),
        (
            "fold before the snapshot",
            OfferState::from_parts(snapshot, Some(FoldedAdjustments { through: key(5, 0), ..fold }), vec![]),
        ),
        ("listed within the fold", OfferState::from_parts(snapshot, Some(fold), listed.clone())),
        ("whole", OfferState::from_parts(snapshot, None, listed)),
    ];
    let rendered: Vec<String> =
        cases.iter().map(|(name, result)| format!("{name}: {:?}", result.as_ref().map(OfferState::quantity))).collect();
    insta::assert_snapshot!(rendered.join("\n"), @r"
    reversed: Err(AdjustmentsUnordered)
    twice: Err(AdjustmentsUnordered)
    before the snapshot: Err(OlderThanSnapshot)
    fold before the snapshot: Err(OlderThanSnapshot)
    listed within the fold: Err(ListedWithinFold)
    whole: Ok(13)
    ");
    let json = r#"{"snapshot":null,"adjustments":[{"key":{"effective_at":"2026-06-01T12:00:00Z","sequence":0,"event_id":"00000000-0000-0000-0000-000000000002"},"delta":1},{"key":{"effective_at":"2026-06-01T11:00:00Z","sequence":0,"event_id":"00000000-0000-0000-0000-000000000001"},"delta":1}]}"#;
    assert!(serde_json::from_str::<OfferState>(json).is_err(), "JSON goes through the same check");
}

proptest! {
    #![proptest_config(Config::with_cases(40))]

    /// Every state the rules reach, folded or not, reads back whole from its parts and from
    /// JSON (what a store keeps): the check refuses no state the rules make.
    #[test]
    fn every_reached_offer_state_reads_back_as_itself(
        (events, order) in events().prop_flat_map(|events| {
            let n = events.len();
            (Just(events), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        })
    ) {
        let mut offer = OfferState::default();
        for (step, index) in order.into_iter().enumerate() {
            let (change, key) = events[index];
            offer.apply(change, key);
            // Every 50th state and the last: each of them checked is O(listed adjustments).
            if step % 50 == 0 || step + 1 == events.len() {
                let parts = OfferState::from_parts(offer.snapshot(), offer.folded(), offer.adjustments().to_vec());
                prop_assert_eq!(parts.as_ref(), Ok(&offer));
                let json = serde_json::to_string(&offer).expect("serializes");
                prop_assert_eq!(serde_json::from_str::<OfferState>(&json).expect("reads back"), offer.clone());
            }
        }
    }
}

/// `events` as deliveries of one offer, each received at its own time (no clock clamped,
/// well within the dedupe horizon).
fn as_deliveries(events: &[(StockChange, OrderingKey)]) -> Vec<Delivery> {
    let offer = OfferKey {
        tenant: TenantId::parse("canary").expect("tenant"),
        supplier: SupplierId::parse("erp").expect("supplier"),
        sku: Sku::parse("ABC-1").expect("sku"),
    };
    events
        .iter()
        .map(|(change, key)| {
            let event =
                SupplierEvent::new(key.event_id, offer.clone(), *change, key.effective_at, None).expect("in range");
            Delivery { decoded: Ok(event), received_at: key.effective_at }
        })
        .collect()
}

proptest! {
    #![proptest_config(Config::with_cases(100))]

    /// The same through the batch planner and the journal's claims: any arrival order, any
    /// redeliveries and any split into batches of events within the horizon end at the
    /// contract's quantity, however many adjustments were folded on the way.
    #[test]
    fn any_order_redelivery_and_batching_within_the_horizon_give_the_contract_quantity(
        (events, shuffled) in events().prop_flat_map(|events| {
            let deliveries = as_deliveries(&events);
            (Just(events), Just(deliveries).prop_shuffle())
        }),
        repeats in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        sizes in proptest::collection::vec(1usize..80, 1..4),
    ) {
        let mut arriving = shuffled.clone();
        for repeat in &repeats {
            let position = repeat.index(arriving.len() + 1);
            arriving.insert(position, repeat.get(&shuffled).clone());
        }
        let mut catalog = ReferenceCatalog::default();
        for batch in crate::properties::split(arriving, &sizes) {
            catalog.apply(&batch, &AllSyncOn, ClockPolicy::default());
        }
        let offer = catalog.offers().values().next().expect("one offer");
        prop_assert!(offer.adjustments().len() <= MAX_LISTED_ADJUSTMENTS);
        prop_assert_eq!(catalog.item_quantities().values().sum::<i64>(), oracle(&events));
    }
}
