//! The rollout role: each tenant's stage of the launch gate (`catalog_core::Rollout`), which
//! drives its sync flags in the same transaction, its history, and support's sign-offs of
//! sampled traces.

use std::collections::BTreeSet;

use async_trait::async_trait;
use catalog_core::{ItemId, Rollout, Sku, SupplierId, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::StoreError;
use crate::model::TenantFlags;

/// A tenant's rollout and when it last changed (`None`: never, the tenant is closed as far
/// as the gate knows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutState {
    pub rollout: Rollout,
    pub changed_at: Option<DateTime<Utc>>,
}

/// A step the gate allowed, to be written: `from` is the rollout the decision was made on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutChange {
    pub tenant: TenantId,
    pub from: Rollout,
    /// When `from` last changed or restarted, as read with it (`RolloutState::changed_at`).
    /// The step is written only if the stage has not changed or restarted since: a widen or
    /// an open decided on the stage's age is never written over a restart that lands between
    /// the decision's read and its write (decision 0017).
    pub from_since: Option<DateTime<Utc>>,
    /// The tenant's sync switch as the step was decided on (`TenantFlags::sync_enabled`;
    /// `None`: the tenant had no flags yet, which reads as the default). A step that switches
    /// the tenant on (a canary, a widen, an open) is written only if the switch is still so:
    /// a kill switch thrown between the decision and the write is never thrown back by the
    /// step. A rollback is written whatever it is ([`switch_as_decided`]).
    pub from_sync: Option<bool>,
    pub to: Rollout,
    /// The step's name (`canary`, `widen`, `open`, `rollback`).
    pub step: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// One change in a tenant's rollout history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutChangeRecord {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub step: String,
    pub from_stage: String,
    pub to_stage: String,
    /// The suppliers applied after the change (canary and widening).
    pub suppliers: Vec<String>,
}

/// Support signed off one sampled trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOff {
    pub tenant: TenantId,
    pub item_id: ItemId,
    pub sku: Sku,
    /// The item's version when it was traced and signed.
    pub version: u64,
    pub signed_by: String,
    pub signed_at: DateTime<Utc>,
    pub note: String,
}

/// A stored sign-off.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignOffRecord {
    pub sign_off_id: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub item_id: ItemId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub sku: Sku,
    pub version: u64,
    pub signed_by: String,
    pub signed_at: DateTime<Utc>,
    pub note: String,
}

/// An item with an event applied since some time: a candidate for the gate's sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedItem {
    pub item_id: ItemId,
    pub sku: Sku,
    /// When its first event since then was applied (received).
    pub first_applied_at: DateTime<Utc>,
}

impl AppliedItem {
    /// An applied item as a store reads it: its SKU checked, its id that of the tenant's key.
    pub fn read(tenant: &TenantId, sku: &str, first_applied_at: DateTime<Utc>) -> Result<Self, StoreError> {
        let sku = crate::rows::sku(sku)?;
        let item_id = catalog_core::ItemKey { tenant: tenant.clone(), sku: sku.clone() }.item_id();
        Ok(Self { item_id, sku, first_applied_at })
    }
}

/// Whether switching sync on within `stage` starts the stage's day again: in a canary or a
/// widening stage, when what is switched on (the tenant, or a supplier of the stage) was off.
/// While it was off nothing of it applied, so its signals were green by having nothing to
/// measure, and a day the gate counts must measure the stage (decision 0017).
pub fn restarts_stage(stage: &Rollout, was_off: bool) -> bool {
    was_off && matches!(stage, Rollout::Canary { .. } | Rollout::Widening { .. })
}

/// Whether `change` may be written over the tenant's flags as they are (`flags_before`, read
/// under the lock it is written under): a step that switches the tenant on (canary, widen,
/// open) only while its switch is still the one the step was decided on (`from_sync`; none
/// read as `default_enabled`), so a kill switch thrown meanwhile is never thrown back; a
/// rollback whatever the switch, since it switches the tenant off anyway (a kill switch
/// thrown at the same moment must not make the emergency path answer 409).
pub fn switch_as_decided(change: &RolloutChange, flags_before: &TenantFlags, default_enabled: bool) -> bool {
    change.to == Rollout::Closed || flags_before.sync_enabled == change.from_sync.unwrap_or(default_enabled)
}

/// The suppliers a rollout applies, for its row (empty for closed and open).
pub fn rollout_suppliers(rollout: &Rollout) -> BTreeSet<SupplierId> {
    match rollout {
        Rollout::Canary { supplier } => BTreeSet::from([supplier.clone()]),
        Rollout::Widening { suppliers } => suppliers.clone(),
        Rollout::Closed | Rollout::Open => BTreeSet::new(),
    }
}

/// A rollout from its stored stage and suppliers; anything else is corrupt.
pub fn stored_rollout(stage: &str, suppliers: &[String]) -> Result<Rollout, StoreError> {
    let parsed = suppliers
        .iter()
        .map(|supplier| crate::rows::supplier(supplier))
        .collect::<Result<BTreeSet<SupplierId>, StoreError>>()?;
    match (stage, parsed.len()) {
        ("closed", _) => Ok(Rollout::Closed),
        ("open", _) => Ok(Rollout::Open),
        ("canary", 1) => Ok(Rollout::Canary { supplier: parsed.into_iter().next().expect("one supplier") }),
        ("widening", n) if n > 0 => Ok(Rollout::Widening { suppliers: parsed }),
        _ => Err(StoreError::Corrupt(format!("rollout stage {stage:?} with suppliers {suppliers:?}"))),
    }
}

/// The gate's state per tenant, its history, and sign-offs.
#[async_trait]
pub trait RolloutStore: Send + Sync + std::fmt::Debug {
    /// A tenant's rollout (closed, never changed, for a tenant the gate never moved).
    async fn rollout(&self, tenant: &TenantId) -> Result<RolloutState, StoreError>;

    /// Writes an allowed step in one transaction: the rollout, its history row, and the sync
    /// flags it implies (closed: the tenant off, so its events are held; canary and
    /// widening: the tenant on, the listed suppliers on and every other supplier off, also
    /// for a supplier first seen later; open: the tenant and every supplier on). Returns the
    /// tenant's flags as they were just before the step, read under the lock it is written
    /// under (whose held events the step lets through is told by them, not by a read taken
    /// before); `None`, changing nothing, when the stored rollout is no longer `change.from`
    /// as of `change.from_since`, or, for a step that switches the tenant on, the tenant's
    /// switch no longer `change.from_sync` ([`switch_as_decided`]).
    async fn change_rollout(&self, change: &RolloutChange) -> Result<Option<TenantFlags>, StoreError>;

    /// Switches sync `on` or off for `tenant` (or for one supplier of it) while its rollout is
    /// still `since` (its stage, as of when it last changed), the one the caller allowed the
    /// switch by, in one transaction under the lock every rollout change takes. Returns
    /// `false`, switching nothing, when the rollout moved meanwhile: a rollback committed
    /// between the check and a switch on is never undone, nor a canary by the switch off of a
    /// rollback decided on a tenant the gate had never moved. Switching on what was off in a
    /// canary or widening stage starts the stage's day again (`changed_at` is now;
    /// [`restarts_stage`]), and writes a history row (step `restart`, by `actor`), so the
    /// gate's "stage too new" has its entry in the history.
    async fn switch_within(
        &self,
        tenant: &TenantId,
        supplier: Option<&SupplierId>,
        since: &RolloutState,
        on: bool,
        actor: &str,
    ) -> Result<bool, StoreError>;

    /// A tenant's rollout changes, newest first, at most `limit`.
    async fn rollout_history(&self, tenant: &TenantId, limit: usize) -> Result<Vec<RolloutChangeRecord>, StoreError>;

    /// Records a sign-off, returning its id.
    async fn record_sign_off(&self, sign_off: &SignOff) -> Result<i64, StoreError>;

    /// A tenant's sign-offs at or after `since`, oldest first.
    async fn sign_offs(&self, tenant: &TenantId, since: DateTime<Utc>) -> Result<Vec<SignOffRecord>, StoreError>;

    /// Up to `limit` distinct items of `tenant` with an event applied (received) at or after
    /// `since`, the first applied first.
    async fn applied_items_since(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AppliedItem>, StoreError>;
}
