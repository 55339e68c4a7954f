//! Messages and histories that used to lose or stall events, end to end through the worker's
//! own `run` with real PostgreSQL, the real broker and a real HTTP storefront: invalid
//! `traceparent` headers, and a new database under a group that already committed offsets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalog_testkit::{
    commit_group_offsets, create_topic, produce, produce_in_batches, unique_name, TestDatabase, TestMessage,
};
use clap::Parser;
use sync_worker::config::WorkerArgs;
use tokio_util::sync::CancellationToken;

use crate::kafka::{connect, verify, wait_until_applied, worker_args};
use crate::stream::{end_offsets, feed};

/// What a storefront was told: per SKU, the `traceparent` header of the last call.
type Received = Arc<Mutex<BTreeMap<String, Option<String>>>>;

/// A storefront that accepts every publish and remembers its SKU and traceparent header.
pub(crate) async fn recording_storefront() -> (String, Received) {
    use axum::routing::post;
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/tenants/{tenant}/items/{item}/invalidate",
        post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<serde_json::Value>| {
            let sink = Arc::clone(&sink);
            async move {
                let traceparent = headers.get("traceparent").and_then(|value| value.to_str().ok()).map(str::to_owned);
                let sku = body["sku"].as_str().unwrap_or_default().to_owned();
                sink.lock().expect("storefront state").insert(sku, traceparent);
                (axum::http::StatusCode::ACCEPTED, axum::Json(serde_json::json!({"accepted": true})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// A loopback address nothing listens on right now.
pub(crate) fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

/// The worker's arguments with `--metrics-addr` set and more appended.
pub(crate) fn with_options(mut arguments: Vec<String>, metrics_addr: &str, more: &[&str]) -> Vec<String> {
    let at = arguments.iter().position(|argument| argument == "--metrics-addr").expect("a metrics address") + 1;
    arguments[at] = metrics_addr.to_owned();
    arguments.extend(more.iter().map(ToString::to_string));
    arguments
}

fn event(n: u64, sku: &str) -> Vec<u8> {
    format!(
        r#"{{"event_id":"00000000-0000-0000-0000-{n:012}","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"{sku}","quantity":{n},"updated_at":"2026-06-01T12:00:00Z"}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_traceparents_are_dropped_and_their_events_applied_and_published() {
    let database = TestDatabase::create().await;
    let topic = unique_name("traceparent");
    let group = unique_name("group");
    create_topic(&topic, 1).await;
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let headers = [
        ("VALID-1", Some(valid.to_owned())),
        // PostgreSQL text cannot hold a NUL: the journal write used to fail on every retry.
        ("NUL-1", Some(valid.replace("-01", "-0\0"))),
        // An HTTP header cannot hold CR or LF: the publish call used to fail and dead-letter.
        ("CRLF-1", Some(format!("{valid}\r\nX-Injected: 1"))),
        ("UPPER-1", Some(valid.to_uppercase())),
        ("NONE-1", None),
    ];
    let messages: Vec<TestMessage> = headers
        .iter()
        .enumerate()
        .map(|(n, (sku, traceparent))| TestMessage {
            key: None,
            payload: Some(event(n as u64 + 1, sku)),
            traceparent: traceparent.clone(),
            partition: Some(0),
        })
        .collect();
    let positions = produce(&topic, &messages).await;

    let (storefront, received) = recording_storefront().await;
    let metrics_addr = free_address();
    let arguments = with_options(
        worker_args(&database.url, &topic, &group, 50),
        &metrics_addr,
        &["--storefront-url", &storefront, "--publish-settle-ms", "0"],
    );
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(sync_worker::run(WorkerArgs::parse_from(arguments), shutdown.clone()));
    let store = connect(&database).await;
    let source = format!("kafka:{group}:{topic}");
    wait_until_applied(&store, &source, &end_offsets(&positions), Duration::from_secs(60)).await;
    let started = Instant::now();
    while received.lock().expect("storefront state").len() < headers.len() {
        assert!(started.elapsed() < Duration::from_secs(30), "not every item was published: {received:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    shutdown.cancel();
    worker.await.expect("worker task").expect("worker run");

    // Only the valid header travels, into the journal and to the storefront.
    let told = received.lock().expect("storefront state").clone();
    let expected: BTreeMap<String, Option<String>> =
        headers.iter().map(|(sku, _)| ((*sku).to_owned(), (*sku == "VALID-1").then(|| valid.to_owned()))).collect();
    assert_eq!(told, expected);
    let journaled: BTreeMap<String, Option<String>> =
        sqlx::query_as::<_, (String, Option<String>)>("SELECT sku, traceparent FROM events")
            .fetch_all(store.pool())
            .await
            .expect("journal")
            .into_iter()
            .collect();
    assert_eq!(journaled, expected);
    assert!(
        metrics.contains("catalog_traceparent_invalid_total{reason=\"malformed\"} 3"),
        "each invalid header is counted: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_under_a_group_that_read_the_topic_reads_it_from_the_start() {
    let database = TestDatabase::create().await;
    let topic = unique_name("restored");
    let group = unique_name("group");
    create_topic(&topic, 2).await;
    let feed = feed(41, 600);
    let positions = produce_in_batches(&topic, &feed.messages, 10).await;
    let ends = end_offsets(&positions);
    // The group read everything already, into a database since lost (or restored from an
    // older backup): its committed offsets are at the end.
    let committed: Vec<(i32, i64)> = ends.iter().map(|(partition, end)| (*partition, *end)).collect();
    commit_group_offsets(&topic, &group, &committed).await;

    let shutdown = CancellationToken::new();
    let arguments = worker_args(&database.url, &topic, &group, 50);
    let worker = tokio::spawn(sync_worker::run(WorkerArgs::parse_from(arguments), shutdown.clone()));
    let store = connect(&database).await;
    wait_until_applied(&store, &format!("kafka:{group}:{topic}"), &ends, Duration::from_secs(60)).await;
    shutdown.cancel();
    worker.await.expect("worker task").expect("worker run");
    verify(&store, &feed.messages, &positions).await;
}
