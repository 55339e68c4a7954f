//! Traces of an item and the lookups that lead to one: by event id and by W3C trace id.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use catalog_core::{EventId, ItemId, ItemKey, Sku, TenantId};
use catalog_store::{EventsPage, Role};
use serde::{Deserialize, Serialize};

use super::{tenant, MAX_PAGE};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::trace::{self, EventView, TraceView};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Events to skip, in ordering-key order.
    pub events_offset: Option<u64>,
    /// Events per page (at most 1,000; 100 unless given).
    pub events_limit: Option<u64>,
    /// The `events.through` of the first page: the pages count the events journaled up to
    /// it, so events journaled while paging neither repeat nor skip a row. All, unless given.
    pub events_through: Option<i64>,
}

/// Which item a trace is asked for.
#[derive(Debug, Clone)]
pub enum TraceTarget {
    /// By tenant and SKU: found even when only held or rejected events name them.
    Key(ItemKey),
    /// By item id: found through the item row.
    Id(ItemId),
}

pub async fn trace_of(state: &AppState, target: TraceTarget, page: &PageQuery) -> Result<TraceView, ApiError> {
    let key = match target {
        TraceTarget::Key(key) => key,
        TraceTarget::Id(item_id) => match state.store.item(item_id).await? {
            Some(item) => item.key(),
            None => return Err(ApiError::not_found(format!("no item {item_id}"))),
        },
    };
    let item_id = key.item_id();
    let offset = page.events_offset.unwrap_or(0);
    let limit = page.events_limit.unwrap_or(trace::DEFAULT_EVENTS_PER_PAGE).min(trace::MAX_EVENTS_PER_PAGE);
    let events = EventsPage { offset, limit, through: page.events_through };
    let Some(found) = state.store.item_trace_page(&key, events).await? else {
        return Err(ApiError::not_found(format!("no item {item_id}")));
    };
    let published = state.store.published_versions(item_id).await?;
    let letters = state.store.item_dead_letters(item_id).await?;
    let horizon = state.store.journal_horizon().await?;
    let drifts = state.store.item_drifts(item_id, trace::MAX_DRIFT_CORRECTIONS).await?;
    Ok(TraceView {
        drift_corrections: drifts.iter().map(trace::DriftView::from).collect(),
        ..trace::view(&key, &found, published, letters, horizon, offset, limit)
    })
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/items/{sku}/trace", tag = "trace", params(("tenant_id" = String, Path, description = "Tenant id"), ("sku" = String, Path, description = "SKU, normalized like the contract"), PageQuery), responses((status = 200, description = "The trace", body = TraceView), (status = 404, description = "No such item", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn trace_by_sku(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<TraceView>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path((tenant_id, sku)) = path?;
    let Query(page) = query?;
    let tenant = tenant(&tenant_id)?;
    // The contract's normalization: `abc-123` finds `ABC-123`.
    let sku = Sku::parse(&sku).map_err(|error| ApiError::bad_request("invalid_sku", format!("sku {error}")))?;
    Ok(Json(trace_of(&state, TraceTarget::Key(ItemKey { tenant, sku }), &page).await?))
}

#[utoipa::path(get, path = "/v1/items/{item_id}/trace", tag = "trace", params(("item_id" = String, Path, format = Uuid, description = "Item id"), PageQuery), responses((status = 200, description = "The trace", body = TraceView), (status = 404, description = "No such item", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn trace_by_id(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<TraceView>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(item_id) = path?;
    let Query(page) = query?;
    let item_id = item_id
        .parse()
        .map(ItemId)
        .map_err(|_| ApiError::bad_request("invalid_item_id", "the item id is not a UUID"))?;
    Ok(Json(trace_of(&state, TraceTarget::Id(item_id), &page).await?))
}

/// What a lookup by event id or trace id found: each journal row, and the item it touched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LookupView {
    /// Oldest first.
    pub matches: Vec<LookupMatch>,
    /// More rows carry the trace id, or name the event id, than the page shows (its first,
    /// oldest ones): a trace that spans a bulk upload names thousands of events, and a
    /// supplier resending one bad event builds a rejected row per delivery.
    pub more: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LookupMatch {
    /// The item the event names (the item's trace explains the rest), when it names one.
    pub item_id: Option<String>,
    pub tenant_id: Option<String>,
    pub sku: Option<String>,
    pub event: EventView,
}

pub fn lookup_view(entries: &[catalog_store::JournalEntry]) -> LookupView {
    let matches = entries
        .iter()
        .map(|entry| {
            let key = match (entry.tenant.as_deref(), entry.sku.as_deref()) {
                (Some(tenant), Some(sku)) => TenantId::parse(tenant).ok().zip(Sku::parse(sku).ok()),
                _ => None,
            };
            LookupMatch {
                item_id: key.map(|(tenant, sku)| ItemKey { tenant, sku }.item_id().to_string()),
                tenant_id: entry.tenant.clone(),
                sku: entry.sku.clone(),
                event: EventView::from(entry),
            }
        })
        .collect();
    LookupView { matches, more: false }
}

#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "trace", params(("event_id" = String, Path, format = Uuid, description = "Event id")), responses((status = 200, description = "Journal rows of the event and their items, the first 500", body = LookupView), (status = 404, description = "Never journaled", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn event_lookup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<LookupView>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(event_id) = path?;
    let event_id = event_id
        .parse()
        .map(EventId)
        .map_err(|_| ApiError::bad_request("invalid_event_id", "the event id is not a UUID"))?;
    let (entries, more) = rows_of_event(&state, event_id, MAX_PAGE).await?;
    if entries.is_empty() {
        return Err(ApiError::not_found(format!("no journaled event {event_id}")));
    }
    Ok(Json(LookupView { more, ..lookup_view(&entries) }))
}

/// The first `limit` journal rows naming `event_id` (its decided row, then the others oldest
/// first), and whether more do (one more read tells). Shared with the page.
pub async fn rows_of_event(
    state: &AppState,
    event_id: EventId,
    limit: usize,
) -> Result<(Vec<catalog_store::JournalEntry>, bool), ApiError> {
    Ok(first(state.store.journal_by_event_id(event_id, limit.saturating_add(1)).await?, limit))
}

#[utoipa::path(get, path = "/v1/traces/{trace_id}", tag = "trace", params(("trace_id" = String, Path, description = "W3C trace id, 32 hex digits")), responses((status = 200, description = "Journal rows carrying the trace id", body = LookupView), (status = 404, description = "None", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn trace_id_lookup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<LookupView>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(trace_id) = path?;
    let trace_id = trace_id.to_ascii_lowercase();
    if trace_id.len() != 32 || !trace_id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("invalid_trace_id", "a W3C trace id is 32 hexadecimal digits"));
    }
    let (entries, more) = rows_of_trace(&state, &trace_id, MAX_PAGE).await?;
    if entries.is_empty() {
        return Err(ApiError::not_found(format!("no journaled event carries trace id {trace_id}")));
    }
    Ok(Json(LookupView { more, ..lookup_view(&entries) }))
}

/// The oldest `limit` journal rows carrying `trace_id`, and whether more do (told by reading
/// one row more). Shared with the page.
pub async fn rows_of_trace(
    state: &AppState,
    trace_id: &str,
    limit: usize,
) -> Result<(Vec<catalog_store::JournalEntry>, bool), ApiError> {
    Ok(first(state.store.journal_by_trace_id(trace_id, limit.saturating_add(1)).await?, limit))
}

/// The first `limit` of `entries`, read one more than that, and whether there were more.
fn first(mut entries: Vec<catalog_store::JournalEntry>, limit: usize) -> (Vec<catalog_store::JournalEntry>, bool) {
    let more = entries.len() > limit;
    entries.truncate(limit);
    (entries, more)
}
