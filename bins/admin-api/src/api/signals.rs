//! The launch signals: each tenant's and the overall judgement now (value, target, owner,
//! green or red, the untraced items named) and the sampled history behind "green for one
//! business day".

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use catalog_app::signals::judge_all;
use catalog_core::{Signals, TenantId};
use catalog_store::{Role, SignalSample};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::tenant;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::gate::MAX_SAMPLES;
use crate::AppState;

/// `?since=`: the oldest sample wanted (RFC 3339); the last 24 hours by default.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    pub since: Option<DateTime<Utc>>,
}

/// The signals now, and their history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignalsView {
    /// The judgement now: `stale_items`, `queue_lag`, `publish_errors` and `trace_coverage`,
    /// each with its value, unit, target, owner, status (`green` or `red`) and detail; `green`
    /// when all four are; `untraced_count` and the first 50 `untraced` items.
    #[schema(value_type = Object)]
    pub current: Signals,
    /// Samples since `since`, oldest first: at most 3,000, the newest.
    pub history: Vec<SignalSample>,
    /// Whether older samples since `since` were left out: every worker samples every
    /// tenant, so two workers take 2,880 a day at the default 60 s interval. Ask again with a
    /// later `since`.
    pub more: bool,
}

/// Every tenant's signals and the overall ones.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AllSignalsView {
    pub overall: SignalsView,
    /// Each tenant's judgement now, in id order (history per tenant at its own route).
    #[schema(value_type = Vec<Object>)]
    pub tenants: Vec<Signals>,
}

fn since(query: Result<Query<HistoryQuery>, QueryRejection>) -> Result<DateTime<Utc>, ApiError> {
    let invalid = || ApiError::bad_request("invalid_since", "since must be an RFC 3339 time".to_owned());
    let Query(query) = query.map_err(|_| invalid())?;
    match query.since {
        Some(since) if !super::four_digit_year(since) => Err(invalid()),
        Some(since) => Ok(since),
        None => Ok(Utc::now() - Duration::hours(24)),
    }
}

/// Judges every tenant and overall now: the overall judgement first.
pub async fn judge_now(state: &AppState) -> Result<Vec<Signals>, ApiError> {
    Ok(judge_all(&*state.store, &state.launch.signals, Utc::now()).await?)
}

#[utoipa::path(get, path = "/v1/signals", tag = "signals", params(HistoryQuery), responses((status = 200, description = "The overall signals now with their history, and each tenant's now", body = AllSignalsView), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn all_signals(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<AllSignalsView>, ApiError> {
    caller.require(Role::Viewer)?;
    let since = since(query)?;
    let mut judged = judge_now(&state).await?.into_iter();
    let current = judged.next().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no overall judgement")))?;
    let (history, more) = read_history(&state, None, since, MAX_SAMPLES).await?;
    Ok(Json(AllSignalsView { overall: SignalsView { current, history, more }, tenants: judged.collect() }))
}

/// The newest `limit` samples of `tenant` (overall for `None`) since `since`, oldest first,
/// and whether older ones since then were left out (told by reading one sample more).
/// Shared with the page.
pub async fn read_history(
    state: &AppState,
    tenant: Option<&TenantId>,
    since: DateTime<Utc>,
    limit: usize,
) -> Result<(Vec<SignalSample>, bool), ApiError> {
    let mut samples = state.store.signal_samples(tenant, since, limit + 1).await?;
    let more = samples.len() > limit;
    if more {
        // The newest are kept: the oldest sample read is the one left out.
        samples.remove(0);
    }
    Ok((samples, more))
}

/// A tenant's signals now and its newest `limit` samples since `since`; `None` for a tenant
/// never seen.
pub async fn tenant_signals_view(
    state: &AppState,
    tenant: &TenantId,
    since: DateTime<Utc>,
    limit: usize,
) -> Result<Option<SignalsView>, ApiError> {
    if state.store.tenant_flags(tenant).await?.is_none() {
        return Ok(None);
    }
    let current =
        judge_now(state).await?.into_iter().find(|signals| signals.tenant_id.as_ref() == Some(tenant)).unwrap_or_else(
            || catalog_core::judge(Some(tenant.clone()), &Default::default(), &state.launch.signals, Utc::now()),
        );
    let (history, more) = read_history(state, Some(tenant), since, limit).await?;
    Ok(Some(SignalsView { current, history, more }))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/signals", tag = "signals", params(("tenant_id" = String, Path, description = "Tenant id"), HistoryQuery), responses((status = 200, description = "The tenant's signals now and their history", body = SignalsView), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 404, description = "No such tenant", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn tenant_signals(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<SignalsView>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(tenant_id) = path?;
    let tenant = tenant(&tenant_id)?;
    let since = since(query)?;
    let view = tenant_signals_view(&state, &tenant, since, MAX_SAMPLES).await?;
    Ok(Json(view.ok_or_else(|| ApiError::not_found(format!("no tenant {tenant}")))?))
}
