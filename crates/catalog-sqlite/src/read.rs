//! The read side of the store: checkpoints, items, traces, journal windows and status.
//! Queries that read more than one table run in one read transaction, so their parts come
//! from the same snapshot of the database. A journal window, which a replay reads whole, is
//! read in-process on a read-only connection of its own.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use catalog_core::{CatalogItem, EventId, ItemId, ItemKey, Outcome, Sku, TenantId};
use catalog_store::rows::{self, JournalRow};
use catalog_store::{
    event_ids_in_effect, winners_beyond, Checkpoint, EventsPage, ItemTrace, JournalEntry, JournalTail, JournalWindow,
    PendingPublish, Position, PublishAttempt, StoreError, StoredOffer, SyncStatus, TracePage, WindowCursor, WindowPage,
    MAX_TRACE_ATTEMPTS,
};
use sqlx::{SqliteConnection, SqlitePool};

use crate::columns::{self, micros, ITEM_COLUMNS, JOURNAL_COLUMNS, OFFER_STATE_COLUMNS};
use crate::error::{store_error, write_error};
use crate::writer::read_apart;

pub(crate) async fn checkpoints(pool: &SqlitePool, source: &str) -> Result<Vec<Checkpoint>, StoreError> {
    let stored = sqlx::query(
        "SELECT source, partition, next_offset, cursor FROM source_checkpoints WHERE source = ?1 ORDER BY partition",
    )
    .bind(source)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    stored
        .iter()
        .map(|row| {
            Ok(Checkpoint {
                source: columns::column(row, "source")?,
                partition: columns::column(row, "partition")?,
                position: Position {
                    offset: columns::column(row, "next_offset")?,
                    cursor: columns::column(row, "cursor")?,
                },
            })
        })
        .collect()
}

async fn item_on(connection: &mut SqliteConnection, item_id: ItemId) -> Result<Option<CatalogItem>, StoreError> {
    let sql = format!("SELECT {ITEM_COLUMNS} FROM items WHERE item_id = ?1");
    let row = sqlx::query(&sql)
        .bind(item_id.0.as_bytes().as_slice())
        .fetch_all(connection)
        .await
        .map_err(store_error)?
        .into_iter()
        .next();
    row.map(|row| columns::item_row(&row)?.into_item()).transpose()
}

pub(crate) async fn item(pool: &SqlitePool, item_id: ItemId) -> Result<Option<CatalogItem>, StoreError> {
    let mut connection = pool.acquire().await.map_err(store_error)?;
    item_on(&mut connection, item_id).await
}

pub(crate) async fn items(pool: &SqlitePool, tenant: &TenantId) -> Result<Vec<CatalogItem>, StoreError> {
    let sql = format!("SELECT {ITEM_COLUMNS} FROM items WHERE tenant_id = ?1 ORDER BY sku");
    let stored = sqlx::query(&sql).bind(tenant.as_str()).fetch_all(pool).await.map_err(store_error)?;
    stored.iter().map(|row| columns::item_row(row)?.into_item()).collect()
}

pub(crate) async fn item_trace(pool: &SqlitePool, item_id: ItemId) -> Result<Option<ItemTrace>, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let connection: &mut SqliteConnection = &mut transaction;
    let Some(item) = item_on(connection, item_id).await? else { return Ok(None) };

    let offers = offers_of(connection, item.tenant(), item.sku()).await?;

    let sql = format!("SELECT {JOURNAL_COLUMNS} FROM events WHERE tenant_id = ?1 AND sku = ?2");
    let journal_rows = sqlx::query(&sql)
        .bind(item.tenant().as_str())
        .bind(item.sku().as_str())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
    let mut events = journal_entries(&journal_rows)?;
    rows::sort_for_trace(&mut events);

    let pending_publishes = pending_publishes(connection, item_id).await?;
    let publish_attempts = publish_attempts(connection, item_id, None).await?;
    Ok(Some(ItemTrace { item, offers, events, pending_publishes, publish_attempts }))
}

pub(crate) async fn journal_tail(
    pool: &SqlitePool,
    item_id: ItemId,
    newest: usize,
) -> Result<Option<JournalTail>, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let connection: &mut SqliteConnection = &mut transaction;
    let Some(item) = item_on(connection, item_id).await? else { return Ok(None) };
    let offers = offers_of(connection, item.tenant(), item.sku()).await?;
    // Newest first: index `events_item_trace` (migration 0012) read backwards, stopped after
    // `newest` rows, however long the item's history.
    let sql = format!(
        "SELECT {JOURNAL_COLUMNS} FROM events
         WHERE tenant_id = ?1 AND sku = ?2 AND effective_at IS NOT NULL
         ORDER BY effective_at DESC, (coalesce(sequence, 0) < 0) DESC, coalesce(sequence, 0) DESC, event_id DESC,
                  received_at DESC, journal_id DESC
         LIMIT ?3"
    );
    let journal_rows = sqlx::query(&sql)
        .bind(item.tenant().as_str())
        .bind(item.sku().as_str())
        .bind(i64::try_from(newest).unwrap_or(i64::MAX))
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
    let mut rows = journal_entries(&journal_rows)?;
    rows.reverse();
    let winners = applied_rows(connection, &winners_beyond(&offers, &rows)).await?;
    Ok(Some(JournalTail { item, offers, whole: rows.len() < newest, newest: rows, winners }))
}

async fn offers_of(
    connection: &mut SqliteConnection,
    tenant: &TenantId,
    sku: &Sku,
) -> Result<Vec<StoredOffer>, StoreError> {
    let sql = format!(
        "SELECT supplier_id, quantity, winner_event_id, {OFFER_STATE_COLUMNS} FROM offers \
         WHERE tenant_id = ?1 AND sku = ?2 ORDER BY supplier_id"
    );
    let offer_rows = sqlx::query(&sql)
        .bind(tenant.as_str())
        .bind(sku.as_str())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
    offer_rows.iter().map(|row| columns::offer_row(row)?.into_offer()).collect()
}

async fn pending_publishes(
    connection: &mut SqliteConnection,
    item_id: ItemId,
) -> Result<Vec<PendingPublish>, StoreError> {
    let outbox_rows = sqlx::query(
        "SELECT channel, version, enqueued_at, available_at, attempts FROM outbox WHERE item_id = ?1
             ORDER BY version, channel",
    )
    .bind(item_id.0.as_bytes().as_slice())
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    outbox_rows
        .iter()
        .map(|row| {
            Ok(PendingPublish {
                channel: columns::column(row, "channel")?,
                version: rows::version(columns::column(row, "version")?)?,
                enqueued_at: columns::time_column(row, "enqueued_at")?,
                not_before: columns::time_column(row, "available_at")?,
                failed_attempts: columns::narrowed("attempts", columns::column(row, "attempts")?)?,
            })
        })
        .collect()
}

/// The item's publish attempts, oldest first: all of them, or the `newest` so many.
async fn publish_attempts(
    connection: &mut SqliteConnection,
    item_id: ItemId,
    newest: Option<usize>,
) -> Result<Vec<PublishAttempt>, StoreError> {
    let attempt_rows = sqlx::query(
        "SELECT * FROM ( \
           SELECT channel, version, attempt, status, result, latency_ms, error, attempted_at, listing, sent_quantity, \
                  rule, attempt_id \
           FROM publish_attempts WHERE item_id = ?1 ORDER BY attempted_at DESC, attempt_id DESC LIMIT ?2 \
         ) ORDER BY attempted_at, attempt_id",
    )
    .bind(item_id.0.as_bytes().as_slice())
    .bind(newest.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)))
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    attempt_rows
        .iter()
        .map(|row| {
            let status: Option<i64> = columns::column(row, "status")?;
            let latency_ms: Option<i64> = columns::column(row, "latency_ms")?;
            Ok(PublishAttempt {
                channel: columns::column(row, "channel")?,
                version: rows::version(columns::column(row, "version")?)?,
                attempt: columns::narrowed("attempt", columns::column(row, "attempt")?)?,
                status: status.map(|status| columns::narrowed("status", status)).transpose()?,
                result: columns::column(row, "result")?,
                latency_ms: latency_ms.map(|latency_ms| columns::narrowed("latency_ms", latency_ms)).transpose()?,
                error: columns::column(row, "error")?,
                attempted_at: columns::time_column(row, "attempted_at")?,
                sent: rows::sent_quantity(
                    columns::column(row, "listing")?,
                    columns::column(row, "sent_quantity")?,
                    columns::column(row, "rule")?,
                )?,
            })
        })
        .collect()
}

/// The order of `rows::sort_for_trace` in SQL: SQLite sorts NULLs first as `None` sorts
/// first, and blobs (event ids) byte by byte as `Uuid` does; the sequence (a `u64` stored bit
/// for bit) is compared unsigned, so the ones stored negative come last. Index
/// `events_item_trace` (migration 0012) holds the events of an item in this order.
const TRACE_ORDER: &str =
    "effective_at, (coalesce(sequence, 0) < 0), coalesce(sequence, 0), event_id, received_at, journal_id";

/// Event ids bound per statement by [`applied_rows`]: well below SQLite's limit on parameters.
const EVENT_IDS_PER_STATEMENT: usize = 500;

/// The applied journal rows of `event_ids`, in no order: the rows in effect of a trace page and
/// the winners older than a journal tail. Each is found through index `events_event_id_decided`
/// (its predicate repeated so SQLite uses it), one row per event id at most; a decided row that
/// is not applied is left out.
async fn applied_rows(
    connection: &mut SqliteConnection,
    event_ids: &[EventId],
) -> Result<Vec<JournalEntry>, StoreError> {
    let mut applied = Vec::new();
    for event_ids in event_ids.chunks(EVENT_IDS_PER_STATEMENT) {
        let placeholders = (0..event_ids.len()).map(|n| format!("?{}", n + 1)).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {JOURNAL_COLUMNS} FROM events \
             WHERE event_id IN ({placeholders}) AND outcome IN ('applied', 'stale', 'superseded', 'held')"
        );
        let mut query = sqlx::query(&sql);
        for event_id in event_ids {
            query = query.bind(event_id.0.as_bytes().to_vec());
        }
        let journal_rows = query.fetch_all(&mut *connection).await.map_err(store_error)?;
        applied.extend(journal_entries(&journal_rows)?.into_iter().filter(|entry| entry.outcome == Outcome::Applied));
    }
    Ok(applied)
}

pub(crate) async fn item_trace_page(
    pool: &SqlitePool,
    key: &ItemKey,
    page: EventsPage,
) -> Result<Option<TracePage>, StoreError> {
    let item_id = key.item_id();
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let connection: &mut SqliteConnection = &mut transaction;
    let item = item_on(connection, item_id).await?;
    let counted = sqlx::query(
        "SELECT count(*) AS n_events, max(journal_id) AS through FROM events \
         WHERE tenant_id = ?1 AND sku = ?2 AND (?3 IS NULL OR journal_id <= ?3)",
    )
    .bind(key.tenant.as_str())
    .bind(key.sku.as_str())
    .bind(page.through)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?
    .into_iter()
    .next()
    .ok_or_else(|| StoreError::Corrupt("an aggregate answered no row".to_owned()))?;
    let n_events: i64 = columns::column(&counted, "n_events")?;
    let n_events: u64 = columns::narrowed("n_events", n_events)?;
    let events_through: Option<i64> = columns::column(&counted, "through")?;
    if item.is_none() && n_events == 0 {
        return Ok(None);
    }
    let offers = offers_of(connection, &key.tenant, &key.sku).await?;
    let in_effect = applied_rows(connection, &event_ids_in_effect(&offers)).await?;
    let sql = format!(
        "SELECT {JOURNAL_COLUMNS} FROM events WHERE tenant_id = ?1 AND sku = ?2 AND journal_id <= ?5 \
         ORDER BY {TRACE_ORDER} LIMIT ?3 OFFSET ?4"
    );
    let journal_rows = sqlx::query(&sql)
        .bind(key.tenant.as_str())
        .bind(key.sku.as_str())
        .bind(i64::try_from(page.limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
        .bind(events_through.unwrap_or(0))
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
    let events = journal_entries(&journal_rows)?;
    let pending_publishes = pending_publishes(connection, item_id).await?;
    let publish_attempts = publish_attempts(connection, item_id, Some(MAX_TRACE_ATTEMPTS)).await?;
    let n_publish_attempts = if publish_attempts.len() < MAX_TRACE_ATTEMPTS {
        publish_attempts.len() as u64
    } else {
        let counted: Vec<i64> = sqlx::query_scalar("SELECT count(*) FROM publish_attempts WHERE item_id = ?1")
            .bind(item_id.0.as_bytes().as_slice())
            .fetch_all(&mut *connection)
            .await
            .map_err(store_error)?;
        counted.first().map_or(0, |n| u64::try_from(*n).unwrap_or(0))
    };
    Ok(Some(TracePage {
        item,
        offers,
        in_effect,
        events,
        n_events,
        events_through,
        pending_publishes,
        publish_attempts,
        n_publish_attempts,
    }))
}

fn journal_entries(stored: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<JournalEntry>, StoreError> {
    stored.iter().map(|row| columns::journal_row(row).and_then(JournalRow::into_entry)).collect()
}

pub(crate) async fn journal_window_page(
    path: &Arc<Path>,
    busy_timeout: Duration,
    window: &JournalWindow,
    page: WindowPage,
) -> Result<Vec<JournalEntry>, StoreError> {
    let window = window.clone();
    // A replay reads a window page after page: read in-process on a connection of its own.
    read_apart(path, busy_timeout, move |connection| {
        // Optional bounds are bound as NULL and switched off in SQL, so one statement (and one
        // prepared plan) serves every shape of window. Held rows alone are read through their
        // partial index (`events_held`). A page reads the index from its cursor's received
        // time (?2); of the rows received at that very time, those up to the cursor's journal
        // id are behind it (the index orders equal times by rowid, the journal id).
        let held = if window.held_only { "AND outcome = 'held'" } else { "" };
        let sql = format!(
            "SELECT {JOURNAL_COLUMNS} FROM events \
             WHERE tenant_id = ?1 AND received_at >= ?2 AND (?3 IS NULL OR received_at < ?3) \
             AND (?4 IS NULL OR supplier_id = ?4) {held} \
             AND (?5 IS NULL OR received_at > ?2 OR journal_id > ?5) \
             ORDER BY received_at, journal_id LIMIT ?6"
        );
        let mut select = connection.prepare(&sql).map_err(write_error)?;
        let mut stored = select
            .query(rusqlite::params![
                window.tenant.as_str(),
                micros(WindowCursor::reads_from(page.after, window.since)),
                window.until.map(micros),
                window.supplier.as_ref().map(|supplier| supplier.as_str()),
                page.after.map(|cursor| cursor.journal_id),
                i64::try_from(page.limit).unwrap_or(i64::MAX),
            ])
            .map_err(write_error)?;
        let mut entries = Vec::new();
        while let Some(row) = stored.next().map_err(write_error)? {
            entries.push(columns::raw::journal_row(row).and_then(JournalRow::into_entry)?);
        }
        Ok(entries)
    })
    .await
}

pub(crate) async fn sync_status(pool: &SqlitePool, tenant: &TenantId) -> Result<Option<SyncStatus>, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let connection: &mut SqliteConnection = &mut transaction;
    let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE tenant_id = ?1")
        .bind(tenant.as_str())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?
        .into_iter()
        .next();
    if known.is_none() {
        return Ok(None);
    }

    let totals = sqlx::query(
        "SELECT max(received_at) AS last_received_at, \
         max(CASE WHEN outcome = 'applied' THEN received_at END) AS last_applied_at, \
         coalesce(sum(redelivery_count), 0) AS redeliveries \
         FROM events WHERE tenant_id = ?1",
    )
    .bind(tenant.as_str())
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?
    .into_iter()
    .next()
    .ok_or_else(|| StoreError::Corrupt("an aggregate answered no row".to_owned()))?;
    let redeliveries: i64 = columns::column(&totals, "redeliveries")?;

    let outcome_rows =
        sqlx::query("SELECT outcome, count(*) AS n_events FROM events WHERE tenant_id = ?1 GROUP BY outcome")
            .bind(tenant.as_str())
            .fetch_all(&mut *connection)
            .await
            .map_err(store_error)?;
    let mut events_by_outcome = BTreeMap::new();
    for row in &outcome_rows {
        let n_events: i64 = columns::column(row, "n_events")?;
        events_by_outcome.insert(columns::column(row, "outcome")?, columns::narrowed("n_events", n_events)?);
    }

    let n_items: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE tenant_id = ?1")
        .bind(tenant.as_str())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("an aggregate answered no row".to_owned()))?;
    let outbox_pending: i64 = sqlx::query_scalar("SELECT count(DISTINCT item_id) FROM outbox WHERE tenant_id = ?1")
        .bind(tenant.as_str())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("an aggregate answered no row".to_owned()))?;

    Ok(Some(SyncStatus {
        tenant: tenant.clone(),
        last_received_at: columns::optional_time_column(&totals, "last_received_at")?,
        last_applied_at: columns::optional_time_column(&totals, "last_applied_at")?,
        events_by_outcome,
        redeliveries: columns::narrowed("redeliveries", redeliveries)?,
        n_items: columns::narrowed("n_items", n_items)?,
        outbox_pending: columns::narrowed("outbox_pending", outbox_pending)?,
    }))
}
