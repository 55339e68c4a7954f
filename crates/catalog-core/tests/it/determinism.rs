//! Property tests of the rules that claim one answer whatever the order of their input:
//! planning is pure, lock order ignores delivery order, re-deriving ignores journal order,
//! and the judged queue lag ignores the order partitions are listed in.

use catalog_core::{
    check_item, event_ids, judge, plan_batch, rederive_offer, touched_keys, AllSyncOn, AppliedChange, ClockPolicy,
    Delivery, EventId, OfferTrace, OrderingKey, PartitionProgress, PlanState, ReferenceCatalog, SignalFacts,
    SignalSettings, StockChange, SupplierId,
};
use chrono::Duration;
use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::properties::{apply_all, base_time, deliveries, shuffled_batches, CASES};

/// The state a store loads for `deliveries` from `catalog`: offers, items and journal.
fn loaded(catalog: &ReferenceCatalog, deliveries: &[Delivery]) -> PlanState {
    let (offers, items) = touched_keys(deliveries);
    PlanState {
        offers: offers.iter().filter_map(|key| Some((key.clone(), catalog.offers().get(key)?.clone()))).collect(),
        items: items.iter().filter_map(|key| Some((key.clone(), *catalog.items().get(key)?))).collect(),
        prior: catalog.journal().clone(),
    }
}

fn is_strictly_increasing<T: Ord>(values: &[T]) -> bool {
    values.windows(2).all(|pair| pair[0] < pair[1])
}

proptest! {
    #![proptest_config(Config::with_cases(CASES))]

    /// `plan_batch` is pure: the same batch planned twice against the same state (each plan
    /// with its own hash maps, so its own iteration order) gives the same plan.
    #[test]
    fn planning_the_same_batch_twice_gives_the_same_plan(
        earlier in deliveries().prop_flat_map(shuffled_batches),
        batch in deliveries(),
    ) {
        let mut catalog = ReferenceCatalog::default();
        apply_all(&mut catalog, &earlier, &AllSyncOn);
        let first = plan_batch(&batch, &loaded(&catalog, &batch), &AllSyncOn, ClockPolicy::default());
        for _ in 0..3 {
            let again = plan_batch(&batch, &loaded(&catalog, &batch), &AllSyncOn, ClockPolicy::default());
            prop_assert_eq!(&again, &first);
        }
    }

    /// The keys and event ids a store locks come in one order, byte order, whatever order
    /// the batch's deliveries are in, each once.
    #[test]
    fn lock_order_is_the_same_whatever_the_delivery_order(
        (batch, shuffled) in deliveries().prop_flat_map(|batch| (Just(batch.clone()), Just(batch).prop_shuffle())),
    ) {
        let (offers, items) = touched_keys(&batch);
        let ids = event_ids(&batch);
        prop_assert!(is_strictly_increasing(&offers) && is_strictly_increasing(&items) && is_strictly_increasing(&ids));
        prop_assert_eq!(touched_keys(&shuffled), (offers, items));
        prop_assert_eq!(event_ids(&shuffled), ids);
    }
}

/// One offer's applied events, with values near the ends of `i64` so that saturation shows.
fn applied() -> impl Strategy<Value = Vec<AppliedChange>> {
    let big =
        prop_oneof![-20i64..20, Just(i64::MAX), Just(i64::MIN), i64::MAX - 20..=i64::MAX, i64::MIN..i64::MIN + 20];
    let change = prop_oneof![
        (0i64..20).prop_map(|quantity| StockChange::Updated { quantity }),
        (i64::MAX - 20..=i64::MAX).prop_map(|quantity| StockChange::Updated { quantity }),
        big.prop_filter("delta is non-zero", |delta| *delta != 0).prop_map(|delta| StockChange::Adjusted { delta }),
    ];
    proptest::collection::vec((change, 0i64..10, 0u64..3), 0..12).prop_map(|events| {
        events
            .into_iter()
            .enumerate()
            .map(|(n, (change, minute, sequence))| AppliedChange {
                key: OrderingKey {
                    effective_at: base_time() + Duration::minutes(minute),
                    sequence,
                    event_id: EventId(uuid::Uuid::from_u128(n as u128 + 1)),
                },
                change,
            })
            .collect()
    })
}

fn supplier(index: usize) -> SupplierId {
    SupplierId::parse(&format!("supplier-{index}")).expect("valid supplier")
}

proptest! {
    #![proptest_config(Config::with_cases(CASES))]

    /// An offer re-derives from its journal's applied events "in any order", saturating as
    /// the offer sums (in key order); an item's check does not depend on the order of its
    /// offers or of their events, for the stored quantity and for any other.
    #[test]
    fn rederiving_ignores_the_order_of_the_journal(
        offers in proptest::collection::vec(
            (applied().prop_flat_map(|applied| (Just(applied.clone()), Just(applied).prop_shuffle())), any::<bool>()),
            1..4,
        ),
        stored_offset in -2i64..2,
    ) {
        let trace = |index: usize, applied: &[AppliedChange], with_winner: bool| OfferTrace {
            supplier: supplier(index),
            winner: applied.iter().map(|event| event.key).max().filter(|_| with_winner).map(|key| key.event_id),
            applied: applied.to_vec(),
        };
        let in_order: Vec<OfferTrace> =
            offers.iter().enumerate().map(|(index, ((applied, _), winner))| trace(index, applied, *winner)).collect();
        let mut shuffled: Vec<OfferTrace> =
            offers.iter().enumerate().map(|(index, ((_, shuffled), winner))| trace(index, shuffled, *winner)).collect();
        for (offer, other) in in_order.iter().zip(&shuffled) {
            prop_assert_eq!(rederive_offer(&other.applied), rederive_offer(&offer.applied));
        }
        shuffled.reverse();
        let stored = in_order.iter().fold(0i64, |total, offer| total.saturating_add(rederive_offer(&offer.applied)));
        let stored = stored.saturating_add(stored_offset);
        prop_assert_eq!(check_item(stored, &shuffled), check_item(stored, &in_order));
    }

    /// The judged queue lag is the worst partition's, whatever order the store lists them in.
    #[test]
    fn queue_lag_is_the_worst_partition_whatever_their_order(
        (partitions, shuffled) in proptest::collection::vec((0i64..300, proptest::option::of(0i64..300)), 0..6)
            .prop_flat_map(|partitions| (Just(partitions.clone()), Just(partitions).prop_shuffle())),
    ) {
        let now = base_time() + Duration::seconds(300);
        let facts = |partitions: &[(i64, Option<i64>)]| SignalFacts {
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(index, (reported, oldest))| PartitionProgress {
                    source: "kafka:supplier-events".to_owned(),
                    partition: index.to_string(),
                    reported_at: base_time() + Duration::seconds(*reported),
                    oldest_unapplied_at: oldest.map(|oldest| base_time() + Duration::seconds(oldest)),
                })
                .collect(),
            ..SignalFacts::default()
        };
        let settings = SignalSettings::default();
        let judged = judge(None, &facts(&partitions), &settings, now).queue_lag;
        let judged_shuffled = judge(None, &facts(&shuffled), &settings, now).queue_lag;
        prop_assert_eq!((judged.value, judged.status), (judged_shuffled.value, judged_shuffled.status));
        // And it is the worst one's, not merely the same in both orders.
        let worst = facts(&partitions)
            .partitions
            .iter()
            .map(|partition| partition.lag(now, settings.stall_after).num_milliseconds())
            .max()
            .unwrap_or(0);
        prop_assert_eq!(judged.value, worst as f64 / 1000.0);
    }
}
