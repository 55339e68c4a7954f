//! A storefront that plays the contract over real HTTP: it answers each request by the next
//! scripted behavior (then accepts), or with 503 while it is down, remembers every request
//! in arrival order, and holds the newest version and quantity it accepted per item,
//! answering 409 for anything older.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub(crate) enum Behavior {
    /// Answer with this status and an empty body (a 5xx here).
    Status(u16),
    /// Answer with this status and body: a rejection, or a page that is no answer of the
    /// contract's.
    Reject(u16, &'static str),
    /// 429 with `Retry-After` in seconds.
    Throttle(u64),
    /// 429 with this `Retry-After` value (delta-seconds, perhaps with a fraction).
    ThrottleFor(String),
    /// 429 with `Retry-After` the HTTP date this long after the answer (to the second,
    /// rounded down: the wait asked for is up to a second shorter).
    ThrottleUntil(Duration),
    /// 409 saying the storefront holds this version.
    Conflict(u64),
    /// Answer only after this long (past the client's timeout).
    Slow(Duration),
    /// Close the connection without answering.
    Drop,
}

#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) path: String,
    pub(crate) authorization: Option<String>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) traceparent: Option<String>,
    pub(crate) body: Value,
    pub(crate) at: Instant,
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Behavior>,
    /// Every request is answered 503 while set.
    down: bool,
    requests: Vec<Recorded>,
    /// item id → (version, quantity) accepted.
    held: HashMap<String, (u64, i64)>,
}

pub(crate) struct Storefront {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

async fn invalidate(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path((_tenant, item_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let behavior = {
        let mut shared = shared.lock().expect("storefront state");
        shared.requests.push(Recorded {
            path: format!("/v1/tenants/{_tenant}/items/{item_id}/invalidate"),
            authorization: header(&headers, "authorization"),
            idempotency_key: header(&headers, "idempotency-key"),
            content_type: header(&headers, "content-type"),
            traceparent: header(&headers, "traceparent"),
            body: body.clone(),
            at: Instant::now(),
        });
        if shared.down {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        shared.script.pop_front()
    };
    match behavior {
        Some(Behavior::Status(status)) => return StatusCode::from_u16(status).expect("valid status").into_response(),
        Some(Behavior::Reject(status, text)) => {
            return (StatusCode::from_u16(status).expect("valid status"), text).into_response()
        }
        Some(Behavior::Throttle(seconds)) => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", seconds.to_string())]).into_response()
        }
        Some(Behavior::ThrottleFor(value)) => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", value)]).into_response()
        }
        Some(Behavior::ThrottleUntil(ahead)) => {
            let date = (chrono::Utc::now() + ahead).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", date)]).into_response();
        }
        Some(Behavior::Conflict(current_version)) => {
            return (StatusCode::CONFLICT, axum::Json(json!({"accepted": false, "current_version": current_version})))
                .into_response()
        }
        Some(Behavior::Slow(duration)) => tokio::time::sleep(duration).await,
        // Unwinding out of the handler makes the server drop the connection unanswered; it
        // does not run the panic hook, so nothing is printed.
        Some(Behavior::Drop) => std::panic::resume_unwind(Box::new("drop the connection")),
        None => {}
    }
    let version = body["version"].as_u64().unwrap_or(0);
    let quantity = body["quantity"].as_i64().unwrap_or(0);
    let mut shared = shared.lock().expect("storefront state");
    match shared.held.get(&item_id) {
        Some((held, _)) if *held > version => {
            (StatusCode::CONFLICT, axum::Json(json!({"accepted": false, "current_version": held}))).into_response()
        }
        _ => {
            shared.held.insert(item_id, (version, quantity));
            (StatusCode::ACCEPTED, axum::Json(json!({"accepted": true}))).into_response()
        }
    }
}

impl Storefront {
    pub(crate) async fn start(script: Vec<Behavior>) -> Self {
        let shared = Arc::new(Mutex::new(Shared { script: script.into(), ..Shared::default() }));
        let app = Router::new()
            .route("/v1/tenants/{tenant}/items/{item}/invalidate", post(invalidate))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind storefront");
        let address = listener.local_addr().expect("address");
        // The server lives as long as the test's runtime.
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, shared }
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().expect("storefront state").requests.clone()
    }

    pub(crate) fn held_version(&self, item_id: &str) -> Option<u64> {
        self.shared.lock().expect("storefront state").held.get(item_id).map(|(version, _)| *version)
    }

    /// Answers every request with 503 from now on (`true`) or serves again (`false`).
    pub(crate) fn set_down(&self, down: bool) {
        self.shared.lock().expect("storefront state").down = down;
    }

    pub(crate) fn held_quantity(&self, item_id: &str) -> Option<i64> {
        self.shared.lock().expect("storefront state").held.get(item_id).map(|(_, quantity)| *quantity)
    }
}

/// A redirect is not followed: an HTTP client re-sends a redirected POST as a GET without its
/// body, and the page it lands on (a gateway's login or maintenance page) answers 200, which
/// would record the version published though the storefront got nothing. The contract lists no
/// 3xx; it is rejected, dead-lettered with the status for an operator (the base URL is wrong).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed_and_not_taken_for_accepted() {
    use catalog_publish::{ChannelAdapter, Secret, StorefrontChannel, StorefrontConfig, Verdict};
    let landed = Arc::new(Mutex::new(0_usize));
    let app = Router::new()
        .route(
            "/v1/tenants/{tenant}/items/{item}/invalidate",
            post(|| async { (StatusCode::FOUND, [("location", "/login")], "moved") }),
        )
        .route(
            "/login",
            axum::routing::get({
                let landed = Arc::clone(&landed);
                move || async move {
                    *landed.lock().expect("landed") += 1;
                    "a login page"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = StorefrontConfig::new(format!("http://{address}"), Some(Secret::new("s3cret")));
    let channel = StorefrontChannel::new(config, Duration::from_secs(5), 1).expect("HTTP client");

    let publish = crate::marketplace_support::publish_on("storefront", "ABC-123", "ABC-123", 12, None);
    let sent = channel.send(std::slice::from_ref(&publish)).await;
    assert_eq!(sent.attempts[0].status, Some(302));
    assert!(
        matches!(&sent.attempts[0].verdict, Verdict::DeadLetter { reason, .. } if reason == "rejected_302"),
        "{:?}",
        sent.attempts[0].verdict
    );
    assert_eq!(*landed.lock().expect("landed"), 0, "the redirect was not followed");
}

/// A 2xx other than the contract's 202 (a gateway's or maintenance page's 200, a 204) is not
/// the storefront's acceptance: retried, and dead-lettered `retries_exhausted` naming the
/// status once the attempts run out. Taken for accepted, the version was recorded published
/// and its outbox row deleted, though the storefront may never have got it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_other_than_202_is_retried_never_recorded_published() {
    let page = "<html>down for maintenance</html>";
    let storefront = Storefront::start(vec![Behavior::Reject(200, page), Behavior::Status(204)]).await;
    let (store, _dir) = crate::store(&["storefront"]).await;
    crate::set(&*store, 1, "ABC-123", 42).await;
    let mut channel = crate::channel("storefront", &storefront);
    channel.config.max_attempts = 2;
    assert_eq!(crate::drain(channel, Arc::clone(&store)).await, 0, "nothing published");
    assert_eq!(storefront.requests().len(), 2, "retried once, then out of attempts");
    let letters = store.open_dead_letters(10).await.expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "retries_exhausted");
    let item = catalog_core::ItemId(crate::item_id("ABC-123").parse().expect("uuid"));
    let trace = store.item_trace(item).await.expect("trace").expect("item");
    let attempts: Vec<_> = trace
        .publish_attempts
        .iter()
        .map(|attempt| {
            (attempt.attempt, attempt.result.as_str(), attempt.status, attempt.error.clone().unwrap_or_default())
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (
                1,
                "retry",
                Some(200),
                format!("unexpected_status: HTTP 200, where the contract accepts with 202: {page}")
            ),
            (
                2,
                "dead_lettered",
                Some(204),
                "unexpected_status: HTTP 204, where the contract accepts with 202: ".into()
            ),
        ]
    );
}
