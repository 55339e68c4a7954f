//! eBay's Sell Inventory API as a channel adapter (`docs/channels/ebay.md`): one
//! `bulkUpdatePriceQuantity` request sets the available quantity of up to 25 seller SKUs and
//! is answered SKU by SKU, with a user access token from eBay's OAuth endpoint (refresh-token
//! grant, Basic client authentication) fetched again once when eBay says it expired.

mod read;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use catalog_core::CatalogItem;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{all, common_verdict, exchange, http_client, rejected, with_token, Answer};
use crate::adapter::{Attempt, ChannelAdapter, Publish, Sent};
use crate::channel::Secret;
use crate::oauth::{ClientAuth, Grant, TokenCache, TokenEndpoint};
use crate::publisher::PublishError;
use crate::response::{parse_retry_after, truncate, Verdict};

/// eBay's production API host (the sandbox is `https://api.sandbox.ebay.com`).
pub const DEFAULT_BASE_URL: &str = "https://api.ebay.com";
/// eBay's OAuth token endpoint (the sandbox's is on `api.sandbox.ebay.com`).
pub const DEFAULT_TOKEN_URL: &str = "https://api.ebay.com/identity/v1/oauth2/token";
/// The one scope the refresh asks for: enough to manage inventory, a subset of what the
/// seller granted.
pub const SELL_INVENTORY_SCOPE: &str = "https://api.ebay.com/oauth/api_scope/sell.inventory";
/// The most entries one `bulkUpdatePriceQuantity` request carries. eBay's docs disagree on
/// what the 25 counts: the `BulkPriceQuantity` type and the bulk-updates guide say "up to 25"
/// inventory items, the method's text says up to 25 offers of one SKU. The type's reading
/// (25 SKUs per request, what integrators send) is the documented one used here; it was not
/// confirmed against the sandbox.
pub const MAX_SKUS_PER_REQUEST: usize = 25;
/// What a 429 without `Retry-After` waits. eBay documents no throttling header, and its limits
/// are call quotas per window (mostly a day), so retrying after a second would mostly be
/// refused again; a minute keeps the refusals few and the delay after a reset short.
pub const THROTTLED_WAIT: Duration = Duration::from_secs(60);

const BULK_UPDATE_PATH: &str = "/sell/inventory/v1/bulk_update_price_quantity";
/// `403 Access denied`: seen from eBay when the access token has expired (hendt/ebay-api#148),
/// otherwise an access token without the scope the call needs. Either way a new token is
/// fetched once (`expired`).
const ACCESS_DENIED_ERROR_ID: u64 = 1100;

pub use read::{parse_bulk_get, MAX_READS_PER_REQUEST};

/// Where eBay is and the seller's OAuth grant for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbayConfig {
    /// The API host, [`DEFAULT_BASE_URL`] in production; requests go to
    /// `{base_url}/sell/inventory/v1/bulk_update_price_quantity`.
    pub base_url: String,
    /// The OAuth token endpoint, [`DEFAULT_TOKEN_URL`] in production.
    pub token_url: String,
    /// The application's client id (App ID).
    pub client_id: String,
    /// The application's client secret (Cert ID).
    pub client_secret: Secret,
    /// The seller's refresh token; eBay does not rotate it.
    pub refresh_token: Secret,
}

/// An eBay seller's inventory as a channel: the listing of an item version is its seller SKU.
#[derive(Debug)]
pub struct EbayChannel {
    config: EbayConfig,
    client: reqwest::Client,
    tokens: TokenCache,
}

impl EbayChannel {
    /// A client that keeps up to `connections` connections open and gives up on a request
    /// after `request_timeout`; the token endpoint is asked through the same client.
    pub fn new(config: EbayConfig, request_timeout: Duration, connections: usize) -> Result<Self, PublishError> {
        let client = http_client(request_timeout, connections, None)?;
        let endpoint = TokenEndpoint {
            url: config.token_url.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            grant: Grant::RefreshToken(config.refresh_token.clone()),
            client_auth: ClientAuth::Basic,
            extra_form: vec![("scope".to_owned(), SELL_INVENTORY_SCOPE.to_owned())],
            extra_headers: vec![],
        };
        let tokens = TokenCache::new(endpoint, client.clone());
        Ok(Self { config, client, tokens })
    }

    /// Access tokens fetched so far.
    pub async fn tokens_fetched(&self) -> u64 {
        self.tokens.n_fetched().await
    }
}

/// The request body: `BulkPriceQuantity`.
#[derive(Serialize)]
struct BulkPriceQuantity<'a> {
    requests: Vec<PriceQuantity<'a>>,
}

/// One SKU's entry: only the quantity shipped to buyers is set. No `offers[]`: the buyer sees
/// the lower of this and an offer's own `availableQuantity`, which this adapter leaves alone.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PriceQuantity<'a> {
    sku: &'a str,
    ship_to_location_availability: ShipToLocationAvailability,
}

#[derive(Serialize)]
struct ShipToLocationAvailability {
    quantity: i64,
}

/// The answer's body: `BulkPriceQuantityResponse`. Entries are read as JSON values, so a
/// rejected one is kept whole as its dead letter's body.
#[derive(Deserialize)]
struct BulkPriceQuantityResponse {
    responses: Vec<Value>,
}

#[async_trait]
impl ChannelAdapter for EbayChannel {
    fn max_batch(&self) -> usize {
        MAX_SKUS_PER_REQUEST
    }

    async fn send(&self, batch: &[Publish]) -> Sent {
        let started = Instant::now();
        if batch.is_empty() {
            return Sent::default();
        }
        let url = format!("{}{BULK_UPDATE_PATH}", self.config.base_url.trim_end_matches('/'));
        let body = BulkPriceQuantity {
            requests: batch
                .iter()
                .map(|publish| PriceQuantity {
                    sku: &publish.listing,
                    ship_to_location_availability: ShipToLocationAvailability { quantity: publish.quantity },
                })
                .collect(),
        };
        // One request has one parent span: the first item version that carries a trace. eBay
        // has no idempotency key for this call; setting an absolute quantity again is harmless.
        let traceparent = batch.iter().find_map(|publish| publish.entry.traceparent.as_deref());
        let answer = with_token(&self.tokens, expired, |token| {
            let mut request = self.client.post(&url).bearer_auth(token.expose()).json(&body);
            if let Some(traceparent) = traceparent {
                request = request.header("traceparent", traceparent);
            }
            exchange(request)
        })
        .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(verdict) => return all(batch, verdict, None, started),
        };
        let sent: Vec<(&str, &CatalogItem)> =
            batch.iter().map(|publish| (publish.listing.as_str(), &publish.entry.item)).collect();
        let verdicts = classify_ebay(answer.status, answer.header("retry-after"), &answer.body, &sent, Utc::now());
        let latency = started.elapsed();
        let attempts =
            verdicts.into_iter().map(|(status, verdict)| Attempt { verdict, status: Some(status), latency }).collect();
        // eBay's answers say nothing of the quota left (that is the Analytics API's), so no pause.
        Sent { attempts, pause: None }
    }
}

/// Whether eBay refused the access token `answer` was sent with, so that a new one is worth
/// one more try: 401 (errorId 1001, "Invalid access token"), or 403 errorId 1100 "Access
/// denied", which eBay was seen to answer for an expired token (hendt/ebay-api#148). A token
/// denied for the scope it lacks is denied again with the new one, and then `unauthorized`.
fn expired(answer: &Answer) -> bool {
    access_token_refused(answer.status, &answer.body)
}

/// [`expired`], of a status and body: pure, so its table is tested.
fn access_token_refused(status: u16, body: &str) -> bool {
    match status {
        401 => true,
        403 => error_ids(body).contains(&ACCESS_DENIED_ERROR_ID),
        _ => false,
    }
}

/// Classifies eBay's answer to a `bulkUpdatePriceQuantity` request that carried `sent`
/// (listing and item, in request order), received at `now`: one verdict per entry, in order,
/// with the status that decided it (the SKU's `statusCode` when eBay answered one for it,
/// else the HTTP status). A 200 or 207 is read entry by entry, matched by SKU: eBay does not
/// promise to answer in request order, and when 207 is used instead of 200 is not confirmed.
pub fn classify_ebay(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    sent: &[(&str, &CatalogItem)],
    now: DateTime<Utc>,
) -> Vec<(u16, Verdict)> {
    let every = |verdict: Verdict| vec![(status, verdict); sent.len()];
    if let Some(verdict) = shared_verdict(status, retry_after, body, now) {
        return every(verdict);
    }
    if !(200..=299).contains(&status) {
        // The request as a whole was refused (a malformed request): it names no SKU.
        let error = describe_errors(body).unwrap_or_else(|| format!("HTTP {status}"));
        return every(rejected(status, error, body));
    }
    let Ok(answer) = serde_json::from_str::<BulkPriceQuantityResponse>(body) else {
        // Whether the quantities were set is unknown; setting them again is harmless.
        return every(Verdict::Retry {
            reason: "unreadable_answer",
            error: format!("HTTP {status} without a responses[] array: {}", truncate(body)),
        });
    };
    let mut entries: Vec<Option<Value>> = answer.responses.into_iter().map(Some).collect();
    sent.iter()
        .map(|(listing, item)| {
            let position = entries.iter().position(|entry| {
                entry.as_ref().and_then(|entry| entry.get("sku")).and_then(Value::as_str) == Some(*listing)
            });
            match position.and_then(|position| entries.get_mut(position)).and_then(Option::take) {
                Some(entry) => classify_entry(&entry, status, item, now),
                None => (
                    status,
                    Verdict::Retry { reason: "no_answer", error: format!("eBay answered nothing for SKU {listing}") },
                ),
            }
        })
        .collect()
}

/// One SKU's entry of a 200 or 207 (`http_status`): its `statusCode` means what an HTTP
/// status would.
fn classify_entry(entry: &Value, http_status: u16, item: &CatalogItem, now: DateTime<Utc>) -> (u16, Verdict) {
    let text = entry.to_string();
    let Some(status) = entry.get("statusCode").and_then(Value::as_u64).and_then(|code| u16::try_from(code).ok()) else {
        let error = format!("an entry without a statusCode: {}", truncate(&text));
        return (http_status, Verdict::Retry { reason: "unreadable_answer", error });
    };
    if let Some(verdict) = shared_verdict(status, None, &text, now) {
        return (status, verdict);
    }
    if (200..=299).contains(&status) {
        return (status, Verdict::Answered(item.accepted()));
    }
    let error = describe_error_list(entry.get("errors")).unwrap_or_else(|| format!("statusCode {status}"));
    (status, rejected(status, error, &text))
}

/// What a status means alike for the request and for one SKU: 429 wait, 401 or 403 errorId
/// 1100 (still, after a new token) an operator's credential problem that heals once fixed,
/// 408 and 5xx retry.
fn shared_verdict(status: u16, retry_after: Option<&str>, body: &str, now: DateTime<Utc>) -> Option<Verdict> {
    let access_denied = || error_ids(body).contains(&ACCESS_DENIED_ERROR_ID);
    match status {
        429 => Some(Verdict::Throttled {
            retry_after: retry_after.map_or(THROTTLED_WAIT, |value| parse_retry_after(Some(value), now)),
        }),
        401 => Some(unauthorized(status, body)),
        403 if access_denied() => Some(unauthorized(status, body)),
        _ => common_verdict(status, retry_after, body, now),
    }
}

fn unauthorized(status: u16, body: &str) -> Verdict {
    let detail = describe_errors(body).unwrap_or_else(|| truncate(body).to_owned());
    Verdict::Retry { reason: "unauthorized", error: format!("HTTP {status}: {detail}") }
}

/// The `errorId`s of a body's `errors[]`.
fn error_ids(body: &str) -> Vec<u64> {
    let body = serde_json::from_str::<Value>(body).ok();
    error_id_list(body.as_ref().and_then(|body| body.get("errors")))
}

/// The `errorId`s of an `errors[]` list.
fn error_id_list(errors: Option<&Value>) -> Vec<u64> {
    let errors = errors.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    errors.iter().filter_map(|error| error.get("errorId").and_then(Value::as_u64)).collect()
}

/// `errorId 25709: Invalid value for …` for each of a body's `errors[]`.
fn describe_errors(body: &str) -> Option<String> {
    let body = serde_json::from_str::<Value>(body).ok()?;
    describe_error_list(body.get("errors"))
}

fn describe_error_list(errors: Option<&Value>) -> Option<String> {
    let described: Vec<String> = errors?
        .as_array()?
        .iter()
        .map(|error| {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("no message");
            match error.get("errorId").and_then(Value::as_u64) {
                Some(error_id) => format!("errorId {error_id}: {message}"),
                None => message.to_owned(),
            }
        })
        .collect();
    (!described.is_empty()).then(|| described.join("; "))
}

#[cfg(test)]
mod tests {
    use catalog_core::{ItemKey, Sku, TenantId};

    use super::*;

    fn item(sku: &str) -> CatalogItem {
        let key = ItemKey { tenant: TenantId::parse("canary").expect("valid"), sku: Sku::parse(sku).expect("valid") };
        CatalogItem::new(key, 12, 3).expect("valid item")
    }

    fn render(verdict: &Verdict) -> String {
        match verdict {
            Verdict::Answered(result) if result.accepted() => "Published".to_owned(),
            other => format!("{other:?}"),
        }
    }

    /// 401 and 403 errorId 1100 ask for a new token; no other answer does.
    #[test]
    fn only_a_401_or_a_403_access_denied_asks_for_a_new_access_token() {
        let cases = [
            (
                401,
                r#"{"errors":[{"errorId":1001,"domain":"OAuth","category":"REQUEST","message":"Invalid access token"}]}"#,
            ),
            (401, ""),
            (403, r#"{"errors":[{"errorId":1100,"domain":"ACCESS","category":"REQUEST","message":"Access denied"}]}"#),
            (403, r#"{"errors":[{"errorId":1234,"message":"Forbidden"},{"errorId":1100,"message":"Access denied"}]}"#),
            (403, r#"{"errors":[{"errorId":1234,"message":"Forbidden"}]}"#),
            (403, "<html>Forbidden</html>"),
            (400, r#"{"errors":[{"errorId":1100,"message":"Access denied"}]}"#),
            (200, r#"{"responses":[]}"#),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, body)| format!("{status} {body} -> {}", access_token_refused(*status, body)))
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        401 {"errors":[{"errorId":1001,"domain":"OAuth","category":"REQUEST","message":"Invalid access token"}]} -> true
        401  -> true
        403 {"errors":[{"errorId":1100,"domain":"ACCESS","category":"REQUEST","message":"Access denied"}]} -> true
        403 {"errors":[{"errorId":1234,"message":"Forbidden"},{"errorId":1100,"message":"Access denied"}]} -> true
        403 {"errors":[{"errorId":1234,"message":"Forbidden"}]} -> false
        403 <html>Forbidden</html> -> false
        400 {"errors":[{"errorId":1100,"message":"Access denied"}]} -> false
        200 {"responses":[]} -> false
        "#);
    }

    #[test]
    fn every_documented_ebay_answer_has_its_verdicts() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let (first, second) = (item("SKU-1"), item("SKU-2"));
        let sent = [("SKU-1", &first), ("SKU-2", &second)];
        let invalid = r#"{"errorId":25709,"domain":"API_INVENTORY","category":"REQUEST","message":"Invalid value for shipToLocationAvailability.quantity."}"#;
        let cases = [
            (200, None, r#"{"responses":[{"statusCode":200,"sku":"SKU-1"},{"statusCode":200,"sku":"SKU-2","offerId":"5678901234"}]}"#.to_owned()),
            (207, None, format!(r#"{{"responses":[{{"statusCode":400,"sku":"SKU-2","errors":[{invalid}]}},{{"statusCode":200,"sku":"SKU-1"}}]}}"#)),
            (200, None, r#"{"responses":[{"statusCode":500,"sku":"SKU-1","errors":[{"errorId":25001,"message":"A system error has occurred."}]}]}"#.to_owned()),
            (200, None, r#"{"responses":[{"sku":"SKU-1"},{"statusCode":200,"sku":"SKU-2","warnings":[{"errorId":25401}]}]}"#.to_owned()),
            (200, None, "<html>".to_owned()),
            (400, None, format!(r#"{{"errors":[{invalid}]}}"#)),
            (401, None, r#"{"errors":[{"errorId":1001,"domain":"OAuth","category":"REQUEST","message":"Invalid access token"}]}"#.to_owned()),
            (403, None, r#"{"errors":[{"errorId":1100,"domain":"ACCESS","category":"REQUEST","message":"Access denied"}]}"#.to_owned()),
            (403, None, r#"{"errors":[{"errorId":1234,"message":"Forbidden"}]}"#.to_owned()),
            (429, None, r#"{"errors":[{"errorId":2001,"domain":"ACCESS","category":"REQUEST","message":"Too many requests."}]}"#.to_owned()),
            (429, Some("7"), String::new()),
            (429, Some("Mon, 01 Jun 2026 12:00:30 GMT"), String::new()),
            (429, Some("999999"), String::new()),
            (408, None, String::new()),
            (500, None, r#"{"errors":[{"errorId":25001,"message":"A system error has occurred."}]}"#.to_owned()),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, retry_after, body)| {
                let header = retry_after.map_or_else(String::new, |value| format!(" Retry-After: {value:?}"));
                let verdicts = classify_ebay(*status, *retry_after, body, &sent, now);
                let verdicts: Vec<String> = verdicts
                    .iter()
                    .zip(sent)
                    .map(|((status, verdict), (sku, _))| format!("  {sku} {status} {}", render(verdict)))
                    .collect();
                format!("{status}{header}\n{}", verdicts.join("\n"))
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200
          SKU-1 200 Published
          SKU-2 200 Published
        207
          SKU-1 200 Published
          SKU-2 400 DeadLetter { reason: "rejected_400", error: "errorId 25709: Invalid value for shipToLocationAvailability.quantity.", body: Some("{\"errors\":[{\"category\":\"REQUEST\",\"domain\":\"API_INVENTORY\",\"errorId\":25709,\"message\":\"Invalid value for shipToLocationAvailability.quantity.\"}],\"sku\":\"SKU-2\",\"statusCode\":400}") }
        200
          SKU-1 500 Retry { reason: "server_error", error: "HTTP 500: {\"errors\":[{\"errorId\":25001,\"message\":\"A system error has occurred.\"}],\"sku\":\"SKU-1\",\"statusCode\":500}" }
          SKU-2 200 Retry { reason: "no_answer", error: "eBay answered nothing for SKU SKU-2" }
        200
          SKU-1 200 Retry { reason: "unreadable_answer", error: "an entry without a statusCode: {\"sku\":\"SKU-1\"}" }
          SKU-2 200 Published
        200
          SKU-1 200 Retry { reason: "unreadable_answer", error: "HTTP 200 without a responses[] array: <html>" }
          SKU-2 200 Retry { reason: "unreadable_answer", error: "HTTP 200 without a responses[] array: <html>" }
        400
          SKU-1 400 DeadLetter { reason: "rejected_400", error: "errorId 25709: Invalid value for shipToLocationAvailability.quantity.", body: Some("{\"errors\":[{\"errorId\":25709,\"domain\":\"API_INVENTORY\",\"category\":\"REQUEST\",\"message\":\"Invalid value for shipToLocationAvailability.quantity.\"}]}") }
          SKU-2 400 DeadLetter { reason: "rejected_400", error: "errorId 25709: Invalid value for shipToLocationAvailability.quantity.", body: Some("{\"errors\":[{\"errorId\":25709,\"domain\":\"API_INVENTORY\",\"category\":\"REQUEST\",\"message\":\"Invalid value for shipToLocationAvailability.quantity.\"}]}") }
        401
          SKU-1 401 Retry { reason: "unauthorized", error: "HTTP 401: errorId 1001: Invalid access token" }
          SKU-2 401 Retry { reason: "unauthorized", error: "HTTP 401: errorId 1001: Invalid access token" }
        403
          SKU-1 403 Retry { reason: "unauthorized", error: "HTTP 403: errorId 1100: Access denied" }
          SKU-2 403 Retry { reason: "unauthorized", error: "HTTP 403: errorId 1100: Access denied" }
        403
          SKU-1 403 DeadLetter { reason: "rejected_403", error: "errorId 1234: Forbidden", body: Some("{\"errors\":[{\"errorId\":1234,\"message\":\"Forbidden\"}]}") }
          SKU-2 403 DeadLetter { reason: "rejected_403", error: "errorId 1234: Forbidden", body: Some("{\"errors\":[{\"errorId\":1234,\"message\":\"Forbidden\"}]}") }
        429
          SKU-1 429 Throttled { retry_after: 60s }
          SKU-2 429 Throttled { retry_after: 60s }
        429 Retry-After: "7"
          SKU-1 429 Throttled { retry_after: 7s }
          SKU-2 429 Throttled { retry_after: 7s }
        429 Retry-After: "Mon, 01 Jun 2026 12:00:30 GMT"
          SKU-1 429 Throttled { retry_after: 30s }
          SKU-2 429 Throttled { retry_after: 30s }
        429 Retry-After: "999999"
          SKU-1 429 Throttled { retry_after: 3600s }
          SKU-2 429 Throttled { retry_after: 3600s }
        408
          SKU-1 408 Retry { reason: "request_timeout", error: "HTTP 408: " }
          SKU-2 408 Retry { reason: "request_timeout", error: "HTTP 408: " }
        500
          SKU-1 500 Retry { reason: "server_error", error: "HTTP 500: {\"errors\":[{\"errorId\":25001,\"message\":\"A system error has occurred.\"}]}" }
          SKU-2 500 Retry { reason: "server_error", error: "HTTP 500: {\"errors\":[{\"errorId\":25001,\"message\":\"A system error has occurred.\"}]}" }
        "#);
    }
}
