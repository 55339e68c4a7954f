//! The publish side of the store: claiming due outbox entries under a lease, recording how
//! each attempt ended, and the outbox and dead-letter views for metrics and operators.
//! Claims and records are `BEGIN IMMEDIATE` transactions, like batches: they take the write
//! lock before their first read, so concurrent publishers queue instead of both picking the
//! same item.

use catalog_core::ItemId;
use catalog_store::{
    rows, DeadLetter, OutboxClaim, OutboxDepth, OutboxEntry, PublishOutcome, PublishRecord, StoreError,
};
use chrono::Utc;
use sqlx::{SqliteConnection, SqlitePool};

use crate::columns::{self, micros};
use crate::error::store_error;

/// The `stage` of dead letters written for publishes.
const PUBLISH_STAGE: &str = "publish";

/// The reason recorded on a dead letter whose record did not name one.
const UNKNOWN_REASON: &str = "unknown";

/// A count or limit as SQLite's signed 64-bit integer, saturating.
fn saturating_i64<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// Claims up to `claim.limit` due items of `channel`, longest-waiting first (each row holds
/// its item's newest waiting version; due once settled or waited long enough), and leases
/// them until `now + lease`.
pub(crate) async fn claim_outbox(
    pool: &SqlitePool,
    channel: &str,
    claim: &OutboxClaim,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let OutboxClaim { limit, lease, settle, max_wait } = *claim;
    if limit == 0 {
        return Ok(Vec::new());
    }
    // The write lock is taken before the pick, so no other claimer can pick (or lease) the
    // same rows between this pick and its lease.
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
    let connection: &mut SqliteConnection = &mut transaction;
    let now = micros(Utc::now());
    let leased_until = now.saturating_add(saturating_i64(lease.as_micros()));

    let picked = sqlx::query(
        "SELECT outbox_id, item_id, tenant_id, sku, quantity, version, channel, traceparent, attempts, enqueued_at \
         FROM outbox \
         WHERE channel = ?1 AND available_at <= ?2 AND (enqueued_at <= ?4 OR first_enqueued_at <= ?5) \
         ORDER BY first_enqueued_at, outbox_id \
         LIMIT ?3",
    )
    .bind(channel)
    .bind(now)
    .bind(saturating_i64(limit))
    .bind(now.saturating_sub(saturating_i64(settle.as_micros())))
    .bind(now.saturating_sub(saturating_i64(max_wait.as_micros())))
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;

    let mut claimed = Vec::with_capacity(picked.len());
    for row in &picked {
        let item_id = columns::uuid_column(row, "item_id")?;
        let tenant: String = columns::column(row, "tenant_id")?;
        let sku: String = columns::column(row, "sku")?;
        let attempts: i64 = columns::column(row, "attempts")?;
        claimed.push(OutboxEntry {
            item_id: ItemId(item_id),
            tenant: rows::tenant(&tenant)?,
            sku: rows::sku(&sku)?,
            quantity: columns::column(row, "quantity")?,
            version: rows::version(columns::column(row, "version")?)?,
            channel: columns::column(row, "channel")?,
            traceparent: columns::column(row, "traceparent")?,
            attempts: columns::narrowed("attempts", attempts)?,
            enqueued_at: columns::time_column(row, "enqueued_at")?,
        });
    }

    for row in &picked {
        let outbox_id: i64 = columns::column(row, "outbox_id")?;
        sqlx::query("UPDATE outbox SET available_at = ?1 WHERE outbox_id = ?2")
            .bind(leased_until)
            .bind(outbox_id)
            .execute(&mut *connection)
            .await
            .map_err(store_error)?;
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(claimed)
}

/// Records a finished attempt and what it means for the outbox, the channel's held version
/// and the dead letters, in one transaction.
pub(crate) async fn record_publishes(pool: &SqlitePool, records: &[PublishRecord]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
    for record in records {
        record_in(&mut transaction, record).await?;
    }
    transaction.commit().await.map_err(store_error)
}

async fn record_in(connection: &mut SqliteConnection, record: &PublishRecord) -> Result<(), StoreError> {
    let now = micros(Utc::now());
    let item_id = record.item_id.0.as_bytes().as_slice();
    // Versions are stored bit for bit in a signed column.
    let version = record.version as i64;

    sqlx::query(
        "INSERT INTO publish_attempts (item_id, version, channel, attempt, status, result, latency_ms, error, \
         attempted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .bind(item_id)
    .bind(version)
    .bind(record.channel.as_str())
    .bind(i64::from(record.attempt))
    .bind(record.status.map(i64::from))
    .bind(record.outcome.as_str())
    .bind(record.latency_ms.map(saturating_i64))
    .bind(record.error.as_deref())
    .bind(now)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;

    match record.outcome {
        PublishOutcome::Published => {
            hold_version(connection, record, version, now).await?;
        }
        PublishOutcome::Superseded { current_version } => {
            hold_version(connection, record, version.max(current_version as i64), now).await?;
        }
        PublishOutcome::RetryAt(due_at) => {
            // The item waits out the backoff whatever version it now holds: a newer version
            // queued meanwhile goes out at the retry, not at once to a channel that just failed.
            sqlx::query(
                "UPDATE outbox SET available_at = ?1, attempts = attempts + 1 WHERE item_id = ?2 AND channel = ?3",
            )
            .bind(micros(due_at))
            .bind(item_id)
            .bind(record.channel.as_str())
            .execute(&mut *connection)
            .await
            .map_err(store_error)?;
        }
        PublishOutcome::DeadLettered => {
            done_with(connection, record, version, now).await?;
            dead_letter(connection, record, now).await?;
        }
    }
    Ok(())
}

/// The channel now holds `held_version` (or newer): remember it, and be done with the row.
async fn hold_version(
    connection: &mut SqliteConnection,
    record: &PublishRecord,
    held_version: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO published_versions (item_id, channel, version, published_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (item_id, channel) DO UPDATE SET \
         version = max(published_versions.version, excluded.version), published_at = excluded.published_at",
    )
    .bind(record.item_id.0.as_bytes().as_slice())
    .bind(record.channel.as_str())
    .bind(held_version)
    .bind(now)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    done_with(connection, record, held_version, now).await
}

/// The item's row is done with up to `version`: removed if it still waits at that version
/// or an older one; if a newer version was queued while this one was out, that one is due
/// now, as a fresh run that started waiting when it was queued.
async fn done_with(
    connection: &mut SqliteConnection,
    record: &PublishRecord,
    version: i64,
    now: i64,
) -> Result<(), StoreError> {
    for statement in [
        "DELETE FROM outbox WHERE item_id = ?1 AND channel = ?2 AND version <= ?3",
        "UPDATE outbox SET available_at = ?4, attempts = 0, first_enqueued_at = enqueued_at \
         WHERE item_id = ?1 AND channel = ?2 AND version > ?3",
    ] {
        sqlx::query(statement)
            .bind(record.item_id.0.as_bytes().as_slice())
            .bind(record.channel.as_str())
            .bind(version)
            .bind(now)
            .execute(&mut *connection)
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

/// Counts the failure on the item's open dead letter for the channel, or opens one. The
/// write lock is held, so the open letter cannot appear or close between the two statements.
async fn dead_letter(connection: &mut SqliteConnection, record: &PublishRecord, now: i64) -> Result<(), StoreError> {
    let subject = record.item_id.to_string();
    let reason = record.dead_letter_reason.as_deref().unwrap_or(UNKNOWN_REASON);
    // The channel term repeats the partial unique index's expression, so SQLite can use it.
    let updated = sqlx::query(
        "UPDATE dead_letters SET attempts = attempts + 1, last_failed_at = ?1, reason = ?2, error = ?3, body = ?4 \
         WHERE stage = ?5 AND subject = ?6 AND coalesce(channel, '') = ?7 AND resolved_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(record.error.as_deref())
    .bind(record.body.as_deref())
    .bind(PUBLISH_STAGE)
    .bind(subject.as_str())
    .bind(record.channel.as_str())
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    if updated.rows_affected() > 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO dead_letters (stage, subject, channel, reason, error, body, attempts, first_failed_at, \
         last_failed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)",
    )
    .bind(PUBLISH_STAGE)
    .bind(subject.as_str())
    .bind(record.channel.as_str())
    .bind(reason)
    .bind(record.error.as_deref())
    .bind(record.body.as_deref())
    .bind(now)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub(crate) async fn outbox_depth(pool: &SqlitePool) -> Result<Vec<OutboxDepth>, StoreError> {
    let stored = sqlx::query(
        "SELECT channel, count(*) AS pending, min(first_enqueued_at) AS oldest_enqueued_at FROM outbox \
         GROUP BY channel ORDER BY channel",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    stored
        .iter()
        .map(|row| {
            let pending: i64 = columns::column(row, "pending")?;
            Ok(OutboxDepth {
                channel: columns::column(row, "channel")?,
                pending: columns::narrowed("pending", pending)?,
                oldest_enqueued_at: columns::optional_time_column(row, "oldest_enqueued_at")?,
            })
        })
        .collect()
}

/// Items whose published version on `channel` lags their catalog version.
pub(crate) async fn stale_items(pool: &SqlitePool, channel: &str) -> Result<u64, StoreError> {
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM items AS i \
         LEFT JOIN published_versions AS p ON p.item_id = i.item_id AND p.channel = ?1 \
         WHERE i.version > coalesce(p.version, 0)",
    )
    .bind(channel)
    .fetch_one(pool)
    .await
    .map_err(store_error)?;
    Ok(u64::try_from(stale).unwrap_or(0))
}

pub(crate) async fn open_dead_letters(pool: &SqlitePool, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
    let stored = sqlx::query(
        "SELECT dead_letter_id, stage, subject, channel, reason, error, body, attempts, first_failed_at, \
         last_failed_at FROM dead_letters WHERE resolved_at IS NULL \
         ORDER BY last_failed_at DESC, dead_letter_id DESC LIMIT ?1",
    )
    .bind(saturating_i64(limit))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    stored
        .iter()
        .map(|row| {
            let attempts: i64 = columns::column(row, "attempts")?;
            Ok(DeadLetter {
                dead_letter_id: columns::column(row, "dead_letter_id")?,
                stage: columns::column(row, "stage")?,
                subject: columns::column(row, "subject")?,
                channel: columns::column(row, "channel")?,
                reason: columns::column(row, "reason")?,
                error: columns::column(row, "error")?,
                body: columns::column(row, "body")?,
                attempts: columns::narrowed("attempts", attempts)?,
                first_failed_at: columns::time_column(row, "first_failed_at")?,
                last_failed_at: columns::time_column(row, "last_failed_at")?,
            })
        })
        .collect()
}
