//! The Amazon adapter against a local SP-API over real HTTP: a Listings Items
//! `patchListingsItem` endpoint and a Login with Amazon token endpoint that answer as
//! `docs/channels/amazon.md` documents (ACCEPTED, INVALID with issues, 429 QuotaExceeded with
//! `x-amzn-RateLimit-Limit`, 403 for an expired token, 503), recording every request.

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
use catalog_publish::marketplace::amazon::{AmazonChannel, AmazonConfig, FeedSettings};
use catalog_publish::{ChannelAdapter, Publish, Secret, Verdict};
use serde_json::{json, Value};

const EXPIRED: &str = r#"{"errors":[{"code":"Unauthorized","message":"Access to requested resource is denied.","details":"The access token you provided has expired."}]}"#;
const INVALID: &str = r#"{"sku":"ABC-1","status":"INVALID","submissionId":"f1dc2914-75dd-11ea-bc55-0242ac130003","issues":[{"code":"90220","message":"'size' is required but not supplied.","severity":"ERROR","attributeNames":["size"]}]}"#;
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// How the listings endpoint answers one request; after the script it accepts.
#[derive(Debug, Clone)]
enum Reply {
    Invalid,
    /// 429 `QuotaExceeded` with this `x-amzn-RateLimit-Limit`.
    Throttled(&'static str),
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

#[derive(Debug, Clone)]
struct TokenRequest {
    content_type: Option<String>,
    accept: Option<String>,
    form: String,
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    requests: Vec<Recorded>,
    token_requests: Vec<TokenRequest>,
    /// The token endpoint refuses the refresh token once it has issued this many tokens.
    tokens_before_refusal: Option<usize>,
}

struct SellingPartnerApi {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

async fn token(State(shared): State<Arc<Mutex<Shared>>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut shared = shared.lock().expect("api state");
    shared.token_requests.push(TokenRequest {
        content_type: header(&headers, "content-type"),
        accept: header(&headers, "accept"),
        form: String::from_utf8_lossy(&body).into_owned(),
    });
    let n = shared.token_requests.len();
    if shared.tokens_before_refusal.is_some_and(|limit| n > limit) {
        let refusal = json!({
            "error": "invalid_grant",
            "error_description": "The request has an invalid grant parameter : refresh_token. User may have revoked or didn't grant the permission.",
        });
        return (StatusCode::BAD_REQUEST, axum::Json(refusal)).into_response();
    }
    let answer = json!({
        "access_token": format!("Atza|token-{n}"),
        "token_type": "bearer",
        "expires_in": 3600,
        "refresh_token": "Atzr|refresh",
    });
    axum::Json(answer).into_response()
}

async fn listing(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut shared = shared.lock().expect("api state");
        shared.requests.push(Recorded {
            method,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        shared.script.pop_front()
    };
    let request_id = [("x-amzn-RequestId", "b7c1f0a2-0000-4000-8000-000000000001")];
    match reply {
        None => {
            let accepted = json!({
                "sku": "ABC-1",
                "status": "ACCEPTED",
                "submissionId": "f1dc2914-75dd-11ea-bc55-0242ac130003",
                "issues": [],
            });
            (request_id, [("x-amzn-RateLimit-Limit", "5.0")], axum::Json(accepted)).into_response()
        }
        Some(Reply::Invalid) => (request_id, [("content-type", "application/json")], INVALID).into_response(),
        Some(Reply::Throttled(rate)) => {
            let quota = json!({"errors": [{
                "code": "QuotaExceeded",
                "message": "You exceeded your quota for the requested resource.",
                "details": "",
            }]});
            (StatusCode::TOO_MANY_REQUESTS, request_id, [("x-amzn-RateLimit-Limit", rate)], axum::Json(quota))
                .into_response()
        }
        Some(Reply::Expired) => {
            (StatusCode::FORBIDDEN, [("content-type", "application/json")], EXPIRED).into_response()
        }
        Some(Reply::Status(status)) => StatusCode::from_u16(status).expect("valid status").into_response(),
    }
}

impl SellingPartnerApi {
    async fn start(script: Vec<Reply>) -> Self {
        let shared = Arc::new(Mutex::new(Shared { script: script.into(), ..Shared::default() }));
        let app = Router::new().route("/auth/o2/token", post(token)).fallback(listing).with_state(Arc::clone(&shared));
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

    fn token_requests(&self) -> Vec<TokenRequest> {
        self.shared.lock().expect("api state").token_requests.clone()
    }

    fn channel(&self) -> AmazonChannel {
        AmazonChannel::new(config(self.address, None), Duration::from_secs(5), 4).expect("HTTP client")
    }
}

/// The test seller's channel on a local Selling Partner API at `address` (its token
/// endpoint too), in feeds when `feed` says so.
pub(crate) fn config(address: SocketAddr, feed: Option<FeedSettings>) -> AmazonConfig {
    AmazonConfig {
        base_url: format!("http://{address}"),
        seller_id: "A2SELLER01".into(),
        marketplace_id: "ATVPDKIKX0DER".into(),
        product_type: "SHIRT".into(),
        token_url: format!("http://{address}/auth/o2/token"),
        client_id: "amzn1.application-oa2-client.test".into(),
        client_secret: Secret::new("lwa-secret"),
        refresh_token: Secret::new("Atzr|refresh"),
        feed,
    }
}

/// Item `ABC-1` of tenant `canary` at version 3 holding 12, offered as `listing` at `quantity`.
fn publish(listing: &str, quantity: i64) -> Publish {
    publish_on("amazon", "ABC-1", listing, quantity, Some(TRACEPARENT))
}

#[tokio::test]
async fn amazon_request_follows_the_listings_items_reference() {
    let api = SellingPartnerApi::start(vec![]).await;
    let channel = api.channel();
    // The rules offer 7 of the 12 in stock: 7 is what Amazon must be told.
    let publish = publish("ABC-1 red/L", 7);
    let sent = channel.send(std::slice::from_ref(&publish)).await;
    assert_eq!(sent.attempts.len(), 1);
    assert_eq!((&sent.attempts[0].verdict, sent.attempts[0].status), (&accepted(&publish), Some(200)));
    assert_eq!(sent.pause, None);

    let requests = api.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, Method::PATCH);
    assert_eq!(request.path, "/listings/2021-08-01/items/A2SELLER01/ABC-1%20red%2FL");
    assert_eq!(request.query.as_deref(), Some("marketplaceIds=ATVPDKIKX0DER"));
    assert_eq!(header(&request.headers, "x-amz-access-token").as_deref(), Some("Atza|token-1"));
    assert_eq!(header(&request.headers, "content-type").as_deref(), Some("application/json"));
    assert_eq!(header(&request.headers, "accept").as_deref(), Some("application/json"));
    assert_eq!(header(&request.headers, "traceparent").as_deref(), Some(TRACEPARENT));
    assert!(header(&request.headers, "user-agent").is_some_and(|agent| agent.ends_with("(Language=Rust)")));
    assert!(request.headers.get("authorization").is_none(), "LWA only: no AWS signature");
    assert_eq!(
        request.body,
        json!({
            "productType": "SHIRT",
            "patches": [{
                "op": "merge",
                "path": "/attributes/fulfillment_availability",
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 7}],
            }],
        })
    );

    let token_requests = api.token_requests();
    assert_eq!(token_requests.len(), 1);
    assert_eq!(token_requests[0].content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(token_requests[0].accept.as_deref(), Some("application/json"));
    assert_eq!(
        token_requests[0].form,
        "grant_type=refresh_token&refresh_token=Atzr%7Crefresh&client_id=amzn1.application-oa2-client.test&client_secret=lwa-secret"
    );

    // The access token lives an hour: the next publish reuses it.
    let again = channel.send(std::slice::from_ref(&publish)).await;
    assert_eq!(again.attempts[0].verdict, accepted(&publish));
    assert_eq!(channel.tokens_fetched().await, 1);
    assert_eq!(header(&api.requests()[1].headers, "x-amz-access-token").as_deref(), Some("Atza|token-1"));
}

#[tokio::test]
async fn amazon_throttling_waits_for_the_next_token_of_the_rate_limit() {
    let api = SellingPartnerApi::start(vec![Reply::Throttled("0.5")]).await;
    let sent = api.channel().send(&[publish("ABC-1", 7)]).await;
    // 0.5 requests per second: the bucket holds its next request in 2 s.
    assert_eq!(sent.attempts[0].verdict, Verdict::Throttled { retry_after: Duration::from_secs(2) });
    assert_eq!(sent.attempts[0].status, Some(429));
}

#[tokio::test]
async fn amazon_expired_access_token_is_fetched_again_and_the_request_resent() {
    let api = SellingPartnerApi::start(vec![Reply::Expired]).await;
    let channel = api.channel();
    let publish = publish("ABC-1", 7);
    let sent = channel.send(std::slice::from_ref(&publish)).await;
    assert_eq!((&sent.attempts[0].verdict, sent.attempts[0].status), (&accepted(&publish), Some(200)));
    let tokens: Vec<_> = api
        .requests()
        .iter()
        .map(|request| header(&request.headers, "x-amz-access-token").unwrap_or_default())
        .collect();
    assert_eq!(tokens, ["Atza|token-1", "Atza|token-2"]);
    assert_eq!(api.requests()[0].body, api.requests()[1].body, "the same patch is resent");
    let token_requests = api.token_requests();
    assert_eq!(token_requests.len(), 2);
    assert!(token_requests.iter().all(|request| request.form.starts_with("grant_type=refresh_token&refresh_token=")));
    assert_eq!(channel.tokens_fetched().await, 2);
}

#[tokio::test]
async fn amazon_token_refused_twice_blocks_the_channel_as_unauthorized() {
    let api = SellingPartnerApi::start(vec![Reply::Expired, Reply::Expired]).await;
    let channel = api.channel();
    let sent = channel.send(&[publish("ABC-1", 7)]).await;
    let Verdict::Blocked { reason, error, .. } = &sent.attempts[0].verdict else {
        panic!("expected the channel blocked, got {:?}", sent.attempts[0].verdict);
    };
    assert_eq!(*reason, "unauthorized");
    assert!(error.contains("The access token you provided has expired."), "{error}");
    assert_eq!(sent.attempts[0].status, Some(403));
    assert_eq!(api.requests().len(), 2, "one new token, one more try");
    assert_eq!(channel.tokens_fetched().await, 2);
}

#[tokio::test]
async fn amazon_refused_refresh_token_blocks_the_channel_as_token_refused() {
    let api = SellingPartnerApi::start(vec![Reply::Expired]).await;
    api.refuse_tokens_after(1);
    let sent = api.channel().send(&[publish("ABC-1", 7)]).await;
    let Verdict::Blocked { reason, error, .. } = &sent.attempts[0].verdict else {
        panic!("expected the channel blocked, got {:?}", sent.attempts[0].verdict);
    };
    assert_eq!(*reason, "token_refused");
    assert!(error.contains("invalid_grant"), "{error}");
    assert_eq!(sent.attempts[0].status, None);
    assert_eq!(api.requests().len(), 1, "nothing is sent without a token");
    assert_eq!(api.token_requests().len(), 2);
}

/// Reading back with a refresh token the platform refuses is blocked for an operator, as a
/// send is: it was reported as throttling, and a quiet channel's reconciler, the only one
/// asking, waited and retried and told of a rate problem.
#[tokio::test]
async fn amazon_refused_refresh_token_blocks_a_read_back_for_an_operator() {
    use catalog_core::{Classify, FailureClass};
    use catalog_publish::{LookupReadBack, ReadBackError};
    let api = SellingPartnerApi::start(vec![]).await;
    api.refuse_tokens_after(0);
    let read = api.channel().shown_quantities(&["ABC-1"]).await;
    let Err(error @ ReadBackError::Blocked { reason: "token_refused", .. }) = &read else {
        panic!("expected the read blocked, got {read:?}");
    };
    assert_eq!((error.kind(), error.failure_class()), ("blocked", FailureClass::NeedsOperator));
    assert!(api.requests().is_empty(), "nothing is read without a token");
}

#[tokio::test]
async fn amazon_invalid_submission_is_dead_lettered_with_its_issues() {
    let api = SellingPartnerApi::start(vec![Reply::Invalid]).await;
    let sent = api.channel().send(&[publish("ABC-1", 7)]).await;
    assert_eq!(
        sent.attempts[0].verdict,
        Verdict::DeadLetter {
            reason: "rejected_invalid".into(),
            error: "90220: 'size' is required but not supplied.".into(),
            body: Some(INVALID.into()),
        }
    );
    assert_eq!(sent.attempts[0].status, Some(200));
}

#[tokio::test]
async fn amazon_server_error_is_retried() {
    let api = SellingPartnerApi::start(vec![Reply::Status(503)]).await;
    let sent = api.channel().send(&[publish("ABC-1", 7)]).await;
    assert!(
        matches!(&sent.attempts[0].verdict, Verdict::Retry { reason: "server_error", .. }),
        "{:?}",
        sent.attempts[0].verdict
    );
    assert_eq!(sent.attempts[0].status, Some(503));
}

#[tokio::test]
async fn amazon_sends_one_request_per_sku_and_holds_the_rest_once_throttled() {
    let api = SellingPartnerApi::start(vec![Reply::Status(500), Reply::Throttled("2.0")]).await;
    let batch = [publish("SKU-A", 1), publish("SKU-B", 2), publish("SKU-C", 3), publish("SKU-D", 4)];
    let sent = api.channel().send(&batch).await;
    let verdicts: Vec<String> = sent.attempts.iter().map(|attempt| format!("{:?}", attempt.verdict)).collect();
    assert_eq!(verdicts.len(), 4);
    assert!(verdicts[0].starts_with("Retry { reason: \"server_error\""), "{verdicts:?}");
    assert_eq!(&verdicts[1..], ["Throttled { retry_after: 500ms }"; 3]);
    let paths: Vec<String> = api.requests().iter().map(|request| request.path.clone()).collect();
    assert_eq!(paths, ["/listings/2021-08-01/items/A2SELLER01/SKU-A", "/listings/2021-08-01/items/A2SELLER01/SKU-B"]);
    assert_eq!(api.requests()[1].body["patches"][0]["value"][0]["quantity"], 2);
}
