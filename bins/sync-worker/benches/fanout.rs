//! Fan-out to five marketplaces (issue #18): a steady 5,000 events/s for 20 s, Kafka →
//! sync-worker (release build, its own process, PostgreSQL) → Shopify, Amazon, Walmart, eBay
//! and Mercado Libre, each a local server speaking its platform's documented shapes
//! (`catalog_testkit::marketplaces`), none throttling. Reports, per channel, the latency from
//! an event's production until that channel holds its quantity (or a newer one), and the
//! requests it answered. Needs PostgreSQL and a Kafka-protocol broker; run through
//! `cargo xtask bench`. `CATALOG_BENCH_FANOUT_ARGS` adds worker flags;
//! `CATALOG_BENCH_FANOUT_FEEDS=1` sends Amazon's and Walmart's quantities in feeds (decision
//! 0029), as a seller at this rate would, instead of one request per listing.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalog_core::{encode, SupplierEvent};
use catalog_testkit::marketplaces::{Faults, Marketplace, Platform};
use catalog_testkit::{create_topic, unique_name, write_bench_data, PostgresCpu, TestDatabase};

mod support;

use support::{peak_rss_mib, worker_log_filter, WorkerProcess};

const THIS_WORKER: &str = env!("CARGO_BIN_EXE_sync-worker");
const PARTITIONS: i32 = 4;
const RATE: u64 = 5_000;
const SECONDS: u64 = 20;
const ITEMS: u64 = 1_000;
/// Each channel's pace: far above what the feed needs, so only the platforms' own answers
/// (none throttle here) could hold a channel.
const CHANNEL: &str = r#""requests_per_second": 20000, "concurrency": 32"#;

fn sku(item: u64) -> String {
    format!("FAN-{item:05}")
}

/// Whether Amazon and Walmart take feeds in this run.
fn feeds() -> bool {
    std::env::var("CATALOG_BENCH_FANOUT_FEEDS").is_ok_and(|value| value == "1")
}

/// The channels file: the five marketplaces at their local addresses, every SKU listed.
fn channels_file(marketplaces: &[Marketplace], path: &std::path::Path) {
    // A feed's status is read every 100 ms here (Amazon's own pace is minutes).
    let feed = if feeds() { r#", "feed": {"poll_interval_ms": 100}"# } else { "" };
    let listings = |prefix: &str| {
        (0..ITEMS).map(|item| format!(r#""{}": "{prefix}{}""#, sku(item), 10_000 + item)).collect::<Vec<_>>().join(", ")
    };
    let url = |platform: Platform| {
        marketplaces.iter().find(|market| market.platform == platform).expect("started").base_url.clone()
    };
    let text = format!(
        r#"[
          {{"name": "shopify", {CHANNEL}, "listings": {{{shopify_listings}}},
            "adapter": {{"kind": "shopify", "base_url": "{shopify}", "location_id": "gid://shopify/Location/1", "access_token_env": "FANOUT_SECRET"}}}},
          {{"name": "amazon", {CHANNEL},
            "adapter": {{"kind": "amazon", "base_url": "{amazon}", "token_url": "{amazon}/auth/o2/token", "seller_id": "A1", "marketplace_id": "ATVPDKIKX0DER", "client_id": "c", "client_secret_env": "FANOUT_SECRET", "refresh_token_env": "FANOUT_SECRET"{feed}}}}},
          {{"name": "walmart", {CHANNEL},
            "adapter": {{"kind": "walmart", "base_url": "{walmart}", "client_id": "c", "client_secret_env": "FANOUT_SECRET"{feed}}}}},
          {{"name": "ebay", {CHANNEL},
            "adapter": {{"kind": "ebay", "base_url": "{ebay}", "client_id": "c", "client_secret_env": "FANOUT_SECRET", "refresh_token_env": "FANOUT_SECRET"}}}},
          {{"name": "mercadolibre", {CHANNEL}, "listings": {{{meli_listings}}},
            "adapter": {{"kind": "mercadolibre", "base_url": "{meli}", "client_id": "c", "client_secret_env": "FANOUT_SECRET", "refresh_token_env": "FANOUT_SECRET", "refresh_token_file": "{ml_token}"}}}}
        ]"#,
        shopify = url(Platform::Shopify),
        amazon = url(Platform::Amazon),
        walmart = url(Platform::Walmart),
        ebay = url(Platform::Ebay),
        meli = url(Platform::MercadoLibre),
        shopify_listings = listings("gid://shopify/InventoryItem/"),
        meli_listings = listings("MLA"),
        ml_token = path.with_file_name("mercadolibre.token").display(),
    );
    std::fs::write(path, text).expect("write the channels file");
}

/// The listing a channel knows item `item` by.
fn listing(platform: Platform, item: u64) -> String {
    match platform {
        Platform::Shopify => format!("gid://shopify/InventoryItem/{}", 10_000 + item),
        Platform::MercadoLibre => format!("MLA{}", 10_000 + item),
        _ => sku(item),
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let platforms = [Platform::Shopify, Platform::Amazon, Platform::Walmart, Platform::Ebay, Platform::MercadoLibre];
    let mut marketplaces = Vec::new();
    for platform in platforms {
        marketplaces.push(Marketplace::start(platform, Faults::default()).await);
    }
    let directory = tempfile::tempdir().expect("temp dir");
    let channels = directory.path().join("channels.json");
    channels_file(&marketplaces, &channels);
    let database = TestDatabase::create_with_server_defaults().await;
    let (topic, group) = (unique_name("fanout"), unique_name("fanout"));
    create_topic(&topic, PARTITIONS).await;
    let extra = std::env::var("CATALOG_BENCH_FANOUT_ARGS").unwrap_or_default();
    let mut worker = Command::new(THIS_WORKER)
        .args(["--source", "kafka", "--database-url", &database.url, "--kafka-brokers", &catalog_testkit::brokers()])
        .args(["--topic", &topic, "--group", &group, "--metrics-addr", "off", "--reconcile", "off"])
        .arg("--channels-file")
        .arg(&channels)
        .args(extra.split_whitespace())
        .env("FANOUT_SECRET", "local-secret")
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
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(worker.running(), "the worker started with the channels file");
    let base: chrono::DateTime<chrono::Utc> = "2026-06-01T12:00:00Z".parse().expect("time");
    let mut produced: Vec<(u64, i64, Instant)> = Vec::new();
    let mut deliveries = Vec::new();
    let commits_before = commits(&database).await;
    let cpu = PostgresCpu::now();
    let started = Instant::now();
    for n in 0..RATE * SECONDS {
        let due = started + Duration::from_micros(n * 1_000_000 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let item = n % ITEMS;
        let event = SupplierEvent::new(
            catalog_core::EventId(uuid::Uuid::from_u128(u128::from(n) + 1)),
            catalog_core::OfferKey {
                tenant: catalog_core::TenantId::parse("canary").expect("valid"),
                supplier: catalog_core::SupplierId::parse("acme").expect("valid"),
                sku: catalog_core::Sku::parse(&sku(item)).expect("valid"),
            },
            catalog_core::StockChange::Updated { quantity: n as i64 },
            base + chrono::Duration::milliseconds(n as i64),
            None,
        )
        .expect("valid event");
        let key = format!("canary/{}", sku(item));
        produced.push((item, n as i64, Instant::now()));
        deliveries.push(
            producer.send_result(FutureRecord::to(&topic).key(&key).payload(&encode(&event))).expect("queue has room"),
        );
    }
    for delivery in deliveries {
        delivery.await.expect("producer").expect("delivered");
    }
    let last: HashMap<u64, i64> = produced.iter().map(|(item, quantity, _)| (*item, *quantity)).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    for market in &marketplaces {
        loop {
            let quantities = market.quantities();
            let done = last.iter().all(|(item, quantity)| {
                quantities.get(&listing(market.platform, *item)).is_some_and(|held| held >= quantity)
            });
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "{:?} did not reach the final quantities in 3 minutes", market.platform);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (pg_cpu, elapsed) = (cpu.spent_since(), started.elapsed());
    let n_commits = commits(&database).await - commits_before;
    let peak_rss = peak_rss_mib(worker.id());
    worker.stop();

    let mut rows = Vec::new();
    let form = if feeds() { "Amazon and Walmart in feeds" } else { "one request per listing on Amazon and Walmart" };
    println!("fan-out: {RATE} events/s for {SECONDS} s over {ITEMS} items to five marketplaces ({form})");
    println!("| channel | p50 | p99 | max | requests | requests/s |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for market in &marketplaces {
        let history = market.history();
        let history = history.lock().expect("marketplace state");
        let mut latencies: Vec<Duration> = produced
            .iter()
            .map(|(item, quantity, at)| {
                let sets = &history[&listing(market.platform, *item)];
                let seen = sets.iter().filter(|(q, _)| q >= quantity).map(|(_, when)| *when).min().expect("held");
                seen.saturating_duration_since(*at)
            })
            .collect();
        latencies.sort();
        let (p50, p99, max) =
            (percentile(&latencies, 0.5), percentile(&latencies, 0.99), *latencies.last().expect("some"));
        let name = format!("{:?}", market.platform).to_lowercase();
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms | {} | {:.0} |",
            ms(p50),
            ms(p99),
            ms(max),
            market.n_requests(),
            market.n_requests() as f64 / SECONDS as f64
        );
        rows.push(serde_json::json!({
            "channel": name, "p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max), "requests": market.n_requests(),
        }));
    }
    if let Some(peak) = peak_rss {
        println!("worker peak RSS {peak:.0} MiB");
    }
    let pg_share = pg_cpu.as_secs_f64() / elapsed.as_secs_f64();
    println!(
        "PostgreSQL: {:.1} s of CPU in {:.1} s until every channel held its last quantities ({:.0} % of one core); {n_commits} transactions committed ({:.0}/s)",
        pg_cpu.as_secs_f64(),
        elapsed.as_secs_f64(),
        pg_share * 100.0,
        n_commits as f64 / elapsed.as_secs_f64()
    );
    write_bench_data(
        if feeds() { "fanout-feeds" } else { "fanout" },
        &serde_json::json!({ "events_per_second": RATE, "seconds": SECONDS, "items": ITEMS, "feeds": feeds(), "channels": rows, "peak_rss_mib": peak_rss,
            "postgres_cpu_share": pg_share, "postgres_commits": n_commits }),
    );
}

/// Transactions committed in the benchmark's database so far (PostgreSQL's statistics, which
/// its backends report within a second).
async fn commits(database: &TestDatabase) -> i64 {
    use sqlx::Connection;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let mut connection = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&mut connection)
        .await
        .expect("pg_stat_database")
}
