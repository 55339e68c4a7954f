//! Recording a publish round on Postgres: the attempts, the versions each channel now holds,
//! the outbox rows done with, requeued or put off, and the dead letters written or resolved,
//! in two steps so that a round never waits holding rows a batch needs.

use std::time::Duration;

use catalog_core::Classify;
use catalog_store::{DeadLetterResolution, PublishOutcome, PublishRecord, ResolvedDeadLetter, StoreError};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::columns::saturating_i64;
use crate::dead_letters;
use crate::deadline::with_deadline;
use crate::store_error;

/// Records a round in two steps, so that a round never holds rows while it waits for
/// another transaction's, and a batch never waits behind a round that waits for another
/// batch. First, in one transaction, everything: the attempts, the held versions, the dead
/// letters, and the outbox rows no batch holds at that moment (`SKIP LOCKED`). Then the outbox
/// rows that were held, once their batches commit. A crash between the two, or a second step
/// that fails, leaves those rows leased: they are sent again once the lease passes, as after a
/// crash before recording.
pub(crate) async fn record_publishes(
    pool: &PgPool,
    records: &[PublishRecord],
    deadline: Duration,
) -> Result<Vec<ResolvedDeadLetter>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let records: Vec<&PublishRecord> = records.iter().collect();
    let recorded = with_deadline(deadline, "record_publishes", record_first(pool, &records)).await?;
    let (resolved, held_by_batches) = recorded;
    if !held_by_batches.is_empty() {
        // The round is recorded: reported failed, it would be recorded again whole (its
        // attempts twice, its failures counted twice, and rows the first step made due,
        // claimed since by another lane, made due again under that lane's claim). The held
        // rows stay leased instead, sent again once the lease passes, as after a crash here.
        let released = with_deadline(deadline, "release_held", release_held(pool, &held_by_batches)).await;
        if let Err(error) = released {
            tracing::warn!(
                %error,
                n_rows = held_by_batches.len(),
                class = error.failure_class().as_str(),
                "releasing outbox rows a batch held failed; the round is recorded, and they are sent again once their lease passes"
            );
        }
    }
    Ok(resolved)
}

/// The first step, making today's attempts partition if it is missing.
async fn record_first<'a>(
    pool: &PgPool,
    records: &[&'a PublishRecord],
) -> Result<(Vec<ResolvedDeadLetter>, Vec<&'a PublishRecord>), StoreError> {
    match record_first_step(pool, records).await {
        // Today has no attempts partition (retention's maintenance has not made it, or not
        // yet): nothing was written; make the days around now, then record again.
        Err(StoreError::Database(message)) if message.starts_with("no partition of relation \"publish_attempts\"") => {
            let now = chrono::Utc::now();
            crate::retention::ATTEMPTS
                .prepare(pool, now - chrono::Duration::days(1), now + chrono::Duration::days(1))
                .await?;
            record_first_step(pool, records).await
        }
        outcome => outcome,
    }
}

/// `record_publishes`' second transaction: the outbox rows a batch held, once it commits.
async fn release_held(pool: &PgPool, held_by_batches: &[&PublishRecord]) -> Result<(), StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    for pass in passes(held_by_batches) {
        record_round(&mut transaction, &pass, Step::Release).await?;
    }
    transaction.commit().await.map_err(store_error)
}

/// `record_publishes`' first transaction: the dead letters it resolved and the records whose
/// outbox rows a batch held.
async fn record_first_step<'a>(
    pool: &PgPool,
    records: &[&'a PublishRecord],
) -> Result<(Vec<ResolvedDeadLetter>, Vec<&'a PublishRecord>), StoreError> {
    let mut resolved = Vec::new();
    let mut held_by_batches = Vec::new();
    let mut transaction = pool.begin().await.map_err(store_error)?;
    for pass in passes(records) {
        let (pass_resolved, pass_held) = record_round(&mut transaction, &pass, Step::Record).await?;
        resolved.extend(pass_resolved);
        held_by_batches.extend(pass_held);
    }
    transaction.commit().await.map_err(store_error)?;
    Ok((resolved, held_by_batches))
}

/// A round's records in the passes that record them: one, sorted by (item id, channel), the
/// order `apply_batch` writes rows in; or, with the same item and channel twice (their effects
/// depend on order), one per record.
fn passes<'a>(records: &[&'a PublishRecord]) -> Vec<Vec<&'a PublishRecord>> {
    let mut keys = std::collections::HashSet::with_capacity(records.len());
    if records.iter().all(|record| keys.insert((record.item_id, record.channel.as_str()))) {
        let mut round = records.to_vec();
        round.sort_by(|a, b| (a.item_id.0, a.channel.as_bytes()).cmp(&(b.item_id.0, b.channel.as_bytes())));
        vec![round]
    } else {
        records.iter().map(|record| vec![*record]).collect()
    }
}

/// Which step of `record_publishes` a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Everything, with the outbox rows no batch holds.
    Record,
    /// Only the outbox rows, waiting for the batches that held them.
    Release,
}

/// The version a record says the channel now holds, if it says one.
fn held_version(record: &PublishRecord) -> Option<i64> {
    let version = saturating_i64(record.version);
    match record.outcome {
        PublishOutcome::Published => Some(version),
        PublishOutcome::Superseded { current_version } => Some(version.max(saturating_i64(current_version))),
        PublishOutcome::RetryAt(_)
        | PublishOutcome::ThrottledUntil(_)
        | PublishOutcome::DeadLettered
        | PublishOutcome::Skipped => None,
    }
}

/// Locks a round's outbox rows (`$1` item ids, `$2` channels, `$3` the claims the records were
/// made under) in the order given, each while its record's claim holds it (`$fence`), and
/// returns the position (from 1) of each record whose row it locked. A row claimed since by
/// another publisher (the record came after its lease) is not locked: the record changes
/// nothing of it.
macro_rules! lock_round {
    ($fence:literal) => {
        concat!(
            "SELECT u.n FROM outbox AS o
     JOIN unnest($1::uuid[], $2::text[], $3::uuid[]) WITH ORDINALITY AS u(i, c, k, n)
       ON o.item_id = u.i AND o.channel = u.c",
            $fence,
            "
     ORDER BY u.n
     FOR UPDATE OF o"
        )
    };
}

/// How a round's rows are fenced by their records' claims. A publisher's records all carry
/// one; the fence for records with and without (tools, tests) costs a third more PostgreSQL
/// CPU per version in rounds of 32 (an `OR` in the join; `publish_cycle`), so it is kept for
/// such mixed rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fence {
    /// Every record has a claim: its row is locked while that claim holds it.
    Claims,
    /// No record has one: every row is locked.
    None,
    /// Some have one.
    Mixed,
}

impl Fence {
    fn of(records: &[&PublishRecord]) -> Self {
        match (records.iter().all(|r| r.claim.is_some()), records.iter().all(|r| r.claim.is_none())) {
            (true, _) => Fence::Claims,
            (_, true) => Fence::None,
            _ => Fence::Mixed,
        }
    }

    /// The lock statement of a step: waiting for the rows a batch holds, or skipping them.
    pub(crate) fn lock(self, step: Step) -> &'static str {
        match (self, step) {
            (Fence::Claims, Step::Record) => concat!(lock_round!(" AND o.claim = u.k"), " SKIP LOCKED"),
            (Fence::Claims, Step::Release) => lock_round!(" AND o.claim = u.k"),
            (Fence::None, Step::Record) => concat!(lock_round!(""), " SKIP LOCKED"),
            (Fence::None, Step::Release) => lock_round!(""),
            (Fence::Mixed, Step::Record) => {
                concat!(lock_round!(" AND (u.k IS NULL OR o.claim = u.k)"), " SKIP LOCKED")
            }
            (Fence::Mixed, Step::Release) => lock_round!(" AND (u.k IS NULL OR o.claim = u.k)"),
        }
    }
}

/// Records a round's attempts once its rows are locked, in one statement (the arrays of
/// `RoundArrays::bind`, one element per record): the attempts; the version each channel now
/// holds; the rows that are done with; the rows that now wait for a version queued while
/// this one was out; the retries and throttled ones; and, returned, the dead letters the
/// accepted versions resolve. `recording` says a record's first step (everything but the
/// outbox row), `locked` that its outbox row is locked by this transaction (its effect on
/// the row). A row is changed only once locked, so this statement's snapshot holds every
/// version a batch committed to it.
pub(crate) const RECORD_ROUND: &str = "WITH u AS (
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int4[], $5::int4[], $6::text[], $7::int8[],
                              $8::text[], $9::text[], $10::int8[], $11::text[], $12::bool[], $13::int8[],
                              $14::timestamptz[], $15::bool[], $16::text[], $17::bool[], $18::bool[])
             AS u(i, c, v, attempt, status, result, latency_ms, error, listing, sent_quantity, rule,
                  done, held, due, failed, resolution, recording, locked)
     ), attempts AS (
         INSERT INTO publish_attempts (item_id, version, channel, attempt, status, result, latency_ms, error,
                                       listing, sent_quantity, rule)
         SELECT i, v, c, attempt, status, result, latency_ms, error, listing, sent_quantity, rule FROM u
         WHERE recording
     ), held AS (
         INSERT INTO published_versions (item_id, channel, version)
         SELECT i, c, held FROM u WHERE recording AND held IS NOT NULL
         ON CONFLICT (item_id, channel) DO UPDATE
         SET version = GREATEST(published_versions.version, EXCLUDED.version), published_at = now()
     ), unlisted AS (
         INSERT INTO unlisted_versions (item_id, channel, version)
         SELECT i, c, v FROM u WHERE recording AND result = 'skipped'
         ON CONFLICT (item_id, channel) DO UPDATE
         SET version = GREATEST(unlisted_versions.version, EXCLUDED.version), skipped_at = now()
     ), finished AS (
         DELETE FROM outbox AS o USING u
         WHERE u.locked AND u.done AND o.item_id = u.i AND o.channel = u.c AND o.version <= coalesce(u.held, u.v)
     ), requeued AS (
         UPDATE outbox AS o SET available_at = now(), attempts = 0, first_enqueued_at = o.enqueued_at,
             retry_at = NULL, claim = NULL
         FROM u WHERE u.locked AND u.done AND o.item_id = u.i AND o.channel = u.c AND o.version > coalesce(u.held, u.v)
     ), retried AS (
         UPDATE outbox AS o SET available_at = u.due, retry_at = u.due,
             attempts = o.attempts + CASE WHEN u.failed AND o.version = u.v THEN 1 ELSE 0 END
         FROM u WHERE u.locked AND NOT u.done AND o.item_id = u.i AND o.channel = u.c
     )
     UPDATE dead_letters AS d SET resolved_at = now(), resolution = u.resolution
     FROM u
     WHERE u.recording AND u.resolution IS NOT NULL AND d.stage = 'publish' AND d.subject = u.i::text
       AND coalesce(d.channel, '') = u.c AND d.resolved_at IS NULL AND d.version <= u.held
     RETURNING d.dead_letter_id, d.subject, u.c AS channel, u.held AS version, u.resolution, d.heal_rounds";

/// A round's records as the columns `RECORD_ROUND` takes.
#[derive(Default)]
pub(crate) struct RoundArrays<'a> {
    ids: Vec<Uuid>,
    /// The claim each record was made under, if any (the lock statement alone reads them).
    claims: Vec<Option<Uuid>>,
    channels: Vec<&'a str>,
    versions: Vec<i64>,
    attempts: Vec<i32>,
    statuses: Vec<Option<i32>>,
    results: Vec<&'a str>,
    latencies: Vec<Option<i64>>,
    errors: Vec<Option<&'a str>>,
    listings: Vec<Option<&'a str>>,
    sent_quantities: Vec<Option<i64>>,
    rules: Vec<Option<&'a str>>,
    /// Published, superseded, dead-lettered or skipped: the row is done with this version.
    done: Vec<bool>,
    /// The version the channel now holds, if the record says one.
    held: Vec<Option<i64>>,
    /// When a retried or throttled item is due again.
    dues: Vec<Option<DateTime<Utc>>>,
    /// A retry counts against the version's budget; throttling does not.
    failed: Vec<bool>,
    /// The resolution of the open dead letter an accepted version settles.
    resolutions: Vec<Option<&'static str>>,
    /// The record's first step: everything but its outbox row.
    recording: Vec<bool>,
    /// Its outbox row is locked by this transaction.
    locked: Vec<bool>,
}

impl<'a> RoundArrays<'a> {
    pub(crate) fn new(records: &[&'a PublishRecord], step: Step) -> Self {
        let mut arrays = Self::default();
        for record in records {
            let sent = record.sent.as_ref();
            arrays.ids.push(record.item_id.0);
            arrays.claims.push(record.claim);
            arrays.channels.push(record.channel.as_str());
            arrays.versions.push(saturating_i64(record.version));
            arrays.attempts.push(i32::try_from(record.attempt).unwrap_or(i32::MAX));
            arrays.statuses.push(record.status.map(i32::from));
            arrays.results.push(record.outcome.as_str());
            arrays.latencies.push(record.latency_ms.map(saturating_i64));
            arrays.errors.push(record.error.as_deref());
            arrays.listings.push(sent.map(|sent| sent.listing.as_str()));
            arrays.sent_quantities.push(sent.map(|sent| sent.quantity));
            arrays.rules.push(sent.map(|sent| sent.rule.as_str()));
            arrays.held.push(held_version(record));
            let (done, due, failed, resolution) = match record.outcome {
                // The item waits out the backoff whatever version it now holds: a newer version
                // queued meanwhile goes out at the retry, not at once to a channel that just
                // failed. A failure counts only while the row still holds the version that
                // failed: a newer one starts with a budget of its own.
                PublishOutcome::RetryAt(due_at) => (false, Some(due_at), true, None),
                // Throttling is not a failure: it leaves the budget alone.
                PublishOutcome::ThrottledUntil(due_at) => (false, Some(due_at), false, None),
                PublishOutcome::Published => (true, None, false, Some(DeadLetterResolution::PublishedLater)),
                PublishOutcome::Superseded { .. } => (true, None, false, Some(DeadLetterResolution::SupersededLater)),
                PublishOutcome::DeadLettered | PublishOutcome::Skipped => (true, None, false, None),
            };
            arrays.done.push(done);
            arrays.dues.push(due);
            arrays.failed.push(failed);
            arrays.resolutions.push(resolution.map(|resolution| resolution.as_str()));
            arrays.recording.push(step == Step::Record);
            arrays.locked.push(false);
        }
        arrays
    }

    pub(crate) fn bind(&'a self, query: Query<'a>) -> Query<'a> {
        query
            .bind(&self.ids)
            .bind(&self.channels)
            .bind(&self.versions)
            .bind(&self.attempts)
            .bind(&self.statuses)
            .bind(&self.results)
            .bind(&self.latencies)
            .bind(&self.errors)
            .bind(&self.listings)
            .bind(&self.sent_quantities)
            .bind(&self.rules)
            .bind(&self.done)
            .bind(&self.held)
            .bind(&self.dues)
            .bind(&self.failed)
            .bind(&self.resolutions)
            .bind(&self.recording)
            .bind(&self.locked)
    }
}

pub(crate) type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Runs one step of recording a pass of records, at most one per item and channel, sorted
/// by (item id, channel): the outbox rows locked, in that order (the order `apply_batch`
/// writes them in, so neither waits on the other in a cycle), skipping those a batch holds
/// in the first step and waiting for them in the second; then everything else in one
/// statement (`RECORD_ROUND`); then the new dead letters, if any. Returns the dead letters
/// resolved and the records whose rows a batch held.
async fn record_round<'a>(
    connection: &mut sqlx::PgConnection,
    records: &[&'a PublishRecord],
    step: Step,
) -> Result<(Vec<ResolvedDeadLetter>, Vec<&'a PublishRecord>), StoreError> {
    let mut arrays = RoundArrays::new(records, step);
    let lock = Fence::of(records).lock(step);
    let positions: Vec<i64> = sqlx::query_scalar(lock)
        .bind(&arrays.ids)
        .bind(&arrays.channels)
        .bind(&arrays.claims)
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
    for position in positions {
        let index = usize::try_from(position - 1).ok().filter(|index| *index < records.len());
        let index =
            index.ok_or_else(|| StoreError::Corrupt(format!("a round of {} locked row {position}", records.len())))?;
        arrays.locked[index] = true;
    }
    // A row not locked in the first step is held by a batch, or gone, or claimed since by
    // another publisher (nothing to do; the second step finds it so again).
    let held_by_batches = match step {
        Step::Record => records.iter().zip(&arrays.locked).filter(|(_, locked)| !**locked).map(|(r, _)| *r).collect(),
        Step::Release => Vec::new(),
    };
    let resolved = arrays
        .bind(sqlx::query(RECORD_ROUND))
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?
        .iter()
        .map(dead_letters::resolved_row)
        .collect::<Result<Vec<_>, _>>()?;
    if step == Step::Record {
        for record in records.iter().filter(|record| record.outcome == PublishOutcome::DeadLettered) {
            dead_letters::write(connection, record).await?;
        }
    }
    Ok((resolved, held_by_batches))
}
