//! The plain-SQLite baseline the embedded benchmark compares with: the rows `apply_batch`
//! writes for a feed (a journal row per event id, an upsert per offer, per item and per
//! outbox row, the source checkpoint), written the plainest fast way — rusqlite, one
//! prepared statement per purpose executed row by row, batches of `batch_size` in one
//! transaction each, WAL and `synchronous = FULL` — nothing read back, locked or decided.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use catalog_core::{StockChange, SupplierEvent};
use catalog_store::IncomingEvent;
use rusqlite::{params, Connection};

/// Writes the rows for `events` into the migrated catalog database at `path`; returns the
/// time it took, from opening the connection to the last commit.
pub fn plain_sqlite_baseline(path: &Path, events: &[IncomingEvent], batch_size: usize) -> Duration {
    let started = Instant::now();
    let mut connection = Connection::open(path).expect("open the baseline database");
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .expect("WAL and synchronous = FULL");
    for (batch_number, chunk) in events.chunks(batch_size).enumerate() {
        let now = chrono::Utc::now().timestamp_micros();
        let transaction = connection.transaction().expect("begin");
        let mut seen = HashSet::new();
        let mut last_per_offer: BTreeMap<_, (&SupplierEvent, i64)> = BTreeMap::new();
        {
            let mut journal = transaction
                .prepare_cached(
                    "INSERT INTO events (event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, \
                     updated_at, sequence, effective_at, clock_drift_clamped, received_at, outcome, fingerprint, \
                     redelivery_count, payload_differs, source, source_partition, source_offset, traceparent, \
                     decided_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8, 0, ?10, 'applied', ?11, 0, 0, ?12, 0, ?13, ?14, \
                     ?15)",
                )
                .expect("prepare journal insert");
            for incoming in chunk {
                let Ok(event) = &incoming.delivery.decoded else { continue };
                if !seen.insert(event.event_id()) {
                    continue;
                }
                let (quantity, delta) = match event.change() {
                    StockChange::Updated { quantity } => (Some(quantity), None),
                    StockChange::Adjusted { delta } => (None, Some(delta)),
                };
                journal
                    .execute(params![
                        event.event_id().0.as_bytes().as_slice(),
                        event.offer().tenant.as_str(),
                        event.offer().supplier.as_str(),
                        event.offer().sku.as_str(),
                        event.change().type_name(),
                        quantity,
                        delta,
                        event.updated_at().timestamp_micros(),
                        event.sequence().map(|sequence| sequence as i64),
                        incoming.delivery.received_at.timestamp_micros(),
                        event.fingerprint() as i64,
                        &*incoming.source.source,
                        incoming.source.offset,
                        incoming.traceparent.as_ref().map(catalog_core::TraceParent::as_str),
                        now,
                    ])
                    .expect("journal insert");
                last_per_offer.insert(event.offer(), (event, quantity.or(delta).unwrap_or(0)));
            }
            let mut offer = transaction
                .prepare_cached(
                    "INSERT INTO offers (tenant_id, supplier_id, sku, quantity, winner_event_id, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tenant_id, supplier_id, sku) DO UPDATE SET \
                     quantity = excluded.quantity, winner_event_id = excluded.winner_event_id, \
                     updated_at = excluded.updated_at",
                )
                .expect("prepare offer upsert");
            let mut items = BTreeMap::new();
            for (key, (event, value)) in &last_per_offer {
                offer
                    .execute(params![
                        key.tenant.as_str(),
                        key.supplier.as_str(),
                        key.sku.as_str(),
                        value,
                        event.event_id().0.as_bytes().as_slice(),
                        now,
                    ])
                    .expect("offer upsert");
                items.insert(key.item_key(), *value);
            }
            let mut item = transaction
                .prepare_cached(
                    "INSERT INTO items (item_id, tenant_id, sku, quantity, version, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT (item_id) DO UPDATE SET \
                     quantity = excluded.quantity, version = items.version + 1, updated_at = excluded.updated_at",
                )
                .expect("prepare item upsert");
            // One row per item and channel, replaced by a newer version; the batch number is one.
            let mut outbox = transaction
                .prepare_cached(
                    "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel, enqueued_at, \
                     first_enqueued_at, available_at) VALUES (?1, ?2, ?3, ?4, ?5, 'storefront', ?6, ?6, ?6) \
                     ON CONFLICT (item_id, channel) DO UPDATE SET quantity = excluded.quantity, \
                     version = excluded.version, enqueued_at = excluded.enqueued_at",
                )
                .expect("prepare outbox upsert");
            for (key, quantity) in &items {
                let item_id = key.item_id().0;
                let id = item_id.as_bytes().as_slice();
                item.execute(params![id, key.tenant.as_str(), key.sku.as_str(), quantity, now]).expect("item upsert");
                outbox
                    .execute(params![id, key.tenant.as_str(), key.sku.as_str(), quantity, batch_number as i64 + 1, now])
                    .expect("outbox upsert");
            }
            let last = chunk.last().expect("chunks are not empty");
            transaction
                .execute(
                    "INSERT INTO source_checkpoints (source, partition, next_offset, updated_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (source, partition) DO UPDATE SET \
                     next_offset = excluded.next_offset, updated_at = excluded.updated_at",
                    params![&*last.source.source, last.source.partition, last.source.offset + 1, now],
                )
                .expect("checkpoint upsert");
        }
        transaction.commit().expect("commit");
    }
    started.elapsed()
}
