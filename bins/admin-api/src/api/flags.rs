//! Tenants and their sync flags: listing, switching (audited), and applying held events when a switch goes on.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::{Extension, Json};
use catalog_app::replay::{replay_held, HeldRequest};
use catalog_core::{Rollout, SupplierId, TenantId};
use catalog_store::Role;
use serde::{Deserialize, Serialize};

use super::{audit, supplier, tenant};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub tenant_id: String,
    pub sync_enabled: bool,
    pub suppliers: Vec<SupplierView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SupplierView {
    pub supplier_id: String,
    pub sync_enabled: bool,
}

async fn tenant_view(state: &AppState, tenant: &TenantId) -> Result<Option<TenantView>, ApiError> {
    let flags = state.store.tenant_flags(tenant).await?;
    Ok(flags.map(|flags| TenantView {
        tenant_id: flags.tenant.to_string(),
        sync_enabled: flags.sync_enabled,
        suppliers: flags
            .suppliers
            .iter()
            .map(|(supplier, enabled)| SupplierView { supplier_id: supplier.to_string(), sync_enabled: *enabled })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/tenants", tag = "flags", responses((status = 200, description = "Every tenant with its flags", body = Vec<TenantView>), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list_tenants(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    caller.require(Role::Viewer)?;
    let mut tenants = Vec::new();
    for tenant in state.store.tenant_ids().await? {
        if let Some(view) = tenant_view(&state, &tenant).await? {
            tenants.push(view);
        }
    }
    Ok(Json(tenants))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SyncSwitch {
    pub enabled: bool,
    /// Switch a tenant or supplier with no event seen yet, making it (say, to hold its
    /// events from the first): without it, such an id is refused 404 as a likely typo.
    #[serde(default)]
    pub create: bool,
}

/// What a switch of a tenant or supplier with no event seen yet does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    /// Refused 404: most likely a typo, and a switch of it would leave the one meant alone.
    Refuse,
    /// Made, with the switch: its first event finds it.
    Create,
}

impl Unseen {
    fn of(switch: &SyncSwitch) -> Unseen {
        if switch.create {
            Unseen::Create
        } else {
            Unseen::Refuse
        }
    }
}

/// What a switch did: the flag before and after, and the held events applied when it went on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SwitchResult {
    pub before: Option<bool>,
    pub after: bool,
    pub events_replayed: usize,
    pub events_by_outcome: BTreeMap<&'static str, u64>,
    pub items_touched: usize,
    pub items_changed: usize,
}

async fn apply_held(
    state: &AppState,
    tenant: &TenantId,
    supplier: Option<SupplierId>,
) -> Result<catalog_app::replay::ReplaySummary, ApiError> {
    let request = HeldRequest { tenant: tenant.clone(), supplier, since: super::held_since() };
    replay_held(&*state.store, &request).await.map_err(|error| ApiError::Internal(anyhow::Error::new(error)))
}

fn switch_result(
    before: Option<bool>,
    after: bool,
    summary: Option<catalog_app::replay::ReplaySummary>,
) -> SwitchResult {
    let summary = summary.unwrap_or_default();
    SwitchResult {
        before,
        after,
        events_replayed: summary.n_replayed,
        events_by_outcome: summary.outcomes,
        items_touched: summary.touched.len(),
        items_changed: summary.changed.len(),
    }
}

#[utoipa::path(put, path = "/v1/tenants/{tenant_id}/sync", tag = "flags", params(("tenant_id" = String, Path, description = "Tenant id")), request_body = SyncSwitch, responses((status = 200, description = "Switched; held events applied when on", body = SwitchResult), (status = 404, description = "No event of the tenant or supplier seen yet, and no `create`", body = ErrorBody), (status = 409, description = "Switching on refused: `gate_managed` (the gate rolls the tenant out: use its steps), `rollout_changed` (its rollout changed meanwhile) or `conflict` (changed meanwhile); nothing was switched", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn set_tenant_sync(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<SyncSwitch>, JsonRejection>,
) -> Result<Json<SwitchResult>, ApiError> {
    let Path(tenant_id) = path?;
    let tenant = tenant(&tenant_id)?;
    let Json(switch) = body?;
    Ok(Json(switch_sync(&state, &caller, &tenant, None, switch.enabled, Unseen::of(&switch)).await?))
}

#[utoipa::path(put, path = "/v1/tenants/{tenant_id}/suppliers/{supplier_id}/sync", tag = "flags", params(("tenant_id" = String, Path, description = "Tenant id"), ("supplier_id" = String, Path, description = "Supplier id")), request_body = SyncSwitch, responses((status = 200, description = "Switched; held events applied when on", body = SwitchResult), (status = 404, description = "No event of the tenant or supplier seen yet, and no `create`", body = ErrorBody), (status = 409, description = "Switching on refused: `gate_managed` (the gate rolls the tenant out: use its steps), `rollout_changed` (its rollout changed meanwhile) or `conflict` (changed meanwhile); nothing was switched", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn set_supplier_sync(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<SyncSwitch>, JsonRejection>,
) -> Result<Json<SwitchResult>, ApiError> {
    let Path((tenant_id, supplier_id)) = path?;
    let (tenant, supplier) = (tenant(&tenant_id)?, supplier(&supplier_id)?);
    let Json(switch) = body?;
    Ok(Json(switch_sync(&state, &caller, &tenant, Some(supplier), switch.enabled, Unseen::of(&switch)).await?))
}

/// Switches a tenant's (or one supplier's) sync, audited; switching on applies the held
/// events. Shared by the API and the support page. Run to its end whether or not the caller
/// waits (`to_completion`).
pub async fn switch_sync(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantId,
    supplier: Option<SupplierId>,
    enabled: bool,
    unseen: Unseen,
) -> Result<SwitchResult, ApiError> {
    let (owned, caller, tenant) = (state.clone(), caller.clone(), tenant.clone());
    crate::to_completion(
        state,
        async move { switch_sync_here(&owned, &caller, &tenant, supplier, enabled, unseen).await },
    )
    .await
}

async fn switch_sync_here(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantId,
    supplier: Option<SupplierId>,
    enabled: bool,
    unseen: Unseen,
) -> Result<SwitchResult, ApiError> {
    caller.require(Role::Operator)?;
    if unseen == Unseen::Refuse {
        let flags = state.store.tenant_flags(tenant).await?;
        let hint = "check its spelling (GET /v1/tenants lists every one seen), or send \"create\": true to switch it \
                    before its first event";
        match (&flags, &supplier) {
            (None, _) => return Err(ApiError::not_found(format!("tenant {tenant} has no event seen yet: {hint}"))),
            (Some(flags), Some(supplier)) if !flags.suppliers.contains_key(supplier) => {
                return Err(ApiError::not_found(format!(
                    "supplier {supplier} of tenant {tenant} has no event seen yet: {hint}"
                )))
            }
            _ => {}
        }
    }
    // The rollout a switch on is allowed by; none for a switch off.
    let allowed_by = if enabled {
        // A tenant the gate rolls out is switched on past its stage by its steps alone
        // (signals green, traces signed off); off is always allowed: it is the kill switch.
        let rollout = state.store.rollout(tenant).await?;
        // Within the stage (the tenant, or a supplier the stage lists) it goes round nothing:
        // a supplier switched off by hand comes back, and a step whose replay failed after it
        // committed can have its held events applied again.
        let gated = match (&rollout.rollout, &supplier) {
            (Rollout::Canary { .. } | Rollout::Widening { .. }, None) => false,
            (Rollout::Canary { supplier: listed }, Some(supplier)) => listed != supplier,
            (Rollout::Widening { suppliers }, Some(supplier)) => !suppliers.contains(supplier),
            (Rollout::Closed, _) => rollout.changed_at.is_some(),
            (Rollout::Open, _) => false,
        };
        if gated {
            return Err(ApiError::Conflict {
                code: "gate_managed",
                message: format!(
                    "tenant {tenant} is rolled out through the gate (stage {}): switch suppliers on with its steps \
                     (canary, widen, open), which check the launch signals and the sign-offs",
                    rollout.rollout.stage()
                ),
            });
        }
        Some(rollout)
    } else {
        None
    };
    let flags = state.store.tenant_flags(tenant).await?;
    let (before, action, target) = match &supplier {
        None => (flags.map(|flags| flags.sync_enabled), "tenant_sync", format!("tenant/{tenant}")),
        Some(supplier) => (
            flags.and_then(|flags| flags.suppliers.get(supplier).copied()),
            "supplier_sync",
            format!("tenant/{tenant}/supplier/{supplier}"),
        ),
    };
    match (&supplier, &allowed_by) {
        // On, while the rollout is still the one judged above, as of when it last changed: a
        // rollback committed meanwhile is never undone by a switch decided before it, nor is a
        // tenant put behind the gate meanwhile (a canary, then a rollback) switched on as if the
        // gate had never moved it.
        (_, Some(since)) => {
            if !state.store.switch_within(tenant, supplier.as_ref(), since, true, &caller.name).await? {
                return Err(ApiError::Conflict {
                    code: "rollout_changed",
                    message: format!(
                        "tenant {tenant}'s rollout changed while sync was being switched on (a gate step or a \
                         rollback); nothing was switched: look at its gate and try again"
                    ),
                });
            }
        }
        (None, None) => state.store.set_tenant_sync(tenant, enabled).await?,
        (Some(supplier), None) => state.store.set_supplier_sync(tenant, supplier, enabled).await?,
    }
    let (before_json, after_json) =
        (serde_json::json!({ "enabled": before }), serde_json::json!({ "enabled": enabled }));
    // The switch is committed: a failed audit write is answered after the held events it lets
    // through are applied, as a gate step does. Answered first, it left them held under a
    // switch that reads on.
    let audited = audit(state, caller, action, target.clone(), before_json, after_json).await.inspect_err(|error| {
        tracing::error!(%target, enabled, error = %error, "sync was switched but its audit entry could not be written; its held events are applied all the same");
    });
    let summary = if enabled { Some(apply_held(state, tenant, supplier).await?) } else { None };
    audited?;
    Ok(switch_result(before, enabled, summary))
}
