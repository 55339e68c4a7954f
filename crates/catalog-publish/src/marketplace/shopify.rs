//! Shopify as a channel adapter (`docs/channels/shopify.md`): the Admin GraphQL mutation
//! `inventorySetQuantities` sets the `available` quantity of many inventory items at one location
//! per request, with a static access token. Validation errors and throttling come in HTTP 200
//! answers; `extensions.cost.throttleStatus` tells how long to wait before the bucket runs dry.

mod read;

use super::http_client;
use std::time::{Duration, Instant};

pub use read::{parse_available, MAX_READS_PER_REQUEST};

use async_trait::async_trait;
use catalog_core::CatalogItem;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::adapter::{Attempt, ChannelAdapter, Publish, Sent};
use crate::channel::Secret;
use crate::marketplace::{all, common_verdict, exchange, rejected};
use crate::publisher::PublishError;
use crate::response::{truncate, Verdict, DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER};

/// The Admin API version asked for: the first stable version in which `@idempotent` is
/// required at runtime. The request also suits 2026-01 (where `@idempotent` and
/// `changeFromQuantity` appeared, both optional); versions before 2026-01 know neither.
pub const DEFAULT_API_VERSION: &str = "2026-04";

/// The oldest Admin API version the request suits.
pub const OLDEST_API_VERSION: &str = "2026-01";

/// Whether `version` is an Admin API version the request suits: a stable `YYYY-MM` (a
/// release's year and month) from [`OLDEST_API_VERSION`] on. An older one knows neither
/// `@idempotent` nor `changeFromQuantity`, and would answer every publish with a GraphQL
/// error; `unstable` changes without notice. Why not, when not.
pub fn check_api_version(version: &str) -> Result<(), String> {
    let well_formed = version.len() == 7
        && version.as_bytes()[4] == b'-'
        && version.bytes().enumerate().all(|(at, byte)| at == 4 || byte.is_ascii_digit())
        && matches!(&version[5..], "01" | "04" | "07" | "10");
    if !well_formed {
        return Err(format!(
            "{version:?} is no stable Admin API version (YYYY-MM, a quarter's first month: 01, 04, 07 or 10)"
        ));
    }
    if version < OLDEST_API_VERSION {
        return Err(format!(
            "{version} is older than {OLDEST_API_VERSION}, which brought the `@idempotent` directive and \
             `changeFromQuantity` every publish uses"
        ));
    }
    Ok(())
}

/// Shopify's bound on any input array: "Input arguments that accept an array have a maximum
/// size of 250" (usage/limits).
pub const MAX_QUANTITIES_PER_REQUEST: usize = 250;

/// The mutation of the reference notes, for 2026-04 and later.
const SET_AVAILABLE: &str = "mutation SetAvailable($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) { \
inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) { \
inventoryAdjustmentGroup { createdAt reason referenceDocumentUri changes { name delta quantityAfterChange } } \
userErrors { code field message } } }";

/// The one shop and location a Shopify channel sets quantities at, and its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyConfig {
    /// The shop's origin, `https://{shop}.myshopify.com`; requests go to
    /// `{base_url}/admin/api/{api_version}/graphql.json`.
    pub base_url: String,
    /// `YYYY-MM`, 2026-01 or later; [`DEFAULT_API_VERSION`] unless a newer one is wanted.
    pub api_version: String,
    /// The Admin API access token (`shpat_…`, scope `write_inventory`), sent as
    /// `X-Shopify-Access-Token`. It has no refresh: an operator replaces it.
    pub access_token: Secret,
    /// Where the quantities are set: `gid://shopify/Location/{id}`.
    pub location_id: String,
}

/// A Shopify store's inventory at one location, over the Admin GraphQL API. Each publish's
/// listing is the inventory item's GID, `gid://shopify/InventoryItem/{id}`.
#[derive(Debug)]
pub struct ShopifyChannel {
    config: ShopifyConfig,
    client: reqwest::Client,
    url: String,
}

impl ShopifyChannel {
    /// A client that keeps up to `connections` connections open and gives up on a request
    /// after `request_timeout`.
    pub fn new(config: ShopifyConfig, request_timeout: Duration, connections: usize) -> Result<Self, PublishError> {
        let client = http_client(request_timeout, connections, None)?;
        let url = format!("{}/admin/api/{}/graphql.json", config.base_url.trim_end_matches('/'), config.api_version);
        Ok(Self { config, client, url })
    }

    /// One `inventorySetQuantities` request setting every publish's listing to its rule quantity.
    async fn set_available(&self, batch: &[Publish]) -> Sent {
        let started = Instant::now();
        let location_id = &self.config.location_id;
        let key = idempotency_key(location_id, batch);
        let reference_document_uri = match batch {
            [publish] => format!("gid://catalog-sync/ItemVersion/{}", publish.entry.item.idempotency_key()),
            _ => format!("gid://catalog-sync/PublishBatch/{key}"),
        };
        // `changeFromQuantity: null` opts out of compare-and-swap: the catalog is the source of
        // truth and sets the quantity whatever Shopify held.
        let quantities: Vec<Value> = (batch.iter())
            .map(|publish| {
                json!({ "inventoryItemId": publish.listing, "locationId": location_id,
                    "quantity": publish.quantity, "changeFromQuantity": null })
            })
            .collect();
        let input = json!({ "name": "available", "reason": "correction",
            "referenceDocumentUri": reference_document_uri, "quantities": quantities });
        let body = json!({ "query": SET_AVAILABLE, "variables": { "idempotencyKey": key, "input": input } });
        let mut request =
            self.client.post(&self.url).header("X-Shopify-Access-Token", self.config.access_token.expose()).json(&body);
        // One request carries many item versions but one header: the first trace continues.
        if let Some(traceparent) = batch.iter().find_map(|publish| publish.entry.traceparent.as_deref()) {
            request = request.header("traceparent", traceparent);
        }
        let answer = match exchange(request).await {
            Ok(answer) => answer,
            Err(error) => return all(batch, Verdict::from(error), None, started),
        };
        let items: Vec<&CatalogItem> = batch.iter().map(|publish| &publish.entry.item).collect();
        let reading = classify_shopify(answer.status, answer.header("retry-after"), &answer.body, &items, Utc::now());
        let latency = started.elapsed();
        let attempts = reading
            .verdicts
            .into_iter()
            .map(|verdict| Attempt { verdict, status: Some(answer.status), latency })
            .collect();
        Sent { attempts, pause: reading.pause }
    }
}

#[async_trait]
impl ChannelAdapter for ShopifyChannel {
    fn max_batch(&self) -> usize {
        MAX_QUANTITIES_PER_REQUEST
    }

    async fn send(&self, batch: &[Publish]) -> Sent {
        let sendable = |publish: &&Publish| is_inventory_item_gid(&publish.listing);
        if batch.iter().all(|publish| sendable(&publish)) {
            return self.set_available(batch).await;
        }
        // A listing that is no inventory item GID (an unmapped SKU) is refused here: Shopify
        // could answer it with a GraphQL error that fails the whole request, not one quantity.
        let to_send: Vec<Publish> = batch.iter().filter(sendable).cloned().collect();
        let answered = if to_send.is_empty() { Sent::default() } else { self.set_available(&to_send).await };
        let mut answers = answered.attempts.into_iter();
        let attempts = (batch.iter())
            .filter_map(|publish| {
                if sendable(&publish) {
                    return answers.next();
                }
                let error = format!("listing {:?} is not gid://shopify/InventoryItem/{{id}}", publish.listing);
                let verdict = Verdict::DeadLetter { reason: "rejected_listing".into(), error, body: None };
                Some(Attempt { verdict, status: None, latency: Duration::ZERO })
            })
            .collect();
        Sent { attempts, pause: answered.pause }
    }
}

/// `gid://shopify/InventoryItem/{digits}`.
pub fn is_inventory_item_gid(listing: &str) -> bool {
    is_gid_of("InventoryItem", listing)
}

/// Whether `location_id` is a location's GID, `gid://shopify/Location/{digits}`, the only
/// form `inventorySetQuantities` takes: a bare id (`124656943`, as the admin's URL shows it)
/// fails every request at Shopify. Why not, when not.
pub fn check_location_id(location_id: &str) -> Result<(), String> {
    if is_gid_of("Location", location_id) {
        return Ok(());
    }
    Err(format!("{location_id:?} is not a location's GID (gid://shopify/Location/124656943)"))
}

/// `gid://shopify/{kind}/{digits}`.
fn is_gid_of(kind: &str, text: &str) -> bool {
    text.strip_prefix("gid://shopify/")
        .and_then(|rest| rest.strip_prefix(kind))
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|byte| byte.is_ascii_digit()))
}

/// The `@idempotent` key of a request: a UUID (version 8, RFC 9562) digested from everything
/// the request sets, from when each version was queued and from the failures already
/// counted. Sent again unchanged (after a throttle, or by another lane after a lease ran out)
/// it keeps its key, so Shopify applies it once; after a failure it gets a new one, since
/// Shopify refuses a key whose previous attempt failed (`IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED`:
/// "Retry with a new idempotency key"). A version queued again (an operator's republish, a
/// drift correction of the same quantity) gets a new one too: under the old key Shopify
/// would answer the first request's result and set nothing, leaving an edit made in its
/// admin standing.
fn idempotency_key(location_id: &str, batch: &[Publish]) -> String {
    // FNV-1a, 128 bits: stable across builds and platforms, unlike `std`'s hasher.
    let mut digest: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    let mut write = |part: &str| {
        // 0xff never occurs in UTF-8, so it separates the parts unambiguously.
        for byte in part.bytes().chain([0xff]) {
            digest = (digest ^ u128::from(byte)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
        }
    };
    write(location_id);
    for publish in batch {
        write(&publish.entry.item.idempotency_key());
        write(&publish.listing);
        write(&publish.quantity.to_string());
        write(&publish.entry.attempts.to_string());
        write(&publish.entry.enqueued_at.timestamp_micros().to_string());
    }
    let bits = (digest & !(0xf << 76) & !(0x3 << 62)) | (0x8 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// What one Shopify answer says: a verdict per quantity sent, in order, and how long the
/// channel should wait before its next request although this one was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyReading {
    pub verdicts: Vec<Verdict>,
    pub pause: Option<Duration>,
}

/// Classifies Shopify's answer (`status`, its `Retry-After`, `body`, received at `now`) to an
/// `inventorySetQuantities` request that set the quantities of `items`, in order.
///
/// A 200 carries the verdicts: no `userErrors`, every item accepted; `THROTTLED`, wait until
/// the bucket holds the request's cost again; `userErrors` naming a quantity
/// (`field: ["input", "quantities", "{index}", …]`), that item dead-lettered and the others,
/// not applied, sent again; errors naming no quantity, every item. A 401 is a token an
/// operator must replace, and a 402 (the shop frozen) or 423 (the shop locked) a shop its
/// owner must restore: each holds the channel, so the items heal once they are. 429, 408 and
/// 5xx read as on every platform (`common_verdict`); other statuses are rejections.
pub fn classify_shopify(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    items: &[&CatalogItem],
    now: DateTime<Utc>,
) -> ShopifyReading {
    let each = |verdict: Verdict| ShopifyReading { verdicts: vec![verdict; items.len()], pause: None };
    let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match status {
        200..=299 => read_graphql(&answer, body, items),
        // Shopify's Admin API token does not expire: refused, it was revoked (the app
        // uninstalled or its access removed), and the channel waits for an operator.
        401 => each(Verdict::Blocked {
            reason: "unauthorized",
            error: http_error(401, &answer, body),
            retry_after: super::BLOCKED_FOR,
        }),
        // The shop, not the item: frozen until its owner pays the balance due (402), or
        // locked, after exceeding the API's limits again and again or for a fraud review
        // (423). Every write waits with the channel, none spends an item's attempts.
        // A scope the app was not granted (403): every write of the channel is refused alike
        // until the merchant grants it, so the channel waits for an operator, as for 401.
        402 | 403 | 423 => each(Verdict::Blocked {
            reason: match status {
                402 => "shop_frozen",
                403 => "forbidden",
                _ => "shop_locked",
            },
            error: http_error(status, &answer, body),
            retry_after: super::BLOCKED_FOR,
        }),
        _ => each(
            common_verdict(status, retry_after, body, now)
                .unwrap_or_else(|| rejected(status, http_error(status, &answer, body), body)),
        ),
    }
}

/// A 2xx answer: top-level `errors` first (throttling among them), then the mutation's result.
fn read_graphql(answer: &Value, body: &str, items: &[&CatalogItem]) -> ShopifyReading {
    let each = |verdict: Verdict| ShopifyReading { verdicts: vec![verdict; items.len()], pause: None };
    let budget = Budget::read(answer);
    if let Some(errors) = answer.get("errors").filter(|errors| !errors.is_null()) {
        let codes: Vec<&str> = errors
            .as_array()
            .map(|errors| errors.iter().filter_map(|error| error["extensions"]["code"].as_str()).collect())
            .unwrap_or_default();
        if codes.contains(&"THROTTLED") {
            let retry_after = budget.and_then(|budget| budget.wait()).unwrap_or(DEFAULT_RETRY_AFTER);
            return each(Verdict::Throttled { retry_after });
        }
        let error = message(answer, body);
        if codes.contains(&"INTERNAL_SERVER_ERROR") {
            return each(Verdict::Retry { reason: "server_error", error });
        }
        // The app lacks the scope the mutation needs (`write_inventory` removed, or the app
        // reinstalled with fewer): no write of the channel can pass until the merchant grants
        // it. Dead-lettered, every item was requeued and quarantined meanwhile.
        if codes.contains(&"ACCESS_DENIED") {
            return each(Verdict::Blocked { reason: "access_denied", error, retry_after: super::BLOCKED_FOR });
        }
        // The request itself was refused (syntax, schema, access): no quantity was set.
        return each(refused("rejected_graphql", error, body));
    }
    let result = &answer["data"]["inventorySetQuantities"];
    if !result.is_object() {
        // Nothing says whether the quantities were set: setting them again is harmless.
        let error = format!("no inventorySetQuantities result: {}", truncate(body));
        return each(Verdict::Retry { reason: "malformed_answer", error });
    }
    let pause = budget.and_then(|budget| budget.wait());
    let user_errors = result["userErrors"].as_array().map(Vec::as_slice).unwrap_or_default();
    let applied = result["inventoryAdjustmentGroup"].is_object();
    ShopifyReading { verdicts: user_error_verdicts(user_errors, applied, body, items), pause }
}

/// One verdict per item from a result's `userErrors` (none: every item accepted).
fn user_error_verdicts(user_errors: &[Value], applied: bool, body: &str, items: &[&CatalogItem]) -> Vec<Verdict> {
    if user_errors.is_empty() {
        // Accepted, though the group may be absent when no quantity changed (not confirmed).
        return items.iter().map(|item| Verdict::Answered(item.accepted())).collect();
    }
    let describe = |error: &Value| {
        let code = error["code"].as_str().unwrap_or("USER_ERROR");
        format!("{code}: {}", error["message"].as_str().unwrap_or_default())
    };
    // A key refused for its own sake (in use, or failed before): no quantity is at fault,
    // and the next attempt, one more failure counted, carries a new key.
    if let Some(error) =
        user_errors.iter().find(|error| error["code"].as_str().is_some_and(|code| code.starts_with("IDEMPOTENCY_")))
    {
        return vec![Verdict::Retry { reason: "idempotency_key", error: describe(error) }; items.len()];
    }
    let mut messages: Vec<Vec<String>> = vec![Vec::new(); items.len()];
    for error in user_errors {
        match quantity_index(&error["field"]).filter(|index| *index < items.len()) {
            Some(index) => messages[index].push(describe(error)),
            // The location, the reason, the reference document: every quantity is refused.
            None => messages.iter_mut().for_each(|messages| messages.push(describe(error))),
        }
    }
    items
        .iter()
        .zip(messages)
        .map(|(item, messages)| match (messages.is_empty(), applied) {
            (false, _) => refused("rejected_user_error", messages.join("; "), body),
            (true, true) => Verdict::Answered(item.accepted()),
            // No group: Shopify set none of the request's quantities, this one waits for the next.
            (true, false) => Verdict::Retry {
                reason: "request_rejected",
                error: "not set: Shopify refused another quantity of the same request".into(),
            },
        })
        .collect()
}

/// Dead-lettered with Shopify's messages and its answer.
fn refused(reason: &str, error: String, body: &str) -> Verdict {
    Verdict::DeadLetter { reason: reason.to_owned(), error, body: Some(truncate(body).to_owned()) }
}

/// The index `n` of a `userErrors` field path `["input", "quantities", "n", …]`.
fn quantity_index(field: &Value) -> Option<usize> {
    let path = field.as_array()?;
    let at = path.iter().position(|part| part == "quantities")?;
    path.get(at + 1)?.as_str()?.parse().ok()
}

/// `HTTP {status}`, then what the answer says.
fn http_error(status: u16, answer: &Value, body: &str) -> String {
    Some(message(answer, body))
        .filter(|message| !message.is_empty())
        .map_or_else(|| format!("HTTP {status}"), |message| format!("HTTP {status}: {message}"))
}

/// The messages of a GraphQL `errors` (a list of objects, or one string on a 401), or the body.
fn message(answer: &Value, body: &str) -> String {
    match &answer["errors"] {
        Value::String(message) => message.clone(),
        Value::Array(errors) => {
            errors.iter().filter_map(|error| error["message"].as_str()).collect::<Vec<_>>().join("; ")
        }
        _ => truncate(body).to_owned(),
    }
}

/// `extensions.cost`: what the request asked of the bucket, what it holds, how fast it fills.
#[derive(Debug, Clone, Copy)]
struct Budget {
    requested: f64,
    available: f64,
    restore_rate: f64,
    /// The bucket's size (`maximumAvailable`), when the answer gives it.
    maximum: Option<f64>,
}

impl Budget {
    fn read(answer: &Value) -> Option<Self> {
        let (cost, status) = (&answer["extensions"]["cost"], &answer["extensions"]["cost"]["throttleStatus"]);
        let requested = cost["requestedQueryCost"].as_f64()?;
        Some(Self {
            requested,
            available: status["currentlyAvailable"].as_f64()?,
            restore_rate: status["restoreRate"].as_f64()?,
            maximum: status["maximumAvailable"].as_f64(),
        })
    }

    /// How long until the bucket holds `share` of its size besides the cost of a request
    /// like this one: a reader that waits this long after each read leaves that share to the
    /// writes. None while it already does, or when the answer gives no size.
    fn wait_to_leave(self, share: f64) -> Option<Duration> {
        let reserve = self.maximum? * share;
        Self { requested: self.requested + reserve, ..self }.wait()
    }

    /// How long until the bucket holds the cost of a request like this one, taken as the
    /// cost of the next: `(cost − currentlyAvailable) / restoreRate`; none while it already does.
    fn wait(self) -> Option<Duration> {
        let seconds = (self.requested - self.available) / self.restore_rate;
        (self.restore_rate > 0.0 && seconds.is_finite() && seconds > 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
    }
}

#[cfg(test)]
mod tests;
