//! The Shopify adapter against a shop played over real HTTP (axum on 127.0.0.1:0) the way
//! `docs/channels/shopify.md` documents it: `POST /admin/api/{version}/graphql.json` with
//! `X-Shopify-Access-Token`, the `inventorySetQuantities` mutation with `@idempotent`, answers
//! in HTTP 200 carrying `userErrors` or a `THROTTLED` error and `extensions.cost`, a 401 with a
//! string `errors` for a wrong token. The shop records every request and holds the quantities
//! it set.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::marketplace_support::{header, publish_on};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use catalog_publish::marketplace::shopify::{ShopifyChannel, ShopifyConfig, DEFAULT_API_VERSION};
use catalog_publish::{ChannelAdapter, Publish, Secret, Verdict};
use serde_json::{json, Value};

const TOKEN: &str = "shpat_0123456789abcdef";
const LOCATION: &str = "gid://shopify/Location/124656943";
/// The mutation as the reference notes give it, for 2026-04 and later.
const DOCUMENTED_MUTATION: &str =
    "mutation SetAvailable($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) {
    inventoryAdjustmentGroup { createdAt reason referenceDocumentUri changes { name delta quantityAfterChange } }
    userErrors { code field message }
  }
}";

/// How the shop answers the next request; once the script is spent it sets the quantities.
#[derive(Debug, Clone)]
enum Answer {
    /// Sets the quantities, leaving `available` points in a bucket that a request costs 10 of.
    SetLeaving(u32),
    /// Refuses the quantity at this index with this documented user error; sets none.
    UserError { index: usize, code: &'static str, message: &'static str },
    /// `THROTTLED`: the request would cost `requested` and the bucket holds `available`,
    /// restoring 50 points a second.
    Throttled { requested: u32, available: u32 },
    /// Answers with this status and body.
    Status(u16, &'static str),
}

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    access_token: Option<String>,
    content_type: Option<String>,
    traceparent: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Shop {
    script: VecDeque<Answer>,
    requests: Vec<Recorded>,
    /// inventory item GID → the `available` quantity set at `LOCATION`.
    available: HashMap<String, i64>,
}

fn cost(requested: u32, actual: Value, available: u32, restore_rate: f64) -> Value {
    json!({ "cost": { "requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": {
        "maximumAvailable": 1000.0, "currentlyAvailable": available, "restoreRate": restore_rate } } })
}

async fn graphql(
    State(shop): State<Arc<Mutex<Shop>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut shop = shop.lock().expect("shop state");
    shop.requests.push(Recorded {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        access_token: header(&headers, "x-shopify-access-token"),
        content_type: header(&headers, "content-type"),
        traceparent: header(&headers, "traceparent"),
        body: body.clone(),
    });
    if header(&headers, "x-shopify-access-token").as_deref() != Some(TOKEN) {
        let errors = json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"});
        return (StatusCode::UNAUTHORIZED, axum::Json(errors)).into_response();
    }
    let input = &body["variables"]["input"];
    let quantities = input["quantities"].as_array().cloned().unwrap_or_default();
    // 2026-04 refuses a request without `@idempotent` or a quantity without `changeFromQuantity`.
    let documented = body["query"].as_str().is_some_and(|query| query.contains("@idempotent(key: $idempotencyKey)"))
        && body["variables"]["idempotencyKey"].is_string()
        && quantities.iter().all(|quantity| quantity.get("changeFromQuantity") == Some(&Value::Null));
    if !documented {
        return axum::Json(json!({"errors": [{"message": "not a documented 2026-04 request"}]})).into_response();
    }
    let answer = match shop.script.pop_front() {
        Some(Answer::UserError { index, code, message }) => json!({
            "data": { "inventorySetQuantities": { "inventoryAdjustmentGroup": null, "userErrors": [
                { "code": code, "field": ["input", "quantities", index.to_string(), "inventoryItemId"], "message": message }
            ] } },
            "extensions": cost(10, json!(10), 990, 50.0),
        }),
        Some(Answer::Throttled { requested, available }) => json!({
            "errors": [{ "message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits" } }],
            "extensions": cost(requested, Value::Null, available, 50.0),
        }),
        Some(Answer::Status(status, text)) => {
            return (StatusCode::from_u16(status).expect("valid status"), text).into_response();
        }
        answer @ (Some(Answer::SetLeaving(_)) | None) => {
            let leaving = match answer {
                Some(Answer::SetLeaving(available)) => available,
                _ => 990,
            };
            let mut changes = Vec::new();
            for quantity in &quantities {
                let item = quantity["inventoryItemId"].as_str().unwrap_or_default().to_owned();
                let after = quantity["quantity"].as_i64().unwrap_or_default();
                let before = shop.available.insert(item, after).unwrap_or(0);
                changes.push(json!({ "name": "available", "delta": after - before, "quantityAfterChange": after }));
            }
            json!({
                "data": { "inventorySetQuantities": { "inventoryAdjustmentGroup": {
                    "createdAt": "2026-05-01T10:00:00Z", "reason": input["reason"],
                    "referenceDocumentUri": input["referenceDocumentUri"], "changes": changes },
                    "userErrors": [] } },
                "extensions": cost(10, json!(10), leaving, 100.0),
            })
        }
    };
    axum::Json(answer).into_response()
}

struct FakeShop {
    address: SocketAddr,
    shop: Arc<Mutex<Shop>>,
}

impl FakeShop {
    async fn start(script: Vec<Answer>) -> Self {
        let shop = Arc::new(Mutex::new(Shop { script: script.into(), ..Shop::default() }));
        let app = Router::new().route("/admin/api/{version}/graphql.json", post(graphql)).with_state(Arc::clone(&shop));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind shop");
        let address = listener.local_addr().expect("address");
        // The server lives as long as the test's runtime.
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, shop }
    }

    fn channel(&self, access_token: &str) -> ShopifyChannel {
        let config = ShopifyConfig {
            base_url: format!("http://{}", self.address),
            api_version: DEFAULT_API_VERSION.to_owned(),
            access_token: Secret::new(access_token),
            location_id: LOCATION.to_owned(),
        };
        ShopifyChannel::new(config, Duration::from_secs(5), 4).expect("HTTP client")
    }

    fn requests(&self) -> Vec<Recorded> {
        self.shop.lock().expect("shop state").requests.clone()
    }

    fn available(&self, inventory_item: &str) -> Option<i64> {
        self.shop.lock().expect("shop state").available.get(inventory_item).copied()
    }
}

/// `sku` at catalog quantity 12, offered `quantity` by the channel's rules, on `listing`.
fn publish(sku: &str, listing: &str, quantity: i64) -> Publish {
    publish_on("shopify", sku, listing, quantity, None)
}

fn inventory_item(n: u32) -> String {
    format!("gid://shopify/InventoryItem/{}", 30_322_695 + n)
}

fn idempotency_key(request: &Recorded) -> String {
    request.body["variables"]["idempotencyKey"].as_str().expect("an idempotency key").to_owned()
}

fn quantities(request: &Recorded) -> Vec<(String, i64)> {
    let quantities = request.body["variables"]["input"]["quantities"].as_array().expect("quantities");
    (quantities.iter())
        .map(|quantity| {
            (quantity["inventoryItemId"].as_str().expect("id").to_owned(), quantity["quantity"].as_i64().expect("n"))
        })
        .collect()
}

#[tokio::test]
async fn request_follows_the_documentation_with_the_rule_quantity() {
    let shop = FakeShop::start(vec![]).await;
    let mut sent = publish("ABC-1", &inventory_item(0), 7);
    sent.entry.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
    let answered = shop.channel(TOKEN).send(std::slice::from_ref(&sent)).await;

    let requests = shop.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!((request.path.as_str(), request.query.as_deref()), ("/admin/api/2026-04/graphql.json", None));
    assert_eq!(request.access_token.as_deref(), Some(TOKEN));
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(request.traceparent, sent.entry.traceparent);
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(words(request.body["query"].as_str().expect("a query")), words(DOCUMENTED_MUTATION));
    let key = idempotency_key(request);
    let shape: Vec<usize> = key.split('-').map(str::len).collect();
    assert_eq!(shape, [8, 4, 4, 4, 12], "a UUID: {key}");
    assert_eq!(
        request.body["variables"],
        json!({
            "idempotencyKey": key,
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": format!("gid://catalog-sync/ItemVersion/{}", sent.entry.item.idempotency_key()),
                "quantities": [{ "inventoryItemId": inventory_item(0), "locationId": LOCATION, "quantity": 7, "changeFromQuantity": null }],
            },
        })
    );
    assert_eq!(shop.available(&inventory_item(0)), Some(7), "the rule quantity, not the catalog's 12");
    assert_eq!(answered.attempts.len(), 1);
    assert_eq!(answered.attempts[0].verdict, Verdict::Answered(sent.entry.item.accepted()));
    assert_eq!((answered.attempts[0].status, answered.pause), (Some(200), None));
}

#[tokio::test]
async fn batch_is_one_request_with_one_attempt_per_item_in_order() {
    let shop = FakeShop::start(vec![]).await;
    let batch = [
        publish("ABC-1", &inventory_item(0), 1),
        publish("ABC-2", &inventory_item(1), 2),
        publish("ABC-3", &inventory_item(2), 3),
    ];
    let answered = shop.channel(TOKEN).send(&batch).await;
    let requests = shop.requests();
    assert_eq!(requests.len(), 1, "one request for the batch");
    assert_eq!(quantities(&requests[0]), [(inventory_item(0), 1), (inventory_item(1), 2), (inventory_item(2), 3)]);
    let reference = requests[0].body["variables"]["input"]["referenceDocumentUri"].as_str().expect("uri").to_owned();
    assert_eq!(reference, format!("gid://catalog-sync/PublishBatch/{}", idempotency_key(&requests[0])));
    let verdicts: Vec<Verdict> = answered.attempts.into_iter().map(|attempt| attempt.verdict).collect();
    let expected: Vec<Verdict> = batch.iter().map(|sent| Verdict::Answered(sent.entry.item.accepted())).collect();
    assert_eq!(verdicts, expected);
}

#[tokio::test]
async fn user_error_dead_letters_only_its_item_and_the_rest_go_again_under_a_new_key() {
    let refusal = Answer::UserError {
        index: 1,
        code: "INVALID_INVENTORY_ITEM",
        message: "The specified inventory item could not be found.",
    };
    let shop = FakeShop::start(vec![refusal]).await;
    let channel = shop.channel(TOKEN);
    let mut batch = vec![
        publish("ABC-1", &inventory_item(0), 1),
        publish("ABC-2", &inventory_item(1), 2),
        publish("ABC-3", &inventory_item(2), 3),
    ];
    let answered = channel.send(&batch).await;
    let verdicts: Vec<Verdict> = answered.attempts.iter().map(|attempt| attempt.verdict.clone()).collect();
    let not_set = Verdict::Retry {
        reason: "request_rejected",
        error: "not set: Shopify refused another quantity of the same request".into(),
    };
    let Verdict::DeadLetter { reason, error, body } = &verdicts[1] else { panic!("{verdicts:?}") };
    assert_eq!(
        (reason.as_str(), error.as_str()),
        ("rejected_user_error", "INVALID_INVENTORY_ITEM: The specified inventory item could not be found.")
    );
    let body: Value = serde_json::from_str(body.as_deref().expect("the answer is kept")).expect("JSON");
    assert_eq!(body["data"]["inventorySetQuantities"]["userErrors"][0]["code"], "INVALID_INVENTORY_ITEM");
    assert_eq!((&verdicts[0], &verdicts[2]), (&not_set, &not_set), "Shopify set none of them");
    assert_eq!(shop.available(&inventory_item(0)), None);

    // The drain loop sends the two others again, one failure counted on each.
    batch.remove(1);
    for sent in &mut batch {
        sent.entry.attempts += 1;
    }
    let again = channel.send(&batch).await;
    assert!(again.attempts.iter().all(|attempt| matches!(attempt.verdict, Verdict::Answered(_))), "{again:?}");
    let requests = shop.requests();
    assert_eq!(quantities(&requests[1]), [(inventory_item(0), 1), (inventory_item(2), 3)]);
    assert_ne!(idempotency_key(&requests[0]), idempotency_key(&requests[1]));
    assert_eq!((shop.available(&inventory_item(0)), shop.available(&inventory_item(1))), (Some(1), None));
}

/// A version queued again (republished, or corrected after drift) is a new request to
/// Shopify: under the key of its first send Shopify would answer that send's result and set
/// nothing.
#[tokio::test]
async fn a_version_queued_again_goes_under_a_new_key() {
    let shop = FakeShop::start(vec![Answer::SetLeaving(900), Answer::SetLeaving(900), Answer::SetLeaving(900)]).await;
    let channel = shop.channel(TOKEN);
    let mut batch = [publish("ABC-1", &inventory_item(0), 5)];
    channel.send(&batch).await;
    channel.send(&batch).await;
    batch[0].entry.enqueued_at += chrono::Duration::seconds(90);
    channel.send(&batch).await;
    let keys: Vec<String> = shop.requests().iter().map(idempotency_key).collect();
    assert_eq!(keys[0], keys[1], "the same queued version, sent again");
    assert_ne!(keys[1], keys[2], "queued again");
}

#[tokio::test]
async fn throttling_waits_for_the_bucket_and_a_low_bucket_pauses_the_channel() {
    let shop = FakeShop::start(vec![Answer::Throttled { requested: 752, available: 666 }, Answer::SetLeaving(4)]).await;
    let channel = shop.channel(TOKEN);
    let batch = [publish("ABC-1", &inventory_item(0), 5), publish("ABC-2", &inventory_item(1), 6)];
    let throttled = channel.send(&batch).await;
    // (752 − 666) / 50 points a second.
    let wait = Verdict::Throttled { retry_after: Duration::from_millis(1_720) };
    assert!(
        throttled.attempts.iter().all(|attempt| attempt.verdict == wait && attempt.status == Some(200)),
        "{throttled:?}"
    );

    let answered = channel.send(&batch).await;
    assert!(answered.attempts.iter().all(|attempt| matches!(attempt.verdict, Verdict::Answered(_))), "{answered:?}");
    // The next request costs 10 again and 4 are left, restoring 100 a second.
    assert_eq!(answered.pause, Some(Duration::from_millis(60)));
    let requests = shop.requests();
    assert_eq!(idempotency_key(&requests[0]), idempotency_key(&requests[1]), "a throttled request keeps its key");
}

#[tokio::test]
async fn a_revoked_token_blocks_the_channel_and_server_errors_are_retried() {
    let shop = FakeShop::start(vec![Answer::Status(503, "busy")]).await;
    let sent = [publish("ABC-1", &inventory_item(0), 5)];
    let refused = shop.channel("shpat_revoked").send(&sent).await;
    let Verdict::Blocked { reason, error, .. } = &refused.attempts[0].verdict else { panic!("{refused:?}") };
    assert_eq!((*reason, refused.attempts[0].status), ("unauthorized", Some(401)));
    assert!(error.contains("Invalid API key or access token"), "{error}");

    let failed = shop.channel(TOKEN).send(&sent).await;
    let down = Verdict::Retry { reason: "server_error", error: "HTTP 503: busy".into() };
    assert_eq!((&failed.attempts[0].verdict, failed.attempts[0].status), (&down, Some(503)));
}

#[tokio::test]
async fn listing_that_is_no_inventory_item_is_refused_without_sending_it() {
    let shop = FakeShop::start(vec![]).await;
    let batch = [publish("ABC-1", &inventory_item(0), 5), publish("ABC-2", "ABC-2", 6)];
    let answered = shop.channel(TOKEN).send(&batch).await;
    let requests = shop.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(quantities(&requests[0]), [(inventory_item(0), 5)]);
    assert_eq!(answered.attempts[0].verdict, Verdict::Answered(batch[0].entry.item.accepted()));
    let Verdict::DeadLetter { reason, .. } = &answered.attempts[1].verdict else { panic!("{answered:?}") };
    assert_eq!((reason.as_str(), answered.attempts[1].status), ("rejected_listing", None));
}
