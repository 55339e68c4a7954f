//! Reconciliation benchmark: drift injected out of band into a storefront holding a
//! 100,000-item catalog, limited to 200 requests/s, is detected and healed by the worker
//! (release build, its own process, default reconciliation settings); reports the time from
//! each injection to the storefront showing the catalog again (p50, p99, max). Needs
//! PostgreSQL; run through `cargo xtask bench`. `CATALOG_BENCH_RECONCILE_ITEMS` and
//! `CATALOG_BENCH_RECONCILE_DRIFTS` change the sizes.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use catalog_testkit::TestDatabase;
use serde_json::{json, Value};
use sqlx::Row;

const WORKER: &str = env!("CARGO_BIN_EXE_sync-worker");
/// The storefront's limit, every endpoint together.
const STOREFRONT_RATE: u32 = 200;
/// Drift is injected over this long.
const INJECT_OVER: Duration = Duration::from_secs(60);

struct Storefront {
    /// item id → (sku, quantity, version), in the list's order.
    shown: BTreeMap<String, (String, i64, u64)>,
    /// Requests answered in the current second, and which second.
    second: (u64, u32),
    started: Instant,
    throttled: u64,
}

type Shared = Arc<Mutex<Storefront>>;

/// A token per request: beyond the rate in the current second, 429 with `Retry-After: 1`.
fn admit(storefront: &mut Storefront) -> bool {
    let second = storefront.started.elapsed().as_secs();
    if storefront.second.0 != second {
        storefront.second = (second, 0);
    }
    storefront.second.1 += 1;
    let admitted = storefront.second.1 <= STOREFRONT_RATE;
    if !admitted {
        storefront.throttled += 1;
    }
    admitted
}

fn throttled() -> Response {
    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
}

async fn invalidate(
    State(shared): State<Shared>,
    Path((_tenant, item)): Path<(String, String)>,
    body: String,
) -> Response {
    let mut storefront = shared.lock().expect("storefront state");
    if !admit(&mut storefront) {
        return throttled();
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let (Some(sku), Some(quantity), Some(version)) =
        (body["sku"].as_str(), body["quantity"].as_i64(), body["version"].as_u64())
    else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    match storefront.shown.get(&item) {
        Some((_, _, held)) if *held > version => {
            (StatusCode::CONFLICT, axum::Json(json!({"accepted": false, "current_version": held}))).into_response()
        }
        _ => {
            storefront.shown.insert(item, (sku.to_owned(), quantity, version));
            (StatusCode::ACCEPTED, axum::Json(json!({"accepted": true}))).into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: usize,
}

async fn list(State(shared): State<Shared>, Path(_tenant): Path<String>, Query(query): Query<ListQuery>) -> Response {
    let mut storefront = shared.lock().expect("storefront state");
    if !admit(&mut storefront) {
        return throttled();
    }
    let after = query.after.unwrap_or_default();
    let limit = query.limit.clamp(1, 1_000);
    let page: Vec<Value> = storefront
        .shown
        .range::<String, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
        .take(limit + 1)
        .map(|(id, (sku, quantity, version))| json!({"item_id": id, "sku": sku, "quantity": quantity, "version": version}))
        .collect();
    let next = (page.len() > limit).then(|| page[limit - 1]["item_id"].clone());
    let items: Vec<Value> = page.into_iter().take(limit).collect();
    axum::Json(json!({"items": items, "next": next})).into_response()
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], share: f64) -> Duration {
    let index = ((sorted.len() as f64 * share).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let items = env_number("CATALOG_BENCH_RECONCILE_ITEMS", 100_000);
    let drifts = env_number("CATALOG_BENCH_RECONCILE_DRIFTS", 300);
    let database = TestDatabase::create_with_server_defaults().await;

    // The catalog: one event per item, applied with publishing off.
    let loading = Instant::now();
    let mut loader = Command::new(WORKER)
        .args(["--source", "-", "--database-url", &database.url, "--metrics-addr", "off", "--publish", "off"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the loading worker");
    {
        let mut stdin = std::io::BufWriter::new(loader.stdin.take().expect("stdin"));
        for n in 1..=items {
            writeln!(
                stdin,
                "{{\"event_id\":\"00000000-0000-4000-8000-{n:012}\",\"type\":\"inventory.updated\",\"tenant_id\":\"canary\",\"supplier_id\":\"acme\",\"sku\":\"SKU-{n}\",\"quantity\":{},\"updated_at\":\"2026-06-01T12:00:00Z\"}}",
                n % 500 + 1
            )
            .expect("write an event");
        }
    }
    assert!(loader.wait().expect("loading worker").success(), "the loading worker failed");

    // The storefront already shows the catalog, and the store knows it accepted it.
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    sqlx::query(
        "INSERT INTO published_versions (item_id, channel, version) SELECT item_id, 'storefront', version FROM items",
    )
    .execute(&pool)
    .await
    .expect("published versions");
    sqlx::query("DELETE FROM outbox").execute(&pool).await.expect("empty the outbox");
    let rows = sqlx::query("SELECT item_id, sku, quantity, version FROM items").fetch_all(&pool).await.expect("items");
    let mut shown = BTreeMap::new();
    for row in &rows {
        let id: uuid::Uuid = row.get("item_id");
        let version: i64 = row.get("version");
        shown.insert(id.to_string(), (row.get::<String, _>("sku"), row.get::<i64, _>("quantity"), version as u64));
    }
    let catalog = shown.clone();
    println!("loaded {} items in {:.1} s", shown.len(), loading.elapsed().as_secs_f64());
    let shared: Shared =
        Arc::new(Mutex::new(Storefront { shown, second: (0, 0), started: Instant::now(), throttled: 0 }));
    let app = axum::Router::new()
        .route("/v1/tenants/{tenant}/items/{item}/invalidate", post(invalidate))
        .route("/v1/tenants/{tenant}/items", get(list))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The worker under test: default reconciliation and publish settings.
    let mut worker = Command::new(WORKER)
        .args(["--source", "-", "--database-url", &database.url, "--metrics-addr", "off", "--storefront-url", &url])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the worker");
    let worker_stdin = worker.stdin.take().expect("stdin");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Drift at a steady pace: manual edits, cache resets, lost writes, versions ahead.
    let ids: Vec<String> = catalog.keys().cloned().collect();
    let mut pending: Vec<(String, u64, Instant)> = Vec::new();
    let mut healed: Vec<Duration> = Vec::new();
    let gap = INJECT_OVER / u32::try_from(drifts.max(1)).unwrap_or(1);
    let mut next_injection = Instant::now();
    let mut injected = 0;
    let deadline = Instant::now() + INJECT_OVER + Duration::from_secs(60);
    while (injected < drifts || !pending.is_empty()) && Instant::now() < deadline {
        if injected < drifts && Instant::now() >= next_injection {
            // Spread over the whole catalog, so some land just behind a sweep's cursor.
            let id = ids[(injected * 7_919 + 13) % ids.len()].clone();
            let (quantity, version) = (catalog[&id].1, catalog[&id].2);
            let mut storefront = shared.lock().expect("storefront state");
            let floor = match injected % 4 {
                0 => {
                    storefront.shown.get_mut(&id).expect("shown").1 = quantity + 1_000;
                    version
                }
                1 => {
                    storefront.shown.remove(&id);
                    version
                }
                2 => {
                    storefront.shown.get_mut(&id).expect("shown").2 = 0;
                    version
                }
                _ => {
                    storefront.shown.get_mut(&id).expect("shown").2 = version + 1_000;
                    version + 1_000
                }
            };
            pending.push((id, floor, Instant::now()));
            injected += 1;
            next_injection += gap;
        }
        {
            let storefront = shared.lock().expect("storefront state");
            pending.retain(|(id, floor, at)| {
                let fixed = storefront
                    .shown
                    .get(id)
                    .is_some_and(|(_, quantity, version)| *quantity == catalog[id].1 && *version > *floor);
                if fixed {
                    healed.push(at.elapsed());
                }
                !fixed
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(worker_stdin);
    let _ = worker.kill();
    let _ = worker.wait();

    healed.sort();
    let throttled = shared.lock().expect("storefront state").throttled;
    println!(
        "reconcile: {items} items, storefront limit {STOREFRONT_RATE} requests/s, {injected} drifts over {} s",
        INJECT_OVER.as_secs()
    );
    if healed.is_empty() {
        println!("no drift healed");
    } else {
        println!(
            "healed {} of {injected}: p50 {:.1} s, p99 {:.1} s, max {:.1} s; never healed {}; storefront answered 429 {throttled} times",
            healed.len(),
            percentile(&healed, 0.50).as_secs_f64(),
            percentile(&healed, 0.99).as_secs_f64(),
            healed.last().expect("not empty").as_secs_f64(),
            pending.len()
        );
    }
    assert!(pending.is_empty(), "{} drifts never healed", pending.len());
}
