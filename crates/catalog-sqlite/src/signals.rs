//! The signals role on SQLite: the launch signals' facts counted in a few grouped reads,
//! and source progress, the tracer's checks and samples written on the writer.

use std::collections::BTreeMap;

use catalog_core::{ItemId, PartitionProgress, TenantId};
use catalog_store::{
    assemble_facts, count, FactsQuery, FactsReport, JournalTail, SampledValue, SignalSample, StoreConfig, StoreError,
    StoredGap, TenantCounts, TraceCheck, UntracedRow,
};
use chrono::{DateTime, Utc};
use rusqlite::params;
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use crate::columns::{column, micros, optional_time_column, optional_uuid_column, time_column, uuid_column};
use crate::error::{store_error, write_error};
use crate::writer::Writer;
use crate::SqliteStore;
use async_trait::async_trait;
use catalog_store::SignalStore;

/// The tenant id overall samples are kept under: not a valid tenant id, so never a tenant's.
const OVERALL: &str = "*";

/// The channel routes as a JSON array of `[channel, tenant or null]`.
pub(crate) fn routes(config: &StoreConfig) -> String {
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    for route in &config.channels {
        match &route.tenants {
            None => pairs.push((route.name.clone(), None)),
            Some(served) => pairs.extend(served.iter().map(|tenant| (route.name.clone(), Some(tenant.to_string())))),
        }
    }
    serde_json::to_string(&pairs).expect("pairs of strings serialize")
}

/// An item is untraced when its last check found a gap, or when it changed past the grace
/// and was not checked at that version (`?1`: the trace cutoff).
const UNTRACED: &str =
    "(c.gap IS NOT NULL OR ((c.item_id IS NULL OR c.checked_version < i.version) AND i.updated_at <= ?1))";

fn limit(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) async fn facts(
    pool: &SqlitePool,
    config: &StoreConfig,
    query: &FactsQuery,
) -> Result<FactsReport, StoreError> {
    let trace_cutoff = micros(query.now - query.trace_grace);
    let stale_cutoff = micros(query.now - query.stale_grace);
    let mut counts: BTreeMap<String, TenantCounts> = BTreeMap::new();
    for tenant in
        sqlx::query_scalar::<_, String>("SELECT tenant_id FROM tenants").fetch_all(pool).await.map_err(store_error)?
    {
        counts.entry(tenant).or_default();
    }
    let rows = sqlx::query(&format!(
        "WITH routes AS (
             SELECT json_extract(value, '$[0]') AS channel, json_extract(value, '$[1]') AS tenant_id
             FROM json_each(?3)
         )
         SELECT i.tenant_id,
                count(*) AS items,
                count(*) FILTER (WHERE i.updated_at < ?2 AND EXISTS (
                    SELECT 1 FROM routes AS r
                    LEFT JOIN published_versions AS p ON p.item_id = i.item_id AND p.channel = r.channel
                    LEFT JOIN unlisted_versions AS s ON s.item_id = i.item_id AND s.channel = r.channel
                    WHERE (r.tenant_id IS NULL OR r.tenant_id = i.tenant_id)
                      AND max(coalesce(p.version, 0), coalesce(s.version, 0)) < i.version
                )) AS stale,
                count(*) FILTER (WHERE c.item_id IS NOT NULL OR i.updated_at <= ?1) AS due,
                count(*) FILTER (WHERE {UNTRACED}) AS untraced
         FROM items AS i LEFT JOIN item_trace_checks AS c ON c.item_id = i.item_id
         WHERE i.version > 0
         GROUP BY i.tenant_id"
    ))
    .bind(trace_cutoff)
    .bind(stale_cutoff)
    .bind(routes(config))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    for row in rows {
        let counted = counts.entry(column(&row, "tenant_id")?).or_default();
        counted.items = count("items", column(&row, "items")?)?;
        counted.stale_items = count("stale items", column(&row, "stale")?)?;
        counted.items_due_for_trace = count("items due for a trace", column(&row, "due")?)?;
        counted.untraced_items = count("untraced items", column(&row, "untraced")?)?;
    }
    // A throttled record is a wait, not an attempt (decision 0007); a skipped one (a SKU the
    // channel does not list) sent nothing, so it is no attempt either; a 409 is recorded as
    // `superseded`, an attempt that did not fail.
    let rows = sqlx::query(
        "SELECT i.tenant_id, count(*) AS attempts, count(*) FILTER (WHERE a.result = 'dead_lettered') AS failures
         FROM publish_attempts AS a JOIN items AS i ON i.item_id = a.item_id
         WHERE a.attempted_at >= ?1 AND a.result NOT IN ('throttled', 'skipped')
         GROUP BY i.tenant_id",
    )
    .bind(micros(query.now - query.publish_window))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    for row in rows {
        let counted = counts.entry(column(&row, "tenant_id")?).or_default();
        counted.publish_attempts = count("publish attempts", column(&row, "attempts")?)?;
        counted.publish_failures = count("publish failures", column(&row, "failures")?)?;
    }
    let rows = sqlx::query(&format!(
        "SELECT * FROM (
             SELECT i.tenant_id, i.item_id, i.sku, c.gap, c.gap_stored, c.gap_rederived, c.gap_supplier,
                    c.gap_event_id, row_number() OVER (PARTITION BY i.tenant_id ORDER BY i.sku) AS n
             FROM items AS i LEFT JOIN item_trace_checks AS c ON c.item_id = i.item_id
             WHERE i.version > 0 AND {UNTRACED}
         ) AS named WHERE n <= ?2"
    ))
    .bind(trace_cutoff)
    .bind(limit(query.max_named))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let untraced = rows
        .iter()
        .map(|row| {
            Ok(UntracedRow {
                tenant: column(row, "tenant_id")?,
                item_id: ItemId(uuid_column(row, "item_id")?),
                sku: column(row, "sku")?,
                gap: StoredGap {
                    gap: column(row, "gap")?,
                    stored: column(row, "gap_stored")?,
                    rederived: column(row, "gap_rederived")?,
                    supplier: column(row, "gap_supplier")?,
                    event_id: optional_uuid_column(row, "gap_event_id")?,
                },
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    assemble_facts(counts, untraced, progress(pool).await?, query.max_named)
}

async fn progress(pool: &SqlitePool) -> Result<Vec<PartitionProgress>, StoreError> {
    let rows = sqlx::query(
        "SELECT source, partition, reported_at, oldest_unapplied_at FROM source_progress ORDER BY source, partition",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(PartitionProgress {
                source: column(row, "source")?,
                partition: column(row, "partition")?,
                reported_at: time_column(row, "reported_at")?,
                oldest_unapplied_at: optional_time_column(row, "oldest_unapplied_at")?,
            })
        })
        .collect()
}

pub(crate) async fn report_progress(writer: &Writer, progress: &[PartitionProgress]) -> Result<(), StoreError> {
    if progress.is_empty() {
        return Ok(());
    }
    let progress = progress.to_vec();
    writer
        .transaction(move |connection| {
            let mut upsert = connection
                .prepare_cached(
                    "INSERT INTO source_progress (source, partition, reported_at, oldest_unapplied_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (source, partition) DO UPDATE
                     SET reported_at = excluded.reported_at, oldest_unapplied_at = excluded.oldest_unapplied_at",
                )
                .map_err(write_error)?;
            for partition in &progress {
                upsert
                    .execute(params![
                        partition.source,
                        partition.partition,
                        micros(partition.reported_at),
                        partition.oldest_unapplied_at.map(micros),
                    ])
                    .map_err(write_error)?;
            }
            Ok(())
        })
        .await
}

pub(crate) async fn forget_progress(writer: &Writer, source: &str, partition: &str) -> Result<(), StoreError> {
    let (source, partition) = (source.to_owned(), partition.to_owned());
    writer
        .transaction(move |connection| {
            connection
                .execute("DELETE FROM source_progress WHERE source = ?1 AND partition = ?2", params![source, partition])
                .map_err(write_error)?;
            Ok(())
        })
        .await
}

fn item_ids(rows: &[SqliteRow]) -> Result<Vec<ItemId>, StoreError> {
    rows.iter().map(|row| Ok(ItemId(uuid_column(row, "item_id")?))).collect()
}

pub(crate) async fn items_to_trace(pool: &SqlitePool, max: usize) -> Result<Vec<ItemId>, StoreError> {
    let rows = sqlx::query(
        "SELECT i.item_id FROM items AS i LEFT JOIN item_trace_checks AS c ON c.item_id = i.item_id
         WHERE i.version > 0 AND (c.item_id IS NULL OR c.checked_version < i.version OR c.gap = 'not_checked')
         ORDER BY i.updated_at, i.item_id LIMIT ?1",
    )
    .bind(limit(max))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    item_ids(&rows)
}

pub(crate) async fn sweep_items(
    pool: &SqlitePool,
    after: Option<ItemId>,
    max: usize,
) -> Result<Vec<ItemId>, StoreError> {
    let rows = sqlx::query("SELECT item_id FROM items WHERE version > 0 AND item_id > ?1 ORDER BY item_id LIMIT ?2")
        .bind(after.map_or(uuid::Uuid::nil(), |id| id.0).as_bytes().to_vec())
        .bind(limit(max))
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    item_ids(&rows)
}

pub(crate) async fn mark_unreadable(writer: &Writer, items: &[ItemId]) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let items = items.to_vec();
    writer
        .transaction(move |connection| {
            let mut mark = connection
                .prepare_cached(
                    "UPDATE item_trace_checks SET gap = 'not_checked', gap_stored = NULL, gap_rederived = NULL,
                            gap_supplier = NULL, gap_event_id = NULL
                     WHERE item_id = ?1",
                )
                .map_err(write_error)?;
            for item in &items {
                mark.execute(params![item.0.as_bytes().as_slice()]).map_err(write_error)?;
            }
            Ok(())
        })
        .await
}

pub(crate) async fn record_trace_checks(writer: &Writer, checks: &[TraceCheck]) -> Result<(), StoreError> {
    if checks.is_empty() {
        return Ok(());
    }
    let checks = checks.to_vec();
    writer
        .transaction(move |connection| {
            let mut upsert = connection
                .prepare_cached(
                    "INSERT INTO item_trace_checks (item_id, tenant_id, checked_version, checked_at, gap, gap_stored,
                                                    gap_rederived, gap_supplier, gap_event_id)
                     SELECT item_id, tenant_id, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM items WHERE item_id = ?1
                     ON CONFLICT (item_id) DO UPDATE SET checked_version = excluded.checked_version,
                         checked_at = excluded.checked_at, gap = excluded.gap, gap_stored = excluded.gap_stored,
                         gap_rederived = excluded.gap_rederived, gap_supplier = excluded.gap_supplier,
                         gap_event_id = excluded.gap_event_id
                     WHERE item_trace_checks.checked_version <= excluded.checked_version",
                )
                .map_err(write_error)?;
            for check in &checks {
                let gap = StoredGap::of(check.gap.as_ref());
                upsert
                    .execute(params![
                        check.item_id.0.as_bytes().as_slice(),
                        i64::try_from(check.version).unwrap_or(i64::MAX),
                        micros(check.checked_at),
                        gap.gap,
                        gap.stored,
                        gap.rederived,
                        gap.supplier,
                        gap.event_id.map(|id| id.as_bytes().to_vec()),
                    ])
                    .map_err(write_error)?;
            }
            Ok(())
        })
        .await
}

fn scope(tenant: Option<&TenantId>) -> String {
    tenant.map_or_else(|| OVERALL.to_owned(), |tenant| tenant.to_string())
}

pub(crate) async fn record_samples(writer: &Writer, samples: &[SignalSample]) -> Result<(), StoreError> {
    let samples = samples.to_vec();
    writer
        .transaction(move |connection| {
            let mut insert = connection
                .prepare_cached(
                    "INSERT INTO signal_samples (tenant_id, at, green, stale_items, stale_items_green, queue_lag,
                         queue_lag_green, publish_errors, publish_errors_green, trace_coverage, trace_coverage_green)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(write_error)?;
            for sample in &samples {
                insert
                    .execute(params![
                        scope(sample.tenant_id.as_ref()),
                        micros(sample.at),
                        sample.green,
                        sample.stale_items.value,
                        sample.stale_items.green,
                        sample.queue_lag.value,
                        sample.queue_lag.green,
                        sample.publish_errors.value,
                        sample.publish_errors.green,
                        sample.trace_coverage.value,
                        sample.trace_coverage.green,
                    ])
                    .map_err(write_error)?;
            }
            Ok(())
        })
        .await
}

fn sample(row: &SqliteRow, tenant: Option<&TenantId>) -> Result<SignalSample, StoreError> {
    let value = |name: &str| -> Result<SampledValue, StoreError> {
        Ok(SampledValue { value: column(row, name)?, green: column(row, &format!("{name}_green"))? })
    };
    Ok(SignalSample {
        tenant_id: tenant.cloned(),
        at: time_column(row, "at")?,
        green: column(row, "green")?,
        stale_items: value("stale_items")?,
        queue_lag: value("queue_lag")?,
        publish_errors: value("publish_errors")?,
        trace_coverage: value("trace_coverage")?,
    })
}

pub(crate) async fn samples(
    pool: &SqlitePool,
    tenant: Option<&TenantId>,
    since: DateTime<Utc>,
    max: usize,
) -> Result<Vec<SignalSample>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM (SELECT * FROM signal_samples WHERE tenant_id = ?1 AND at >= ?2
                        ORDER BY at DESC, sample_id DESC LIMIT ?3)
         ORDER BY at, sample_id",
    )
    .bind(scope(tenant))
    .bind(micros(since))
    .bind(limit(max))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter().map(|row| sample(row, tenant)).collect()
}

pub(crate) async fn gate_samples(
    pool: &SqlitePool,
    tenant: Option<&TenantId>,
    since: DateTime<Utc>,
    span: chrono::Duration,
) -> Result<Vec<catalog_core::GateSample>, StoreError> {
    let rows = sqlx::query(
        "SELECT min(at) AS first_at, max(at) AS at, min(stale_items_green) AS stale_items_green,
                min(queue_lag_green) AS queue_lag_green, min(publish_errors_green) AS publish_errors_green,
                min(trace_coverage_green) AS trace_coverage_green
         FROM signal_samples WHERE tenant_id = ?1 AND at >= ?2
         GROUP BY (at - ?2) / ?3
         ORDER BY 1",
    )
    .bind(scope(tenant))
    .bind(micros(since))
    .bind(span.num_microseconds().unwrap_or(i64::MAX).max(1_000))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut samples = Vec::with_capacity(rows.len() * 2);
    for row in &rows {
        samples.extend(catalog_store::gate_samples_of_span(
            time_column(row, "first_at")?,
            time_column(row, "at")?,
            |name| column(row, name),
        )?);
    }
    Ok(samples)
}

pub(crate) async fn prune_samples(writer: &Writer, before: DateTime<Utc>) -> Result<u64, StoreError> {
    writer
        .transaction(move |connection| {
            let deleted = connection
                .execute("DELETE FROM signal_samples WHERE at < ?1", params![micros(before)])
                .map_err(write_error)?;
            Ok(deleted as u64)
        })
        .await
}

#[async_trait]
impl SignalStore for SqliteStore {
    async fn signal_facts(&self, query: &FactsQuery) -> Result<FactsReport, StoreError> {
        facts(&self.pool, &self.config, query).await
    }

    async fn report_progress(&self, progress: &[PartitionProgress]) -> Result<(), StoreError> {
        report_progress(&self.writer, progress).await
    }

    async fn forget_progress(&self, source: &str, partition: &str) -> Result<(), StoreError> {
        forget_progress(&self.writer, source, partition).await
    }

    async fn items_to_trace(&self, limit: usize) -> Result<Vec<ItemId>, StoreError> {
        items_to_trace(&self.pool, limit).await
    }

    async fn journal_tail(&self, item_id: ItemId, newest: usize) -> Result<Option<JournalTail>, StoreError> {
        crate::read::journal_tail(&self.pool, item_id, newest).await
    }

    async fn sweep_items(&self, after: Option<ItemId>, limit: usize) -> Result<Vec<ItemId>, StoreError> {
        sweep_items(&self.pool, after, limit).await
    }

    async fn record_trace_checks(&self, checks: &[TraceCheck]) -> Result<(), StoreError> {
        record_trace_checks(&self.writer, checks).await
    }

    async fn mark_unreadable(&self, items: &[ItemId]) -> Result<(), StoreError> {
        mark_unreadable(&self.writer, items).await
    }

    async fn record_signal_samples(&self, samples: &[SignalSample]) -> Result<(), StoreError> {
        record_samples(&self.writer, samples).await
    }

    async fn signal_samples(
        &self,
        tenant: Option<&TenantId>,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SignalSample>, StoreError> {
        samples(&self.pool, tenant, since, limit).await
    }

    async fn gate_samples(
        &self,
        tenant: Option<&TenantId>,
        since: DateTime<Utc>,
        span: chrono::Duration,
    ) -> Result<Vec<catalog_core::GateSample>, StoreError> {
        gate_samples(&self.pool, tenant, since, span).await
    }

    async fn prune_signal_samples(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        prune_samples(&self.writer, before).await
    }
}
