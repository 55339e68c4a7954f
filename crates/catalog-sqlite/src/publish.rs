//! The publish side of the store: claiming due outbox entries under a lease, recording how
//! each attempt ended (writing or resolving dead letters through `dead_letters`), and the
//! outbox views for metrics.
//! Claims and records are jobs of the writer thread, like batches, each one `BEGIN IMMEDIATE`
//! transaction: concurrent publishers queue on the writer instead of both picking the same
//! item, and never wait on SQLite's lock behind a batch.

use catalog_store::{
    rows, DeadLetterResolution, HeldClaim, OutboxClaim, OutboxDepth, OutboxEntry, PublishOutcome, PublishRecord,
    ResolvedDeadLetter, StoreConfig, StoreError,
};
use chrono::Utc;
use rusqlite::{params, Connection};
use sqlx::SqlitePool;

use crate::columns::{self, micros, raw, saturating_i64};
use crate::dead_letters;
use crate::error::{store_error, write_error};
use crate::writer::Writer;

/// Claims up to `claim.limit` due items of `channel`, oldest due first (each row holds its
/// item's newest waiting version; due once settled or waited long enough), and leases them
/// until `now + lease`.
pub(crate) async fn claim_outbox(
    writer: &Writer,
    channel: &str,
    claim: &OutboxClaim,
) -> Result<Vec<OutboxEntry>, StoreError> {
    if claim.limit == 0 {
        return Ok(Vec::new());
    }
    let (channel, claim) = (channel.to_owned(), *claim);
    // The pick and the lease are one job of the one writer, in one transaction: no other
    // claimer can pick (or lease) the same rows in between.
    writer.transaction(move |connection| claim_in(connection, &channel, &claim)).await
}

/// Picks a channel's due rows (`?1` channel, `?2` now, `?3` limit, `?4` and `?5` the latest
/// enqueue times that have settled or waited their longest), oldest due first: a walk of the
/// index `outbox_channel_due` from the channel's first row to the first not yet due, which
/// never passes a row waiting out its backoff or lease (decision 0057; `a_claim_walks_only_the_rows_due`
/// checks it).
pub(crate) const CLAIM: &str = "SELECT outbox_id, item_id, tenant_id, sku, quantity, version, channel, traceparent, \
     attempts, enqueued_at FROM outbox \
     WHERE channel = ?1 AND available_at <= ?2 AND (enqueued_at <= ?4 OR first_enqueued_at <= ?5) \
     ORDER BY available_at, first_enqueued_at, outbox_id \
     LIMIT ?3";

fn claim_in(connection: &Connection, channel: &str, claim: &OutboxClaim) -> Result<Vec<OutboxEntry>, StoreError> {
    let OutboxClaim { limit, lease, settle, max_wait } = *claim;
    let now = micros(Utc::now());
    let leased_until = now.saturating_add(saturating_i64(lease.as_micros()));
    let mut pick = connection.prepare_cached(CLAIM).map_err(write_error)?;
    let mut picked = pick
        .query(params![
            channel,
            now,
            saturating_i64(limit),
            now.saturating_sub(saturating_i64(settle.as_micros())),
            now.saturating_sub(saturating_i64(max_wait.as_micros())),
        ])
        .map_err(write_error)?;
    let mut claimed = Vec::new();
    let mut outbox_ids = Vec::new();
    while let Some(row) = picked.next().map_err(write_error)? {
        let tenant: String = raw::column(row, "tenant_id")?;
        let sku: String = raw::column(row, "sku")?;
        let attempts: i64 = raw::column(row, "attempts")?;
        let outbox_id = raw::column::<i64>(row, "outbox_id")?;
        // The row's token for this claim: no other claim of the row leases it until the
        // same microsecond.
        let claim = uuid::Uuid::from_u64_pair(outbox_id as u64, leased_until as u64);
        outbox_ids.push((outbox_id, claim));
        let item_id = raw::uuid_column(row, "item_id")?;
        let item =
            rows::catalog_item(item_id, &tenant, &sku, raw::column(row, "quantity")?, raw::column(row, "version")?);
        // Leased and left out (`unreadable_row`): failing the claim, the row stayed first
        // in line and the channel sent nothing again.
        let Some(item) = rows::readable_outbox_row(channel, &format!("item {item_id}"), item) else { continue };
        claimed.push(OutboxEntry {
            item,
            channel: raw::column(row, "channel")?,
            traceparent: raw::column(row, "traceparent")?,
            attempts: columns::narrowed("attempts", attempts)?,
            enqueued_at: raw::time_column(row, "enqueued_at")?,
            claim: Some(claim),
        });
    }
    drop(picked);
    let mut lease_row = connection
        .prepare_cached("UPDATE outbox SET available_at = ?1, claim = ?3 WHERE outbox_id = ?2")
        .map_err(write_error)?;
    for (outbox_id, claim) in outbox_ids {
        lease_row.execute(params![leased_until, outbox_id, claim.as_bytes().as_slice()]).map_err(write_error)?;
    }
    Ok(claimed)
}

/// Makes the rows of `claims` on `channel` that their claims still hold under a lease due now, in their place in the line:
/// due since their oldest waiting version was queued, as a row never claimed is (claims take
/// the rows due longest first, decision 0057), not behind every row due meanwhile.
pub(crate) async fn release_claims(writer: &Writer, channel: &str, claims: &[HeldClaim]) -> Result<u64, StoreError> {
    let release = "UPDATE outbox SET available_at = min(?1, first_enqueued_at) \
                   WHERE channel = ?2 AND item_id = ?3 AND available_at > ?4 AND (?5 IS NULL OR claim = ?5)";
    set_leases(writer, channel, claims, release, |now| now).await
}

/// Keeps the rows of `claims` on `channel` that their claims still hold under a lease leased until `lease` from now, or
/// longer if they already were.
pub(crate) async fn extend_claims(
    writer: &Writer,
    channel: &str,
    claims: &[HeldClaim],
    lease: std::time::Duration,
) -> Result<u64, StoreError> {
    let extend = "UPDATE outbox SET available_at = max(available_at, ?1)
                  WHERE channel = ?2 AND item_id = ?3 AND available_at > ?4 AND (?5 IS NULL OR claim = ?5)";
    let lease = saturating_i64(lease.as_micros());
    set_leases(writer, channel, claims, extend, move |now| now.saturating_add(lease)).await
}

/// Runs `statement` (`?1` the lease's end from `until(now)`, `?2` the channel, `?3` an item
/// id, `?4` now, `?5` the claim, if any) for each of `claims` in one transaction; returns the
/// rows it changed.
async fn set_leases(
    writer: &Writer,
    channel: &str,
    claims: &[HeldClaim],
    statement: &'static str,
    until: impl Fn(i64) -> i64 + Send + 'static,
) -> Result<u64, StoreError> {
    if claims.is_empty() {
        return Ok(0);
    }
    let (channel, claims) = (channel.to_owned(), claims.to_vec());
    writer
        .transaction(move |connection| {
            let now = micros(Utc::now());
            let mut set = connection.prepare_cached(statement).map_err(write_error)?;
            let mut changed = 0;
            for held in &claims {
                let (item, claim) =
                    (held.item_id.0.as_bytes().as_slice(), held.claim.as_ref().map(|c| c.as_bytes().as_slice()));
                changed += set.execute(params![until(now), channel, item, now, claim]).map_err(write_error)?;
            }
            Ok(changed as u64)
        })
        .await
}

/// Records finished attempts and what they mean for the outbox, the channel's held version
/// and the dead letters, in one transaction; returns the dead letters they resolved.
pub(crate) async fn record_publishes(
    writer: &Writer,
    records: &[PublishRecord],
) -> Result<Vec<ResolvedDeadLetter>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let records = records.to_vec();
    writer
        .transaction(move |connection| {
            let mut resolved = Vec::new();
            for record in &records {
                resolved.extend(record_in(connection, record)?);
            }
            Ok(resolved)
        })
        .await
}

fn record_in(connection: &Connection, record: &PublishRecord) -> Result<Option<ResolvedDeadLetter>, StoreError> {
    let now = micros(Utc::now());
    let item_id = record.item_id.0.as_bytes().as_slice();
    // A version past the signed column's range is held at its largest, as PostgreSQL holds it.
    let version = saturating_i64(record.version);

    connection
        .prepare_cached(
            "INSERT INTO publish_attempts (item_id, version, channel, attempt, status, result, latency_ms, error, \
             attempted_at, listing, sent_quantity, rule) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                item_id,
                version,
                record.channel.as_str(),
                i64::from(record.attempt),
                record.status.map(i64::from),
                record.outcome.as_str(),
                record.latency_ms.map(saturating_i64),
                record.error.as_deref(),
                now,
                record.sent.as_ref().map(|sent| sent.listing.as_str()),
                record.sent.as_ref().map(|sent| sent.quantity),
                record.sent.as_ref().map(|sent| sent.rule.as_str()),
            ])
        })
        .map_err(write_error)?;

    match record.outcome {
        PublishOutcome::Published => {
            hold_version(connection, record, version, now)?;
            dead_letters::resolve(connection, record, version, DeadLetterResolution::PublishedLater, now)
        }
        PublishOutcome::Superseded { current_version } => {
            let held_version = version.max(saturating_i64(current_version));
            hold_version(connection, record, held_version, now)?;
            dead_letters::resolve(connection, record, held_version, DeadLetterResolution::SupersededLater, now)
        }
        PublishOutcome::RetryAt(due_at) | PublishOutcome::ThrottledUntil(due_at) => {
            // The item waits out the backoff whatever version it now holds: a newer version
            // queued meanwhile goes out at the retry, not at once to a channel that just failed.
            // A failure counts only while the row still holds the version that failed (a newer
            // one starts with a budget of its own); throttling is no failure at all.
            let failed = matches!(record.outcome, PublishOutcome::RetryAt(_));
            connection
                .prepare_cached(
                    "UPDATE outbox SET available_at = ?1, \
                     attempts = attempts + CASE WHEN ?4 AND version = ?5 THEN 1 ELSE 0 END \
                     WHERE item_id = ?2 AND channel = ?3 AND (?6 IS NULL OR claim = ?6)",
                )
                .and_then(|mut update| {
                    update.execute(params![
                        micros(due_at),
                        item_id,
                        record.channel.as_str(),
                        failed,
                        version,
                        claim_of(record)
                    ])
                })
                .map_err(write_error)?;
            Ok(None)
        }
        PublishOutcome::DeadLettered => {
            done_with(connection, record, version, now)?;
            dead_letters::write(connection, record, now)?;
            Ok(None)
        }
        // Not listed on the channel: done with this version, nothing held, nothing failed; not
        // stale there either (decision 0044).
        PublishOutcome::Skipped => {
            keep_version(connection, UNLISTED, record, version, now)?;
            done_with(connection, record, version, now)?;
            Ok(None)
        }
    }
}

/// The channel now holds `held_version` (or newer): remember it, and be done with the row.
fn hold_version(
    connection: &Connection,
    record: &PublishRecord,
    held_version: i64,
    now: i64,
) -> Result<(), StoreError> {
    keep_version(connection, PUBLISHED, record, held_version, now)?;
    done_with(connection, record, held_version, now)
}

/// The version a channel holds of an item, the newest kept.
const PUBLISHED: &str = "INSERT INTO published_versions (item_id, channel, version, published_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (item_id, channel) DO UPDATE SET \
     version = max(published_versions.version, excluded.version), published_at = excluded.published_at";
/// The version of an item a channel skipped, not listing its SKU (decision 0044), the newest kept.
const UNLISTED: &str = "INSERT INTO unlisted_versions (item_id, channel, version, skipped_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (item_id, channel) DO UPDATE SET \
     version = max(unlisted_versions.version, excluded.version), skipped_at = excluded.skipped_at";

/// Keeps `version` of the record's item and channel with `upsert` (`PUBLISHED`, `UNLISTED`).
fn keep_version(
    connection: &Connection,
    upsert: &str,
    record: &PublishRecord,
    version: i64,
    now: i64,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(upsert)
        .and_then(|mut upsert| {
            upsert.execute(params![record.item_id.0.as_bytes().as_slice(), record.channel.as_str(), version, now])
        })
        .map_err(write_error)?;
    Ok(())
}

/// The item's row is done with up to `version`: removed if it still waits at that version
/// or an older one; if a newer version was queued while this one was out, that one is due
/// now, as a fresh run that started waiting when it was queued. Only while the record's
/// claim holds the row (`PublishRecord::claim`): claimed since by another publisher, the
/// row is that one's.
fn done_with(connection: &Connection, record: &PublishRecord, version: i64, now: i64) -> Result<(), StoreError> {
    let item_id = record.item_id.0.as_bytes().as_slice();
    let claim = claim_of(record);
    connection
        .prepare_cached(
            "DELETE FROM outbox WHERE item_id = ?1 AND channel = ?2 AND version <= ?3 \
             AND (?4 IS NULL OR claim = ?4)",
        )
        .and_then(|mut delete| delete.execute(params![item_id, record.channel.as_str(), version, claim]))
        .map_err(write_error)?;
    connection
        .prepare_cached(
            "UPDATE outbox SET available_at = ?4, attempts = 0, first_enqueued_at = enqueued_at, claim = NULL \
             WHERE item_id = ?1 AND channel = ?2 AND version > ?3 AND (?5 IS NULL OR claim = ?5)",
        )
        .and_then(|mut update| update.execute(params![item_id, record.channel.as_str(), version, now, claim]))
        .map_err(write_error)?;
    Ok(())
}

/// The record's claim as the outbox keeps it.
fn claim_of(record: &PublishRecord) -> Option<&[u8]> {
    record.claim.as_ref().map(|claim| claim.as_bytes().as_slice())
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

/// Items of the tenants `channel` serves whose published version there lags their catalog
/// version (a version the channel skipped, not listing the SKU, counts as done: decision
/// 0044). The routes are the signals' (`signals::routes`): an item no route of the channel
/// serves is never queued there, so it is not stale there.
pub(crate) async fn stale_items(pool: &SqlitePool, config: &StoreConfig, channel: &str) -> Result<u64, StoreError> {
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM items AS i \
         LEFT JOIN published_versions AS p ON p.item_id = i.item_id AND p.channel = ?1 \
         LEFT JOIN unlisted_versions AS s ON s.item_id = i.item_id AND s.channel = ?1 \
         WHERE i.version > max(coalesce(p.version, 0), coalesce(s.version, 0)) \
           AND EXISTS (SELECT 1 FROM json_each(?2) AS r \
                       WHERE json_extract(r.value, '$[0]') = ?1 \
                         AND coalesce(json_extract(r.value, '$[1]'), i.tenant_id) = i.tenant_id)",
    )
    .bind(channel)
    .bind(crate::signals::routes(config))
    .fetch_all(pool)
    .await
    .map_err(store_error)?
    .into_iter()
    .next()
    .ok_or_else(|| StoreError::Corrupt("an aggregate answered no row".to_owned()))?;
    Ok(u64::try_from(stale).unwrap_or(0))
}
