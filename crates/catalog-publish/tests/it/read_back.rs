//! The marketplaces' read-backs against local servers over real HTTP: each read's request
//! (method, path, query, headers, body) is the one its platform documents
//! (`docs/channels/*.md`), a listing the platform does not hold shows nothing, and an expired
//! access token is fetched again once, as when publishing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use catalog_publish::marketplace::amazon::{AmazonChannel, AmazonConfig};
use catalog_publish::marketplace::ebay::{EbayChannel, EbayConfig};
use catalog_publish::marketplace::mercadolibre::{MercadoLibreChannel, MercadoLibreConfig};
use catalog_publish::marketplace::shopify::{ShopifyChannel, ShopifyConfig};
use catalog_publish::marketplace::walmart::{WalmartChannel, WalmartConfig};
use catalog_publish::{LookupReadBack, ReadBackError, Secret, ShownQuantities};
use serde_json::{json, Value};

use crate::marketplace_support::header;

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Recorded {
    at: std::time::Instant,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Value,
}

/// An answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, &'static str)>, String);

#[derive(Default)]
struct Shared {
    /// Answers in order; once spent, every request gets the last one.
    script: VecDeque<Answer>,
    requests: Vec<Recorded>,
    tokens_issued: usize,
}

/// A platform on a local port: every path ending in `token` is its OAuth endpoint (a new
/// access token each time); every other request is recorded and answered from the script.
struct Platform {
    base_url: String,
    shared: Arc<Mutex<Shared>>,
}

async fn serve(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut shared = shared.lock().expect("platform state");
    if uri.path().ends_with("token") {
        shared.tokens_issued += 1;
        let n = shared.tokens_issued;
        return axum::Json(json!({ "access_token": format!("token-{n}"), "token_type": "bearer", "expires_in": 3600, "refresh_token": format!("refresh-{n}") }))
            .into_response();
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.requests.push(Recorded {
        at: std::time::Instant::now(),
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
    });
    let (status, headers, body) =
        if shared.script.len() > 1 { shared.script.pop_front() } else { shared.script.front().cloned() }
            .expect("a scripted answer");
    let mut response =
        (StatusCode::from_u16(status).expect("status"), [("content-type", "application/json")], body).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().expect("header value"));
    }
    response
}

impl Platform {
    async fn start(script: Vec<Answer>) -> Platform {
        let shared = Arc::new(Mutex::new(Shared { script: script.into(), ..Shared::default() }));
        let app = Router::new().fallback(serve).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Platform { base_url, shared }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().expect("platform state").requests.clone()
    }

    fn tokens_issued(&self) -> usize {
        self.shared.lock().expect("platform state").tokens_issued
    }
}

fn ok(body: Value) -> Answer {
    (200, vec![], body.to_string())
}

fn sorted(shown: &ShownQuantities) -> Vec<(String, i64)> {
    let mut shown: Vec<(String, i64)> = shown.iter().map(|(listing, quantity)| (listing.clone(), *quantity)).collect();
    shown.sort();
    shown
}

fn shopify(platform: &Platform) -> ShopifyChannel {
    let config = ShopifyConfig {
        base_url: platform.base_url.clone(),
        api_version: "2026-04".into(),
        access_token: Secret::new("shpat_local"),
        location_id: "gid://shopify/Location/7".into(),
    };
    ShopifyChannel::new(config, TIMEOUT, 2).expect("client")
}

#[tokio::test]
async fn shopify_reads_the_available_quantity_of_many_inventory_items_at_its_location_in_one_query() {
    let nodes = json!({ "data": { "nodes": [
        { "id": "gid://shopify/InventoryItem/11", "inventoryLevel": { "quantities": [{ "name": "available", "quantity": 4 }] } },
        { "id": "gid://shopify/InventoryItem/12", "inventoryLevel": null },
        null
    ] } });
    let platform = Platform::start(vec![ok(nodes)]).await;
    let channel = shopify(&platform);
    let listings =
        ["gid://shopify/InventoryItem/11", "gid://shopify/InventoryItem/12", "gid://shopify/InventoryItem/13", "SKU-1"];
    let shown = channel.shown_quantities(&listings).await.expect("read");
    assert_eq!(sorted(&shown), [("gid://shopify/InventoryItem/11".to_owned(), 4)]);
    let requests = platform.requests();
    assert_eq!(requests.len(), 1, "one query for every item");
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/admin/api/2026-04/graphql.json"));
    assert_eq!(header(&request.headers, "x-shopify-access-token").as_deref(), Some("shpat_local"));
    assert_eq!(header(&request.headers, "content-type").as_deref(), Some("application/json"));
    let query = request.body["query"].as_str().expect("a query");
    assert!(query.starts_with("query AvailableAt($ids: [ID!]!, $locationId: ID!)"), "{query}");
    assert!(
        query.contains("inventoryLevel(locationId: $locationId)")
            && query.contains(r#"quantities(names: ["available"])"#),
        "{query}"
    );
    assert_eq!(
        request.body["variables"],
        json!({ "ids": ["gid://shopify/InventoryItem/11", "gid://shopify/InventoryItem/12", "gid://shopify/InventoryItem/13"], "locationId": "gid://shopify/Location/7" }),
        "a listing that is no inventory item GID is not asked about"
    );
}

#[tokio::test]
async fn shopify_throttling_waits_until_the_bucket_holds_the_query() {
    let throttled = json!({ "errors": [{ "message": "Throttled", "extensions": { "code": "THROTTLED" } }],
        "extensions": { "cost": { "requestedQueryCost": 302, "actualQueryCost": null,
            "throttleStatus": { "maximumAvailable": 2000.0, "currentlyAvailable": 2, "restoreRate": 100.0 } } } });
    let platform = Platform::start(vec![ok(throttled)]).await;
    let channel = shopify(&platform);
    let read = channel.shown_quantities(&["gid://shopify/InventoryItem/11"]).await;
    assert_eq!(read, Err(ReadBackError::Throttled(Duration::from_secs(3))));
}

fn amazon(platform: &Platform) -> AmazonChannel {
    let config = AmazonConfig {
        base_url: platform.base_url.clone(),
        seller_id: "A2SELLER".into(),
        marketplace_id: "ATVPDKIKX0DER".into(),
        product_type: "PRODUCT".into(),
        token_url: format!("{}/auth/o2/token", platform.base_url),
        client_id: "amzn1.application-oa2-client.local".into(),
        client_secret: Secret::new("lwa-secret"),
        refresh_token: Secret::new("Atzr|local"),
        feed: None,
    };
    AmazonChannel::new(config, TIMEOUT, 2).expect("client")
}

#[tokio::test]
async fn amazon_searches_twenty_skus_at_once_and_asks_alone_about_the_rest() {
    let unauthorized = (403, vec![], r#"{"errors":[{"code":"Unauthorized","message":"Access to requested resource is denied.","details":"The access token you provided has expired."}]}"#.to_owned());
    let found = ok(json!({ "numberOfResults": 2, "pagination": {}, "items": [
        { "sku": "SKU-1", "fulfillmentAvailability": [{ "fulfillmentChannelCode": "DEFAULT", "quantity": 4 }] },
        { "sku": "SKU/1 A", "fulfillmentAvailability": [
            { "fulfillmentChannelCode": "AMAZON_NA", "quantity": 30 }, { "fulfillmentChannelCode": "DEFAULT", "quantity": 9 } ] } ] }));
    let with_comma = ok(
        json!({ "sku": "A,B", "fulfillmentAvailability": [{ "fulfillmentChannelCode": "DEFAULT", "quantity": 2 }] }),
    );
    let not_found = (
        404,
        vec![],
        r#"{"errors":[{"code":"NOT_FOUND","message":"SKU 'SKU-2' not found in marketplace ATVPDKIKX0DER"}]}"#
            .to_owned(),
    );
    let platform = Platform::start(vec![unauthorized, found, with_comma, not_found]).await;
    let channel = amazon(&platform);
    assert_eq!(channel.max_lookup(), 20);
    let shown = channel.shown_quantities(&["SKU-1", "SKU/1 A", "SKU-2", "A,B"]).await.expect("read");
    assert_eq!(
        sorted(&shown),
        [("A,B".to_owned(), 2), ("SKU-1".to_owned(), 4), ("SKU/1 A".to_owned(), 9)],
        "a SKU the search leaves out and Amazon does not know shows nothing"
    );
    assert_eq!(platform.tokens_issued(), 2, "the expired token was replaced once");
    let requests = platform.requests();
    let seen: Vec<(&str, &str, Option<&str>)> =
        requests.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.query.as_deref())).collect();
    let search = Some("marketplaceIds=ATVPDKIKX0DER&identifiers=SKU-1,SKU%2F1%20A,SKU-2&identifiersType=SKU&includedData=fulfillmentAvailability&pageSize=3");
    let alone = Some("marketplaceIds=ATVPDKIKX0DER&includedData=fulfillmentAvailability");
    assert_eq!(
        seen,
        [
            ("GET", "/listings/2021-08-01/items/A2SELLER", search),
            ("GET", "/listings/2021-08-01/items/A2SELLER", search),
            ("GET", "/listings/2021-08-01/items/A2SELLER/A%2CB", alone),
            ("GET", "/listings/2021-08-01/items/A2SELLER/SKU-2", alone),
        ]
    );
    let tokens: Vec<Option<String>> = requests.iter().map(|r| header(&r.headers, "x-amz-access-token")).collect();
    assert_eq!(
        tokens,
        [Some("token-1".into()), Some("token-2".into()), Some("token-2".into()), Some("token-2".into())]
    );
    let gaps: Vec<std::time::Duration> =
        requests.windows(2).skip(1).map(|pair| pair[1].at.duration_since(pair[0].at)).collect();
    assert!(
        gaps.iter().all(|gap| *gap >= std::time::Duration::from_millis(190)),
        "the reads alone keep Amazon's pace: {gaps:?}"
    );
    assert!(requests
        .iter()
        .all(|r| header(&r.headers, "user-agent").is_some_and(|agent| agent.starts_with("catalog-sync/"))));
}

#[tokio::test]
async fn amazon_throttling_waits_for_the_rate_it_reports() {
    let throttled = (
        429,
        vec![("x-amzn-RateLimit-Limit", "2.0")],
        r#"{"errors":[{"code":"QuotaExceeded","message":"You exceeded your quota for the requested resource."}]}"#
            .to_owned(),
    );
    let platform = Platform::start(vec![throttled]).await;
    let read = amazon(&platform).shown_quantities(&["SKU-1"]).await;
    assert_eq!(read, Err(ReadBackError::Throttled(Duration::from_millis(500))));
}

/// Walmart, publishing to ship node 79111.
fn walmart(platform: &Platform) -> WalmartChannel {
    let config = WalmartConfig {
        base_url: platform.base_url.clone(),
        ship_node: Some("79111".into()),
        token_url: format!("{}/v3/token", platform.base_url),
        client_id: "walmart-client".into(),
        client_secret: Secret::new("walmart-secret"),
        feed: None,
    };
    WalmartChannel::new(config, TIMEOUT, 2).expect("client")
}

fn mercadolibre(platform: &Platform) -> MercadoLibreChannel {
    let config = MercadoLibreConfig {
        base_url: platform.base_url.clone(),
        token_url: format!("{}/oauth/token", platform.base_url),
        client_id: "meli-app".into(),
        client_secret: Secret::new("meli-secret"),
        refresh_token: Secret::new("TG-local"),
        refresh_token_file: None,
    };
    MercadoLibreChannel::new(config, TIMEOUT, 2).expect("client")
}

#[tokio::test]
async fn walmart_reads_each_skus_inventory_at_its_ship_node() {
    let inventory = ok(json!({ "sku": "SKU 1", "quantity": { "unit": "EACH", "amount": 6 } }));
    let not_found = (
        404,
        vec![],
        r#"{"errors":[{"code":"CONTENT_NOT_FOUND.GMP_INVENTORY_API","description":"Item not found"}]}"#.to_owned(),
    );
    let platform = Platform::start(vec![inventory, not_found]).await;
    let channel = walmart(&platform);
    let shown = channel.shown_quantities(&["SKU 1", "SKU-2"]).await.expect("read");
    assert_eq!(sorted(&shown), [("SKU 1".to_owned(), 6)]);
    let requests = platform.requests();
    let seen: Vec<(&str, &str, Option<&str>)> =
        requests.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.query.as_deref())).collect();
    assert_eq!(
        seen,
        [
            ("GET", "/v3/inventory", Some("sku=SKU%201&shipNode=79111")),
            ("GET", "/v3/inventory", Some("sku=SKU-2&shipNode=79111"))
        ]
    );
    for request in &requests {
        assert_eq!(header(&request.headers, "wm_sec.access_token").as_deref(), Some("token-1"));
        assert_eq!(header(&request.headers, "wm_svc.name").as_deref(), Some("Walmart Marketplace"));
        assert_eq!(header(&request.headers, "accept").as_deref(), Some("application/json"));
        assert!(header(&request.headers, "wm_qos.correlation_id").is_some_and(|id| id.len() == 36));
    }
}

#[tokio::test]
async fn walmart_lists_its_catalog_50_skus_a_page_following_the_cursor_with_a_new_token_once_expired() {
    let expired = (
        401,
        vec![],
        r#"{"errors":[{"code":"UNAUTHORIZED.GMP_GATEWAY_API","description":"Unauthorized"}]}"#.to_owned(),
    );
    let first = ok(json!({
        "meta": { "totalCount": 3, "nextCursor": "c/1 2" },
        "elements": { "inventories": [
            { "sku": "SKU-1", "nodes": [{ "shipNode": "79111", "inputQty": { "unit": "EACH", "amount": 4 } },
                                        { "shipNode": "80222", "inputQty": { "unit": "EACH", "amount": 9 } }] },
            { "sku": "SKU-2", "nodes": [{ "shipNode": "80222", "inputQty": { "unit": "EACH", "amount": 1 } }] }
        ] }
    }));
    let last = ok(json!({
        "meta": { "totalCount": 3 },
        "elements": { "inventories": [
            { "sku": "SKU 3", "nodes": [{ "shipNode": "79111", "inputQty": { "unit": "EACH", "amount": 0 } }] }
        ] }
    }));
    let platform = Platform::start(vec![expired, first, last]).await;
    let channel = walmart(&platform);
    let list = channel.catalog_list().expect("Walmart lists its catalog");
    let page = list.catalog_page(None).await.expect("first page");
    assert_eq!(sorted(&page.shown), [("SKU-1".to_owned(), 4)], "SKU-2 is not at the channel's node");
    assert_eq!(page.next.as_deref(), Some("c/1 2"));
    let page = list.catalog_page(page.next.as_deref()).await.expect("last page");
    assert_eq!(sorted(&page.shown), [("SKU 3".to_owned(), 0)]);
    assert_eq!(page.next, None);
    let requests = platform.requests();
    let seen: Vec<(&str, &str, Option<&str>)> =
        requests.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.query.as_deref())).collect();
    assert_eq!(
        seen,
        [
            ("GET", "/v3/inventories", Some("limit=50")),
            ("GET", "/v3/inventories", Some("limit=50")),
            ("GET", "/v3/inventories", Some("limit=50&nextCursor=c%2F1%202"))
        ]
    );
    let tokens: Vec<Option<String>> =
        requests.iter().map(|request| header(&request.headers, "wm_sec.access_token")).collect();
    assert_eq!(tokens, [Some("token-1".to_owned()), Some("token-2".to_owned()), Some("token-2".to_owned())]);
    for request in &requests {
        assert_eq!(header(&request.headers, "wm_svc.name").as_deref(), Some("Walmart Marketplace"));
        assert_eq!(header(&request.headers, "accept").as_deref(), Some("application/json"));
        assert!(header(&request.headers, "wm_qos.correlation_id").is_some_and(|id| id.len() == 36));
    }
}

#[tokio::test]
async fn ebay_reads_up_to_25_skus_per_request_and_fetches_a_new_token_once() {
    let expired = (
        401,
        vec![],
        r#"{"errors":[{"errorId":1001,"domain":"OAuth","category":"REQUEST","message":"Invalid access token"}]}"#
            .to_owned(),
    );
    let answer = ok(json!({ "responses": [
        { "statusCode": 200, "sku": "SKU-1", "inventoryItem": { "sku": "SKU-1", "availability": { "shipToLocationAvailability": { "quantity": 5 } } } },
        { "statusCode": 404, "sku": "SKU-2", "errors": [{ "errorId": 25702, "message": "The SKU could not be found." }] }
    ] }));
    let platform = Platform::start(vec![expired, answer, no_offers()]).await;
    let channel = ebay(&platform);
    assert_eq!(channel.max_lookup(), 25);
    let shown = channel.shown_quantities(&["SKU-1", "SKU-2"]).await.expect("read");
    assert_eq!(sorted(&shown), [("SKU-1".to_owned(), 5)]);
    assert_eq!(platform.tokens_issued(), 2);
    let requests = platform.requests();
    assert_eq!(requests.len(), 3, "the item read twice, then SKU-1's offers");
    let request = &requests[1];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/sell/inventory/v1/bulk_get_inventory_item")
    );
    assert_eq!(header(&request.headers, "authorization").as_deref(), Some("Bearer token-2"));
    assert_eq!(request.body, json!({ "requests": [{ "sku": "SKU-1" }, { "sku": "SKU-2" }] }));
}

/// A read answered 403 errorId 1100 "Access denied", as eBay was seen to answer an expired
/// token, fetches a new token once and reads again, as a publish does.
#[tokio::test]
async fn ebay_read_denied_to_its_token_fetches_a_new_token_once() {
    let denied = (
        403,
        vec![],
        r#"{"errors":[{"errorId":1100,"domain":"ACCESS","category":"REQUEST","message":"Access denied"}]}"#.to_owned(),
    );
    let answer = ok(json!({ "responses": [
        { "statusCode": 200, "sku": "SKU-1", "inventoryItem": { "sku": "SKU-1", "availability": { "shipToLocationAvailability": { "quantity": 5 } } } }
    ] }));
    let platform = Platform::start(vec![denied, answer, no_offers()]).await;
    let channel = ebay(&platform);
    let shown = channel.shown_quantities(&["SKU-1"]).await.expect("read");
    assert_eq!(sorted(&shown), [("SKU-1".to_owned(), 5)]);
    assert_eq!(platform.tokens_issued(), 2);
    let authorizations: Vec<Option<String>> =
        platform.requests().iter().map(|request| header(&request.headers, "authorization")).collect();
    assert_eq!(
        authorizations,
        [Some("Bearer token-1".to_owned()), Some("Bearer token-2".to_owned()), Some("Bearer token-2".to_owned())]
    );
}

/// `getOffers`' answer for a SKU without offers.
fn no_offers() -> Answer {
    let body = json!({ "errors": [{ "errorId": 25713, "domain": "API_INVENTORY", "category": "REQUEST", "message": "This Offer is not available." }] });
    (404, vec![], body.to_string())
}

fn ebay(platform: &Platform) -> EbayChannel {
    let config = EbayConfig {
        base_url: platform.base_url.clone(),
        token_url: format!("{}/identity/v1/oauth2/token", platform.base_url),
        client_id: "ebay-app".into(),
        client_secret: Secret::new("ebay-cert"),
        refresh_token: Secret::new("v^1.1#refresh"),
    };
    EbayChannel::new(config, TIMEOUT, 2).expect("client")
}

/// A buyer sees the lower of an inventory item's quantity and each published offer's
/// `availableQuantity`: an offer lowered on eBay's side is what the SKU shows, an unpublished
/// offer caps nothing, and an item that offers nothing is not asked about.
#[tokio::test]
async fn ebay_read_shows_the_lower_of_the_item_and_its_published_offers() {
    let items = ok(json!({ "responses": [
        { "statusCode": 200, "sku": "SKU-1", "inventoryItem": { "sku": "SKU-1", "availability": { "shipToLocationAvailability": { "quantity": 5 } } } },
        { "statusCode": 200, "sku": "SKU-2", "inventoryItem": { "sku": "SKU-2", "availability": { "shipToLocationAvailability": { "quantity": 8 } } } },
        { "statusCode": 200, "sku": "SKU-3", "inventoryItem": { "sku": "SKU-3", "availability": { "shipToLocationAvailability": { "quantity": 0 } } } },
        { "statusCode": 404, "sku": "SKU-4", "errors": [{ "errorId": 25702, "message": "The SKU could not be found." }] }
    ] }));
    let offers = |sku: &str, entries: Value| {
        ok(
            json!({ "href": format!("/sell/inventory/v1/offer?sku={sku}"), "limit": 25, "offers": entries, "size": 2, "total": 2 }),
        )
    };
    let sku_1 = offers(
        "SKU-1",
        json!([
            { "offerId": "1001", "sku": "SKU-1", "marketplaceId": "EBAY_US", "format": "FIXED_PRICE", "status": "PUBLISHED", "availableQuantity": 3 },
            { "offerId": "1002", "sku": "SKU-1", "marketplaceId": "EBAY_GB", "format": "FIXED_PRICE", "status": "UNPUBLISHED", "availableQuantity": 1 }
        ]),
    );
    let sku_2 = offers(
        "SKU-2",
        json!([
            { "offerId": "2001", "sku": "SKU-2", "marketplaceId": "EBAY_US", "format": "FIXED_PRICE", "status": "PUBLISHED", "availableQuantity": 12 },
            { "offerId": "2002", "sku": "SKU-2", "marketplaceId": "EBAY_DE", "format": "FIXED_PRICE", "status": "PUBLISHED" }
        ]),
    );
    let platform = Platform::start(vec![items, sku_1, sku_2]).await;
    let channel = ebay(&platform);
    assert_eq!(
        channel.requests_per_read(&["SKU-1", "SKU-2", "SKU-3", "SKU-4"]),
        5,
        "the items' read and a getOffers per SKU at most"
    );
    let shown = channel.shown_quantities(&["SKU-1", "SKU-2", "SKU-3", "SKU-4"]).await.expect("read");
    assert_eq!(sorted(&shown), [("SKU-1".to_owned(), 3), ("SKU-2".to_owned(), 8), ("SKU-3".to_owned(), 0)]);
    let seen: Vec<(String, String, Option<String>)> = platform
        .requests()
        .into_iter()
        .map(|request| (request.method.to_string(), request.path, request.query))
        .collect();
    let offers_path = "/sell/inventory/v1/offer".to_owned();
    assert_eq!(
        seen,
        [
            ("POST".to_owned(), "/sell/inventory/v1/bulk_get_inventory_item".to_owned(), None),
            ("GET".to_owned(), offers_path.clone(), Some("sku=SKU-1".to_owned())),
            ("GET".to_owned(), offers_path, Some("sku=SKU-2".to_owned())),
        ]
    );
}

/// A SKU whose offers cannot be read fails the read as eBay's answer says: the listing's
/// quantity is not known without them.
#[tokio::test]
async fn ebay_read_fails_when_a_sku_s_offers_cannot_be_read() {
    let items = ok(json!({ "responses": [
        { "statusCode": 200, "sku": "SKU-1", "inventoryItem": { "sku": "SKU-1", "availability": { "shipToLocationAvailability": { "quantity": 5 } } } }
    ] }));
    let failure = json!({ "errors": [{ "errorId": 25001, "domain": "API_INVENTORY", "category": "APPLICATION", "message": "A system error has occurred." }] });
    let platform = Platform::start(vec![items, (500, vec![], failure.to_string())]).await;
    let error = ebay(&platform).shown_quantities(&["SKU-1"]).await.expect_err("no reading without the offers");
    assert!(matches!(error, ReadBackError::Transient(_)), "{error:?}");
}

#[tokio::test]
async fn mercadolibre_reads_up_to_20_items_per_multiget() {
    let answer = ok(json!([
        { "code": 200, "body": { "id": "MLA1", "available_quantity": 3 } },
        { "code": 404, "body": { "message": "Item with id MLA2 not found", "error": "not_found", "status": 404, "cause": [] } }
    ]));
    let platform = Platform::start(vec![answer]).await;
    let channel = mercadolibre(&platform);
    assert_eq!(channel.max_lookup(), 20);
    let shown = channel.shown_quantities(&["MLA1", "MLA2", "not/an-id"]).await.expect("read");
    assert_eq!(sorted(&shown), [("MLA1".to_owned(), 3)]);
    let requests = platform.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str(), request.query.as_deref()),
        ("GET", "/items", Some("ids=MLA1%2CMLA2&attributes=id%2Cavailable_quantity"))
    );
    assert_eq!(header(&request.headers, "authorization").as_deref(), Some("Bearer token-1"));
}

/// Listings naming variations ask for their item once, with its `variations`.
#[tokio::test]
async fn mercadolibre_reads_variations_through_their_item() {
    let answer = ok(json!([
        { "code": 200, "body": { "id": "MLA1", "available_quantity": 9, "variations": [
            { "id": 174997747229_u64, "available_quantity": 4 }, { "id": 174997747230_u64, "available_quantity": 5 }
        ] } },
        { "code": 200, "body": { "id": "MLA2", "available_quantity": 1 } }
    ]));
    let platform = Platform::start(vec![answer]).await;
    let channel = mercadolibre(&platform);
    let asked = ["MLA1/174997747229", "MLA1/174997747231", "MLA2"];
    let shown = channel.shown_quantities(&asked).await.expect("read");
    assert_eq!(shown.get("MLA1/174997747229"), Some(&4));
    assert_eq!(shown.get("MLA1/174997747231"), None, "a variation the item no longer has shows nothing");
    assert_eq!(shown.get("MLA2"), Some(&1));
    let requests = platform.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].query.as_deref(),
        Some("ids=MLA1%2CMLA2&attributes=id%2Cavailable_quantity%2Cvariations"),
        "each item once, with its variations"
    );
}
