//! Journal retention on Postgres (decision 0019): the journal is partitioned by the day (UTC)
//! each row was received. Partitions are created ahead of need; a partition past the
//! retention is detached `CONCURRENTLY` (a running worker's batches never wait on it), so no
//! batch writes it any more, then archived row by row through an [`ArchiveSink`] and dropped.
//! A partition that still holds held events is kept (attached again if one was written while
//! it was detached). Claims (`event_claims`) are pruned apart, in bounded chunks. Publish
//! attempts are partitioned by the day they were made and their days past the retention are
//! dropped the same way, without an archive; drifts are deleted in chunks (decision 0030).

use async_trait::async_trait;
use catalog_store::{
    ArchiveSink, DroppedSegment, JournalHorizon, KeptSegment, RetentionPolicy, RetentionReport, RetentionStore,
    StoreError,
};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::columns::{journal_entries, journal_row, saturating_i64, JOURNAL_COLUMNS};
use crate::{store_error, PostgresStore};

mod daily;

pub(crate) use daily::{prepare, Partition, ATTEMPTS, JOURNAL};

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

/// The session advisory lock one retention pass at a time holds: every worker runs
/// retention, and two passes archiving and dropping one day at once would each archive it and
/// one would fail its drop.
pub const RETENTION_LOCK: i64 = 0x6361_7461_6c6f_6701;

/// One retention pass, unless another process's pass holds [`RETENTION_LOCK`]: then nothing,
/// said in the report. The lock is a session lock on one connection of the pool, released at
/// the end, or by Postgres if this process dies.
pub(crate) async fn expire(
    pool: &PgPool,
    policy: &RetentionPolicy,
    sink: &mut dyn ArchiveSink,
) -> Result<RetentionReport, StoreError> {
    let mut lock = pool.acquire().await.map_err(store_error)?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(RETENTION_LOCK)
        .fetch_one(&mut *lock)
        .await
        .map_err(store_error)?;
    if !locked {
        tracing::info!("another worker's retention pass is running; this one does nothing");
        return Ok(RetentionReport { another_pass_running: true, ..RetentionReport::default() });
    }
    let report = expire_locked(pool, policy, sink).await;
    let released: Result<bool, _> =
        sqlx::query_scalar("SELECT pg_advisory_unlock($1)").bind(RETENTION_LOCK).fetch_one(&mut *lock).await;
    if !matches!(released, Ok(true)) {
        // The connection is closed instead of going back: Postgres releases the lock with it.
        lock.close_on_drop();
        tracing::warn!(?released, "releasing the retention lock failed; its connection is closed instead");
    }
    report
}

async fn expire_locked(
    pool: &PgPool,
    policy: &RetentionPolicy,
    sink: &mut dyn ArchiveSink,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    // A day detached by a pass that died before dropping it may not be archived whole.
    for leftover in JOURNAL.leftovers(pool).await? {
        if stop_here(sink, &mut report) {
            return Ok(report);
        }
        tracing::warn!(table = %leftover.name, "archiving a journal day detached by an earlier pass");
        expire_detached(pool, leftover, policy.chunk, sink, &mut report).await?;
    }
    // A detach cut off (a statement timeout, a crash) is finished first, whatever its day holds
    // (`expire_detached` attaches it again for a held row): left pending, it hid its rows from
    // every read, held ones included, and PostgreSQL refuses any other detach of the table
    // while one is pending, so every later day stayed.
    for pending in JOURNAL.partitions(pool).await?.into_iter().filter(|partition| partition.detaching) {
        if stop_here(sink, &mut report) {
            return Ok(report);
        }
        tracing::warn!(partition = %pending.name, "finishing a journal day's detach left pending");
        JOURNAL.detach(pool, &pending.name).await?;
        expire_detached(pool, pending, policy.chunk, sink, &mut report).await?;
    }
    for partition in JOURNAL.partitions(pool).await? {
        if partition.until > policy.journal_cutoff {
            break;
        }
        if stop_here(sink, &mut report) {
            return Ok(report);
        }
        if report.kept.iter().any(|kept| kept.name == partition.name) {
            continue; // a leftover attached again above
        }
        if partition.detaching {
            continue; // finished above
        }
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM event_claims WHERE held AND received_at < $2 AND ($1::timestamptz IS NULL OR received_at >= $1)",
        )
        .bind(partition.from)
        .bind(partition.until)
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
        // A held row whose claim is gone (pruned before its fix, migration 0028) is held all
        // the same: the rows decide, the claims find them cheaply.
        let held = if held > 0 { held } else { held_rows(pool, &partition.name).await? };
        if held > 0 {
            report.kept.push(KeptSegment { name: partition.name, held_events: held as u64 });
            continue;
        }
        // Detached first: a redelivery counted on one of its rows, or a replayed event received
        // that day, lands in the journal (a row of today's) or fails, never in the archived
        // partition after its rows were read.
        JOURNAL.detach(pool, &partition.name).await?;
        expire_detached(pool, partition, policy.chunk, sink, &mut report).await?;
    }
    // A claim goes no sooner than its journal row (decision 0019): the journal is dropped in
    // whole days, so the claims of a day still there below the cutoff (the one holding it, a
    // day kept for its held events, the partition from before partitioning) stay with it, and
    // only those. A replay of such a day, or a delivery with its rows' own receive time, would
    // otherwise be decided anew: a folded adjustment twice.
    let kept: Vec<(Option<DateTime<Utc>>, DateTime<Utc>)> = JOURNAL
        .partitions(pool)
        .await?
        .into_iter()
        .filter(|day| day.from.is_none_or(|from| from < policy.claim_cutoff))
        .map(|day| (day.from, day.until))
        .collect();
    let stopping = || sink.stopping();
    // A claim prune that fails (a statement timeout on a large table) does not keep the steps
    // after it from running, whose tables would grow with it, every pass: its error is the
    // pass's once they ran.
    let claims = prune_claims(pool, policy.claim_cutoff, &kept, policy.chunk, &stopping).await;
    report.claims_pruned = *claims.as_ref().unwrap_or(&0);
    if !stopping() {
        report.attempt_days_dropped = expire_attempts(pool, policy).await?;
        report.drifts_pruned = prune_drifts(pool, policy, &stopping).await?;
        report.dead_letters_pruned =
            chunked_delete(pool, RESOLVED_DEAD_LETTERS, policy.journal_cutoff, policy.chunk, &stopping).await?;
    }
    if !stopping() {
        report.feed_windows_compacted = crate::feed_windows::compact_feed_windows(pool, policy.journal_cutoff).await?;
    }
    report.stopped = stopping();
    claims?;
    Ok(report)
}

/// Whether the pass stops before its next segment ([`ArchiveSink::stopping`]), said in the
/// report.
fn stop_here(sink: &dyn ArchiveSink, report: &mut RetentionReport) -> bool {
    report.stopped = sink.stopping();
    report.stopped
}

/// A detached journal day: archived and dropped; or, when it holds a held event (written
/// after the check before its detach), attached again and kept.
async fn expire_detached(
    pool: &PgPool,
    partition: Partition,
    chunk: usize,
    sink: &mut dyn ArchiveSink,
    report: &mut RetentionReport,
) -> Result<(), StoreError> {
    let held = held_rows(pool, &partition.name).await?;
    if held > 0 {
        JOURNAL.attach(pool, &partition).await?;
        tracing::warn!(partition = %partition.name, held, "a held event was written to a day being expired: kept");
        report.kept.push(KeptSegment { name: partition.name, held_events: held as u64 });
        return Ok(());
    }
    let (rows, archive) = match archive(pool, &partition, chunk, sink).await {
        Ok(Some(archived)) => archived,
        // Stopped before its archive was finished: the day stays detached, past the
        // retention anyway, and the next pass archives it again whole (as a leftover).
        Ok(None) => {
            report.stopped = true;
            return Ok(());
        }
        Err(error) => {
            // Nothing is dropped, and the day is read in the journal again until a pass
            // archives it.
            JOURNAL.attach(pool, &partition).await?;
            return Err(error);
        }
    };
    // The horizon moves before the day is dropped: dropped first, a failure in between left the
    // day neither detached nor recorded, and the horizon went back (no retention note in a
    // trace, replay taking a `--since` the journal no longer holds, the tracer naming items
    // untraced) until the next day's drop.
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
    JOURNAL.drop(pool, &partition.name).await?;
    tracing::info!(partition = %partition.name, rows, %archive, "journal partition archived and dropped");
    report.dropped.push(DroppedSegment { name: partition.name, rows, archive });
    Ok(())
}

/// How many held rows a journal day (attached or not) holds.
async fn held_rows(pool: &PgPool, name: &str) -> Result<i64, StoreError> {
    let table = JOURNAL.quoted(name)?;
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE outcome = 'held'"))
        .fetch_one(pool)
        .await
        .map_err(store_error)
}

/// Drops every day of publish attempts made before the cutoff, without an archive (decision
/// 0030), and says so for trace. Returns how many days it dropped.
async fn expire_attempts(pool: &PgPool, policy: &RetentionPolicy) -> Result<u64, StoreError> {
    // A day detached by a pass that died before dropping it: attempts are not archived.
    for leftover in ATTEMPTS.leftovers(pool).await? {
        tracing::warn!(table = %leftover.name, "dropping a publish attempts day detached earlier");
        attempts_kept_since(pool, leftover.until).await?;
        ATTEMPTS.drop(pool, &leftover.name).await?;
    }
    let mut dropped = 0;
    // A detach cut off is finished first: PostgreSQL refuses another while it is pending.
    for pending in ATTEMPTS.partitions(pool).await?.into_iter().filter(|partition| partition.detaching) {
        tracing::warn!(partition = %pending.name, "finishing a publish attempts day's detach left pending");
        attempts_kept_since(pool, pending.until).await?;
        ATTEMPTS.detach_and_drop(pool, &pending.name).await?;
        dropped += 1;
    }
    for partition in ATTEMPTS.partitions(pool).await? {
        if partition.until > policy.journal_cutoff {
            break;
        }
        // Said before the day goes, as for the journal.
        attempts_kept_since(pool, partition.until).await?;
        ATTEMPTS.detach_and_drop(pool, &partition.name).await?;
        tracing::info!(partition = %partition.name, "publish attempts partition dropped");
        dropped += 1;
    }
    Ok(dropped)
}

/// Records that publish attempts made before `until` are no longer kept.
async fn attempts_kept_since(pool: &PgPool, until: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO journal_retention (attempts_kept_since, updated_at) VALUES ($1, now())
         ON CONFLICT (only_row) DO UPDATE
         SET attempts_kept_since = greatest(journal_retention.attempts_kept_since, EXCLUDED.attempts_kept_since),
             updated_at = now()",
    )
    .bind(until)
    .execute(pool)
    .await
    .map_err(store_error)
    .map(drop)
}

/// Deletes a chunk of reconciliation's drifts, then of full refreshes' feed drifts.
const DRIFT_DELETES: [&str; 2] = [
    "DELETE FROM drifts WHERE drift_id = ANY(ARRAY(SELECT drift_id FROM drifts WHERE detected_at < $1 LIMIT $2))",
    "DELETE FROM feed_drifts WHERE feed_drift_id = ANY(ARRAY(
         SELECT feed_drift_id FROM feed_drifts WHERE detected_at < $1 LIMIT $2))",
];

/// Deletes a chunk of the dead letters resolved before the cutoff (decision 0031); an open
/// one is never deleted, however old.
const RESOLVED_DEAD_LETTERS: &str = "DELETE FROM dead_letters WHERE dead_letter_id = ANY(ARRAY(
     SELECT dead_letter_id FROM dead_letters WHERE resolved_at < $1 LIMIT $2))";

/// Forgets drifts (reconciliation's and full refreshes') detected before the cutoff, a chunk
/// per statement.
async fn prune_drifts(
    pool: &PgPool,
    policy: &RetentionPolicy,
    stopping: &(dyn Fn() -> bool + Sync),
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for statement in DRIFT_DELETES {
        deleted += chunked_delete(pool, statement, policy.journal_cutoff, policy.chunk, stopping).await?;
    }
    Ok(deleted)
}

/// Runs a `DELETE` of at most `$2` rows older than `$1` until it deletes none.
async fn chunked_delete(
    pool: &PgPool,
    statement: &str,
    cutoff: DateTime<Utc>,
    chunk: usize,
    stopping: &(dyn Fn() -> bool + Sync),
) -> Result<u64, StoreError> {
    until_none_deleted(pool, stopping, || sqlx::query(statement).bind(cutoff).bind(saturating_i64(chunk.max(1)))).await
}

/// Runs the `DELETE` that `statement` makes, a chunk at a time, until it deletes none or the
/// pass is to stop.
async fn until_none_deleted<'q>(
    pool: &PgPool,
    stopping: &(dyn Fn() -> bool + Sync),
    statement: impl Fn() -> crate::recording::Query<'q>,
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    loop {
        if stopping() {
            return Ok(deleted);
        }
        let done = statement().execute(pool).await.map_err(store_error)?.rows_affected();
        deleted += done;
        if done == 0 {
            return Ok(deleted);
        }
    }
}

/// Writes every row of `partition` to the sink, in journal order, and finishes its archive;
/// `None` when the sink says to stop first (the archive unfinished).
async fn archive(
    pool: &PgPool,
    partition: &Partition,
    chunk: usize,
    sink: &mut dyn ArchiveSink,
) -> Result<Option<(u64, String)>, StoreError> {
    let table = JOURNAL.quoted(&partition.name)?;
    let io = |error: std::io::Error| StoreError::Database(format!("archiving {}: {error}", partition.name));
    sink.begin(&partition.name).map_err(io)?;
    let mut after = i64::MIN;
    let mut rows = 0;
    loop {
        if sink.stopping() {
            return Ok(None);
        }
        let stored = sqlx::query(&format!(
            "SELECT {JOURNAL_COLUMNS} FROM {table} WHERE journal_id > $1 ORDER BY journal_id LIMIT $2"
        ))
        .bind(after)
        .bind(saturating_i64(chunk.max(1)))
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
    Ok(Some((rows, archive)))
}

/// Forgets claims whose retention started before `cutoff` (the later of their receipt and
/// their event's own time), a chunk per statement, but none received within a journal day
/// still there (`kept`: from, `None` for MINVALUE, and until, in order); held ones stay.
/// Each stretch between kept days is deleted apart, so no chunk walks a kept day's claims.
async fn prune_claims(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    kept: &[(Option<DateTime<Utc>>, DateTime<Utc>)],
    chunk: usize,
    stopping: &(dyn Fn() -> bool + Sync),
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for (from, until) in stretches_between(cutoff, kept) {
        deleted += until_none_deleted(pool, stopping, || {
            sqlx::query(
                "DELETE FROM event_claims WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM event_claims
                     WHERE received_at < $1 AND ($3::timestamptz IS NULL OR received_at >= $3)
                       AND (kept_from IS NULL OR kept_from < $4) AND NOT held LIMIT $2))",
            )
            .bind(until)
            .bind(saturating_i64(chunk.max(1)))
            .bind(from)
            .bind(cutoff)
        })
        .await?;
    }
    Ok(deleted)
}

/// The stretches of receipt time before `cutoff` that no range of `kept` (in order of start,
/// `None` the earliest) covers: from (`None`, the beginning of time) and until.
fn stretches_between(
    cutoff: DateTime<Utc>,
    kept: &[(Option<DateTime<Utc>>, DateTime<Utc>)],
) -> Vec<(Option<DateTime<Utc>>, DateTime<Utc>)> {
    let mut stretches = Vec::new();
    let mut from: Option<DateTime<Utc>> = None;
    for (kept_from, kept_until) in kept {
        if let Some(kept_from) = kept_from {
            let until = (*kept_from).min(cutoff);
            if from.is_none_or(|from| from < until) {
                stretches.push((from, until));
            }
        }
        from = Some(from.map_or(*kept_until, |from| from.max(*kept_until)));
    }
    if from.is_none_or(|from| from < cutoff) {
        stretches.push((from, cutoff));
    }
    stretches
}

/// `journal_retention`'s `kept_since`, `archive` and `attempts_kept_since`.
type HorizonRow = (Option<DateTime<Utc>>, Option<String>, Option<DateTime<Utc>>);

pub(crate) async fn horizon(pool: &PgPool) -> Result<Option<JournalHorizon>, StoreError> {
    let row: Option<HorizonRow> =
        sqlx::query_as("SELECT kept_since, archive, attempts_kept_since FROM journal_retention")
            .fetch_optional(pool)
            .await
            .map_err(store_error)?;
    let (kept_since, archive, attempts_kept_since) = row.unwrap_or((None, None, None));
    // A day detached for its archive is no longer read: the journal reaches back to its end
    // already (the tracer makes up what it held, replay refuses it), until it is attached again.
    let detached = JOURNAL
        .leftovers(pool)
        .await?
        .into_iter()
        .chain(JOURNAL.partitions(pool).await?.into_iter().filter(|partition| partition.detaching))
        .map(|partition| partition.until)
        .max();
    let kept_since = kept_since.max(detached).filter(|kept_since| *kept_since > DateTime::<Utc>::MIN_UTC);
    Ok((kept_since.is_some() || attempts_kept_since.is_some()).then_some(JournalHorizon {
        kept_since,
        archive,
        attempts_kept_since,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    #[test]
    fn claims_are_pruned_only_between_the_days_still_there() {
        let cutoff = at("2026-06-10T10:00:00Z");
        let day =
            |d: u32| (Some(at(&format!("2026-06-{d:02}T00:00:00Z"))), at(&format!("2026-06-{:02}T00:00:00Z", d + 1)));
        // The day holding the cutoff alone: everything before it.
        assert_eq!(stretches_between(cutoff, &[day(10)]), [(None, at("2026-06-10T00:00:00Z"))]);
        // A day kept for held events on the 3rd, and the 10th.
        assert_eq!(
            stretches_between(cutoff, &[day(3), day(10)]),
            [(None, at("2026-06-03T00:00:00Z")), (Some(at("2026-06-04T00:00:00Z")), at("2026-06-10T00:00:00Z"))]
        );
        // The partition from before partitioning, until the 5th, and nothing else below the cutoff.
        let before = (None, at("2026-06-05T00:00:00Z"));
        assert_eq!(stretches_between(cutoff, &[before]), [(Some(at("2026-06-05T00:00:00Z")), cutoff)]);
        // Nothing kept: all before the cutoff.
        assert_eq!(stretches_between(cutoff, &[]), [(None, cutoff)]);
    }
}
