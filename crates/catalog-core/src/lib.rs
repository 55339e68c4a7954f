//! Pure domain rules of catalog-sync: decoding supplier events, ordering them, deciding
//! which one wins per offer, and planning a batch's state changes.
//!
//! Nothing here does I/O, reads a clock or makes a random id: time and ids are passed in,
//! so every rule is a function that tests can run exhaustively.
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
mod trace;
mod wire;

pub use decide::{
    Adjustment, FoldedAdjustments, HeldReason, ItemState, OfferState, Outcome, Snapshot, ADJUSTMENT_HORIZON,
    MAX_LISTED_ADJUSTMENTS,
};
pub use drift::{detect as detect_drift, Drift, DriftKind, Expected, Shown};
pub use event::{EventType, NewEventError, StockChange, SupplierEvent, MAX_QUANTITY};
pub use failure::{Classify, FailureClass};
pub use gate::{decide_step, green_since, GateFacts, GateSample, GateSettings, GateStep, Refusal, Rollout};
pub use ids::{EventId, IdError, ItemId, ItemKey, OfferKey, Sku, SupplierId, TenantId, ITEM_ID_NAMESPACE, MAX_ID_LEN};
pub use item::{CatalogItem, PublishResult};
pub use ordering::{ClockPolicy, Effective, OrderingKey, DEFAULT_MAX_CLOCK_SKEW};
pub use plan::{
    event_ids, plan_batch, touched_keys, AllSyncOn, BatchPlan, Decision, Delivery, ItemChange, OfferChange, PlanState,
    PriorEvent, Redelivery, SyncFlags,
};
pub use rederive::{check_item, rederive_offer, AppliedChange, OfferTrace, TraceGap};
pub use reference::ReferenceCatalog;
pub use signals::{
    is_stale, judge, PartitionProgress, Signal, SignalFacts, SignalName, SignalSettings, Signals, Status, Target,
    Threshold, UntracedItem, MAX_NAMED_ITEMS,
};
pub use trace::{InvalidTraceParent, TraceParent};
pub use wire::{decode, encode, RejectReason, Rejection, MAX_PAYLOAD_BYTES};
