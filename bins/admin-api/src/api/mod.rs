//! The `/v1` routes: traces and lookups, tenants and their flags, status, channel health, dead letters,
//! supplier feeds, the audit log and tokens. Every route needs a token (`auth::authenticate`); reads need a
//! viewer, flag and dead-letter writes an operator, token management an admin. Every write
//! is audited with its before and after.

use axum::routing::{get, post, put};
use axum::Router;
use catalog_core::{SupplierId, TenantId};
use catalog_store::AuditRecord;

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::AppState;

/// Since when switching sync on looks for held events: all of them. Retention keeps the
/// journal segments that hold held events past the retention for this (decision 0019); the
/// held rows are read through their partial index (`events_held`), so the cost is the held
/// events', not the journal's. (It looked back 30 days, and left older held events held while
/// the answer counted only the rest.)
pub fn held_since() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::UNIX_EPOCH
}

/// Most rows a list answers at once.
const MAX_PAGE: usize = 500;

/// Whether `at` has a year of four digits (0000 to 9999), as RFC 3339 writes one and as
/// `/v1/rejections` parses its `since`: a time both stores keep. serde's `DateTime` also takes
/// a signed year of more digits (`-5000-01-01T00:00:00Z`), which PostgreSQL refuses to bind,
/// and a request naming one failed as a bare 500.
pub(crate) fn four_digit_year(at: chrono::DateTime<chrono::Utc>) -> bool {
    use chrono::Datelike as _;
    (0..=9999).contains(&at.year())
}

pub mod channels;
mod dead_letters;
pub mod feeds;
mod flags;
pub mod gate;
pub mod items;
pub mod rejections;
pub mod signals;
mod status;
mod tokens;

pub use dead_letters::{resolve, retry};
pub use flags::{switch_sync, SupplierView, SwitchResult, SyncSwitch, TenantView, Unseen};
pub use status::{status_of, sync_state, StatusView};
pub use tokens::valid_token_name;

use dead_letters::{list_dead_letters, resolve_dead_letter, retry_dead_letter};
use flags::{list_tenants, set_supplier_sync, set_tenant_sync};
use items::{event_lookup, trace_by_id, trace_by_sku, trace_id_lookup};
use status::tenant_status;
use tokens::{add_token, audit_log, list_tokens, revoke_token};

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
        .route("/v1/rejections", get(rejections::list_rejections))
        .route("/v1/channels", get(channels::list_channels))
        .route("/v1/dead-letters", get(list_dead_letters))
        .route("/v1/dead-letters/{dead_letter_id}/retry", post(retry_dead_letter))
        .route("/v1/dead-letters/{dead_letter_id}/resolve", post(resolve_dead_letter))
        .route("/v1/feeds", get(feeds::list_feeds))
        .route("/v1/tenants/{tenant_id}/feeds/{supplier_id}", get(feeds::read_feed))
        .route("/v1/tenants/{tenant_id}/feeds/{supplier_id}/sync", put(feeds::set_feed_sync))
        .route("/v1/tenants/{tenant_id}/feeds/{supplier_id}/runs", post(feeds::ask_feed_run))
        .route("/v1/audit", get(audit_log))
        .route("/v1/tokens", get(list_tokens).post(add_token))
        .route("/v1/tokens/{name}", axum::routing::delete(revoke_token))
        .route("/v1/signals", get(signals::all_signals))
        .route("/v1/tenants/{tenant_id}/signals", get(signals::tenant_signals))
        .route("/v1/tenants/{tenant_id}/gate", get(gate::read_gate))
        .route("/v1/tenants/{tenant_id}/gate/sign-offs", post(gate::sign_off))
        .route("/v1/tenants/{tenant_id}/gate/canary", post(gate::canary))
        .route("/v1/tenants/{tenant_id}/gate/widen", post(gate::widen))
        .route("/v1/tenants/{tenant_id}/gate/open", post(gate::open))
        .route("/v1/tenants/{tenant_id}/gate/rollback", post(gate::rollback))
        .route_layer(axum::middleware::from_fn_with_state(state, auth::authenticate))
}

/// The tenant id a request names, refused as `invalid_tenant` with the rule it breaks.
pub(crate) fn tenant(value: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(value).map_err(|error| ApiError::bad_request("invalid_tenant", format!("tenant {error}")))
}

/// The supplier id a request names, refused as `invalid_supplier` with the rule it breaks.
pub(crate) fn supplier(value: &str) -> Result<SupplierId, ApiError> {
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

/// The OpenAPI 3.1 description of every `/v1` route, generated from the handlers' annotations.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(title = "catalog-sync admin API", description = "Support and operator API: traces, flags, dead letters, status, audit, tokens."),
    paths(
        flags::list_tenants, flags::set_tenant_sync, flags::set_supplier_sync, status::tenant_status,
        items::trace_by_sku, items::trace_by_id, items::event_lookup, items::trace_id_lookup,
        rejections::list_rejections,
        channels::list_channels,
        dead_letters::list_dead_letters, dead_letters::retry_dead_letter, dead_letters::resolve_dead_letter,
        tokens::audit_log, tokens::list_tokens, tokens::add_token, tokens::revoke_token,
        signals::all_signals, signals::tenant_signals,
        gate::read_gate, gate::sign_off, gate::canary, gate::widen, gate::open, gate::rollback,
        feeds::list_feeds, feeds::read_feed, feeds::set_feed_sync, feeds::ask_feed_run,
    ),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

/// Adds the bearer scheme every `/v1` route names.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("admin-api token")).build(),
            ),
        );
    }
}
