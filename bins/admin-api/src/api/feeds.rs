//! Supplier feeds (issue 16): their status (the seed's monitoring queries: current, behind
//! or stale by frequency, windows completed, open gaps with days behind, what was pulled per
//! day, the last full refresh's drift) and the operator's switch (audited). The worker's
//! pull source reads the switch at each run. A manual run of a feed not live yet is refused.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::{Extension, Json};
use catalog_app::feeds::{feed_status, feed_statuses, goes_live_after, FeedStatus};
use catalog_store::{FeedKey, FeedRunKind, FeedRunRequest, Role};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::flags::SyncSwitch;
use super::{audit, supplier, tenant};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// One feed: its settings, state and status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedView {
    pub tenant_id: String,
    pub supplier_id: String,
    pub base_url: String,
    /// The environment variable the worker reads the feed's token from (never the token).
    pub token_env: String,
    pub sync_enabled: bool,
    pub sync_frequency_hours: u32,
    pub timezone: String,
    /// Local run times, `HH:MM`.
    pub run_times: Vec<String>,
    pub go_live_date: NaiveDate,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub initial_sync_completed: bool,
    pub last_full_refresh_at: Option<DateTime<Utc>>,
    /// The supplier asked not to be asked before this (a 429 whose `Retry-After` ended a
    /// run): no run, scheduled or asked for, pulls anything before. `null` once it has passed.
    pub supplier_hold_until: Option<DateTime<Utc>>,
    /// `current` (a window completed within one sync period), `behind` (within two),
    /// `stale`, or `not_live` (its `go_live_date` has not come: nothing of it is pulled before).
    pub state: &'static str,
    pub windows_completed: u64,
    /// Spans since going live no completed window covers, oldest first.
    pub gaps: Vec<GapView>,
    /// The oldest gap's days behind; 0 without gaps.
    pub days_behind: i64,
    /// Newest day first.
    pub pulled_by_day: Vec<DayView>,
    /// What the last full refresh found different (each corrected as an event).
    pub last_refresh_drift: Vec<DriftView>,
    /// The manual run asked for and not yet run by the worker.
    pub run_request: Option<RunRequestView>,
    /// The feed's records as the journal decided them, per day of first reception, newest
    /// first (the last 14 days).
    pub records_by_day: Vec<RecordsDayView>,
    /// The feed's open pull dead letter: its last run failed (the reason, the error, the
    /// feed's answer, how many runs failed since when), and the worker tries again after its
    /// failure hold. `null` once a run completes. `state` counts completed windows alone, so
    /// a feed can be `current` and failing since.
    pub failing: Option<catalog_store::DeadLetter>,
}

/// One day of a feed's journaled records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordsDayView {
    pub date: NaiveDate,
    /// Records by outcome: `applied`, `stale`, `rejected`, …
    pub by_outcome: std::collections::BTreeMap<String, u64>,
    pub rejected: u64,
    /// Records pulled again (each a duplicate, counted on its first journal row).
    pub duplicates: u64,
}

/// A manual run asked for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunRequestView {
    /// `incremental`, `full_refresh` or `backfill`.
    pub kind: &'static str,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

impl From<FeedRunRequest> for RunRequestView {
    fn from(request: FeedRunRequest) -> Self {
        let (since, until) = request.kind.range();
        RunRequestView {
            kind: request.kind.as_str(),
            since,
            until,
            requested_by: request.requested_by,
            requested_at: request.requested_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GapView {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub days_behind: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayView {
    pub date: NaiveDate,
    pub windows: u64,
    pub records: u64,
    pub pages: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DriftView {
    pub sku: String,
    /// The catalog's quantity before; `null` when it had no offer.
    pub stored: Option<i64>,
    /// The supplier's quantity (0 for an offer its snapshot no longer lists).
    pub supplier: i64,
    pub as_of: DateTime<Utc>,
    pub detected_at: DateTime<Utc>,
}

impl From<FeedStatus> for FeedView {
    fn from(status: FeedStatus) -> Self {
        let settings = status.feed.settings;
        FeedView {
            tenant_id: settings.key.tenant.to_string(),
            supplier_id: settings.key.supplier.to_string(),
            base_url: settings.base_url,
            token_env: settings.token_env,
            sync_enabled: settings.sync_enabled,
            sync_frequency_hours: settings.sync_frequency_hours,
            timezone: settings.timezone,
            run_times: settings.run_times.iter().map(|time| time.format("%H:%M").to_string()).collect(),
            go_live_date: settings.go_live_date,
            run_request: status.feed.run_request.map(RunRequestView::from),
            failing: status.failing,
            records_by_day: status
                .journal_by_day
                .into_iter()
                .map(|day| RecordsDayView {
                    date: day.date,
                    rejected: day.by_outcome.get("rejected").copied().unwrap_or(0),
                    duplicates: day.redeliveries + day.by_outcome.get("duplicate").copied().unwrap_or(0),
                    by_outcome: day.by_outcome,
                })
                .collect(),
            last_sync_at: status.feed.last_sync_at,
            initial_sync_completed: status.feed.initial_sync_completed,
            last_full_refresh_at: status.feed.last_full_refresh_at,
            supplier_hold_until: status.feed.supplier_hold_until.filter(|until| *until > Utc::now()),
            state: status.state.as_str(),
            windows_completed: status.windows_completed,
            gaps: status
                .gaps
                .into_iter()
                .map(|gap| GapView { since: gap.since, until: gap.until, days_behind: gap.days_behind })
                .collect(),
            days_behind: status.days_behind,
            pulled_by_day: status
                .pulled_by_day
                .into_iter()
                .map(|day| DayView { date: day.date, windows: day.windows, records: day.records, pages: day.pages })
                .collect(),
            last_refresh_drift: status
                .last_refresh_drift
                .into_iter()
                .map(|record| DriftView {
                    sku: record.drift.sku.to_string(),
                    stored: record.drift.stored,
                    supplier: record.drift.supplier,
                    as_of: record.drift.as_of,
                    detected_at: record.detected_at,
                })
                .collect(),
        }
    }
}

/// Every feed's status; shared by the API and the support page.
pub async fn all_feeds(state: &AppState) -> Result<Vec<FeedView>, ApiError> {
    Ok(feed_statuses(&*state.store, Utc::now()).await?.into_iter().map(FeedView::from).collect())
}

#[utoipa::path(get, path = "/v1/feeds", tag = "feeds", responses((status = 200, description = "Every feed with its status", body = Vec<FeedView>), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list_feeds(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<FeedView>>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(all_feeds(&state).await?))
}

fn feed_key(tenant_id: &str, supplier_id: &str) -> Result<FeedKey, ApiError> {
    Ok(FeedKey { tenant: tenant(tenant_id)?, supplier: supplier(supplier_id)? })
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/feeds/{supplier_id}", tag = "feeds", params(("tenant_id" = String, Path, description = "Tenant id"), ("supplier_id" = String, Path, description = "Supplier id")), responses((status = 200, description = "The feed with its status", body = FeedView), (status = 404, description = "No such feed", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn read_feed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<FeedView>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path((tenant_id, supplier_id)) = path?;
    let key = feed_key(&tenant_id, &supplier_id)?;
    let status = feed_status(&*state.store, &key, Utc::now()).await?;
    status.map(|status| Json(status.into())).ok_or_else(|| ApiError::not_found(format!("no feed {key}")))
}

/// What a feed switch did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedSwitchResult {
    pub before: bool,
    pub after: bool,
}

#[utoipa::path(put, path = "/v1/tenants/{tenant_id}/feeds/{supplier_id}/sync", tag = "feeds", params(("tenant_id" = String, Path, description = "Tenant id"), ("supplier_id" = String, Path, description = "Supplier id")), request_body = SyncSwitch, responses((status = 200, description = "Switched: the worker pulls it (or not) from its next run", body = FeedSwitchResult), (status = 404, description = "No such feed", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn set_feed_sync(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<SyncSwitch>, JsonRejection>,
) -> Result<Json<FeedSwitchResult>, ApiError> {
    let Path((tenant_id, supplier_id)) = path?;
    let key = feed_key(&tenant_id, &supplier_id)?;
    let Json(switch) = body?;
    Ok(Json(switch_feed(&state, &caller, &key, switch.enabled).await?))
}

/// Switches pulling a feed on or off, audited; shared by the API and the support page.
pub async fn switch_feed(
    state: &AppState,
    caller: &Caller,
    key: &FeedKey,
    enabled: bool,
) -> Result<FeedSwitchResult, ApiError> {
    caller.require(Role::Operator)?;
    let Some(feed) = state.store.feed(key).await? else {
        return Err(ApiError::not_found(format!("no feed {key}")));
    };
    let before = feed.settings.sync_enabled;
    if !state.store.set_feed_sync(key, enabled).await? {
        return Err(ApiError::not_found(format!("no feed {key}")));
    }
    audit(
        state,
        caller,
        "feed.sync",
        format!("feed/{key}"),
        serde_json::json!({ "sync_enabled": before }),
        serde_json::json!({ "sync_enabled": enabled }),
    )
    .await?;
    Ok(FeedSwitchResult { before, after: enabled })
}

/// A manual run to ask for: `incremental` (the window due now), `full_refresh`, or
/// `backfill` of `[since, until)` (pulled again, completed or not).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RunAsk {
    pub kind: String,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A manual run asked for: the worker runs it within `--feed-switch-poll-seconds`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunAsked {
    pub request: RunRequestView,
    /// A request still waiting that this one replaced.
    pub replaced: Option<RunRequestView>,
}

/// The run `ask` names, checked: a backfill needs `since < until`, neither in the future,
/// each of a four-digit year; the others take no range.
pub fn run_kind(ask: &RunAsk, now: DateTime<Utc>) -> Result<FeedRunKind, ApiError> {
    let invalid = |message: &str| ApiError::bad_request("invalid_run", message.to_owned());
    if ![ask.since, ask.until].into_iter().flatten().all(super::four_digit_year) {
        return Err(invalid("since and until are RFC 3339 times of a four-digit year"));
    }
    match (ask.kind.as_str(), ask.since, ask.until) {
        ("incremental", None, None) => Ok(FeedRunKind::Incremental),
        ("full_refresh", None, None) => Ok(FeedRunKind::FullRefresh),
        ("incremental" | "full_refresh", _, _) => Err(invalid("only a backfill takes since and until")),
        ("backfill", Some(since), Some(until)) if since < until && until <= now => {
            Ok(FeedRunKind::Backfill { since, until })
        }
        ("backfill", Some(_), Some(_)) => {
            Err(invalid("a backfill needs since before until, and until not in the future"))
        }
        ("backfill", _, _) => Err(invalid("a backfill needs since and until")),
        _ => Err(invalid("kind is incremental, full_refresh or backfill")),
    }
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/feeds/{supplier_id}/runs", tag = "feeds", params(("tenant_id" = String, Path, description = "Tenant id"), ("supplier_id" = String, Path, description = "Supplier id")), request_body = RunAsk, responses((status = 202, description = "Asked for: the worker runs it within a poll (or its next --once run)", body = RunAsked), (status = 404, description = "No such feed", body = ErrorBody), (status = 409, description = "The feed is not live yet (not_live): nothing of it is pulled before its go-live date; or it is switched off (feed_off): the worker runs nothing of it until it is switched on", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn ask_feed_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<RunAsk>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<RunAsked>), ApiError> {
    let Path((tenant_id, supplier_id)) = path?;
    let key = feed_key(&tenant_id, &supplier_id)?;
    let Json(ask) = body?;
    let kind = run_kind(&ask, Utc::now())?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(ask_run(&state, &caller, &key, kind).await?)))
}

/// Asks for a manual run of a feed, audited; shared by the API and the support page.
pub async fn ask_run(
    state: &AppState,
    caller: &Caller,
    key: &FeedKey,
    kind: FeedRunKind,
) -> Result<RunAsked, ApiError> {
    caller.require(Role::Operator)?;
    let Some(feed) = state.store.feed(key).await? else {
        return Err(ApiError::not_found(format!("no feed {key}")));
    };
    if let Some(go_live) = goes_live_after(&feed.settings, Utc::now()) {
        let message = format!("feed {key} goes live at {go_live}: nothing of it is pulled before, and no manual run");
        return Err(ApiError::Conflict { code: "not_live", message });
    }
    // The worker runs nothing of a feed switched off, asked for or not: accepted, the run was
    // promised "within a poll" and never came, and the letter it was to heal stayed open.
    if !feed.settings.sync_enabled {
        let message =
            format!("feed {key} is switched off: the worker runs nothing of it; switch it on, then ask again");
        return Err(ApiError::Conflict { code: "feed_off", message });
    }
    let request = FeedRunRequest { kind, requested_by: caller.name.clone(), requested_at: Utc::now() };
    if !state.store.request_feed_run(key, &request).await? {
        return Err(ApiError::not_found(format!("no feed {key}")));
    }
    let replaced = feed.run_request.map(RunRequestView::from);
    let asked = RunRequestView::from(request);
    audit(
        state,
        caller,
        "feed.run",
        format!("feed/{key}"),
        serde_json::json!({ "run_request": replaced.as_ref().map(|view| view.kind) }),
        serde_json::json!({ "run_request": asked.kind, "since": asked.since, "until": asked.until }),
    )
    .await?;
    Ok(RunAsked { request: asked, replaced })
}
