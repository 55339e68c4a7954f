//! The support page's list of rejected messages: what the rules refused, newest first, with
//! the reason, the detail and the kept bytes, filtered by tenant and source. The answer to
//! "the supplier says they sent it" when nothing about it can be traced.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::cells::reason_and_message;
use super::{layout, sign_in_form, signed_in, when};
use crate::api::rejections::{list, RejectionQuery, RejectionsView, DEFAULT_LOOKBACK_HOURS};
use crate::error::ApiError;
use crate::AppState;

pub(super) async fn rejections_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RejectionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Some(caller) = signed_in(&state, &headers).await? else {
        return Ok(layout("Sign in", None, sign_in_form(None)).into_response());
    };
    let Ok(Query(query)) = query else {
        let message = "the filters could not be read: before is a journal id, limit a number";
        return Ok(
            layout("Rejected messages", Some(&caller), html! { p.error role="alert" { (message) } }).into_response()
        );
    };
    let tenant = query.tenant.clone().unwrap_or_default();
    let source = query.source.clone().unwrap_or_default();
    let body = match list(&state, query).await {
        Ok(view) => listing(&view, &tenant, &source),
        Err(ApiError::BadRequest { message, .. }) => html! { p.error role="alert" { (message) } },
        Err(error) => return Err(error),
    };
    Ok(layout("Rejected messages", Some(&caller), body).into_response())
}

fn listing(view: &RejectionsView, tenant: &str, source: &str) -> Markup {
    html! {
        h2 { "Rejected messages (" (view.rejections.len()) @if view.next_before.is_some() { "+" } ")" }
        p {
            "Messages the rules refused since " (when(view.since)) " (the last " (DEFAULT_LOOKBACK_HOURS)
            " hours unless " code { "since" } " says otherwise), newest first: each was journaled with its reason and nothing of it applied. "
            "Ask the supplier to send a corrected message."
        }
        form method="get" action="/rejections" {
            label for="rejections-tenant" { "Tenant" }
            input id="rejections-tenant" name="tenant" value=(tenant);
            " "
            label for="rejections-source" { "Source" }
            input id="rejections-source" name="source" value=(source);
            " "
            button type="submit" { "Filter" }
        }
        @if view.rejections.is_empty() { p { "None." } } @else {
            table {
                thead { tr { th scope="col" { "Received" } th scope="col" { "Tenant" } th scope="col" { "SKU" } th scope="col" { "Event id" } th scope="col" { "Source" } th scope="col" { "Reason and message" } } }
                tbody {
                    @for rejection in &view.rejections {
                        tr {
                            td { (when(rejection.event.received_at)) }
                            td { (rejection.tenant_id.clone().unwrap_or_else(|| "—".to_owned())) }
                            td { (rejection.sku.clone().unwrap_or_else(|| "—".to_owned())) }
                            td { @if let Some(event_id) = rejection.event.event_id { code { (event_id) } } @else { "—" } }
                            td { code { (rejection.event.source) } " #" (rejection.event.partition) "@" (rejection.event.offset) }
                            td { (reason_and_message(&rejection.event)) }
                        }
                    }
                }
            }
            @if let Some(before) = view.next_before {
                p { a href=(next_page(view, tenant, source, before)) { "Older" } }
            }
        }
    }
}

/// The link to the next page: the same filters and window, before the last row shown.
fn next_page(view: &RejectionsView, tenant: &str, source: &str, before: i64) -> String {
    let since = view.since.to_rfc3339();
    let before = before.to_string();
    let pairs: Vec<(&str, &str)> =
        [("since", since.as_str()), ("tenant", tenant), ("source", source), ("before", &before)]
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .collect();
    format!("/rejections?{}", serde_urlencoded::to_string(pairs).expect("pairs of strings encode"))
}
