//! Re-deriving an item's quantity from its journal alone, by the core's own rule: what trace
//! coverage measures, and what a support answer rests on.
//!
//! An offer's quantity is its latest applied snapshot plus every applied adjustment newer than
//! that snapshot, never below zero; an item's quantity is the sum of its offers'. Every event
//! that ever changed an offer is journaled `applied` with its ordering key, so this needs the
//! journal's applied events and nothing of the offer's stored state: folded adjustments
//! (decision 0009) are re-derived from the events they were folded from.

use serde::Serialize;

use chrono::{DateTime, Utc};

use crate::decide::OfferState;
use crate::event::StockChange;
use crate::ids::{EventId, SupplierId};
use crate::ordering::OrderingKey;

/// One journaled `applied` event of an offer: its ordering key and what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppliedChange {
    /// The event's ordering key.
    pub key: OrderingKey,
    /// What it did: set a quantity or add a delta.
    pub change: StockChange,
}

/// The quantity an offer must hold after `applied` (in any order): the latest snapshot plus
/// every adjustment newer than it, never below zero, summed as the store sums (saturating).
pub fn rederive_offer(applied: &[AppliedChange]) -> i64 {
    let snapshot = applied
        .iter()
        .filter_map(|event| match event.change {
            StockChange::Updated { quantity } => Some((event.key, quantity)),
            StockChange::Adjusted { .. } => None,
        })
        .max_by_key(|(key, _)| *key);
    let base = snapshot.map_or(0, |(_, quantity)| quantity);
    let mut newer: Vec<(OrderingKey, i64)> = applied
        .iter()
        .filter_map(|event| match event.change {
            StockChange::Adjusted { delta } if snapshot.is_none_or(|(key, _)| event.key > key) => {
                Some((event.key, delta))
            }
            _ => None,
        })
        .collect();
    // Saturation depends on the order of the additions: add them in key order, as the offer
    // lists them.
    newer.sort_unstable_by_key(|(key, _)| *key);
    newer.iter().fold(base, |total, (_, delta)| total.saturating_add(*delta)).max(0)
}

/// What the store holds of one offer, and the journal's applied events for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferTrace {
    /// The supplier of the offer.
    pub supplier: SupplierId,
    /// The event the stored offer names as its winner (the greatest applied event still in
    /// effect), if it has one.
    pub winner: Option<EventId>,
    /// The journal's applied events of the offer, in any order.
    pub applied: Vec<AppliedChange>,
}

/// Why an item's stored state is not explained by its journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "gap", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TraceGap {
    /// The journal's applied events give another quantity than the store holds.
    QuantityDiffers {
        /// The quantity the store holds.
        stored: i64,
        /// The quantity the journal gives.
        rederived: i64,
    },
    /// An offer's winning event has no `applied` row in the journal.
    WinnerNotJournaled {
        /// The offer's supplier.
        supplier: SupplierId,
        /// The winning event the journal does not hold as applied.
        event_id: EventId,
    },
    /// Not checked within the grace period after its last change.
    NotChecked,
}

impl TraceGap {
    /// The stable name: metric label and JSON `gap`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TraceGap::QuantityDiffers { .. } => "quantity_differs",
            TraceGap::WinnerNotJournaled { .. } => "winner_not_journaled",
            TraceGap::NotChecked => "not_checked",
        }
    }
}

/// Checks that an item's stored quantity re-derives exactly from its journal, and that each
/// offer's winner is a journaled applied event. The first gap found, else `Ok`.
///
/// ```
/// use catalog_core::{check_item, OfferTrace, TraceGap};
///
/// let supplier = catalog_core::SupplierId::parse("acme").unwrap();
/// let no_events = [OfferTrace { supplier, winner: None, applied: Vec::new() }];
/// assert_eq!(check_item(0, &no_events), Ok(()));
/// assert_eq!(check_item(12, &no_events), Err(TraceGap::QuantityDiffers { stored: 12, rederived: 0 }));
/// ```
pub fn check_item(stored_quantity: i64, offers: &[OfferTrace]) -> Result<(), TraceGap> {
    for offer in offers {
        if let Some(winner) = offer.winner {
            if !offer.applied.iter().any(|event| event.key.event_id == winner) {
                return Err(TraceGap::WinnerNotJournaled { supplier: offer.supplier.clone(), event_id: winner });
            }
        }
    }
    let rederived = offers.iter().fold(0i64, |total, offer| total.saturating_add(rederive_offer(&offer.applied)));
    if rederived == stored_quantity {
        Ok(())
    } else {
        Err(TraceGap::QuantityDiffers { stored: stored_quantity, rederived })
    }
}

/// Whether the newest events of an item's journal are enough to check it: every offer has an
/// applied snapshot among them. An offer's quantity depends only on its latest snapshot and
/// the adjustments newer than it, so when `offers` hold a newest cut of the journal (every
/// event newer than one of them is there too) that passes this test, [`check_item`] gives
/// what the whole journal would, however long it is: a tracer reads a bounded tail, not
/// an item's whole history. Older applied events added to the cut (an offer's winner looked
/// up by id) do not change the answer.
///
/// ```
/// use catalog_core::{tail_settles, AppliedChange, OfferTrace, OrderingKey, StockChange};
///
/// let supplier = catalog_core::SupplierId::parse("acme").unwrap();
/// let key = OrderingKey { effective_at: chrono::DateTime::UNIX_EPOCH, sequence: 1, event_id: catalog_core::EventId(uuid::Uuid::nil()) };
/// let adjusted = AppliedChange { key, change: StockChange::Adjusted { delta: 2 } };
/// let updated = AppliedChange { key, change: StockChange::Updated { quantity: 5 } };
/// assert!(!tail_settles(&[OfferTrace { supplier: supplier.clone(), winner: None, applied: vec![adjusted] }]));
/// assert!(tail_settles(&[OfferTrace { supplier, winner: None, applied: vec![adjusted, updated] }]));
/// ```
pub fn tail_settles(offers: &[OfferTrace]) -> bool {
    offers.iter().all(|offer| offer.applied.iter().any(|event| matches!(event.change, StockChange::Updated { .. })))
}

/// How far back a journal reaches once retention has dropped its oldest rows: every row
/// received before `kept_since` may be gone (archived), every later one is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalReach {
    /// The oldest receipt the journal keeps.
    pub kept_since: DateTime<Utc>,
    /// How far an event's own time may run ahead of its receipt
    /// ([`ClockPolicy::max_skew`](crate::ClockPolicy)): an effective time is never later.
    pub max_skew: chrono::Duration,
}

impl JournalReach {
    /// Whether the journal row of an event with this key may have been dropped: the event may
    /// have been received before `kept_since`. One whose effective time is `max_skew` or more
    /// past `kept_since` was received after it, so its row is kept.
    pub fn may_have_dropped(&self, key: &OrderingKey) -> bool {
        key.effective_at < self.kept_since + self.max_skew
    }

    /// What an offer's own state counts that the journal's applied events `kept` lack and
    /// retention explains: its snapshot, its listed adjustments and what its fold sums (one
    /// change at the fold's greatest key) whose rows may have been dropped. With them added
    /// to `kept`, [`check_item`] re-derives the offer as the whole journal did before
    /// retention; a counted change the journal should still hold is not added, so its gap
    /// shows. `kept` must hold every kept applied event of the offer newer than its snapshot.
    /// A fold keeps no keys, only a count and a sum: once part of it may have been dropped,
    /// its missing part is made up whole, and a kept row of it lost is not told apart.
    ///
    /// ```
    /// use catalog_core::{AppliedChange, JournalReach, OfferState, OrderingKey, StockChange};
    ///
    /// let at = |minute: i64| chrono::DateTime::UNIX_EPOCH + chrono::Duration::minutes(minute);
    /// let key = |minute: i64, id: u128| OrderingKey { effective_at: at(minute), sequence: 0, event_id: catalog_core::EventId(uuid::Uuid::from_u128(id)) };
    /// let mut state = OfferState::default();
    /// state.apply(StockChange::Updated { quantity: 10 }, key(0, 1));
    /// state.apply(StockChange::Adjusted { delta: -3 }, key(600, 2));
    /// // The snapshot's day was archived; the adjustment is kept.
    /// let kept = [AppliedChange { key: key(600, 2), change: StockChange::Adjusted { delta: -3 } }];
    /// let reach = JournalReach { kept_since: at(300), max_skew: chrono::Duration::minutes(5) };
    /// let archived = reach.archived_changes(&state, &kept);
    /// assert_eq!(archived, [AppliedChange { key: key(0, 1), change: StockChange::Updated { quantity: 10 } }]);
    /// ```
    pub fn archived_changes(&self, state: &OfferState, kept: &[AppliedChange]) -> Vec<AppliedChange> {
        let missing = |key: &OrderingKey| self.may_have_dropped(key) && !kept.iter().any(|event| event.key == *key);
        let mut archived = Vec::new();
        if let Some(snapshot) = state.snapshot().filter(|snapshot| missing(&snapshot.key)) {
            archived.push(AppliedChange {
                key: snapshot.key,
                change: StockChange::Updated { quantity: snapshot.quantity },
            });
        }
        if let Some(folded) = state.folded() {
            // The fold sums every applied adjustment newer than the snapshot up to `through`:
            // what the kept ones do not add up to was dropped, if any of them may have been.
            let newer_than_snapshot = |key: &OrderingKey| state.snapshot().is_none_or(|snapshot| *key > snapshot.key);
            let (count, delta) = kept
                .iter()
                .filter(|event| newer_than_snapshot(&event.key) && event.key <= folded.through)
                .filter_map(|event| match event.change {
                    StockChange::Adjusted { delta } => Some(delta),
                    StockChange::Updated { .. } => None,
                })
                .fold((0u64, 0i64), |(count, total), delta| (count + 1, total.saturating_add(delta)));
            let oldest_may_be_dropped = state.snapshot().is_none_or(|snapshot| self.may_have_dropped(&snapshot.key));
            if count < folded.count && oldest_may_be_dropped {
                let change = StockChange::Adjusted { delta: folded.delta.saturating_sub(delta) };
                archived.push(AppliedChange { key: folded.through, change });
            }
        }
        archived.extend(state.adjustments().iter().filter(|adjustment| missing(&adjustment.key)).map(|adjustment| {
            AppliedChange { key: adjustment.key, change: StockChange::Adjusted { delta: adjustment.delta } }
        }));
        archived
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hour: i64) -> OrderingKey {
        OrderingKey {
            effective_at: DateTime::UNIX_EPOCH + chrono::Duration::hours(hour),
            sequence: 0,
            event_id: EventId(uuid::Uuid::from_u128(hour as u128 + 1)),
        }
    }

    /// An offer whose adjustments were partly folded (more than the listed bound within the
    /// horizon), retention dropping its snapshot and the older half of its fold: what the
    /// state counts and the kept rows re-derive its quantity; with a kept listed row lost as
    /// well, they do not.
    #[test]
    fn a_fold_partly_dropped_by_retention_is_made_up_from_the_state() {
        let mut state = OfferState::default();
        let mut journal = vec![AppliedChange { key: key(0), change: StockChange::Updated { quantity: 1_000 } }];
        state.apply(StockChange::Updated { quantity: 1_000 }, key(0));
        for hour in 1..=90 {
            let change = StockChange::Adjusted { delta: -(hour % 7) };
            state.apply(change, key(hour));
            journal.push(AppliedChange { key: key(hour), change });
        }
        let folded = state.folded().expect("more than the listed bound within the horizon folds");
        assert!(folded.count > 20, "{folded:?}");
        let reach = JournalReach { kept_since: key(20).effective_at, max_skew: chrono::Duration::minutes(5) };
        // Received when it says: the rows before hour 20 were dropped.
        let kept: Vec<AppliedChange> =
            journal.iter().filter(|event| !reach.may_have_dropped(&event.key)).copied().collect();
        let with_archived = |kept: &[AppliedChange]| {
            let mut applied = reach.archived_changes(&state, kept);
            applied.extend_from_slice(kept);
            rederive_offer(&applied)
        };
        assert_eq!(with_archived(&kept), state.quantity());
        let lost_one: Vec<AppliedChange> = kept.iter().filter(|event| event.key != key(89)).copied().collect();
        assert_ne!(with_archived(&lost_one), state.quantity(), "a kept listed row lost is not made up");
    }
}
