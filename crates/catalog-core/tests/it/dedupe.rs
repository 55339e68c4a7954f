//! The dedupe horizon (decision 0019): a store keeps an event id's claim for
//! `ClockPolicy::claim_retention`, then forgets it. A redelivery after that is decided from the
//! offers' state alone, and must never be applied twice: whatever was applied, in whatever
//! batches and order, delivering any of it again past the horizon changes no quantity.

use std::collections::HashMap;

use catalog_core::{
    plan_batch, AllSyncOn, ClockPolicy, Delivery, EventId, OfferKey, Outcome, PlanState, ReferenceCatalog, Sku,
    StockChange, SupplierEvent, SupplierId, TenantId, DEDUPE_HORIZON,
};
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn offer(sku: usize) -> OfferKey {
    OfferKey {
        tenant: TenantId::parse("canary").expect("tenant"),
        supplier: SupplierId::parse("erp").expect("supplier"),
        sku: Sku::parse(["ABC-1", "XYZ-9"][sku]).expect("sku"),
    }
}

fn start() -> DateTime<Utc> {
    crate::scenario::time("00:00:00")
}

/// An event `minutes` after the start, received `lag_minutes` after its own time.
fn delivery(index: usize, sku: usize, change: StockChange, minutes: i64, lag_minutes: i64) -> Delivery {
    let updated_at = start() + Duration::minutes(minutes);
    let id =
        EventId(uuid::Uuid::from_u128((index as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)));
    let event = SupplierEvent::new(id, offer(sku), change, updated_at, None).expect("in range");
    Delivery { decoded: Ok(event), received_at: updated_at + Duration::minutes(lag_minutes) }
}

/// Many adjustments over four days (enough that offers fold), some snapshots, arriving late by
/// up to two days, so some land within a fold, and some from a clock up to three days ahead
/// (clamped: ordered at their receipt plus the allowance, earlier than their own time).
fn deliveries() -> impl Strategy<Value = Vec<Delivery>> {
    let change = prop_oneof![
        1 => (0i64..500).prop_map(|quantity| StockChange::Updated { quantity }),
        12 => (1i64..20).prop_map(|delta| StockChange::Adjusted { delta: if delta % 3 == 0 { -delta } else { delta } }),
    ];
    proptest::collection::vec(
        (
            0..2usize,
            change,
            0i64..4 * 24 * 60,
            prop_oneof![4 => Just(0i64), 1 => 0i64..2 * 24 * 60, 1 => -3 * 24 * 60..0i64],
        ),
        80..300,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(index, (sku, change, minutes, lag))| delivery(index, sku, change, minutes, lag))
            .collect()
    })
}

/// The catalog's state as a store that forgot every claim loads it.
fn forgetting(catalog: &ReferenceCatalog) -> PlanState {
    PlanState {
        offers: catalog.offers().iter().map(|(key, state)| (key.clone(), state.clone())).collect(),
        items: catalog.items().iter().map(|(key, state)| (key.clone(), *state)).collect(),
        prior: HashMap::new(),
    }
}

fn batches(deliveries: Vec<Delivery>, size: usize) -> Vec<Vec<Delivery>> {
    deliveries.chunks(size.max(1)).map(<[Delivery]>::to_vec).collect()
}

proptest! {
    #![proptest_config(Config { cases: 200, ..Config::default() })]

    #[test]
    fn a_redelivery_after_its_claim_is_forgotten_is_never_applied_twice(
        deliveries in deliveries().prop_shuffle(),
        size in 1..60usize,
        redelivered in proptest::collection::vec(any::<prop::sample::Index>(), 1..40),
        late_days in 0i64..400,
    ) {
        let clock = ClockPolicy::default();
        let mut catalog = ReferenceCatalog::default();
        for batch in batches(deliveries.clone(), size) {
            catalog.apply(&batch, &AllSyncOn, clock);
        }
        let quantities = catalog.item_quantities();

        // The store has forgotten every claim: the latest receipt, and the latest supplier time
        // (a claim is kept from the later of the two), are further back than the claim
        // retention.
        let latest = deliveries
            .iter()
            .map(|delivery| delivery.received_at.max(delivery.decoded.as_ref().expect("valid").updated_at()))
            .max()
            .expect("some");
        let now = latest + clock.claim_retention() + Duration::days(late_days);
        let again: Vec<Delivery> = redelivered
            .iter()
            .map(|index| Delivery { received_at: now, ..index.get(&deliveries).clone() })
            .collect();
        let plan = plan_batch(&again, &forgetting(&catalog), &AllSyncOn, clock);
        for (delivery, decision) in again.iter().zip(&plan.decisions) {
            prop_assert_ne!(decision.outcome, Outcome::Applied, "{:?} applied twice", delivery.decoded);
        }
        prop_assert!(plan.items.is_empty(), "quantities moved: {:?} (before {:?})", plan.items, quantities);
    }
}

#[test]
fn an_adjustment_within_the_fold_older_than_the_horizon_is_stale_with_its_reason() {
    let clock = ClockPolicy::default();
    let mut catalog = ReferenceCatalog::default();
    // 200 adjustments a minute apart, then 200 more a day later: the first ones are folded.
    let first: Vec<Delivery> =
        (0..200).map(|n| delivery(n, 0, StockChange::Adjusted { delta: 1 }, n as i64, 0)).collect();
    let later: Vec<Delivery> =
        (200..400).map(|n| delivery(n, 0, StockChange::Adjusted { delta: 1 }, 2 * 24 * 60 + n as i64, 0)).collect();
    catalog.apply(&first, &AllSyncOn, clock);
    catalog.apply(&later, &AllSyncOn, clock);
    assert!(catalog.offers()[&offer(0)].folded().is_some(), "the first adjustments are folded");
    let before = catalog.item_quantities();

    // A new adjustment (an unseen id) inside the fold, received within the horizon: it counts.
    let within = delivery(1_000, 0, StockChange::Adjusted { delta: 5 }, 10, 24 * 60);
    let plan = catalog.apply(std::slice::from_ref(&within), &AllSyncOn, clock);
    assert_eq!(plan.decisions[0].outcome, Outcome::Applied);
    assert_eq!(plan.decisions[0].reason(), None);

    // The same kind of event received past the horizon: whether it was applied cannot be told.
    let beyond = Delivery {
        received_at: start() + DEDUPE_HORIZON + Duration::minutes(11),
        ..delivery(1_001, 0, StockChange::Adjusted { delta: 7 }, 10, 0)
    };
    let plan = catalog.apply(std::slice::from_ref(&beyond), &AllSyncOn, clock);
    assert_eq!(plan.decisions[0].outcome, Outcome::Stale);
    assert_eq!(plan.decisions[0].reason(), Some("beyond_dedupe_horizon"));
    let quantity = |quantities: &std::collections::BTreeMap<_, i64>| quantities.values().sum::<i64>();
    assert_eq!(quantity(&catalog.item_quantities()), quantity(&before) + 5);
}

#[test]
fn a_clamped_adjustment_redelivered_after_its_claim_is_gone_is_not_counted_again() {
    let clock = ClockPolicy::default();
    let mut catalog = ReferenceCatalog::default();
    // A supplier whose clock runs an hour ahead: each event is ordered at its receipt plus
    // the five minutes allowed, an hour earlier than its own time.
    let ahead = |index, change, minute: i64| delivery(index, 0, change, 60 + minute, -60);
    let counted = ahead(2, StockChange::Adjusted { delta: 5 }, 1);
    catalog.apply(&[ahead(1, StockChange::Updated { quantity: 10 }, 0), counted.clone()], &AllSyncOn, clock);
    catalog.apply(&[ahead(3, StockChange::Updated { quantity: 7 }, 2)], &AllSyncOn, clock);
    let quantity = |catalog: &ReferenceCatalog| catalog.item_quantities().values().sum::<i64>();
    assert_eq!(quantity(&catalog), 7, "the newer snapshot supersedes the adjustment");
    assert_eq!(catalog.offers()[&offer(0)].clamped_until(), Some(start() + Duration::minutes(62)));

    // Past the claim retention from its own time the adjustment comes again. Its key is now
    // its own time, later than the snapshot that superseded it: it would be counted on top.
    let again = Delivery {
        received_at: start() + Duration::minutes(61) + clock.claim_retention() + Duration::days(1),
        ..counted
    };
    let plan = plan_batch(std::slice::from_ref(&again), &forgetting(&catalog), &AllSyncOn, clock);
    assert_eq!(plan.decisions[0].outcome, Outcome::Stale);
    assert_eq!(plan.decisions[0].reason(), Some("beyond_dedupe_horizon"));
    assert!(plan.items.is_empty(), "no quantity moves: {:?}", plan.items);
}

/// Past its claim, an event comes again with its type flipped and everything else as sent:
/// the same id, time and sequence, so the same ordering key. It is the same event, a
/// duplicate whatever else differs. An adjustment at the snapshot's own key used to be
/// applied, leaving a state no store could load again (a corrupt offer, a worker stopped at
/// every batch touching it); a snapshot at a listed adjustment's key replaced the quantity.
#[test]
fn an_event_redelivered_past_its_claim_with_its_type_flipped_is_a_duplicate() {
    let clock = ClockPolicy::default();
    let late = |delivery: &Delivery, change: StockChange| {
        let event = delivery.decoded.as_ref().expect("valid");
        let flipped = SupplierEvent::new(event.event_id(), event.offer().clone(), change, event.updated_at(), None)
            .expect("in range");
        Delivery { decoded: Ok(flipped), received_at: delivery.received_at + Duration::days(40) }
    };
    let snapshot = delivery(1, 0, StockChange::Updated { quantity: 10 }, 0, 0);
    let adjustment = delivery(2, 0, StockChange::Adjusted { delta: 4 }, 1, 0);
    let mut catalog = ReferenceCatalog::default();
    catalog.apply(&[snapshot.clone(), adjustment.clone()], &AllSyncOn, clock);

    for again in
        [late(&snapshot, StockChange::Adjusted { delta: -3 }), late(&adjustment, StockChange::Updated { quantity: 1 })]
    {
        let plan = plan_batch(std::slice::from_ref(&again), &forgetting(&catalog), &AllSyncOn, clock);
        assert_eq!(plan.decisions[0].outcome, Outcome::Duplicate, "{again:?}");
        assert!(plan.items.is_empty(), "no quantity moves: {:?}", plan.items);
    }
    let offer = catalog.offers()[&offer(0)].clone();
    let mut state = offer.clone();
    let key =
        |delivery: &Delivery| clock.effective(delivery.decoded.as_ref().expect("valid"), delivery.received_at).key;
    assert_eq!(state.apply(StockChange::Adjusted { delta: -3 }, key(&snapshot)), Outcome::Duplicate);
    assert_eq!(state.apply(StockChange::Updated { quantity: 1 }, key(&adjustment)), Outcome::Duplicate);
    assert_eq!(state, offer, "nothing changed");
}

/// Held events decided within one batch whatever its order: a copy of a held event naming
/// another offer (it cannot decide the journaled one) is no longer taken as the batch's copy
/// of the id, so a copy naming the right offer after it decides the event, as before it.
#[test]
fn a_copy_naming_another_offer_does_not_keep_a_held_event_held() {
    struct Off;
    impl catalog_core::SyncFlags for Off {
        fn check(&self, _: &TenantId, _: &SupplierId) -> Result<(), catalog_core::HeldReason> {
            Err(catalog_core::HeldReason::SupplierSyncOff)
        }
    }
    let clock = ClockPolicy::default();
    let held = delivery(1, 0, StockChange::Updated { quantity: 7 }, 0, 0);
    let event = held.decoded.as_ref().expect("valid");
    let elsewhere =
        SupplierEvent::new(event.event_id(), offer(1), event.change(), event.updated_at(), None).expect("in range");
    let elsewhere = Delivery { decoded: Ok(elsewhere), received_at: held.received_at + Duration::minutes(5) };
    let again = Delivery { received_at: held.received_at + Duration::minutes(5), ..held.clone() };
    for batch in [[elsewhere.clone(), again.clone()], [again.clone(), elsewhere.clone()]] {
        let mut catalog = ReferenceCatalog::default();
        catalog.apply(std::slice::from_ref(&held), &Off, clock);
        let outcomes: Vec<Outcome> =
            catalog.apply(&batch, &AllSyncOn, clock).decisions.iter().map(|decision| decision.outcome).collect();
        assert!(outcomes.contains(&Outcome::Applied), "{outcomes:?}");
        assert_eq!(catalog.item_quantities().values().sum::<i64>(), 7);
    }
}
