//! Walmart Marketplace (US) as a channel adapter (`docs/channels/walmart.md`): a SKU's
//! quantity is set with `PUT /v3/inventory?sku=…`, one SKU per request (the bulk form is an
//! asynchronous feed), with a client-credentials access token from `/v3/token`, fetched again
//! when Walmart answers 401, and a pause when Walmart says the seller's request budget is spent.

mod feed;
mod read;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use catalog_core::CatalogItem;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::feeds::FeedSettings;
use super::{
    common_verdict, exchange, header, header_pairs, http_client, obtain_access_token, one_at_a_time, percent_encode,
    rejected, with_token, Answer,
};
use crate::adapter::{Attempt, ChannelAdapter, Publish, Sent};
use crate::channel::Secret;
use crate::oauth::{ClientAuth, Grant, TokenCache, TokenEndpoint};
use crate::publisher::PublishError;
use crate::response::{parse_retry_after, Verdict, DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER};

/// The production Marketplace API host (`https://sandbox.walmartapis.com` for the sandbox).
pub const DEFAULT_BASE_URL: &str = "https://marketplace.walmartapis.com";
/// Walmart's token endpoint for client credentials.
pub const DEFAULT_TOKEN_URL: &str = "https://marketplace.walmartapis.com/v3/token";
/// The `WM_SVC.NAME` every Marketplace request carries.
pub const SERVICE_NAME: &str = "Walmart Marketplace";

pub use feed::{
    inventory_feed, item_outcomes, read_feed_page, FeedPage, ItemOutcome, FEED_RATE, MAX_FEED_ITEMS, STATUS_PAGE,
};
pub use read::{parse_inventories, parse_inventory, CATALOG_PAGE, READ_INTERVAL};

/// Which seller's inventory, and the API credentials Walmart issued the seller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalmartConfig {
    /// [`DEFAULT_BASE_URL`] or the sandbox; requests go to `{base_url}/v3/inventory`.
    pub base_url: String,
    /// The fulfillment center to set, for a seller with several; without it Walmart updates
    /// the seller's default ship node.
    pub ship_node: Option<String>,
    /// [`DEFAULT_TOKEN_URL`], or the sandbox's.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Quantities go in bulk inventory feeds of up to 10,000, waited for as set here, instead
    /// of one `PUT /v3/inventory` per SKU.
    pub feed: Option<FeedSettings>,
}

/// How long a Walmart feed is waited for by default: Walmart allows 30 minutes to process
/// one.
pub const DEFAULT_FEED_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// A Walmart seller's inventory over the Marketplace API.
#[derive(Debug)]
pub struct WalmartChannel {
    config: WalmartConfig,
    client: reqwest::Client,
    tokens: TokenCache,
}

impl WalmartChannel {
    /// A client that keeps up to `connections` connections open and gives up on a request
    /// after `request_timeout`; the token endpoint is asked through the same client.
    /// A channel of feeds gives each call [`super::feeds::CALL_TIMEOUT`] at most: its
    /// `request_timeout` is the whole feed's.
    pub fn new(config: WalmartConfig, request_timeout: Duration, connections: usize) -> Result<Self, PublishError> {
        let call_timeout = super::feeds::call_timeout(config.feed, request_timeout);
        let client = http_client(call_timeout, connections, None)?;
        // The token endpoint's headers are fixed when it is built: every token request of this
        // channel carries the one correlation id drawn here.
        let token_correlation_id = correlation_id();
        let endpoint = TokenEndpoint {
            url: config.token_url.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            grant: Grant::ClientCredentials,
            client_auth: ClientAuth::Basic,
            extra_form: Vec::new(),
            extra_headers: vec![
                ("WM_SVC.NAME".to_owned(), SERVICE_NAME.to_owned()),
                ("WM_QOS.CORRELATION_ID".to_owned(), token_correlation_id),
            ],
        };
        let tokens = TokenCache::new(endpoint, client.clone());
        Ok(Self { config, client, tokens })
    }

    /// Access tokens fetched so far.
    pub async fn tokens_fetched(&self) -> u64 {
        self.tokens.n_fetched().await
    }
}

#[async_trait]
impl ChannelAdapter for WalmartChannel {
    /// The access token is fetched before the request's timeout starts.
    async fn obtain_credentials(&self) -> Result<(), Verdict> {
        obtain_access_token(&self.tokens).await
    }

    fn max_batch(&self) -> usize {
        if self.config.feed.is_some() {
            MAX_FEED_ITEMS
        } else {
            1
        }
    }

    async fn send(&self, batch: &[Publish]) -> Sent {
        if let Some(settings) = self.config.feed {
            return self.send_feed(settings, batch).await;
        }
        one_at_a_time(batch, |publish| self.update(publish)).await
    }
}

impl WalmartChannel {
    /// `PUT /v3/inventory?sku=…` setting the SKU's quantity to the one the channel's rules
    /// give, and the pause Walmart's budget headers ask for. The API takes no idempotency key;
    /// setting a quantity twice leaves the same quantity.
    async fn update(&self, publish: &Publish) -> (Attempt, Option<Duration>) {
        let entry = &publish.entry;
        // The query is encoded by hand: Walmart wants a space as `%20`, not the form's `+`.
        let mut url = format!(
            "{}/v3/inventory?sku={}",
            self.config.base_url.trim_end_matches('/'),
            percent_encode(&publish.listing)
        );
        if let Some(ship_node) = &self.config.ship_node {
            url.push_str(&format!("&shipNode={}", percent_encode(ship_node)));
        }
        let body = json!({ "sku": publish.listing, "quantity": { "unit": "EACH", "amount": publish.quantity } });
        let started = Instant::now();
        let answer = with_token(&self.tokens, access_token_expired, |token| {
            let correlation_id = correlation_id();
            tracing::debug!(item_id = %entry.item.id(), correlation_id, "walmart inventory update");
            // Only `WM_SEC.ACCESS_TOKEN` authorizes, as in Walmart's OpenAPI files: its
            // troubleshooting page drops the legacy signature headers, and integrators report a
            // Bearer `Authorization` refused by the gateway.
            let mut request = self
                .client
                .put(&url)
                .header("WM_SEC.ACCESS_TOKEN", token.expose())
                .header("WM_QOS.CORRELATION_ID", correlation_id)
                .header("WM_SVC.NAME", SERVICE_NAME)
                .header("Accept", "application/json")
                .json(&body);
            if let Some(traceparent) = &entry.traceparent {
                request = request.header("traceparent", traceparent);
            }
            exchange(request)
        })
        .await;
        match answer {
            Ok(answer) => {
                let headers = header_pairs(&answer.headers);
                let now = Utc::now();
                let verdict = classify_walmart(answer.status, &headers, &answer.body, &entry.item, now);
                let pause = walmart_budget_pause(answer.status, &headers, now);
                (Attempt { verdict, status: Some(answer.status), latency: started.elapsed() }, pause)
            }
            Err(verdict) => (Attempt { verdict, status: None, latency: started.elapsed() }, None),
        }
    }
}

/// Walmart answers an expired or invalid access token with 401; a new token is worth one
/// more try.
fn access_token_expired(answer: &Answer) -> bool {
    answer.status == 401
}

/// What Walmart's answer to an inventory update of `item` says, received at `now`: 2xx is the
/// stored inventory echoed; 429 waits for `Retry-After` or the next replenishment; 401 is a
/// token Walmart still refused after a new one was fetched; 423 (another update holds the
/// item) 408 and 5xx are retried; other 4xx are dead-lettered with Walmart's errors.
pub fn classify_walmart(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
    item: &CatalogItem,
    now: DateTime<Utc>,
) -> Verdict {
    match status {
        200..=299 => Verdict::Answered(item.accepted()),
        _ => refusal(status, headers, body, now),
    }
}

/// What a Marketplace answer that is not a success means (see [`classify_walmart`]).
fn refusal(status: u16, headers: &[(&str, &str)], body: &str, now: DateTime<Utc>) -> Verdict {
    match status {
        429 => Verdict::Throttled { retry_after: throttle_wait(headers, now) },
        // Credentials revoked or the API not granted: the channel waits, unspent, for an
        // operator to fix them.
        401 => Verdict::Blocked {
            reason: "unauthorized",
            error: format!("HTTP 401: {}", error_text(status, body)),
            retry_after: super::BLOCKED_FOR,
        },
        // The seller's application is not allowed the API (`FORBIDDEN.GMP_GATEWAY_API`):
        // every write of the channel is refused alike until its access is granted.
        403 => Verdict::Blocked {
            reason: "forbidden",
            error: format!("HTTP 403: {}", error_text(status, body)),
            retry_after: super::BLOCKED_FOR,
        },
        423 => Verdict::Retry { reason: "resource_locked", error: format!("HTTP 423: {}", error_text(status, body)) },
        // 408 and 5xx read the same on every platform (429 is read above).
        _ => {
            common_verdict(status, None, body, now).unwrap_or_else(|| rejected(status, error_text(status, body), body))
        }
    }
}

/// How long the channel holds after an answer that spent the seller's last request
/// (`x-current-token-count: 0`): until `x-next-replenish-time`, or a second without it. A 429
/// holds the channel by its verdict already.
pub fn walmart_budget_pause(status: u16, headers: &[(&str, &str)], now: DateTime<Utc>) -> Option<Duration> {
    if status == 429 {
        return None;
    }
    let remaining: u64 = header(headers, "x-current-token-count")?.trim().parse().ok()?;
    if remaining > 0 {
        return None;
    }
    Some(replenish_wait(headers, now).unwrap_or(DEFAULT_RETRY_AFTER)).filter(|wait| !wait.is_zero())
}

/// `Retry-After` when Walmart sends it (its bulk guide says to honour it), else the time left
/// to the next replenishment, else a second. A replenishment already past (the clocks differ)
/// also waits a second: the 429 says the bucket is still empty, and throttled attempts spend
/// none of the failure budget, so no wait at all could loop on it.
fn throttle_wait(headers: &[(&str, &str)], now: DateTime<Utc>) -> Duration {
    match header(headers, "retry-after") {
        Some(retry_after) => parse_retry_after(Some(retry_after), now),
        None => replenish_wait(headers, now).filter(|wait| !wait.is_zero()).unwrap_or(DEFAULT_RETRY_AFTER),
    }
}

/// The time left until `x-next-replenish-time` (Walmart's supplier pages spell it
/// `X-Next-Replenishment-Time`). Its format is not confirmed by Walmart's reference:
/// integrators read it as epoch milliseconds, and a value too small for that is taken as
/// epoch seconds. A time already past asks for no wait; none waits more than the cap.
fn replenish_wait(headers: &[(&str, &str)], now: DateTime<Utc>) -> Option<Duration> {
    let value = header(headers, "x-next-replenish-time").or_else(|| header(headers, "x-next-replenishment-time"))?;
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let number: u64 = value.parse().ok()?;
    let at_millis = if number >= 100_000_000_000 { number } else { number.saturating_mul(1_000) };
    let wait = Duration::from_millis(at_millis.saturating_sub(unix_millis(now)));
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Walmart's `errors` as one line (`code: message`), or the status alone. Older integrations
/// also met `{"errors":{"error":[…]}}`; it is read too.
fn error_text(status: u16, body: &str) -> String {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let errors = match &parsed["errors"] {
        Value::Array(errors) => errors.iter().collect(),
        Value::Object(wrapper) => match wrapper.get("error") {
            Some(Value::Array(errors)) => errors.iter().collect(),
            Some(error) => vec![error],
            None => Vec::new(),
        },
        _ => Vec::new(),
    };
    let parts: Vec<String> = errors
        .iter()
        .filter_map(|error| {
            let code = error["code"].as_str();
            let text = ["message", "description", "info"].iter().find_map(|field| error[*field].as_str());
            match (code, text) {
                (Some(code), Some(text)) => Some(format!("{code}: {text}")),
                (code, text) => code.or(text).map(str::to_owned),
            }
        })
        .collect();
    if parts.is_empty() {
        format!("HTTP {status}")
    } else {
        parts.join("; ")
    }
}

/// A fresh `WM_QOS.CORRELATION_ID`: a random UUID, one per request.
fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn unix_millis(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item_at_7() -> CatalogItem {
        let key = catalog_core::ItemKey {
            tenant: catalog_core::TenantId::parse("canary").expect("valid"),
            sku: catalog_core::Sku::parse("A-1").expect("valid"),
        };
        CatalogItem::new(key, 3, 7).expect("valid item")
    }

    fn render(verdict: Verdict) -> String {
        match verdict {
            Verdict::Answered(result) => {
                assert_eq!((result.item_id(), result.version(), result.accepted()), (item_at_7().id(), 7, true));
                "Published".to_owned()
            }
            other => format!("{other:?}"),
        }
    }

    const STORED: &str = r#"{"sku":"A-1","quantity":{"unit":"EACH","amount":10}}"#;
    const INVALID: &str = r#"{"errors":[{"code":"INVALID_REQUEST_PARAM","message":"The value provided for 'sku' is invalid.","category":"DATA","severity":"ERROR","field":"sku"}]}"#;
    const UNAUTHORIZED: &str = r#"{"errors":[{"code":"UNAUTHORIZED.GMP_GATEWAY_API","field":"UNAUTHORIZED","description":"Unauthorized","info":"Unauthorized token or incorrect authorization header.","severity":"ERROR","category":"DATA","causes":[],"errorIdentifiers":{}}]}"#;
    const THROTTLED: &str =
        r#"{"errors":[{"code":"REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API","category":"REQUEST","severity":"ERROR"}]}"#;

    /// A status, its headers and its body.
    type Case = (u16, Vec<(&'static str, &'static str)>, &'static str);

    /// Every answer, and the pause its budget headers ask for, at 2026-06-01T12:00:00Z
    /// (1780315200000 ms since the epoch).
    #[test]
    fn every_documented_answer_has_its_verdict() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        assert_eq!(unix_millis(now), 1_780_315_200_000);
        let budget = |count, replenish| vec![("x-current-token-count", count), ("x-next-replenish-time", replenish)];
        let cases: Vec<Case> = vec![
            (200, budget("199", "1780315260000"), STORED),
            (200, budget("0", "1780315203000"), STORED),
            (200, vec![("X-Current-Token-Count", "0"), ("X-Next-Replenishment-Time", "1780315230")], STORED),
            (200, vec![("x-current-token-count", "0")], STORED),
            (200, budget("0", "1780315100000"), STORED),
            (200, budget("many", "1780315203000"), STORED),
            (400, budget("5", "1780315260000"), INVALID),
            (
                400,
                vec![],
                r#"{"errors":{"error":[{"code":"INVALID_REQUEST_CONTENT","description":"quantity is negative"}]}}"#,
            ),
            (401, vec![], UNAUTHORIZED),
            (403, vec![], r#"{"errors":[{"code":"FORBIDDEN.GMP_GATEWAY_API","description":"Forbidden"}]}"#),
            (404, vec![], r#"{"errors":[{"code":"CONTENT_NOT_FOUND","message":"sku not found"}]}"#),
            (423, vec![], r#"{"errors":[{"code":"RESOURCE_IS_LOCKED.GMP_RECEIVER_API"}]}"#),
            (429, vec![], THROTTLED),
            (429, budget("0", "1780315202500"), THROTTLED),
            (429, budget("0", "1780315100000"), THROTTLED),
            (429, budget("0", "1790000000000"), THROTTLED),
            (429, budget("0", "soon"), THROTTLED),
            (429, budget("0", "-5"), THROTTLED),
            (429, vec![("x-next-replenish-time", "1780315202500"), ("Retry-After", "7")], THROTTLED),
            (408, vec![], ""),
            (500, vec![], r#"{"errors":[{"code":"SYSTEM_ERROR","message":"Internal error"}]}"#),
            (503, vec![], ""),
            (504, vec![], r#"{"errors":[{"code":"DOWNSTREAM_SYSTEM_TIME_OUT"}]}"#),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, headers, body)| {
                let shown: Vec<String> = headers.iter().map(|(name, value)| format!(" {name}: {value:?}")).collect();
                let verdict = classify_walmart(*status, headers, body, &item_at_7(), now);
                let pause = walmart_budget_pause(*status, headers, now)
                    .map_or_else(String::new, |pause| format!("; pause {pause:?}"));
                format!("{status}{} -> {}{pause}", shown.concat(), render(verdict))
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200 x-current-token-count: "199" x-next-replenish-time: "1780315260000" -> Published
        200 x-current-token-count: "0" x-next-replenish-time: "1780315203000" -> Published; pause 3s
        200 X-Current-Token-Count: "0" X-Next-Replenishment-Time: "1780315230" -> Published; pause 30s
        200 x-current-token-count: "0" -> Published; pause 1s
        200 x-current-token-count: "0" x-next-replenish-time: "1780315100000" -> Published
        200 x-current-token-count: "many" x-next-replenish-time: "1780315203000" -> Published
        400 x-current-token-count: "5" x-next-replenish-time: "1780315260000" -> DeadLetter { reason: "rejected_400", error: "INVALID_REQUEST_PARAM: The value provided for 'sku' is invalid.", body: Some("{\"errors\":[{\"code\":\"INVALID_REQUEST_PARAM\",\"message\":\"The value provided for 'sku' is invalid.\",\"category\":\"DATA\",\"severity\":\"ERROR\",\"field\":\"sku\"}]}") }
        400 -> DeadLetter { reason: "rejected_400", error: "INVALID_REQUEST_CONTENT: quantity is negative", body: Some("{\"errors\":{\"error\":[{\"code\":\"INVALID_REQUEST_CONTENT\",\"description\":\"quantity is negative\"}]}}") }
        401 -> Blocked { reason: "unauthorized", error: "HTTP 401: UNAUTHORIZED.GMP_GATEWAY_API: Unauthorized", retry_after: 30s }
        403 -> Blocked { reason: "forbidden", error: "HTTP 403: FORBIDDEN.GMP_GATEWAY_API: Forbidden", retry_after: 30s }
        404 -> DeadLetter { reason: "rejected_404", error: "CONTENT_NOT_FOUND: sku not found", body: Some("{\"errors\":[{\"code\":\"CONTENT_NOT_FOUND\",\"message\":\"sku not found\"}]}") }
        423 -> Retry { reason: "resource_locked", error: "HTTP 423: RESOURCE_IS_LOCKED.GMP_RECEIVER_API" }
        429 -> Throttled { retry_after: 1s }
        429 x-current-token-count: "0" x-next-replenish-time: "1780315202500" -> Throttled { retry_after: 2.5s }
        429 x-current-token-count: "0" x-next-replenish-time: "1780315100000" -> Throttled { retry_after: 1s }
        429 x-current-token-count: "0" x-next-replenish-time: "1790000000000" -> Throttled { retry_after: 3600s }
        429 x-current-token-count: "0" x-next-replenish-time: "soon" -> Throttled { retry_after: 1s }
        429 x-current-token-count: "0" x-next-replenish-time: "-5" -> Throttled { retry_after: 1s }
        429 x-next-replenish-time: "1780315202500" Retry-After: "7" -> Throttled { retry_after: 7s }
        408 -> Retry { reason: "request_timeout", error: "HTTP 408: " }
        500 -> Retry { reason: "server_error", error: "HTTP 500: {\"errors\":[{\"code\":\"SYSTEM_ERROR\",\"message\":\"Internal error\"}]}" }
        503 -> Retry { reason: "server_error", error: "HTTP 503: " }
        504 -> Retry { reason: "gateway_timeout", error: "HTTP 504: {\"errors\":[{\"code\":\"DOWNSTREAM_SYSTEM_TIME_OUT\"}]}" }
        "#);
    }

    #[test]
    fn correlation_ids_are_uuid_shaped_and_fresh() {
        let ids: std::collections::HashSet<String> = (0..1_000).map(|_| correlation_id()).collect();
        assert_eq!(ids.len(), 1_000);
        assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok_and(|id| id.get_version_num() == 4)));
    }

    #[test]
    fn a_sku_stays_one_query_value() {
        assert_eq!(percent_encode("97964_KFTest-1.a~"), "97964_KFTest-1.a~");
        assert_eq!(percent_encode("red shirt/L&x=1+2%"), "red%20shirt%2FL%26x%3D1%2B2%25");
    }
}
