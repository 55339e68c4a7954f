//! Supplier feeds on SQLite: settings and state, completed windows, pull dead letters and the
//! drift full refreshes found (`catalog_store::FeedStore`). Every write is a job of the one
//! writer (decision 0013); reads use the pool.

use catalog_store::{
    parse_run_times, render_run_times, rows, FeedDrift, FeedDriftRecord, FeedJournalDay, FeedKey, FeedOffer,
    FeedRunRequest, FeedSettings, FullRefresh, PullFailure, StoreError, StoredFeed, PULL_STAGE,
};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use crate::columns::{column, micros, narrowed, offer_columns, optional_time_column, time_column, OFFER_STATE_COLUMNS};
use crate::error::{store_error, write_error};
use crate::writer::Writer;

const FEED_COLUMNS: &str = "tenant_id, supplier_id, base_url, token_env, go_live_date, sync_frequency_hours, \
    timezone, run_times, requests_per_second, sync_enabled, last_sync_at, initial_sync_completed, last_full_refresh_at, \
    run_request_kind, run_request_since, run_request_until, run_request_by, run_request_at, supplier_hold_until";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn feed_row(row: &SqliteRow) -> Result<StoredFeed, StoreError> {
    let tenant: String = column(row, "tenant_id")?;
    let supplier: String = column(row, "supplier_id")?;
    let go_live_date: String = column(row, "go_live_date")?;
    let run_times: String = column(row, "run_times")?;
    let rate: Option<i64> = column(row, "requests_per_second")?;
    Ok(StoredFeed {
        settings: FeedSettings {
            key: FeedKey { tenant: rows::tenant(&tenant)?, supplier: rows::supplier(&supplier)? },
            base_url: column(row, "base_url")?,
            token_env: column(row, "token_env")?,
            go_live_date: NaiveDate::parse_from_str(&go_live_date, "%Y-%m-%d")
                .map_err(|error| corrupt(format_args!("go_live_date {go_live_date:?}: {error}")))?,
            sync_frequency_hours: narrowed("sync_frequency_hours", column(row, "sync_frequency_hours")?)?,
            timezone: column(row, "timezone")?,
            run_times: parse_run_times(&run_times)?,
            requests_per_second: rate.map(|rate| narrowed("requests_per_second", rate)).transpose()?,
            sync_enabled: column(row, "sync_enabled")?,
        },
        last_sync_at: optional_time_column(row, "last_sync_at")?,
        initial_sync_completed: column(row, "initial_sync_completed")?,
        last_full_refresh_at: optional_time_column(row, "last_full_refresh_at")?,
        run_request: run_request(row)?,
        supplier_hold_until: optional_time_column(row, "supplier_hold_until")?,
    })
}

fn run_request(row: &SqliteRow) -> Result<Option<FeedRunRequest>, StoreError> {
    rows::run_request(
        column(row, "run_request_kind")?,
        optional_time_column(row, "run_request_since")?,
        optional_time_column(row, "run_request_until")?,
        column(row, "run_request_by")?,
        optional_time_column(row, "run_request_at")?,
    )
}

pub(crate) async fn request_feed_run(
    writer: &Writer,
    key: &FeedKey,
    request: &FeedRunRequest,
) -> Result<bool, StoreError> {
    let (key, request) = (key.clone(), request.clone());
    writer
        .transaction(move |connection| {
            let (since, until) = request.kind.range();
            let changed = connection
                .prepare_cached(
                    "UPDATE feeds SET run_request_kind = ?3, run_request_since = ?4, run_request_until = ?5, \
                     run_request_by = ?6, run_request_at = ?7, updated_at = ?8 WHERE tenant_id = ?1 AND supplier_id = ?2",
                )
                .and_then(|mut update| {
                    update.execute(params![
                        key.tenant.as_str(),
                        key.supplier.as_str(),
                        request.kind.as_str(),
                        since.map(micros),
                        until.map(micros),
                        request.requested_by,
                        micros(request.requested_at),
                        micros(Utc::now()),
                    ])
                })
                .map_err(write_error)?;
            Ok(changed > 0)
        })
        .await
}

pub(crate) async fn clear_feed_run(
    writer: &Writer,
    key: &FeedKey,
    requested_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let key = key.clone();
    writer
        .transaction(move |connection| {
            let changed = connection
                .prepare_cached(
                    "UPDATE feeds SET run_request_kind = NULL, run_request_since = NULL, run_request_until = NULL, \
                     run_request_by = NULL, run_request_at = NULL, updated_at = ?4 \
                     WHERE tenant_id = ?1 AND supplier_id = ?2 AND run_request_at = ?3",
                )
                .and_then(|mut update| {
                    update.execute(params![
                        key.tenant.as_str(),
                        key.supplier.as_str(),
                        micros(requested_at),
                        micros(Utc::now())
                    ])
                })
                .map_err(write_error)?;
            Ok(changed > 0)
        })
        .await
}

pub(crate) fn int8(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) async fn upsert_feed(writer: &Writer, settings: &FeedSettings) -> Result<(), StoreError> {
    let settings = settings.clone();
    writer
        .transaction(move |connection| {
            let now = micros(Utc::now());
            connection
                .prepare_cached(
                    "INSERT INTO feeds (tenant_id, supplier_id, base_url, token_env, go_live_date, \
                     sync_frequency_hours, timezone, run_times, requests_per_second, sync_enabled, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11) \
                     ON CONFLICT (tenant_id, supplier_id) DO UPDATE SET \
                     base_url = excluded.base_url, token_env = excluded.token_env, go_live_date = excluded.go_live_date, \
                     sync_frequency_hours = excluded.sync_frequency_hours, timezone = excluded.timezone, \
                     run_times = excluded.run_times, requests_per_second = excluded.requests_per_second, \
                     updated_at = excluded.updated_at",
                )
                .and_then(|mut upsert| {
                    upsert.execute(params![
                        settings.key.tenant.as_str(),
                        settings.key.supplier.as_str(),
                        settings.base_url,
                        settings.token_env,
                        settings.go_live_date.format("%Y-%m-%d").to_string(),
                        settings.sync_frequency_hours,
                        settings.timezone,
                        render_run_times(&settings.run_times),
                        settings.requests_per_second,
                        settings.sync_enabled,
                        now,
                    ])
                })
                .map_err(write_error)?;
            Ok(())
        })
        .await
}

pub(crate) async fn feeds(pool: &SqlitePool) -> Result<Vec<StoredFeed>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {FEED_COLUMNS} FROM feeds ORDER BY tenant_id, supplier_id"))
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    rows.iter().map(feed_row).collect()
}

pub(crate) async fn feed(pool: &SqlitePool, key: &FeedKey) -> Result<Option<StoredFeed>, StoreError> {
    let row = sqlx::query(&format!("SELECT {FEED_COLUMNS} FROM feeds WHERE tenant_id = ?1 AND supplier_id = ?2"))
        .bind(key.tenant.as_str())
        .bind(key.supplier.as_str())
        .fetch_all(pool)
        .await
        .map_err(store_error)?
        .into_iter()
        .next();
    row.as_ref().map(feed_row).transpose()
}

pub(crate) async fn set_feed_sync(writer: &Writer, key: &FeedKey, enabled: bool) -> Result<bool, StoreError> {
    let key = key.clone();
    writer
        .transaction(move |connection| {
            let changed = connection
                .prepare_cached(
                    "UPDATE feeds SET sync_enabled = ?3, updated_at = ?4 WHERE tenant_id = ?1 AND supplier_id = ?2",
                )
                .and_then(|mut update| {
                    update.execute(params![key.tenant.as_str(), key.supplier.as_str(), enabled, micros(Utc::now())])
                })
                .map_err(write_error)?;
            Ok(changed > 0)
        })
        .await
}

pub(crate) async fn record_pull_failure(writer: &Writer, failure: &PullFailure) -> Result<i64, StoreError> {
    let failure = failure.clone();
    writer
        .transaction(move |connection| {
            let now = micros(Utc::now());
            let subject = failure.key.to_string();
            if let Some(until) = failure.supplier_hold_until {
                connection
                    .prepare_cached(
                        "UPDATE feeds SET supplier_hold_until = max(coalesce(supplier_hold_until, ?1), ?1) \
                         WHERE tenant_id = ?2 AND supplier_id = ?3",
                    )
                    .and_then(|mut update| {
                        update.execute(params![micros(until), failure.key.tenant.as_str(), failure.key.supplier.as_str()])
                    })
                    .map_err(write_error)?;
            }
            let counted = connection
                .prepare_cached(
                    "UPDATE dead_letters SET attempts = attempts + 1, last_failed_at = ?1, reason = ?2, error = ?3, \
                     body = CASE WHEN ?2 = reason THEN coalesce(?4, body) ELSE ?4 END WHERE stage = ?5 AND subject = ?6 AND channel IS NULL AND resolved_at IS NULL \
                     RETURNING dead_letter_id",
                )
                .and_then(|mut update| {
                    let mut ids = update.query_map(
                        params![now, failure.reason, failure.error, failure.body, PULL_STAGE, subject],
                        |row| row.get::<_, i64>(0),
                    )?;
                    ids.next().transpose()
                })
                .map_err(write_error)?;
            if let Some(id) = counted {
                return Ok(id);
            }
            connection
                .prepare_cached(
                    "INSERT INTO dead_letters (stage, subject, channel, reason, error, body, attempts, \
                     first_failed_at, last_failed_at) VALUES (?1, ?2, NULL, ?3, ?4, ?5, 1, ?6, ?6)",
                )
                .and_then(|mut insert| {
                    insert.execute(params![PULL_STAGE, subject, failure.reason, failure.error, failure.body, now])
                })
                .map_err(write_error)?;
            Ok(connection.last_insert_rowid())
        })
        .await
}

pub(crate) async fn resolve_pull_failure(writer: &Writer, key: &FeedKey) -> Result<bool, StoreError> {
    let subject = key.to_string();
    writer
        .transaction(move |connection| {
            let resolved = connection
                .prepare_cached(
                    "UPDATE dead_letters SET resolved_at = ?1, resolution = 'pulled' \
                     WHERE stage = ?2 AND subject = ?3 AND channel IS NULL AND resolved_at IS NULL",
                )
                .and_then(|mut update| update.execute(params![micros(Utc::now()), PULL_STAGE, subject]))
                .map_err(write_error)?;
            Ok(resolved > 0)
        })
        .await
}

pub(crate) async fn feed_offers(pool: &SqlitePool, key: &FeedKey) -> Result<Vec<FeedOffer>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT sku, {OFFER_STATE_COLUMNS} FROM offers WHERE tenant_id = ?1 AND supplier_id = ?2 ORDER BY sku"
    ))
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let sku: String = column(row, "sku")?;
            Ok(FeedOffer { sku: rows::sku(&sku)?, state: offer_columns(row)?.into_state()? })
        })
        .collect()
}

pub(crate) async fn record_feed_drifts(
    writer: &Writer,
    key: &FeedKey,
    drifts: &[FeedDrift],
    detected_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (key, drifts) = (key.clone(), drifts.to_vec());
    writer
        .transaction(move |connection| {
            let mut insert = connection
                .prepare_cached(
                    "INSERT INTO feed_drifts (tenant_id, supplier_id, sku, stored_quantity, supplier_quantity, as_of, \
                     detected_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(write_error)?;
            for drift in &drifts {
                insert
                    .execute(params![
                        key.tenant.as_str(),
                        key.supplier.as_str(),
                        drift.sku.as_str(),
                        drift.stored,
                        drift.supplier,
                        micros(drift.as_of),
                        micros(detected_at),
                    ])
                    .map_err(write_error)?;
            }
            Ok(())
        })
        .await
}

pub(crate) async fn complete_full_refresh(writer: &Writer, refresh: &FullRefresh) -> Result<(), StoreError> {
    let refresh = refresh.clone();
    writer
        .transaction(move |connection| {
            let key = &refresh.key;
            let completed_at = micros(refresh.completed_at);
            connection
                .prepare_cached(
                    "UPDATE feeds SET initial_sync_completed = 1, last_full_refresh_at = ?3, \
                     last_sync_at = max(coalesce(last_sync_at, ?3), ?3) WHERE tenant_id = ?1 AND supplier_id = ?2",
                )
                .and_then(|mut update| {
                    update.execute(params![key.tenant.as_str(), key.supplier.as_str(), completed_at])
                })
                .map_err(write_error)?;
            Ok(())
        })
        .await
}

pub(crate) async fn feed_drifts(
    pool: &SqlitePool,
    key: &FeedKey,
    limit: usize,
) -> Result<Vec<FeedDriftRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT sku, stored_quantity, supplier_quantity, as_of, detected_at FROM feed_drifts
         WHERE tenant_id = ?1 AND supplier_id = ?2 ORDER BY detected_at DESC, feed_drift_id DESC LIMIT ?3",
    )
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let sku: String = column(row, "sku")?;
            Ok(FeedDriftRecord {
                key: key.clone(),
                drift: FeedDrift {
                    sku: rows::sku(&sku)?,
                    stored: column(row, "stored_quantity")?,
                    supplier: column(row, "supplier_quantity")?,
                    as_of: time_column(row, "as_of")?,
                },
                detected_at: time_column(row, "detected_at")?,
            })
        })
        .collect()
}

pub(crate) async fn feed_journal_by_day(
    pool: &SqlitePool,
    key: &FeedKey,
    since: DateTime<Utc>,
) -> Result<Vec<FeedJournalDay>, StoreError> {
    // The tenant's reception index bounds the scan; the source picks the feed's rows.
    let rows = sqlx::query(
        "SELECT date(received_at / 1000000, 'unixepoch') AS day, outcome, count(*) AS n_events, \
         coalesce(sum(redelivery_count), 0) AS redeliveries \
         FROM events WHERE tenant_id = ?1 AND received_at >= ?2 AND source = ?3 \
         GROUP BY 1, 2 ORDER BY 1 DESC, 2",
    )
    .bind(key.tenant.as_str())
    .bind(micros(since))
    .bind(key.source_name())
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let rows = rows
        .iter()
        .map(|row| {
            let day: String = column(row, "day")?;
            let date = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .map_err(|error| corrupt(format_args!("day {day:?}: {error}")))?;
            let n_events: i64 = column(row, "n_events")?;
            let redeliveries: i64 = column(row, "redeliveries")?;
            Ok((
                date,
                column(row, "outcome")?,
                narrowed("n_events", n_events)?,
                narrowed("redeliveries", redeliveries)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(rows::journal_days(rows))
}
