//! The outbox on Postgres: claims (one row per item and channel, `SKIP LOCKED`), rounds of
//! publish records (published versions, retries, throttling, and the dead letters they
//! write or resolve through `dead_letters`), depth and staleness, and republishing.

use catalog_core::ItemId;
use catalog_store::batch::OutboxWrite;
use catalog_store::rows;
use catalog_store::{
    DeadLetterResolution, OutboxClaim, OutboxDepth, OutboxEntry, PublishOutcome, PublishRecord, ResolvedDeadLetter,
    SentQuantity, StoreConfig, StoreError,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::apply::upsert_outbox;
use crate::columns::{column, narrowed, narrowed_int4, saturating_i64, ITEM_COLUMNS};
use crate::dead_letters;
use crate::store_error;

pub(crate) async fn claim_outbox(
    pool: &PgPool,
    channel: &str,
    claim: &OutboxClaim,
) -> Result<Vec<OutboxEntry>, StoreError> {
    // One row per item and channel, holding its newest waiting version: the claim walks
    // the channel's rows longest-waiting first and stops at the limit. SKIP LOCKED lets
    // concurrent publishers take disjoint items without waiting; the due test is on the
    // locked row itself, so a lease committed meanwhile is seen and skipped.
    let rows = sqlx::query(
        "WITH picked AS (
                 SELECT outbox_id FROM outbox
                 WHERE channel = $1 AND available_at <= now()
                   AND (enqueued_at <= now() - make_interval(secs => $4)
                        OR first_enqueued_at <= now() - make_interval(secs => $5))
                 ORDER BY first_enqueued_at, outbox_id
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE outbox AS o SET available_at = now() + make_interval(secs => $3)
             FROM picked WHERE o.outbox_id = picked.outbox_id
             RETURNING o.item_id, o.tenant_id, o.sku, o.quantity, o.version, o.channel, o.traceparent, o.attempts,
                       o.enqueued_at",
    )
    .bind(channel)
    .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX))
    .bind(claim.lease.as_secs_f64())
    .bind(claim.settle.as_secs_f64())
    .bind(claim.max_wait.as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(OutboxEntry {
                item: rows::catalog_item(
                    column(row, "item_id")?,
                    column(row, "tenant_id")?,
                    column(row, "sku")?,
                    column(row, "quantity")?,
                    column(row, "version")?,
                )?,
                channel: column(row, "channel")?,
                traceparent: column(row, "traceparent")?,
                attempts: narrowed_int4(row, "attempts")?,
                enqueued_at: column(row, "enqueued_at")?,
            })
        })
        .collect()
}

pub(crate) async fn record_publishes(
    pool: &PgPool,
    records: &[PublishRecord],
) -> Result<Vec<ResolvedDeadLetter>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let mut keys = std::collections::HashSet::with_capacity(records.len());
    let mut resolved = Vec::new();
    if records.iter().all(|record| keys.insert((record.item_id, record.channel.as_str()))) {
        let mut round: Vec<&PublishRecord> = records.iter().collect();
        round.sort_by(|a, b| (a.item_id.0, a.channel.as_bytes()).cmp(&(b.item_id.0, b.channel.as_bytes())));
        resolved = record_round(&mut transaction, &round).await?;
    } else {
        // The same item and channel twice: their effects depend on order, record one by one.
        for record in records {
            resolved.extend(record_round(&mut transaction, &[record]).await?);
        }
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(resolved)
}

pub(crate) async fn outbox_depth(pool: &PgPool) -> Result<Vec<OutboxDepth>, StoreError> {
    sqlx::query(
        "SELECT channel, count(*) AS pending, min(first_enqueued_at) AS oldest_enqueued_at
         FROM outbox GROUP BY channel ORDER BY channel",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| {
        Ok(OutboxDepth {
            channel: column(row, "channel")?,
            pending: narrowed(row, "pending")?,
            oldest_enqueued_at: column(row, "oldest_enqueued_at")?,
        })
    })
    .collect()
}

pub(crate) async fn stale_items(pool: &PgPool, channel: &str) -> Result<u64, StoreError> {
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM items AS i
         LEFT JOIN published_versions AS p ON p.item_id = i.item_id AND p.channel = $1
         WHERE i.version > coalesce(p.version, 0)",
    )
    .bind(channel)
    .fetch_one(pool)
    .await
    .map_err(store_error)?;
    u64::try_from(stale).map_err(|_| StoreError::Corrupt(format!("stale item count {stale} is negative")))
}

/// Queues a publish of each item's current version on every channel serving its tenant.
pub(crate) async fn republish(pool: &PgPool, config: &StoreConfig, items: &[ItemId]) -> Result<u64, StoreError> {
    let ids: Vec<Uuid> = items.iter().map(|id| id.0).collect();
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let rows = sqlx::query(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE item_id = ANY($1)"))
        .bind(&ids)
        .fetch_all(&mut *transaction)
        .await
        .map_err(store_error)?;
    let mut outbox = Vec::new();
    for row in rows {
        let tenant = rows::tenant(column(&row, "tenant_id")?)?;
        let sku: String = column(&row, "sku")?;
        outbox.extend(OutboxWrite::on_its_channels(
            config,
            ItemId(column(&row, "item_id")?),
            &tenant,
            &sku,
            column(&row, "quantity")?,
            column(&row, "version")?,
            None,
        ));
    }
    let queued = outbox.len() as u64;
    upsert_outbox(&mut transaction, &outbox).await?;
    transaction.commit().await.map_err(store_error)?;
    Ok(queued)
}

/// The version a record says the channel now holds, if it says one.
fn held_version(record: &PublishRecord) -> Option<i64> {
    let version = saturating_i64(record.version);
    match record.outcome {
        PublishOutcome::Published => Some(version),
        PublishOutcome::Superseded { current_version } => Some(version.max(saturating_i64(current_version))),
        PublishOutcome::RetryAt(_)
        | PublishOutcome::ThrottledUntil(_)
        | PublishOutcome::DeadLettered
        | PublishOutcome::Skipped => None,
    }
}

/// Records a round of attempts, at most one per item and channel and sorted by (item id,
/// channel), with one statement per kind of effect: the outbox rows locked, in that order
/// (the order `apply_batch` writes them in, so neither waits on the other in a cycle); the
/// attempts; the version each channel now holds; the rows that are done with; the rows
/// that now wait for a version queued while this one was out; the retries and throttled
/// ones; the dead letters the accepted versions resolve; the new dead letters.
async fn record_round(
    connection: &mut sqlx::PgConnection,
    records: &[&PublishRecord],
) -> Result<Vec<ResolvedDeadLetter>, StoreError> {
    let ids: Vec<Uuid> = records.iter().map(|record| record.item_id.0).collect();
    let channels: Vec<&str> = records.iter().map(|record| record.channel.as_str()).collect();
    let versions: Vec<i64> = records.iter().map(|record| saturating_i64(record.version)).collect();
    let attempts: Vec<i32> = records.iter().map(|record| i32::try_from(record.attempt).unwrap_or(i32::MAX)).collect();
    let statuses: Vec<Option<i32>> = records.iter().map(|record| record.status.map(i32::from)).collect();
    let results: Vec<&str> = records.iter().map(|record| record.outcome.as_str()).collect();
    let latencies: Vec<Option<i64>> = records.iter().map(|record| record.latency_ms.map(saturating_i64)).collect();
    let errors: Vec<Option<&str>> = records.iter().map(|record| record.error.as_deref()).collect();
    let sent: Vec<Option<&SentQuantity>> = records.iter().map(|record| record.sent.as_ref()).collect();
    let listings: Vec<Option<&str>> = sent.iter().map(|sent| sent.map(|sent| sent.listing.as_str())).collect();
    let sent_quantities: Vec<Option<i64>> = sent.iter().map(|sent| sent.map(|sent| sent.quantity)).collect();
    let rules: Vec<Option<&str>> = sent.iter().map(|sent| sent.map(|sent| sent.rule.as_str())).collect();
    sqlx::query(
        "SELECT 1 FROM outbox AS o
         JOIN unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS u(i, c, n) ON o.item_id = u.i AND o.channel = u.c
         ORDER BY u.n
         FOR UPDATE OF o",
    )
    .bind(&ids)
    .bind(&channels)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    sqlx::query(
        "INSERT INTO publish_attempts (item_id, version, channel, attempt, status, result, latency_ms, error,
                                       listing, sent_quantity, rule)
         SELECT * FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::int4[], $5::int4[], $6::text[], $7::int8[],
                              $8::text[], $9::text[], $10::int8[], $11::text[])",
    )
    .bind(&ids)
    .bind(&versions)
    .bind(&channels)
    .bind(&attempts)
    .bind(&statuses)
    .bind(&results)
    .bind(&latencies)
    .bind(&errors)
    .bind(&listings)
    .bind(&sent_quantities)
    .bind(&rules)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;

    // Published and superseded: the channel holds a version; dead-lettered: done with too.
    let (mut done_ids, mut done_channels, mut done_versions, mut held) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut retry_ids, mut retry_channels, mut retry_versions, mut retry_dues, mut failed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut accepted = Vec::new();
    for record in records {
        match record.outcome {
            PublishOutcome::RetryAt(due_at) | PublishOutcome::ThrottledUntil(due_at) => {
                retry_ids.push(record.item_id.0);
                retry_channels.push(record.channel.as_str());
                retry_versions.push(saturating_i64(record.version));
                retry_dues.push(due_at);
                // Throttling is not a failure: it leaves the budget alone.
                failed.push(matches!(record.outcome, PublishOutcome::RetryAt(_)));
            }
            PublishOutcome::Published
            | PublishOutcome::Superseded { .. }
            | PublishOutcome::DeadLettered
            | PublishOutcome::Skipped => {
                done_ids.push(record.item_id.0);
                done_channels.push(record.channel.as_str());
                done_versions.push(held_version(record).unwrap_or(saturating_i64(record.version)));
                held.push(held_version(record).is_some());
            }
        }
        let resolution = match record.outcome {
            PublishOutcome::Published => Some(DeadLetterResolution::PublishedLater),
            PublishOutcome::Superseded { .. } => Some(DeadLetterResolution::SupersededLater),
            PublishOutcome::RetryAt(_)
            | PublishOutcome::ThrottledUntil(_)
            | PublishOutcome::DeadLettered
            | PublishOutcome::Skipped => None,
        };
        if let (Some(resolution), Some(held_version)) = (resolution, held_version(record)) {
            accepted.push(dead_letters::Accepted { record, held_version, resolution });
        }
    }
    if !done_ids.is_empty() {
        sqlx::query(
            "INSERT INTO published_versions (item_id, channel, version)
             SELECT i, c, v FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::bool[]) AS u(i, c, v, held) WHERE held
             ON CONFLICT (item_id, channel) DO UPDATE
             SET version = GREATEST(published_versions.version, EXCLUDED.version), published_at = now()",
        )
        .bind(&done_ids)
        .bind(&done_channels)
        .bind(&done_versions)
        .bind(&held)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
        // A row still waiting at the version the channel holds (or an older one) is done
        // with; a row a newer version was queued into while this one was out is due now, as
        // a fresh run that started waiting when that version was queued.
        for statement in [
            "DELETE FROM outbox AS o USING unnest($1::uuid[], $2::text[], $3::int8[]) AS u(i, c, v)
             WHERE o.item_id = u.i AND o.channel = u.c AND o.version <= u.v",
            "UPDATE outbox AS o SET available_at = now(), attempts = 0, first_enqueued_at = o.enqueued_at
             FROM unnest($1::uuid[], $2::text[], $3::int8[]) AS u(i, c, v)
             WHERE o.item_id = u.i AND o.channel = u.c AND o.version > u.v",
        ] {
            sqlx::query(statement)
                .bind(&done_ids)
                .bind(&done_channels)
                .bind(&done_versions)
                .execute(&mut *connection)
                .await
                .map_err(store_error)?;
        }
    }
    if !retry_ids.is_empty() {
        // The item waits out the backoff whatever version it now holds: a newer version
        // queued meanwhile goes out at the retry, not at once to a channel that just failed.
        // A failure counts only while the row still holds the version that failed: a newer
        // one starts with a budget of its own.
        sqlx::query(
            "UPDATE outbox AS o SET available_at = u.due,
                 attempts = o.attempts + CASE WHEN u.failed AND o.version = u.v THEN 1 ELSE 0 END
             FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::timestamptz[], $5::bool[]) AS u(i, c, v, due, failed)
             WHERE o.item_id = u.i AND o.channel = u.c",
        )
        .bind(&retry_ids)
        .bind(&retry_channels)
        .bind(&retry_versions)
        .bind(&retry_dues)
        .bind(&failed)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
    }
    let resolved = dead_letters::resolve(connection, &accepted).await?;
    for record in records.iter().filter(|record| record.outcome == PublishOutcome::DeadLettered) {
        dead_letters::write(connection, record).await?;
    }
    Ok(resolved)
}
