//! Journal retention on Postgres (decision 0019): the journal is partitioned by the day (UTC)
//! each row was received. Partitions are created ahead of need; a partition past the
//! retention is archived row by row through an [`ArchiveSink`], detached `CONCURRENTLY` (a
//! running worker's batches never wait on it) and dropped. A partition that still holds held
//! events is kept. Claims (`event_claims`) are pruned apart, in bounded chunks.

use async_trait::async_trait;
use catalog_store::{
    ArchiveSink, DroppedSegment, JournalHorizon, KeptSegment, RetentionPolicy, RetentionReport, RetentionStore,
    StoreError,
};
use chrono::{DateTime, Days, NaiveTime, Utc};
use sqlx::PgPool;

use crate::columns::{journal_entries, journal_row, JOURNAL_COLUMNS};
use crate::{store_error, PostgresStore};

#[async_trait]
impl RetentionStore for PostgresStore {
    async fn prepare_journal(&self, until: DateTime<Utc>) -> Result<u32, StoreError> {
        prepare(&self.pool, Utc::now(), until).await
    }

    async fn expire_journal(
        &self,
        policy: &RetentionPolicy,
        sink: &mut dyn ArchiveSink,
    ) -> Result<RetentionReport, StoreError> {
        expire(&self.pool, policy, sink).await
    }

    async fn journal_horizon(&self) -> Result<Option<JournalHorizon>, StoreError> {
        horizon(&self.pool).await
    }
}

/// A partition of `events` and the receive times it holds: `[from, until)`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Partition {
    pub(crate) name: String,
    /// `None` for the partition that starts at `MINVALUE` (the rows journaled before the
    /// journal was partitioned).
    pub(crate) from: Option<DateTime<Utc>>,
    pub(crate) until: DateTime<Utc>,
}

/// Every partition of the journal, oldest first, with its bounds as Postgres reads them.
const PARTITIONS: &str = r#"
    SELECT c.relname::text AS name,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']*)''\)'))[1]::timestamptz AS "from",
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']*)''\)'))[1]::timestamptz AS until
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'events'::regclass
    ORDER BY until"#;

pub(crate) async fn partitions(pool: &PgPool) -> Result<Vec<Partition>, StoreError> {
    sqlx::query_as(PARTITIONS).fetch_all(pool).await.map_err(store_error)
}

/// The partition name of the day starting at `day`.
fn day_name(day: DateTime<Utc>) -> String {
    format!("events_{}", day.format("%Y%m%d"))
}

fn start_of_day(time: DateTime<Utc>) -> DateTime<Utc> {
    time.date_naive().and_time(NaiveTime::MIN).and_utc()
}

/// A partition name from the catalog, checked before it is put into a statement.
fn quoted(name: &str) -> Result<String, StoreError> {
    if name.starts_with("events_")
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
    {
        Ok(format!("\"{name}\""))
    } else {
        Err(StoreError::Corrupt(format!("unexpected journal partition name {name:?}")))
    }
}

/// Creates a partition for every day from `from`'s through `until`'s that no partition
/// covers. Returns how many it created.
pub(crate) async fn prepare(pool: &PgPool, from: DateTime<Utc>, until: DateTime<Utc>) -> Result<u32, StoreError> {
    let existing = partitions(pool).await?;
    let covered = |day: DateTime<Utc>| {
        existing.iter().any(|partition| partition.from.is_none_or(|from| from <= day) && day < partition.until)
    };
    let mut created = 0;
    let mut day = start_of_day(from);
    while day <= until {
        let next = day.checked_add_days(Days::new(1)).ok_or_else(|| StoreError::Database("date overflow".into()))?;
        if !covered(day) {
            let statement = format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ('{}') TO ('{}')",
                quoted(&day_name(day))?,
                day.to_rfc3339(),
                next.to_rfc3339()
            );
            match sqlx::raw_sql(&statement).execute(pool).await {
                Ok(_) => created += 1,
                // Another process created it (or one overlapping it) first.
                Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P17") => {}
                Err(error) => return Err(store_error(error)),
            }
        }
        day = next;
    }
    Ok(created)
}

pub(crate) async fn expire(
    pool: &PgPool,
    policy: &RetentionPolicy,
    sink: &mut dyn ArchiveSink,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    drop_leftovers(pool).await?;
    for partition in partitions(pool).await? {
        if partition.until > policy.journal_cutoff {
            break;
        }
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM event_claims WHERE held AND received_at < $2 AND ($1::timestamptz IS NULL OR received_at >= $1)",
        )
        .bind(partition.from)
        .bind(partition.until)
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
        if held > 0 {
            report.kept.push(KeptSegment { name: partition.name, held_events: held as u64 });
            continue;
        }
        let (rows, archive) = archive(pool, &partition, policy.chunk, sink).await?;
        let table = quoted(&partition.name)?;
        detach(pool, &table).await?;
        sqlx::raw_sql(&format!("DROP TABLE {table}")).execute(pool).await.map_err(store_error)?;
        sqlx::query(
            "INSERT INTO journal_retention (kept_since, archive, updated_at) VALUES ($1, $2, now())
             ON CONFLICT (only_row) DO UPDATE SET kept_since = greatest(journal_retention.kept_since, EXCLUDED.kept_since),
                                                  archive = EXCLUDED.archive, updated_at = now()",
        )
        .bind(partition.until)
        .bind(&archive)
        .execute(pool)
        .await
        .map_err(store_error)?;
        tracing::info!(partition = %partition.name, rows, %archive, "journal partition archived and dropped");
        report.dropped.push(DroppedSegment { name: partition.name, rows, archive });
    }
    report.claims_pruned = prune_claims(pool, policy).await?;
    Ok(report)
}

/// Writes every row of `partition` to the sink, in journal order, and finishes its archive.
async fn archive(
    pool: &PgPool,
    partition: &Partition,
    chunk: usize,
    sink: &mut dyn ArchiveSink,
) -> Result<(u64, String), StoreError> {
    let table = quoted(&partition.name)?;
    let io = |error: std::io::Error| StoreError::Database(format!("archiving {}: {error}", partition.name));
    sink.begin(&partition.name).map_err(io)?;
    let mut after = i64::MIN;
    let mut rows = 0;
    loop {
        let stored = sqlx::query(&format!(
            "SELECT {JOURNAL_COLUMNS} FROM {table} WHERE journal_id > $1 ORDER BY journal_id LIMIT $2"
        ))
        .bind(after)
        .bind(chunk.max(1) as i64)
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
        let Some(last) = stored.last() else { break };
        after = journal_row(last)?.journal_id;
        let entries = journal_entries(&stored)?;
        sink.write(&entries).map_err(io)?;
        rows += entries.len() as u64;
    }
    let archive = sink.finish().map_err(io)?;
    Ok((rows, archive))
}

/// Detaches a partition without blocking writers of the others. A detach interrupted earlier
/// (the process died) left the partition pending: that one is finalized.
async fn detach(pool: &PgPool, table: &str) -> Result<(), StoreError> {
    match sqlx::raw_sql(&format!("ALTER TABLE events DETACH PARTITION {table} CONCURRENTLY")).execute(pool).await {
        Ok(_) => Ok(()),
        // object_not_in_prerequisite_state: a concurrent detach of it is pending.
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("55000") => {
            sqlx::raw_sql(&format!("ALTER TABLE events DETACH PARTITION {table} FINALIZE"))
                .execute(pool)
                .await
                .map(drop)
                .map_err(store_error)
        }
        Err(error) => Err(store_error(error)),
    }
}

/// Day tables detached but not dropped (the process died in between): their rows were
/// archived before the detach, so they go.
async fn drop_leftovers(pool: &PgPool) -> Result<(), StoreError> {
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class
         WHERE relkind = 'r' AND NOT relispartition AND relname ~ '^events_[0-9]{8}$'",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    for name in leftovers {
        tracing::warn!(table = %name, "dropping a journal partition detached earlier (archived before its detach)");
        sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {}", quoted(&name)?)).execute(pool).await.map_err(store_error)?;
    }
    Ok(())
}

/// Forgets claims received before the cutoff, a chunk per statement; held ones stay.
async fn prune_claims(pool: &PgPool, policy: &RetentionPolicy) -> Result<u64, StoreError> {
    let mut pruned = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM event_claims WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM event_claims WHERE received_at < $1 AND NOT held LIMIT $2))",
        )
        .bind(policy.claim_cutoff)
        .bind(policy.chunk.max(1) as i64)
        .execute(pool)
        .await
        .map_err(store_error)?
        .rows_affected();
        pruned += deleted;
        if deleted == 0 {
            return Ok(pruned);
        }
    }
}

pub(crate) async fn horizon(pool: &PgPool) -> Result<Option<JournalHorizon>, StoreError> {
    let row: Option<(Option<DateTime<Utc>>, Option<String>)> =
        sqlx::query_as("SELECT kept_since, archive FROM journal_retention")
            .fetch_optional(pool)
            .await
            .map_err(store_error)?;
    Ok(row.and_then(|(kept_since, archive)| kept_since.map(|kept_since| JournalHorizon { kept_since, archive })))
}
