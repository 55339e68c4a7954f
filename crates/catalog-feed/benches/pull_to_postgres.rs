//! Benchmark: 1,000,000 records pulled from a local feed API (pages of 1,000) and applied to
//! PostgreSQL through the applier, the way `sync-worker --source pull --once` does. The
//! target (issue 16) is at least 20,000 records/s; the figure goes to docs/benchmarks.md.
//! Run with `cargo bench -p catalog-feed --bench pull_to_postgres` (PostgreSQL required;
//! `CATALOG_BENCH_FEED_RECORDS` changes the count).

use std::sync::Arc;
use std::time::Instant;

use catalog_app::{Applier, BatchSink, Metrics};
use catalog_core::{SupplierId, TenantId};
use catalog_feed::{FeedSource, OnceScope, PullSettings};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::{CatalogStore, FeedKey, FeedSettings, StoreConfig};
use catalog_testkit::feed_api::{FeedApi, FeedRecord};
use catalog_testkit::TestDatabase;
use chrono::{Duration, NaiveTime, Utc};
use tokio_util::sync::CancellationToken;

#[allow(clippy::print_stdout)]
fn main() {
    let n_records: usize =
        std::env::var("CATALOG_BENCH_FEED_RECORDS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let database = TestDatabase::create_with_server_defaults().await;
        let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let store: Arc<dyn CatalogStore> = Arc::new(store);
        // A day of changes to 100,000 SKUs, ten each, all in the first incremental window.
        let now = Utc::now();
        let span = Duration::hours(20).num_milliseconds();
        let records: Vec<FeedRecord> = (0..n_records as i64)
            .map(|i| FeedRecord {
                sku: format!("SKU-{:06}", i % 100_000),
                quantity: (i * 37) % 10_000,
                updated_at: now - Duration::hours(21) + Duration::milliseconds(i * span / n_records as i64),
                sequence: Some(i as u64),
            })
            .collect();
        let api = FeedApi::start(records, "bench-token").await;
        let metrics = Metrics::new();
        let sink: Arc<dyn BatchSink> = Arc::new(Applier::new(store.clone(), metrics.clone(), CancellationToken::new()));
        let source = FeedSource::new(
            PullSettings::default(),
            store.clone(),
            sink,
            metrics,
            Arc::new(|_| Some("bench-token".to_owned())),
        )
        .expect("source");
        let feed = FeedSettings {
            key: FeedKey {
                tenant: TenantId::parse("bench").expect("tenant"),
                supplier: SupplierId::parse("acme").expect("supplier"),
            },
            base_url: api.base_url(),
            token_env: "BENCH_FEED_TOKEN".to_owned(),
            go_live_date: (now - Duration::days(1)).date_naive(),
            sync_frequency_hours: 6,
            timezone: "UTC".to_owned(),
            run_times: vec![NaiveTime::from_hms_opt(0, 0, 0).expect("midnight")],
            requests_per_second: None,
            sync_enabled: true,
        };
        source.bootstrap(std::slice::from_ref(&feed)).await.expect("bootstrap");
        let started = Instant::now();
        let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
        let elapsed = started.elapsed();
        assert_eq!(report.failed, [], "the pull failed");
        let windows = store.feed_windows(&feed.key).await.expect("windows");
        let pulled: u64 = windows.iter().map(|window| window.n_records).sum();
        assert_eq!(pulled, n_records as u64, "every record pulled once: {windows:?}");
        let rate = n_records as f64 / elapsed.as_secs_f64();
        println!(
            "pull_to_postgres: {n_records} records in {:.1} s = {rate:.0} records/s (target >= 20,000)",
            elapsed.as_secs_f64()
        );
    });
}
