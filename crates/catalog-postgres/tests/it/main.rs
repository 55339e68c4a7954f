//! Integration tests of the Postgres store: the shared contract suite on a fresh database
//! per test, plus what only a server can show (a transaction cut off midway).

mod database;
mod failures;

use catalog_store::contract::Fresh;
use catalog_store::StoreConfig;

use crate::database::TestDatabase;

async fn fresh_store(config: StoreConfig) -> Fresh<TestDatabase> {
    let database = TestDatabase::create().await;
    let store = database.store(config).await;
    (std::sync::Arc::new(store), database)
}

catalog_store::store_contract_tests!(fresh_store);
