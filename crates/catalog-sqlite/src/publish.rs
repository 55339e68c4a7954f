//! The publish side of the store: claiming due outbox entries under a lease, recording how
//! each attempt ended (writing or resolving dead letters through `dead_letters`), and the
//! outbox views for metrics.
//! Claims and records are `BEGIN IMMEDIATE` transactions, like batches: they take the write
//! lock before their first read, so concurrent publishers queue instead of both picking the
//! same item.

use catalog_core::ItemId;
use catalog_store::{
    rows, DeadLetterResolution, OutboxClaim, OutboxDepth, OutboxEntry, PublishOutcome, PublishRecord,
    ResolvedDeadLetter, StoreError,
};
use chrono::Utc;
use sqlx::{SqliteConnection, SqlitePool};

use crate::columns::{self, micros};
use crate::dead_letters;
use crate::error::store_error;

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

/// Records finished attempts and what they mean for the outbox, the channel's held version
/// and the dead letters, in one transaction; returns the dead letters they resolved.
pub(crate) async fn record_publishes(
    pool: &SqlitePool,
    records: &[PublishRecord],
) -> Result<Vec<ResolvedDeadLetter>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
    let mut resolved = Vec::new();
    for record in records {
        resolved.extend(record_in(&mut transaction, record).await?);
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(resolved)
}

async fn record_in(
    connection: &mut SqliteConnection,
    record: &PublishRecord,
) -> Result<Option<ResolvedDeadLetter>, StoreError> {
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
            dead_letters::resolve(connection, record, version, DeadLetterResolution::PublishedLater, now).await
        }
        PublishOutcome::Superseded { current_version } => {
            let held_version = version.max(current_version as i64);
            hold_version(connection, record, held_version, now).await?;
            dead_letters::resolve(connection, record, held_version, DeadLetterResolution::SupersededLater, now).await
        }
        PublishOutcome::RetryAt(due_at) | PublishOutcome::ThrottledUntil(due_at) => {
            // The item waits out the backoff whatever version it now holds: a newer version
            // queued meanwhile goes out at the retry, not at once to a channel that just failed.
            // A failure counts only while the row still holds the version that failed (a newer
            // one starts with a budget of its own); throttling is no failure at all.
            let failed = matches!(record.outcome, PublishOutcome::RetryAt(_));
            sqlx::query(
                "UPDATE outbox SET available_at = ?1, \
                 attempts = attempts + CASE WHEN ?4 AND version = ?5 THEN 1 ELSE 0 END \
                 WHERE item_id = ?2 AND channel = ?3",
            )
            .bind(micros(due_at))
            .bind(item_id)
            .bind(record.channel.as_str())
            .bind(failed)
            .bind(version)
            .execute(&mut *connection)
            .await
            .map_err(store_error)?;
            Ok(None)
        }
        PublishOutcome::DeadLettered => {
            done_with(connection, record, version, now).await?;
            dead_letters::write(connection, record, now).await?;
            Ok(None)
        }
    }
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
