//! The signals role on Postgres: the launch signals' facts counted in a few grouped
//! statements, source progress, the tracer's checks and the sampled history.

use std::collections::BTreeMap;

use catalog_core::{ItemId, PartitionProgress, TenantId};
use catalog_store::{
    assemble_facts, count, FactsQuery, FactsReport, JournalTail, SampledValue, SignalSample, StoreConfig, StoreError,
    StoredGap, TenantCounts, TraceCheck, UntracedRow,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use uuid::Uuid;

use crate::columns::column;
use crate::store_error;
use crate::PostgresStore;
use async_trait::async_trait;
use catalog_store::SignalStore;

/// The tenant id overall samples are kept under: not a valid tenant id, so never a tenant's.
const OVERALL: &str = "*";

/// The channel routes as two arrays: channel names, and the tenant each serves (NULL: all).
pub(crate) fn routes(config: &StoreConfig) -> (Vec<String>, Vec<Option<String>>) {
    let mut channels = Vec::new();
    let mut tenants = Vec::new();
    for route in &config.channels {
        match &route.tenants {
            None => {
                channels.push(route.name.clone());
                tenants.push(None);
            }
            Some(served) => {
                for tenant in served {
                    channels.push(route.name.clone());
                    tenants.push(Some(tenant.to_string()));
                }
            }
        }
    }
    (channels, tenants)
}

/// An item is untraced when its last check found a gap, or when it changed past the grace
/// and was not checked at that version (`$1`: the trace cutoff).
const UNTRACED: &str =
    "(c.gap IS NOT NULL OR ((c.item_id IS NULL OR c.checked_version < i.version) AND i.updated_at <= $1))";

pub(crate) async fn facts(pool: &PgPool, config: &StoreConfig, query: &FactsQuery) -> Result<FactsReport, StoreError> {
    let (channels, route_tenants) = routes(config);
    let trace_cutoff = query.now - query.trace_grace;
    let stale_cutoff = query.now - query.stale_grace;
    let mut counts: BTreeMap<String, TenantCounts> = BTreeMap::new();
    for tenant in
        sqlx::query_scalar::<_, String>("SELECT tenant_id FROM tenants").fetch_all(pool).await.map_err(store_error)?
    {
        counts.entry(tenant).or_default();
    }
    let rows = sqlx::query(&format!(
        "WITH routes (channel, tenant_id) AS (SELECT * FROM unnest($3::text[], $4::text[]))
         SELECT i.tenant_id,
                count(*) AS items,
                count(*) FILTER (WHERE i.updated_at < $2 AND EXISTS (
                    SELECT 1 FROM routes AS r
                    LEFT JOIN published_versions AS p ON p.item_id = i.item_id AND p.channel = r.channel
                    LEFT JOIN unlisted_versions AS s ON s.item_id = i.item_id AND s.channel = r.channel
                    WHERE (r.tenant_id IS NULL OR r.tenant_id = i.tenant_id)
                      AND GREATEST(coalesce(p.version, 0), coalesce(s.version, 0)) < i.version
                )) AS stale,
                count(*) FILTER (WHERE c.item_id IS NOT NULL OR i.updated_at <= $1) AS due,
                count(*) FILTER (WHERE {UNTRACED}) AS untraced
         FROM items AS i LEFT JOIN item_trace_checks AS c ON c.item_id = i.item_id
         WHERE i.version > 0
         GROUP BY i.tenant_id"
    ))
    .bind(trace_cutoff)
    .bind(stale_cutoff)
    .bind(&channels)
    .bind(&route_tenants)
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
         WHERE a.attempted_at >= $1 AND a.result NOT IN ('throttled', 'skipped')
         GROUP BY i.tenant_id",
    )
    .bind(query.now - query.publish_window)
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
                    c.gap_event_id, row_number() OVER (PARTITION BY i.tenant_id ORDER BY i.sku COLLATE \"C\") AS n
             FROM items AS i LEFT JOIN item_trace_checks AS c ON c.item_id = i.item_id
             WHERE i.version > 0 AND {UNTRACED}
         ) AS named WHERE n <= $2"
    ))
    .bind(trace_cutoff)
    .bind(i64::try_from(query.max_named).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let untraced = rows
        .iter()
        .map(|row| {
            Ok(UntracedRow {
                tenant: column(row, "tenant_id")?,
                item_id: ItemId(column(row, "item_id")?),
                sku: column(row, "sku")?,
                gap: StoredGap {
                    gap: column(row, "gap")?,
                    stored: column(row, "gap_stored")?,
                    rederived: column(row, "gap_rederived")?,
                    supplier: column(row, "gap_supplier")?,
                    event_id: column(row, "gap_event_id")?,
                },
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    assemble_facts(counts, untraced, progress(pool).await?, query.max_named)
}

async fn progress(pool: &PgPool) -> Result<Vec<PartitionProgress>, StoreError> {
    let rows = sqlx::query(
        r#"SELECT source, partition, reported_at, oldest_unapplied_at FROM source_progress
           ORDER BY source COLLATE "C", partition COLLATE "C""#,
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(PartitionProgress {
                source: column(row, "source")?,
                partition: column(row, "partition")?,
                reported_at: column(row, "reported_at")?,
                oldest_unapplied_at: column(row, "oldest_unapplied_at")?,
            })
        })
        .collect()
}

pub(crate) async fn report_progress(pool: &PgPool, progress: &[PartitionProgress]) -> Result<(), StoreError> {
    if progress.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = progress.iter().map(|p| p.source.as_str()).collect();
    let partitions: Vec<&str> = progress.iter().map(|p| p.partition.as_str()).collect();
    let reported: Vec<DateTime<Utc>> = progress.iter().map(|p| p.reported_at).collect();
    let oldest: Vec<Option<DateTime<Utc>>> = progress.iter().map(|p| p.oldest_unapplied_at).collect();
    sqlx::query(
        r#"INSERT INTO source_progress (source, partition, reported_at, oldest_unapplied_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS u(s, p, r, o)
           ORDER BY s COLLATE "C", p COLLATE "C"
           ON CONFLICT (source, partition) DO UPDATE
           SET reported_at = EXCLUDED.reported_at, oldest_unapplied_at = EXCLUDED.oldest_unapplied_at"#,
    )
    .bind(&sources)
    .bind(&partitions)
    .bind(&reported)
    .bind(&oldest)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub(crate) async fn forget_progress(pool: &PgPool, source: &str, partition: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM source_progress WHERE source = $1 AND partition = $2")
        .bind(source)
        .bind(partition)
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(())
}

fn limit(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn item_ids(rows: Vec<Uuid>) -> Vec<ItemId> {
    rows.into_iter().map(ItemId).collect()
}

pub(crate) async fn items_to_trace(pool: &PgPool, max: usize) -> Result<Vec<ItemId>, StoreError> {
    let rows: Vec<Uuid> = sqlx::query_scalar(
        "SELECT i.item_id FROM items AS i LEFT JOIN item_trace_checks AS c ON c.item_id = i.item_id
         WHERE i.version > 0 AND (c.item_id IS NULL OR c.checked_version < i.version OR c.gap = 'not_checked')
         ORDER BY i.updated_at, i.item_id LIMIT $1",
    )
    .bind(limit(max))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    Ok(item_ids(rows))
}

pub(crate) async fn sweep_items(pool: &PgPool, after: Option<ItemId>, max: usize) -> Result<Vec<ItemId>, StoreError> {
    let rows: Vec<Uuid> =
        sqlx::query_scalar("SELECT item_id FROM items WHERE version > 0 AND item_id > $1 ORDER BY item_id LIMIT $2")
            .bind(after.map_or(Uuid::nil(), |id| id.0))
            .bind(limit(max))
            .fetch_all(pool)
            .await
            .map_err(store_error)?;
    Ok(item_ids(rows))
}

pub(crate) async fn mark_unreadable(pool: &PgPool, items: &[ItemId]) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = items.iter().map(|item| item.0).collect();
    sqlx::query(
        "UPDATE item_trace_checks SET gap = 'not_checked', gap_stored = NULL, gap_rederived = NULL,
                gap_supplier = NULL, gap_event_id = NULL
         WHERE item_id = ANY($1)",
    )
    .bind(&ids)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub(crate) async fn record_trace_checks(pool: &PgPool, checks: &[TraceCheck]) -> Result<(), StoreError> {
    if checks.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&TraceCheck> = checks.iter().collect();
    sorted.sort_by_key(|check| check.item_id.0);
    sorted.dedup_by_key(|check| check.item_id.0);
    let gaps: Vec<StoredGap> = sorted.iter().map(|check| StoredGap::of(check.gap.as_ref())).collect();
    let ids: Vec<Uuid> = sorted.iter().map(|check| check.item_id.0).collect();
    let versions: Vec<i64> = sorted.iter().map(|check| i64::try_from(check.version).unwrap_or(i64::MAX)).collect();
    let at: Vec<DateTime<Utc>> = sorted.iter().map(|check| check.checked_at).collect();
    sqlx::query(
        "INSERT INTO item_trace_checks (item_id, tenant_id, checked_version, checked_at, gap, gap_stored,
                                        gap_rederived, gap_supplier, gap_event_id)
         SELECT u.item_id, i.tenant_id, u.version, u.at, u.gap, u.stored, u.rederived, u.supplier, u.event_id
         FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::bigint[], $6::bigint[],
                     $7::text[], $8::uuid[]) AS u(item_id, version, at, gap, stored, rederived, supplier, event_id)
         JOIN items AS i ON i.item_id = u.item_id
         ORDER BY u.item_id
         ON CONFLICT (item_id) DO UPDATE SET checked_version = EXCLUDED.checked_version,
             checked_at = EXCLUDED.checked_at, gap = EXCLUDED.gap, gap_stored = EXCLUDED.gap_stored,
             gap_rederived = EXCLUDED.gap_rederived, gap_supplier = EXCLUDED.gap_supplier,
             gap_event_id = EXCLUDED.gap_event_id
         WHERE item_trace_checks.checked_version <= EXCLUDED.checked_version",
    )
    .bind(&ids)
    .bind(&versions)
    .bind(&at)
    .bind(gaps.iter().map(|gap| gap.gap.clone()).collect::<Vec<_>>())
    .bind(gaps.iter().map(|gap| gap.stored).collect::<Vec<_>>())
    .bind(gaps.iter().map(|gap| gap.rederived).collect::<Vec<_>>())
    .bind(gaps.iter().map(|gap| gap.supplier.clone()).collect::<Vec<_>>())
    .bind(gaps.iter().map(|gap| gap.event_id).collect::<Vec<_>>())
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

fn scope(tenant: Option<&TenantId>) -> String {
    tenant.map_or_else(|| OVERALL.to_owned(), |tenant| tenant.to_string())
}

pub(crate) async fn record_samples(pool: &PgPool, samples: &[SignalSample]) -> Result<(), StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    for sample in samples {
        sqlx::query(
            "INSERT INTO signal_samples (tenant_id, at, green, stale_items, stale_items_green, queue_lag,
                 queue_lag_green, publish_errors, publish_errors_green, trace_coverage, trace_coverage_green)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(scope(sample.tenant_id.as_ref()))
        .bind(sample.at)
        .bind(sample.green)
        .bind(sample.stale_items.value)
        .bind(sample.stale_items.green)
        .bind(sample.queue_lag.value)
        .bind(sample.queue_lag.green)
        .bind(sample.publish_errors.value)
        .bind(sample.publish_errors.green)
        .bind(sample.trace_coverage.value)
        .bind(sample.trace_coverage.green)
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
    }
    transaction.commit().await.map_err(store_error)
}

fn sample(row: &PgRow, tenant: Option<&TenantId>) -> Result<SignalSample, StoreError> {
    let value = |name: &str| -> Result<SampledValue, StoreError> {
        Ok(SampledValue { value: column(row, name)?, green: column(row, &format!("{name}_green"))? })
    };
    Ok(SignalSample {
        tenant_id: tenant.cloned(),
        at: column(row, "at")?,
        green: column(row, "green")?,
        stale_items: value("stale_items")?,
        queue_lag: value("queue_lag")?,
        publish_errors: value("publish_errors")?,
        trace_coverage: value("trace_coverage")?,
    })
}

pub(crate) async fn samples(
    pool: &PgPool,
    tenant: Option<&TenantId>,
    since: DateTime<Utc>,
    max: usize,
) -> Result<Vec<SignalSample>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM (SELECT * FROM signal_samples WHERE tenant_id = $1 AND at >= $2
                        ORDER BY at DESC, sample_id DESC LIMIT $3) AS newest
         ORDER BY at, sample_id",
    )
    .bind(scope(tenant))
    .bind(since)
    .bind(limit(max))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter().map(|row| sample(row, tenant)).collect()
}

pub(crate) async fn gate_samples(
    pool: &PgPool,
    tenant: Option<&TenantId>,
    since: DateTime<Utc>,
    span: chrono::Duration,
) -> Result<Vec<catalog_core::GateSample>, StoreError> {
    let rows = sqlx::query(
        "SELECT min(at) AS first_at, max(at) AS at, bool_and(stale_items_green) AS stale_items_green,
                bool_and(queue_lag_green) AS queue_lag_green,
                bool_and(publish_errors_green) AS publish_errors_green,
                bool_and(trace_coverage_green) AS trace_coverage_green
         FROM signal_samples WHERE tenant_id = $1 AND at >= $2
         GROUP BY date_bin(make_interval(secs => $3), at, $2)
         ORDER BY 1",
    )
    .bind(scope(tenant))
    .bind(since)
    .bind(span_seconds(span))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut samples = Vec::with_capacity(rows.len() * 2);
    for row in &rows {
        samples.extend(catalog_store::gate_samples_of_span(column(row, "first_at")?, column(row, "at")?, |name| {
            column(row, name)
        })?);
    }
    Ok(samples)
}

/// A span in seconds, at least a millisecond.
fn span_seconds(span: chrono::Duration) -> f64 {
    (span.num_milliseconds().max(1) as f64) / 1_000.0
}

pub(crate) async fn prune_samples(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM signal_samples WHERE at < $1")
        .bind(before)
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(done.rows_affected())
}

#[async_trait]
impl SignalStore for PostgresStore {
    async fn signal_facts(&self, query: &FactsQuery) -> Result<FactsReport, StoreError> {
        crate::with_deadline(self.deadline, "signal_facts", facts(&self.pool, &self.config, query)).await
    }

    async fn report_progress(&self, progress: &[PartitionProgress]) -> Result<(), StoreError> {
        crate::with_deadline(self.deadline, "report_progress", report_progress(&self.pool, progress)).await
    }

    async fn forget_progress(&self, source: &str, partition: &str) -> Result<(), StoreError> {
        crate::with_deadline(self.deadline, "forget_progress", forget_progress(&self.pool, source, partition)).await
    }

    async fn items_to_trace(&self, limit: usize) -> Result<Vec<ItemId>, StoreError> {
        crate::with_deadline(self.deadline, "items_to_trace", items_to_trace(&self.pool, limit)).await
    }

    async fn journal_tail(&self, item_id: ItemId, newest: usize) -> Result<Option<JournalTail>, StoreError> {
        crate::with_deadline(self.deadline, "journal_tail", crate::reads::journal_tail(&self.pool, item_id, newest))
            .await
    }

    async fn sweep_items(&self, after: Option<ItemId>, limit: usize) -> Result<Vec<ItemId>, StoreError> {
        crate::with_deadline(self.deadline, "sweep_items", sweep_items(&self.pool, after, limit)).await
    }

    async fn record_trace_checks(&self, checks: &[TraceCheck]) -> Result<(), StoreError> {
        crate::with_deadline(self.deadline, "record_trace_checks", record_trace_checks(&self.pool, checks)).await
    }

    async fn mark_unreadable(&self, items: &[ItemId]) -> Result<(), StoreError> {
        crate::with_deadline(self.deadline, "mark_unreadable", mark_unreadable(&self.pool, items)).await
    }

    async fn record_signal_samples(&self, samples: &[SignalSample]) -> Result<(), StoreError> {
        crate::with_deadline(self.deadline, "record_signal_samples", record_samples(&self.pool, samples)).await
    }

    async fn signal_samples(
        &self,
        tenant: Option<&TenantId>,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SignalSample>, StoreError> {
        crate::with_deadline(self.deadline, "signal_samples", samples(&self.pool, tenant, since, limit)).await
    }

    async fn gate_samples(
        &self,
        tenant: Option<&TenantId>,
        since: DateTime<Utc>,
        span: chrono::Duration,
    ) -> Result<Vec<catalog_core::GateSample>, StoreError> {
        crate::with_deadline(self.deadline, "gate_samples", gate_samples(&self.pool, tenant, since, span)).await
    }

    async fn prune_signal_samples(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        crate::with_deadline(self.deadline, "prune_signal_samples", prune_samples(&self.pool, before)).await
    }
}
