//! Sales channels served on local ports for scenarios and benchmarks: the storefront contract
//! and the five marketplaces, each answering its platform's documented success shape (and
//! token endpoint), holding the quantity set per listing, and, on demand, throttling or
//! failing every n-th request the way that platform does. Each also answers its platform's
//! read of those quantities (for reconciliation), and a test can change or remove a listing
//! behind the channel's back (drift). Amazon and Walmart also take feeds (`feeds`). The
//! adapters' own tests
//! (`catalog-publish`) check every request field against the documentation; these check
//! what a whole run leaves on each channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

mod feeds;
mod mercadolibre;

/// Which platform a [`Marketplace`] plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Storefront,
    Shopify,
    Amazon,
    Walmart,
    Ebay,
    MercadoLibre,
}

/// Misbehaviour on demand, by request number (1-based, token requests not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every n-th request is throttled (the platform's way: 429, or Shopify's `THROTTLED`).
    pub throttle_every: Option<u64>,
    /// Every n-th request (not throttled) fails with 503.
    pub fail_every: Option<u64>,
}

/// What a listing was set to, each time, and when.
pub type Held = Arc<Mutex<HashMap<String, Vec<(i64, Instant)>>>>;

#[derive(Clone)]
struct Shared {
    platform: Platform,
    faults: Faults,
    n_requests: Arc<AtomicU64>,
    held: Held,
    /// Mercado Libre: each user product's stock version (`x-version`).
    stock_versions: Arc<Mutex<HashMap<String, u64>>>,
    /// Amazon's and Walmart's feeds.
    feeds: feeds::SharedFeeds,
}

/// One platform on a local port.
#[derive(Debug)]
pub struct Marketplace {
    pub platform: Platform,
    /// `http://127.0.0.1:PORT`: the API host, and the token host.
    pub base_url: String,
    held: Held,
    n_requests: Arc<AtomicU64>,
}

impl Marketplace {
    /// Serves `platform` on a free local port until the runtime ends.
    pub async fn start(platform: Platform, faults: Faults) -> Marketplace {
        let held: Held = Arc::default();
        let n_requests = Arc::new(AtomicU64::new(0));
        let shared = Shared {
            platform,
            faults,
            n_requests: Arc::clone(&n_requests),
            held: Arc::clone(&held),
            stock_versions: Arc::default(),
            feeds: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/tenants/{tenant}/items/{item}/invalidate", post(storefront))
            .route("/admin/api/{version}/graphql.json", post(shopify))
            .route("/listings/2021-08-01/items/{seller}/{sku}", patch(amazon).get(amazon_read))
            .route("/listings/2021-08-01/items/{seller}", get(amazon_search))
            .route("/v3/inventory", put(walmart).get(walmart_read))
            .route("/v3/inventories", get(walmart_list))
            .route("/sell/inventory/v1/bulk_update_price_quantity", post(ebay))
            .route("/sell/inventory/v1/bulk_get_inventory_item", post(ebay_read))
            .route("/items/{item}", put(mercadolibre::item))
            .route("/items/{item}/variations/{variation}", put(mercadolibre::variation))
            .route("/items", get(mercadolibre::read))
            .route("/user-products/{id}/stock", get(mercadolibre::stock))
            .route("/user-products/{id}/stock/type/{location_type}", put(mercadolibre::set_stock))
            .route("/feeds/2021-06-30/documents", post(feeds::amazon_create_document))
            .route("/feeds/2021-06-30/documents/{id}", get(feeds::amazon_document))
            .route("/feeds/2021-06-30/feeds", post(feeds::amazon_create_feed))
            .route("/feeds/2021-06-30/feeds/{id}", get(feeds::amazon_feed))
            .route("/feed-uploads/{id}", put(feeds::amazon_upload))
            .route("/feed-reports/{id}", get(feeds::amazon_report))
            .route("/v3/feeds", post(feeds::walmart_submit))
            .route("/v3/feeds/{id}", get(feeds::walmart_feed))
            .route("/auth/o2/token", post(token))
            .route("/v3/token", post(token))
            .route("/identity/v1/oauth2/token", post(token))
            .route("/oauth/token", post(token))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a marketplace");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Marketplace { platform, base_url, held, n_requests }
    }

    /// The quantity a listing holds now (the last one set), if it was ever set.
    pub fn quantity(&self, listing: &str) -> Option<i64> {
        shown(&self.held, listing)
    }

    /// Every listing's current quantity.
    pub fn quantities(&self) -> HashMap<String, i64> {
        let held = self.held.lock().expect("marketplace state");
        held.iter().filter_map(|(listing, sets)| Some((listing.clone(), sets.last()?.0))).collect()
    }

    /// Every quantity set per listing, with when: for latency measurements.
    pub fn history(&self) -> Held {
        Arc::clone(&self.held)
    }

    /// Changes what a listing shows behind the channel's back (a manual edit on the
    /// platform): drift.
    pub fn edit(&self, listing: &str, quantity: i64) {
        set(&self.held, listing, quantity);
    }

    /// Removes a listing behind the channel's back: the platform no longer shows it.
    pub fn remove(&self, listing: &str) {
        self.held.lock().expect("marketplace state").remove(listing);
    }

    /// Requests answered so far, token requests not counted.
    pub fn n_requests(&self) -> u64 {
        self.n_requests.load(Ordering::Relaxed)
    }
}

/// What a listing shows now (the last quantity set), if it was ever set.
fn shown(held: &Held, listing: &str) -> Option<i64> {
    held.lock().expect("marketplace state").get(listing).and_then(|sets| sets.last()).map(|(q, _)| *q)
}

/// Sets a listing's quantity now.
fn set(held: &Held, listing: &str, quantity: i64) {
    held.lock().expect("marketplace state").entry(listing.to_owned()).or_default().push((quantity, Instant::now()));
}

/// What the fault plan says for the next request.
enum Fate {
    Throttle,
    Fail,
    Serve,
}

impl Shared {
    fn fate(&self) -> Fate {
        let n = self.n_requests.fetch_add(1, Ordering::Relaxed) + 1;
        if self.faults.throttle_every.is_some_and(|every| n % every == 0) {
            Fate::Throttle
        } else if self.faults.fail_every.is_some_and(|every| n % every == 0) {
            Fate::Fail
        } else {
            Fate::Serve
        }
    }

    /// What a listing shows now, if anything.
    fn shown(&self, listing: &str) -> Option<i64> {
        shown(&self.held, listing)
    }

    /// Every listing that starts with `prefix`, as the rest of its name and its quantity now.
    fn shown_under(&self, prefix: &str) -> Vec<(String, i64)> {
        let held = self.held.lock().expect("marketplace state");
        held.iter()
            .filter_map(|(listing, sets)| Some((listing.strip_prefix(prefix)?.to_owned(), sets.last()?.0)))
            .collect()
    }

    fn set(&self, listing: &str, quantity: i64) {
        set(&self.held, listing, quantity);
    }

    /// A throttled or failed answer, when the plan says so.
    fn misbehave(&self) -> Option<Response> {
        match self.fate() {
            Fate::Serve => None,
            Fate::Fail => Some((StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response()),
            Fate::Throttle if self.platform == Platform::Shopify => Some(
                Json(json!({
                    "errors": [{ "message": "Throttled", "extensions": { "code": "THROTTLED" } }],
                    "extensions": { "cost": { "requestedQueryCost": 10, "actualQueryCost": null,
                        "throttleStatus": { "maximumAvailable": 1000.0, "currentlyAvailable": 5, "restoreRate": 100.0 } } }
                }))
                .into_response(),
            ),
            Fate::Throttle => Some((StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0.05")], "{}").into_response()),
        }
    }
}

async fn storefront(
    State(shared): State<Shared>,
    Path((_, item)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    shared.set(&item, body["quantity"].as_i64().unwrap_or(-1));
    (StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response()
}

async fn shopify(State(shared): State<Shared>, Json(body): Json<Value>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    if let Some(ids) = body["variables"]["ids"].as_array() {
        return shopify_read(&shared, ids);
    }
    let input = &body["variables"]["input"];
    let mut changes = Vec::new();
    for quantity in input["quantities"].as_array().into_iter().flatten() {
        let item = quantity["inventoryItemId"].as_str().unwrap_or_default();
        let after = quantity["quantity"].as_i64().unwrap_or(-1);
        shared.set(item, after);
        changes.push(json!({ "name": "available", "delta": 0, "quantityAfterChange": after }));
    }
    Json(json!({
        "data": { "inventorySetQuantities": {
            "inventoryAdjustmentGroup": { "createdAt": "2026-06-01T12:00:00Z", "reason": input["reason"],
                "referenceDocumentUri": input["referenceDocumentUri"], "changes": changes },
            "userErrors": [] } },
        "extensions": { "cost": { "requestedQueryCost": 10, "actualQueryCost": 10,
            "throttleStatus": { "maximumAvailable": 1000.0, "currentlyAvailable": 990, "restoreRate": 100.0 } } }
    }))
    .into_response()
}

async fn amazon(
    State(shared): State<Shared>,
    Path((_, sku)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    shared.set(&sku, body["patches"][0]["value"][0]["quantity"].as_i64().unwrap_or(-1));
    Json(json!({ "sku": sku, "status": "ACCEPTED", "submissionId": "f1dc2914-75dd-11ea-bc55-0242ac130003", "issues": [] }))
        .into_response()
}

async fn walmart(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let sku = query.get("sku").cloned().unwrap_or_default();
    let amount = body["quantity"]["amount"].as_i64().unwrap_or(-1);
    shared.set(&sku, amount);
    Json(json!({ "sku": sku, "quantity": { "unit": "EACH", "amount": amount } })).into_response()
}

async fn ebay(State(shared): State<Shared>, Json(body): Json<Value>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let mut responses = Vec::new();
    for request in body["requests"].as_array().into_iter().flatten() {
        let sku = request["sku"].as_str().unwrap_or_default();
        shared.set(sku, request["shipToLocationAvailability"]["quantity"].as_i64().unwrap_or(-1));
        responses.push(json!({ "statusCode": 200, "sku": sku }));
    }
    Json(json!({ "responses": responses })).into_response()
}

/// Every platform's token endpoint: a token for an hour, and (as Mercado Libre does) the
/// refresh token to use next.
async fn token() -> Response {
    Json(json!({
        "access_token": "local-access-token", "token_type": "bearer", "expires_in": 3600,
        "refresh_token": "local-refresh-token"
    }))
    .into_response()
}

/// The `nodes(ids:)` read of the inventory items' `available` quantity: `inventoryLevel: null`
/// for an item not stocked at the location.
fn shopify_read(shared: &Shared, ids: &[Value]) -> Response {
    let nodes: Vec<Value> = ids
        .iter()
        .map(|id| {
            let id = id.as_str().unwrap_or_default();
            let level = shared
                .shown(id)
                .map(|quantity| json!({ "quantities": [{ "name": "available", "quantity": quantity }] }));
            json!({ "id": id, "inventoryLevel": level })
        })
        .collect();
    Json(json!({
        "data": { "nodes": nodes },
        "extensions": { "cost": { "requestedQueryCost": 3 * nodes.len(), "actualQueryCost": 3 * nodes.len(),
            "throttleStatus": { "maximumAvailable": 1000.0, "currentlyAvailable": 990, "restoreRate": 100.0 } } }
    }))
    .into_response()
}

/// `getListingsItem` with `includedData=fulfillmentAvailability`.
async fn amazon_read(State(shared): State<Shared>, Path((_, sku)): Path<(String, String)>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    match shared.shown(&sku) {
        Some(quantity) => Json(json!({ "sku": sku,
            "fulfillmentAvailability": [{ "fulfillmentChannelCode": "DEFAULT", "quantity": quantity }] }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "errors": [{ "code": "NOT_FOUND",
            "message": format!("SKU '{sku}' not found in marketplace ATVPDKIKX0DER") }] })),
        )
            .into_response(),
    }
}

/// `searchListingsItems` by SKU `identifiers`: the listings it holds (a SKU it does not hold is
/// left out).
async fn amazon_search(State(shared): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let identifiers = query.get("identifiers").cloned().unwrap_or_default();
    let items: Vec<Value> = identifiers
        .split(',')
        .filter_map(|sku| {
            let quantity = shared.shown(sku)?;
            Some(json!({ "sku": sku,
                "fulfillmentAvailability": [{ "fulfillmentChannelCode": "DEFAULT", "quantity": quantity }] }))
        })
        .collect();
    Json(json!({ "numberOfResults": items.len(), "pagination": {}, "items": items })).into_response()
}

/// `GET /v3/inventory?sku=`.
async fn walmart_read(State(shared): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let sku = query.get("sku").cloned().unwrap_or_default();
    match shared.shown(&sku) {
        Some(amount) => Json(json!({ "sku": sku, "quantity": { "unit": "EACH", "amount": amount } })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "errors": [{ "code": "CONTENT_NOT_FOUND.GMP_INVENTORY_API",
            "description": "Item not found", "info": "Requested content could not be found.", "severity": "ERROR",
            "category": "APPLICATION" }] })),
        )
            .into_response(),
    }
}

/// `GET /v3/inventories?limit=&nextCursor=`: every SKU in SKU order at the seller's one ship
/// node, `limit` a page (10 unless given, at most 50); the cursor is the page's last SKU.
async fn walmart_list(State(shared): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let limit = query.get("limit").and_then(|limit| limit.parse().ok()).unwrap_or(10_usize).min(50);
    let after = query.get("nextCursor");
    let mut skus: Vec<(String, i64)> = shared
        .held
        .lock()
        .expect("marketplace state")
        .iter()
        .filter_map(|(sku, sets)| Some((sku.clone(), sets.last()?.0)))
        .collect();
    let total = skus.len();
    skus.sort();
    let page: Vec<&(String, i64)> =
        skus.iter().filter(|(sku, _)| after.is_none_or(|after| sku > after)).take(limit).collect();
    let more = page.last().is_some_and(|(last, _)| skus.last().is_some_and(|(end, _)| end > last));
    let inventories: Vec<Value> = page
        .iter()
        .map(|(sku, amount)| {
            json!({ "sku": sku, "nodes": [{ "shipNode": "NODE-1", "inputQty": { "unit": "EACH", "amount": amount },
                "availToSellQty": { "unit": "EACH", "amount": amount }, "reservedQty": { "unit": "EACH", "amount": 0 } }] })
        })
        .collect();
    let mut meta = json!({ "totalCount": total });
    if more {
        meta["nextCursor"] = json!(page.last().map(|(sku, _)| sku));
    }
    Json(json!({ "meta": meta, "elements": { "inventories": inventories } })).into_response()
}

/// `bulkGetInventoryItem`: per SKU, the inventory item or a 404 entry.
async fn ebay_read(State(shared): State<Shared>, Json(body): Json<Value>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let responses: Vec<Value> = body["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|request| {
            let sku = request["sku"].as_str().unwrap_or_default();
            match shared.shown(sku) {
                Some(quantity) => json!({ "statusCode": 200, "sku": sku, "inventoryItem": { "sku": sku,
                    "availability": { "shipToLocationAvailability": { "quantity": quantity } } } }),
                None => {
                    json!({ "statusCode": 404, "sku": sku, "errors": [{ "errorId": 25702, "domain": "API_INVENTORY",
                    "category": "REQUEST", "message": "The SKU could not be found." }] })
                }
            }
        })
        .collect();
    Json(json!({ "responses": responses })).into_response()
}
