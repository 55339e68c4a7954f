//! A feed's completed windows on SQLite: recorded once pulled to their end, read as the
//! feed's coverage, and compacted by retention (decision 0035): old windows that overlap or
//! touch become one row, a feed per writer transaction.

use catalog_store::{compact_windows, rows, CompletedWindow, FeedKey, StoreError, WindowKind};
use chrono::{DateTime, Utc};
use rusqlite::params;
use sqlx::SqlitePool;

use crate::columns::{column, micros, narrowed, optional_time_column, raw, time_column};
use crate::error::{store_error, write_error};
use crate::feeds::int8;
use crate::writer::Writer;

const WINDOWS: &str =
    "SELECT kind, since_at, until_at, n_records, n_pages, n_windows, completed_at, requested_at FROM feed_windows
     WHERE tenant_id = ?1 AND supplier_id = ?2 ORDER BY since_at, until_at, kind";

/// A window pulled again keeps its row; pulled for a manual run, the row takes the run's stamp.
const INSERT: &str = "INSERT INTO feed_windows (tenant_id, supplier_id, kind, since_at, until_at, n_records, n_pages, \
     n_windows, completed_at, requested_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (tenant_id, supplier_id, kind, since_at, until_at) \
     DO UPDATE SET requested_at = excluded.requested_at WHERE excluded.requested_at IS NOT NULL";

fn kind(stored: &str) -> Result<WindowKind, StoreError> {
    WindowKind::parse(stored).ok_or_else(|| StoreError::Corrupt(format!("window kind {stored:?}")))
}

fn insert(connection: &rusqlite::Transaction<'_>, key: &FeedKey, window: &CompletedWindow) -> Result<(), StoreError> {
    connection
        .prepare_cached(INSERT)
        .and_then(|mut insert| {
            insert.execute(params![
                key.tenant.as_str(),
                key.supplier.as_str(),
                window.kind.as_str(),
                micros(window.since),
                micros(window.until),
                int8(window.n_records),
                int8(window.n_pages),
                int8(window.n_windows),
                micros(window.completed_at),
                window.requested_at.map(micros),
            ])
        })
        .map_err(write_error)?;
    Ok(())
}

pub(crate) async fn complete_window(
    writer: &Writer,
    key: &FeedKey,
    window: &CompletedWindow,
) -> Result<(), StoreError> {
    let (key, window) = (key.clone(), window.clone());
    writer
        .transaction(move |connection| {
            insert(connection, &key, &window)?;
            connection
                .prepare_cached(
                    "UPDATE feeds SET last_sync_at = max(coalesce(last_sync_at, ?3), ?3) \
                     WHERE tenant_id = ?1 AND supplier_id = ?2",
                )
                .and_then(|mut update| {
                    update.execute(params![key.tenant.as_str(), key.supplier.as_str(), micros(window.completed_at)])
                })
                .map_err(write_error)?;
            Ok(())
        })
        .await
}

pub(crate) async fn feed_windows(pool: &SqlitePool, key: &FeedKey) -> Result<Vec<CompletedWindow>, StoreError> {
    let rows = sqlx::query(WINDOWS)
        .bind(key.tenant.as_str())
        .bind(key.supplier.as_str())
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let stored: String = column(row, "kind")?;
            Ok(CompletedWindow {
                kind: kind(&stored)?,
                since: time_column(row, "since_at")?,
                until: time_column(row, "until_at")?,
                completed_at: time_column(row, "completed_at")?,
                n_records: narrowed("n_records", column(row, "n_records")?)?,
                n_pages: narrowed("n_pages", column(row, "n_pages")?)?,
                n_windows: narrowed("n_windows", column(row, "n_windows")?)?,
                requested_at: optional_time_column(row, "requested_at")?,
            })
        })
        .collect()
}

/// The feed's windows as the writer's transaction sees them.
fn windows_in(connection: &rusqlite::Transaction<'_>, key: &FeedKey) -> Result<Vec<CompletedWindow>, StoreError> {
    let mut select = connection.prepare_cached(WINDOWS).map_err(write_error)?;
    let mut rows = select.query(params![key.tenant.as_str(), key.supplier.as_str()]).map_err(write_error)?;
    let mut windows = Vec::new();
    while let Some(row) = rows.next().map_err(write_error)? {
        let stored: String = raw::column(row, "kind")?;
        windows.push(CompletedWindow {
            kind: kind(&stored)?,
            since: raw::time_column(row, "since_at")?,
            until: raw::time_column(row, "until_at")?,
            completed_at: raw::time_column(row, "completed_at")?,
            n_records: narrowed("n_records", raw::column(row, "n_records")?)?,
            n_pages: narrowed("n_pages", raw::column(row, "n_pages")?)?,
            n_windows: narrowed("n_windows", raw::column(row, "n_windows")?)?,
            requested_at: raw::optional_time_column(row, "requested_at")?,
        });
    }
    Ok(windows)
}

/// Merges every feed's windows completed before `cutoff` that overlap or touch (decision
/// 0035), a feed per transaction. Returns how many rows fewer the table holds.
pub(crate) async fn compact_feed_windows(
    pool: &SqlitePool,
    writer: &Writer,
    cutoff: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let feeds: Vec<(String, String)> = sqlx::query_as("SELECT tenant_id, supplier_id FROM feeds ORDER BY 1, 2")
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    let mut fewer = 0;
    for (tenant, supplier) in feeds {
        let key = FeedKey { tenant: rows::tenant(&tenant)?, supplier: rows::supplier(&supplier)? };
        fewer += writer
            .transaction(move |connection| {
                let merges = compact_windows(&windows_in(connection, &key)?, cutoff);
                let mut delete = connection
                    .prepare_cached(
                        "DELETE FROM feed_windows WHERE tenant_id = ?1 AND supplier_id = ?2 AND kind = ?3 \
                         AND since_at = ?4 AND until_at = ?5",
                    )
                    .map_err(write_error)?;
                let mut fewer = 0;
                for merge in &merges {
                    for window in &merge.replaced {
                        let params = params![
                            key.tenant.as_str(),
                            key.supplier.as_str(),
                            window.kind.as_str(),
                            micros(window.since),
                            micros(window.until),
                        ];
                        delete.execute(params).map_err(write_error)?;
                    }
                    insert(connection, &key, &merge.merged)?;
                    fewer += merge.replaced.len() as u64 - 1;
                }
                Ok(fewer)
            })
            .await?;
    }
    Ok(fewer)
}
