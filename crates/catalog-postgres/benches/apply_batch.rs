//! Benchmark of `apply_batch` on Postgres against a raw-SQL baseline of the same rows,
//! both measured in this one run on fresh databases: `cargo xtask bench`.
//!
//! The baseline writes the rows `apply_batch` writes (journal rows with every column, offer
//! and item upserts, outbox rows, the checkpoint) with plain array statements, one
//! transaction per batch, nothing read back, locked or decided. `apply_batch` additionally
//! creates and reads offers and items, looks up prior journal rows, plans with
//! `catalog-core`, and guards every write against concurrent changes.

use std::time::{Duration, Instant};

use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::prelude::*;
use catalog_store::{IncomingEvent, StoreConfig};
use catalog_testkit::TestDatabase;
use chrono::{DateTime, Utc};

const N_EVENTS: usize = 100_000;
const BATCH: usize = 5_000;

fn events() -> Vec<IncomingEvent> {
    let received_at: DateTime<Utc> = "2026-06-01T13:00:00Z".parse().expect("time");
    catalog_testkit::incoming(
        &catalog_testkit::bench_events(N_EVENTS),
        "kafka:bench:supplier.inventory.v1",
        received_at,
    )
}

async fn bench_apply_batch(events: &[IncomingEvent]) -> Duration {
    let database = TestDatabase::create_with_server_defaults().await;
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect");
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        let input = catalog_testkit::batch_of(chunk);
        store.apply_batch(&input).await.expect("apply");
    }
    let elapsed = started.elapsed();
    // Closed before the database is dropped with `database`.
    store.pool().close().await;
    elapsed
}

/// The same rows, written with plain array statements.
async fn bench_raw_sql(events: &[IncomingEvent]) -> Duration {
    let database = TestDatabase::create_with_server_defaults().await;
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect");
    let elapsed = catalog_testkit::raw_sql_baseline(store.pool(), events, BATCH).await;
    // Closed before the database is dropped with `database`.
    store.pool().close().await;
    elapsed
}

fn rate(elapsed: Duration) -> f64 {
    N_EVENTS as f64 / elapsed.as_secs_f64()
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
fn main() {
    // `cargo test --benches` runs bench targets with `--test`-style flags; do the work only
    // when asked to benchmark.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    // RUST_LOG=catalog_postgres=debug shows each batch's step timings on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let events = events();
        // Alternate to spread any drift of the machine over both.
        let raw_first = bench_raw_sql(&events).await;
        let apply_first = bench_apply_batch(&events).await;
        let raw_second = bench_raw_sql(&events).await;
        let apply_second = bench_apply_batch(&events).await;
        let raw = raw_first.min(raw_second);
        let apply = apply_first.min(apply_second);
        println!("postgres/raw_sql_baseline   {N_EVENTS} events in batches of {BATCH}: {:>9.0} events/s", rate(raw));
        println!("postgres/apply_batch        {N_EVENTS} events in batches of {BATCH}: {:>9.0} events/s", rate(apply));
        println!("postgres/apply_batch ÷ raw_sql_baseline: {:.2}", rate(apply) / rate(raw));
    });
}
