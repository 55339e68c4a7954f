//! Integration tests of the Postgres store: the shared contract suite on a fresh database
//! per test, plus what only a server can show (a transaction cut off midway).

mod failures;

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
