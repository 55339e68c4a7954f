//! A storefront that plays the contract over real HTTP and misbehaves: a share of calls
//! fail with 503, a share are throttled with 429 and `Retry-After: 1`; the rest are accepted
//! when they carry a newer version than it holds, or answered 409 with the version it holds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use catalog_testkit::feed::Lcg;
use serde_json::{json, Value};

/// What the storefront shows per item id: (quantity, version).
pub(crate) type Shown = Arc<Mutex<HashMap<String, (i64, u64)>>>;

#[derive(Clone)]
struct Flaky {
    shown: Shown,
    random: Arc<Mutex<Lcg>>,
    /// Per thousand calls.
    failures: u64,
    throttles: u64,
    calls: Arc<Mutex<HashMap<u16, u64>>>,
}

/// Answers per status, for the report.
pub(crate) type Calls = Arc<Mutex<HashMap<u16, u64>>>;

/// Serves on a free loopback port until the process ends; returns its base URL.
pub(crate) async fn start(seed: u64, failure_rate: f64, throttle_rate: f64) -> (String, Shown, Calls) {
    let shown: Shown = Arc::default();
    let calls: Calls = Arc::default();
    let state = Flaky {
        shown: Arc::clone(&shown),
        random: Arc::new(Mutex::new(Lcg(seed))),
        failures: (failure_rate * 1_000.0) as u64,
        throttles: (throttle_rate * 1_000.0) as u64,
        calls: Arc::clone(&calls),
    };
    let router =
        Router::new().route("/v1/tenants/{tenant}/items/{item}/invalidate", post(invalidate)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind storefront");
    let address: SocketAddr = listener.local_addr().expect("storefront address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}"), shown, calls)
}

async fn invalidate(
    State(flaky): State<Flaky>,
    Path((_tenant, item)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let roll = flaky.random.lock().expect("storefront state").below(1_000);
    let (status, answer) = if roll < flaky.failures {
        (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "unavailable"}))
    } else if roll < flaky.failures + flaky.throttles {
        (StatusCode::TOO_MANY_REQUESTS, json!({"error": "slow down"}))
    } else {
        let quantity = body["quantity"].as_i64().expect("quantity");
        let version = body["version"].as_u64().expect("version");
        let mut shown = flaky.shown.lock().expect("storefront state");
        let held = shown.get(&item).map_or(0, |(_, version)| *version);
        if version > held {
            shown.insert(item, (quantity, version));
            (StatusCode::ACCEPTED, json!({"accepted": true}))
        } else {
            (StatusCode::CONFLICT, json!({"accepted": false, "current_version": held}))
        }
    };
    *flaky.calls.lock().expect("storefront state").entry(status.as_u16()).or_insert(0) += 1;
    let mut response = (status, Json(answer)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    response
}
