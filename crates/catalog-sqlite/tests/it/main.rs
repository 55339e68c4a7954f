//! Integration tests of the SQLite store: the shared store contract, and what only an
//! embedded database file can show (rollback, reopening, connection URLs, large batches).

mod connect;
mod durability;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use catalog_core::{encode, Delivery, EventId, OfferKey, Sku, StockChange, SupplierEvent, SupplierId, TenantId};
use catalog_sqlite::SqliteStore;
use catalog_store::contract::Fresh;
use catalog_store::{BatchInput, Checkpoint, IncomingEvent, Provenance, SourceRef, StoreConfig};
use chrono::{DateTime, Duration, Utc};

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

const SOURCE: &str = "test:sqlite";

fn base() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().expect("valid time")
}

fn offer(tenant: &str, supplier: &str, sku: &str) -> OfferKey {
    OfferKey {
        tenant: TenantId::parse(tenant).expect("valid tenant"),
        supplier: SupplierId::parse(supplier).expect("valid supplier"),
        sku: Sku::parse(sku).expect("valid sku"),
    }
}

fn event_id(n: u64) -> EventId {
    EventId(uuid::Uuid::from_u128(u128::from(n) * 0x1_0000_0001))
}

/// Event `n` of an offer, updated and received `second` seconds after `base()`, at source offset `n`.
fn incoming(n: u64, offer: &OfferKey, change: StockChange, second: i64) -> IncomingEvent {
    let at = base() + Duration::seconds(second);
    let event = SupplierEvent::new(event_id(n), offer.clone(), change, at, Some(n)).expect("valid event");
    let raw = encode(&event).into_bytes();
    IncomingEvent {
        delivery: Delivery { decoded: Ok(event), received_at: at },
        raw,
        source: SourceRef { source: SOURCE.to_owned(), partition: 0, offset: n as i64 },
        traceparent: None,
        provenance: Provenance::Received,
    }
}

/// A batch of `events` that completes the source up to its last offset.
fn batch(events: Vec<IncomingEvent>) -> BatchInput {
    let next_offset = events.iter().map(|event| event.source.offset + 1).max().unwrap_or(0);
    BatchInput { events, checkpoints: vec![Checkpoint { source: SOURCE.to_owned(), partition: 0, next_offset }] }
}
