//! Batch planning: fold a batch of deliveries into one decision per delivery and the
//! minimal set of offer and item changes, so a store can apply it in one round trip.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decide::{HeldReason, ItemState, OfferState, Outcome};
use crate::event::SupplierEvent;
use crate::ids::{EventId, ItemId, ItemKey, OfferKey, SupplierId, TenantId};
use crate::ordering::{ClockPolicy, Effective};
use crate::wire::Rejection;

/// One message as it reached us: decoded (or rejected) and when it was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The decoded event, or why it could not be.
    pub decoded: Result<SupplierEvent, Rejection>,
    /// When catalog-sync received it (the clock allowance is measured from here).
    pub received_at: DateTime<Utc>,
}

impl AsRef<Delivery> for Delivery {
    fn as_ref(&self) -> &Delivery {
        self
    }
}

/// What the journal already knows of an event id, looked up by the store before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorEvent {
    /// `true` when the journaled outcome claims the id (applied, stale, superseded);
    /// `false` when it was held and is to be decided afresh.
    pub claimed: bool,
    /// [`SupplierEvent::fingerprint`] of the journaled event.
    pub fingerprint: u64,
    /// When the event was first received: its ordering key is computed from this.
    pub first_received_at: DateTime<Utc>,
    /// A held event as it was first journaled. The first accepted payload counts: when it is
    /// decided afresh, it is decided as journaled, whatever a redelivery carries.
    pub held_event: Option<SupplierEvent>,
}

/// Whether sync is on for a tenant and a supplier within it.
pub trait SyncFlags {
    /// `Ok(())` when events of this offer may be applied, else why they are held.
    fn check(&self, tenant: &TenantId, supplier: &SupplierId) -> Result<(), HeldReason>;
}

/// Every tenant and supplier switched on.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllSyncOn;

impl SyncFlags for AllSyncOn {
    fn check(&self, _: &TenantId, _: &SupplierId) -> Result<(), HeldReason> {
        Ok(())
    }
}

/// A delivery that repeats an event id seen before (in the journal or earlier in the batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redelivery {
    /// The repeated message's content differs from the original's: flag it for the supplier.
    pub payload_differs: bool,
}

/// The decision for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// What happened to the delivery.
    pub outcome: Outcome,
    /// The ordering key and clamp, for every delivery that decoded.
    pub effective: Option<Effective>,
    /// The received time the ordering key was computed from (the first one, for a held event
    /// decided afresh).
    pub first_received_at: DateTime<Utc>,
    /// Set when this delivery repeats an event id already journaled or earlier in the batch.
    pub redelivery: Option<Redelivery>,
    /// A snapshot decided `stale` because it is older than adjustments its offer folded
    /// beyond the horizon ([`crate::ADJUSTMENT_HORIZON`]), not older than its snapshot.
    pub beyond_horizon: bool,
    /// An event decided `stale` because it is older than [`DEDUPE_HORIZON`] behind its
    /// receipt, so its claim may be gone, and it is an adjustment within its offer's fold or
    /// would count at or below its offer's [`OfferState::clamped_until`]: whether it was
    /// applied before can no longer be told (decision 0019).
    pub beyond_dedupe_horizon: bool,
}

/// How old an event may be, by its effective time at receipt, before its claim may be gone,
/// and how old an adjustment within its offer's fold may be when it arrives. A redelivery of
/// an event whose claim is gone is never applied twice: a snapshot is recognised by its
/// offer's state (equal key: duplicate; older: stale), a listed adjustment by its key, a
/// superseded one by the snapshot, one within the fold is older than this and decided `stale`
/// (`beyond_dedupe_horizon`), and so is anything that would count at or below the latest
/// clamped supplier time its offer saw ([`OfferState::clamped_until`]). Stores keep claims
/// at least [`ClockPolicy::claim_retention`].
pub const DEDUPE_HORIZON: chrono::Duration = chrono::Duration::days(30);

impl ClockPolicy {
    /// The least time a store keeps an event id's claim after the later of the event's
    /// receipt and its own time (`updated_at`), so a redelivery whose claim is gone is
    /// [`DEDUPE_HORIZON`] old by its effective time, and that time is its own, not clamped:
    /// the horizon, plus the clock allowance (an effective time is at most that far past its
    /// receipt), plus a day for clocks between the store and the worker.
    pub fn claim_retention(&self) -> chrono::Duration {
        DEDUPE_HORIZON + self.max_skew.max(chrono::Duration::zero()) + chrono::Duration::days(1)
    }
}

/// Whether `change` with `key`, received (first) at `received_at`, is an adjustment that
/// would join its offer's fold and is older than [`DEDUPE_HORIZON`]: its claim may be gone.
fn beyond_dedupe_horizon(
    offer: &OfferState,
    change: crate::StockChange,
    key: crate::OrderingKey,
    received_at: DateTime<Utc>,
) -> bool {
    matches!(change, crate::StockChange::Adjusted { .. })
        && offer.folded().is_some_and(|folded| key <= folded.through)
        && offer.snapshot().is_none_or(|snapshot| snapshot.key < key)
        && key.effective_at < received_at - DEDUPE_HORIZON
}

/// Decides `event`, with `effective` from its first receipt `received_at`, on `offer`.
fn decide_on(
    offer: &mut OfferState,
    event: &SupplierEvent,
    effective: Effective,
    received_at: DateTime<Utc>,
    decision: &mut Decision,
) -> Outcome {
    let key = effective.key;
    let outcome = if beyond_dedupe_horizon(offer, event.change(), key, received_at) {
        decision.beyond_dedupe_horizon = true;
        Outcome::Stale
    } else if cannot_be_placed(offer, event, key, received_at) {
        // Its claim may be gone, and if it was decided here before, its key was earlier.
        if offer.holds(event.event_id()) {
            return Outcome::Duplicate;
        }
        let before = offer.clone();
        match offer.apply(event.change(), key) {
            Outcome::Applied => {
                *offer = before;
                decision.beyond_dedupe_horizon = true;
                Outcome::Stale
            }
            outcome => outcome,
        }
    } else {
        let outcome = offer.apply(event.change(), key);
        decision.beyond_horizon = outcome == Outcome::Stale && offer.is_beyond_horizon(key);
        outcome
    };
    if effective.clock_drift_clamped && outcome.claims_event_id() {
        offer.remember_clamped(event.updated_at());
    }
    outcome
}

/// Whether `event`, with `key` from its first receipt `received_at`, is older than
/// [`DEDUPE_HORIZON`] (its claim may be gone) and no later than a clamped event decided on
/// `offer` ([`OfferState::clamped_until`]): it may be that event again, first placed at its
/// receipt, earlier than its own time, so where it would go now says nothing (decision 0019).
fn cannot_be_placed(
    offer: &OfferState,
    event: &SupplierEvent,
    key: crate::OrderingKey,
    received_at: DateTime<Utc>,
) -> bool {
    key.effective_at < received_at - DEDUPE_HORIZON
        && offer.clamped_until().is_some_and(|clamped_until| event.updated_at() <= clamped_until)
}

/// An offer whose state the batch changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferChange {
    /// The offer's quantity before the batch.
    pub previous_quantity: i64,
    /// The offer's state after the batch.
    pub state: OfferState,
}

/// An item whose quantity the batch changed: it gets a new version and needs a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemChange {
    /// The item's stable id.
    pub item_id: ItemId,
    /// The item's state before the batch.
    pub previous: ItemState,
    /// The item's state after the batch.
    pub state: ItemState,
}

/// The result of planning one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchPlan {
    /// One per delivery, in delivery order.
    pub decisions: Vec<Decision>,
    /// Offers whose state changed, in key order (the order a store locks them in).
    pub offers: BTreeMap<OfferKey, OfferChange>,
    /// Items whose quantity changed, in key order.
    pub items: BTreeMap<ItemKey, ItemChange>,
}

impl BatchPlan {
    /// Number of decisions with each outcome name, for summaries and metrics.
    pub fn count_outcomes(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for decision in &self.decisions {
            *counts.entry(decision.outcome.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

/// The current state a batch is planned against, loaded (and locked) by the store.
#[derive(Debug, Clone, Default)]
pub struct PlanState {
    /// Current state of the offers the batch touches; a missing offer is new.
    pub offers: HashMap<OfferKey, OfferState>,
    /// Current state of the items the batch touches; a missing item is new.
    pub items: HashMap<ItemKey, ItemState>,
    /// Journal entries of the batch's event ids; a missing id was never journaled
    /// (or only rejected, which does not claim it).
    pub prior: HashMap<EventId, PriorEvent>,
}

/// The offer and item keys a batch touches, in the deterministic order a store must lock them.
pub fn touched_keys<D: AsRef<Delivery>>(deliveries: &[D]) -> (Vec<OfferKey>, Vec<ItemKey>) {
    let mut offers: Vec<OfferKey> = deliveries
        .iter()
        .filter_map(|delivery| delivery.as_ref().decoded.as_ref().ok())
        .map(|event| event.offer().clone())
        .collect();
    offers.sort_unstable();
    offers.dedup();
    let mut items: Vec<ItemKey> = offers.iter().map(OfferKey::item_key).collect();
    items.sort_unstable();
    items.dedup();
    (offers, items)
}

/// The event ids a batch carries, sorted and unique: the journal rows to look up (and lock).
pub fn event_ids<D: AsRef<Delivery>>(deliveries: &[D]) -> Vec<EventId> {
    let mut ids: Vec<EventId> = deliveries
        .iter()
        .filter_map(|delivery| match &delivery.as_ref().decoded {
            Ok(event) => Some(event.event_id()),
            Err(rejection) => rejection.event_id,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Plans a batch: decides every delivery in order, as if applied one by one, and returns
/// the decisions plus only the net changes. Pure: the same inputs give the same plan.
///
/// Order independence: for any permutation of the same deliveries, and any split into
/// batches applied in turn, the final offer states and item quantities are the same.
/// Decisions and item versions describe the path taken, so they may differ.
///
/// The one exception is an event more than [`DEDUPE_HORIZON`] older than its receipt, whose
/// claim may be gone: it counts only when its offer's fold and clamped time
/// ([`OfferState::clamped_until`]) do not cover it (else `beyond_dedupe_horizon`), and
/// whether they do depends on what the offer saw before it. Refusing it is what keeps a
/// redelivery from counting twice (decision 0019); the property tests draw events within
/// the horizon. Within it, two rules chosen elsewhere make order matter too (decision 0053):
/// a snapshot older than its offer's fold of adjustments is `stale`
/// (`beyond_adjustment_horizon`, decision 0009), where in time order it came before the fold
/// and won; and a clamped event's key is its first decided copy's receipt + 5 minutes, so
/// copies received at different times may place it differently.
pub fn plan_batch<D: AsRef<Delivery>>(
    deliveries: &[D],
    state: &PlanState,
    flags: &dyn SyncFlags,
    clock: ClockPolicy,
) -> BatchPlan {
    let mut offers: HashMap<&OfferKey, OfferState> = HashMap::new();
    // Ids decided earlier in this batch, with the fingerprint of the payload that counts: the
    // journaled one's, else the batch's first copy's.
    let mut seen_in_batch: HashMap<EventId, u64> = HashMap::new();
    let mut decisions = Vec::with_capacity(deliveries.len());

    for delivery in deliveries {
        let delivery = delivery.as_ref();
        let event = match &delivery.decoded {
            Ok(event) => event,
            Err(rejection) => {
                decisions.push(Decision {
                    outcome: Outcome::Rejected(rejection.reason),
                    effective: None,
                    first_received_at: delivery.received_at,
                    redelivery: None,
                    beyond_horizon: false,
                    beyond_dedupe_horizon: false,
                });
                continue;
            }
        };
        let fingerprint = event.fingerprint();
        let prior = state.prior.get(&event.event_id());
        let first_received_at = prior.map_or(delivery.received_at, |prior| prior.first_received_at);
        // The first accepted payload counts: a held event is decided as it was journaled.
        let journaled = prior.and_then(|prior| prior.held_event.as_ref());
        let decided = journaled.unwrap_or(event);
        let effective = clock.effective(decided, first_received_at);
        let mut decision = Decision {
            outcome: Outcome::Duplicate,
            effective: Some(effective),
            first_received_at,
            redelivery: None,
            beyond_horizon: false,
            beyond_dedupe_horizon: false,
        };

        if let Some(first_fingerprint) = seen_in_batch.get(&event.event_id()) {
            decision.redelivery = Some(Redelivery { payload_differs: *first_fingerprint != fingerprint });
            decisions.push(decision);
            continue;
        }
        if let Some(prior) = prior {
            decision.redelivery = Some(Redelivery { payload_differs: prior.fingerprint != fingerprint });
            // A redelivery naming another offer than the journaled event cannot decide it here
            // (the store loaded the offer it names): the journaled event stays held, for a
            // redelivery of itself or a replay, which decides it from the journal. Not taken
            // as the batch's copy of the id either: a copy naming the right offer later in the
            // batch decides it, as it would in a batch of its own.
            if !prior.claimed && decided.offer() != event.offer() {
                decisions.push(decision);
                continue;
            }
        }
        seen_in_batch.insert(event.event_id(), prior.map_or(fingerprint, |prior| prior.fingerprint));
        if prior.is_some_and(|prior| prior.claimed) {
            decisions.push(decision);
            continue;
        }
        let event = decided;

        let offer_key = event.offer();
        decision.outcome = match flags.check(&offer_key.tenant, &offer_key.supplier) {
            Err(reason) => Outcome::Held(reason),
            Ok(()) => {
                let offer =
                    offers.entry(offer_key).or_insert_with(|| state.offers.get(offer_key).cloned().unwrap_or_default());
                decide_on(offer, event, effective, first_received_at, &mut decision)
            }
        };
        decisions.push(decision);
    }

    net_changes(decisions, offers, state)
}

fn net_changes(decisions: Vec<Decision>, offers: HashMap<&OfferKey, OfferState>, state: &PlanState) -> BatchPlan {
    let mut plan = BatchPlan { decisions, ..BatchPlan::default() };
    let mut item_quantities: BTreeMap<ItemKey, i64> = BTreeMap::new();
    let unseen = OfferState::default();
    for (offer_key, new_state) in offers {
        let before = state.offers.get(offer_key).unwrap_or(&unseen);
        if *before == new_state {
            continue;
        }
        let previous_quantity = before.quantity();
        let difference = new_state.quantity() - previous_quantity;
        if difference != 0 {
            *item_quantities.entry(offer_key.item_key()).or_insert(0) += difference;
        }
        plan.offers.insert(offer_key.clone(), OfferChange { previous_quantity, state: new_state });
    }
    for (item_key, difference) in item_quantities {
        if difference == 0 {
            continue;
        }
        let previous = state.items.get(&item_key).copied().unwrap_or_default();
        let state = ItemState { quantity: previous.quantity + difference, version: previous.version + 1 };
        let item_id = item_key.item_id();
        plan.items.insert(item_key, ItemChange { item_id, previous, state });
    }
    plan
}

impl Decision {
    /// The one reason recorded with this decision in the journal, if any:
    /// the held or rejection reason, `payload_differs` for a redelivery whose content
    /// changed, `beyond_adjustment_horizon` for a snapshot older than folded adjustments,
    /// `beyond_dedupe_horizon` for an event older than [`DEDUPE_HORIZON`] that cannot be told
    /// from one applied before (within the fold, or at or below a clamped time),
    /// else `clock_drift_clamped` when the supplier clock was clamped.
    pub fn reason(&self) -> Option<&'static str> {
        if let Some(reason) = self.outcome.reason() {
            return Some(reason);
        }
        if self.redelivery.is_some_and(|redelivery| redelivery.payload_differs) {
            return Some("payload_differs");
        }
        if self.beyond_horizon {
            return Some("beyond_adjustment_horizon");
        }
        if self.beyond_dedupe_horizon {
            return Some("beyond_dedupe_horizon");
        }
        if self.effective.is_some_and(|effective| effective.clock_drift_clamped) {
            return Some("clock_drift_clamped");
        }
        None
    }
}
