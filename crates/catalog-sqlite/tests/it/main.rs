//! Integration tests of the SQLite store: the shared store contract, and what only an
//! embedded database file can show (rollback, reopening, connection URLs, large batches).

mod connect;
mod durability;
mod retention;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use catalog_core::{OfferKey, StockChange};
use catalog_sqlite::SqliteStore;
use catalog_store::contract::{base, batch, event_id, offer, Fresh, SOURCE};
use catalog_store::{IncomingEvent, StoreConfig};

/// A store on a new database file in its own temporary directory, removed with the guard.
async fn fresh_store(config: StoreConfig) -> Fresh<tempfile::TempDir> {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open_path(&database_path(directory.path()), config).await.expect("open store");
    (Arc::new(store), directory)
}

catalog_store::store_contract_tests!(fresh_store);

fn database_path(directory: &Path) -> PathBuf {
    directory.join("catalog.db")
}

/// Event `n` of an offer, updated and received `second` seconds after `base()`, at source offset `n`.
fn incoming(n: u64, offer: &OfferKey, change: StockChange, second: i64) -> IncomingEvent {
    catalog_store::contract::incoming(n, offer, change, second, second)
}
