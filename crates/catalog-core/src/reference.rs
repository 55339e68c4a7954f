//! An in-memory catalog that applies batches with the core rules alone: the reference
//! every store and end-to-end test is compared against.

use std::collections::{BTreeMap, HashMap};

use crate::decide::{ItemState, OfferState};
use crate::ids::{EventId, ItemKey, OfferKey};
use crate::ordering::ClockPolicy;
use crate::plan::{plan_batch, touched_keys, BatchPlan, Delivery, PlanState, PriorEvent, SyncFlags};

/// The whole catalog in memory: offers, items and the journal's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceCatalog {
    pub offers: BTreeMap<OfferKey, OfferState>,
    pub items: BTreeMap<ItemKey, ItemState>,
    pub journal: HashMap<EventId, PriorEvent>,
}

impl ReferenceCatalog {
    /// Plans `deliveries` against the current state and commits the plan, as a store would.
    pub fn apply(&mut self, deliveries: &[Delivery], flags: &dyn SyncFlags, clock: ClockPolicy) -> BatchPlan {
        let (offer_keys, item_keys) = touched_keys(deliveries);
        let state = PlanState {
            offers: offer_keys.iter().filter_map(|key| Some((key.clone(), self.offers.get(key)?.clone()))).collect(),
            items: item_keys.iter().filter_map(|key| Some((key.clone(), *self.items.get(key)?))).collect(),
            prior: self.journal.clone(),
        };
        let plan = plan_batch(deliveries, &state, flags, clock);
        for (delivery, decision) in deliveries.iter().zip(&plan.decisions) {
            let Ok(event) = &delivery.decoded else { continue };
            let claimed = decision.outcome.claims_event_id();
            // The first journal row of an id stays, with its payload; a held row is decided
            // afresh in place.
            let entry = self.journal.entry(event.event_id()).or_insert_with(|| PriorEvent {
                claimed,
                fingerprint: event.fingerprint(),
                first_received_at: decision.first_received_at,
                held_event: Some(event.clone()),
            });
            entry.claimed |= claimed;
            if entry.claimed {
                entry.held_event = None;
            }
        }
        for (key, change) in &plan.offers {
            self.offers.insert(key.clone(), change.state.clone());
        }
        for (key, change) in &plan.items {
            self.items.insert(key.clone(), change.state);
        }
        plan
    }

    /// Item quantities alone: what must be order-independent.
    pub fn item_quantities(&self) -> BTreeMap<ItemKey, i64> {
        self.items.iter().map(|(key, item)| (key.clone(), item.quantity)).collect()
    }
}
