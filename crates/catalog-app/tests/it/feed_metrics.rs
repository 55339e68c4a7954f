//! The feeds' gauges as the worker reports them from the store: a feed whose last run failed
//! is failing until a run completes, whatever its state by completed windows, and a feed
//! switched off says so; on SQLite and PostgreSQL.

use catalog_app::feeds::report_feeds_once;
use catalog_app::Metrics;
use catalog_core::{SupplierId, TenantId};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_sqlite::SqliteStore;
use catalog_store::{CompletedWindow, FeedKey, FeedSettings, FeedStore, PullFailure, StoreConfig, WindowKind};
use catalog_testkit::TestDatabase;
use chrono::{Duration, NaiveTime, Utc};

/// A SQLite store, and the directory it lives in.
async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store =
        SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("open");
    (store, directory)
}

/// A PostgreSQL store in a database of its own (`CATALOG_TEST_DATABASE_URL`).
async fn postgres() -> (PostgresStore, TestDatabase) {
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect");
    (store, database)
}

fn settings(supplier: &str) -> FeedSettings {
    FeedSettings {
        key: FeedKey {
            tenant: TenantId::parse("canary").expect("valid"),
            supplier: SupplierId::parse(supplier).expect("valid"),
        },
        base_url: "http://127.0.0.1:1".to_owned(),
        token_env: "FEED_TOKEN".to_owned(),
        go_live_date: (Utc::now() - Duration::days(3)).date_naive(),
        sync_frequency_hours: 6,
        timezone: "UTC".to_owned(),
        run_times: vec![NaiveTime::MIN],
        requests_per_second: None,
        sync_enabled: true,
    }
}

fn gauges(metrics: &Metrics, feed: &str) -> (i64, i64, [i64; 3]) {
    let state = |state: &str| metrics.feed_state.with_label_values(&[feed, state]).get();
    (
        metrics.feed_failing.with_label_values(&[feed]).get(),
        metrics.feed_sync_enabled.with_label_values(&[feed]).get(),
        [state("current"), state("behind"), state("stale")],
    )
}

async fn a_feed_whose_last_run_failed_is_failing_until_a_run_completes(store: &dyn FeedStore) {
    let (acme, zeta) = (settings("acme"), settings("zeta"));
    store.upsert_feed(&acme).await.expect("feed");
    store.upsert_feed(&zeta).await.expect("feed");
    let now = Utc::now();
    let window = CompletedWindow {
        kind: WindowKind::Incremental,
        since: now - Duration::hours(7),
        until: now - Duration::hours(1),
        completed_at: now - Duration::hours(1),
        n_records: 10,
        n_pages: 1,
        n_windows: 1,
        requested_at: None,
    };
    store.complete_window(&acme.key, &window).await.expect("window");
    let failure = PullFailure {
        key: acme.key.clone(),
        reason: "http_401".to_owned(),
        error: "the feed refused the token".to_owned(),
        body: None,
        supplier_hold_until: None,
    };
    store.record_pull_failure(&failure).await.expect("record");
    store.set_feed_sync(&zeta.key, false).await.expect("switch");

    let metrics = Metrics::new();
    report_feeds_once(store, &metrics, now).await.expect("report");
    assert_eq!(gauges(&metrics, "canary/acme"), (1, 1, [1, 0, 0]), "current by its windows, and failing since");
    assert_eq!(gauges(&metrics, "canary/zeta"), (0, 0, [0, 0, 1]), "never pulled, and switched off");

    assert!(store.resolve_pull_failure(&acme.key).await.expect("resolve"));
    report_feeds_once(store, &metrics, now + Duration::hours(8)).await.expect("report");
    assert_eq!(gauges(&metrics, "canary/acme"), (0, 1, [0, 1, 0]), "a run completed; no window for 9 hours");
}

#[tokio::test]
async fn a_feed_whose_last_run_failed_is_failing_until_a_run_completes_on_sqlite() {
    let (store, _directory) = sqlite().await;
    a_feed_whose_last_run_failed_is_failing_until_a_run_completes(&store).await;
}

#[tokio::test]
async fn a_feed_whose_last_run_failed_is_failing_until_a_run_completes_on_postgres() {
    let (store, _database) = postgres().await;
    a_feed_whose_last_run_failed_is_failing_until_a_run_completes(&store).await;
}

/// A feed configured ahead of its go-live date is `not_live`, not `stale` (decision 0054):
/// `CatalogFeedStale` does not fire for a feed nothing is to be pulled of yet.
async fn a_feed_not_live_yet_is_not_stale(store: &dyn FeedStore) {
    let ahead = FeedSettings { go_live_date: (Utc::now() + Duration::days(3)).date_naive(), ..settings("acme") };
    store.upsert_feed(&ahead).await.expect("feed");
    let metrics = Metrics::new();
    report_feeds_once(store, &metrics, Utc::now()).await.expect("report");
    assert_eq!(gauges(&metrics, "canary/acme"), (0, 1, [0, 0, 0]), "neither current, behind nor stale");
    assert_eq!(metrics.feed_state.with_label_values(&["canary/acme", "not_live"]).get(), 1);
}

#[tokio::test]
async fn a_feed_not_live_yet_is_not_stale_on_sqlite() {
    let (store, _directory) = sqlite().await;
    a_feed_not_live_yet_is_not_stale(&store).await;
}

#[tokio::test]
async fn a_feed_not_live_yet_is_not_stale_on_postgres() {
    let (store, _database) = postgres().await;
    a_feed_not_live_yet_is_not_stale(&store).await;
}

/// A feed whose stored time zone this build does not know (written by hand, or dropped by a
/// newer tz database) has its status read in UTC: it used to fail the status of every feed,
/// the admin API's `GET /v1/feeds` and the support page's feeds with it.
#[tokio::test]
async fn a_feed_with_an_unknown_time_zone_leaves_every_status_readable() {
    let (store, _directory) = sqlite().await;
    let mut mars = settings("mars");
    mars.timezone = "Mars/Olympus_Mons".to_owned();
    store.upsert_feed(&settings("acme")).await.expect("feed");
    store.upsert_feed(&mars).await.expect("feed");
    let statuses = catalog_app::feeds::feed_statuses(&store, Utc::now()).await.expect("every status");
    let suppliers: Vec<String> = statuses.iter().map(|status| status.feed.settings.key.supplier.to_string()).collect();
    assert_eq!(suppliers, ["acme", "mars"]);
}
