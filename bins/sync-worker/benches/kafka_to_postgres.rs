//! End-to-end benchmark: Kafka → sync-worker (release build, its own process) → PostgreSQL,
//! against the raw-SQL baseline of the same events in the same invocation, with the worker's
//! peak resident memory. Needs PostgreSQL and a Kafka-protocol broker (`CATALOG_TEST_KAFKA_BROKERS`,
//! default 127.0.0.1:9092); run through `cargo xtask bench`.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalog_core::{encode, SupplierEvent};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::{CatalogStore, StoreConfig};
use catalog_testkit::{create_topic, produce_batched, raw_sql_baseline, unique_name, TestDatabase, TestMessage};
use chrono::Utc;

const N_EVENTS: usize = 200_000;
const PARTITIONS: i32 = 4;
const BATCH: usize = 5_000;

/// Peak resident set of a process, from /proc, in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn bench_worker(messages: &[TestMessage]) -> (Duration, Option<f64>) {
    let database = TestDatabase::create().await;
    let topic = unique_name("bench");
    let group = unique_name("bench");
    create_topic(&topic, PARTITIONS).await;
    let positions = produce_batched(&topic, messages).await;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for (partition, offset) in positions {
        let end = ends.entry(partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect");
    let started = Instant::now();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "kafka", "--database-url", &database.url, "--kafka-brokers", &catalog_testkit::brokers()])
        .args(["--topic", &topic, "--group", &group, "--batch-size", &BATCH.to_string(), "--metrics-addr", "off"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start sync-worker");
    let source = format!("kafka:{group}:{topic}");
    loop {
        let stored: HashMap<i32, i64> = store
            .checkpoints(&source)
            .await
            .expect("checkpoints")
            .into_iter()
            .map(|checkpoint| (checkpoint.partition, checkpoint.next_offset))
            .collect();
        if ends.iter().all(|(partition, end)| stored.get(partition).is_some_and(|next| next >= end)) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the worker did not finish in 10 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let rss = peak_rss_mib(worker.id());
    let _ = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status();
    let _ = worker.wait();
    store.pool().close().await;
    (elapsed, rss)
}

async fn bench_baseline(events: &[SupplierEvent]) -> Duration {
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect");
    let incoming = catalog_testkit::incoming(events, "raw", Utc::now());
    let elapsed = raw_sql_baseline(store.pool(), &incoming, BATCH).await;
    store.pool().close().await;
    elapsed
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let events = catalog_testkit::bench_events(N_EVENTS);
        let messages: Vec<TestMessage> = events
            .iter()
            .map(|event| TestMessage {
                key: Some(format!("{}/{}", event.offer().tenant, event.offer().sku)),
                payload: Some(encode(event).into_bytes()),
                traceparent: None,
                partition: None,
            })
            .collect();
        let baseline = bench_baseline(&events).await;
        let (worker, rss) = bench_worker(&messages).await;
        let rate = |elapsed: Duration| N_EVENTS as f64 / elapsed.as_secs_f64();
        println!("e2e/raw_sql_baseline      {N_EVENTS} events: {:>9.0} events/s", rate(baseline));
        println!(
            "e2e/kafka_to_postgres     {N_EVENTS} events: {:>9.0} events/s (worker start to last checkpoint)",
            rate(worker)
        );
        println!("e2e/kafka_to_postgres ÷ raw_sql_baseline: {:.2}", rate(worker) / rate(baseline));
        match rss {
            Some(rss) => println!("e2e/worker peak RSS: {rss:.0} MiB"),
            None => println!("e2e/worker peak RSS: unavailable"),
        }
    });
}
