//! Pure domain rules of catalog-sync: decoding supplier events, ordering them, deciding
//! which one wins per offer, and planning a batch's state changes.
//!
//! Nothing here does I/O, reads a clock or makes a random id: time and ids are passed in,
//! so every rule is a function that tests can run exhaustively. Another team can depend on
//! it to validate supplier events exactly as catalog-sync does, or to compute what a correct
//! catalog must hold for a set of events.
//!
//! # A guide
//!
//! **Decode.** [`decode`] checks one message of the supplier-event contract and gives a
//! [`SupplierEvent`] or a [`Rejection`] with a stable [`RejectReason`] (`malformed_sku`, …) and
//! a detail for humans. [`SupplierEvent::new`] and [`encode`] go the other way, for producers.
//! Ids are types that carry their rules: [`TenantId`], [`SupplierId`], [`Sku`] (trimmed and
//! upper-cased), [`ItemKey::item_id`] (a stable UUID v5).
//!
//! **Order.** [`ClockPolicy::effective`] gives an event its [`OrderingKey`]: the supplier's
//! clock clamped to receive time + 5 minutes, then `sequence`, then `event_id`, so any two
//! events of an offer have one order whatever order they arrive in.
//!
//! **Decide and plan a batch.** [`plan_batch`] decides every delivery of a batch against the
//! offers' current state ([`PlanState`]) and the sync flags ([`SyncFlags`], or [`AllSyncOn`]):
//! one [`Decision`] each ([`Outcome::Applied`], `Stale`, `Duplicate`, `Superseded`, `Held`,
//! `Rejected`) and the net [`OfferChange`]s and [`ItemChange`]s a store writes. An item's
//! quantity is the sum of its offers, never below zero; its version moves only when the
//! quantity changes.
//!
//! ```
//! use catalog_core::{decode, plan_batch, AllSyncOn, ClockPolicy, Delivery, PlanState};
//!
//! let message = br#"{"event_id":"018f6b1e-6a7b-7c3e-9a51-3f2f0d4c9b10","type":"inventory.updated",
//!   "tenant_id":"canary","supplier_id":"acme","sku":" abc-123 ","quantity":42,
//!   "updated_at":"2026-06-01T12:00:00Z","sequence":1042}"#;
//! let received_at = "2026-06-01T12:00:01Z".parse().unwrap();
//! let deliveries = [Delivery { decoded: decode(message), received_at }];
//! let plan = plan_batch(&deliveries, &PlanState::default(), &AllSyncOn, ClockPolicy::default());
//! assert_eq!(plan.decisions[0].outcome.as_str(), "applied");
//! let (key, change) = plan.items.iter().next().unwrap();
//! assert_eq!((key.sku.as_str(), change.state.quantity, change.state.version), ("ABC-123", 42, 1));
//! ```
//!
//! **Check a system.** [`ReferenceCatalog`] applies batches in memory by the same rules: feed
//! it the events a system under test received, in any order and batching, and compare its
//! [`ReferenceCatalog::item_quantities`] with what the system holds. The example program
//! `examples/decide.rs` does this for NDJSON on standard input.
//!
//! **Publish.** A [`CatalogItem`] is what a sales channel is sent (its
//! [`CatalogItem::idempotency_key`] is the contract's `Idempotency-Key`); a
//! [`PublishResult`] is what the channel answered. [`ChannelRules`] say what one sales channel
//! is offered of it (buffer held back, share, cap, zero below a threshold) and under which
//! listing; an unmapped SKU is [`ChannelQuantity::Unmapped`], skipped rather than sent.
//!
//! **Explain and gate.** [`check_item`] re-derives an item's quantity from its journal,
//! [`judge`] computes the four launch signals, [`decide_step`] says whether a rollout may
//! widen, and [`detect_drift`] whether what a channel shows differs from what it accepted.
//!
//! # Stability
//!
//! The crate follows semantic versioning; `CHANGELOG.md` lists every change, and CI checks
//! the public API against the last release (`cargo xtask semver`), so a breaking change
//! cannot land without a new major version (a minor one while the version is 0.x). The stable
//! names (`as_str` of reasons, outcomes, signals) are part of the API: they are journaled and
//! used as metric labels.

#![deny(missing_docs)]

mod decide;
mod drift;
mod event;
mod failure;
mod gate;
mod ids;
mod item;
mod ordering;
mod plan;
mod rederive;
mod reference;
mod signals;
mod stock_rules;
mod trace;
mod wire;

pub use decide::{
    Adjustment, FoldedAdjustments, HeldReason, InvalidOfferState, ItemState, OfferState, Outcome, Snapshot,
    ADJUSTMENT_HORIZON, MAX_LISTED_ADJUSTMENTS,
};
pub use drift::{
    detect as detect_drift, out_of_reach as version_out_of_reach, Drift, DriftKind, Expected, Shown,
    MAX_REACHABLE_VERSION,
};
pub use event::{EventType, NewEventError, StockChange, SupplierEvent, MAX_QUANTITY};
pub use failure::{Classify, FailureClass};
pub use gate::{decide_step, green_since, GateFacts, GateSample, GateSettings, GateStep, Refusal, Rollout};
pub use ids::{EventId, IdError, ItemId, ItemKey, OfferKey, Sku, SupplierId, TenantId, ITEM_ID_NAMESPACE, MAX_ID_LEN};
pub use item::{CatalogItem, InvalidItem, PublishBody, PublishResult};
pub use ordering::{ClockPolicy, Effective, OrderingKey, DEFAULT_MAX_CLOCK_SKEW};
pub use plan::{
    event_ids, plan_batch, touched_keys, AllSyncOn, BatchPlan, Decision, Delivery, ItemChange, OfferChange, PlanState,
    PriorEvent, Redelivery, SyncFlags, DEDUPE_HORIZON,
};
pub use rederive::{check_item, rederive_offer, tail_settles, AppliedChange, JournalReach, OfferTrace, TraceGap};
pub use reference::ReferenceCatalog;
pub use signals::{
    is_stale, judge, PartitionProgress, Signal, SignalFacts, SignalName, SignalSettings, Signals, Status, Target,
    Threshold, UntracedItem, MAX_NAMED_ITEMS,
};
pub use stock_rules::{ChannelQuantity, ChannelRules, InvalidStockRule, Listings, StockRules};
pub use trace::{InvalidTraceParent, TraceParent};
pub use wire::{decode, decode_prefix, encode, RejectReason, Rejection, MAX_PAYLOAD_BYTES};

/// The README's example runs as a doctest, so the first thing a newcomer copies works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
