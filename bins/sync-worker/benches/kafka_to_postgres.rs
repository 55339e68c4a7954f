//! End-to-end benchmarks: Kafka → sync-worker (release build, its own process) → PostgreSQL,
//! against the SQL-only baseline of the same events (`staging_sql_baseline`) and a naive
//! worker committing one transaction per event, in the same invocation, with the worker's
//! peak resident memory (applying only, as the baseline does, and again with the log
//! publisher draining the outbox meanwhile); and event → storefront-accepted latency at a steady 5k events/s,
//! with a real HTTP storefront in this process. Needs PostgreSQL and a Kafka-protocol broker (`CATALOG_TEST_KAFKA_BROKERS`,
//! default 127.0.0.1:9092); run through `cargo xtask bench`. The worker runs with its default
//! settings; `CATALOG_BENCH_WORKER_ARGS` adds flags (for example `--batch-size 2500`) to try others,
//! `CATALOG_BENCH_LATENCY_ARGS` replaces the latency run's worker flags (`LATENCY_ARGS`).
//! `CATALOG_BENCH_COMPARE_WORKER=/path/to/sync-worker` runs another build of the worker (an
//! earlier commit's, say) in every round too, right after this one, and reports the ratio.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalog_core::{encode, SupplierEvent};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::StoreConfig;
use catalog_testkit::{
    create_topic, naive_per_event, produce_batched, staging_sql_baseline, unique_name, write_bench_data, TestDatabase,
    TestMessage,
};
use chrono::Utc;

mod support;

use support::{peak_rss_mib, storefront, worker_log_filter, WorkerProcess};

const N_EVENTS: usize = 200_000;
/// Events the naive worker (one transaction each) writes per round: its rate is steady.
const N_NAIVE: usize = 20_000;
const PARTITIONS: i32 = 4;
const BATCH: usize = 5_000;
/// Baseline and worker runs, alternated.
const ROUNDS: usize = 3;
/// The worker binary of this build.
const THIS_WORKER: &str = env!("CARGO_BIN_EXE_sync-worker");

/// The worker's run: from its start (on a database it migrated before) until every
/// partition's end is durable, the part of that before its first batch was durable
/// (start-up, group join, the first fetch) with the messages that batch made durable, and its
/// peak RSS.
struct WorkerRun {
    elapsed: Duration,
    first_batch: Option<(Duration, i64)>,
    peak_rss_mib: Option<f64>,
}

impl WorkerRun {
    /// Events per second after the first durable batch: the worker's pace once started,
    /// what a long-running worker keeps up (the baseline's clock too starts connected).
    fn steady_rate(&self, n_events: usize) -> Option<f64> {
        let (at, durable) = self.first_batch?;
        let rest = self.elapsed.checked_sub(at).filter(|rest| !rest.is_zero())?;
        Some((n_events as f64 - durable as f64) / rest.as_secs_f64())
    }
}

/// One run of the worker binary `program` over `messages`, with `--publish` set to
/// `publish` (`off`: apply only, the rows the baseline writes; `on`: the log publisher
/// drains the outbox meanwhile).
async fn bench_worker(program: &str, messages: &[TestMessage], publish: &str) -> WorkerRun {
    let database = TestDatabase::create_with_server_defaults().await;
    let topic = unique_name("bench");
    let group = unique_name("bench");
    create_topic(&topic, PARTITIONS).await;
    let positions = produce_batched(&topic, messages).await;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for (partition, offset) in positions {
        let end = ends.entry(partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    // The worker migrates its database itself, on an empty file, before the clock starts: the
    // baseline's database is migrated before its clock too, and installing a schema is not
    // throughput. (Not through a store of this build: a compared build of an earlier commit
    // refuses a database that holds migrations it does not know.)
    let migrated = Command::new(program)
        .args(["--source", "file:/dev/null", "--database-url", &database.url, "--metrics-addr", "off"])
        .args(["--publish", "off"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start sync-worker to migrate");
    assert!(migrated.success(), "the worker migrates a fresh database");
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let started = Instant::now();
    let mut worker = Command::new(program)
        .args(["--source", "kafka", "--database-url", &database.url, "--kafka-brokers", &catalog_testkit::brokers()])
        .args(["--topic", &topic, "--group", &group, "--metrics-addr", "off"])
        .args(["--publish", publish])
        .args(std::env::var("CATALOG_BENCH_WORKER_ARGS").unwrap_or_default().split_whitespace())
        .env("RUST_LOG", worker_log_filter())
        .stdout(Stdio::null())
        .spawn()
        .map(WorkerProcess)
        .expect("start sync-worker");
    let source = format!("kafka:{group}:{topic}");
    let mut first_batch: Option<(Duration, i64)> = None;
    loop {
        // Until the worker has stored a checkpoint, nothing is stored yet.
        let stored: HashMap<i32, i64> =
            sqlx::query_as("SELECT partition, next_offset FROM source_checkpoints WHERE source = $1")
                .bind(&source)
                .fetch_all(&pool)
                .await
                .unwrap_or_default()
                .into_iter()
                .collect();
        if first_batch.is_none() && !stored.is_empty() {
            first_batch = Some((started.elapsed(), stored.values().sum()));
        }
        if ends.iter().all(|(partition, end)| stored.get(partition).is_some_and(|next| next >= end)) {
            break;
        }
        assert!(worker.running(), "the worker exited before applying everything");
        assert!(started.elapsed() < Duration::from_secs(600), "the worker did not finish in 10 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let rss = peak_rss_mib(worker.id());
    worker.stop();
    pool.close().await;
    WorkerRun { elapsed, first_batch, peak_rss_mib: rss }
}

/// The SQL-only baseline (staging table, `INSERT … SELECT`) on a fresh database migrated to
/// this build's schema.
async fn bench_baseline(events: &[SupplierEvent]) -> Duration {
    let database = migrated_database().await;
    let incoming = catalog_testkit::incoming(events, "raw", Utc::now());
    staging_sql_baseline(&database.url, &incoming, BATCH).await
}

/// The naive worker, one transaction per event, over the first `N_NAIVE` events.
async fn bench_naive(events: &[SupplierEvent]) -> Duration {
    let database = migrated_database().await;
    let incoming = catalog_testkit::incoming(&events[..N_NAIVE], "naive", Utc::now());
    naive_per_event(&database.url, &incoming).await
}

async fn migrated_database() -> TestDatabase {
    let database = TestDatabase::create_with_server_defaults().await;
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect and migrate");
    store.pool().close().await;
    database
}

const STEADY_RATE: u64 = 5_000;
/// The latency run's worker flags (`CATALOG_BENCH_LATENCY_ARGS` replaces them): the
/// storefront allows what the feed needs, and nothing reads it back.
const LATENCY_ARGS: &str = "--storefront-rate 5000 --storefront-concurrency 32 --reconcile off";
const STEADY_SECONDS: u64 = 20;
const STEADY_ITEMS: u64 = 1_000;

/// Where an event's time went, per stage (each a sorted list over all events).
struct Stages {
    /// Produced → copied out of librdkafka by the worker (broker, fetch wait).
    fetched: Vec<Duration>,
    /// Fetched → its batch's transaction began (batch wait, queueing for the store).
    batched: Vec<Duration>,
    /// Transaction began → the storefront accepted a version at least as new (apply,
    /// commit, settle window, claim, send).
    published: Vec<Duration>,
}

/// Produces 5k events/s for 20 s while the worker publishes to the storefront; returns the
/// latency of every event (until the storefront accepted a version at least as new), the
/// storefront's accepted calls per second, and the latency split into stages.
async fn bench_publish_latency() -> (Vec<Duration>, f64, Stages) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let database = TestDatabase::create_with_server_defaults().await;
    let topic = unique_name("latency");
    let group = unique_name("latency");
    create_topic(&topic, PARTITIONS).await;
    let (url, accepted) = storefront().await;
    let worker = Command::new(THIS_WORKER)
        .args(["--source", "kafka", "--database-url", &database.url, "--kafka-brokers", &catalog_testkit::brokers()])
        .args(["--topic", &topic, "--group", &group, "--metrics-addr", "off", "--storefront-url", &url])
        .args(
            std::env::var("CATALOG_BENCH_LATENCY_ARGS").unwrap_or_else(|_| LATENCY_ARGS.to_owned()).split_whitespace(),
        )
        .env("RUST_LOG", worker_log_filter())
        .stdout(Stdio::null())
        .spawn()
        .map(WorkerProcess)
        .expect("start sync-worker");
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", catalog_testkit::brokers())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let base: chrono::DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("time");
    // Give the worker time to join the group before the clock starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut produced: Vec<(String, i64, Instant)> = Vec::new();
    let mut deliveries = Vec::new();
    let started = Instant::now();
    let started_wall = Utc::now();
    let wall = |at: Instant| started_wall + chrono::Duration::from_std(at - started).expect("short");
    let total = STEADY_RATE * STEADY_SECONDS;
    for n in 0..total {
        // Pace: event n is due at n / rate seconds.
        let due = started + Duration::from_micros(n * 1_000_000 / STEADY_RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let item = n % STEADY_ITEMS;
        let sku = format!("LAT-{item:05}");
        let quantity = n as i64;
        let event = SupplierEvent::new(
            catalog_core::EventId(uuid::Uuid::from_u128(u128::from(n) + 1)),
            catalog_core::OfferKey {
                tenant: catalog_core::TenantId::parse("canary").expect("valid"),
                supplier: catalog_core::SupplierId::parse("acme").expect("valid"),
                sku: catalog_core::Sku::parse(&sku).expect("valid"),
            },
            catalog_core::StockChange::Updated { quantity },
            base + chrono::Duration::milliseconds(n as i64),
            None,
        )
        .expect("valid event");
        let item_id =
            catalog_core::ItemKey { tenant: event.offer().tenant.clone(), sku: event.offer().sku.clone() }.item_id();
        let payload = encode(&event);
        let key = format!("canary/{sku}");
        produced.push((item_id.to_string(), quantity, Instant::now()));
        deliveries
            .push(producer.send_result(FutureRecord::to(&topic).key(&key).payload(&payload)).expect("queue has room"));
    }
    for delivery in deliveries {
        delivery.await.expect("producer").expect("delivered");
    }
    // Wait until the storefront holds every item's last quantity.
    let deadline = Instant::now() + Duration::from_secs(120);
    let last: HashMap<String, i64> = produced.iter().map(|(item, quantity, _)| (item.clone(), *quantity)).collect();
    loop {
        let done = {
            let accepted = accepted.lock().expect("storefront state");
            last.iter().all(|(item, quantity)| {
                accepted.get(item).is_some_and(|calls| calls.iter().any(|(q, _)| q >= quantity))
            })
        };
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the storefront did not reach the final quantities in 2 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.stop();
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let journal: HashMap<uuid::Uuid, (chrono::DateTime<Utc>, chrono::DateTime<Utc>)> =
        sqlx::query_as("SELECT event_id, received_at, decided_at FROM events WHERE event_id IS NOT NULL")
            .fetch_all(&pool)
            .await
            .expect("journal")
            .into_iter()
            .map(|(id, received, decided)| (id, (received, decided)))
            .collect();
    pool.close().await;
    let accepted = accepted.lock().expect("storefront state");
    let n_calls: usize = accepted.values().map(Vec::len).sum();
    let mut stages = Stages { fetched: Vec::new(), batched: Vec::new(), published: Vec::new() };
    let positive = |delta: chrono::Duration| delta.to_std().unwrap_or_default();
    let latencies = produced
        .iter()
        .enumerate()
        .map(|(n, (item, quantity, at))| {
            let seen =
                accepted[item].iter().filter(|(q, _)| q >= quantity).map(|(_, when)| *when).min().expect("published");
            let (received, decided) = journal[&uuid::Uuid::from_u128(n as u128 + 1)];
            stages.fetched.push(positive(received - wall(*at)));
            stages.batched.push(positive(decided - received));
            stages.published.push(positive(wall(seen) - decided));
            seen.saturating_duration_since(*at)
        })
        .collect();
    stages.fetched.sort();
    stages.batched.sort();
    stages.published.sort();
    (latencies, n_calls as f64 / STEADY_SECONDS as f64, stages)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

/// `cargo bench -p sync-worker --bench kafka_to_postgres [-- throughput|latency]`: both
/// parts by default, or the one named.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|arg| arg == "--bench") {
        return;
    }
    let only = args.iter().skip(1).find(|arg| !arg.starts_with('-')).cloned();
    let wanted = |part: &str| only.as_deref().is_none_or(|only| only == part);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        if wanted("throughput") {
            throughput().await;
        }
        if wanted("latency") {
            latency().await;
        }
    });
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
async fn throughput() {
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
    // Alternating rounds spread the machine's drift over both (runs minutes apart differ by
    // up to 30 % here); each ratio compares a worker run with the baseline just before it.
    let rate = |elapsed: Duration| N_EVENTS as f64 / elapsed.as_secs_f64();
    let mut ratios = Vec::new();
    let mut rates = Vec::new();
    let mut peak_rss: Option<f64> = None;
    let compare = std::env::var("CATALOG_BENCH_COMPARE_WORKER").ok();
    let mut compared = Vec::new();
    let mut naive_ratios = Vec::new();
    let mut rounds = Vec::new();
    for round in 1..=ROUNDS {
        let baseline = rate(bench_baseline(&events).await);
        let run = bench_worker(THIS_WORKER, &messages, "off").await;
        let worker = rate(run.elapsed);
        let naive = N_NAIVE as f64 / bench_naive(&events).await.as_secs_f64();
        let steady = run.steady_rate(N_EVENTS).unwrap_or(worker);
        println!(
            "e2e/round {round}: sql_only_baseline {baseline:>7.0} events/s, kafka_to_postgres {worker:>7.0} events/s (worker start on a migrated database to last checkpoint, --publish off), ratio {:.2}, first durable batch after {:.2?}, {steady:>7.0} events/s after it (ratio {:.2}), peak RSS {}; naive one transaction per event {naive:>6.0} events/s, worker / naive {:.1}",
            worker / baseline,
            run.first_batch.unwrap_or_default().0,
            steady / baseline,
            run.peak_rss_mib.map_or("unavailable".to_owned(), |rss| format!("{rss:.0} MiB")),
            worker / naive,
        );
        rounds.push(serde_json::json!({"round": round, "worker": worker, "worker_after_first_batch": steady, "sql_baseline": baseline, "naive": naive}));
        naive_ratios.push(worker / naive);
        ratios.push(worker / baseline);
        rates.push(worker);
        peak_rss = run.peak_rss_mib.map(|rss| peak_rss.map_or(rss, |peak: f64| peak.max(rss)));
        if let Some(program) = &compare {
            let other = rate(bench_worker(program, &messages, "off").await.elapsed);
            println!(
                "e2e/round {round}: compared worker {program} {other:>7.0} events/s; this worker / compared {:.3}",
                worker / other
            );
            compared.push(worker / other);
        }
    }
    if !compared.is_empty() {
        println!(
            "e2e/this worker / compared worker, median of {ROUNDS}: {:.3} (each round's pair run back to back)",
            median(&mut compared)
        );
    }
    write_bench_data(
        "baselines",
        &serde_json::json!({
            "title": format!("Kafka → PostgreSQL, {N_EVENTS} events per round, events/s (naive: {N_NAIVE})"),
            "rounds": rounds,
        }),
    );
    println!(
        "e2e/worker / naive one transaction per event, median of {ROUNDS}: {:.1} (lowest {:.1})",
        median(&mut naive_ratios.clone()),
        naive_ratios.iter().copied().fold(f64::INFINITY, f64::min),
    );
    let with_publisher = bench_worker(THIS_WORKER, &messages, "on").await;
    println!(
        "e2e/kafka_to_postgres {N_EVENTS} events, median of {ROUNDS}: {:.0} events/s; ratio to the baseline: median {:.2}, lowest {:.2}",
        median(&mut rates),
        median(&mut ratios),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
    );
    println!(
        "e2e/kafka_to_postgres with the log publisher draining the outbox meanwhile: {:>7.0} events/s, peak RSS {}",
        rate(with_publisher.elapsed),
        with_publisher.peak_rss_mib.map_or("unavailable".to_owned(), |rss| format!("{rss:.0} MiB")),
    );
    match peak_rss {
        Some(rss) => println!("e2e/worker peak RSS, highest of the --publish off rounds: {rss:.0} MiB"),
        None => println!("e2e/worker peak RSS: unavailable"),
    }
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
async fn latency() {
    let (mut latencies, calls_per_second, stages) = bench_publish_latency().await;
    latencies.sort();
    println!(
        "publish/steady {STEADY_RATE} events/s over {STEADY_ITEMS} items for {STEADY_SECONDS} s: event -> storefront accepted p50 {:?} p99 {:?} max {:?}; {calls_per_second:.0} accepted calls/s",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
    let mean = |sorted: &[Duration]| sorted.iter().map(Duration::as_secs_f64).sum::<f64>() / sorted.len() as f64;
    let total: f64 = [&stages.fetched, &stages.batched, &stages.published].iter().map(|sorted| mean(sorted)).sum();
    let mut stage_data = Vec::new();
    for (stage, sorted) in [
        ("produced -> fetched", &stages.fetched),
        ("fetched -> batch transaction began", &stages.batched),
        ("transaction began -> storefront accepted", &stages.published),
    ] {
        let share = mean(sorted) / total;
        println!(
            "publish/stage {stage}: p50 {:?} p99 {:?}, {:.0} % of the mean latency",
            percentile(sorted, 0.50),
            percentile(sorted, 0.99),
            share * 100.0
        );
        stage_data.push(serde_json::json!({
            "stage": stage, "p50_ms": ms(percentile(sorted, 0.50)), "p99_ms": ms(percentile(sorted, 0.99)), "share": share,
        }));
    }
    let bounds = [5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 150.0, 200.0, 300.0, 500.0, 1_000.0, f64::MAX];
    let buckets: Vec<serde_json::Value> = bounds
        .iter()
        .enumerate()
        .map(|(index, upper)| {
            let lower = if index == 0 { 0.0 } else { bounds[index - 1] };
            let count = latencies.iter().filter(|latency| (lower..*upper).contains(&ms(**latency))).count();
            let upper = if *upper == f64::MAX { ms(percentile(&latencies, 1.0)).max(lower) } else { *upper };
            serde_json::json!({"upper_ms": upper, "count": count})
        })
        .collect();
    write_bench_data(
        "latency",
        &serde_json::json!({
            "title": format!("Event → storefront accepted at a steady {STEADY_RATE} events/s ({} events)", latencies.len()),
            "buckets": buckets,
            "p50_ms": ms(percentile(&latencies, 0.50)),
            "p99_ms": ms(percentile(&latencies, 0.99)),
            "max_ms": ms(percentile(&latencies, 1.0)),
            "stages": stage_data,
        }),
    );
}
