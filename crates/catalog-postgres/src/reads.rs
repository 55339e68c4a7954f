//! The read side of the Postgres store: checkpoints, items, traces, journal windows and
//! status. Every column is read through `columns`, so a bad row is an error, never a panic.

use std::collections::BTreeMap;

use catalog_core::{CatalogItem, EventId, ItemId, ItemKey, Sku, SupplierId, TenantId};
use catalog_store::rows;
use catalog_store::{
    event_ids_in_effect, winners_beyond, Checkpoint, EventsPage, ItemTrace, JournalEntry, JournalTail, JournalWindow,
    PendingPublish, Position, PublishAttempt, StoreError, StoredOffer, SyncStatus, TracePage, WindowCursor, WindowPage,
    MAX_TRACE_ATTEMPTS,
};
use sqlx::{PgConnection, PgPool};

use crate::columns::{
    column, item_row, journal_entries, narrowed, narrowed_int4, offer_row, optional_narrowed, ITEM_COLUMNS,
    JOURNAL_COLUMNS, OFFER_STATE_COLUMNS,
};
use crate::store_error;

pub(crate) async fn checkpoints(pool: &PgPool, source: &str) -> Result<Vec<Checkpoint>, StoreError> {
    let rows = sqlx::query(
        "SELECT partition, next_offset, cursor FROM source_checkpoints WHERE source = $1 ORDER BY partition",
    )
    .bind(source)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(Checkpoint {
                source: source.to_owned(),
                partition: column(row, "partition")?,
                position: Position { offset: column(row, "next_offset")?, cursor: column(row, "cursor")? },
            })
        })
        .collect()
}

pub(crate) async fn item(pool: &PgPool, item_id: ItemId) -> Result<Option<CatalogItem>, StoreError> {
    sqlx::query(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE item_id = $1 AND version > 0"))
        .bind(item_id.0)
        .fetch_optional(pool)
        .await
        .map_err(store_error)?
        .map(|row| item_row(&row)?.into_item())
        .transpose()
}

pub(crate) async fn items(pool: &PgPool, tenant: &TenantId) -> Result<Vec<CatalogItem>, StoreError> {
    sqlx::query(&format!(
        r#"SELECT {ITEM_COLUMNS} FROM items WHERE tenant_id = $1 AND version > 0 ORDER BY sku COLLATE "C""#
    ))
    .bind(tenant.as_str())
    .fetch_all(pool)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| item_row(row)?.into_item())
    .collect()
}

/// Opens the one snapshot every part of a trace is read in: a batch committed meanwhile
/// shows in all or none.
async fn trace_snapshot(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
    Ok(transaction)
}

/// The item `item_id` names and its offers, or `None` without an item row.
async fn item_and_offers(
    connection: &mut PgConnection,
    item_id: ItemId,
) -> Result<Option<(CatalogItem, Vec<StoredOffer>)>, StoreError> {
    let Some(row) = sqlx::query(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE item_id = $1 AND version > 0"))
        .bind(item_id.0)
        .fetch_optional(&mut *connection)
        .await
        .map_err(store_error)?
    else {
        return Ok(None);
    };
    let item = item_row(&row)?.into_item()?;
    let offers = offers_of(connection, item.tenant(), item.sku()).await?;
    Ok(Some((item, offers)))
}

pub(crate) async fn item_trace(pool: &PgPool, item_id: ItemId) -> Result<Option<ItemTrace>, StoreError> {
    let mut transaction = trace_snapshot(pool).await?;
    let Some((item, offers)) = item_and_offers(&mut transaction, item_id).await? else { return Ok(None) };
    let mut events = sqlx::query(&format!("SELECT {JOURNAL_COLUMNS} FROM events WHERE tenant_id = $1 AND sku = $2"))
        .bind(item.tenant().as_str())
        .bind(item.sku().as_str())
        .fetch_all(&mut *transaction)
        .await
        .map_err(store_error)
        .and_then(|rows| journal_entries(&rows))?;
    rows::sort_for_trace(&mut events);
    let pending_publishes = pending_publishes(&mut transaction, item_id).await?;
    let publish_attempts = publish_attempts(&mut transaction, item_id, None).await?;
    transaction.commit().await.map_err(store_error)?;
    Ok(Some(ItemTrace { item, offers, events, pending_publishes, publish_attempts }))
}

/// The order of `rows::sort_for_trace` in SQL: NULLs first as `None` sorts first, and the
/// sequence (a `u64` stored bit for bit) unsigned, so the ones stored negative come last.
/// Index `events_item_trace` (migration 0012) holds the events of an item in this order.
const TRACE_ORDER: &str = "effective_at NULLS FIRST, (coalesce(sequence, 0) < 0), coalesce(sequence, 0), \
                           event_id NULLS FIRST, received_at, journal_id";

pub(crate) async fn item_trace_page(
    pool: &PgPool,
    key: &ItemKey,
    page: EventsPage,
) -> Result<Option<TracePage>, StoreError> {
    let item_id = key.item_id();
    let mut transaction = trace_snapshot(pool).await?;
    let item = sqlx::query(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE item_id = $1 AND version > 0"))
        .bind(item_id.0)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(store_error)?
        .map(|row| item_row(&row)?.into_item())
        .transpose()?;
    let counted = sqlx::query(
        "SELECT count(*) AS n_events, max(journal_id) AS through FROM events
         WHERE tenant_id = $1 AND sku = $2 AND ($3::bigint IS NULL OR journal_id <= $3)",
    )
    .bind(key.tenant.as_str())
    .bind(key.sku.as_str())
    .bind(page.through)
    .fetch_one(&mut *transaction)
    .await
    .map_err(store_error)?;
    let n_events: u64 = narrowed(&counted, "n_events")?;
    let events_through: Option<i64> = crate::columns::column(&counted, "through")?;
    if item.is_none() && n_events == 0 {
        return Ok(None);
    }
    let offers = offers_of(&mut transaction, &key.tenant, &key.sku).await?;
    let in_effect = applied_rows(&mut transaction, &event_ids_in_effect(&offers)).await?;
    let events = sqlx::query(&format!(
        "SELECT {JOURNAL_COLUMNS} FROM events WHERE tenant_id = $1 AND sku = $2 AND journal_id <= $5
         ORDER BY {TRACE_ORDER} LIMIT $3 OFFSET $4"
    ))
    .bind(key.tenant.as_str())
    .bind(key.sku.as_str())
    .bind(i64::try_from(page.limit).unwrap_or(i64::MAX))
    .bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
    .bind(events_through.unwrap_or(0))
    .fetch_all(&mut *transaction)
    .await
    .map_err(store_error)
    .and_then(|rows| journal_entries(&rows))?;
    let pending_publishes = pending_publishes(&mut transaction, item_id).await?;
    let publish_attempts = publish_attempts(&mut transaction, item_id, Some(MAX_TRACE_ATTEMPTS)).await?;
    let n_publish_attempts = if publish_attempts.len() < MAX_TRACE_ATTEMPTS {
        publish_attempts.len() as u64
    } else {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM publish_attempts WHERE item_id = $1")
            .bind(item_id.0)
            .fetch_one(&mut *transaction)
            .await
            .map_err(store_error)?;
        u64::try_from(n).unwrap_or(0)
    };
    transaction.commit().await.map_err(store_error)?;
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

pub(crate) async fn journal_tail(
    pool: &PgPool,
    item_id: ItemId,
    newest: usize,
) -> Result<Option<JournalTail>, StoreError> {
    let mut transaction = trace_snapshot(pool).await?;
    let Some((item, offers)) = item_and_offers(&mut transaction, item_id).await? else { return Ok(None) };
    // Newest first: a backward scan of index `events_item_trace` (migration 0015), stopped
    // after `newest` rows, however long the item's history.
    let mut rows = sqlx::query(&format!(
        "SELECT {JOURNAL_COLUMNS} FROM events
         WHERE tenant_id = $1 AND sku = $2 AND effective_at IS NOT NULL
         ORDER BY effective_at DESC NULLS LAST, (coalesce(sequence, 0) < 0) DESC, coalesce(sequence, 0) DESC,
                  event_id DESC NULLS LAST, received_at DESC, journal_id DESC
         LIMIT $3"
    ))
    .bind(item.tenant().as_str())
    .bind(item.sku().as_str())
    .bind(i64::try_from(newest).unwrap_or(i64::MAX))
    .fetch_all(&mut *transaction)
    .await
    .map_err(store_error)
    .and_then(|rows| journal_entries(&rows))?;
    rows.reverse();
    let winners = applied_rows(&mut transaction, &winners_beyond(&offers, &rows)).await?;
    transaction.commit().await.map_err(store_error)?;
    Ok(Some(JournalTail { item, offers, whole: rows.len() < newest, newest: rows, winners }))
}

/// The applied journal rows of `event_ids`, in no order: the rows in effect of a trace page and
/// the winners older than a journal tail. Each through its claim, by the journal row's key (as
/// `apply::journal::LOAD_PRIOR` does), so no partition is scanned; claims outlive their rows
/// (decision 0019), and a claimed row that is not applied is left out.
async fn applied_rows(connection: &mut PgConnection, event_ids: &[EventId]) -> Result<Vec<JournalEntry>, StoreError> {
    if event_ids.is_empty() {
        return Ok(Vec::new());
    }
    let event_ids: Vec<uuid::Uuid> = event_ids.iter().map(|event_id| event_id.0).collect();
    sqlx::query(&format!(
        "SELECT e.* FROM event_claims AS c CROSS JOIN LATERAL (
             SELECT {JOURNAL_COLUMNS} FROM events
             WHERE journal_id = c.journal_id AND received_at = c.received_at AND outcome = 'applied' LIMIT 1) AS e
         WHERE c.event_id = ANY($1)"
    ))
    .bind(&event_ids)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)
    .and_then(|rows| journal_entries(&rows))
}

async fn offers_of(
    connection: &mut PgConnection,
    tenant: &TenantId,
    sku: &Sku,
) -> Result<Vec<StoredOffer>, StoreError> {
    sqlx::query(&format!(
        r#"SELECT supplier_id, quantity, winner_event_id, {OFFER_STATE_COLUMNS}
           FROM offers WHERE tenant_id = $1 AND sku = $2 ORDER BY supplier_id COLLATE "C""#
    ))
    .bind(tenant.as_str())
    .bind(sku.as_str())
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| offer_row(row)?.into_offer())
    .collect()
}

async fn pending_publishes(connection: &mut PgConnection, item_id: ItemId) -> Result<Vec<PendingPublish>, StoreError> {
    sqlx::query(
        "SELECT channel, version, enqueued_at, available_at, attempts FROM outbox WHERE item_id = $1
         ORDER BY version, channel COLLATE \"C\"",
    )
    .bind(item_id.0)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| {
        Ok(PendingPublish {
            channel: column(row, "channel")?,
            version: rows::version(column(row, "version")?)?,
            enqueued_at: column(row, "enqueued_at")?,
            not_before: column(row, "available_at")?,
            failed_attempts: narrowed_int4(row, "attempts")?,
        })
    })
    .collect()
}

/// The item's publish attempts, oldest first: all of them, or the `newest` so many.
async fn publish_attempts(
    connection: &mut PgConnection,
    item_id: ItemId,
    newest: Option<usize>,
) -> Result<Vec<PublishAttempt>, StoreError> {
    sqlx::query(
        "SELECT * FROM (
           SELECT channel, version, attempt, status, result, latency_ms, error, attempted_at, listing, sent_quantity,
                  rule, attempt_id
           FROM publish_attempts WHERE item_id = $1 ORDER BY attempted_at DESC, attempt_id DESC LIMIT $2
         ) AS newest ORDER BY attempted_at, attempt_id",
    )
    .bind(item_id.0)
    .bind(newest.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| {
        let status: Option<i32> = column(row, "status")?;
        Ok(PublishAttempt {
            channel: column(row, "channel")?,
            version: rows::version(column(row, "version")?)?,
            attempt: narrowed_int4(row, "attempt")?,
            status: status
                .map(|status| {
                    u16::try_from(status).map_err(|_| StoreError::Corrupt(format!("status {status} is out of range")))
                })
                .transpose()?,
            result: column(row, "result")?,
            latency_ms: optional_narrowed(row, "latency_ms")?,
            error: column(row, "error")?,
            attempted_at: column(row, "attempted_at")?,
            sent: rows::sent_quantity(column(row, "listing")?, column(row, "sent_quantity")?, column(row, "rule")?)?,
        })
    })
    .collect()
}

/// The statement of a journal window's page. Held rows alone are read through their partial
/// index (`events_held`), which the literal predicate lets the planner use. A page reads the
/// index from its cursor's received time ($2), so no page walks the rows the ones before it
/// returned; of the rows received at that very time, those up to the cursor's journal id are
/// behind it. The order is the index's, so a page stops at its limit (`journal_plans`).
pub(crate) fn window_page_statement(held_only: bool) -> String {
    let held = if held_only { "AND outcome = 'held'" } else { "" };
    format!(
        "SELECT {JOURNAL_COLUMNS} FROM events
         WHERE tenant_id = $1 AND received_at >= $2 AND ($3::timestamptz IS NULL OR received_at < $3)
           AND ($4::text IS NULL OR supplier_id = $4) {held}
           AND ($5::int8 IS NULL OR received_at > $2 OR journal_id > $5)
         ORDER BY received_at, journal_id
         LIMIT $6"
    )
}

pub(crate) async fn journal_window_page(
    pool: &PgPool,
    window: &JournalWindow,
    page: WindowPage,
) -> Result<Vec<JournalEntry>, StoreError> {
    sqlx::query(&window_page_statement(window.held_only))
        .bind(window.tenant.as_str())
        .bind(WindowCursor::reads_from(page.after, window.since))
        .bind(window.until)
        .bind(window.supplier.as_ref().map(SupplierId::as_str))
        .bind(page.after.map(|cursor| cursor.journal_id))
        .bind(i64::try_from(page.limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(store_error)
        .and_then(|rows| journal_entries(&rows))
}

/// A tenant's last receipt and last applied receipt (`$1` the tenant), each the first row of a
/// walk back from the newest end of its receive index, not a scan of its journal.
pub(crate) const LAST_RECEIVED: &str = "SELECT
    (SELECT received_at FROM events WHERE tenant_id = $1 ORDER BY received_at DESC LIMIT 1) AS last_received_at,
    (SELECT received_at FROM events WHERE tenant_id = $1 AND outcome = 'applied'
     ORDER BY received_at DESC LIMIT 1) AS last_applied_at";

/// A tenant's status, read in one snapshot (a batch committed meanwhile shows in every part or
/// none, as on SQLite). The last receipt and the last applied receipt are read back from the
/// newest end of `events_tenant_received`; the counts still read the tenant's whole journal.
pub(crate) async fn sync_status(pool: &PgPool, tenant: &TenantId) -> Result<Option<SyncStatus>, StoreError> {
    let mut snapshot = trace_snapshot(pool).await?;
    let exists = sqlx::query("SELECT 1 FROM tenants WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_optional(&mut *snapshot)
        .await
        .map_err(store_error)?;
    if exists.is_none() {
        return Ok(None);
    }
    let last = sqlx::query(LAST_RECEIVED).bind(tenant.as_str()).fetch_one(&mut *snapshot).await.map_err(store_error)?;
    let totals = sqlx::query(
        "SELECT (SELECT coalesce(sum(redelivery_count), 0)::int8 FROM events WHERE tenant_id = $1) AS redeliveries,
                (SELECT count(*) FROM items WHERE tenant_id = $1 AND version > 0) AS n_items,
                (SELECT count(DISTINCT item_id) FROM outbox WHERE tenant_id = $1) AS outbox_pending",
    )
    .bind(tenant.as_str())
    .fetch_one(&mut *snapshot)
    .await
    .map_err(store_error)?;
    let events_by_outcome =
        sqlx::query("SELECT outcome, count(*) AS n_events FROM events WHERE tenant_id = $1 GROUP BY outcome")
            .bind(tenant.as_str())
            .fetch_all(&mut *snapshot)
            .await
            .map_err(store_error)?
            .iter()
            .map(|row| Ok((column(row, "outcome")?, narrowed(row, "n_events")?)))
            .collect::<Result<BTreeMap<String, u64>, StoreError>>()?;
    Ok(Some(SyncStatus {
        tenant: tenant.clone(),
        last_received_at: column(&last, "last_received_at")?,
        last_applied_at: column(&last, "last_applied_at")?,
        events_by_outcome,
        redeliveries: narrowed(&totals, "redeliveries")?,
        n_items: narrowed(&totals, "n_items")?,
        outbox_pending: narrowed(&totals, "outbox_pending")?,
    }))
}
