//! The conflict rules: what an event does to an offer, and what an offer does to its item.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::StockChange;
use crate::ordering::OrderingKey;
use crate::wire::RejectReason;

/// Why an event was held rather than applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HeldReason {
    /// Sync is switched off for the whole tenant.
    TenantSyncOff,
    /// Sync is switched off for this supplier within the tenant.
    SupplierSyncOff,
}

impl HeldReason {
    /// The stable name, as journaled: `tenant_sync_off` or `supplier_sync_off`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HeldReason::TenantSyncOff => "tenant_sync_off",
            HeldReason::SupplierSyncOff => "supplier_sync_off",
        }
    }
}

/// What happened to one delivered event. Expected outcomes are values, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// It changed its offer: a new latest snapshot, or an adjustment newer than the snapshot.
    Applied,
    /// An `inventory.updated` older than the offer's latest snapshot: recorded, not applied.
    Stale,
    /// Its `event_id` was already accepted: counted on the original, never applied again.
    Duplicate,
    /// An `inventory.adjusted` older than the offer's latest snapshot, which already contains it.
    Superseded,
    /// Sync is off for its tenant or supplier: journaled, applied by a replay once it is on.
    Held(HeldReason),
    /// It broke a rule of the contract; it does not claim its `event_id`.
    Rejected(RejectReason),
}

impl Outcome {
    /// The stable outcome name: journal column and metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Stale => "stale",
            Outcome::Duplicate => "duplicate",
            Outcome::Superseded => "superseded",
            Outcome::Held(_) => "held",
            Outcome::Rejected(_) => "rejected",
        }
    }

    /// The reason that goes with `held` and `rejected`.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Outcome::Held(reason) => Some(reason.as_str()),
            Outcome::Rejected(reason) => Some(reason.as_str()),
            _ => None,
        }
    }

    /// Whether the event's id is now taken: a later event with the same id is a duplicate.
    /// Held events are not final: they are decided afresh on redelivery or replay.
    pub fn claims_event_id(&self) -> bool {
        matches!(self, Outcome::Applied | Outcome::Stale | Outcome::Superseded)
    }

    /// Rebuilds an outcome from its stored name and reason.
    pub fn from_parts(outcome: &str, reason: Option<&str>) -> Option<Self> {
        Some(match (outcome, reason) {
            ("applied", _) => Outcome::Applied,
            ("stale", _) => Outcome::Stale,
            ("duplicate", _) => Outcome::Duplicate,
            ("superseded", _) => Outcome::Superseded,
            ("held", Some("tenant_sync_off")) => Outcome::Held(HeldReason::TenantSyncOff),
            ("held", Some("supplier_sync_off")) => Outcome::Held(HeldReason::SupplierSyncOff),
            ("rejected", Some(reason)) => Outcome::Rejected(RejectReason::parse(reason)?),
            _ => return None,
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{}({reason})", self.as_str()),
            None => f.write_str(self.as_str()),
        }
    }
}

/// The latest `inventory.updated` applied to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    /// The ordering key of the event that set it.
    pub key: OrderingKey,
    /// The absolute quantity it set.
    pub quantity: i64,
}

/// Whether `key` orders after an event at `at` with no sequence, whatever the ids: later, or
/// at `at` with a sequence. At `at` with none, the ids alone would decide: taken for before
/// (a supplier's event at the very microsecond of a snapshot's `as_of`, with no sequence).
fn after_a_correction_at(key: &OrderingKey, at: DateTime<Utc>) -> bool {
    (key.effective_at, key.sequence) > (at, 0)
}

/// An applied `inventory.adjusted` newer than the offer's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Adjustment {
    /// The ordering key of the event that made it.
    pub key: OrderingKey,
    /// The signed change.
    pub delta: i64,
}

/// Adjustments folded into one sum, to bound an offer's state: every applied adjustment
/// newer than the snapshot and at or below `through`. The journal keeps each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FoldedAdjustments {
    /// The greatest key folded.
    pub through: OrderingKey,
    /// Their deltas, summed.
    pub delta: i64,
    /// How many were folded.
    pub count: u64,
}

/// How far behind an offer's newest adjustment an older one stays listed on its own; older
/// ones are folded into [`FoldedAdjustments`] (decision 0009). Within the horizon, any
/// arrival order gives the same offer; beyond it, a late snapshot older than the fold is
/// stale (`beyond_adjustment_horizon`), and a late adjustment joins the fold. An offer that
/// lists more than [`MAX_LISTED_ADJUSTMENTS`] within the horizon folds its oldest half at
/// once: its horizon is then as long as its newest 500 to 1,000 adjustments span (decision
/// 0053).
pub const ADJUSTMENT_HORIZON: chrono::Duration = chrono::Duration::hours(24);

/// An offer lists at most this many adjustments: the newest ones win over the time horizon
/// when an offer gets more than this within it.
pub const MAX_LISTED_ADJUSTMENTS: usize = 1_000;

/// Nothing is folded while an offer lists at most this many adjustments (the usual case).
const FOLD_ABOVE: usize = 64;

/// Everything needed to decide the next event for one offer.
///
/// Invariant: `adjustments` is sorted by key, holds no duplicate keys, and every key is
/// greater than the fold's `through`, which is greater than the snapshot's key. The quantity
/// is derived, never stored apart. No code outside this module can break it: the fields are
/// private, and parts read back go through [`OfferState::from_parts`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "OfferStateParts")]
pub struct OfferState {
    snapshot: Option<Snapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    folded: Option<FoldedAdjustments>,
    adjustments: Vec<Adjustment>,
    /// The latest supplier time (`updated_at`) of a clamped event decided on this offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    clamped_until: Option<DateTime<Utc>>,
}

/// An offer state as read back (a store's columns, JSON): checked before it is used.
#[derive(Deserialize)]
struct OfferStateParts {
    snapshot: Option<Snapshot>,
    #[serde(default)]
    folded: Option<FoldedAdjustments>,
    adjustments: Vec<Adjustment>,
    #[serde(default)]
    clamped_until: Option<DateTime<Utc>>,
}

impl TryFrom<OfferStateParts> for OfferState {
    type Error = InvalidOfferState;

    fn try_from(parts: OfferStateParts) -> Result<Self, Self::Error> {
        Ok(OfferState::from_parts(parts.snapshot, parts.folded, parts.adjustments)?
            .with_clamped_until(parts.clamped_until))
    }
}

/// Why parts read back do not make an [`OfferState`]: they break its ordering invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidOfferState {
    /// Two listed adjustments out of order, or one listed twice.
    #[error("listed adjustments must be in strictly increasing key order")]
    AdjustmentsUnordered,
    /// An adjustment or the fold at or below the snapshot, which already contains it.
    #[error("adjustments must be newer than the snapshot")]
    OlderThanSnapshot,
    /// A listed adjustment at or below the fold's greatest key.
    #[error("listed adjustments must be newer than the fold")]
    ListedWithinFold,
}

impl OfferState {
    /// An offer state from its parts as a store keeps them (see [`OfferState::snapshot`],
    /// [`OfferState::folded`], [`OfferState::adjustments`]), checked: the snapshot is older
    /// than the fold, which is older than every listed adjustment, listed in increasing
    /// key order.
    ///
    /// ```
    /// use catalog_core::{Adjustment, EventId, InvalidOfferState, OfferState, OrderingKey, Snapshot, StockChange};
    ///
    /// let at = "2026-06-01T12:00:00Z".parse().unwrap();
    /// let key = |sequence| OrderingKey { effective_at: at, sequence, event_id: EventId(uuid::Uuid::nil()) };
    /// let mut offer = OfferState::default();
    /// offer.apply(StockChange::Updated { quantity: 10 }, key(1));
    /// offer.apply(StockChange::Adjusted { delta: -3 }, key(2));
    /// let copy = OfferState::from_parts(offer.snapshot(), offer.folded(), offer.adjustments().to_vec()).unwrap();
    /// assert_eq!((copy.quantity(), &copy), (7, &offer));
    ///
    /// let older = vec![Adjustment { key: key(0), delta: 5 }];
    /// assert_eq!(OfferState::from_parts(offer.snapshot(), None, older), Err(InvalidOfferState::OlderThanSnapshot));
    /// ```
    pub fn from_parts(
        snapshot: Option<Snapshot>,
        folded: Option<FoldedAdjustments>,
        adjustments: Vec<Adjustment>,
    ) -> Result<Self, InvalidOfferState> {
        if adjustments.windows(2).any(|pair| pair[0].key >= pair[1].key) {
            return Err(InvalidOfferState::AdjustmentsUnordered);
        }
        let oldest_listed = adjustments.first().map(|adjustment| adjustment.key);
        if let Some(snapshot) = snapshot {
            let fold = folded.map(|folded| folded.through);
            if fold.into_iter().chain(oldest_listed).any(|key| key <= snapshot.key) {
                return Err(InvalidOfferState::OlderThanSnapshot);
            }
        }
        if let (Some(folded), Some(oldest)) = (folded, oldest_listed) {
            if oldest <= folded.through {
                return Err(InvalidOfferState::ListedWithinFold);
            }
        }
        Ok(Self { snapshot, folded, adjustments, clamped_until: None })
    }

    /// This state, remembering `clamped_until` ([`OfferState::clamped_until`]) as a store
    /// kept it.
    pub fn with_clamped_until(self, clamped_until: Option<DateTime<Utc>>) -> Self {
        Self { clamped_until, ..self }
    }

    /// The latest supplier time (`updated_at`) of an event whose clock was clamped when it was
    /// decided on this offer. Its ordering key was its receipt plus the clock allowance; once
    /// its claim is forgotten, a redelivery's key is its own time, later than that. Below
    /// this time a redelivery past the claim retention cannot be placed, so it never counts
    /// (decision 0019, "A clamped clock").
    pub fn clamped_until(&self) -> Option<DateTime<Utc>> {
        self.clamped_until
    }

    /// Remembers that an event with supplier time `updated_at`, clamped, was decided here.
    pub(crate) fn remember_clamped(&mut self, updated_at: DateTime<Utc>) {
        self.clamped_until = self.clamped_until.max(Some(updated_at));
    }

    /// Whether the event `event_id` is this offer's snapshot or one of its listed adjustments.
    pub(crate) fn holds(&self, event_id: crate::EventId) -> bool {
        self.snapshot.is_some_and(|snapshot| snapshot.key.event_id == event_id)
            || self.adjustments.iter().any(|adjustment| adjustment.key.event_id == event_id)
    }

    /// The newest `inventory.updated` applied, if any arrived.
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.snapshot
    }

    /// Adjustments older than the horizon, summed.
    pub fn folded(&self) -> Option<FoldedAdjustments> {
        self.folded
    }

    /// Adjustments newer than the snapshot and the fold, each once, in key order.
    pub fn adjustments(&self) -> &[Adjustment] {
        &self.adjustments
    }

    /// Latest snapshot + every adjustment newer than it (folded or listed), never below zero
    /// (an oversold supplier has nothing to offer; it does not eat another supplier's stock).
    pub fn quantity(&self) -> i64 {
        self.unclamped_quantity().max(0)
    }

    /// Latest snapshot + every adjustment newer than it, not held at zero: below zero by what
    /// the supplier oversold, which its next adjustments make up for before it offers again.
    /// A full refresh compares this with the supplier's snapshot: an oversold offer shows 0,
    /// as a snapshot of 0 does, and its deficit would outlive the refresh meant to reset it.
    ///
    /// ```
    /// use catalog_core::{Adjustment, EventId, OfferState, OrderingKey, Snapshot};
    ///
    /// let key = |second: u32| OrderingKey {
    ///     effective_at: format!("2026-06-01T12:00:{second:02}Z").parse().unwrap(),
    ///     sequence: 0,
    ///     event_id: EventId(uuid::Uuid::from_u128(second.into())),
    /// };
    /// let state = OfferState::from_parts(
    ///     Some(Snapshot { key: key(1), quantity: 2 }),
    ///     None,
    ///     vec![Adjustment { key: key(2), delta: -5 }],
    /// )
    /// .unwrap();
    /// assert_eq!((state.quantity(), state.unclamped_quantity()), (0, -3));
    /// ```
    pub fn unclamped_quantity(&self) -> i64 {
        let base = self.snapshot.map_or(0, |snapshot| snapshot.quantity);
        let base = base.saturating_add(self.folded.map_or(0, |folded| folded.delta));
        self.adjustments.iter().fold(base, |total, adjustment| total.saturating_add(adjustment.delta))
    }

    /// [`OfferState::unclamped_quantity`] as of a correction at `at` (an `inventory.updated`
    /// at `at` with no sequence, as a full refresh sends): without the listed adjustments
    /// after it, by ordering key. A supplier's snapshot as of `at` is compared with this: the
    /// correction keeps those later adjustments, so they are no difference. Meaningful only
    /// while [`OfferState::set_after`] is false.
    pub fn unclamped_quantity_as_of(&self, at: DateTime<Utc>) -> i64 {
        let later: i64 = self
            .adjustments
            .iter()
            .filter(|adjustment| after_a_correction_at(&adjustment.key, at))
            .fold(0, |total, adjustment| total.saturating_add(adjustment.delta));
        self.unclamped_quantity().saturating_sub(later)
    }

    /// Whether the offer's base (its snapshot, or its fold of old adjustments, which a hot
    /// offer makes within minutes) took effect after a correction at `at`: that correction
    /// would be decided stale, and a full refresh leaves the offer alone.
    pub fn set_after(&self, at: DateTime<Utc>) -> bool {
        self.snapshot.is_some_and(|snapshot| after_a_correction_at(&snapshot.key, at))
            || self.folded.is_some_and(|folded| after_a_correction_at(&folded.through, at))
    }

    /// The greatest applied event still in effect: the offer's winner, for tracing.
    pub fn winner(&self) -> Option<OrderingKey> {
        let snapshot = self.snapshot.map(|snapshot| snapshot.key);
        let folded = self.folded.map(|folded| folded.through);
        let adjustment = self.adjustments.last().map(|adjustment| adjustment.key);
        snapshot.max(folded).max(adjustment)
    }

    /// Whether an `inventory.updated` with `key`, older than the fold but newer than the
    /// snapshot, came too late to be weighed against the adjustments folded since: it is
    /// decided `stale` (`beyond_adjustment_horizon`).
    pub fn is_beyond_horizon(&self, key: OrderingKey) -> bool {
        self.folded.is_some_and(|folded| key <= folded.through)
            && self.snapshot.is_none_or(|snapshot| snapshot.key < key)
    }

    /// Folds listed adjustments older than the horizon behind the newest one, and the oldest
    /// beyond [`MAX_LISTED_ADJUSTMENTS`], into the sum.
    fn fold_old_adjustments(&mut self) {
        if self.adjustments.len() <= FOLD_ABOVE {
            return;
        }
        let Some(newest) = self.adjustments.last() else { return };
        let cutoff = newest.key.effective_at - ADJUSTMENT_HORIZON;
        let mut n_folded = self.adjustments.partition_point(|adjustment| adjustment.key.effective_at < cutoff);
        if self.adjustments.len() - n_folded > MAX_LISTED_ADJUSTMENTS {
            // Halve the list, so a hot offer folds once per many adjustments, not every time.
            n_folded = self.adjustments.len() - MAX_LISTED_ADJUSTMENTS / 2;
        }
        if n_folded == 0 {
            return;
        }
        let mut folded =
            self.folded.unwrap_or(FoldedAdjustments { through: self.adjustments[0].key, delta: 0, count: 0 });
        for adjustment in self.adjustments.drain(..n_folded) {
            folded.through = adjustment.key;
            folded.delta = folded.delta.saturating_add(adjustment.delta);
            folded.count += 1;
        }
        self.folded = Some(folded);
    }

    /// Decides one accepted, not-held event against this offer and applies it.
    ///
    /// Returns `Applied`, `Stale`, `Superseded`, or `Duplicate` when this very event
    /// (same ordering key, whose last part is the event id) is already in effect, whatever
    /// its type says now: a redelivery past its claim that calls an absolute quantity a delta,
    /// or a delta an absolute quantity, is the same event (the contract's duplicate "whatever
    /// else differs"), and applied again it would count twice, or leave an adjustment listed at
    /// the snapshot's own key, a state no store can load again.
    pub fn apply(&mut self, change: StockChange, key: OrderingKey) -> Outcome {
        let snapshot_key = self.snapshot.map(|snapshot| snapshot.key);
        if snapshot_key == Some(key) || self.holds_adjustment(key) {
            return Outcome::Duplicate;
        }
        match change {
            StockChange::Updated { quantity } => match snapshot_key {
                Some(current) if current > key => Outcome::Stale,
                // Older than folded adjustments: which of them it contains is no longer known.
                _ if self.is_beyond_horizon(key) => Outcome::Stale,
                _ => {
                    self.snapshot = Some(Snapshot { key, quantity });
                    // Adjustments older than the new snapshot are contained in it (all folded
                    // ones are: the fold is older than every listed adjustment).
                    if self.folded.is_some_and(|folded| folded.through < key) {
                        self.folded = None;
                    }
                    self.adjustments.retain(|adjustment| adjustment.key > key);
                    Outcome::Applied
                }
            },
            StockChange::Adjusted { delta } => {
                if snapshot_key.is_some_and(|current| current > key) {
                    return Outcome::Superseded;
                }
                if let Some(folded) = self.folded.as_mut().filter(|folded| key <= folded.through) {
                    // A late adjustment within the fold adds to its sum: addition does not care
                    // about order. (A repeat of its event id was refused by the journal.)
                    folded.delta = folded.delta.saturating_add(delta);
                    folded.count += 1;
                    return Outcome::Applied;
                }
                let position = self.adjustments.partition_point(|adjustment| adjustment.key < key);
                self.adjustments.insert(position, Adjustment { key, delta });
                self.fold_old_adjustments();
                Outcome::Applied
            }
        }
    }

    /// Whether the adjustment with `key` is in effect: listed, or the newest folded one (the
    /// fold keeps no other key).
    fn holds_adjustment(&self, key: OrderingKey) -> bool {
        self.folded.is_some_and(|folded| folded.through == key)
            || self.adjustments.binary_search_by(|adjustment| adjustment.key.cmp(&key)).is_ok()
    }
}

/// A catalog item's published-facing state: the sum of its offers and a change counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ItemState {
    /// Sum of the item's offer quantities; never below zero because no offer is.
    pub quantity: i64,
    /// Increases by exactly one each time a committed batch changes `quantity`, and only then.
    /// Zero for an item that never had a quantity other than zero.
    pub version: u64,
}
