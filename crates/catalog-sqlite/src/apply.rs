//! `apply_batch`: one immediate write transaction that loads what `catalog-core` needs,
//! lets `catalog_store::batch::prepare` decide, and persists the prepared rows. No rule is
//! decided here or in SQL; this module only loads and writes.

use std::collections::HashMap;

use catalog_core::{EventId, ItemId, ItemKey, ItemState, OfferKey, OfferState};
use catalog_store::batch::{
    self, BatchKeys, JournalInsert, JournalUpdate, LoadedState, OfferWrite, OutboxWrite, PriorRow,
};
use catalog_store::rows::{self, JournaledEventRow, OfferColumns};
use catalog_store::{BatchInput, BatchResult, ChangedItem, Checkpoint, StoreConfig, StoreError};
use chrono::Utc;
use sqlx::{SqliteConnection, SqlitePool};

use crate::columns::{self, micros, JOURNAL_INSERT_COLUMNS, OFFER_STATE_COLUMNS};
use crate::error::store_error;
use crate::flags;

/// Applies a batch in one transaction, following the algorithm every store shares: lock,
/// load, `prepare`, write, commit.
pub(crate) async fn apply_batch(
    pool: &SqlitePool,
    config: &StoreConfig,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    // BEGIN IMMEDIATE takes the write lock before the first read. A deferred transaction
    // would read under a shared lock and fail with SQLITE_BUSY when it upgrades to write
    // while another batch writes; taking the lock up front makes concurrent callers queue
    // on the busy timeout instead, and nothing loaded below can change before the commit.
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
    let result = write_batch(&mut transaction, config, batch).await?;
    transaction.commit().await.map_err(store_error)?;
    Ok(result)
}

/// Plans and writes a batch exactly as `apply_batch` would, then rolls it back.
pub(crate) async fn preview_batch(
    pool: &SqlitePool,
    config: &StoreConfig,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
    let result = write_batch(&mut transaction, config, batch).await?;
    transaction.rollback().await.map_err(store_error)?;
    Ok(result)
}

async fn write_batch(
    connection: &mut SqliteConnection,
    config: &StoreConfig,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    let keys = BatchKeys::of(batch);
    let now = micros(Utc::now());
    let flags = flags::create_and_load(connection, &keys, config.default_sync_enabled, now).await?;
    let loaded = LoadedState {
        offers: load_offers(connection, &keys.offers).await?,
        items: load_items(connection, &keys.items).await?,
        prior: load_prior_rows(connection, &keys.event_ids).await?,
        flags,
    };
    let writes = batch::prepare(batch, loaded, config);

    insert_journal_rows(connection, &writes.journal_inserts, now).await?;
    update_journal_rows(connection, &writes.journal_updates, now).await?;
    upsert_offers(connection, &writes.offers, now).await?;
    upsert_items(connection, &writes.items, now).await?;
    insert_outbox_rows(connection, &writes.outbox, now).await?;
    advance_checkpoints(connection, &writes.checkpoints, now).await?;

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
pub(crate) async fn republish(pool: &SqlitePool, config: &StoreConfig, items: &[ItemId]) -> Result<u64, StoreError> {
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
    let now = micros(Utc::now());
    let mut queued = 0;
    for item_id in items {
        let row = sqlx::query("SELECT tenant_id, sku, quantity, version FROM items WHERE item_id = ?1")
            .bind(item_id.0.as_bytes().as_slice())
            .fetch_optional(&mut *transaction)
            .await
            .map_err(store_error)?;
        let Some(row) = row else { continue };
        let tenant: String = columns::column(&row, "tenant_id")?;
        let tenant_id = rows::tenant(&tenant)?;
        let sku: String = columns::column(&row, "sku")?;
        let quantity: i64 = columns::column(&row, "quantity")?;
        let version: i64 = columns::column(&row, "version")?;
        let writes: Vec<OutboxWrite> = config
            .channels
            .iter()
            .filter(|channel| channel.serves(&tenant_id))
            .map(|channel| OutboxWrite {
                item_id: *item_id,
                tenant: tenant_id.clone(),
                sku: sku.clone(),
                quantity,
                version,
                channel: channel.name.clone(),
                traceparent: None,
            })
            .collect();
        queued += writes.len() as u64;
        insert_outbox_rows(&mut transaction, &writes, now).await?;
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(queued)
}

async fn load_offers(
    connection: &mut SqliteConnection,
    keys: &[OfferKey],
) -> Result<HashMap<OfferKey, OfferState>, StoreError> {
    let sql =
        format!("SELECT {OFFER_STATE_COLUMNS} FROM offers WHERE tenant_id = ?1 AND supplier_id = ?2 AND sku = ?3");
    let mut offers = HashMap::with_capacity(keys.len());
    for key in keys {
        let row = sqlx::query(&sql)
            .bind(key.tenant.as_str())
            .bind(key.supplier.as_str())
            .bind(key.sku.as_str())
            .fetch_optional(&mut *connection)
            .await
            .map_err(store_error)?;
        if let Some(row) = row {
            offers.insert(key.clone(), columns::offer_columns(&row)?.into_state()?);
        }
    }
    Ok(offers)
}

async fn load_items(
    connection: &mut SqliteConnection,
    keys: &[(ItemKey, ItemId)],
) -> Result<HashMap<ItemKey, ItemState>, StoreError> {
    let mut items = HashMap::with_capacity(keys.len());
    for (key, item_id) in keys {
        let row = sqlx::query("SELECT quantity, version FROM items WHERE item_id = ?1")
            .bind(item_id.0.as_bytes().as_slice())
            .fetch_optional(&mut *connection)
            .await
            .map_err(store_error)?;
        if let Some(row) = row {
            let quantity: i64 = columns::column(&row, "quantity")?;
            let version = rows::version(columns::column(&row, "version")?)?;
            items.insert(key.clone(), ItemState { quantity, version });
        }
    }
    Ok(items)
}

/// The decided journal rows of the batch's event ids: the claims that make a delivery a
/// duplicate, and held rows to decide afresh. Rejected rows never claim an id.
async fn load_prior_rows(
    connection: &mut SqliteConnection,
    event_ids: &[EventId],
) -> Result<Vec<PriorRow>, StoreError> {
    let mut prior = Vec::new();
    for event_id in event_ids {
        // The outcome term repeats the partial unique index's WHERE clause word for word,
        // which is what lets SQLite use that index for the lookup.
        let row = sqlx::query(
            "SELECT outcome, fingerprint, received_at, tenant_id, supplier_id, sku, event_type, quantity, delta, \
             updated_at, sequence FROM events \
             WHERE event_id = ?1 AND outcome IN ('applied', 'stale', 'superseded', 'held')",
        )
        .bind(event_id.0.as_bytes().as_slice())
        .fetch_optional(&mut *connection)
        .await
        .map_err(store_error)?;
        let Some(row) = row else { continue };
        let outcome: String = columns::column(&row, "outcome")?;
        let fingerprint: Option<i64> = columns::column(&row, "fingerprint")?;
        let fingerprint = fingerprint.ok_or_else(|| {
            StoreError::Corrupt(format!("decided journal row of event {event_id} has no fingerprint"))
        })?;
        let held_event = if outcome == "held" {
            let journaled = JournaledEventRow {
                event_id: event_id.0,
                tenant: columns::column(&row, "tenant_id")?,
                supplier: columns::column(&row, "supplier_id")?,
                sku: columns::column(&row, "sku")?,
                event_type: columns::column(&row, "event_type")?,
                quantity: columns::column(&row, "quantity")?,
                delta: columns::column(&row, "delta")?,
                updated_at: columns::optional_time_column(&row, "updated_at")?,
                sequence: columns::column(&row, "sequence")?,
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
            received_at: columns::time_column(&row, "received_at")?,
        });
    }
    Ok(prior)
}

async fn insert_journal_rows(
    connection: &mut SqliteConnection,
    inserts: &[JournalInsert],
    now: i64,
) -> Result<(), StoreError> {
    let insert_sql = format!(
        "INSERT INTO events ({JOURNAL_INSERT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
         ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
    );
    for insert in inserts {
        // A first delivery repeated within its own batch is already a redelivery.
        let last_redelivered_at = (insert.redelivery_count > 0).then_some(now);
        sqlx::query(&insert_sql)
            .bind(insert.event_id.as_ref().map(|event_id| event_id.0.as_bytes().as_slice()))
            .bind(insert.tenant.as_ref().map(catalog_core::TenantId::as_str))
            .bind(insert.supplier.as_ref().map(catalog_core::SupplierId::as_str))
            .bind(insert.sku.as_ref().map(catalog_core::Sku::as_str))
            .bind(insert.event_type)
            .bind(insert.quantity)
            .bind(insert.delta)
            .bind(insert.updated_at.map(micros))
            .bind(insert.sequence)
            .bind(insert.effective_at.map(micros))
            .bind(insert.clock_drift_clamped)
            .bind(micros(insert.received_at))
            .bind(insert.outcome)
            .bind(insert.reason)
            .bind(insert.detail.as_deref())
            .bind(insert.redelivery_count)
            .bind(insert.payload_differs)
            .bind(&*insert.source.source)
            .bind(insert.source.partition)
            .bind(insert.source.offset)
            .bind(insert.traceparent.as_deref())
            .bind(insert.raw_payload.as_deref())
            .bind(insert.raw_payload_length)
            .bind(insert.fingerprint)
            .bind(now)
            .bind(last_redelivered_at)
            .execute(&mut *connection)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

async fn update_journal_rows(
    connection: &mut SqliteConnection,
    updates: &[JournalUpdate],
    now: i64,
) -> Result<(), StoreError> {
    for update in updates {
        let event_id = update.event_id.0.as_bytes().as_slice();
        if let Some(redecided) = &update.redecided {
            let result = sqlx::query(
                "UPDATE events SET outcome = ?1, reason = ?2, effective_at = ?3, clock_drift_clamped = ?4, \
                 decided_at = ?5 \
                 WHERE event_id = ?6 AND outcome IN ('applied', 'stale', 'superseded', 'held')",
            )
            .bind(redecided.outcome)
            .bind(redecided.reason)
            .bind(micros(redecided.effective_at))
            .bind(redecided.clock_drift_clamped)
            .bind(now)
            .bind(event_id)
            .execute(&mut *connection)
            .await
            .map_err(store_error)?;
            expect_one_journal_row(result.rows_affected(), update.event_id)?;
        }
        // Nothing to count: skipping the statement leaves the row exactly as running it would.
        if update.redeliveries_added == 0 && !update.payload_differs {
            continue;
        }
        let last_redelivered_at = (update.redeliveries_added > 0).then_some(now);
        let result = sqlx::query(
            "UPDATE events SET redelivery_count = redelivery_count + ?1, payload_differs = payload_differs OR ?2, \
             last_redelivered_at = coalesce(?3, last_redelivered_at) \
             WHERE event_id = ?4 AND outcome IN ('applied', 'stale', 'superseded', 'held')",
        )
        .bind(update.redeliveries_added)
        .bind(update.payload_differs)
        .bind(last_redelivered_at)
        .bind(event_id)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
        expect_one_journal_row(result.rows_affected(), update.event_id)?;
    }
    Ok(())
}

/// An update is prepared only for a decided row this transaction loaded under the write
/// lock, so it must find exactly that row; anything else means the journal lost its claim
/// and counting a redelivery nowhere would silently break the accounting.
fn expect_one_journal_row(rows_affected: u64, event_id: EventId) -> Result<(), StoreError> {
    if rows_affected == 1 {
        return Ok(());
    }
    Err(StoreError::Corrupt(format!("{rows_affected} decided journal rows of event {event_id}, expected exactly one")))
}

async fn upsert_offers(connection: &mut SqliteConnection, offers: &[OfferWrite], now: i64) -> Result<(), StoreError> {
    for offer in offers {
        let state_columns = OfferColumns::from_state(&offer.state);
        sqlx::query(
            "INSERT INTO offers (tenant_id, supplier_id, sku, quantity, winner_event_id, snapshot_quantity, \
             snapshot_effective_at, snapshot_sequence, snapshot_event_id, adjustments, folded, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?12, ?11) \
             ON CONFLICT (tenant_id, supplier_id, sku) DO UPDATE SET quantity = excluded.quantity, \
             winner_event_id = excluded.winner_event_id, snapshot_quantity = excluded.snapshot_quantity, \
             snapshot_effective_at = excluded.snapshot_effective_at, snapshot_sequence = excluded.snapshot_sequence, \
             snapshot_event_id = excluded.snapshot_event_id, adjustments = excluded.adjustments, \
             folded = excluded.folded, revision = offers.revision + 1, updated_at = excluded.updated_at",
        )
        .bind(offer.key.tenant.as_str())
        .bind(offer.key.supplier.as_str())
        .bind(offer.key.sku.as_str())
        .bind(offer.quantity)
        .bind(offer.winner.as_ref().map(|winner| winner.0.as_bytes().as_slice()))
        .bind(state_columns.snapshot_quantity)
        .bind(state_columns.snapshot_effective_at.map(micros))
        .bind(state_columns.snapshot_sequence)
        .bind(state_columns.snapshot_event_id.as_ref().map(|event_id| event_id.as_bytes().as_slice()))
        .bind(state_columns.adjustments.as_str())
        .bind(now)
        .bind(state_columns.folded.as_deref())
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
    }
    Ok(())
}

async fn upsert_items(connection: &mut SqliteConnection, items: &[ChangedItem], now: i64) -> Result<(), StoreError> {
    for item in items {
        sqlx::query(
            "INSERT INTO items (item_id, tenant_id, sku, quantity, version, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (item_id) DO UPDATE SET quantity = excluded.quantity, version = excluded.version, \
             updated_at = excluded.updated_at",
        )
        .bind(item.item_id.0.as_bytes().as_slice())
        .bind(item.tenant.as_str())
        .bind(item.sku.as_str())
        .bind(item.quantity)
        // Stored bit for bit in a signed column.
        .bind(item.version as i64)
        .bind(now)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
    }
    Ok(())
}

/// Queues each new item version on its channels: one row per item and channel, so a
/// version waiting unsent is replaced in place (coalesced) and keeps its first enqueue
/// time, its lease and its retry schedule, but not the failures counted against the older
/// version (a newer version starts with a budget of its own); a row already at this
/// version or newer stays.
pub(crate) async fn insert_outbox_rows(
    connection: &mut SqliteConnection,
    outbox: &[OutboxWrite],
    now: i64,
) -> Result<(), StoreError> {
    for row in outbox {
        sqlx::query(
            "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel, traceparent, enqueued_at, \
             first_enqueued_at, available_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8) \
             ON CONFLICT (item_id, channel) DO UPDATE SET tenant_id = excluded.tenant_id, sku = excluded.sku, \
             quantity = excluded.quantity, version = excluded.version, traceparent = excluded.traceparent, \
             enqueued_at = excluded.enqueued_at, attempts = 0 \
             WHERE outbox.version < excluded.version",
        )
        .bind(row.item_id.0.as_bytes().as_slice())
        .bind(row.tenant.as_str())
        .bind(row.sku.as_str())
        .bind(row.quantity)
        .bind(row.version)
        .bind(row.channel.as_str())
        .bind(row.traceparent.as_deref())
        .bind(now)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
    }
    Ok(())
}

/// Stores each source position, keeping the greater of the stored and the new one so a
/// re-applied or late batch never moves a source backwards.
async fn advance_checkpoints(
    connection: &mut SqliteConnection,
    checkpoints: &[Checkpoint],
    now: i64,
) -> Result<(), StoreError> {
    for checkpoint in checkpoints {
        // The cursor goes with the furthest offset: a position that is not ahead keeps the stored one.
        sqlx::query(
            "INSERT INTO source_checkpoints (source, partition, next_offset, cursor, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (source, partition) DO UPDATE SET \
             next_offset = max(source_checkpoints.next_offset, excluded.next_offset), \
             cursor = CASE WHEN excluded.next_offset >= source_checkpoints.next_offset \
                      THEN excluded.cursor ELSE source_checkpoints.cursor END, \
             updated_at = excluded.updated_at",
        )
        .bind(checkpoint.source.as_str())
        .bind(checkpoint.partition)
        .bind(checkpoint.position.offset)
        .bind(checkpoint.position.cursor.as_deref())
        .bind(now)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
    }
    Ok(())
}
