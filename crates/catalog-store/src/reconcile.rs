//! The reconciliation role: pages of what each channel should show, and corrections of drift
//! (`catalog_core::detect_drift`) as new item versions, journaled.

use async_trait::async_trait;
use catalog_core::{Drift, DriftKind, ItemId, Shown, Sku, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::StoreError;

/// One item as a channel should show it, with what the channel last accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelItem {
    pub item_id: ItemId,
    pub sku: Sku,
    pub quantity: i64,
    pub version: u64,
    /// The newest version the channel is known to hold (`published_versions`).
    pub accepted: Option<u64>,
    /// Whether a version of the item is on its way to the channel: queued in the outbox, or
    /// held by an open dead letter (retried by auto-heal or an operator). Without either, a
    /// version the channel did not accept is given up on, not in flight
    /// (`catalog_core::Expected::settled`).
    pub pending: bool,
}

/// A drift to correct: the item gets `corrected_version` with its current quantity, queued on
/// every channel serving its tenant, but only if it is still at `seen_version` (a batch that
/// changed it meanwhile has queued a newer version already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftCorrection {
    pub item_id: ItemId,
    pub seen_version: u64,
    pub kind: DriftKind,
    pub shown: Option<Shown>,
    pub corrected_version: u64,
}

impl DriftCorrection {
    /// The correction of `drift`, found on `item_id` at `seen_version`.
    pub fn of(item_id: ItemId, seen_version: u64, drift: Drift) -> Self {
        Self { item_id, seen_version, kind: drift.kind, shown: drift.shown, corrected_version: drift.corrected_version }
    }
}

/// A drift as journaled: for support and for the drift metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftRecord {
    pub item_id: ItemId,
    pub tenant_id: TenantId,
    pub sku: Sku,
    pub channel: String,
    pub kind: DriftKind,
    pub shown: Option<Shown>,
    pub catalog_version: u64,
    pub corrected_version: u64,
    pub detected_at: DateTime<Utc>,
}

/// Reading what channels should show, and correcting drift.
#[async_trait]
pub trait ReconcileStore: Send + Sync + std::fmt::Debug {
    /// Tenants with at least one item served by `channel`, in order.
    async fn reconcile_tenants(&self, channel: &str) -> Result<Vec<TenantId>, StoreError>;

    /// Up to `limit` items of `tenant` with an id greater than `after`, ordered by item id
    /// (the storefront's list order), with what `channel` last accepted and whether a version
    /// is on its way to it.
    async fn reconcile_page(
        &self,
        channel: &str,
        tenant: &TenantId,
        after: Option<ItemId>,
        limit: usize,
    ) -> Result<Vec<ChannelItem>, StoreError>;

    /// Applies the corrections found on `channel` in one transaction and journals each;
    /// returns the items that got a new version, in item id order (the others had moved on
    /// since they were read: what the channel showed was a version in flight, not drift).
    async fn correct_drifts(&self, channel: &str, corrections: &[DriftCorrection]) -> Result<Vec<ItemId>, StoreError>;

    /// The newest journaled drifts of an item, newest first.
    async fn item_drifts(&self, item_id: ItemId, limit: usize) -> Result<Vec<DriftRecord>, StoreError>;

    /// Drifts corrected since `since` per channel and kind, in that order: a channel's health.
    async fn drift_counts(&self, since: DateTime<Utc>) -> Result<Vec<DriftCount>, StoreError>;
}

impl From<crate::ChannelCount> for DriftCount {
    fn from(count: crate::ChannelCount) -> Self {
        Self { channel: count.channel, kind: count.key, drifts: count.n, last_at: count.last_at }
    }
}

/// A channel's drifts of one kind corrected since a time.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftCount {
    pub channel: String,
    /// `missing`, `quantity_differs`, `version_behind`, `version_ahead`.
    pub kind: String,
    pub drifts: u64,
    /// The latest of them.
    pub last_at: DateTime<Utc>,
}
