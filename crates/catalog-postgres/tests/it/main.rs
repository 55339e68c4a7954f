//! Integration tests of the Postgres store: the shared contract suite on a fresh database
//! per test, plus what only a server can show (a transaction cut off midway, separate
//! stores on one database healing dead letters at once, drift corrections beside a batch's
//! locks, timeouts, TLS).

mod claims;
mod failures;
mod first_seen;
mod healing;
mod migrations;
mod placeholders;
mod reconcile;
mod recording;
mod timeouts;
mod tls;

use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::contract::Fresh;
use catalog_store::StoreConfig;
use catalog_testkit::TestDatabase;

async fn connect(database: &TestDatabase, config: StoreConfig) -> PostgresStore {
    PostgresStore::connect(&database.url, config, PostgresOptions::default()).await.expect("connect and migrate")
}

async fn fresh_store(config: StoreConfig) -> Fresh<TestDatabase> {
    let database = TestDatabase::create().await;
    let store = connect(&database, config).await;
    (std::sync::Arc::new(store), database)
}

catalog_store::store_contract_tests!(fresh_store);

/// Four stores on one database, as four worker processes would be: each has its own offer
/// cache and connections.
async fn separate_stores(database: &TestDatabase) -> [std::sync::Arc<dyn catalog_store::CatalogStore>; 4] {
    let mut stores = Vec::new();
    for _ in 0..4 {
        let store: std::sync::Arc<dyn catalog_store::CatalogStore> =
            std::sync::Arc::new(connect(database, StoreConfig::default()).await);
        stores.push(store);
    }
    stores.try_into().unwrap_or_else(|_| unreachable!("four stores"))
}

/// Each store plans against offers the others have moved on; the guarded writes must still
/// end exactly where the reference does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_stores_with_their_own_offer_caches_are_exact_together() {
    let database = TestDatabase::create().await;
    catalog_store::contract::concurrent_callers_are_exact(&separate_stores(&database).await).await;
}

/// Two members of a group handed the same partition (separate processes: separate caches and
/// connections) apply the same messages at once: the checkpoint row's lock makes them take
/// turns, and the second finds them applied (decision 0028).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_stores_applying_the_same_partition_apply_it_once() {
    let database = TestDatabase::create().await;
    catalog_store::contract::copies_of_a_batch_apply_once(&separate_stores(&database).await).await;
}

/// Each store plans the same new offers as new and inserts them; all but the first must lose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_stores_creating_the_same_offers_are_exact_together() {
    let database = TestDatabase::create().await;
    catalog_store::contract::concurrent_creators_are_exact(&separate_stores(&database).await).await;
}
