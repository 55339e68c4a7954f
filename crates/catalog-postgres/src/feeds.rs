//! Supplier feeds on Postgres: settings and state, completed windows, pull dead letters and
//! the drift full refreshes found (`catalog_store::FeedStore`).

use catalog_store::{
    parse_run_times, render_run_times, rows, FeedDrift, FeedDriftRecord, FeedJournalDay, FeedKey, FeedOffer,
    FeedRunRequest, FeedSettings, FullRefresh, PullFailure, StoreError, StoredFeed, PULL_STAGE,
};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgPool;

use crate::columns::{column, narrowed, offer_columns, OFFER_STATE_COLUMNS};
use crate::store_error;

const FEED_COLUMNS: &str = "tenant_id, supplier_id, base_url, token_env, go_live_date, sync_frequency_hours, \
    timezone, run_times, requests_per_second, sync_enabled, last_sync_at, initial_sync_completed, last_full_refresh_at, \
    run_request_kind, run_request_since, run_request_until, run_request_by, run_request_at, supplier_hold_until";

fn feed_row(row: &PgRow) -> Result<StoredFeed, StoreError> {
    let frequency: i32 = column(row, "sync_frequency_hours")?;
    let rate: Option<i32> = column(row, "requests_per_second")?;
    let go_live_date: NaiveDate = column(row, "go_live_date")?;
    let run_times: String = column(row, "run_times")?;
    Ok(StoredFeed {
        settings: FeedSettings {
            key: FeedKey {
                tenant: rows::tenant(column(row, "tenant_id")?)?,
                supplier: rows::supplier(column(row, "supplier_id")?)?,
            },
            base_url: column(row, "base_url")?,
            token_env: column(row, "token_env")?,
            go_live_date,
            sync_frequency_hours: u32::try_from(frequency)
                .map_err(|_| StoreError::Corrupt(format!("sync_frequency_hours {frequency}")))?,
            timezone: column(row, "timezone")?,
            run_times: parse_run_times(&run_times)?,
            requests_per_second: rate.and_then(|rate| u32::try_from(rate).ok()),
            sync_enabled: column(row, "sync_enabled")?,
        },
        last_sync_at: column(row, "last_sync_at")?,
        initial_sync_completed: column(row, "initial_sync_completed")?,
        last_full_refresh_at: column(row, "last_full_refresh_at")?,
        run_request: run_request(row)?,
        supplier_hold_until: column(row, "supplier_hold_until")?,
    })
}

fn run_request(row: &PgRow) -> Result<Option<FeedRunRequest>, StoreError> {
    rows::run_request(
        column(row, "run_request_kind")?,
        column(row, "run_request_since")?,
        column(row, "run_request_until")?,
        column(row, "run_request_by")?,
        column(row, "run_request_at")?,
    )
}

pub(crate) async fn request_feed_run(
    pool: &PgPool,
    key: &FeedKey,
    request: &FeedRunRequest,
) -> Result<bool, StoreError> {
    let (since, until) = request.kind.range();
    let done = sqlx::query(
        "UPDATE feeds SET run_request_kind = $3, run_request_since = $4, run_request_until = $5,
                run_request_by = $6, run_request_at = $7, updated_at = now()
         WHERE tenant_id = $1 AND supplier_id = $2",
    )
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .bind(request.kind.as_str())
    .bind(since)
    .bind(until)
    .bind(&request.requested_by)
    .bind(request.requested_at)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn clear_feed_run(
    pool: &PgPool,
    key: &FeedKey,
    requested_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE feeds SET run_request_kind = NULL, run_request_since = NULL, run_request_until = NULL,
                run_request_by = NULL, run_request_at = NULL, updated_at = now()
         WHERE tenant_id = $1 AND supplier_id = $2 AND run_request_at = $3",
    )
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .bind(requested_at)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(done.rows_affected() > 0)
}

fn int4(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

pub(crate) fn int8(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) async fn upsert_feed(pool: &PgPool, settings: &FeedSettings) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO feeds (tenant_id, supplier_id, base_url, token_env, go_live_date, sync_frequency_hours,
                            timezone, run_times, requests_per_second, sync_enabled)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (tenant_id, supplier_id) DO UPDATE SET
             base_url = EXCLUDED.base_url, token_env = EXCLUDED.token_env, go_live_date = EXCLUDED.go_live_date,
             sync_frequency_hours = EXCLUDED.sync_frequency_hours, timezone = EXCLUDED.timezone,
             run_times = EXCLUDED.run_times, requests_per_second = EXCLUDED.requests_per_second, updated_at = now()",
    )
    .bind(settings.key.tenant.as_str())
    .bind(settings.key.supplier.as_str())
    .bind(&settings.base_url)
    .bind(&settings.token_env)
    .bind(settings.go_live_date)
    .bind(int4(settings.sync_frequency_hours))
    .bind(&settings.timezone)
    .bind(render_run_times(&settings.run_times))
    .bind(settings.requests_per_second.map(int4))
    .bind(settings.sync_enabled)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub(crate) async fn feeds(pool: &PgPool) -> Result<Vec<StoredFeed>, StoreError> {
    let rows = sqlx::query(&format!(
        r#"SELECT {FEED_COLUMNS} FROM feeds ORDER BY tenant_id COLLATE "C", supplier_id COLLATE "C""#
    ))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter().map(feed_row).collect()
}

pub(crate) async fn feed(pool: &PgPool, key: &FeedKey) -> Result<Option<StoredFeed>, StoreError> {
    let row = sqlx::query(&format!("SELECT {FEED_COLUMNS} FROM feeds WHERE tenant_id = $1 AND supplier_id = $2"))
        .bind(key.tenant.as_str())
        .bind(key.supplier.as_str())
        .fetch_optional(pool)
        .await
        .map_err(store_error)?;
    row.as_ref().map(feed_row).transpose()
}

pub(crate) async fn set_feed_sync(pool: &PgPool, key: &FeedKey, enabled: bool) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE feeds SET sync_enabled = $3, updated_at = now() WHERE tenant_id = $1 AND supplier_id = $2")
            .bind(key.tenant.as_str())
            .bind(key.supplier.as_str())
            .bind(enabled)
            .execute(pool)
            .await
            .map_err(store_error)?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn record_pull_failure(pool: &PgPool, failure: &PullFailure) -> Result<i64, StoreError> {
    // The supplier's hold is kept with the feed in the same statement: a restart between the
    // two would forget it.
    let row = sqlx::query(
        "WITH held AS (
           UPDATE feeds SET supplier_hold_until = greatest(supplier_hold_until, $6)
           WHERE tenant_id = $7 AND supplier_id = $8 AND $6::timestamptz IS NOT NULL
         )
         INSERT INTO dead_letters (stage, subject, channel, reason, error, body) VALUES ($1, $2, NULL, $3, $4, $5)
         ON CONFLICT (stage, subject, coalesce(channel, '')) WHERE resolved_at IS NULL
         DO UPDATE SET attempts = dead_letters.attempts + 1, last_failed_at = now(), reason = EXCLUDED.reason,
                       error = EXCLUDED.error,
                       body = CASE WHEN EXCLUDED.reason = dead_letters.reason
                                   THEN coalesce(EXCLUDED.body, dead_letters.body) ELSE EXCLUDED.body END
         RETURNING dead_letter_id",
    )
    .bind(PULL_STAGE)
    .bind(failure.key.to_string())
    .bind(&failure.reason)
    .bind(&failure.error)
    .bind(failure.body.as_deref())
    .bind(failure.supplier_hold_until)
    .bind(failure.key.tenant.as_str())
    .bind(failure.key.supplier.as_str())
    .fetch_one(pool)
    .await
    .map_err(store_error)?;
    column(&row, "dead_letter_id")
}

pub(crate) async fn resolve_pull_failure(pool: &PgPool, key: &FeedKey) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE dead_letters SET resolved_at = now(), resolution = 'pulled'
         WHERE stage = $1 AND subject = $2 AND channel IS NULL AND resolved_at IS NULL",
    )
    .bind(PULL_STAGE)
    .bind(key.to_string())
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn feed_offers(pool: &PgPool, key: &FeedKey) -> Result<Vec<FeedOffer>, StoreError> {
    let rows = sqlx::query(&format!(
        r#"SELECT sku, {OFFER_STATE_COLUMNS} FROM offers WHERE tenant_id = $1 AND supplier_id = $2
               ORDER BY sku COLLATE "C""#
    ))
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| Ok(FeedOffer { sku: rows::sku(column(row, "sku")?)?, state: offer_columns(row)?.into_state()? }))
        .collect()
}

pub(crate) async fn record_feed_drifts(
    pool: &PgPool,
    key: &FeedKey,
    drifts: &[FeedDrift],
    detected_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if drifts.is_empty() {
        return Ok(());
    }
    let skus: Vec<&str> = drifts.iter().map(|drift| drift.sku.as_str()).collect();
    let stored: Vec<Option<i64>> = drifts.iter().map(|drift| drift.stored).collect();
    let supplier: Vec<i64> = drifts.iter().map(|drift| drift.supplier).collect();
    let as_of: Vec<DateTime<Utc>> = drifts.iter().map(|drift| drift.as_of).collect();
    sqlx::query(
        "INSERT INTO feed_drifts (tenant_id, supplier_id, sku, stored_quantity, supplier_quantity, as_of, detected_at)
         SELECT $1, $2, d.sku, d.stored, d.supplier, d.as_of, $7
         FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::timestamptz[]) AS d (sku, stored, supplier, as_of)",
    )
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .bind(&skus)
    .bind(&stored)
    .bind(&supplier)
    .bind(&as_of)
    .bind(detected_at)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub(crate) async fn complete_full_refresh(pool: &PgPool, refresh: &FullRefresh) -> Result<(), StoreError> {
    let key = &refresh.key;
    sqlx::query(
        "UPDATE feeds SET initial_sync_completed = true, last_full_refresh_at = $3,
                          last_sync_at = GREATEST(last_sync_at, $3)
         WHERE tenant_id = $1 AND supplier_id = $2",
    )
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .bind(refresh.completed_at)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub(crate) async fn feed_drifts(
    pool: &PgPool,
    key: &FeedKey,
    limit: usize,
) -> Result<Vec<FeedDriftRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT sku, stored_quantity, supplier_quantity, as_of, detected_at FROM feed_drifts
         WHERE tenant_id = $1 AND supplier_id = $2 ORDER BY detected_at DESC, feed_drift_id DESC LIMIT $3",
    )
    .bind(key.tenant.as_str())
    .bind(key.supplier.as_str())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(FeedDriftRecord {
                key: key.clone(),
                drift: FeedDrift {
                    sku: rows::sku(column(row, "sku")?)?,
                    stored: column(row, "stored_quantity")?,
                    supplier: column(row, "supplier_quantity")?,
                    as_of: column(row, "as_of")?,
                },
                detected_at: column(row, "detected_at")?,
            })
        })
        .collect()
}

pub(crate) async fn feed_journal_by_day(
    pool: &PgPool,
    key: &FeedKey,
    since: DateTime<Utc>,
) -> Result<Vec<FeedJournalDay>, StoreError> {
    // The tenant's reception index bounds the scan; the source picks the feed's rows.
    let rows = sqlx::query(
        "SELECT (received_at AT TIME ZONE 'UTC')::date AS day, outcome, count(*) AS n_events,
                coalesce(sum(redelivery_count), 0)::bigint AS redeliveries
         FROM events WHERE tenant_id = $1 AND received_at >= $2 AND source = $3
         GROUP BY 1, 2 ORDER BY 1 DESC, 2",
    )
    .bind(key.tenant.as_str())
    .bind(since)
    .bind(key.source_name())
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let rows = rows
        .iter()
        .map(|row| {
            let date: NaiveDate = column(row, "day")?;
            Ok((date, column(row, "outcome")?, narrowed(row, "n_events")?, narrowed(row, "redeliveries")?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(rows::journal_days(rows))
}
