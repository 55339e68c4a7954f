//! The outbox on Postgres: claims (one row per item and channel, `SKIP LOCKED`), depth and
//! staleness, claims given back or extended, and republishing. Rounds of publish records are
//! `recording`'s.

use catalog_core::ItemId;
use catalog_store::batch::OutboxWrite;
use catalog_store::rows;
use catalog_store::{HeldClaim, OutboxClaim, OutboxDepth, OutboxEntry, StoreConfig, StoreError};
use sqlx::PgPool;
use uuid::Uuid;

use crate::apply::upsert_outbox;
use crate::columns::{column, narrowed, narrowed_int4, ITEM_COLUMNS};
use crate::store_error;

/// Claims a channel's due rows (`$1` channel, `$2` limit, `$3` lease, `$4` settle and `$5`
/// maximum wait in seconds). One row per item and channel, holding its newest waiting
/// version. A claim walks two ways, each stopping at the limit: the rows on their first run
/// (`retry_at` unset) longest-waiting first, and the rows put off by a failure or a throttle
/// by retry time, only those due (`retry_at` passed); it takes the limit's worth due longest
/// of both. Neither walk passes a row in backoff (decision 0057); a leased row is passed.
/// Each row claimed gets a token of its own (`claim`), which the records of its sends are
/// fenced by (`recording::Fence`).
/// SKIP LOCKED lets concurrent publishers take disjoint items without waiting; the due test
/// is on the locked row itself, so a lease committed meanwhile is seen and skipped. The
/// picked ids are an array the update finds by primary key: joined to a CTE instead, the
/// planner hashed them and scanned the whole table, dead row versions too, on every claim
/// (`outbox_plans`).
pub(crate) const CLAIM: &str = "WITH fresh AS (
         SELECT outbox_id, first_enqueued_at AS due FROM outbox
         WHERE channel = $1 AND retry_at IS NULL AND available_at <= now()
           AND (enqueued_at <= now() - make_interval(secs => $4)
                OR first_enqueued_at <= now() - make_interval(secs => $5))
         ORDER BY first_enqueued_at, outbox_id
         LIMIT $2
         FOR UPDATE SKIP LOCKED
     ), retried AS (
         SELECT outbox_id, retry_at AS due FROM outbox
         WHERE channel = $1 AND retry_at IS NOT NULL AND retry_at <= now() AND available_at <= now()
           AND (enqueued_at <= now() - make_interval(secs => $4)
                OR first_enqueued_at <= now() - make_interval(secs => $5))
         ORDER BY retry_at, outbox_id
         LIMIT $2
         FOR UPDATE SKIP LOCKED
     )
     UPDATE outbox AS o SET available_at = now() + make_interval(secs => $3), claim = gen_random_uuid()
     WHERE o.outbox_id = ANY(ARRAY(
         SELECT outbox_id FROM (SELECT * FROM fresh UNION ALL SELECT * FROM retried) AS due_rows
         ORDER BY due, outbox_id
         LIMIT $2
     ))
     RETURNING o.item_id, o.tenant_id, o.sku, o.quantity, o.version, o.channel, o.traceparent, o.attempts,
               o.enqueued_at, o.claim";

pub(crate) async fn claim_outbox(
    pool: &PgPool,
    channel: &str,
    claim: &OutboxClaim,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let rows = sqlx::query(CLAIM)
        .bind(channel)
        .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX))
        .bind(claim.lease.as_secs_f64())
        .bind(claim.settle.as_secs_f64())
        .bind(claim.max_wait.as_secs_f64())
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let item = rows::catalog_item(
            column(row, "item_id")?,
            column(row, "tenant_id")?,
            column(row, "sku")?,
            column(row, "quantity")?,
            column(row, "version")?,
        );
        // Leased and left out (`unreadable_row`): failing the claim, every row it leased
        // went unsent, and the row was first in line again at the lease's end.
        let row_id = format!("item {}", column::<uuid::Uuid>(row, "item_id")?);
        let Some(item) = rows::readable_outbox_row(channel, &row_id, item) else { continue };
        claimed.push(OutboxEntry {
            item,
            channel: column(row, "channel")?,
            traceparent: column(row, "traceparent")?,
            attempts: narrowed_int4(row, "attempts")?,
            enqueued_at: column(row, "enqueued_at")?,
            claim: column(row, "claim")?,
        });
    }
    Ok(claimed)
}

pub(crate) async fn outbox_depth(pool: &PgPool) -> Result<Vec<OutboxDepth>, StoreError> {
    sqlx::query(
        "SELECT channel, count(*) AS pending, min(first_enqueued_at) AS oldest_enqueued_at
         FROM outbox GROUP BY channel ORDER BY channel COLLATE \"C\"",
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

/// Items of the tenants `channel` serves whose published version there lags their catalog
/// version (a version the channel skipped counts as done: decision 0044). The routes are the
/// signals' (`signals::routes`): an item no route of the channel serves is never queued there,
/// so it is not stale there.
pub(crate) async fn stale_items(pool: &PgPool, config: &StoreConfig, channel: &str) -> Result<u64, StoreError> {
    let (channels, route_tenants) = crate::signals::routes(config);
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM items AS i
         LEFT JOIN published_versions AS p ON p.item_id = i.item_id AND p.channel = $1
         LEFT JOIN unlisted_versions AS s ON s.item_id = i.item_id AND s.channel = $1
         WHERE i.version > GREATEST(coalesce(p.version, 0), coalesce(s.version, 0))
           AND EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS r (channel, tenant_id)
                       WHERE r.channel = $1 AND (r.tenant_id IS NULL OR r.tenant_id = i.tenant_id))",
    )
    .bind(channel)
    .bind(&channels)
    .bind(&route_tenants)
    .fetch_one(pool)
    .await
    .map_err(store_error)?;
    u64::try_from(stale).map_err(|_| StoreError::Corrupt(format!("stale item count {stale} is negative")))
}

/// Makes the rows of `claims` on `channel` that their claims still hold under a lease due now,
/// first in line (fresh again).
pub(crate) async fn release_claims(pool: &PgPool, channel: &str, claims: &[HeldClaim]) -> Result<u64, StoreError> {
    let (ids, tokens, unfenced) = claim_arrays(claims);
    let released = sqlx::query(RELEASE)
        .bind(channel)
        .bind(&ids)
        .bind(&tokens)
        .bind(&unfenced)
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(released.rows_affected())
}

/// Keeps the rows of `claims` on `channel` that their claims still hold under a lease leased
/// until `lease` from now, or longer if they already were.
pub(crate) async fn extend_claims(
    pool: &PgPool,
    channel: &str,
    claims: &[HeldClaim],
    lease: std::time::Duration,
) -> Result<u64, StoreError> {
    let (ids, tokens, unfenced) = claim_arrays(claims);
    let held = sqlx::query(EXTEND)
        .bind(channel)
        .bind(&ids)
        .bind(&tokens)
        .bind(&unfenced)
        .bind(lease.as_secs_f64())
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(held.rows_affected())
}

/// Gives back (`RELEASE`) or renews for `$5` seconds (`EXTEND`) the still-leased rows of
/// `$1`'s items `$2` that their claims still hold: `$3` the round's tokens (each is one row's
/// own), `$4` the items named without a claim (an entry no store claimed). No join: the rows
/// are found by `item_id = ANY` through the `(item_id, channel)` key, as a hash join of the
/// round's pairs could scan the whole outbox (`CLAIM`'s note; `outbox_plans`).
pub(crate) const RELEASE: &str = "UPDATE outbox AS o SET available_at = now(), retry_at = NULL
     WHERE o.channel = $1 AND o.item_id = ANY($2) AND o.available_at > now()
       AND (o.claim = ANY($3) OR o.item_id = ANY($4))";
pub(crate) const EXTEND: &str =
    "UPDATE outbox AS o SET available_at = greatest(o.available_at, now() + make_interval(secs => $5))
     WHERE o.channel = $1 AND o.item_id = ANY($2) AND o.available_at > now()
       AND (o.claim = ANY($3) OR o.item_id = ANY($4))";

/// The item ids of `claims`, their claim tokens, and the ids of those named without one.
fn claim_arrays(claims: &[HeldClaim]) -> (Vec<Uuid>, Vec<Uuid>, Vec<Uuid>) {
    let ids = claims.iter().map(|held| held.item_id.0).collect();
    let tokens = claims.iter().filter_map(|held| held.claim).collect();
    let unfenced = claims.iter().filter(|held| held.claim.is_none()).map(|held| held.item_id.0).collect();
    (ids, tokens, unfenced)
}

/// Queues a publish of each item's current version on every channel serving its tenant.
pub(crate) async fn republish(pool: &PgPool, config: &StoreConfig, items: &[ItemId]) -> Result<u64, StoreError> {
    let ids: Vec<Uuid> = items.iter().map(|id| id.0).collect();
    let mut transaction = pool.begin().await.map_err(store_error)?;
    // The items are held `FOR SHARE` (in the batches' lock order, by key in byte order), so
    // no batch commits a newer version, published before the version read here is queued
    // (decision 0047). An item at version 0 was never written: there is nothing of it to
    // publish (migration 0035 deleted the rows older builds left; a batch leaves none).
    let rows = sqlx::query(&format!(
        "SELECT {ITEM_COLUMNS} FROM items WHERE item_id = ANY($1) AND version > 0
         ORDER BY tenant_id COLLATE \"C\", sku COLLATE \"C\" FOR SHARE"
    ))
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
