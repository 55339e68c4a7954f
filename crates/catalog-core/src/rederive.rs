//! Re-deriving an item's quantity from its journal alone, by the core's own rule: what trace
//! coverage measures, and what a support answer rests on.
//!
//! An offer's quantity is its latest applied snapshot plus every applied adjustment newer than
//! that snapshot, never below zero; an item's quantity is the sum of its offers'. Every event
//! that ever changed an offer is journaled `applied` with its ordering key, so this needs the
//! journal's applied events and nothing of the offer's stored state: folded adjustments
//! (decision 0009) are re-derived from the events they were folded from.

use serde::Serialize;

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
/// let key = OrderingKey { effective_at: chrono::Utc::now(), sequence: 1, event_id: catalog_core::EventId(uuid::Uuid::nil()) };
/// let adjusted = AppliedChange { key, change: StockChange::Adjusted { delta: 2 } };
/// let updated = AppliedChange { key, change: StockChange::Updated { quantity: 5 } };
/// assert!(!tail_settles(&[OfferTrace { supplier: supplier.clone(), winner: None, applied: vec![adjusted] }]));
/// assert!(tail_settles(&[OfferTrace { supplier, winner: None, applied: vec![adjusted, updated] }]));
/// ```
pub fn tail_settles(offers: &[OfferTrace]) -> bool {
    offers.iter().all(|offer| offer.applied.iter().any(|event| matches!(event.change, StockChange::Updated { .. })))
}
