//! The support page's actions (sync switches, dead-letter retries and resolves; the feeds'
//! are in `feeds`) and how each is answered: a redirect to the page with a notice of what it
//! did or why it was refused, never JSON.

use axum::extract::{Form, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use catalog_core::{SupplierId, TenantId};
use serde::Deserialize;

use super::{notice, signed_in};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// A redirect to the page (303) showing `message`, sealed for `caller`.
fn back(message: &str, caller: &Caller) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, notice::location(message, caller))]).into_response()
}

/// The tenant a page form names. Refused without the form's text, not even the character
/// the rule refuses: a notice says only what the server wrote, where a viewer posting a
/// "tenant" of "Your session expired. Paste your token at …" got those words back under the
/// server's seal.
pub(super) fn form_tenant(text: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(text).map_err(|_| ApiError::bad_request("invalid_tenant", "the tenant is not a valid tenant id"))
}

/// The supplier a page form names, refused without the form's text (see `form_tenant`).
pub(super) fn form_supplier(text: &str) -> Result<SupplierId, ApiError> {
    SupplierId::parse(text)
        .map_err(|_| ApiError::bad_request("invalid_supplier", "the supplier is not a valid supplier id"))
}

/// The answer to every page action, in one place: the notice of what it did, or of why it was
/// refused after `refused`, on `caller`'s page. Only who asks is answered by status: signed
/// out (401), or of a role that may not (403; the page shows them no such control); an
/// internal error stays a logged bare 500. Neither `done` nor `refused` may carry a form's
/// text (`form_tenant`).
pub(super) fn told(done: Result<String, ApiError>, refused: &str, caller: &Caller) -> Result<Response, ApiError> {
    match done {
        Ok(message) => Ok(back(&message, caller)),
        Err(
            error @ (ApiError::NotFound(_)
            | ApiError::BadRequest { .. }
            | ApiError::Conflict { .. }
            | ApiError::PayloadTooLarge),
        ) => Ok(back(&format!("{refused}: {}.", error.to_string().trim_end_matches('.')), caller)),
        Err(error @ (ApiError::Unauthorized | ApiError::Forbidden | ApiError::Internal(_))) => Err(error),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct SwitchForm {
    pub tenant: String,
    pub supplier: Option<String>,
    pub enabled: bool,
}

pub(super) async fn switch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SwitchForm>,
) -> Result<Response, ApiError> {
    let caller = signed_in(&state, &headers).await?.ok_or(ApiError::Unauthorized)?;
    told(switch_sync(&state, &caller, &form).await, "Sync not switched", &caller)
}

async fn switch_sync(state: &AppState, caller: &Caller, form: &SwitchForm) -> Result<String, ApiError> {
    let tenant = form_tenant(&form.tenant)?;
    let supplier = form.supplier.as_deref().map(form_supplier).transpose()?;
    // The gate's tenant refused (409) is said on the page, as the API says it.
    let result =
        crate::api::switch_sync(state, caller, &tenant, supplier, form.enabled, crate::api::Unseen::Refuse).await?;
    // Each outcome told: switched on for a tenant whose canary still leaves a supplier out, or
    // for a supplier of a tenant switched off, held events are held again, not applied.
    let outcomes: Vec<String> =
        result.events_by_outcome.iter().filter(|(_, n)| **n > 0).map(|(outcome, n)| format!("{n} {outcome}")).collect();
    let outcomes = if outcomes.is_empty() { String::new() } else { format!(" ({})", outcomes.join(", ")) };
    Ok(format!(
        "Sync switched {}: {} held events decided again{outcomes}, {} items changed.",
        if result.after { "on" } else { "off" },
        result.events_replayed,
        result.items_changed
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct DeadLetterForm {
    pub dead_letter_id: i64,
    pub action: String,
    pub note: Option<String>,
}

/// A retry or resolve. Refused (a letter resolved meanwhile, by a publish or by another
/// operator, or gone; a note of blanks or too long), it is said on the page.
pub(super) async fn dead_letter_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<DeadLetterForm>,
) -> Result<Response, ApiError> {
    let caller = signed_in(&state, &headers).await?.ok_or(ApiError::Unauthorized)?;
    let id = form.dead_letter_id;
    match form.action.as_str() {
        "retry" => told(
            crate::api::retry(&state, &caller, id).await.map(|_| format!("Dead letter {id} requeued.")),
            &format!("Dead letter {id} not retried"),
            &caller,
        ),
        "resolve" => told(
            crate::api::resolve(&state, &caller, id, form.note.as_deref().unwrap_or_default())
                .await
                .map(|_| format!("Dead letter {id} resolved.")),
            &format!("Dead letter {id} not resolved"),
            &caller,
        ),
        _ => told(
            Err(ApiError::bad_request("invalid_body", "action is retry or resolve")),
            &format!("Dead letter {id} not changed"),
            &caller,
        ),
    }
}
