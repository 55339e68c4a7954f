//! Mercado Libre's Items API as a channel adapter (`docs/channels/mercadolibre.md`):
//! `PUT /items/{item_id}` with `{"available_quantity": N}`, or for one variation of an item
//! (listing `MLA123456789/174997747229`) `PUT /items/{item_id}/variations/{variation_id}` with
//! the same body (decision 0024), or a user product's stock at one location (`up:…`, decision
//! 0027: its version read, then written), one listing per request, with an access token from Mercado Libre's OAuth endpoint (refresh-token grant, client id and secret
//! in the form) fetched again once when Mercado Libre says it expired. Its refresh tokens are
//! single-use: each refresh answers a new one, which the token cache keeps for the next.

mod read;
mod stock;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use catalog_core::CatalogItem;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{common_verdict, exchange, http_client, one_at_a_time, rejected, with_token, Answer};
use crate::adapter::{Attempt, ChannelAdapter, Publish, Sent};
use crate::channel::Secret;
use crate::oauth::{ClientAuth, Grant, TokenCache, TokenEndpoint};
use crate::publisher::PublishError;
use crate::response::{truncate, Verdict};

pub use read::{parse_multiget, MAX_READS_PER_REQUEST};
pub use stock::{UserProductListing, Warehouse, USER_PRODUCT_PREFIX};

/// Mercado Libre's API host, the same for every site (MLA, MLB, MLM, …).
pub const DEFAULT_BASE_URL: &str = "https://api.mercadolibre.com";
/// Mercado Libre's OAuth token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://api.mercadolibre.com/oauth/token";

/// Where Mercado Libre is and the seller's OAuth grant for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MercadoLibreConfig {
    /// The API host, [`DEFAULT_BASE_URL`] in production; requests go to
    /// `{base_url}/items/{item_id}`.
    pub base_url: String,
    /// The OAuth token endpoint, [`DEFAULT_TOKEN_URL`] in production.
    pub token_url: String,
    /// The application's id (`client_id`).
    pub client_id: String,
    /// The application's secret key (`client_secret`).
    pub client_secret: Secret,
    /// The seller's refresh token (`TG-…`, granted with `offline_access`). Single-use: each
    /// refresh answers with the next one.
    pub refresh_token: Secret,
    /// Where the rotated refresh token is kept across restarts (written before its access
    /// token is used; read at start in place of `refresh_token` once it exists, and before
    /// each refresh, as the workers draining the channel share it). Without it a restart uses
    /// `refresh_token` again, which the first refresh has spent.
    pub refresh_token_file: Option<std::path::PathBuf>,
}

/// A Mercado Libre seller's listings as a channel: the listing of an item version is the
/// item id the channel's listing map gives its SKU (`MLA123456789`), the item id and one
/// of its variation ids (`MLA123456789/174997747229`), or a user product's stock at the
/// selling address (`up:MLBU206642488`) or at one warehouse (`up:MLBU206642488@9876543/MXP123451`).
#[derive(Debug)]
pub struct MercadoLibreChannel {
    config: MercadoLibreConfig,
    client: reqwest::Client,
    tokens: TokenCache,
}

impl MercadoLibreChannel {
    /// A client that keeps up to `connections` connections open and gives up on a request
    /// after `request_timeout`; the token endpoint is asked through the same client.
    pub fn new(
        config: MercadoLibreConfig,
        request_timeout: Duration,
        connections: usize,
    ) -> Result<Self, PublishError> {
        let client = http_client(request_timeout, connections, None)?;
        let endpoint = TokenEndpoint {
            url: config.token_url.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            grant: Grant::RefreshToken(config.refresh_token.clone()),
            client_auth: ClientAuth::Form,
            extra_form: vec![],
            extra_headers: vec![],
        };
        let mut tokens = TokenCache::new(endpoint, client.clone());
        if let Some(path) = &config.refresh_token_file {
            tokens = tokens.keeping_refresh_token_in(path.clone()).map_err(|error| {
                PublishError::Credentials(format!("reading the refresh token file {}: {error}", path.display()))
            })?;
        }
        Ok(Self { config, client, tokens })
    }

    /// Access tokens fetched so far.
    pub async fn tokens_fetched(&self) -> u64 {
        self.tokens.n_fetched().await
    }
}

/// A listing on Mercado Libre: an item, or one variation of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MercadoLibreListing<'a> {
    /// The item id, letters and digits (`MLA123456789`).
    pub item: &'a str,
    /// The variation id, digits (`174997747229`), for an item with variations.
    pub variation: Option<&'a str>,
}

impl<'a> MercadoLibreListing<'a> {
    /// Reads `MLA123456789` or `MLA123456789/174997747229`; `None` for anything else. Both ids
    /// become path segments: anything else is a listing map mistake, and must not address
    /// another resource.
    pub fn parse(listing: &'a str) -> Option<Self> {
        let (item, variation) = match listing.split_once('/') {
            Some((item, variation)) => (item, Some(variation)),
            None => (listing, None),
        };
        let item_id = id_like(item);
        let variation_id = variation
            .is_none_or(|variation| !variation.is_empty() && variation.bytes().all(|byte| byte.is_ascii_digit()));
        (item_id && variation_id).then_some(Self { item, variation })
    }

    /// The path a quantity is written to.
    fn path(&self) -> String {
        match self.variation {
            Some(variation) => format!("/items/{}/variations/{variation}", self.item),
            None => format!("/items/{}", self.item),
        }
    }
}

/// An id that may stand in a path segment or a body field: letters and digits, at least one.
fn id_like(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

/// Mercado Libre answers 401 for an expired or invalid access token.
fn expired(answer: &Answer) -> bool {
    answer.status == 401
}

/// The request body, for an item or a variation alike.
#[derive(Serialize)]
struct AvailableQuantity {
    available_quantity: i64,
}

/// Mercado Libre's error envelope: `{"message", "error", "status", "cause": [...]}`.
#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    error: Option<String>,
    #[serde(default)]
    cause: Vec<Value>,
}

#[async_trait]
impl ChannelAdapter for MercadoLibreChannel {
    async fn send(&self, batch: &[Publish]) -> Sent {
        // One listing per request: no batch endpoint for writes was found (the multiget
        // `GET /items?ids=` only reads).
        one_at_a_time(batch, |publish| async move { (self.set_available_quantity(publish).await, None) }).await
    }
}

impl MercadoLibreChannel {
    /// `PUT /items/{item_id}` (or `…/variations/{variation_id}`) for one item version, with
    /// the quantity its channel rules give. Mercado Libre has no idempotency key for it;
    /// setting an absolute quantity again is harmless.
    async fn set_available_quantity(&self, publish: &Publish) -> Attempt {
        let started = Instant::now();
        if let Some(listing) = UserProductListing::parse(&publish.listing) {
            return self.set_location_stock(publish, listing).await;
        }
        let Some(listing) = MercadoLibreListing::parse(&publish.listing) else {
            let verdict = Verdict::DeadLetter {
                reason: "invalid_listing".to_owned(),
                error: format!(
                    "{:?} is not a Mercado Libre item id such as MLA123456789, nor one with a variation id such as MLA123456789/174997747229, nor a user product's stock such as up:MLBU206642488 or up:MLBU206642488@9876543/MXP123451",
                    publish.listing
                ),
                body: None,
            };
            return Attempt { verdict, status: None, latency: started.elapsed() };
        };
        let url = format!("{}{}", self.config.base_url.trim_end_matches('/'), listing.path());
        let body = AvailableQuantity { available_quantity: publish.quantity };
        let traceparent = publish.entry.traceparent.as_deref();
        let answer = with_token(&self.tokens, expired, |token| {
            let mut request =
                self.client.put(&url).bearer_auth(token.expose()).header("Accept", "application/json").json(&body);
            if let Some(traceparent) = traceparent {
                request = request.header("traceparent", traceparent);
            }
            exchange(request)
        })
        .await;
        let (verdict, status) = match answer {
            Ok(answer) => (verdict_of(&answer, publish), Some(answer.status)),
            Err(verdict) => (verdict, None),
        };
        Attempt { verdict, status, latency: started.elapsed() }
    }
}

/// What Mercado Libre's answer to a write of `publish` says, as of now.
fn verdict_of(answer: &Answer, publish: &Publish) -> Verdict {
    classify_mercadolibre(answer.status, answer.header("retry-after"), &answer.body, &publish.entry.item, Utc::now())
}

/// Classifies Mercado Libre's answer to `PUT /items/{item_id}` for `item`, received at `now`:
/// 2xx accepted; 429 (`local_rate_limited`) waits `Retry-After`, or a second (Mercado Libre
/// documents no throttling header); 401 still, after a new token, is an operator's credential
/// problem that heals once fixed; 408 and 5xx retry; any other 4xx (`validation_error`,
/// `item.available_quantity.not_modifiable` on Full listings, an unknown item) is
/// dead-lettered with Mercado Libre's message and body.
pub fn classify_mercadolibre(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    item: &CatalogItem,
    now: DateTime<Utc>,
) -> Verdict {
    match status {
        200..=299 => Verdict::Answered(item.accepted()),
        // A fresh token refused too: the grant was revoked (a password changed, the app's
        // authorization removed), and the channel waits for the seller to authorize again.
        401 => Verdict::Blocked {
            reason: "unauthorized",
            error: format!("HTTP 401: {}", describe(status, body)),
            retry_after: super::BLOCKED_FOR,
        },
        _ => common_verdict(status, retry_after, body, now)
            .unwrap_or_else(|| rejected(status, describe(status, body), body)),
    }
}

/// `message (error): cause code: cause message; …` from Mercado Libre's error envelope, or
/// the body itself when it is not one.
fn describe(status: u16, body: &str) -> String {
    let Ok(answer) = serde_json::from_str::<ErrorBody>(body) else {
        return format!("HTTP {status}: {}", truncate(body));
    };
    let mut described = match (answer.message, answer.error) {
        (Some(message), Some(error)) => format!("{message} ({error})"),
        (Some(text), None) | (None, Some(text)) => text,
        (None, None) => format!("HTTP {status}"),
    };
    for cause in &answer.cause {
        let text = |name: &str| cause.get(name).and_then(Value::as_str);
        match (cause.as_str(), text("code"), text("message")) {
            (Some(cause), _, _) => described.push_str(&format!("; {cause}")),
            (None, Some(code), Some(message)) => described.push_str(&format!("; {code}: {message}")),
            (None, Some(text), None) | (None, None, Some(text)) => described.push_str(&format!("; {text}")),
            (None, None, None) => {}
        }
    }
    described
}

#[cfg(test)]
mod tests {
    use catalog_core::{ItemKey, Sku, TenantId};

    use super::*;

    #[test]
    fn every_documented_mercadolibre_answer_has_its_verdict() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let key = ItemKey { tenant: TenantId::parse("canary").expect("valid"), sku: Sku::parse("A-1").expect("valid") };
        let item = CatalogItem::new(key, 12, 3).expect("valid item");
        let cases = [
            (200, None, r#"{"id":"MLA123456789","available_quantity":7,"status":"active"}"#),
            (
                400,
                None,
                r#"{"message":"Validation error","error":"validation_error","status":400,"cause":[{"code":"item.available_quantity.not_modifiable","type":"error","message":"available_quantity is not modifiable for this item"}]}"#,
            ),
            (
                400,
                None,
                r#"{"message":"body invalid","error":"bad_request","status":400,"cause":["available_quantity must be a number"]}"#,
            ),
            (
                403,
                None,
                r#"{"message":"caller.id does not match item owner","error":"forbidden","status":403,"cause":[]}"#,
            ),
            (404, None, r#"{"message":"Item with id MLA1 not found","error":"not_found","status":404,"cause":[]}"#),
            (404, None, "<html>not found</html>"),
            (401, None, r#"{"message":"invalid access token","error":"not_found","status":401,"cause":[]}"#),
            (
                401,
                None,
                r#"{"message":"user not authorized","error":"unauthorized_request_error","status":401,"cause":[]}"#,
            ),
            (429, None, r#"{"error":"local_rate_limited","message":"Too many requests","status":429,"cause":[]}"#),
            (429, Some("3"), r#"{"error":"too_many_requests","message":"Too many requests","status":429}"#),
            (429, Some("Mon, 01 Jun 2026 12:00:30 GMT"), ""),
            (408, None, ""),
            (500, None, r#"{"message":"Internal server error","error":"internal_error","status":500,"cause":[]}"#),
            (503, None, "busy"),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, retry_after, body)| {
                let header = retry_after.map_or_else(String::new, |value| format!(" Retry-After: {value:?}"));
                let verdict = match classify_mercadolibre(*status, *retry_after, body, &item, now) {
                    Verdict::Answered(result) if result == item.accepted() => "Published".to_owned(),
                    other => format!("{other:?}"),
                };
                format!("{status}{header} -> {verdict}")
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200 -> Published
        400 -> DeadLetter { reason: "rejected_400", error: "Validation error (validation_error); item.available_quantity.not_modifiable: available_quantity is not modifiable for this item", body: Some("{\"message\":\"Validation error\",\"error\":\"validation_error\",\"status\":400,\"cause\":[{\"code\":\"item.available_quantity.not_modifiable\",\"type\":\"error\",\"message\":\"available_quantity is not modifiable for this item\"}]}") }
        400 -> DeadLetter { reason: "rejected_400", error: "body invalid (bad_request); available_quantity must be a number", body: Some("{\"message\":\"body invalid\",\"error\":\"bad_request\",\"status\":400,\"cause\":[\"available_quantity must be a number\"]}") }
        403 -> DeadLetter { reason: "rejected_403", error: "caller.id does not match item owner (forbidden)", body: Some("{\"message\":\"caller.id does not match item owner\",\"error\":\"forbidden\",\"status\":403,\"cause\":[]}") }
        404 -> DeadLetter { reason: "rejected_404", error: "Item with id MLA1 not found (not_found)", body: Some("{\"message\":\"Item with id MLA1 not found\",\"error\":\"not_found\",\"status\":404,\"cause\":[]}") }
        404 -> DeadLetter { reason: "rejected_404", error: "HTTP 404: <html>not found</html>", body: Some("<html>not found</html>") }
        401 -> Blocked { reason: "unauthorized", error: "HTTP 401: invalid access token (not_found)", retry_after: 30s }
        401 -> Blocked { reason: "unauthorized", error: "HTTP 401: user not authorized (unauthorized_request_error)", retry_after: 30s }
        429 -> Throttled { retry_after: 1s }
        429 Retry-After: "3" -> Throttled { retry_after: 3s }
        429 Retry-After: "Mon, 01 Jun 2026 12:00:30 GMT" -> Throttled { retry_after: 30s }
        408 -> Retry { reason: "request_timeout", error: "HTTP 408: " }
        500 -> Retry { reason: "server_error", error: "HTTP 500: {\"message\":\"Internal server error\",\"error\":\"internal_error\",\"status\":500,\"cause\":[]}" }
        503 -> Retry { reason: "server_error", error: "HTTP 503: busy" }
        "#);
    }
}
