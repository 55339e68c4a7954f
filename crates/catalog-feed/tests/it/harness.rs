//! What every test of the pull source starts from: a store, the applier as sink, a feed API
//! with generated records, and a `FeedSource` over them.

use std::sync::Arc;
use std::time::Duration;

use catalog_app::{Applier, BatchSink, Metrics};
use catalog_core::{SupplierId, TenantId};
use catalog_feed::{FeedSource, PullSettings, RetrySettings, TokenLookup};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_sqlite::SqliteStore;
use catalog_store::{CatalogStore, FeedKey, FeedSettings, StoreConfig};
use catalog_testkit::feed_api::{FeedApi, FeedRecord};
use catalog_testkit::TestDatabase;
use chrono::{DateTime, Duration as TimeDelta, NaiveDate, NaiveTime, Utc};
use tokio_util::sync::CancellationToken;

pub(crate) const TOKEN: &str = "feed-token";
pub(crate) const TOKEN_ENV: &str = "TEST_FEED_TOKEN";

/// A store for one test, and what must outlive it.
pub(crate) struct Fixture {
    pub(crate) store: Arc<dyn CatalogStore>,
    pub(crate) metrics: Metrics,
    _database: Option<TestDatabase>,
    _directory: Option<tempfile::TempDir>,
}

pub(crate) async fn sqlite() -> Fixture {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store =
        SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("open");
    Fixture { store: Arc::new(store), metrics: Metrics::new(), _database: None, _directory: Some(directory) }
}

pub(crate) async fn postgres() -> Fixture {
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Fixture { store: Arc::new(store), metrics: Metrics::new(), _database: Some(database), _directory: None }
}

pub(crate) fn key(supplier: &str) -> FeedKey {
    FeedKey {
        tenant: TenantId::parse("canary").expect("tenant"),
        supplier: SupplierId::parse(supplier).expect("supplier"),
    }
}

pub(crate) fn feed_settings(supplier: &str, api: &FeedApi, go_live_date: NaiveDate) -> FeedSettings {
    FeedSettings {
        key: key(supplier),
        base_url: api.base_url(),
        token_env: TOKEN_ENV.to_owned(),
        go_live_date,
        sync_frequency_hours: 6,
        timezone: "Europe/Berlin".to_owned(),
        run_times: ["00:00", "06:00", "12:00", "18:00"]
            .iter()
            .map(|time| NaiveTime::parse_from_str(time, "%H:%M").expect("time"))
            .collect(),
        requests_per_second: None,
        sync_enabled: true,
    }
}

/// Pull settings that make a test quick: small pages, short backoff and timeout.
pub(crate) fn quick_settings() -> PullSettings {
    PullSettings {
        page_size: 50,
        retry: RetrySettings {
            max_attempts: 6,
            max_throttled: 10,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            request_timeout: Duration::from_millis(700),
        },
        ..PullSettings::default()
    }
}

pub(crate) fn tokens(token: &'static str) -> TokenLookup {
    Arc::new(move |name| (name == TOKEN_ENV).then(|| token.to_owned()))
}

impl Fixture {
    /// The PostgreSQL database of a `postgres()` fixture.
    pub(crate) fn database(&self) -> &TestDatabase {
        self._database.as_ref().expect("a PostgreSQL fixture")
    }

    pub(crate) fn source(&self, settings: PullSettings, token: &'static str) -> FeedSource {
        self.source_with_tokens(settings, tokens(token))
    }

    pub(crate) fn source_with_tokens(&self, settings: PullSettings, tokens: TokenLookup) -> FeedSource {
        let sink: Arc<dyn BatchSink> =
            Arc::new(Applier::new(self.store.clone(), self.metrics.clone(), CancellationToken::new()));
        FeedSource::new(settings, self.store.clone(), sink, self.metrics.clone(), tokens).expect("source")
    }

    /// The feed's offers as stored, by SKU.
    pub(crate) async fn offers(&self, key: &FeedKey) -> std::collections::BTreeMap<String, i64> {
        self.store
            .feed_offers(key)
            .await
            .expect("offers")
            .into_iter()
            .map(|offer| (offer.sku.as_str().to_owned(), offer.state.quantity()))
            .collect()
    }

    pub(crate) fn metric(&self, name: &str) -> String {
        self.metrics.render().lines().filter(|line| line.starts_with(name)).collect::<Vec<_>>().join("\n")
    }
}

/// `n` records over the `days` days before `end`, with repeated SKUs (later records win),
/// ties broken by sequence, and every 97th record breaking the rules.
pub(crate) fn records(n: usize, days: i64, end: DateTime<Utc>) -> Vec<FeedRecord> {
    let span = TimeDelta::days(days).num_seconds();
    (0..n)
        .map(|i| {
            let seconds = (i as i64 * 7_919) % span;
            let bad = i % 97 == 13;
            FeedRecord {
                sku: if bad { format!("BAD SKU {i}") } else { format!("sku-{:03}", i % 150) },
                quantity: if i % 89 == 5 { -1 } else { (i as i64 * 31) % 500 },
                updated_at: end - TimeDelta::seconds(span) + TimeDelta::seconds(seconds),
                sequence: (i % 3 == 0).then_some(i as u64),
            }
        })
        .collect()
}

/// An RFC 3339 time, as the feed was asked for it.
pub(crate) fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("time")
}

/// A record of 4 of `sku` at `updated_at`, without a sequence.
pub(crate) fn four_of(sku: &str, updated_at: DateTime<Utc>) -> FeedRecord {
    FeedRecord { sku: sku.to_owned(), quantity: 4, updated_at, sequence: None }
}

/// What the feed was asked for, one line per pass (a window or a full refresh's snapshot),
/// pages after the first left out.
pub(crate) fn pulls(api: &FeedApi) -> String {
    api.requests()
        .iter()
        .filter(|request| request.cursor.is_none())
        .map(|request| match (&request.since, &request.until) {
            (Some(since), Some(until)) => format!("window {since} .. {until}\n"),
            _ => "snapshot\n".to_owned(),
        })
        .collect()
}
