//! The Walmart adapter against a local Marketplace API over real HTTP: `PUT /v3/inventory`
//! and the `/v3/token` client-credentials endpoint answering as `docs/channels/walmart.md`
//! documents (the stored inventory echoed with the budget headers, 400 `errors`, 429
//! `REQUEST_THRESHOLD_VIOLATED` with `x-next-replenish-time`, 401 for an expired token, 503),
//! recording every request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::marketplace_support::{accepted, header, publish_on};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use catalog_publish::marketplace::walmart::{WalmartChannel, WalmartConfig};
use catalog_publish::{ChannelAdapter, Publish, Secret, Verdict};
use serde_json::{json, Value};

const INVALID: &str = r#"{"errors":[{"code":"INVALID_REQUEST_CONTENT","message":"The value provided for 'quantity' is invalid.","category":"DATA","severity":"ERROR","field":"quantity"}]}"#;
const UNAUTHORIZED: &str = r#"{"errors":[{"code":"UNAUTHORIZED.GMP_GATEWAY_API","field":"UNAUTHORIZED","description":"Unauthorized","info":"Unauthorized token or incorrect authorization header.","severity":"ERROR","category":"DATA","causes":[],"errorIdentifiers":{}}]}"#;
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
/// `Basic base64("walmart-client:walmart-secret")`.
const BASIC: &str = "Basic d2FsbWFydC1jbGllbnQ6d2FsbWFydC1zZWNyZXQ=";

/// How the inventory endpoint answers one request; after the script it stores the quantity
/// with budget to spare.
#[derive(Debug, Clone)]
enum Reply {
    Invalid,
    /// 429 with the next replenishment this long after the answer.
    Throttled(Duration),
    /// 200, but the seller's last request of the window: replenished this long after.
    LastOfBudget(Duration),
    Expired,
    Status(u16),
}

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Value,
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    requests: Vec<Recorded>,
    token_requests: Vec<(HeaderMap, String)>,
    /// The token endpoint refuses the credentials once it has issued this many tokens.
    tokens_before_refusal: Option<usize>,
}

struct MarketplaceApi {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

fn replenished_in(wait: Duration) -> String {
    (chrono::Utc::now() + wait).timestamp_millis().to_string()
}

async fn token(State(shared): State<Arc<Mutex<Shared>>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut shared = shared.lock().expect("api state");
    shared.token_requests.push((headers, String::from_utf8_lossy(&body).into_owned()));
    let n = shared.token_requests.len();
    if shared.tokens_before_refusal.is_some_and(|limit| n > limit) {
        return (StatusCode::UNAUTHORIZED, [("content-type", "application/json")], UNAUTHORIZED).into_response();
    }
    axum::Json(json!({"access_token": format!("eyJ-token-{n}"), "token_type": "Bearer", "expires_in": 900}))
        .into_response()
}

async fn inventory(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = {
        let mut shared = shared.lock().expect("api state");
        shared.requests.push(Recorded {
            method,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers,
            body: body.clone(),
        });
        shared.script.pop_front()
    };
    let json = [("content-type", "application/json")];
    match reply {
        None => (
            [
                ("x-current-token-count", "199".to_owned()),
                ("x-next-replenish-time", replenished_in(Duration::from_secs(60))),
            ],
            axum::Json(body),
        )
            .into_response(),
        Some(Reply::LastOfBudget(wait)) => (
            [("x-current-token-count", "0".to_owned()), ("x-next-replenish-time", replenished_in(wait))],
            axum::Json(body),
        )
            .into_response(),
        Some(Reply::Invalid) => (StatusCode::BAD_REQUEST, json, INVALID).into_response(),
        Some(Reply::Throttled(wait)) => {
            let throttled = json!({"errors": [{
                "code": "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API",
                "category": "REQUEST",
                "severity": "ERROR",
            }]});
            let budget = [("x-current-token-count", "0".to_owned()), ("x-next-replenish-time", replenished_in(wait))];
            (StatusCode::TOO_MANY_REQUESTS, budget, axum::Json(throttled)).into_response()
        }
        Some(Reply::Expired) => (StatusCode::UNAUTHORIZED, json, UNAUTHORIZED).into_response(),
        Some(Reply::Status(status)) => StatusCode::from_u16(status).expect("valid status").into_response(),
    }
}

impl MarketplaceApi {
    async fn start(script: Vec<Reply>) -> Self {
        let shared = Arc::new(Mutex::new(Shared { script: script.into(), ..Shared::default() }));
        let app = Router::new().route("/v3/token", post(token)).fallback(inventory).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind api");
        let address = listener.local_addr().expect("address");
        // The server lives as long as the test's runtime.
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, shared }
    }

    fn refuse_tokens_after(&self, n_issued: usize) {
        self.shared.lock().expect("api state").tokens_before_refusal = Some(n_issued);
    }

    fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().expect("api state").requests.clone()
    }

    fn token_requests(&self) -> Vec<(HeaderMap, String)> {
        self.shared.lock().expect("api state").token_requests.clone()
    }

    fn channel(&self, ship_node: Option<&str>) -> WalmartChannel {
        let config = WalmartConfig {
            base_url: format!("http://{}", self.address),
            ship_node: ship_node.map(str::to_owned),
            token_url: format!("http://{}/v3/token", self.address),
            client_id: "walmart-client".into(),
            client_secret: Secret::new("walmart-secret"),
            feed: None,
        };
        WalmartChannel::new(config, Duration::from_secs(5), 4).expect("HTTP client")
    }
}

/// Item `ABC-1` of tenant `canary` at version 3 holding 12, offered as `listing` at `quantity`.
fn publish(listing: &str, quantity: i64) -> Publish {
    publish_on("walmart", "ABC-1", listing, quantity, Some(TRACEPARENT))
}

/// `8-4-4-4-12` lowercase hex digits, version 7, RFC 9562 variant.
/// Walmart asks for a unique id per request: a random (version 4) UUID in its text form.
fn is_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.iter().map(|group| group.len()).eq([8, 4, 4, 4, 12])
        && value.bytes().all(|byte| byte == b'-' || byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

#[tokio::test]
async fn walmart_request_follows_the_inventory_reference() {
    let api = MarketplaceApi::start(vec![]).await;
    let channel = api.channel(Some("012345"));
    // The rules offer 7 of the 12 in stock: 7 is what Walmart must be told.
    let publish = publish("ABC-1 red/L", 7);
    let sent = channel.send(std::slice::from_ref(&publish)).await;
    assert_eq!(sent.attempts.len(), 1);
    assert_eq!((&sent.attempts[0].verdict, sent.attempts[0].status), (&accepted(&publish), Some(200)));
    assert_eq!(sent.pause, None, "199 requests left");

    let requests = api.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, Method::PUT);
    assert_eq!(request.path, "/v3/inventory");
    assert_eq!(request.query.as_deref(), Some("sku=ABC-1%20red%2FL&shipNode=012345"));
    assert_eq!(header(&request.headers, "wm_sec.access_token").as_deref(), Some("eyJ-token-1"));
    assert_eq!(header(&request.headers, "wm_svc.name").as_deref(), Some("Walmart Marketplace"));
    let correlation_id = header(&request.headers, "wm_qos.correlation_id").unwrap_or_default();
    assert!(is_uuid(&correlation_id), "{correlation_id:?}");
    assert_eq!(header(&request.headers, "content-type").as_deref(), Some("application/json"));
    assert_eq!(header(&request.headers, "accept").as_deref(), Some("application/json"));
    assert_eq!(header(&request.headers, "traceparent").as_deref(), Some(TRACEPARENT));
    assert!(request.headers.get("authorization").is_none(), "the access token header alone authorizes");
    assert_eq!(request.body, json!({"sku": "ABC-1 red/L", "quantity": {"unit": "EACH", "amount": 7}}));

    let token_requests = api.token_requests();
    assert_eq!(token_requests.len(), 1);
    let (token_headers, form) = &token_requests[0];
    assert_eq!(form, "grant_type=client_credentials");
    assert_eq!(header(token_headers, "authorization").as_deref(), Some(BASIC));
    assert_eq!(header(token_headers, "content-type").as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(header(token_headers, "accept").as_deref(), Some("application/json"));
    assert_eq!(header(token_headers, "wm_svc.name").as_deref(), Some("Walmart Marketplace"));
    assert!(header(token_headers, "wm_qos.correlation_id").is_some_and(|id| is_uuid(&id)));

    // The token lives 15 minutes: the next update reuses it, with a correlation id of its own.
    let again = channel.send(std::slice::from_ref(&publish)).await;
    assert_eq!(again.attempts[0].verdict, accepted(&publish));
    assert_eq!(channel.tokens_fetched().await, 1);
    let second = &api.requests()[1];
    assert_eq!(header(&second.headers, "wm_sec.access_token").as_deref(), Some("eyJ-token-1"));
    assert_ne!(header(&second.headers, "wm_qos.correlation_id"), Some(correlation_id));
}

#[tokio::test]
async fn walmart_without_a_ship_node_sets_the_default_one() {
    let api = MarketplaceApi::start(vec![]).await;
    api.channel(None).send(&[publish("97964_KFTest", 10)]).await;
    assert_eq!(api.requests()[0].query.as_deref(), Some("sku=97964_KFTest"));
}

#[tokio::test]
async fn walmart_throttling_waits_until_the_next_replenishment() {
    let api = MarketplaceApi::start(vec![Reply::Throttled(Duration::from_secs(3))]).await;
    let sent = api.channel(None).send(&[publish("ABC-1", 7)]).await;
    let Verdict::Throttled { retry_after } = sent.attempts[0].verdict else {
        panic!("expected throttling, got {:?}", sent.attempts[0].verdict);
    };
    assert!(retry_after > Duration::from_secs(2) && retry_after <= Duration::from_secs(3), "{retry_after:?}");
    assert_eq!(sent.attempts[0].status, Some(429));
    assert_eq!(sent.pause, None, "the verdict holds the channel");
}

#[tokio::test]
async fn walmart_last_request_of_the_budget_pauses_the_channel() {
    let api = MarketplaceApi::start(vec![Reply::LastOfBudget(Duration::from_secs(4))]).await;
    let publish = publish("ABC-1", 7);
    let sent = api.channel(None).send(std::slice::from_ref(&publish)).await;
    assert_eq!(sent.attempts[0].verdict, accepted(&publish));
    let pause = sent.pause.expect("a pause until the replenishment");
    assert!(pause > Duration::from_secs(3) && pause <= Duration::from_secs(4), "{pause:?}");
}

#[tokio::test]
async fn walmart_expired_access_token_is_fetched_again_and_the_request_resent() {
    let api = MarketplaceApi::start(vec![Reply::Expired]).await;
    let channel = api.channel(None);
    let publish = publish("ABC-1", 7);
    let sent = channel.send(std::slice::from_ref(&publish)).await;
    assert_eq!((&sent.attempts[0].verdict, sent.attempts[0].status), (&accepted(&publish), Some(200)));
    let requests = api.requests();
    let tokens: Vec<_> =
        requests.iter().map(|request| header(&request.headers, "wm_sec.access_token").unwrap_or_default()).collect();
    assert_eq!(tokens, ["eyJ-token-1", "eyJ-token-2"]);
    assert_eq!(requests[0].body, requests[1].body, "the same update is resent");
    assert_ne!(
        header(&requests[0].headers, "wm_qos.correlation_id"),
        header(&requests[1].headers, "wm_qos.correlation_id"),
        "each request has its own correlation id"
    );
    let token_requests = api.token_requests();
    assert_eq!(token_requests.len(), 2);
    assert!(token_requests.iter().all(|(headers, form)| form == "grant_type=client_credentials"
        && header(headers, "authorization").as_deref() == Some(BASIC)));
    assert_eq!(channel.tokens_fetched().await, 2);
}

#[tokio::test]
async fn walmart_token_refused_twice_blocks_the_channel_as_unauthorized() {
    let api = MarketplaceApi::start(vec![Reply::Expired, Reply::Expired]).await;
    let sent = api.channel(None).send(&[publish("ABC-1", 7)]).await;
    let Verdict::Blocked { reason, error, .. } = &sent.attempts[0].verdict else {
        panic!("expected the channel blocked, got {:?}", sent.attempts[0].verdict);
    };
    assert_eq!((*reason, sent.attempts[0].status), ("unauthorized", Some(401)));
    assert!(error.contains("UNAUTHORIZED.GMP_GATEWAY_API"), "{error}");
    assert_eq!(api.requests().len(), 2, "one new token, one more try");
}

#[tokio::test]
async fn walmart_refused_credentials_block_the_channel_as_token_refused() {
    let api = MarketplaceApi::start(vec![Reply::Expired]).await;
    api.refuse_tokens_after(1);
    let sent = api.channel(None).send(&[publish("ABC-1", 7)]).await;
    let Verdict::Blocked { reason, .. } = &sent.attempts[0].verdict else {
        panic!("expected the channel blocked, got {:?}", sent.attempts[0].verdict);
    };
    assert_eq!((*reason, sent.attempts[0].status), ("token_refused", None));
    assert_eq!((api.requests().len(), api.token_requests().len()), (1, 2));
}

#[tokio::test]
async fn walmart_rejected_update_is_dead_lettered_with_its_errors() {
    let api = MarketplaceApi::start(vec![Reply::Invalid]).await;
    let sent = api.channel(None).send(&[publish("ABC-1", 7)]).await;
    assert_eq!(
        sent.attempts[0].verdict,
        Verdict::DeadLetter {
            reason: "rejected_400".into(),
            error: "INVALID_REQUEST_CONTENT: The value provided for 'quantity' is invalid.".into(),
            body: Some(INVALID.into()),
        }
    );
    assert_eq!(sent.attempts[0].status, Some(400));
}

#[tokio::test]
async fn walmart_sends_one_request_per_sku_and_holds_the_rest_once_throttled() {
    let script = vec![Reply::Status(503), Reply::Throttled(Duration::from_secs(2))];
    let api = MarketplaceApi::start(script).await;
    let batch = [publish("SKU-A", 1), publish("SKU-B", 2), publish("SKU-C", 3)];
    let sent = api.channel(None).send(&batch).await;
    assert_eq!(sent.attempts.len(), 3);
    assert!(
        matches!(sent.attempts[0].verdict, Verdict::Retry { reason: "server_error", .. }),
        "{:?}",
        sent.attempts[0].verdict
    );
    let Verdict::Throttled { retry_after } = sent.attempts[1].verdict else {
        panic!("expected throttling, got {:?}", sent.attempts[1].verdict);
    };
    assert_eq!((&sent.attempts[2].verdict, sent.attempts[2].status), (&Verdict::Throttled { retry_after }, None));
    let queries: Vec<_> = api.requests().iter().map(|request| request.query.clone().unwrap_or_default()).collect();
    assert_eq!(queries, ["sku=SKU-A", "sku=SKU-B"]);
}
