//! Soak (issue 17): 20 million events end to end, Kafka → sync-worker (release build, its own
//! process, default settings) → PostgreSQL, publishing to a storefront in this process, to show
//! cost stays flat as the journal grows. Every event is produced first (in chunks, so this
//! process never holds the feed), then the worker is timed; as each million becomes durable
//! it reports that million's throughput, the worker's batch-apply p99 over it (from its
//! `/metrics`), its resident memory, and the journal's and claims' table and index sizes.
//! Results go to `docs/bench-data/soak.json` (`cargo xtask charts` draws them).
//!
//! `CATALOG_SOAK_EVENTS` runs a shorter soak (for example 2000000). Needs PostgreSQL and a
//! Kafka-protocol broker (`CATALOG_TEST_KAFKA_BROKERS`); the broker holds every event in
//! memory (tansu's `memory://` storage: about 4 GB for 20 million).

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalog_core::{encode, EventId, OfferKey, Sku, StockChange, SupplierEvent, SupplierId, TenantId};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::StoreConfig;
use catalog_testkit::{create_topic, produce_batched, unique_name, write_bench_data, TestDatabase, TestMessage};
use support::{rss_mib, storefront, worker_log_filter, WorkerProcess};

const PARTITIONS: i32 = 4;
const MILLION: u64 = 1_000_000;
/// Events produced per round trip to the broker.
const PRODUCE_CHUNK: usize = 500_000;

/// Event `n` of the soak feed: 30,000 offers of one tenant (3 suppliers × 10,000 SKUs), each
/// receiving an event every 30,000; of an offer's events every fourth is an adjustment, the
/// others snapshots (a supplier feed with occasional deltas), and 1 % are exact redeliveries.
/// (`bench_events`, the other benchmarks' feed, gives a quarter of the offers adjustments only:
/// over 20 million events those list hundreds of adjustments each, see docs/benchmarks.md.)
fn soak_event(n: usize) -> SupplierEvent {
    let base: chrono::DateTime<chrono::Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
    let id = if n % 100 == 99 { n - 1 } else { n };
    let offer = OfferKey {
        tenant: TenantId::parse("canary").expect("valid tenant"),
        supplier: SupplierId::parse(&format!("supplier-{}", n % 3)).expect("valid supplier"),
        sku: Sku::parse(&format!("SKU-{:06}", (n / 3) % 10_000)).expect("valid sku"),
    };
    let change = if (n / 30_000) % 4 == 1 {
        StockChange::Adjusted { delta: (n % 5) as i64 + 1 }
    } else {
        StockChange::Updated { quantity: (n % 1000) as i64 }
    };
    let updated_at = base + chrono::Duration::milliseconds(n as i64);
    SupplierEvent::new(EventId(uuid::Uuid::from_u128(id as u128 + 1)), offer, change, updated_at, Some(n as u64))
        .expect("valid event")
}

/// The partition of event `n`: by SKU, 2,500 SKUs each.
fn soak_partition(n: usize) -> i32 {
    ((n / 3) % 10_000 % PARTITIONS as usize) as i32
}

/// One million's figures, as `docs/bench-data/soak.json` holds them.
#[derive(serde::Serialize)]
struct Point {
    million: u64,
    events_per_second: f64,
    batch_apply_p99_ms: f64,
    rss_mib: f64,
    journal_mib: f64,
    claims_mib: f64,
    indexes_mib: f64,
    /// WAL PostgreSQL wrote over this million.
    wal_mib: f64,
    /// Checkpoints PostgreSQL began over this million (timed or requested).
    checkpoints: i64,
}

/// Blocks each table (heap and TOAST) and each index of the soak's database read from outside
/// PostgreSQL's buffer cache so far: where growth costs reads.
async fn blocks_read(pool: &sqlx::PgPool) -> HashMap<String, i64> {
    sqlx::query_as(
        "SELECT relname::text || ' heap', (coalesce(heap_blks_read, 0) + coalesce(toast_blks_read, 0)
                                          + coalesce(tidx_blks_read, 0))::int8
         FROM pg_statio_user_tables
         UNION ALL
         SELECT indexrelname::text, coalesce(idx_blks_read, 0)::int8 FROM pg_statio_user_indexes",
    )
    .fetch_all(pool)
    .await
    .expect("block reads")
    .into_iter()
    .collect()
}

/// MiB read from the machine's disks so far (`/proc/diskstats`, whole disks): reads the
/// operating system's page cache did not serve.
fn disk_read_mib() -> f64 {
    let text = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
    let sectors: u64 = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = fields.get(2)?;
            let whole_disk = !name.starts_with("loop") && !name.chars().last()?.is_ascii_digit();
            whole_disk.then(|| fields.get(5)?.parse::<u64>().ok()).flatten()
        })
        .sum();
    sectors as f64 * 512.0 / (1024.0 * 1024.0)
}

/// The relations that read the most blocks between two samples, most first.
fn most_read(before: &HashMap<String, i64>, after: &HashMap<String, i64>) -> String {
    let mut reads: Vec<(i64, &str)> = after
        .iter()
        .map(|(relation, read)| (read - before.get(relation).copied().unwrap_or(0), relation.as_str()))
        .filter(|(read, _)| *read > 0)
        .collect();
    reads.sort_by(|a, b| b.cmp(a));
    reads.iter().take(5).map(|(read, relation)| format!("{relation} {read}")).collect::<Vec<_>>().join(", ")
}

/// What PostgreSQL's backends of the soak's database were doing, sampled every 50 ms: each
/// active statement (or autovacuum) with its wait, and how many samples found it so. Taken
/// and reset at each million, it shows which statement a slowing million spends its time in.
type Activity = std::sync::Arc<std::sync::Mutex<HashMap<String, u64>>>;

fn sample_activity(pool: sqlx::PgPool, database: String) -> Activity {
    let activity = Activity::default();
    let samples = activity.clone();
    tokio::spawn(async move {
        loop {
            let active: Vec<(String,)> = sqlx::query_as(
                "SELECT CASE WHEN backend_type = 'client backend'
                             THEN left(regexp_replace(query, '\\s+', ' ', 'g'), 48)
                             ELSE backend_type || ' ' || left(query, 40) END
                        || coalesce(' [' || wait_event || ']', '')
                 FROM pg_stat_activity
                 WHERE datname = $1 AND state <> 'idle' AND pid <> pg_backend_pid()",
            )
            .bind(&database)
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
            {
                let mut counts = samples.lock().expect("activity samples");
                *counts.entry(String::from("(samples)")).or_default() += 1;
                for (what,) in active {
                    *counts.entry(what).or_default() += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    activity
}

/// The statements most often found active since the last call, with the share of samples.
fn busiest(activity: &Activity) -> String {
    let counts = std::mem::take(&mut *activity.lock().expect("activity samples"));
    let samples = counts.get("(samples)").copied().unwrap_or(1).max(1) as f64;
    let mut busy: Vec<(u64, &String)> =
        counts.iter().filter(|(what, _)| what.as_str() != "(samples)").map(|(what, n)| (*n, what)).collect();
    busy.sort_by(|a, b| b.cmp(a));
    busy.iter()
        .take(6)
        .map(|(n, what)| format!("{:.0} % {what}", 100.0 * *n as f64 / samples))
        .collect::<Vec<_>>()
        .join("; ")
}

/// PostgreSQL's WAL position (bytes) and checkpoints so far: what a million cost the server
/// beyond the tables, and whether its first checkpoint fell in it.
async fn wal_and_checkpoints(pool: &sqlx::PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8,
                (checkpoints_timed + checkpoints_req)::int8 FROM pg_stat_bgwriter",
    )
    .fetch_one(pool)
    .await
    .expect("WAL position and checkpoints")
}

/// The worker's batch-apply histogram, cumulative per bucket (seconds → count), summed over labels.
async fn apply_histogram(client: &reqwest::Client, metrics_url: &str) -> Vec<(f64, f64)> {
    let Ok(response) = client.get(metrics_url).send().await else { return Vec::new() };
    let text = response.text().await.unwrap_or_default();
    let mut buckets: HashMap<String, f64> = HashMap::new();
    for line in text.lines().filter(|line| line.starts_with("catalog_batch_apply_seconds_bucket{")) {
        let Some(le) = line.split("le=\"").nth(1).and_then(|rest| rest.split('"').next()) else { continue };
        let Some(count) = line.rsplit(' ').next().and_then(|value| value.parse::<f64>().ok()) else { continue };
        *buckets.entry(le.to_owned()).or_default() += count;
    }
    let mut sorted: Vec<(f64, f64)> = buckets
        .into_iter()
        .map(|(le, count)| (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) }, count))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted
}

/// The p99 bucket bound, in ms, of the batches between two scrapes.
fn p99_ms(before: &[(f64, f64)], after: &[(f64, f64)]) -> f64 {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, count)| (*le, count - before.iter().find(|(b, _)| b == le).map_or(0.0, |(_, c)| *c)))
        .collect();
    let total = delta.last().map_or(0.0, |(_, count)| *count);
    delta.iter().find(|(_, count)| *count >= 0.99 * total).map_or(f64::NAN, |(le, _)| le * 1_000.0)
}

async fn sizes_mib(pool: &sqlx::PgPool) -> (f64, f64, f64) {
    let (journal, journal_indexes, claims, claims_indexes): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(pg_table_size(inhrelid)), 0)::int8 FROM pg_inherits WHERE inhparent = 'events'::regclass),
                (SELECT coalesce(sum(pg_indexes_size(inhrelid)), 0)::int8 FROM pg_inherits WHERE inhparent = 'events'::regclass),
                pg_table_size('event_claims'), pg_indexes_size('event_claims')",
    )
    .fetch_one(pool)
    .await
    .expect("sizes");
    let mib = |bytes: i64| bytes as f64 / (1024.0 * 1024.0);
    (mib(journal), mib(claims), mib(journal_indexes + claims_indexes))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|arg| arg == "--bench") {
        return;
    }
    let n_events: u64 = std::env::var("CATALOG_SOAK_EVENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(20 * MILLION);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(soak(n_events));
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
async fn soak(n_events: u64) {
    let database = TestDatabase::create_with_server_defaults().await;
    // Migrated by this build before the worker starts, so the size queries find the tables.
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect and migrate");
    let pool = store.pool().clone();
    let topic = unique_name("soak");
    let group = unique_name("soak");
    create_topic(&topic, PARTITIONS).await;
    let produced_at = Instant::now();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for first in (0..n_events as usize).step_by(PRODUCE_CHUNK) {
        let messages: Vec<TestMessage> = (first..(first + PRODUCE_CHUNK).min(n_events as usize))
            .map(|n| {
                let event = soak_event(n);
                TestMessage {
                    key: Some(format!("{}/{}", event.offer().tenant, event.offer().sku)),
                    payload: Some(encode(&event).into_bytes()),
                    traceparent: None,
                    // Every partition gets the same share (a SKU's events stay in one), so
                    // the partitions end together and the last million is not a drain of one.
                    partition: Some(soak_partition(n)),
                }
            })
            .collect();
        for (partition, offset) in produce_batched(&topic, &messages).await {
            let end = ends.entry(partition).or_insert(0);
            *end = (*end).max(offset + 1);
        }
    }
    println!("soak/produced {n_events} events in {:.0?}", produced_at.elapsed());

    let (url, accepted) = storefront().await;
    let metrics_address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("address")
    };
    let metrics_url = format!("http://{metrics_address}/metrics");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "kafka", "--database-url", &database.url, "--kafka-brokers", &catalog_testkit::brokers()])
        .args(["--topic", &topic, "--group", &group, "--metrics-addr", &metrics_address.to_string()])
        .args(["--storefront-url", &url, "--reconcile", "off"])
        .env("RUST_LOG", worker_log_filter())
        .stdout(Stdio::null())
        .spawn()
        .map(WorkerProcess)
        .expect("start sync-worker");
    let source = format!("kafka:{group}:{topic}");
    let total: i64 = ends.values().sum();
    let mut points: Vec<Point> = Vec::new();
    let mut last_mark = Instant::now();
    let mut histogram_before = Vec::new();
    let mut wal_before = wal_and_checkpoints(&pool).await;
    let mut reads_before = blocks_read(&pool).await;
    let mut disk_before = disk_read_mib();
    let activity = sample_activity(pool.clone(), database.name.clone());
    let mut peak_rss: f64 = 0.0;
    loop {
        let stored: HashMap<i32, i64> =
            sqlx::query_as("SELECT partition, next_offset FROM source_checkpoints WHERE source = $1")
                .bind(&source)
                .fetch_all(&pool)
                .await
                .expect("checkpoints")
                .into_iter()
                .collect();
        let applied: i64 =
            ends.iter().map(|(partition, end)| stored.get(partition).copied().unwrap_or(0).min(*end)).sum();
        let rss = rss_mib(worker.id()).unwrap_or(f64::NAN);
        peak_rss = peak_rss.max(rss);
        let next = (points.len() as u64 + 1) * MILLION;
        if applied as u64 >= next.min(total as u64) {
            let now = Instant::now();
            let histogram = apply_histogram(&client, &metrics_url).await;
            let (journal_mib, claims_mib, indexes_mib) = sizes_mib(&pool).await;
            let wal = wal_and_checkpoints(&pool).await;
            let in_this = next.min(total as u64) - (points.len() as u64 * MILLION);
            let point = Point {
                million: points.len() as u64 + 1,
                events_per_second: in_this as f64 / (now - last_mark).as_secs_f64(),
                batch_apply_p99_ms: p99_ms(&histogram_before, &histogram),
                rss_mib: rss,
                journal_mib,
                claims_mib,
                indexes_mib,
                wal_mib: (wal.0 - wal_before.0) as f64 / (1024.0 * 1024.0),
                checkpoints: wal.1 - wal_before.1,
            };
            println!(
                "soak/million {:>2}: {:>6.0} events/s, batch apply p99 <= {:>5.0} ms, RSS {:>4.0} MiB, journal {:>6.0} MiB, claims {:>5.0} MiB, indexes {:>6.0} MiB, WAL {:>5.0} MiB, checkpoints {}",
                point.million, point.events_per_second, point.batch_apply_p99_ms, point.rss_mib, point.journal_mib, point.claims_mib, point.indexes_mib, point.wal_mib, point.checkpoints
            );
            wal_before = wal;
            let reads = blocks_read(&pool).await;
            let disk = disk_read_mib();
            println!(
                "soak/million {:>2}: disk read {:.0} MiB; blocks read past the buffer cache: {}",
                point.million,
                disk - disk_before,
                most_read(&reads_before, &reads)
            );
            println!("soak/million {:>2}: active in PostgreSQL: {}", point.million, busiest(&activity));
            reads_before = reads;
            disk_before = disk;
            points.push(point);
            last_mark = now;
            histogram_before = histogram;
            if applied >= total {
                break;
            }
            continue;
        }
        assert!(worker.running(), "the worker exited before applying everything");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    worker.stop();
    let calls: usize = accepted.lock().expect("storefront state").values().map(Vec::len).sum();
    let first = points.first().map_or(f64::NAN, |point| point.events_per_second);
    let last = points.last().map_or(f64::NAN, |point| point.events_per_second);
    let rss: Vec<f64> = points.iter().map(|point| point.rss_mib).collect();
    println!(
        "soak/{n_events} events in {elapsed:.0?}: {:.0} events/s overall; last million / first million {:.2}; RSS at each million {:.0}..{:.0} MiB (peak sampled {peak_rss:.0} MiB); storefront accepted {calls} calls",
        n_events as f64 / elapsed.as_secs_f64(),
        last / first,
        rss.iter().copied().fold(f64::INFINITY, f64::min),
        rss.iter().copied().fold(0.0, f64::max),
    );
    write_bench_data(
        "soak",
        &serde_json::json!({
            "title": format!("Soak: {} million events, Kafka → PostgreSQL, publishing to a storefront", n_events / MILLION),
            "points": points,
        }),
    );
    pool.close().await;
}
