//! Dead letters: listed with filters, retried (409 at the loop guard) and resolved with a note; audited.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use catalog_store::{DeadLetter, DeadLetterFilter, DeadLetterRetry, Role};
use serde::Deserialize;

use super::{audit, tenant, MAX_PAGE};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// The stages a dead letter is written at: a channel's publish, a feed's pull.
const STAGES: [&str; 2] = ["publish", catalog_store::PULL_STAGE];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct DeadLetterQuery {
    pub tenant: Option<String>,
    /// One of the worker's channels, or one a dead letter names.
    pub channel: Option<String>,
    /// `publish` or `pull`.
    pub stage: Option<String>,
    /// `open` (the default), `resolved` (kept for the journal's retention, then deleted) or `all`.
    pub state: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/dead-letters", tag = "dead_letters", params(DeadLetterQuery), responses((status = 200, description = "Dead letters, newest first", body = Vec<catalog_store::DeadLetter>), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list_dead_letters(
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
    // A stage no letter can have (a typo, another case) is refused: answered, it read as "no
    // failures" of that stage.
    if let Some(stage) = query.stage.as_deref().filter(|stage| !STAGES.contains(stage)) {
        let message = format!("stage {stage:?} is none of {}", STAGES.join(", "));
        return Err(ApiError::bad_request("invalid_query", message));
    }
    if let Some(channel) = query.channel.as_deref() {
        known_channel(&state, channel).await?;
    }
    let filter = DeadLetterFilter {
        tenant: query.tenant.as_deref().map(tenant).transpose()?,
        channel: query.channel,
        stage: query.stage,
        open,
        before_id: query.before,
        // At least one: `limit=0` answered `[]`, which reads as "nothing open".
        limit: query.limit.unwrap_or(100).clamp(1, MAX_PAGE),
    };
    Ok(Json(state.store.dead_letters(&filter).await?))
}

/// Refuses a channel no route and no letter names (a typo, another case), as a stage:
/// answered with no letter, it read as "that channel is healed". One the worker no longer
/// publishes stays listable while a letter names it.
async fn known_channel(state: &AppState, channel: &str) -> Result<(), ApiError> {
    if state.channels.iter().any(|known| known == channel) {
        return Ok(());
    }
    let any_letter =
        DeadLetterFilter { channel: Some(channel.to_owned()), open: None, limit: 1, ..DeadLetterFilter::default() };
    if !state.store.dead_letters(&any_letter).await?.is_empty() {
        return Ok(());
    }
    let message = format!(
        "channel {channel:?} is none of the worker's channels ({}) nor a dead letter's",
        state.channels.join(", ")
    );
    Err(ApiError::bad_request("invalid_query", message))
}

/// The dead letter id a path names: a whole number, as `GET /v1/dead-letters` lists them;
/// anything else is `invalid_dead_letter_id`, never serde's words.
fn dead_letter_id(Path(text): Path<String>) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_dead_letter_id",
            format!("{text:?} is not a dead letter id: ids are the whole numbers GET /v1/dead-letters lists"),
        )
    })
}

fn letter_state(letter: &DeadLetter) -> serde_json::Value {
    serde_json::json!({
        "heal_rounds": letter.heal_rounds,
        "operator_retries": letter.operator_retries,
        "quarantined": letter.quarantined_at.is_some(),
        "resolved": letter.resolved_at.is_some(),
        "resolution": letter.resolution,
        "note": letter.note,
    })
}

#[utoipa::path(post, path = "/v1/dead-letters/{dead_letter_id}/retry", tag = "dead_letters", params(("dead_letter_id" = i64, Path, description = "Dead letter id")), responses((status = 200, description = "Requeued", body = catalog_store::DeadLetterRetry), (status = 404, description = "No such letter", body = ErrorBody), (status = 409, description = "Loop guard, resolved, or not retryable", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn retry_dead_letter(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DeadLetterRetry>, ApiError> {
    let dead_letter_id = dead_letter_id(path?)?;
    Ok(Json(retry(&state, &caller, dead_letter_id).await?))
}

/// Retries a dead letter, audited; 409 at the loop guard. Shared by the API and the page.
pub async fn retry(state: &AppState, caller: &Caller, dead_letter_id: i64) -> Result<DeadLetterRetry, ApiError> {
    caller.require(Role::Operator)?;
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
                state,
                caller,
                "dead_letter_retry",
                format!("dead_letter/{dead_letter_id}"),
                letter_state(&before),
                after,
            )
            .await?;
            Ok(retry)
        }
        DeadLetterRetry::LoopGuard { retries } => Err(ApiError::Conflict {
            code: "loop_guard",
            message: format!(
                "dead letter {dead_letter_id} was retried {retries} times by an operator without a success since (the limit, --max-retries); fix the cause, or resolve it"
            ),
        }),
        DeadLetterRetry::AlreadyResolved => Err(ApiError::Conflict {
            code: "already_resolved",
            message: format!("dead letter {dead_letter_id} is resolved"),
        }),
        DeadLetterRetry::NotRetryable if before.stage == catalog_store::PULL_STAGE => Err(ApiError::Conflict {
            code: "not_retryable",
            message: format!(
                "dead letter {dead_letter_id} is a failed run of feed {}: ask for a run of the feed \
                 (POST /v1/tenants/{{tenant}}/feeds/{{supplier}}/runs) or wait for its next; the first run that \
                 completes resolves it",
                before.subject
            ),
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct ResolveBody {
    pub note: String,
}

#[utoipa::path(post, path = "/v1/dead-letters/{dead_letter_id}/resolve", tag = "dead_letters", params(("dead_letter_id" = i64, Path, description = "Dead letter id")), request_body = ResolveBody, responses((status = 200, description = "Resolved", body = catalog_store::DeadLetter), (status = 404, description = "No such letter", body = ErrorBody), (status = 409, description = "Already resolved", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn resolve_dead_letter(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<ResolveBody>, JsonRejection>,
) -> Result<Json<DeadLetter>, ApiError> {
    let dead_letter_id = dead_letter_id(path?)?;
    let Json(body) = body?;
    Ok(Json(resolve(&state, &caller, dead_letter_id, &body.note).await?))
}

/// Resolves an open dead letter with a note, audited. Shared by the API and the page.
pub async fn resolve(
    state: &AppState,
    caller: &Caller,
    dead_letter_id: i64,
    note: &str,
) -> Result<DeadLetter, ApiError> {
    caller.require(Role::Operator)?;
    if note.trim().is_empty() || note.len() > 2_000 {
        return Err(ApiError::bad_request("invalid_note", "a note of 1 to 2000 bytes says why it is resolved"));
    }
    let Some(before) = state.store.dead_letter(dead_letter_id).await? else {
        return Err(ApiError::not_found(format!("no dead letter {dead_letter_id}")));
    };
    if !state.store.resolve_dead_letter(dead_letter_id, note.trim()).await? {
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
        state,
        caller,
        "dead_letter_resolve",
        format!("dead_letter/{dead_letter_id}"),
        letter_state(&before),
        letter_state(&after),
    )
    .await?;
    Ok(after)
}
