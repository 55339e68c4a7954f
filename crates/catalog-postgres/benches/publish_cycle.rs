//! What one published item version costs PostgreSQL: `cargo bench -p catalog-postgres
//! --bench publish_cycle`, part of `cargo xtask bench`.
//!
//! Issue #18's fan-out is bound by PostgreSQL's CPU on this machine (docs/benchmarks.md,
//! "Fan-out with feeds"), and its end-to-end p99 moves by half between runs of the same code,
//! too much to see a statement's cost in. This measures the store's side alone, on one
//! connection at a time: batches of the benchmark feed applied with five channels (each
//! changed item queues five outbox rows), then every channel's rows claimed and recorded as
//! published in rounds of up to 512, as the publishers do. It reports PostgreSQL's CPU time
//! (`PostgresCpu`) per published version and per applied event,
//! and each step's wall time. Then the claims of a channel that is down, its 100,000 items in
//! backoff (`catalog_testkit::down_channel_claims`, as the embedded benchmark measures SQLite's;
//! `-- down_channel` or `-- publish_cycles` runs one part alone). Nothing else may use the server meanwhile.

use std::time::{Duration, Instant};

use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::prelude::*;
use catalog_store::{
    ChannelRoute, IncomingEvent, OutboxClaim, OutboxEntry, PublishOutcome, PublishRecord, SentQuantity, StoreConfig,
};
use catalog_testkit::{PostgresCpu, TestDatabase};
use chrono::{DateTime, Utc};

const N_EVENTS: usize = 60_000;
/// About 200 ms of a 5,000 events/s feed: the batches the fan-out benchmark's worker applies.
const BATCH: usize = 1_000;
const CHANNELS: [&str; 5] = ["shopify", "amazon", "walmart", "ebay", "mercadolibre"];
/// The publishers' largest round, and a small one (a steady feed's rounds hold what came due
/// since the last, tens of items): per-round costs show in the second.
const ROUNDS: [usize; 2] = [512, 32];

#[derive(Default)]
struct Spent {
    apply: Duration,
    apply_cpu: Duration,
    claim: Duration,
    record: Duration,
    publish_cpu: Duration,
    applied: usize,
    published: usize,
    rounds: usize,
}

fn published(entry: &OutboxEntry) -> PublishRecord {
    PublishRecord {
        claim: entry.claim,
        item_id: entry.item.id(),
        channel: entry.channel.clone(),
        version: entry.item.version(),
        attempt: entry.attempts + 1,
        outcome: PublishOutcome::Published,
        status: Some(200),
        latency_ms: Some(12),
        error: None,
        dead_letter_reason: None,
        body: None,
        sent: Some(SentQuantity {
            listing: entry.item.sku().to_string(),
            quantity: entry.item.quantity(),
            rule: format!("catalog {}", entry.item.quantity()),
        }),
    }
}

async fn publish_everything(store: &PostgresStore, round: usize, spent: &mut Spent) {
    let claim = OutboxClaim::immediate(round, Duration::from_secs(60));
    for channel in CHANNELS {
        loop {
            let started = Instant::now();
            let entries = store.claim_outbox(channel, &claim).await.expect("claim");
            spent.claim += started.elapsed();
            if entries.is_empty() {
                break;
            }
            let records: Vec<PublishRecord> = entries.iter().map(published).collect();
            let started = Instant::now();
            store.record_publishes(&records).await.expect("record");
            spent.record += started.elapsed();
            spent.published += records.len();
            spent.rounds += 1;
        }
    }
}

async fn run(events: &[IncomingEvent], round: usize) -> Spent {
    let database = TestDatabase::create_with_server_defaults().await;
    let config = StoreConfig {
        channels: CHANNELS.iter().map(|name| ChannelRoute::all(*name)).collect(),
        ..StoreConfig::default()
    };
    let mut store =
        PostgresStore::connect(&database.url, config.clone(), PostgresOptions::default()).await.expect("connect");
    // An experiment's schema or setting change (an index dropped, say), measured against the
    // same run without it; connections opened afterwards, so database settings apply too.
    if let Ok(statements) = std::env::var("CATALOG_BENCH_SETUP_SQL") {
        sqlx::raw_sql(&statements).execute(store.pool()).await.expect("CATALOG_BENCH_SETUP_SQL");
        store.pool().close().await;
        store = PostgresStore::connect(&database.url, config, PostgresOptions::default()).await.expect("connect");
    }
    let mut spent = Spent::default();
    for chunk in events.chunks(BATCH) {
        let input = catalog_testkit::batch_of(chunk);
        let cpu = PostgresCpu::now();
        let started = Instant::now();
        store.apply_batch(&input).await.expect("apply");
        spent.apply += started.elapsed();
        spent.apply_cpu += cpu.spent_since();
        spent.applied += chunk.len();
        let cpu = PostgresCpu::now();
        publish_everything(&store, round, &mut spent).await;
        spent.publish_cpu += cpu.spent_since();
    }
    // Closed before the database is dropped with `database`.
    store.pool().close().await;
    spent
}

fn micros_each(total: Duration, n: usize) -> f64 {
    total.as_secs_f64() * 1e6 / n.max(1) as f64
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
fn main() {
    // `cargo test --benches` runs bench targets with `--test`-style flags; do the work only
    // when asked to benchmark.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    // A name after `--` runs only that part: `publish_cycles` or `down_channel`.
    let runs = catalog_testkit::bench_part_chosen;
    if runs("publish_cycles") {
        publish_cycles(&runtime);
    }
    if !runs("down_channel") {
        return;
    }
    runtime.block_on(async {
        let database = TestDatabase::create_with_server_defaults().await;
        let config = StoreConfig { channels: vec![ChannelRoute::all("down")], ..StoreConfig::default() };
        let store = PostgresStore::connect(&database.url, config, PostgresOptions::default()).await.expect("connect");
        catalog_testkit::fail_a_backlog(&store, "down").await;
        let claims = catalog_testkit::time_claims(&store, "down", 0).await;
        println!("publish cycle down_channel, its failures not yet vacuumed: {claims}");
        // What autovacuum does to a table this busy within minutes: the index entries of the
        // row versions the failures replaced are gone.
        sqlx::query("VACUUM ANALYZE outbox").execute(store.pool()).await.expect("vacuum");
        let claims = catalog_testkit::time_claims(&store, "down", 1).await;
        println!("publish cycle down_channel, vacuumed: {claims}");
        store.pool().close().await;
    });
}

/// Every channel's rows published in rounds of each size, `runs` times.
#[allow(clippy::print_stdout)] // A benchmark's report is its output.
fn publish_cycles(runtime: &tokio::runtime::Runtime) {
    let received_at: DateTime<Utc> = "2026-06-01T13:00:00Z".parse().expect("time");
    let events = catalog_testkit::incoming(
        &catalog_testkit::bench_events(N_EVENTS),
        "kafka:bench:supplier.inventory.v1",
        received_at,
    );
    let runs = 2;
    let mut report = Vec::new();
    for (n, round) in (1..=runs).flat_map(|n| ROUNDS.map(|round| (n, round))) {
        let spent = runtime.block_on(run(&events, round));
        println!(
            "publish cycle run {n}/{runs}, rounds of up to {round}: {} events applied in batches of {BATCH}, {} versions published on {} channels in {} rounds",
            spent.applied,
            spent.published,
            CHANNELS.len(),
            spent.rounds
        );
        println!(
            "  PostgreSQL CPU: {:.1} µs per published version (claim + record), {:.1} µs per applied event",
            micros_each(spent.publish_cpu, spent.published),
            micros_each(spent.apply_cpu, spent.applied),
        );
        println!(
            "  wall: claim {:.1} µs and record {:.1} µs per published version; apply {:.1} µs per event",
            micros_each(spent.claim, spent.published),
            micros_each(spent.record, spent.published),
            micros_each(spent.apply, spent.applied),
        );
        report.push(serde_json::json!({
            "round_limit": round,
            "published": spent.published,
            "applied": spent.applied,
            "rounds": spent.rounds,
            "publish_cpu_us_per_version": micros_each(spent.publish_cpu, spent.published),
            "apply_cpu_us_per_event": micros_each(spent.apply_cpu, spent.applied),
            "claim_us_per_version": micros_each(spent.claim, spent.published),
            "record_us_per_version": micros_each(spent.record, spent.published),
            "apply_us_per_event": micros_each(spent.apply, spent.applied),
        }));
    }
    catalog_testkit::write_bench_data("publish-cycle", &serde_json::json!({ "runs": report }));
}
