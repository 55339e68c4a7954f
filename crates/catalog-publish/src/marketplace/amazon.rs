//! Amazon's Selling Partner API as a channel adapter (`docs/channels/amazon.md`): a listing's
//! merchant-fulfilled quantity is set with Listings Items 2021-08-01 `patchListingsItem`, one
//! seller SKU per request (the API has no batch form), with a Login with Amazon access token
//! fetched from the seller's refresh token and fetched again when Amazon says it expired.

mod feed;
mod read;
mod s3;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use catalog_core::CatalogItem;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{
    common_verdict, exchange, header, header_pairs, http_client, obtain_access_token, one_at_a_time, percent_encode,
    rejected, with_token, Answer,
};
use crate::adapter::{Attempt, ChannelAdapter, Publish, Sent};
use crate::channel::Secret;
use crate::oauth::{ClientAuth, Grant, TokenCache, TokenEndpoint};
use crate::publisher::PublishError;
use crate::response::{parse_retry_after, truncate, Verdict, DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER};

/// The Selling Partner API endpoint of North America; Europe's is
/// `https://sellingpartnerapi-eu.amazon.com`, the Far East's `https://sellingpartnerapi-fe.amazon.com`.
pub const DEFAULT_BASE_URL: &str = "https://sellingpartnerapi-na.amazon.com";

/// Login with Amazon's token endpoint for North America (`api.amazon.co.uk` serves Europe,
/// `api.amazon.co.jp` the Far East).
pub const DEFAULT_TOKEN_URL: &str = "https://api.amazon.com/auth/o2/token";
/// What many integrations send as `productType` when they do not read the listing's own.
pub const DEFAULT_PRODUCT_TYPE: &str = "PRODUCT";

/// `DEFAULT` is the merchant-fulfilled channel: FBA quantities are Amazon's to keep.
const FULFILLMENT_CHANNEL_CODE: &str = "DEFAULT";
/// `merge` (documented since June 2025) sets only `quantity` and keeps the seller's other
/// `fulfillment_availability` fields, such as `lead_time_to_ship_max_days`, which `replace`
/// would clear (the merge-a-listing tutorial).
const PATCH_OPERATION: &str = "merge";
/// SP-API asks integrations to name themselves as `AppName/Version (Language=…)`.
const USER_AGENT: &str = concat!("catalog-sync/", env!("CARGO_PKG_VERSION"), " (Language=Rust)");

pub use super::feeds::FeedSettings;
pub use feed::{
    feed_document, read_feed_state, read_report, FeedState, MessageOutcome, CREATE_FEED_RATE, FEED_CONTENT_TYPE,
    FEED_TYPE, MAX_FEED_MESSAGES,
};
pub use read::{parse_listing_quantity, parse_search, SearchFound, MAX_READS_PER_REQUEST, READ_INTERVAL, READ_SETTLE};

/// Which seller's listings, in which marketplace, and the credentials of the application the
/// seller authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmazonConfig {
    /// The regional SP-API host of the marketplace, e.g. `https://sellingpartnerapi-na.amazon.com`
    /// (`-eu`, `-fe`); requests go to `{base_url}/listings/2021-08-01/items/{seller_id}/{sku}`.
    pub base_url: String,
    /// The selling partner id (merchant token).
    pub seller_id: String,
    /// The marketplace whose quantity is set, e.g. `ATVPDKIKX0DER` (US).
    pub marketplace_id: String,
    /// Sent as `productType`: the listings' real product type is what Amazon documents; whether
    /// it accepts [`DEFAULT_PRODUCT_TYPE`] for every listing is not confirmed.
    pub product_type: String,
    /// Login with Amazon's token endpoint, [`DEFAULT_TOKEN_URL`] or a regional one.
    pub token_url: String,
    /// The LWA client id (`amzn1.application-oa2-client.…`).
    pub client_id: String,
    pub client_secret: Secret,
    /// The seller's long-lived refresh token (`Atzr|…`).
    pub refresh_token: Secret,
    /// Quantities go in `JSON_LISTINGS_FEED` feeds of up to 10,000, waited for as set here,
    /// instead of one `patchListingsItem` per listing.
    pub feed: Option<FeedSettings>,
}

/// An Amazon seller's merchant-fulfilled quantities over SP-API.
#[derive(Debug)]
pub struct AmazonChannel {
    config: AmazonConfig,
    client: reqwest::Client,
    tokens: TokenCache,
}

impl AmazonChannel {
    /// A client that keeps up to `connections` connections open and gives up on a request
    /// after `request_timeout`; the token endpoint is asked through the same client.
    /// A channel of feeds gives each call [`super::feeds::CALL_TIMEOUT`] at most: its
    /// `request_timeout` is the whole feed's.
    pub fn new(config: AmazonConfig, request_timeout: Duration, connections: usize) -> Result<Self, PublishError> {
        let call_timeout = super::feeds::call_timeout(config.feed, request_timeout);
        let client = http_client(call_timeout, connections, Some(USER_AGENT))?;
        let endpoint = TokenEndpoint {
            url: config.token_url.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            grant: Grant::RefreshToken(config.refresh_token.clone()),
            client_auth: ClientAuth::Form,
            extra_form: Vec::new(),
            extra_headers: Vec::new(),
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
impl ChannelAdapter for AmazonChannel {
    /// The access token is fetched before the request's timeout starts.
    async fn obtain_credentials(&self) -> Result<(), Verdict> {
        obtain_access_token(&self.tokens).await
    }

    fn max_batch(&self) -> usize {
        if self.config.feed.is_some() {
            MAX_FEED_MESSAGES
        } else {
            1
        }
    }

    async fn send(&self, batch: &[Publish]) -> Sent {
        if let Some(settings) = self.config.feed {
            return self.send_feed(settings, batch).await;
        }
        one_at_a_time(batch, |publish| async move { (self.patch(publish).await, None) }).await
    }
}

impl AmazonChannel {
    /// `PATCH /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=…` setting the
    /// listing's `fulfillment_availability` quantity to the one the channel's rules give. The
    /// API takes no idempotency key; setting a quantity twice leaves the same quantity.
    async fn patch(&self, publish: &Publish) -> Attempt {
        let entry = &publish.entry;
        let url = format!(
            "{}/listings/2021-08-01/items/{}/{}",
            self.config.base_url.trim_end_matches('/'),
            percent_encode(&self.config.seller_id),
            percent_encode(&publish.listing)
        );
        let body = json!({
            "productType": self.config.product_type,
            "patches": [{
                "op": PATCH_OPERATION,
                "path": "/attributes/fulfillment_availability",
                "value": [{ "fulfillment_channel_code": FULFILLMENT_CHANNEL_CODE, "quantity": publish.quantity }],
            }],
        });
        let started = Instant::now();
        let answer = with_token(&self.tokens, access_token_refused, |token| {
            // LWA alone authorizes SP-API calls since October 2023: no AWS signature is sent.
            let mut request = self
                .client
                .patch(&url)
                .query(&[("marketplaceIds", self.config.marketplace_id.as_str())])
                .header("x-amz-access-token", token.expose())
                .header("Accept", "application/json")
                .json(&body);
            if let Some(traceparent) = &entry.traceparent {
                request = request.header("traceparent", traceparent);
            }
            exchange(request)
        })
        .await;
        let (verdict, status) = match answer {
            Ok(answer) => {
                let headers = header_pairs(&answer.headers);
                (classify_amazon(answer.status, &headers, &answer.body, &entry.item, Utc::now()), Some(answer.status))
            }
            Err(verdict) => (verdict, None),
        };
        Attempt { verdict, status, latency: started.elapsed() }
    }
}

/// Amazon answers an expired, revoked or malformed access token with 403 `Unauthorized`
/// (not 401); a new token is worth one more try.
fn access_token_refused(answer: &Answer) -> bool {
    answer.status == 403 && refuses_the_token(&answer.body)
}

/// Whether a 403's errors name the access token (`Unauthorized`).
fn refuses_the_token(body: &str) -> bool {
    serde_json::from_str::<ErrorList>(body)
        .is_ok_and(|list| list.errors.iter().any(|error| error.code.as_deref() == Some("Unauthorized")))
}

#[derive(Deserialize)]
struct ErrorList {
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<String>,
    message: Option<String>,
    details: Option<String>,
}

#[derive(Deserialize)]
struct Submission {
    status: Option<String>,
    #[serde(default)]
    issues: Vec<Issue>,
}

#[derive(Deserialize)]
struct Issue {
    code: Option<String>,
    message: Option<String>,
    severity: Option<String>,
}

/// What Amazon's answer to a `patchListingsItem` of `item` says, received at `now`: 200 is
/// read by its `status` (`ACCEPTED`, or `INVALID` with `issues`); 429 waits for the bucket's
/// next token; 403 is a token Amazon still refused after a new one was fetched; 408 and 5xx
/// are retried; other 4xx are dead-lettered with Amazon's errors.
pub fn classify_amazon(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
    item: &CatalogItem,
    now: DateTime<Utc>,
) -> Verdict {
    match status {
        200..=299 => classify_submission(status, body, item),
        _ => refusal(status, headers, body, now),
    }
}

/// What an SP-API answer that is not a success means: 429 waits for the bucket's next token;
/// 403 is a token Amazon still refused after a new one was fetched; 408 and 5xx are retried;
/// other 4xx are dead-lettered with Amazon's errors.
fn refusal(status: u16, headers: &[(&str, &str)], body: &str, now: DateTime<Utc>) -> Verdict {
    match status {
        429 => Verdict::Throttled { retry_after: throttle_wait(headers, now) },
        // `Unauthorized`, a fresh token refused too (revoked, or lacking the listings role):
        // the channel waits, unspent, for an operator to renew the authorization. Another 403
        // is retried in the item's budget, as it was.
        403 if refuses_the_token(body) => Verdict::Blocked {
            reason: "unauthorized",
            error: format!("HTTP 403: {}", error_text(status, body)),
            retry_after: super::BLOCKED_FOR,
        },
        403 => Verdict::Retry { reason: "unauthorized", error: format!("HTTP 403: {}", error_text(status, body)) },
        // 408 and 5xx read the same on every platform (429 is read above).
        _ => {
            common_verdict(status, None, body, now).unwrap_or_else(|| rejected(status, error_text(status, body), body))
        }
    }
}

/// A 200 only says Amazon understood the request: the submission's `status` says whether it
/// took it. `ACCEPTED` is not final (later processing can raise issues) but it is all the
/// synchronous answer tells.
fn classify_submission(status: u16, body: &str, item: &CatalogItem) -> Verdict {
    let Ok(submission) = serde_json::from_str::<Submission>(body) else {
        return Verdict::Retry { reason: "unexpected_answer", error: format!("HTTP {status}: {}", truncate(body)) };
    };
    match submission.status.as_deref() {
        Some("ACCEPTED") => Verdict::Answered(item.accepted()),
        Some("INVALID") => Verdict::DeadLetter {
            reason: "rejected_invalid".to_owned(),
            error: issues_text(&submission.issues),
            body: Some(truncate(body).to_owned()),
        },
        // `VALID` answers a validation preview, which is never asked for: nothing was set.
        _ => Verdict::Retry { reason: "unexpected_answer", error: format!("HTTP {status}: {}", truncate(body)) },
    }
}

/// The issues that made a submission invalid (`ERROR`), or all of them if none says so.
fn issues_text(issues: &[Issue]) -> String {
    let errors: Vec<&Issue> = issues.iter().filter(|issue| issue.severity.as_deref() == Some("ERROR")).collect();
    let shown = if errors.is_empty() { issues.iter().collect() } else { errors };
    let parts: Vec<String> = shown
        .iter()
        .map(|issue| match (&issue.code, &issue.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (code, message) => code.clone().or_else(|| message.clone()).unwrap_or_default(),
        })
        .filter(|part| !part.is_empty())
        .collect();
    if parts.is_empty() {
        "status INVALID".to_owned()
    } else {
        parts.join("; ")
    }
}

/// Amazon's `ErrorList` as one line (`code: message (details)`), or the status alone.
fn error_text(status: u16, body: &str) -> String {
    let parts: Vec<String> = serde_json::from_str::<ErrorList>(body)
        .map(|list| list.errors)
        .unwrap_or_default()
        .into_iter()
        .map(|error| {
            let text = [error.code, error.message].into_iter().flatten().collect::<Vec<_>>().join(": ");
            match error.details.filter(|details| !details.is_empty()) {
                Some(details) => format!("{text} ({details})"),
                None => text,
            }
        })
        .filter(|part| !part.is_empty())
        .collect();
    if parts.is_empty() {
        format!("HTTP {status}")
    } else {
        parts.join("; ")
    }
}

/// How long a 429 waits: `Retry-After` if Amazon ever sends one, else the time the bucket
/// takes to refill one request at the rate `x-amzn-RateLimit-Limit` reports (requests per
/// second, e.g. `5.0`), else a second.
fn throttle_wait(headers: &[(&str, &str)], now: DateTime<Utc>) -> Duration {
    if let Some(retry_after) = header(headers, "retry-after") {
        return parse_retry_after(Some(retry_after), now);
    }
    let rate = header(headers, "x-amzn-ratelimit-limit")
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|rate| rate.is_finite() && *rate > 0.0);
    rate.map_or(DEFAULT_RETRY_AFTER, |rate| Duration::from_secs_f64((1.0 / rate).min(MAX_RETRY_AFTER.as_secs_f64())))
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

    const ACCEPTED: &str = r#"{"sku":"A-1","status":"ACCEPTED","submissionId":"f1dc2914","issues":[]}"#;
    const INVALID: &str = r#"{"sku":"A-1","status":"INVALID","submissionId":"f1dc2914","issues":[{"code":"90220","message":"'size' is required but not supplied.","severity":"ERROR","attributeNames":["size"]}]}"#;
    const INVALID_AND_WARNING: &str = r#"{"status":"INVALID","issues":[{"code":"1","message":"only a warning","severity":"WARNING"},{"code":"2","message":"bad quantity","severity":"ERROR"}]}"#;
    const EXPIRED: &str = r#"{"errors":[{"code":"Unauthorized","message":"Access to requested resource is denied.","details":"The access token you provided has expired."}]}"#;
    const QUOTA: &str = r#"{"errors":[{"code":"QuotaExceeded","message":"You exceeded your quota for the requested resource.","details":""}]}"#;
    const BAD_REQUEST: &str =
        r#"{"errors":[{"code":"BAD_REQUEST","message":"Invalid input","details":"Invalid input"}]}"#;

    /// A status, its headers and its body.
    type Case = (u16, Vec<(&'static str, &'static str)>, &'static str);

    #[test]
    fn every_documented_answer_has_its_verdict() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let rate = |value| vec![("x-amzn-RateLimit-Limit", value)];
        let cases: Vec<Case> = vec![
            (200, rate("5.0"), ACCEPTED),
            (200, vec![], INVALID),
            (200, vec![], INVALID_AND_WARNING),
            (200, vec![], r#"{"status":"INVALID"}"#),
            (200, vec![], r#"{"status":"VALID","issues":[]}"#),
            (200, vec![], "not json"),
            (400, vec![], BAD_REQUEST),
            (403, vec![], EXPIRED),
            (404, vec![], r#"{"errors":[{"code":"NOT_FOUND","message":"Resource not found."}]}"#),
            (413, vec![], ""),
            (429, vec![], QUOTA),
            (429, rate("5.0"), QUOTA),
            (429, rate("0.5"), QUOTA),
            (429, rate(" 2 "), QUOTA),
            (429, rate("0.0001"), QUOTA),
            (429, rate("0"), QUOTA),
            (429, rate("-5"), QUOTA),
            (429, rate("NaN"), QUOTA),
            (429, rate("inf"), QUOTA),
            (429, vec![("x-amzn-ratelimit-limit", "0.5"), ("Retry-After", "7")], QUOTA),
            (408, vec![], ""),
            (500, vec![], r#"{"errors":[{"code":"InternalFailure","message":"We encountered an internal error."}]}"#),
            (503, vec![], "busy"),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, headers, body)| {
                let shown: Vec<String> = headers.iter().map(|(name, value)| format!(" {name}: {value:?}")).collect();
                let verdict = classify_amazon(*status, headers, body, &item_at_7(), now);
                format!("{status}{} -> {}", shown.concat(), render(verdict))
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200 x-amzn-RateLimit-Limit: "5.0" -> Published
        200 -> DeadLetter { reason: "rejected_invalid", error: "90220: 'size' is required but not supplied.", body: Some("{\"sku\":\"A-1\",\"status\":\"INVALID\",\"submissionId\":\"f1dc2914\",\"issues\":[{\"code\":\"90220\",\"message\":\"'size' is required but not supplied.\",\"severity\":\"ERROR\",\"attributeNames\":[\"size\"]}]}") }
        200 -> DeadLetter { reason: "rejected_invalid", error: "2: bad quantity", body: Some("{\"status\":\"INVALID\",\"issues\":[{\"code\":\"1\",\"message\":\"only a warning\",\"severity\":\"WARNING\"},{\"code\":\"2\",\"message\":\"bad quantity\",\"severity\":\"ERROR\"}]}") }
        200 -> DeadLetter { reason: "rejected_invalid", error: "status INVALID", body: Some("{\"status\":\"INVALID\"}") }
        200 -> Retry { reason: "unexpected_answer", error: "HTTP 200: {\"status\":\"VALID\",\"issues\":[]}" }
        200 -> Retry { reason: "unexpected_answer", error: "HTTP 200: not json" }
        400 -> DeadLetter { reason: "rejected_400", error: "BAD_REQUEST: Invalid input (Invalid input)", body: Some("{\"errors\":[{\"code\":\"BAD_REQUEST\",\"message\":\"Invalid input\",\"details\":\"Invalid input\"}]}") }
        403 -> Blocked { reason: "unauthorized", error: "HTTP 403: Unauthorized: Access to requested resource is denied. (The access token you provided has expired.)", retry_after: 30s }
        404 -> DeadLetter { reason: "rejected_404", error: "NOT_FOUND: Resource not found.", body: Some("{\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"Resource not found.\"}]}") }
        413 -> DeadLetter { reason: "rejected_413", error: "HTTP 413", body: Some("") }
        429 -> Throttled { retry_after: 1s }
        429 x-amzn-RateLimit-Limit: "5.0" -> Throttled { retry_after: 200ms }
        429 x-amzn-RateLimit-Limit: "0.5" -> Throttled { retry_after: 2s }
        429 x-amzn-RateLimit-Limit: " 2 " -> Throttled { retry_after: 500ms }
        429 x-amzn-RateLimit-Limit: "0.0001" -> Throttled { retry_after: 3600s }
        429 x-amzn-RateLimit-Limit: "0" -> Throttled { retry_after: 1s }
        429 x-amzn-RateLimit-Limit: "-5" -> Throttled { retry_after: 1s }
        429 x-amzn-RateLimit-Limit: "NaN" -> Throttled { retry_after: 1s }
        429 x-amzn-RateLimit-Limit: "inf" -> Throttled { retry_after: 1s }
        429 x-amzn-ratelimit-limit: "0.5" Retry-After: "7" -> Throttled { retry_after: 7s }
        408 -> Retry { reason: "request_timeout", error: "HTTP 408: " }
        500 -> Retry { reason: "server_error", error: "HTTP 500: {\"errors\":[{\"code\":\"InternalFailure\",\"message\":\"We encountered an internal error.\"}]}" }
        503 -> Retry { reason: "server_error", error: "HTTP 503: busy" }
        "#);
    }

    #[test]
    fn only_a_403_unauthorized_asks_for_a_new_access_token() {
        let answer =
            |status, body: &str| Answer { status, headers: reqwest::header::HeaderMap::new(), body: body.to_owned() };
        assert!(access_token_refused(&answer(403, EXPIRED)));
        assert!(access_token_refused(&answer(
            403,
            r#"{"errors":[{"code":"Unauthorized","message":"Access to requested resource is denied.","details":"The access token you provided is revoked, malformed or invalid."}]}"#
        )));
        assert!(!access_token_refused(&answer(401, EXPIRED)), "Amazon answers 403, not 401");
        assert!(!access_token_refused(&answer(403, "<html>denied</html>")));
        assert!(!access_token_refused(&answer(400, BAD_REQUEST)));
    }

    #[test]
    fn a_seller_sku_stays_one_path_segment() {
        assert_eq!(percent_encode("ABC-1.x_y~z"), "ABC-1.x_y~z");
        assert_eq!(percent_encode("red shirt/L#2"), "red%20shirt%2FL%232");
        assert_eq!(percent_encode("50%+tax?é"), "50%25%2Btax%3F%C3%A9");
    }
}
