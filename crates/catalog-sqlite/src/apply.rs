//! `apply_batch`: one job of the writer thread, in one immediate write transaction, that
//! loads what `catalog-core` needs, lets `catalog_store::batch::prepare` decide, and
//! persists the prepared rows. No rule is decided here or in SQL; this module only loads
//! and writes. Every statement runs on a cached prepared statement of the writer's own
//! connection: no row crosses a thread.

use std::collections::HashMap;
use std::sync::Arc;

use catalog_core::{EventId, ItemId, ItemKey, ItemState, OfferKey, OfferState};
use catalog_store::batch::{
    self, BatchKeys, JournalInsert, JournalUpdate, LoadedState, OfferWrite, OutboxWrite, PriorRow,
};
use catalog_store::fence::{checkpoint_rows, fence};
use catalog_store::rows::{self, JournaledEventRow, OfferColumns};
use catalog_store::{BatchInput, BatchResult, ChangedItem, Checkpoint, Position, StoreConfig, StoreError};
use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension};

use crate::columns::{micros, raw, saturating_i64, JOURNAL_INSERT_COLUMNS, OFFER_STATE_COLUMNS};
use crate::error::write_error;
use crate::flags;
use crate::writer::Writer;

/// Applies a batch in one transaction on the writer, following the algorithm every store
/// shares: lock, load, `prepare`, write, commit.
pub(crate) async fn apply_batch(
    writer: &Writer,
    config: &Arc<StoreConfig>,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    // The job outlives this borrow on the writer's thread: it takes its own copy (decoded
    // events; raw bytes are kept only for rejected ones, so the copy is small).
    let (config, batch) = (Arc::clone(config), batch.clone());
    writer.transaction(move |connection| write_batch(connection, &config, &batch)).await
}

/// Plans and writes a batch exactly as `apply_batch` would, then rolls it back.
pub(crate) async fn preview_batch(
    writer: &Writer,
    config: &Arc<StoreConfig>,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    let (config, batch) = (Arc::clone(config), batch.clone());
    writer.rolled_back(move |connection| write_batch(connection, &config, &batch)).await
}

fn write_batch(connection: &Connection, config: &StoreConfig, batch: &BatchInput) -> Result<BatchResult, StoreError> {
    // The writer's immediate transaction holds the only write lock: the stored positions read
    // here cannot move before the batch commits (decision 0028).
    let stored = if batch.skip_applied { stored_checkpoints(connection, batch)? } else { Vec::new() };
    let fenced = fence(batch, &stored);
    let batch = &*fenced.batch;
    let keys = BatchKeys::of(batch);
    let now = micros(Utc::now());
    let flags = flags::create_and_load(connection, &keys, config.default_sync_enabled, now)?;
    let loaded = LoadedState {
        offers: load_offers(connection, &keys.offers)?,
        items: load_items(connection, &keys.items)?,
        prior: load_prior_rows(connection, &keys.event_ids)?,
        flags,
    };
    let mut writes = batch::prepare(batch, loaded, config)?;
    writes.result.applied_before = fenced.applied_before;
    writes.result.of_another_log = fenced.of_another_log;

    insert_journal_rows(connection, &writes.journal_inserts, now)?;
    update_journal_rows(connection, &writes.journal_updates, now)?;
    upsert_offers(connection, &writes.offers, now)?;
    upsert_items(connection, &writes.items, now)?;
    insert_outbox_rows(connection, &writes.outbox, now)?;
    advance_checkpoints(connection, &writes.checkpoints, now)?;

    tracing::debug!(
        n_events = batch.events.len(),
        n_journal_inserts = writes.journal_inserts.len(),
        n_journal_updates = writes.journal_updates.len(),
        n_changed_items = writes.items.len(),
        "batch written"
    );
    Ok(writes.result)
}

/// Queues a publish of each item's current version on every channel serving its tenant.
pub(crate) async fn republish(writer: &Writer, config: &Arc<StoreConfig>, items: &[ItemId]) -> Result<u64, StoreError> {
    let (config, items) = (Arc::clone(config), items.to_vec());
    writer.transaction(move |connection| republish_in(connection, &config, &items)).await
}

fn republish_in(connection: &Connection, config: &StoreConfig, items: &[ItemId]) -> Result<u64, StoreError> {
    let now = micros(Utc::now());
    let mut select = connection
        .prepare_cached("SELECT tenant_id, sku, quantity, version FROM items WHERE item_id = ?1")
        .map_err(write_error)?;
    let mut writes: Vec<OutboxWrite> = Vec::new();
    for item_id in items {
        let stored = select
            .query_row([item_id.0.as_bytes().as_slice()], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?, row.get::<_, i64>(3)?))
            })
            .optional()
            .map_err(write_error)?;
        let Some((tenant, sku, quantity, version)) = stored else { continue };
        let tenant_id = rows::tenant(&tenant)?;
        writes.extend(OutboxWrite::on_its_channels(config, *item_id, &tenant_id, &sku, quantity, version, None));
    }
    insert_outbox_rows(connection, &writes, now)?;
    Ok(writes.len() as u64)
}

fn load_offers(connection: &Connection, keys: &[OfferKey]) -> Result<HashMap<OfferKey, OfferState>, StoreError> {
    let sql =
        format!("SELECT {OFFER_STATE_COLUMNS} FROM offers WHERE tenant_id = ?1 AND supplier_id = ?2 AND sku = ?3");
    let mut select = connection.prepare_cached(&sql).map_err(write_error)?;
    let mut offers = HashMap::with_capacity(keys.len());
    for key in keys {
        let mut found =
            select.query(params![key.tenant.as_str(), key.supplier.as_str(), key.sku.as_str()]).map_err(write_error)?;
        if let Some(row) = found.next().map_err(write_error)? {
            offers.insert(key.clone(), raw::offer_columns(row)?.into_state()?);
        }
    }
    Ok(offers)
}

fn load_items(connection: &Connection, keys: &[(ItemKey, ItemId)]) -> Result<HashMap<ItemKey, ItemState>, StoreError> {
    let mut select =
        connection.prepare_cached("SELECT quantity, version FROM items WHERE item_id = ?1").map_err(write_error)?;
    let mut items = HashMap::with_capacity(keys.len());
    for (key, item_id) in keys {
        let mut found = select.query([item_id.0.as_bytes().as_slice()]).map_err(write_error)?;
        if let Some(row) = found.next().map_err(write_error)? {
            let quantity: i64 = raw::column(row, "quantity")?;
            let version = rows::version(raw::column(row, "version")?)?;
            items.insert(key.clone(), ItemState { quantity, version });
        }
    }
    Ok(items)
}

/// The decided journal rows of the batch's event ids: the claims that make a delivery a
/// duplicate, and held rows to decide afresh. Rejected rows never claim an id.
fn load_prior_rows(connection: &Connection, event_ids: &[EventId]) -> Result<Vec<PriorRow>, StoreError> {
    // The outcome term repeats the partial unique index's WHERE clause word for word,
    // which is what lets SQLite use that index for the lookup.
    let mut select = connection
        .prepare_cached(
            "SELECT journal_id, outcome, fingerprint, received_at, tenant_id, supplier_id, sku, event_type, quantity, delta, \
             updated_at, sequence FROM events \
             WHERE event_id = ?1 AND outcome IN ('applied', 'stale', 'superseded', 'held')",
        )
        .map_err(write_error)?;
    // Claims whose journal rows retention archived (decision 0019), looked up only for ids
    // the journal does not have.
    let mut archived = connection
        .prepare_cached("SELECT fingerprint, received_at FROM event_claims WHERE event_id = ?1")
        .map_err(write_error)?;
    // Until retention first deletes a day, there is none: no lookup per event then.
    let any_archived = connection
        .prepare_cached("SELECT 1 FROM event_claims LIMIT 1")
        .and_then(|mut any| any.exists([]))
        .map_err(write_error)?;
    let mut prior = Vec::new();
    for event_id in event_ids {
        let id = event_id.0.as_bytes().as_slice();
        let mut found = select.query([id]).map_err(write_error)?;
        let Some(row) = found.next().map_err(write_error)? else {
            if !any_archived {
                continue;
            }
            let mut claimed = archived.query([id]).map_err(write_error)?;
            if let Some(row) = claimed.next().map_err(write_error)? {
                let fingerprint: i64 = raw::column(row, "fingerprint")?;
                prior.push(PriorRow {
                    event_id: *event_id,
                    held_event: None,
                    fingerprint: fingerprint as u64,
                    received_at: raw::time_column(row, "received_at")?,
                    journal_id: 0,
                    journaled: false,
                });
            }
            continue;
        };
        let outcome: String = raw::column(row, "outcome")?;
        let fingerprint: Option<i64> = raw::column(row, "fingerprint")?;
        let fingerprint = fingerprint.ok_or_else(|| {
            StoreError::Corrupt(format!("decided journal row of event {event_id} has no fingerprint"))
        })?;
        let held_event = if outcome == "held" {
            let journaled = JournaledEventRow {
                event_id: event_id.0,
                tenant: raw::column(row, "tenant_id")?,
                supplier: raw::column(row, "supplier_id")?,
                sku: raw::column(row, "sku")?,
                event_type: raw::column(row, "event_type")?,
                quantity: raw::column(row, "quantity")?,
                delta: raw::column(row, "delta")?,
                updated_at: raw::optional_time_column(row, "updated_at")?,
                sequence: raw::column(row, "sequence")?,
            };
            Some(journaled.into_event()?)
        } else {
            None
        };
        prior.push(PriorRow {
            event_id: *event_id,
            held_event,
            // Stored bit for bit in a signed column.
            fingerprint: fingerprint as u64,
            received_at: raw::time_column(row, "received_at")?,
            journal_id: raw::column(row, "journal_id")?,
            journaled: true,
        });
    }
    Ok(prior)
}

fn insert_journal_rows(connection: &Connection, inserts: &[JournalInsert], now: i64) -> Result<(), StoreError> {
    let insert_sql = format!(
        "INSERT INTO events ({JOURNAL_INSERT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
         ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
    );
    let mut insert_row = connection.prepare_cached(&insert_sql).map_err(write_error)?;
    for insert in inserts {
        // A first delivery repeated within its own batch is already a redelivery.
        let last_redelivered_at = (insert.redelivery_count > 0).then_some(now);
        insert_row
            .execute(params![
                insert.event_id.as_ref().map(|event_id| event_id.0.as_bytes().as_slice()),
                insert.tenant.as_ref().map(catalog_core::TenantId::as_str),
                insert.supplier.as_ref().map(catalog_core::SupplierId::as_str),
                insert.sku.as_ref().map(catalog_core::Sku::as_str),
                insert.event_type,
                insert.quantity,
                insert.delta,
                insert.updated_at.map(micros),
                insert.sequence,
                insert.effective_at.map(micros),
                insert.clock_drift_clamped,
                micros(insert.received_at),
                insert.outcome,
                insert.reason,
                insert.detail.as_deref(),
                insert.redelivery_count,
                insert.payload_differs,
                &*insert.source.source,
                insert.source.partition,
                insert.source.offset,
                insert.traceparent.as_deref(),
                insert.raw_payload.as_deref(),
                insert.raw_payload_length,
                insert.fingerprint,
                now,
                last_redelivered_at,
            ])
            .map_err(write_error)?;
    }
    Ok(())
}

fn update_journal_rows(connection: &Connection, updates: &[JournalUpdate], now: i64) -> Result<(), StoreError> {
    let mut redecide = connection
        .prepare_cached(
            "UPDATE events SET outcome = ?1, reason = ?2, effective_at = ?3, clock_drift_clamped = ?4, \
             decided_at = ?5 \
             WHERE event_id = ?6 AND outcome IN ('applied', 'stale', 'superseded', 'held')",
        )
        .map_err(write_error)?;
    let mut count_redeliveries = connection
        .prepare_cached(
            "UPDATE events SET redelivery_count = redelivery_count + ?1, payload_differs = payload_differs OR ?2, \
             last_redelivered_at = coalesce(?3, last_redelivered_at) \
             WHERE event_id = ?4 AND outcome IN ('applied', 'stale', 'superseded', 'held')",
        )
        .map_err(write_error)?;
    for update in updates {
        let event_id = update.event_id.0.as_bytes().as_slice();
        if let Some(redecided) = &update.redecided {
            let changed = redecide
                .execute(params![
                    redecided.outcome,
                    redecided.reason,
                    micros(redecided.effective_at),
                    redecided.clock_drift_clamped,
                    now,
                    event_id,
                ])
                .map_err(write_error)?;
            expect_one_journal_row(changed, update.event_id)?;
        }
        // Nothing to count: skipping the statement leaves the row exactly as running it would.
        if update.redeliveries_added == 0 && !update.payload_differs {
            continue;
        }
        let last_redelivered_at = (update.redeliveries_added > 0).then_some(now);
        let changed = count_redeliveries
            .execute(params![update.redeliveries_added, update.payload_differs, last_redelivered_at, event_id])
            .map_err(write_error)?;
        expect_one_journal_row(changed, update.event_id)?;
    }
    Ok(())
}

/// An update is prepared only for a decided row this transaction loaded under the write
/// lock, so it must find exactly that row; anything else means the journal lost its claim
/// and counting a redelivery nowhere would silently break the accounting.
fn expect_one_journal_row(rows_affected: usize, event_id: EventId) -> Result<(), StoreError> {
    if rows_affected == 1 {
        return Ok(());
    }
    Err(StoreError::Corrupt(format!("{rows_affected} decided journal rows of event {event_id}, expected exactly one")))
}

fn upsert_offers(connection: &Connection, offers: &[OfferWrite], now: i64) -> Result<(), StoreError> {
    let mut upsert = connection
        .prepare_cached(
            "INSERT INTO offers (tenant_id, supplier_id, sku, quantity, winner_event_id, snapshot_quantity, \
             snapshot_effective_at, snapshot_sequence, snapshot_event_id, adjustments, folded, updated_at, \
             clamped_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?12, ?11, ?13) \
             ON CONFLICT (tenant_id, supplier_id, sku) DO UPDATE SET quantity = excluded.quantity, \
             winner_event_id = excluded.winner_event_id, snapshot_quantity = excluded.snapshot_quantity, \
             snapshot_effective_at = excluded.snapshot_effective_at, snapshot_sequence = excluded.snapshot_sequence, \
             snapshot_event_id = excluded.snapshot_event_id, adjustments = excluded.adjustments, \
             folded = excluded.folded, revision = offers.revision + 1, updated_at = excluded.updated_at, \
             clamped_until = excluded.clamped_until",
        )
        .map_err(write_error)?;
    for offer in offers {
        let state_columns = OfferColumns::from_state(&offer.state);
        upsert
            .execute(params![
                offer.key.tenant.as_str(),
                offer.key.supplier.as_str(),
                offer.key.sku.as_str(),
                offer.quantity,
                offer.winner.as_ref().map(|winner| winner.0.as_bytes().as_slice()),
                state_columns.snapshot_quantity,
                state_columns.snapshot_effective_at.map(micros),
                state_columns.snapshot_sequence,
                state_columns.snapshot_event_id.as_ref().map(|event_id| event_id.as_bytes().as_slice()),
                state_columns.adjustments.as_str(),
                now,
                state_columns.folded.as_deref(),
                state_columns.clamped_until.map(micros),
            ])
            .map_err(write_error)?;
    }
    Ok(())
}

fn upsert_items(connection: &Connection, items: &[ChangedItem], now: i64) -> Result<(), StoreError> {
    let mut upsert = connection
        .prepare_cached(
            "INSERT INTO items (item_id, tenant_id, sku, quantity, version, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (item_id) DO UPDATE SET quantity = excluded.quantity, version = excluded.version, \
             updated_at = excluded.updated_at",
        )
        .map_err(write_error)?;
    for item in items.iter().map(|changed| &changed.item) {
        upsert
            .execute(params![
                item.id().0.as_bytes().as_slice(),
                item.tenant().as_str(),
                item.sku().as_str(),
                item.quantity(),
                // Held at the signed column's largest, never wrapped, as the outbox holds it.
                saturating_i64(item.version()),
                now,
            ])
            .map_err(write_error)?;
    }
    Ok(())
}

/// Queues each new item version on its channels: one row per item and channel, so a
/// version waiting unsent is replaced in place (coalesced) and keeps its first enqueue
/// time, its lease and its retry schedule, but not the failures counted against the older
/// version (a newer version starts with a budget of its own); a row already at this
/// version or newer stays.
pub(crate) fn insert_outbox_rows(connection: &Connection, outbox: &[OutboxWrite], now: i64) -> Result<(), StoreError> {
    let mut upsert = connection
        .prepare_cached(
            "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel, traceparent, enqueued_at, \
             first_enqueued_at, available_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8) \
             ON CONFLICT (item_id, channel) DO UPDATE SET tenant_id = excluded.tenant_id, sku = excluded.sku, \
             quantity = excluded.quantity, version = excluded.version, traceparent = excluded.traceparent, \
             enqueued_at = excluded.enqueued_at, attempts = 0 \
             WHERE outbox.version < excluded.version",
        )
        .map_err(write_error)?;
    for row in outbox {
        upsert
            .execute(params![
                row.item_id.0.as_bytes().as_slice(),
                row.tenant.as_str(),
                row.sku.as_str(),
                row.quantity,
                row.version,
                row.channel.as_str(),
                row.traceparent.as_deref(),
                now,
            ])
            .map_err(write_error)?;
    }
    Ok(())
}

/// The stored positions of the batch's checkpoint rows.
fn stored_checkpoints(connection: &Connection, batch: &BatchInput) -> Result<Vec<Checkpoint>, StoreError> {
    let mut select = connection
        .prepare_cached("SELECT next_offset, cursor FROM source_checkpoints WHERE source = ?1 AND partition = ?2")
        .map_err(write_error)?;
    let mut stored = Vec::new();
    for (source, partition) in checkpoint_rows(batch) {
        let position = select
            .query_row(params![source, partition], |row| Ok(Position { offset: row.get(0)?, cursor: row.get(1)? }))
            .optional()
            .map_err(write_error)?;
        stored.extend(position.map(|position| Checkpoint { source: source.to_owned(), partition, position }));
    }
    Ok(stored)
}

/// Stores each source position, keeping the greater of the stored and the new one so a
/// re-applied or late batch never moves a source backwards.
fn advance_checkpoints(connection: &Connection, checkpoints: &[Checkpoint], now: i64) -> Result<(), StoreError> {
    // The cursor goes with the furthest offset: a position that is not ahead keeps the stored one.
    let mut upsert = connection
        .prepare_cached(
            "INSERT INTO source_checkpoints (source, partition, next_offset, cursor, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (source, partition) DO UPDATE SET \
             next_offset = max(source_checkpoints.next_offset, excluded.next_offset), \
             cursor = CASE WHEN excluded.next_offset >= source_checkpoints.next_offset \
                      THEN excluded.cursor ELSE source_checkpoints.cursor END, \
             updated_at = excluded.updated_at",
        )
        .map_err(write_error)?;
    for checkpoint in checkpoints {
        upsert
            .execute(params![
                checkpoint.source.as_str(),
                checkpoint.partition,
                checkpoint.position.offset,
                checkpoint.position.cursor.as_deref(),
                now,
            ])
            .map_err(write_error)?;
    }
    Ok(())
}

/// Moves a partition's checkpoint back from `from` to `to` (offset and cursor) if it is still at `from`
/// (`BatchStore::rewind_checkpoint`, decision 0040).
pub(crate) async fn rewind_checkpoint(
    writer: &Writer,
    source: &str,
    partition: i32,
    from: i64,
    to: &Position,
) -> Result<bool, StoreError> {
    let (source, to) = (source.to_owned(), to.clone());
    writer
        .transaction(move |connection| {
            connection
                .prepare_cached(
                    "UPDATE source_checkpoints SET next_offset = ?4, cursor = ?6, updated_at = ?5 \
                     WHERE source = ?1 AND partition = ?2 AND next_offset = ?3",
                )
                .and_then(|mut update| {
                    update.execute(params![source, partition, from, to.offset, micros(Utc::now()), to.cursor])
                })
                .map(|changed| changed == 1)
                .map_err(write_error)
        })
        .await
}
