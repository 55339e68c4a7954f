//! The `/v1` routes: traces and lookups, tenants and their flags, status, dead letters, the
//! audit log and tokens. Every route needs a token (`auth::authenticate`); reads need a
//! viewer, flag and dead-letter writes an operator, token management an admin. Every write
//! is audited with its before and after.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use catalog_app::replay::{replay_held, HeldRequest};
use catalog_core::{EventId, ItemId, ItemKey, Sku, SupplierId, TenantId};
use catalog_store::{
    AuditEntry, AuditRecord, DeadLetter, DeadLetterFilter, DeadLetterRetry, NewToken, Role, TokenInfo,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::trace::{self, EventView, TraceView};
use crate::AppState;

/// How far back switching sync on looks for held events.
pub const HELD_LOOKBACK_DAYS: i64 = 30;

/// Most rows a list answers at once.
const MAX_PAGE: usize = 500;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", get(list_tenants))
        .route("/v1/tenants/{tenant_id}/status", get(tenant_status))
        .route("/v1/tenants/{tenant_id}/sync", put(set_tenant_sync))
        .route("/v1/tenants/{tenant_id}/suppliers/{supplier_id}/sync", put(set_supplier_sync))
        .route("/v1/tenants/{tenant_id}/items/{sku}/trace", get(trace_by_sku))
        .route("/v1/items/{item_id}/trace", get(trace_by_id))
        .route("/v1/events/{event_id}", get(event_lookup))
        .route("/v1/traces/{trace_id}", get(trace_id_lookup))
        .route("/v1/dead-letters", get(list_dead_letters))
        .route("/v1/dead-letters/{dead_letter_id}/retry", post(retry_dead_letter))
        .route("/v1/dead-letters/{dead_letter_id}/resolve", post(resolve_dead_letter))
        .route("/v1/audit", get(audit_log))
        .route("/v1/tokens", get(list_tokens).post(add_token))
        .route("/v1/tokens/{name}", axum::routing::delete(revoke_token))
        .route_layer(axum::middleware::from_fn_with_state(state, auth::authenticate))
}

fn tenant(value: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(value).map_err(|error| ApiError::bad_request("invalid_tenant", format!("tenant {error}")))
}

fn supplier(value: &str) -> Result<SupplierId, ApiError> {
    SupplierId::parse(value).map_err(|error| ApiError::bad_request("invalid_supplier", format!("supplier {error}")))
}

async fn audit(
    state: &AppState,
    caller: &Caller,
    action: &str,
    target: String,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Result<(), ApiError> {
    let record = AuditRecord {
        actor: caller.name.clone(),
        action: action.to_owned(),
        target,
        before: Some(before),
        after: Some(after),
    };
    state.store.record_audit(&record).await?;
    tracing::info!(actor = caller.name, action, target = record.target, "audited write");
    Ok(())
}

// ---- tenants and flags ----

#[derive(Debug, Serialize)]
pub struct TenantView {
    pub tenant_id: String,
    pub sync_enabled: bool,
    pub suppliers: Vec<SupplierView>,
}

#[derive(Debug, Serialize)]
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

async fn list_tenants(
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

#[derive(Debug, Deserialize)]
pub struct SyncSwitch {
    pub enabled: bool,
}

/// What a switch did: the flag before and after, and the held events applied when it went on.
#[derive(Debug, Serialize)]
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
    let request = HeldRequest {
        tenant: tenant.clone(),
        supplier,
        since: Utc::now() - chrono::Duration::days(HELD_LOOKBACK_DAYS),
    };
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

async fn set_tenant_sync(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<SyncSwitch>, JsonRejection>,
) -> Result<Json<SwitchResult>, ApiError> {
    caller.require(Role::Operator)?;
    let Path(tenant_id) = path?;
    let tenant = tenant(&tenant_id)?;
    let Json(switch) = body?;
    let before = state.store.tenant_flags(&tenant).await?.map(|flags| flags.sync_enabled);
    state.store.set_tenant_sync(&tenant, switch.enabled).await?;
    audit(
        &state,
        &caller,
        "tenant_sync",
        format!("tenant/{tenant}"),
        serde_json::json!({ "enabled": before }),
        serde_json::json!({ "enabled": switch.enabled }),
    )
    .await?;
    let summary = if switch.enabled { Some(apply_held(&state, &tenant, None).await?) } else { None };
    Ok(Json(switch_result(before, switch.enabled, summary)))
}

async fn set_supplier_sync(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<SyncSwitch>, JsonRejection>,
) -> Result<Json<SwitchResult>, ApiError> {
    caller.require(Role::Operator)?;
    let Path((tenant_id, supplier_id)) = path?;
    let (tenant, supplier) = (tenant(&tenant_id)?, supplier(&supplier_id)?);
    let Json(switch) = body?;
    let before = state.store.tenant_flags(&tenant).await?.and_then(|flags| flags.suppliers.get(&supplier).copied());
    state.store.set_supplier_sync(&tenant, &supplier, switch.enabled).await?;
    audit(
        &state,
        &caller,
        "supplier_sync",
        format!("tenant/{tenant}/supplier/{supplier}"),
        serde_json::json!({ "enabled": before }),
        serde_json::json!({ "enabled": switch.enabled }),
    )
    .await?;
    let summary = if switch.enabled { Some(apply_held(&state, &tenant, Some(supplier)).await?) } else { None };
    Ok(Json(switch_result(before, switch.enabled, summary)))
}

// ---- status ----

/// A tenant's sync, for support and the launch signals.
#[derive(Debug, Serialize)]
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
    pub open_dead_letters: usize,
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

async fn tenant_status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<StatusView>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(tenant_id) = path?;
    let tenant = tenant(&tenant_id)?;
    let Some(status) = state.store.sync_status(&tenant).await? else {
        return Err(ApiError::not_found(format!("tenant {tenant} was never seen")));
    };
    let flags = state.store.tenant_flags(&tenant).await?;
    let now = Utc::now();
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).map_or(now, |midnight| midnight.and_utc());
    let today = state.store.outcome_counts_since(&tenant, midnight).await?;
    let week = state.store.outcome_counts_since(&tenant, now - chrono::Duration::days(7)).await?;
    let filter = DeadLetterFilter {
        tenant: Some(tenant.clone()),
        open: Some(true),
        limit: 10_000,
        ..DeadLetterFilter::default()
    };
    let open_dead_letters = state.store.dead_letters(&filter).await?.len();
    Ok(Json(StatusView {
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
    }))
}

// ---- traces and lookups ----

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub events_offset: Option<usize>,
    pub events_limit: Option<usize>,
}

async fn trace_of(state: &AppState, item_id: ItemId, page: &PageQuery) -> Result<TraceView, ApiError> {
    let Some(found) = state.store.item_trace(item_id).await? else {
        return Err(ApiError::not_found(format!("no item {item_id}")));
    };
    let published = state.store.published_versions(item_id).await?;
    let letters = state.store.item_dead_letters(item_id).await?;
    let limit = page.events_limit.unwrap_or(trace::DEFAULT_EVENTS_PER_PAGE).min(trace::MAX_EVENTS_PER_PAGE);
    Ok(trace::view(&found, published, letters, page.events_offset.unwrap_or(0), limit))
}

async fn trace_by_sku(
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
    let item_id = ItemKey { tenant, sku }.item_id();
    Ok(Json(trace_of(&state, item_id, &page).await?))
}

async fn trace_by_id(
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
    Ok(Json(trace_of(&state, item_id, &page).await?))
}

/// What a lookup by event id or trace id found: each journal row, and the item it touched.
#[derive(Debug, Serialize)]
pub struct LookupView {
    pub matches: Vec<LookupMatch>,
}

#[derive(Debug, Serialize)]
pub struct LookupMatch {
    /// The item the event names (the item's trace explains the rest), when it names one.
    pub item_id: Option<String>,
    pub tenant_id: Option<String>,
    pub sku: Option<String>,
    pub event: EventView,
}

fn lookup_view(entries: &[catalog_store::JournalEntry]) -> LookupView {
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
    LookupView { matches }
}

async fn event_lookup(
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
    let entries = state.store.journal_by_event_id(event_id).await?;
    if entries.is_empty() {
        return Err(ApiError::not_found(format!("no journaled event {event_id}")));
    }
    Ok(Json(lookup_view(&entries)))
}

async fn trace_id_lookup(
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
    let entries = state.store.journal_by_trace_id(&trace_id, MAX_PAGE).await?;
    if entries.is_empty() {
        return Err(ApiError::not_found(format!("no journaled event carries trace id {trace_id}")));
    }
    Ok(Json(lookup_view(&entries)))
}

// ---- dead letters ----

#[derive(Debug, Deserialize)]
pub struct DeadLetterQuery {
    pub tenant: Option<String>,
    pub channel: Option<String>,
    pub stage: Option<String>,
    /// `open` (the default), `resolved` or `all`.
    pub state: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<usize>,
}

async fn list_dead_letters(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    caller.require(Role::Viewer)?;
    let Query(query) = query?;
    let open = match query.state.as_deref().unwrap_or("open") {
        "open" => Some(true),
        "resolved" => Some(false),
        "all" => None,
        _ => return Err(ApiError::bad_request("invalid_query", "state is open, resolved or all")),
    };
    let filter = DeadLetterFilter {
        tenant: query.tenant.as_deref().map(tenant).transpose()?,
        channel: query.channel,
        stage: query.stage,
        open,
        before_id: query.before,
        limit: query.limit.unwrap_or(100).min(MAX_PAGE),
    };
    Ok(Json(state.store.dead_letters(&filter).await?))
}

fn letter_state(letter: &DeadLetter) -> serde_json::Value {
    serde_json::json!({
        "heal_rounds": letter.heal_rounds,
        "resolved": letter.resolved_at.is_some(),
        "resolution": letter.resolution,
        "note": letter.note,
    })
}

async fn retry_dead_letter(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<DeadLetterRetry>, ApiError> {
    caller.require(Role::Operator)?;
    let Path(dead_letter_id) = path?;
    let Some(before) = state.store.dead_letter(dead_letter_id).await? else {
        return Err(ApiError::not_found(format!("no dead letter {dead_letter_id}")));
    };
    let retry = state.store.retry_dead_letter(dead_letter_id, state.settings.max_retries).await?;
    match &retry {
        DeadLetterRetry::Requeued { .. } => {
            let after = state
                .store
                .dead_letter(dead_letter_id)
                .await?
                .map_or(serde_json::Value::Null, |letter| letter_state(&letter));
            audit(
                &state,
                &caller,
                "dead_letter_retry",
                format!("dead_letter/{dead_letter_id}"),
                letter_state(&before),
                after,
            )
            .await?;
            Ok(Json(retry))
        }
        DeadLetterRetry::LoopGuard { heal_rounds } => Err(ApiError::Conflict {
            code: "loop_guard",
            message: format!(
                "dead letter {dead_letter_id} was retried {heal_rounds} times; resolve it or fix the cause"
            ),
        }),
        DeadLetterRetry::AlreadyResolved => Err(ApiError::Conflict {
            code: "already_resolved",
            message: format!("dead letter {dead_letter_id} is resolved"),
        }),
        DeadLetterRetry::NotRetryable => Err(ApiError::Conflict {
            code: "not_retryable",
            message: format!(
                "dead letter {dead_letter_id} is not a publish of an item on a channel this service serves"
            ),
        }),
        DeadLetterRetry::NotFound => Err(ApiError::not_found(format!("no dead letter {dead_letter_id}"))),
    }
}

#[derive(Debug, Deserialize)]
pub struct ResolveBody {
    pub note: String,
}

async fn resolve_dead_letter(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<ResolveBody>, JsonRejection>,
) -> Result<Json<DeadLetter>, ApiError> {
    caller.require(Role::Operator)?;
    let Path(dead_letter_id) = path?;
    let Json(body) = body?;
    if body.note.trim().is_empty() || body.note.len() > 2_000 {
        return Err(ApiError::bad_request("invalid_note", "a note of 1 to 2000 bytes says why it is resolved"));
    }
    let Some(before) = state.store.dead_letter(dead_letter_id).await? else {
        return Err(ApiError::not_found(format!("no dead letter {dead_letter_id}")));
    };
    if !state.store.resolve_dead_letter(dead_letter_id, body.note.trim()).await? {
        return Err(ApiError::Conflict {
            code: "already_resolved",
            message: format!("dead letter {dead_letter_id} is resolved"),
        });
    }
    let after = state
        .store
        .dead_letter(dead_letter_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no dead letter {dead_letter_id}")))?;
    audit(
        &state,
        &caller,
        "dead_letter_resolve",
        format!("dead_letter/{dead_letter_id}"),
        letter_state(&before),
        letter_state(&after),
    )
    .await?;
    Ok(Json(after))
}

// ---- audit and tokens ----

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub before: Option<i64>,
    pub limit: Option<usize>,
}

async fn audit_log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.require(Role::Viewer)?;
    let Query(query) = query?;
    Ok(Json(state.store.audit_log(query.limit.unwrap_or(100).min(MAX_PAGE), query.before).await?))
}

async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(state.store.tokens().await?))
}

#[derive(Debug, Deserialize)]
pub struct NewTokenBody {
    pub name: String,
    pub role: String,
}

/// A token created through the API: shown in this answer only.
#[derive(Debug, Serialize)]
pub struct CreatedToken {
    pub name: String,
    pub role: Role,
    pub token: String,
}

/// Whether a token name is acceptable: 1 to 64 letters, digits or `-_.@`.
pub fn valid_token_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

async fn add_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewTokenBody>, JsonRejection>,
) -> Result<Json<CreatedToken>, ApiError> {
    caller.require(Role::Admin)?;
    let Json(body) = body?;
    if !valid_token_name(&body.name) {
        return Err(ApiError::bad_request("invalid_name", "a token name is 1 to 64 letters, digits or -_.@"));
    }
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::bad_request("invalid_role", "role is viewer, operator or admin"))?;
    let (token, hash) = auth::new_token().map_err(ApiError::Internal)?;
    if !state.store.add_token(&NewToken { name: body.name.clone(), role, hash }).await? {
        return Err(ApiError::Conflict {
            code: "name_taken",
            message: format!("a live token is named {:?}", body.name),
        });
    }
    audit(
        &state,
        &caller,
        "token_add",
        format!("token/{}", body.name),
        serde_json::Value::Null,
        serde_json::json!({ "role": role }),
    )
    .await?;
    Ok(Json(CreatedToken { name: body.name, role, token }))
}

async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<axum::http::StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let Path(name) = path?;
    if !state.store.revoke_token(&name).await? {
        return Err(ApiError::not_found(format!("no live token named {name:?}")));
    }
    audit(
        &state,
        &caller,
        "token_revoke",
        format!("token/{name}"),
        serde_json::json!({ "revoked": false }),
        serde_json::json!({ "revoked": true }),
    )
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
