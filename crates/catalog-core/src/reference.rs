//! An in-memory catalog that applies batches with the core rules alone: the reference
//! every store and end-to-end test is compared against.

use std::collections::{BTreeMap, HashMap};

use crate::decide::{ItemState, OfferState};
use crate::ids::{EventId, ItemKey, OfferKey};
use crate::item::CatalogItem;
use crate::ordering::ClockPolicy;
use crate::plan::{plan_batch, touched_keys, BatchPlan, Delivery, PlanState, PriorEvent, SyncFlags};

/// The whole catalog in memory: offers, items and the journal's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceCatalog {
    offers: BTreeMap<OfferKey, OfferState>,
    items: BTreeMap<ItemKey, ItemState>,
    journal: HashMap<EventId, PriorEvent>,
}

impl ReferenceCatalog {
    /// Plans `deliveries` against the current state and commits the plan, as a store would.
    ///
    /// Use it to compute what a correct system must hold for a set of events, whatever order
    /// and batches they arrive in:
    ///
    /// ```
    /// use catalog_core::{decode, AllSyncOn, ClockPolicy, Delivery, ReferenceCatalog};
    ///
    /// let at = "2026-06-01T12:00:00Z".parse().unwrap();
    /// let message = |id: &str, body: &str| Delivery {
    ///     decoded: decode(format!(r#"{{"event_id":"{id}","tenant_id":"canary","supplier_id":"acme",
    ///       "sku":"A-1",{body}}}"#).as_bytes()),
    ///     received_at: at,
    /// };
    /// let snapshot = message("018f6b1e-6a7b-7c3e-9a51-3f2f0d4c9b10",
    ///     r#""type":"inventory.updated","quantity":10,"updated_at":"2026-06-01T11:00:00Z""#);
    /// let adjustment = message("018f6b1e-6a7b-7c3e-9a51-3f2f0d4c9b11",
    ///     r#""type":"inventory.adjusted","delta":-3,"updated_at":"2026-06-01T11:30:00Z""#);
    ///
    /// let mut in_order = ReferenceCatalog::default();
    /// in_order.apply(&[snapshot.clone(), adjustment.clone()], &AllSyncOn, ClockPolicy::default());
    /// let mut reversed = ReferenceCatalog::default();
    /// reversed.apply(&[adjustment], &AllSyncOn, ClockPolicy::default());
    /// reversed.apply(&[snapshot], &AllSyncOn, ClockPolicy::default());
    ///
    /// assert_eq!(in_order.item_quantities(), reversed.item_quantities());
    /// assert_eq!(in_order.item_quantities().values().copied().collect::<Vec<_>>(), [7]);
    /// ```
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

    /// Every offer, by tenant, supplier and SKU.
    pub fn offers(&self) -> &BTreeMap<OfferKey, OfferState> {
        &self.offers
    }

    /// Every item's quantity and version, the sum of its offers.
    pub fn items(&self) -> &BTreeMap<ItemKey, ItemState> {
        &self.items
    }

    /// Every event decided, by id: whether it claims its id, its payload fingerprint and
    /// first reception.
    pub fn journal(&self) -> &HashMap<EventId, PriorEvent> {
        &self.journal
    }

    /// Every item as a channel would be told it, in key order.
    ///
    /// ```
    /// use catalog_core::ReferenceCatalog;
    ///
    /// assert_eq!(ReferenceCatalog::default().catalog_items().count(), 0);
    /// ```
    pub fn catalog_items(&self) -> impl Iterator<Item = CatalogItem> + '_ {
        self.items.iter().map(|(key, item)| {
            CatalogItem::new(key.clone(), item.quantity, item.version)
                .expect("a planned item's quantity is the sum of offers, none below zero")
        })
    }

    /// Item quantities alone: what must be order-independent.
    pub fn item_quantities(&self) -> BTreeMap<ItemKey, i64> {
        self.items.iter().map(|(key, item)| (key.clone(), item.quantity)).collect()
    }
}
