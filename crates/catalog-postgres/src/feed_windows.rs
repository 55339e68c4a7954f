//! A feed's completed windows on PostgreSQL: recorded once pulled to their end, read as the
//! feed's coverage, and compacted by retention (decision 0035): old windows that overlap or
//! touch become one row, a feed per transaction.

use catalog_store::{compact_windows, rows, CompletedWindow, FeedKey, StoreError, WindowKind};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, PgPool};

use crate::columns::{column, narrowed};
use crate::feeds::int8;
use crate::store_error;

pub(crate) async fn complete_window(pool: &PgPool, key: &FeedKey, window: &CompletedWindow) -> Result<(), StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    sqlx::query(
        "INSERT INTO feed_windows (tenant_id, supplier_id, kind, since_at, until_at, n_records, n_pages, completed_at,
                                   n_windows, requested_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (tenant_id, supplier_id, kind, since_at, until_at)
         DO UPDATE SET requested_at = EXCLUDED.requested_at WHERE EXCLUDED.requested_at IS NOT NULL",
    )
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .bind(window.kind.as_str())
    .bind(window.since)
    .bind(window.until)
    .bind(int8(window.n_records))
    .bind(int8(window.n_pages))
    .bind(window.completed_at)
    .bind(int8(window.n_windows))
    .bind(window.requested_at)
    .execute(&mut *transaction)
    .await
    .map_err(store_error)?;
    sqlx::query("UPDATE feeds SET last_sync_at = GREATEST(last_sync_at, $3) WHERE tenant_id = $1 AND supplier_id = $2")
        .bind(key.tenant.as_str())
        .bind(key.supplier.as_str())
        .bind(window.completed_at)
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
    transaction.commit().await.map_err(store_error)
}

/// Every completed window of a feed, by `since`; `locking` takes their rows for a compaction.
async fn read_windows(
    executor: impl PgExecutor<'_>,
    key: &FeedKey,
    locking: bool,
) -> Result<Vec<CompletedWindow>, StoreError> {
    let statement = format!(
        "SELECT kind, since_at, until_at, n_records, n_pages, n_windows, completed_at, requested_at FROM feed_windows
         WHERE tenant_id = $1 AND supplier_id = $2 ORDER BY since_at, until_at, kind{}",
        if locking { " FOR UPDATE" } else { "" }
    );
    let rows = sqlx::query(&statement)
        .bind(key.tenant.as_str())
        .bind(key.supplier.as_str())
        .fetch_all(executor)
        .await
        .map_err(store_error)?;
    rows.iter().map(window_row).collect()
}

fn window_row(row: &PgRow) -> Result<CompletedWindow, StoreError> {
    let kind: String = column(row, "kind")?;
    Ok(CompletedWindow {
        kind: WindowKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("window kind {kind:?}")))?,
        since: column(row, "since_at")?,
        until: column(row, "until_at")?,
        completed_at: column(row, "completed_at")?,
        n_records: narrowed(row, "n_records")?,
        n_pages: narrowed(row, "n_pages")?,
        n_windows: narrowed(row, "n_windows")?,
        requested_at: column(row, "requested_at")?,
    })
}

pub(crate) async fn feed_windows(pool: &PgPool, key: &FeedKey) -> Result<Vec<CompletedWindow>, StoreError> {
    read_windows(pool, key, false).await
}

/// Merges every feed's windows completed before `cutoff` that overlap or touch (decision
/// 0035), a feed per transaction. Returns how many rows fewer the table holds.
pub(crate) async fn compact_feed_windows(pool: &PgPool, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    let feeds: Vec<(String, String)> = sqlx::query_as(
        r#"SELECT tenant_id, supplier_id FROM feeds ORDER BY tenant_id COLLATE "C", supplier_id COLLATE "C""#,
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut fewer = 0;
    for (tenant, supplier) in feeds {
        let key = FeedKey { tenant: rows::tenant(&tenant)?, supplier: rows::supplier(&supplier)? };
        fewer += compact_feed(pool, &key, cutoff).await?;
    }
    Ok(fewer)
}

async fn compact_feed(pool: &PgPool, key: &FeedKey, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let windows = read_windows(&mut *transaction, key, true).await?;
    let merges = compact_windows(&windows, cutoff);
    if merges.is_empty() {
        return Ok(0);
    }
    let replaced: Vec<&CompletedWindow> = merges.iter().flat_map(|merge| &merge.replaced).collect();
    let deleted = sqlx::query(
        "DELETE FROM feed_windows WHERE tenant_id = $1 AND supplier_id = $2
           AND (kind, since_at, until_at) IN (SELECT * FROM unnest($3::text[], $4::timestamptz[], $5::timestamptz[]))",
    )
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .bind(replaced.iter().map(|window| window.kind.as_str()).collect::<Vec<_>>())
    .bind(replaced.iter().map(|window| window.since).collect::<Vec<_>>())
    .bind(replaced.iter().map(|window| window.until).collect::<Vec<_>>())
    .execute(&mut *transaction)
    .await
    .map_err(store_error)?
    .rows_affected();
    if deleted != replaced.len() as u64 {
        // Another pass compacted them first: this one leaves it at that.
        return Ok(0);
    }
    let merged: Vec<&CompletedWindow> = merges.iter().map(|merge| &merge.merged).collect();
    sqlx::query(
        "INSERT INTO feed_windows (tenant_id, supplier_id, kind, since_at, until_at, n_records, n_pages, n_windows,
                                   completed_at)
         SELECT $1, $2, * FROM unnest($3::text[], $4::timestamptz[], $5::timestamptz[], $6::int8[], $7::int8[],
                                      $8::int8[], $9::timestamptz[])",
    )
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .bind(merged.iter().map(|window| window.kind.as_str()).collect::<Vec<_>>())
    .bind(merged.iter().map(|window| window.since).collect::<Vec<_>>())
    .bind(merged.iter().map(|window| window.until).collect::<Vec<_>>())
    .bind(merged.iter().map(|window| int8(window.n_records)).collect::<Vec<_>>())
    .bind(merged.iter().map(|window| int8(window.n_pages)).collect::<Vec<_>>())
    .bind(merged.iter().map(|window| int8(window.n_windows)).collect::<Vec<_>>())
    .bind(merged.iter().map(|window| window.completed_at).collect::<Vec<_>>())
    .execute(&mut *transaction)
    .await
    .map_err(store_error)?;
    transaction.commit().await.map_err(store_error)?;
    Ok((replaced.len() - merged.len()) as u64)
}
