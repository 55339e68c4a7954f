//! Replay speed against the worker's apply speed, on Postgres, in one invocation: 100k events
//! applied through `apply_batch` in batches of 5,000, then the same window replayed (all
//! already applied) and replayed again after switching a supplier's held events on.

use std::time::{Duration, Instant};

use catalog_app::replay::{replay, ReplayRequest};
use catalog_core::{SupplierId, TenantId};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::prelude::*;
use catalog_store::{BatchInput, StoreConfig};
use catalog_testkit::{bench_events, incoming, TestDatabase};
use chrono::Utc;

const N_EVENTS: usize = 100_000;
const BATCH: usize = 5_000;

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let database = TestDatabase::create().await;
        let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
            .await
            .expect("connect");
        let started_at = Utc::now() - chrono::Duration::seconds(1);
        // One supplier of three is off: a third of the events are held, for the replay to apply.
        let tenant = TenantId::parse("canary").expect("valid");
        let held_supplier = SupplierId::parse("supplier-2").expect("valid");
        store.set_supplier_sync(&tenant, &held_supplier, false).await.expect("flag");
        let events = incoming(&bench_events(N_EVENTS), "kafka:bench:replay", Utc::now());
        let started = Instant::now();
        for chunk in events.chunks(BATCH) {
            store.apply_batch(&BatchInput::new(chunk.to_vec(), vec![])).await.expect("apply");
        }
        let apply = started.elapsed();
        store.set_supplier_sync(&tenant, &held_supplier, true).await.expect("flag");

        let request = ReplayRequest {
            tenant,
            since: started_at,
            until: None,
            supplier: None,
            dry_run: false,
            max_dry_run_events: catalog_app::replay::MAX_DRY_RUN_EVENTS,
            held_only: false,
        };
        let started = Instant::now();
        let first = replay(&store, &request, &|_| {}).await.expect("replay");
        let replay_held = started.elapsed();
        let started = Instant::now();
        let second = replay(&store, &request, &|_| {}).await.expect("replay");
        let replay_applied = started.elapsed();
        println!("replay/apply_batch            {N_EVENTS} events: {:>9.0} events/s", rate(N_EVENTS, apply));
        println!(
            "replay/window_with_held      {} events: {:>9.0} events/s ({} items touched)",
            first.n_replayed,
            rate(first.n_replayed, replay_held),
            first.touched.len()
        );
        println!(
            "replay/window_already_applied {} events: {:>9.0} events/s",
            second.n_replayed,
            rate(second.n_replayed, replay_applied)
        );
        store.pool().close().await;
    });
}
