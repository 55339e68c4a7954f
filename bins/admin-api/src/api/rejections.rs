//! Rejected messages: what the rules refused, newest first, by tenant, source and time, with
//! the kept bytes and the detail. Most have no event id or tenant to be found by otherwise
//! (a line that is not JSON names neither).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use catalog_store::{RejectionFilter, Role};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::{tenant, MAX_PAGE};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::trace::EventView;
use crate::AppState;

/// How far back a listing reaches when `since` is not given.
pub const DEFAULT_LOOKBACK_HOURS: i64 = 24;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RejectionQuery {
    /// Rejections naming this tenant only.
    pub tenant: Option<String>,
    /// Rejections from this source only, as the journal names it (`file:/…`, the Kafka
    /// topic, `feed:…`).
    pub source: Option<String>,
    /// Received at or after this RFC 3339 time; the last 24 hours by default.
    pub since: Option<String>,
    /// Only rows journaled before this journal id: the previous page's `next_before`.
    pub before: Option<i64>,
    /// At most this many (100 by default, 500 at most).
    pub limit: Option<usize>,
}

/// One rejected message: the tenant and SKU it named, when they could be read, and its
/// journal row (reason, detail, source position, kept bytes).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RejectionView {
    pub tenant_id: Option<String>,
    pub sku: Option<String>,
    #[serde(flatten)]
    pub event: EventView,
}

/// A page of rejected messages, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RejectionsView {
    pub since: DateTime<Utc>,
    pub rejections: Vec<RejectionView>,
    /// The `before` of the next page; absent on the last.
    pub next_before: Option<i64>,
}

/// The rejections `query` asks for, for the API and the support page.
pub async fn list(state: &AppState, query: RejectionQuery) -> Result<RejectionsView, ApiError> {
    let since = match query.since.as_deref() {
        None => (Utc::now() - Duration::hours(DEFAULT_LOOKBACK_HOURS)).trunc_subsecs(0),
        Some(text) => DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).map_err(|error| {
            ApiError::bad_request("invalid_query", format!("since {text:?} is not an RFC 3339 time: {error}"))
        })?,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    // An empty filter (the page's form left blank) filters nothing.
    let filter = RejectionFilter {
        tenant: query.tenant.as_deref().filter(|text| !text.is_empty()).map(tenant).transpose()?,
        source: query.source.filter(|text| !text.is_empty()),
        since,
        before_journal_id: query.before,
        limit,
    };
    let entries = state.store.rejections(&filter).await?;
    let next_before = entries.last().filter(|_| entries.len() == limit).map(|entry| entry.journal_id);
    let rejections = entries
        .iter()
        .map(|entry| RejectionView {
            tenant_id: entry.tenant.clone(),
            sku: entry.sku.clone(),
            event: EventView::from(entry),
        })
        .collect();
    Ok(RejectionsView { since, rejections, next_before })
}

#[utoipa::path(get, path = "/v1/rejections", tag = "trace", params(RejectionQuery), responses((status = 200, description = "Rejected messages, newest first", body = RejectionsView), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list_rejections(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<RejectionQuery>, QueryRejection>,
) -> Result<Json<RejectionsView>, ApiError> {
    caller.require(Role::Viewer)?;
    let Query(query) = query?;
    Ok(Json(list(&state, query).await?))
}
