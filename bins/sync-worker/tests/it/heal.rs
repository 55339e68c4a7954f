//! Dead letters heal in the running worker: a storefront that is down long enough for every
//! item to be dead-lettered, then back, ends up showing every item, with no new event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::prelude::*;
use catalog_store::StoreConfig;
use catalog_testkit::TestDatabase;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// A storefront that answers 503 while `down` is set and accepts otherwise, remembering
/// every request's status and body.
async fn storefront(down: Arc<AtomicBool>) -> (String, Arc<Mutex<Vec<(u16, Value)>>>) {
    use axum::routing::post;
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/tenants/{tenant}/items/{item}/invalidate",
        post(move |axum::Json(body): axum::Json<Value>| {
            let (sink, down) = (Arc::clone(&sink), Arc::clone(&down));
            async move {
                let status = if down.load(Ordering::SeqCst) { 503 } else { 202 };
                sink.lock().expect("storefront state").push((status, body));
                let status = axum::http::StatusCode::from_u16(status).expect("valid status");
                (status, axum::Json(serde_json::json!({"accepted": status.as_u16() == 202})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// Waits until `done` holds, polling, or panics after `limit` with `what`.
async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "gave up after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_dead_lettered_during_an_outage_are_published_once_the_storefront_is_back() {
    let database = TestDatabase::create().await;
    let down = Arc::new(AtomicBool::new(true));
    let (url, received) = storefront(Arc::clone(&down)).await;
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "-", "--database-url", &database.url, "--metrics-addr", "off", "--storefront-url", &url])
        .args(["--publish-max-attempts", "2", "--dead-letter-heal-interval-secs", "1", "--dead-letter-max-heals", "5"])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start sync-worker");
    let mut stdin = worker.stdin.take().expect("stdin");
    let skus = ["ABC-1", "ABC-2", "ABC-3"];
    for (n, sku) in (1..).zip(skus) {
        let line = format!(
            "{{\"event_id\":\"00000000-0000-0000-0000-{n:012}\",\"type\":\"inventory.updated\",\"tenant_id\":\"canary\",\"supplier_id\":\"acme\",\"sku\":\"{sku}\",\"quantity\":{n},\"updated_at\":\"2026-06-01T12:00:00Z\"}}\n"
        );
        stdin.write_all(line.as_bytes()).await.expect("write an event");
    }
    stdin.flush().await.expect("flush");

    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect");
    wait_for("every item dead-lettered while the storefront is down", Duration::from_secs(30), async || {
        store.open_dead_letters(10).await.expect("open letters").len() == skus.len()
    })
    .await;
    down.store(false, Ordering::SeqCst);
    wait_for("every dead letter resolved by auto-heal", Duration::from_secs(30), async || {
        store.open_dead_letters(10).await.expect("open letters").is_empty()
    })
    .await;

    // No new event came: each item was published again because its letter healed.
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), worker.wait_with_output())
        .await
        .expect("the worker exits once its input ends")
        .expect("wait for the worker");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut accepted: Vec<(String, i64)> = received
        .lock()
        .expect("storefront state")
        .iter()
        .filter(|(status, _)| *status == 202)
        .map(|(_, body)| (body["sku"].as_str().expect("sku").to_owned(), body["quantity"].as_i64().expect("quantity")))
        .collect();
    accepted.sort();
    assert_eq!(accepted, [("ABC-1".to_owned(), 1), ("ABC-2".to_owned(), 2), ("ABC-3".to_owned(), 3)]);
    for item in store.items(&catalog_core::TenantId::parse("canary").expect("valid")).await.expect("items") {
        let letters = store.item_dead_letters(item.id()).await.expect("letters");
        let states: Vec<_> = letters.iter().map(|l| (l.resolution.as_deref(), l.heal_rounds)).collect();
        assert_eq!(states, [(Some("published_later"), 1)], "{}", item.sku());
    }
    assert_eq!(store.stale_items("storefront").await.expect("stale"), 0);
}
