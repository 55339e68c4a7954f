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

/// The last success of the feeds' report, in seconds since the epoch.
fn feeds_reported_at(metrics: &Metrics) -> Option<i64> {
    let prefix = "catalog_report_last_success_timestamp_seconds{report=\"feeds\"} ";
    metrics.render().lines().find_map(|line| line.strip_prefix(prefix).and_then(|value| value.parse().ok()))
}

/// The feeds' gauges say how old they are, as the signals' and the outbox's do: a read that
/// fails leaves the last success's time, from the reporter's start on, until a read succeeds
/// (`CatalogReportsStale`). Before, a feed that turned stale while the reads failed showed
/// current, and nothing said the gauges had stopped moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feeds_report_says_how_old_its_gauges_are_on_postgres() {
    let (store, database) = postgres().await;
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    sqlx::query("ALTER TABLE feeds RENAME TO feeds_away").execute(&pool).await.expect("rename");
    let metrics = Metrics::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = Utc::now().timestamp();
    let reporter = tokio::spawn(catalog_app::feeds::report_feeds(
        std::sync::Arc::new(store),
        metrics.clone(),
        std::time::Duration::from_millis(100),
        shutdown.clone(),
    ));
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let at = feeds_reported_at(&metrics).expect("a series from the start");
    assert!((started..=started + 1).contains(&at), "the start, {at} (started {started})");
    metrics.report_succeeded_at.with_label_values(&["feeds"]).set(0);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(feeds_reported_at(&metrics), Some(0), "no success while the feeds cannot be read");

    sqlx::query("ALTER TABLE feeds_away RENAME TO feeds").execute(&pool).await.expect("rename");
    let mut reported = false;
    for _ in 0..100 {
        reported = feeds_reported_at(&metrics).is_some_and(|at| at >= started);
        if reported {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(reported, "a success once the feeds can be read");
    shutdown.cancel();
    reporter.await.expect("the reporter ends");
}
