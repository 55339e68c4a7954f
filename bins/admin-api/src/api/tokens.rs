//! The audit log, and token management for admins (the token is shown once, in the answer that creates it).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use catalog_core::Classify as _;
use catalog_store::{AuditEntry, NewToken, Role, TokenInfo};
use serde::{Deserialize, Serialize};

use super::{audit, MAX_PAGE};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct AuditQuery {
    pub before: Option<i64>,
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery), responses((status = 200, description = "Audit entries, newest first", body = Vec<catalog_store::AuditEntry>), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn audit_log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.require(Role::Viewer)?;
    let Query(query) = query?;
    Ok(Json(state.store.audit_log(query.limit.unwrap_or(100).clamp(1, MAX_PAGE), query.before).await?))
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", responses((status = 200, description = "Tokens, never their values", body = Vec<catalog_store::TokenInfo>), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(state.store.tokens().await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct NewTokenBody {
    pub name: String,
    pub role: String,
}

/// A token created through the API: shown in this answer only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct CreatedToken {
    pub name: String,
    pub role: Role,
    pub token: String,
}

/// Whether a token name is acceptable: 1 to 64 letters, digits or `-_.@`.
pub fn valid_token_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = NewTokenBody, responses((status = 200, description = "Created; the token is shown once", body = CreatedToken), (status = 409, description = "Name taken", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn add_token(
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
    let audited = audit(
        &state,
        &caller,
        "token_add",
        format!("token/{}", body.name),
        serde_json::Value::Null,
        serde_json::json!({ "role": role }),
    )
    .await;
    if let Err(error) = audited {
        // Live, unaudited, and its secret never shown: taken back, so that asking again for the
        // name is not refused as taken by a token no one holds.
        if let Err(revoke) = state.store.revoke_token(&body.name).await {
            tracing::error!(name = %body.name, error = %revoke, class = revoke.failure_class().as_str(), "a token whose audit entry could not be written could not be revoked either: revoke it by hand");
        }
        return Err(error);
    }
    Ok(Json(CreatedToken { name: body.name, role, token }))
}

#[utoipa::path(delete, path = "/v1/tokens/{name}", tag = "tokens", params(("name" = String, Path, description = "Token name")), responses((status = 204, description = "Revoked"), (status = 404, description = "No live token", body = ErrorBody), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn revoke_token(
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
