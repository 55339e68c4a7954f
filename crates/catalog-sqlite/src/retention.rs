//! Journal retention on SQLite (decision 0019): rows received before the cutoff are archived
//! a day at a time through an [`ArchiveSink`], then deleted in bounded chunks, one writer
//! transaction each, so a running worker's batches wait at most one chunk. A deleted decided
//! row's claim moves to `event_claims`; held rows stay (pending work). Publish attempts and
//! drifts past the retention are deleted the same way, in chunks, without an archive
//! (decision 0030).

use async_trait::async_trait;
use catalog_store::{
    ArchiveSink, DroppedSegment, JournalHorizon, KeptSegment, RetentionPolicy, RetentionReport, RetentionStore,
    StoreError,
};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rusqlite::params;
use sqlx::SqlitePool;

use crate::columns::{journal_row, micros, saturating_i64, JOURNAL_COLUMNS};
use crate::error::{store_error, write_error};
use crate::writer::Writer;
use crate::SqliteStore;

#[async_trait]
impl RetentionStore for SqliteStore {
    /// SQLite's journal is one table: nothing to make ahead.
    async fn prepare_journal(&self, _until: DateTime<Utc>) -> Result<u32, StoreError> {
        Ok(0)
    }

    async fn expire_journal(
        &self,
        policy: &RetentionPolicy,
        sink: &mut dyn ArchiveSink,
    ) -> Result<RetentionReport, StoreError> {
        // One pass at a time on a file, whichever process runs it (two workers, a deploy's
        // new one beside the old): both archived the same day, and the horizon named the last
        // archive finished, possibly a copy read while the other pass deleted the day.
        let Some(_held) = retention_lock(&self.path)? else {
            tracing::info!("another process's retention pass holds the lock: this pass does nothing");
            return Ok(RetentionReport { another_pass_running: true, ..RetentionReport::default() });
        };
        expire(&self.pool, &self.writer, policy, sink).await
    }

    async fn journal_horizon(&self) -> Result<Option<JournalHorizon>, StoreError> {
        let stored: Vec<(Option<i64>, Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT kept_since, archive, attempts_kept_since FROM journal_retention")
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
        let Some((kept_since, archive, attempts_kept_since)) = stored.into_iter().next() else { return Ok(None) };
        let time = |column: &str, micros: Option<i64>| {
            micros
                .map(|micros| {
                    DateTime::from_timestamp_micros(micros)
                        .ok_or_else(|| StoreError::Corrupt(format!("journal_retention.{column} {micros} out of range")))
                })
                .transpose()
        };
        let horizon = JournalHorizon {
            kept_since: time("kept_since", kept_since)?,
            archive,
            attempts_kept_since: time("attempts_kept_since", attempts_kept_since)?,
        };
        Ok((horizon.kept_since.is_some() || horizon.attempts_kept_since.is_some()).then_some(horizon))
    }
}

/// The database's retention lock: an exclusive lock on `<database>-retention` beside it (as
/// SQLite keeps `-wal` and `-shm`), held while the returned file is open, released by the
/// operating system if the process dies. `None` while another pass holds it, in this process
/// or another. PostgreSQL's passes take an advisory lock instead.
fn retention_lock(database: &std::path::Path) -> Result<Option<std::fs::File>, StoreError> {
    let mut name = database.as_os_str().to_owned();
    name.push("-retention");
    let path = std::path::PathBuf::from(name);
    let opened = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path);
    let file = opened.map_err(|error| StoreError::Database(format!("opening {}: {error}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(StoreError::Database(format!("locking {}: {error}", path.display())))
        }
    }
}

/// The day being archived: its name, the journal ids it spans, and what it holds.
struct Day {
    date: NaiveDate,
    first_id: i64,
    last_id: i64,
    rows: u64,
}

async fn expire(
    pool: &SqlitePool,
    writer: &Writer,
    policy: &RetentionPolicy,
    sink: &mut dyn ArchiveSink,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    let chunk = saturating_i64(policy.chunk.max(1));
    // The journal goes by whole days, as PostgreSQL drops its partitions: a cutoff inside a day
    // leaves all of it to the first pass past its end. Cut at the cutoff, the hourly passes
    // archived a day in slices, each a file beside the day's.
    let whole_days = RetentionPolicy {
        journal_cutoff: policy.journal_cutoff.date_naive().and_time(chrono::NaiveTime::MIN).and_utc(),
        ..*policy
    };
    // A row decided from here on (a held event switched on while its day is archived) was
    // read, if at all, as held and not archived: no drop deletes it, the next pass archives it.
    // The time is taken on the writer, which takes every decision's time inside its own
    // transaction, and inside a write transaction of its own (`BEGIN IMMEDIATE`), which waits
    // for another process's (the admin API, `replay`) on the same file: a decision timed
    // before it has committed, so the reads below see it.
    let pass_started = writer.transaction(|_| Ok(micros(Utc::now()))).await?;
    let mut day: Option<Day> = None;
    // By date: one batch's held rows either side of midnight alternate between two dates.
    let mut held: std::collections::BTreeMap<NaiveDate, u64> = std::collections::BTreeMap::new();
    let mut after = 0i64;
    'read: loop {
        // Stopped before its day's archive is finished, the day is not dropped: the next pass
        // reads it again from its first row.
        if sink.stopping() {
            report.stopped = true;
            return Ok(report);
        }
        let stored = sqlx::query(&format!(
            "SELECT {JOURNAL_COLUMNS} FROM events WHERE journal_id > ?1 ORDER BY journal_id LIMIT ?2"
        ))
        .bind(after)
        .bind(chunk)
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
        if stored.is_empty() {
            break;
        }
        let mut entries = Vec::with_capacity(stored.len());
        for row in &stored {
            let row = journal_row(row)?;
            after = row.journal_id;
            // Rows are read in journal order, which is receive order but for a few
            // stragglers: the first row inside the retention ends the pass.
            if row.received_at >= whole_days.journal_cutoff {
                if let Some(current) = &day {
                    sink.write(&entries).map_err(io(current.date))?;
                }
                break 'read;
            }
            let date = row.received_at.date_naive();
            if row.outcome == "held" {
                *held.entry(date).or_default() += 1;
                continue;
            }
            // A day is finished when a row of a later one comes. A row of an earlier day read
            // after it (received just before midnight, journaled among the next day's first
            // rows by the same batch) goes into the current day's file: finishing the file at
            // every change of date, back and forth, made thousands of files a midnight.
            if day.as_ref().is_some_and(|current| date > current.date) {
                let finished = day.take().expect("checked");
                sink.write(&entries).map_err(io(finished.date))?;
                entries.clear();
                drop_day(writer, sink, finished, &whole_days, pass_started, &mut report).await?;
            }
            let current = match &mut day {
                Some(current) => current,
                None => {
                    sink.begin(&day_name(date)).map_err(io(date))?;
                    day.insert(Day { date, first_id: row.journal_id, last_id: row.journal_id, rows: 0 })
                }
            };
            current.last_id = row.journal_id;
            current.rows += 1;
            entries.push(row.into_entry()?);
        }
        if let Some(current) = &day {
            sink.write(&entries).map_err(io(current.date))?;
        }
    }
    if let Some(finished) = day.take() {
        drop_day(writer, sink, finished, &whole_days, pass_started, &mut report).await?;
    }
    report.kept =
        held.into_iter().map(|(date, held_events)| KeptSegment { name: day_name(date), held_events }).collect();
    let stopping = || sink.stopping();
    // A claim prune that fails does not keep the steps after it from running, whose tables
    // would grow with it, every pass: its error is the pass's once they ran (as PostgreSQL).
    let claims = prune_claims(writer, policy, &stopping).await;
    report.claims_pruned += *claims.as_ref().unwrap_or(&0);
    if !stopping() {
        // By whole days, as the journal and PostgreSQL's attempt partitions: cut at the
        // cutoff, the trace showed fewer attempts here, and kept them since another time.
        report.attempt_days_dropped = expire_attempts(pool, writer, &whole_days, &stopping).await?;
        for statement in DRIFT_DELETES {
            report.drifts_pruned +=
                chunked_delete(writer, statement, policy.journal_cutoff, policy.chunk, &stopping).await?;
        }
        report.dead_letters_pruned =
            chunked_delete(writer, RESOLVED_DEAD_LETTERS, policy.journal_cutoff, policy.chunk, &stopping).await?;
    }
    if !stopping() {
        report.feed_windows_compacted =
            crate::feed_windows::compact_feed_windows(pool, writer, policy.journal_cutoff).await?;
    }
    report.stopped = stopping();
    claims?;
    Ok(report)
}

/// Whether a pass is to stop at its next safe point (`ArchiveSink::stopping`).
type Stopping<'a> = &'a (dyn Fn() -> bool + Sync);

/// Deletes a chunk of reconciliation's drifts, then of full refreshes' feed drifts.
const DRIFT_DELETES: [&str; 2] = [
    "DELETE FROM drifts WHERE drift_id IN (SELECT drift_id FROM drifts WHERE detected_at < ?1 LIMIT ?2)",
    "DELETE FROM feed_drifts WHERE feed_drift_id IN \
     (SELECT feed_drift_id FROM feed_drifts WHERE detected_at < ?1 LIMIT ?2)",
];

/// Deletes a chunk of the dead letters resolved before the cutoff (decision 0031); an open
/// one is never deleted, however old.
const RESOLVED_DEAD_LETTERS: &str = "DELETE FROM dead_letters WHERE dead_letter_id IN \
     (SELECT dead_letter_id FROM dead_letters WHERE resolved_at < ?1 LIMIT ?2)";

/// Deletes the publish attempts made before the cutoff, oldest day first, in chunks, once it
/// has said so for trace. Returns how many days it deleted from.
async fn expire_attempts(
    pool: &SqlitePool,
    writer: &Writer,
    policy: &RetentionPolicy,
    stopping: Stopping<'_>,
) -> Result<u64, StoreError> {
    let mut days = 0;
    loop {
        if stopping() {
            return Ok(days);
        }
        let oldest: Vec<Option<i64>> = sqlx::query_scalar("SELECT min(attempted_at) FROM publish_attempts")
            .fetch_all(pool)
            .await
            .map_err(store_error)?;
        let Some(oldest) = oldest.into_iter().flatten().next().and_then(DateTime::from_timestamp_micros) else {
            return Ok(days);
        };
        if oldest >= policy.journal_cutoff {
            return Ok(days);
        }
        let next_day = oldest.date_naive().succ_opt().unwrap_or(oldest.date_naive()).and_time(NaiveTime::MIN).and_utc();
        let until = next_day.min(policy.journal_cutoff);
        // The horizon moves first, as the journal's does (decision 0050): each chunk commits
        // on its own, and a trace read between two, or after a pass that failed midway, would
        // show the day's attempts gone with no "kept since" saying why.
        let kept_since = micros(until);
        writer
            .transaction(move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO journal_retention (only_row, attempts_kept_since, updated_at) VALUES (1, ?1, ?2) \
                         ON CONFLICT (only_row) DO UPDATE \
                         SET attempts_kept_since = max(coalesce(attempts_kept_since, 0), excluded.attempts_kept_since), \
                         updated_at = excluded.updated_at",
                    )
                    .and_then(|mut upsert| upsert.execute(params![kept_since, micros(Utc::now())]))
                    .map_err(write_error)
            })
            .await?;
        let deleted = chunked_delete(
            writer,
            "DELETE FROM publish_attempts WHERE attempt_id IN \
             (SELECT attempt_id FROM publish_attempts WHERE attempted_at < ?1 LIMIT ?2)",
            until,
            policy.chunk,
            stopping,
        )
        .await?;
        tracing::info!(day = %oldest.date_naive(), deleted, "publish attempts of a day deleted");
        days += 1;
    }
}

/// Runs a `DELETE` of at most `?2` rows older than `?1`, one writer transaction each, until
/// it deletes none or the pass is to stop.
async fn chunked_delete(
    writer: &Writer,
    statement: &'static str,
    cutoff: DateTime<Utc>,
    chunk: usize,
    stopping: Stopping<'_>,
) -> Result<u64, StoreError> {
    let cutoff = micros(cutoff);
    let chunk = saturating_i64(chunk.max(1));
    let mut deleted = 0;
    loop {
        if stopping() {
            return Ok(deleted);
        }
        let done = writer
            .transaction(move |connection| {
                connection
                    .prepare_cached(statement)
                    .and_then(|mut delete| delete.execute(params![cutoff, chunk]))
                    .map_err(write_error)
            })
            .await? as u64;
        deleted += done;
        if done == 0 {
            return Ok(deleted);
        }
    }
}

fn day_name(date: NaiveDate) -> String {
    format!("events_{}", date.format("%Y%m%d"))
}

fn io(date: NaiveDate) -> impl Fn(std::io::Error) -> StoreError {
    move |error| StoreError::Database(format!("archiving {}: {error}", day_name(date)))
}

/// Finishes a day's archive, then deletes what it holds in chunks of journal ids, moving the
/// claims of decided rows to `event_claims` in the same transaction as their rows' deletion.
/// Only rows decided, and not redelivered, before the pass started are deleted: they are the
/// ones archived as they are. A claim already past the claim horizon is not moved but goes
/// with its row, and is counted in `claims_pruned`, as PostgreSQL counts it when it prunes
/// `event_claims`.
async fn drop_day(
    writer: &Writer,
    sink: &mut dyn ArchiveSink,
    day: Day,
    policy: &RetentionPolicy,
    pass_started: i64,
    report: &mut RetentionReport,
) -> Result<(), StoreError> {
    let archive = sink.finish().map_err(io(day.date))?;
    // The horizon moves first: once the archive is durable its rows may be gone, and a tracer
    // reading the day while its chunks are deleted makes up what they held instead of naming
    // their items untraced (decision 0050).
    let kept_since = micros(
        day.date.succ_opt().unwrap_or(day.date).and_time(chrono::NaiveTime::MIN).and_utc().min(policy.journal_cutoff),
    );
    let location = archive.clone();
    writer
        .transaction(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO journal_retention (only_row, kept_since, archive, updated_at) VALUES (1, ?1, ?2, ?3) \
                     ON CONFLICT (only_row) DO UPDATE SET kept_since = max(coalesce(kept_since, 0), excluded.kept_since), \
                     archive = excluded.archive, updated_at = excluded.updated_at",
                )
                .and_then(|mut upsert| upsert.execute(params![kept_since, location, micros(Utc::now())]))
                .map_err(write_error)
        })
        .await?;
    let cutoff = micros(policy.journal_cutoff);
    let claim_cutoff = micros(policy.claim_cutoff);
    // `--journal-retention-chunk` takes any count up to `u64::MAX`: the step is held at
    // `i64::MAX` and added saturating, so every chunk moves forward (a step wrapped to -1
    // walked backwards for ever).
    let step = saturating_i64(policy.chunk.max(1));
    let mut from = day.first_id - 1;
    let (mut deleted, mut claims_dropped) = (0, 0);
    while from < day.last_id {
        let to = from.saturating_add(step).min(day.last_id);
        let (rows, claims) = writer
            .transaction(move |connection| {
                connection
                    .prepare_cached(
                        "INSERT OR IGNORE INTO event_claims (event_id, fingerprint, received_at, kept_from) \
                         SELECT event_id, fingerprint, received_at, \
                         CASE WHEN updated_at > received_at THEN updated_at END FROM events \
                         WHERE journal_id > ?1 AND journal_id <= ?2 AND received_at < ?3 \
                         AND max(received_at, coalesce(updated_at, received_at)) >= ?4 AND decided_at < ?5 \
                         AND coalesce(last_redelivered_at, 0) < ?5 \
                         AND outcome IN ('applied', 'stale', 'superseded') AND event_id IS NOT NULL",
                    )
                    .and_then(|mut insert| insert.execute(params![from, to, cutoff, claim_cutoff, pass_started]))
                    .map_err(write_error)?;
                // Each deleted row says whether it held a claim not moved above (the same
                // terms, past the claim horizon): that claim is gone with it.
                let mut delete = connection
                    .prepare_cached(
                        "DELETE FROM events WHERE journal_id > ?1 AND journal_id <= ?2 AND received_at < ?3 \
                         AND outcome <> 'held' AND decided_at < ?4 AND coalesce(last_redelivered_at, 0) < ?4 \
                         RETURNING outcome IN ('applied', 'stale', 'superseded') AND event_id IS NOT NULL \
                         AND max(received_at, coalesce(updated_at, received_at)) < ?5",
                    )
                    .map_err(write_error)?;
                let mut returned =
                    delete.query(params![from, to, cutoff, pass_started, claim_cutoff]).map_err(write_error)?;
                let (mut rows, mut claims) = (0u64, 0u64);
                while let Some(row) = returned.next().map_err(write_error)? {
                    rows += 1;
                    claims += u64::from(row.get::<_, bool>(0).map_err(write_error)?);
                }
                Ok((rows, claims))
            })
            .await?;
        deleted += rows;
        claims_dropped += claims;
        from = to;
    }
    tracing::info!(
        day = %day.date, rows = day.rows, deleted, claims_dropped, %archive, "journal day archived and deleted"
    );
    report.dropped.push(DroppedSegment { name: day_name(day.date), rows: deleted, archive });
    report.claims_pruned += claims_dropped;
    Ok(())
}

/// Forgets claims whose retention started before the cutoff (the later of their receipt and
/// their event's own time), a chunk per transaction.
async fn prune_claims(writer: &Writer, policy: &RetentionPolicy, stopping: Stopping<'_>) -> Result<u64, StoreError> {
    chunked_delete(
        writer,
        "DELETE FROM event_claims WHERE event_id IN (SELECT event_id FROM event_claims \
         WHERE received_at < ?1 AND coalesce(kept_from, received_at) < ?1 LIMIT ?2)",
        policy.claim_cutoff,
        policy.chunk,
        stopping,
    )
    .await
}
