//! Benchmark (not a test): the trace of an item with 10,000 journaled events through the real
//! server on PostgreSQL, p50 and p99 of 200 requests (first page of 100 events). Needs
//! `CATALOG_TEST_DATABASE_URL`. `cargo bench -p admin-api --bench trace_10k`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use admin_api::{auth, AppState, Settings};
use catalog_core::StockChange;
use catalog_store::contract::{batch, incoming, offer};
use catalog_store::{CatalogStore, NewToken, Role, StoreConfig};
use tokio_util::sync::CancellationToken;

const N_EVENTS: u64 = 10_000;
const N_REQUESTS: usize = 200;

#[allow(clippy::print_stdout)]
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let database = catalog_testkit::TestDatabase::create_with_server_defaults().await;
        let store = catalog_postgres::PostgresStore::connect(
            &database.url,
            StoreConfig::default(),
            catalog_postgres::PostgresOptions::default(),
        )
        .await
        .expect("connect");
        let store: Arc<dyn CatalogStore> = Arc::new(store);
        let key = offer("canary", "acme", "HOT-1");
        for chunk in (1..=N_EVENTS).collect::<Vec<_>>().chunks(1_000) {
            let events = chunk
                .iter()
                .map(|&n| {
                    let change = if n % 5 == 0 {
                        StockChange::Updated { quantity: (n % 500) as i64 + 1 }
                    } else {
                        StockChange::Adjusted { delta: 1 }
                    };
                    incoming(n, &key, change, (n % 3_600) as i64, (n % 3_600) as i64)
                })
                .collect();
            store.apply_batch(&batch(events)).await.expect("apply");
        }
        let (token, hash) = auth::new_token().expect("randomness");
        store.add_token(&NewToken { name: "bench".into(), role: Role::Viewer, hash }).await.expect("token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/v1/tenants/canary/items/hot-1/trace", listener.local_addr().expect("address"));
        let shutdown = CancellationToken::new();
        let server =
            tokio::spawn(admin_api::run(listener, AppState::new(store, Settings::default()), shutdown.clone()));
        let client = reqwest::Client::new();
        let mut latencies: Vec<Duration> = Vec::with_capacity(N_REQUESTS);
        for n in 0..N_REQUESTS + 10 {
            let started = Instant::now();
            let response = client.get(&url).bearer_auth(&token).send().await.expect("request");
            assert_eq!(response.status(), 200);
            let trace: serde_json::Value = response.json().await.expect("json");
            assert_eq!(trace["events"]["total"], N_EVENTS);
            if n >= 10 {
                latencies.push(started.elapsed());
            }
        }
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "trace of an item with {N_EVENTS} journaled events, PostgreSQL, {N_REQUESTS} requests: p50 {:?}, p99 {:?}",
            at(0.50),
            at(0.99)
        );
        shutdown.cancel();
        server.await.expect("server").expect("served");
    });
}
