//! A tenant's sync status: what arrived, what was applied, what waits, and current / behind / stale.

use std::collections::BTreeMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use catalog_core::TenantId;
use catalog_store::{DeadLetterFilter, Role};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::tenant;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// A tenant's sync, for support and the launch signals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusView {
    pub tenant_id: String,
    pub sync_enabled: bool,
    pub last_received_at: Option<DateTime<Utc>>,
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Journal rows received since midnight UTC, by outcome.
    pub today: BTreeMap<String, u64>,
    /// Journal rows received in the last 7 days, by outcome.
    pub last_7_days: BTreeMap<String, u64>,
    pub redeliveries: u64,
    pub redeliveries_last_7_days: u64,
    pub items: u64,
    pub items_waiting_to_publish: u64,
    pub open_dead_letters: u64,
    /// `current`, `behind` (applied lags received by more than the threshold) or `stale`
    /// (nothing received for longer than the threshold).
    pub state: &'static str,
}

/// The seed's status query: stale when nothing arrived lately, behind when what arrived is
/// not applied, current otherwise.
pub fn sync_state(
    now: DateTime<Utc>,
    last_received_at: Option<DateTime<Utc>>,
    last_applied_at: Option<DateTime<Utc>>,
    settings: &crate::Settings,
) -> &'static str {
    let chrono_duration =
        |duration: std::time::Duration| chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
    let Some(received) = last_received_at else { return "stale" };
    if now - received > chrono_duration(settings.stale_after) {
        return "stale";
    }
    match last_applied_at {
        Some(applied) if received - applied <= chrono_duration(settings.behind_after) => "current",
        _ => "behind",
    }
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/status", tag = "status", params(("tenant_id" = String, Path, description = "Tenant id")), responses((status = 200, description = "Sync status", body = StatusView), (status = 404, description = "Tenant never seen", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn tenant_status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<StatusView>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(tenant_id) = path?;
    let tenant = tenant(&tenant_id)?;
    Ok(Json(status_of(&state, &tenant).await?))
}

/// A tenant's status, as the API and the support page show it.
pub async fn status_of(state: &AppState, tenant: &TenantId) -> Result<StatusView, ApiError> {
    let tenant = tenant.clone();
    let Some(status) = state.store.sync_status(&tenant).await? else {
        return Err(ApiError::not_found(format!("tenant {tenant} was never seen")));
    };
    let flags = state.store.tenant_flags(&tenant).await?;
    let now = Utc::now();
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).map_or(now, |midnight| midnight.and_utc());
    let today = state.store.outcome_counts_since(&tenant, midnight).await?;
    let week = state.store.outcome_counts_since(&tenant, now - chrono::Duration::days(7)).await?;
    let filter = DeadLetterFilter { tenant: Some(tenant.clone()), open: Some(true), ..DeadLetterFilter::default() };
    let open_dead_letters = state.store.count_dead_letters(&filter).await?;
    Ok(StatusView {
        tenant_id: tenant.to_string(),
        sync_enabled: flags.is_some_and(|flags| flags.sync_enabled),
        last_received_at: status.last_received_at,
        last_applied_at: status.last_applied_at,
        today: today.events_by_outcome,
        last_7_days: week.events_by_outcome,
        redeliveries: status.redeliveries,
        redeliveries_last_7_days: week.redeliveries,
        items: status.n_items,
        items_waiting_to_publish: status.outbox_pending,
        open_dead_letters,
        state: sync_state(now, status.last_received_at, status.last_applied_at, &state.settings),
    })
}
