//! The eBay adapter against an eBay played over real HTTP (axum on 127.0.0.1:0): the Sell
//! Inventory API's `bulk_update_price_quantity` and `getOffers`, and the OAuth token endpoint,
//! with the request and answer shapes of `docs/channels/ebay.md`. The server records every
//! request and answers each by the next scripted behavior, else with success. It keeps per SKU
//! an inventory item's ship-to quantity and one offer (published, `availableQuantity` 10 unless
//! seeded otherwise), and shows a buyer their minimum, as eBay does.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::marketplace_support::{accepted, form_fields, header, publish_on};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use catalog_publish::marketplace::ebay::{EbayChannel, EbayConfig, THROTTLED_WAIT};
use catalog_publish::{ChannelAdapter, Publish, Secret, Verdict};
use serde_json::{json, Value};

const BULK_UPDATE_PATH: &str = "/sell/inventory/v1/bulk_update_price_quantity";
const OFFERS_PATH: &str = "/sell/inventory/v1/offer";
/// What a SKU's offer and its inventory item hold before anything is sent.
const SEEDED_QUANTITY: i64 = 10;
const TOKEN_PATH: &str = "/identity/v1/oauth2/token";
/// `Basic base64("ebay-client:ebay-secret")`.
const BASIC_AUTHORIZATION: &str = "Basic ZWJheS1jbGllbnQ6ZWJheS1zZWNyZXQ=";
const SCOPE: &str = "https://api.ebay.com/oauth/api_scope/sell.inventory";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// How the API answers one request.
#[derive(Debug, Clone)]
enum Api {
    /// 207 with `statusCode` 400 (errorId 25709) for this SKU and 200 for the others, the
    /// entries in the reverse of request order.
    RejectSku(&'static str),
    /// 429 with eBay's errorId 2001 body, and `Retry-After` when given.
    Throttle(Option<&'static str>),
    /// 401 errorId 1001: the access token expired.
    Expired,
    /// 403 errorId 1100 "Access denied", as eBay was seen to answer an expired token.
    AccessDenied,
    /// 400 for the whole request (errorId 25709).
    RejectRequest,
    /// 500 errorId 25001.
    ServerError,
}

/// How the token endpoint answers one request.
#[derive(Debug, Clone)]
enum Token {
    /// 400 `invalid_grant`: the refresh token is no longer good.
    Refuse,
    /// The request is taken and never answered.
    Hang,
}

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    traceparent: Option<String>,
    body: String,
}

/// How `getOffers` answers one request.
#[derive(Debug, Clone)]
enum Lookup {
    /// 500 errorId 25001 for this SKU's lookup.
    ServerError(&'static str),
    /// This SKU's page names a next page on another host (where nothing listens).
    NextElsewhere(&'static str),
}

/// A SKU's one offer on eBay.
#[derive(Debug, Clone)]
struct Offer {
    offer_id: String,
    status: &'static str,
    available_quantity: i64,
}

#[derive(Default)]
struct Shared {
    api: VecDeque<Api>,
    token: VecDeque<Token>,
    lookups: VecDeque<Lookup>,
    requests: Vec<Recorded>,
    n_issued: u64,
    /// Token requests taken and never answered.
    n_hung: u64,
    /// Per SKU: its inventory item's `shipToLocationAvailability.quantity` and its offer.
    items: HashMap<String, (i64, Offer)>,
    /// How long each `getOffers` takes to answer.
    lookup_delay: Duration,
    /// `getOffers` requests being answered now, and the most there were at once.
    lookups_in_flight: (usize, usize),
}

impl Shared {
    /// A SKU's item, seeded on first sight with a published offer capped at 10.
    fn item(&mut self, sku: &str) -> &mut (i64, Offer) {
        self.items.entry(sku.to_owned()).or_insert_with(|| {
            let offer =
                Offer { offer_id: format!("offer-{sku}"), status: "PUBLISHED", available_quantity: SEEDED_QUANTITY };
            (SEEDED_QUANTITY, offer)
        })
    }

    /// Sets one request's quantities, as eBay would, and answers its entries: one for the
    /// inventory item, one per offer. An offer that is not the SKU's published one is refused.
    fn update(&mut self, request: &Value) -> Vec<Value> {
        let sku = request["sku"].as_str().expect("a sku").to_owned();
        let quantity = request["shipToLocationAvailability"]["quantity"].as_i64().expect("an integer quantity");
        let offers = request.get("offers").map(|offers| offers.as_array().expect("offers[]").clone());
        let item = self.item(&sku);
        item.0 = quantity;
        let mut entries = vec![json!({"statusCode": 200, "sku": sku})];
        for offer in offers.unwrap_or_default() {
            let offer_id = offer["offerId"].as_str().expect("an offerId");
            let available = offer["availableQuantity"].as_i64().expect("an integer availableQuantity");
            assert_eq!(offer.as_object().expect("an offer").len(), 2, "offerId and availableQuantity only: {offer}");
            if item.1.offer_id == offer_id && item.1.status == "PUBLISHED" {
                item.1.available_quantity = available;
                entries.push(json!({"statusCode": 200, "sku": sku, "offerId": offer_id}));
            } else {
                entries.push(json!({"statusCode": 404, "sku": sku, "offerId": offer_id,
                    "errors": [{"errorId": 25713, "domain": "API_INVENTORY", "category": "REQUEST",
                        "message": "This Offer is not available."}]}));
            }
        }
        entries
    }

    /// What a buyer sees: the lower of the item's quantity and its published offer's.
    fn listing(&mut self, sku: &str) -> i64 {
        let (ship_to, offer) = self.item(sku);
        (*ship_to).min(offer.available_quantity)
    }
}

struct Ebay {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

fn error_body(error_id: u64, domain: &str, message: &str) -> Value {
    json!({"errors": [{"errorId": error_id, "domain": domain, "category": "REQUEST", "message": message,
                       "longMessage": message}]})
}

/// Every request lands here, recorded whatever its method and path, so a wrong one shows in
/// the test's assertion rather than as a bare 404.
async fn answer(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
    if method == Method::POST && uri.path() == TOKEN_PATH {
        let hangs = {
            let mut shared = shared.lock().expect("eBay state");
            let hangs = matches!(shared.token.front(), Some(Token::Hang));
            if hangs {
                shared.token.pop_front();
                shared.n_hung += 1;
            }
            hangs
        };
        if hangs {
            return std::future::pending().await;
        }
    }
    if method == Method::GET && uri.path() == OFFERS_PATH {
        let delay = {
            let mut shared = shared.lock().expect("eBay state");
            let (now, most) = &mut shared.lookups_in_flight;
            *now += 1;
            *most = (*most).max(*now);
            shared.lookup_delay
        };
        tokio::time::sleep(delay).await;
        shared.lock().expect("eBay state").lookups_in_flight.0 -= 1;
    }
    let mut shared = shared.lock().expect("eBay state");
    shared.requests.push(Recorded {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        authorization: header(&headers, "authorization"),
        content_type: header(&headers, "content-type"),
        traceparent: header(&headers, "traceparent"),
        body: body.clone(),
    });
    match (method, uri.path()) {
        (Method::POST, TOKEN_PATH) => match shared.token.pop_front() {
            Some(Token::Refuse) => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant", "error_description": "the provided authorization refresh token is invalid or was issued to another client"})),
            )
                .into_response(),
            Some(Token::Hang) => unreachable!("a hanging token request is never answered"),
            None => {
                shared.n_issued += 1;
                let access_token = format!("v^1.1#i^1#token-{}", shared.n_issued);
                axum::Json(json!({"access_token": access_token, "expires_in": 7200, "token_type": "User Access Token"}))
                    .into_response()
            }
        },
        (Method::GET, OFFERS_PATH) => {
            let query = uri.query().unwrap_or_default();
            let sku = query.strip_prefix("sku=").expect("getOffers asks by sku").to_owned();
            assert!(!sku.contains('&'), "only sku is asked: {query}");
            if let Some(Lookup::ServerError(failing)) = shared.lookups.front().cloned() {
                if failing == sku {
                    shared.lookups.pop_front();
                    let body = axum::Json(error_body(25001, "API_INVENTORY", "A system error has occurred."));
                    return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
                }
            }
            if let Some(Lookup::NextElsewhere(elsewhere)) = shared.lookups.front().cloned() {
                if elsewhere == sku {
                    shared.lookups.pop_front();
                    let next = format!("http://127.0.0.2:9{OFFERS_PATH}?{query}&offset=25");
                    return axum::Json(json!({"offers": [], "limit": 25, "next": next, "total": 30})).into_response();
                }
            }
            let (_, offer) = shared.item(&sku).clone();
            let offers = json!([{"offerId": offer.offer_id, "sku": sku, "marketplaceId": "EBAY_US",
                "format": "FIXED_PRICE", "status": offer.status, "availableQuantity": offer.available_quantity}]);
            axum::Json(json!({"href": format!("{OFFERS_PATH}?{query}"), "limit": 25, "offers": offers, "size": 1,
                "total": 1}))
            .into_response()
        }
        (Method::POST, BULK_UPDATE_PATH) => {
            let requests = serde_json::from_str::<Value>(&body).expect("a JSON body")["requests"]
                .as_array()
                .expect("requests[]")
                .clone();
            let skus: Vec<String> =
                requests.iter().map(|request| request["sku"].as_str().expect("a sku").to_owned()).collect();
            match shared.api.pop_front() {
                None => {
                    let responses: Vec<Value> = requests.iter().flat_map(|request| shared.update(request)).collect();
                    axum::Json(json!({"responses": responses})).into_response()
                }
                Some(Api::RejectSku(rejected)) => {
                    let responses: Vec<Value> = requests
                        .iter()
                        .zip(&skus)
                        .rev()
                        .flat_map(|(request, sku)| {
                            if sku != rejected {
                                return shared.update(request);
                            }
                            vec![json!({"statusCode": 400, "sku": sku,
                                "errors": [{"errorId": 25709, "domain": "API_INVENTORY", "category": "REQUEST",
                                    "message": "Invalid value for shipToLocationAvailability.quantity.",
                                    "parameters": [{"name": "fieldName", "value": "shipToLocationAvailability.quantity"}]}]})]
                        })
                        .collect();
                    (StatusCode::MULTI_STATUS, axum::Json(json!({"responses": responses}))).into_response()
                }
                Some(Api::Throttle(retry_after)) => {
                    let body = axum::Json(error_body(2001, "ACCESS", "Too many requests."));
                    match retry_after {
                        Some(value) => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", value)], body).into_response(),
                        None => (StatusCode::TOO_MANY_REQUESTS, body).into_response(),
                    }
                }
                Some(Api::Expired) => {
                    (StatusCode::UNAUTHORIZED, axum::Json(error_body(1001, "OAuth", "Invalid access token")))
                        .into_response()
                }
                Some(Api::AccessDenied) => {
                    let body = json!({"errors": [{"errorId": 1100, "domain": "ACCESS", "category": "REQUEST",
                        "message": "Access denied", "longMessage": "Insufficient permissions to fulfill the request."}]});
                    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
                }
                Some(Api::RejectRequest) => (
                    StatusCode::BAD_REQUEST,
                    axum::Json(error_body(25709, "API_INVENTORY", "Invalid value for requests.")),
                )
                    .into_response(),
                Some(Api::ServerError) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(error_body(25001, "API_INVENTORY", "A system error has occurred.")),
                )
                    .into_response(),
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

impl Ebay {
    async fn start(api: Vec<Api>, token: Vec<Token>) -> Self {
        let shared = Arc::new(Mutex::new(Shared { api: api.into(), token: token.into(), ..Shared::default() }));
        let app = Router::new().fallback(answer).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind eBay");
        let address = listener.local_addr().expect("address");
        // The server lives as long as the test's runtime.
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, shared }
    }

    fn channel(&self) -> EbayChannel {
        self.channel_timing_out_after(Duration::from_secs(5))
    }

    /// A channel whose requests, to the token endpoint too, are given up after `request_timeout`.
    fn channel_timing_out_after(&self, request_timeout: Duration) -> EbayChannel {
        let config = EbayConfig {
            base_url: format!("http://{}", self.address),
            token_url: format!("http://{}{TOKEN_PATH}", self.address),
            client_id: "ebay-client".to_owned(),
            client_secret: Secret::new("ebay-secret"),
            refresh_token: Secret::new("v^1.1#i^1#refresh"),
        };
        EbayChannel::new(config, request_timeout, 4).expect("HTTP client")
    }

    fn requests_to(&self, path: &str) -> Vec<Recorded> {
        let shared = self.shared.lock().expect("eBay state");
        shared.requests.iter().filter(|request| request.path == path).cloned().collect()
    }

    fn n_hung(&self) -> u64 {
        self.shared.lock().expect("eBay state").n_hung
    }

    fn n_requests(&self) -> usize {
        self.shared.lock().expect("eBay state").requests.len()
    }

    /// What a buyer sees of `sku` on eBay.
    fn listing(&self, sku: &str) -> i64 {
        self.shared.lock().expect("eBay state").listing(sku)
    }

    /// `sku`'s offer is not published: eBay's `offers[]` cannot address it.
    fn unpublish(&self, sku: &str) {
        self.shared.lock().expect("eBay state").item(sku).1.status = "UNPUBLISHED";
    }

    fn fail_lookup(&self, sku: &'static str) {
        self.shared.lock().expect("eBay state").lookups.push_back(Lookup::ServerError(sku));
    }

    fn next_page_elsewhere(&self, sku: &'static str) {
        self.shared.lock().expect("eBay state").lookups.push_back(Lookup::NextElsewhere(sku));
    }
}

/// An item version of `sku` at catalog quantity 12, offered to eBay as `quantity` by the rules.
fn publish(sku: &str, quantity: i64, traceparent: Option<&str>) -> Publish {
    publish_on("ebay", sku, sku, quantity, traceparent)
}

/// The token request is eBay's refresh-token grant: a form with the refresh token and the
/// sell.inventory scope, the client authenticated by HTTP Basic.
fn assert_token_request(request: &Recorded) {
    assert_eq!((&request.method, request.query.as_deref()), (&Method::POST, None));
    assert_eq!(request.authorization.as_deref(), Some(BASIC_AUTHORIZATION));
    assert_eq!(request.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    let expected = [("grant_type", "refresh_token"), ("refresh_token", "v^1.1#i^1#refresh"), ("scope", SCOPE)];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    assert_eq!(form_fields(&request.body), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_request_follows_the_documentation() {
    let ebay = Ebay::start(vec![], vec![]).await;
    let channel = ebay.channel();
    assert_eq!(channel.max_batch(), 25);
    let sent = publish("ABC-1", 7, Some(TRACEPARENT));
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!(answer.attempts.len(), 1);
    assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&sent), Some(200)));
    assert_eq!(answer.pause, None);

    let tokens = ebay.requests_to(TOKEN_PATH);
    assert_eq!(tokens.len(), 1);
    assert_token_request(&tokens[0]);
    let updates = ebay.requests_to(BULK_UPDATE_PATH);
    assert_eq!(updates.len(), 1);
    let update = &updates[0];
    assert_eq!((&update.method, update.query.as_deref()), (&Method::POST, None));
    assert_eq!(update.authorization.as_deref(), Some("Bearer v^1.1#i^1#token-1"));
    assert_eq!(update.content_type.as_deref(), Some("application/json"));
    assert_eq!(update.traceparent.as_deref(), Some(TRACEPARENT));
    // The rules' quantity (7), not the catalog's (12).
    let body: Value = serde_json::from_str(&update.body).expect("JSON body");
    assert_eq!(
        body,
        json!({"requests": [{"sku": "ABC-1", "shipToLocationAvailability": {"quantity": 7},
                             "offers": [{"offerId": "offer-ABC-1", "availableQuantity": 7}]}]})
    );
    // The published offer's id was read first, with the same token.
    let lookups = ebay.requests_to(OFFERS_PATH);
    assert_eq!(lookups.len(), 1);
    assert_eq!((&lookups[0].method, lookups[0].query.as_deref()), (&Method::GET, Some("sku=ABC-1")));
    assert_eq!(lookups[0].authorization.as_deref(), Some("Bearer v^1.1#i^1#token-1"));
    assert_eq!(ebay.listing("ABC-1"), 7);

    // The access token and the offer's id are kept for the next request.
    channel.send(&[publish("ABC-1", 6, None)]).await;
    assert_eq!(channel.tokens_fetched().await, 1);
    assert_eq!(ebay.requests_to(BULK_UPDATE_PATH)[1].traceparent, None);
    assert_eq!(ebay.requests_to(OFFERS_PATH).len(), 1, "the offer ids are cached");
}

/// eBay shows a buyer the lower of the inventory item's quantity and the published offer's
/// `availableQuantity`: an offer capped at 10 must be raised with the item, or 50 shows as 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_published_offer_is_raised_with_the_inventory_item() {
    let ebay = Ebay::start(vec![], vec![]).await;
    let channel = ebay.channel();
    assert_eq!(ebay.listing("CAP-1"), 10, "the offer starts capped at 10");
    let sent = publish("CAP-1", 50, None);
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&sent), Some(200)));
    assert_eq!(ebay.listing("CAP-1"), 50, "the buyer sees what was published");
    let sent = publish("CAP-1", 3, None);
    assert_eq!(channel.send(std::slice::from_ref(&sent)).await.attempts[0].verdict, accepted(&sent));
    assert_eq!(ebay.listing("CAP-1"), 3);
}

/// A SKU without a published offer sends only its inventory item; a SKU whose offer lookup
/// fails is retried alone, and the others go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_unpublished_offer_is_left_alone_and_a_failed_lookup_fails_its_sku_alone() {
    let ebay = Ebay::start(vec![], vec![]).await;
    ebay.unpublish("DRAFT-1");
    ebay.fail_lookup("DOWN-1");
    let channel = ebay.channel();
    let batch = [publish("DRAFT-1", 4, None), publish("DOWN-1", 5, None), publish("LIVE-1", 6, None)];
    let answer = channel.send(&batch).await;
    let updates = ebay.requests_to(BULK_UPDATE_PATH);
    assert_eq!(updates.len(), 1);
    let body: Value = serde_json::from_str(&updates[0].body).expect("JSON body");
    assert_eq!(
        body,
        json!({"requests": [
            {"sku": "DRAFT-1", "shipToLocationAvailability": {"quantity": 4}},
            {"sku": "LIVE-1", "shipToLocationAvailability": {"quantity": 6},
             "offers": [{"offerId": "offer-LIVE-1", "availableQuantity": 6}]},
        ]})
    );
    assert_eq!(answer.attempts[0].verdict, accepted(&batch[0]));
    assert_eq!(answer.attempts[2].verdict, accepted(&batch[2]));
    assert_eq!(answer.attempts[1].status, Some(500));
    assert!(
        matches!(&answer.attempts[1].verdict, Verdict::Retry { reason: "server_error", error } if error.contains("25001")),
        "{:?}",
        answer.attempts[1]
    );
    assert_eq!(ebay.listing("LIVE-1"), 6);
    // The next send reads DOWN-1's offers again and raises its listing.
    let sent = publish("DOWN-1", 5, None);
    assert_eq!(channel.send(std::slice::from_ref(&sent)).await.attempts[0].verdict, accepted(&sent));
    assert_eq!(ebay.listing("DOWN-1"), 5);
}

/// A send's SKUs whose offers are not cached (after a start, as their ids expire) are looked
/// up several at once: one after another, 25 of them outlasted the request timeout, and the
/// send was recorded `timeout` though nothing had been sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_offers_of_a_cold_batch_are_looked_up_several_at_once() {
    let ebay = Ebay::start(vec![], vec![]).await;
    ebay.shared.lock().expect("eBay state").lookup_delay = Duration::from_millis(200);
    let channel = ebay.channel();
    let batch: Vec<Publish> = (0..25).map(|n| publish(&format!("SKU-{n}"), 5, None)).collect();
    let sent = channel.send(&batch).await;
    assert!(sent.attempts.iter().all(|attempt| matches!(attempt.verdict, Verdict::Answered(_))), "{sent:?}");
    assert_eq!(ebay.requests_to(BULK_UPDATE_PATH).len(), 1);
    let most = ebay.shared.lock().expect("eBay state").lookups_in_flight.1;
    assert!((2..=catalog_publish::marketplace::ebay::LOOKUPS_AT_ONCE).contains(&most), "{most} at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_batch_is_one_request_and_a_rejected_sku_fails_alone() {
    let ebay = Ebay::start(vec![Api::RejectSku("SKU-2")], vec![]).await;
    let batch = [publish("SKU-1", 5, None), publish("SKU-2", 0, None), publish("SKU-3", 2, Some(TRACEPARENT))];
    let answer = ebay.channel().send(&batch).await;

    let updates = ebay.requests_to(BULK_UPDATE_PATH);
    assert_eq!(updates.len(), 1, "one request for the batch");
    let body: Value = serde_json::from_str(&updates[0].body).expect("JSON body");
    let request = |sku: &str, quantity: i64| {
        json!({"sku": sku, "shipToLocationAvailability": {"quantity": quantity},
               "offers": [{"offerId": format!("offer-{sku}"), "availableQuantity": quantity}]})
    };
    assert_eq!(body, json!({"requests": [request("SKU-1", 5), request("SKU-2", 0), request("SKU-3", 2)]}));
    assert_eq!(updates[0].traceparent.as_deref(), Some(TRACEPARENT), "the first trace in the batch");

    // Answered in reverse order: matched by SKU, one attempt per publish in request order.
    let attempts: Vec<_> = answer.attempts.iter().map(|attempt| (&attempt.verdict, attempt.status)).collect();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0], (&accepted(&batch[0]), Some(200)));
    assert_eq!(attempts[2], (&accepted(&batch[2]), Some(200)));
    let Verdict::DeadLetter { reason, error, body } = attempts[1].0 else {
        panic!("SKU-2 is dead-lettered, not {:?}", attempts[1]);
    };
    assert_eq!(attempts[1].1, Some(400));
    assert_eq!(
        (reason.as_str(), error.as_str()),
        ("rejected_400", "errorId 25709: Invalid value for shipToLocationAvailability.quantity.")
    );
    let body: Value = serde_json::from_str(body.as_deref().expect("a body")).expect("the entry as JSON");
    assert_eq!(
        (&body["sku"], &body["statusCode"], &body["errors"][0]["errorId"]),
        (&json!("SKU-2"), &json!(400), &json!(25709))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_throttling_waits_as_told() {
    let ebay = Ebay::start(vec![Api::Throttle(Some("7")), Api::Throttle(None)], vec![]).await;
    let channel = ebay.channel();
    let batch = [publish("SKU-1", 5, None), publish("SKU-2", 4, None)];
    for expected in [Duration::from_secs(7), THROTTLED_WAIT] {
        let answer = channel.send(&batch).await;
        let verdicts: Vec<_> = answer.attempts.iter().map(|attempt| (&attempt.verdict, attempt.status)).collect();
        let throttled = (&Verdict::Throttled { retry_after: expected }, Some(429));
        assert_eq!(verdicts, [throttled, throttled]);
    }
    assert_eq!(THROTTLED_WAIT, Duration::from_secs(60));
    // A request throttled whole says nothing of the SKUs' offers: their ids are kept, not
    // looked up again into the throttled quota.
    let answer = channel.send(&batch).await;
    assert_eq!(
        answer.attempts.iter().map(|attempt| &attempt.verdict).collect::<Vec<_>>(),
        [&accepted(&batch[0]), &accepted(&batch[1])]
    );
    assert_eq!(ebay.requests_to(OFFERS_PATH).len(), 2, "each SKU's offers read once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_expired_token_is_refreshed_once_and_the_request_sent_again() {
    let ebay = Ebay::start(vec![Api::Expired], vec![]).await;
    let channel = ebay.channel();
    let sent = publish("ABC-1", 7, None);
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&sent), Some(200)));
    assert_eq!(channel.tokens_fetched().await, 2);
    let tokens = ebay.requests_to(TOKEN_PATH);
    assert_eq!(tokens.len(), 2);
    // eBay does not rotate refresh tokens: both refreshes present the configured one.
    tokens.iter().for_each(assert_token_request);
    let updates = ebay.requests_to(BULK_UPDATE_PATH);
    let authorizations: Vec<_> = updates.iter().map(|update| update.authorization.as_deref()).collect();
    assert_eq!(authorizations, [Some("Bearer v^1.1#i^1#token-1"), Some("Bearer v^1.1#i^1#token-2")]);
    assert_eq!(updates[0].body, updates[1].body, "the same request sent again");
}

/// eBay was seen to answer an expired token with 403 errorId 1100 "Access denied" rather than
/// 401 (`docs/channels/ebay.md`): a new token is fetched once and the request sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_access_denied_to_a_token_is_refreshed_once_and_the_request_sent_again() {
    let ebay = Ebay::start(vec![Api::AccessDenied], vec![]).await;
    let channel = ebay.channel();
    let sent = publish("ABC-1", 7, None);
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&sent), Some(200)));
    assert_eq!(channel.tokens_fetched().await, 2);
    let updates = ebay.requests_to(BULK_UPDATE_PATH);
    let authorizations: Vec<_> = updates.iter().map(|update| update.authorization.as_deref()).collect();
    assert_eq!(authorizations, [Some("Bearer v^1.1#i^1#token-1"), Some("Bearer v^1.1#i^1#token-2")]);
    assert_eq!(updates[0].body, updates[1].body, "the same request sent again");
}

/// A token eBay still denies after a new one was fetched lacks the scope, or the seller
/// revoked it: an operator's problem, retried until it is fixed, with one refresh per send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_access_denied_after_a_refresh_is_unauthorized() {
    let ebay = Ebay::start(vec![Api::AccessDenied, Api::AccessDenied], vec![]).await;
    let channel = ebay.channel();
    let answer = channel.send(&[publish("ABC-1", 7, None)]).await;
    assert_eq!(answer.attempts[0].status, Some(403));
    assert!(
        matches!(&answer.attempts[0].verdict, Verdict::Blocked { reason: "unauthorized", error, .. } if error.contains("errorId 1100")),
        "{:?}",
        answer.attempts[0]
    );
    assert_eq!((channel.tokens_fetched().await, ebay.requests_to(BULK_UPDATE_PATH).len()), (2, 2), "refreshed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_still_expired_after_a_refresh_is_unauthorized() {
    let ebay = Ebay::start(vec![Api::Expired, Api::Expired], vec![]).await;
    let channel = ebay.channel();
    let answer = channel.send(&[publish("ABC-1", 7, None)]).await;
    assert_eq!(answer.attempts[0].status, Some(401));
    assert!(
        matches!(&answer.attempts[0].verdict, Verdict::Blocked { reason: "unauthorized", error, .. } if error.contains("errorId 1001")),
        "{:?}",
        answer.attempts[0]
    );
    assert_eq!((channel.tokens_fetched().await, ebay.requests_to(BULK_UPDATE_PATH).len()), (2, 2), "refreshed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_refused_refresh_blocks_the_channel_as_token_refused() {
    let ebay = Ebay::start(vec![], vec![Token::Refuse]).await;
    let channel = ebay.channel();
    let answer = channel.send(&[publish("SKU-1", 7, None), publish("SKU-2", 3, None)]).await;
    assert_eq!(answer.attempts.len(), 2);
    for attempt in &answer.attempts {
        assert_eq!(attempt.status, None);
        assert!(
            matches!(&attempt.verdict, Verdict::Blocked { reason: "token_refused", error, .. } if error.contains("invalid_grant")),
            "{attempt:?}"
        );
    }
    assert_eq!(ebay.requests_to(BULK_UPDATE_PATH).len(), 0, "nothing sent without a token");
    assert_eq!(ebay.n_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_rejected_request_is_dead_lettered_with_message_and_body() {
    let ebay = Ebay::start(vec![Api::RejectRequest], vec![]).await;
    let answer = ebay.channel().send(&[publish("ABC-1", 7, None)]).await;
    let expected_body = error_body(25709, "API_INVENTORY", "Invalid value for requests.");
    let Verdict::DeadLetter { reason, error, body } = &answer.attempts[0].verdict else {
        panic!("dead-lettered, not {:?}", answer.attempts[0]);
    };
    assert_eq!((reason.as_str(), error.as_str()), ("rejected_400", "errorId 25709: Invalid value for requests."));
    let body: Value = serde_json::from_str(body.as_deref().expect("a body")).expect("eBay's body");
    assert_eq!((body, answer.attempts[0].status), (expected_body, Some(400)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_server_error_is_retried() {
    let ebay = Ebay::start(vec![Api::ServerError], vec![]).await;
    let channel = ebay.channel();
    let answer = channel.send(&[publish("ABC-1", 7, None)]).await;
    assert_eq!(answer.attempts[0].status, Some(500));
    assert!(
        matches!(&answer.attempts[0].verdict, Verdict::Retry { reason: "server_error", error } if error.contains("25001")),
        "{:?}",
        answer.attempts[0]
    );
    // And the next attempt goes through with the same token.
    let sent = publish("ABC-1", 7, None);
    assert_eq!(channel.send(std::slice::from_ref(&sent)).await.attempts[0].verdict, accepted(&sent));
    assert_eq!(channel.tokens_fetched().await, 1);
}

/// The access token goes with a next page's request: a `getOffers` page naming its next page
/// on another host is not followed there, and its SKU is retried alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_next_page_of_offers_on_another_host_is_not_followed() {
    let ebay = Ebay::start(vec![], vec![]).await;
    ebay.next_page_elsewhere("AWAY-1");
    let channel = ebay.channel();
    let batch = [publish("AWAY-1", 4, None), publish("HOME-1", 6, None)];
    let answer = channel.send(&batch).await;
    assert!(
        matches!(&answer.attempts[0].verdict, Verdict::Retry { reason: "unexpected_answer", error } if error.contains("127.0.0.2")),
        "{:?}",
        answer.attempts[0]
    );
    assert_eq!(answer.attempts[1].verdict, accepted(&batch[1]));
    assert_eq!(ebay.listing("HOME-1"), 6);
}

/// A channel that knows listings by SKU alone asks the store which SKUs several tenants hold
/// before it sends (decision 0056). While the store cannot tell, nothing of a round is sent
/// unchecked, and the round's claims are given back: it is claimed and asked about again at
/// the next poll, not after its 60 s lease, and sent once the store answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_round_is_given_back_unsent_while_the_store_cannot_tell_shared_skus() {
    use std::sync::atomic::Ordering::SeqCst;
    let ebay = Ebay::start(vec![], vec![]).await;
    let (store, _dir) = crate::store(&["ebay"]).await;
    crate::set(&*store, 1, "SHARED-1", 7).await;
    let flaky = Arc::new(crate::Flaky::new(Arc::clone(&store)));
    flaky.shared_fails.store(true, SeqCst);
    let mut config = catalog_publish::ChannelConfig::new("ebay");
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    let publisher =
        catalog_publish::ChannelPublisher::new(config, Arc::new(ebay.channel()), flaky.clone(), Arc::new(crate::Quiet));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(publisher.run(shutdown.clone(), tokio_util::sync::CancellationToken::new()));

    let asked_thrice = async {
        while flaky.shared_failed.load(SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), asked_thrice)
        .await
        .expect("the round was claimed again after each refusal, not left leased");
    assert_eq!(ebay.n_requests(), 0, "nothing was sent while the store could not tell");

    flaky.shared_fails.store(false, SeqCst);
    let sent = async {
        while ebay.listing("SHARED-1") != 7 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), sent).await.expect("sent once the store answered");
    shutdown.cancel();
    running.await.expect("publisher task").expect("publisher run");
}

/// A token endpoint that takes the request and never answers is no item's failure, as one
/// that throttles is not: the access token is fetched before the request's timeout starts,
/// and a fetch given up on holds the channel as `token_unavailable`, spending no attempt.
/// Fetched under that timeout, the request's timer fired first, and every item of the batch
/// (up to 25 on eBay) spent an attempt as a `timeout` though no request reached eBay: with
/// one attempt of budget, each was dead-lettered `retries_exhausted` at its first send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebay_token_endpoint_that_never_answers_spends_no_attempt() {
    use catalog_publish::{ChannelConfig, ChannelPublisher};
    use tokio_util::sync::CancellationToken;

    let ebay = Ebay::start(vec![], vec![Token::Hang]).await;
    let (store, _directory) = crate::store(&["ebay"]).await;
    let changes = [("SKU-1", 5), ("SKU-2", 6), ("SKU-3", 7)];
    crate::set_many(&*store, 1, &changes).await;
    let mut config = ChannelConfig::new("ebay");
    config.max_attempts = 1;
    (config.settle, config.max_wait) = (Duration::ZERO, Duration::ZERO);
    config.request_timeout = Duration::from_millis(500);
    // An item whose request went unanswered waits a lease before it is dead-lettered.
    config.lease = Duration::from_secs(2);
    let channel = ebay.channel_timing_out_after(config.request_timeout);
    let outbox: Arc<dyn catalog_store::OutboxStore> = store.clone();
    let publisher = ChannelPublisher::new(config, Arc::new(channel), outbox, Arc::new(crate::Quiet));
    let drained = CancellationToken::new();
    drained.cancel();
    let published = tokio::time::timeout(Duration::from_secs(30), publisher.run(CancellationToken::new(), drained))
        .await
        .expect("the drain ends")
        .expect("publisher run");

    assert_eq!(published, 3, "published once the endpoint answered");
    assert!(store.open_dead_letters(10).await.expect("letters").is_empty(), "nothing dead-lettered");
    assert_eq!(ebay.n_hung(), 1, "the first token request was never answered");
    assert_eq!(ebay.requests_to(BULK_UPDATE_PATH).len(), 1, "one request, once a token came");
    for (sku, quantity) in changes {
        let id = catalog_core::ItemId(crate::item_id(sku).parse().expect("uuid"));
        let trace = store.item_trace(id).await.expect("trace").expect("item");
        // Held once or twice: the endpoint's failure is held 2 s from when the token client
        // gave up on it, a moment after the drain loop did.
        let (published, held) = trace.publish_attempts.split_last().expect("attempts");
        assert_eq!((published.result.as_str(), published.attempt), ("published", 1), "{sku}");
        assert!(!held.is_empty(), "{sku}: held first");
        for attempt in held {
            let error = attempt.error.clone().unwrap_or_default();
            assert_eq!((attempt.result.as_str(), attempt.attempt), ("throttled", 1), "{sku}: {error}");
            assert!(error.starts_with("token_unavailable: "), "{sku}: {error}");
        }
        assert_eq!(ebay.listing(sku), quantity, "{sku}");
    }
}
