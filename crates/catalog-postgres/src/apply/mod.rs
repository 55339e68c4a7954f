//! `apply_batch` on Postgres: load, plan with `catalog-core`, write, in one transaction.
//!
//! Concurrency is optimistic first: the offers and items a batch touches are read without
//! locking (a missing one is planned as new and inserted by its write), and every write is
//! guarded by what was read (an offer's `revision`, an item's `version`, a held journal row
//! still being `held`, the unique claim of each event id). A guard that fails means another
//! transaction changed a row since it was read: the transaction rolls back with
//! `StoreError::Conflict` and [`apply_batch`] plans the batch again, this time locking its
//! offers and items before reading them ([`Locking::Pessimistic`]), so a contended batch
//! cannot lose twice to the same rows.
//!
//! Lock order, the same in every transaction so none can wait on another in a cycle: the
//! batch's checkpoint rows (read under that lock: a batch that skips applied events drops
//! those its partition's stored position has passed, decision 0028), new tenants and
//! suppliers, offers, items (each by key, byte order), journal rows and claims by event id,
//! then outbox rows by (item id, channel), the order publish records lock them in.
//!
//! `load` reads what a batch plans against, `journal` reads and writes the journal, `write`
//! writes offers, items, outbox rows and checkpoints.

mod journal;
mod load;
mod write;

use std::time::Duration;

use catalog_core::OfferKey;
use catalog_store::batch::{prepare, BatchKeys, LoadedState};
use catalog_store::fence::fence;
use catalog_store::{BatchInput, BatchResult, Position, StoreConfig, StoreError};
use sqlx::{PgConnection, PgPool};

#[cfg(test)]
pub(crate) use journal::{journal_update_query, LOAD_PRIOR, UPDATE_JOURNAL};
pub(crate) use write::upsert_outbox;

use crate::offer_cache::{Lookup, OfferCache};
use crate::store_error;
use load::ABSENT;

/// How many times `apply_batch` re-runs a batch that lost a race (deadlock, serialization
/// failure, a concurrent claim of the same event id) before reporting a conflict.
const MAX_CONFLICT_RETRIES: u32 = 5;

/// Applies a batch, planning it again when it lost a race: optimistically while only the
/// journal moved under it, with locks once rows it read have moved.
pub(crate) async fn apply_batch(
    pool: &PgPool,
    config: &StoreConfig,
    cache: &OfferCache,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    let mut attempt = 0;
    let mut locking = Locking::Optimistic;
    loop {
        let reason = match apply_once(pool, config, cache, batch, locking).await {
            Ok(result) => return Ok(result),
            // Only the journal moved: plan again the same way, against the claim now there.
            Err(Failure::ClaimTaken(StoreError::Conflict(reason))) if attempt < MAX_CONFLICT_RETRIES => reason,
            // Rows the batch read moved: from now on it locks what it reads.
            Err(Failure::Store(StoreError::Conflict(reason))) if attempt < MAX_CONFLICT_RETRIES => {
                locking = Locking::Pessimistic;
                reason
            }
            // A day without a journal partition (retention's maintenance has not made it yet):
            // make the batch's days, then write it again.
            Err(Failure::NoPartition(error)) if attempt < MAX_CONFLICT_RETRIES => {
                let received = batch.events.iter().map(|event| event.delivery.received_at);
                let (Some(from), Some(until)) = (received.clone().min(), received.max()) else {
                    return Err(error);
                };
                crate::retention::JOURNAL.check_not_detached(pool, from, until).await?;
                crate::retention::JOURNAL.prepare(pool, from, until).await?;
                error.to_string()
            }
            Err(failure) => return Err(failure.into()),
        };
        attempt += 1;
        tracing::debug!(attempt, %reason, ?locking, "batch lost a race, planning it again");
        tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
    }
}

/// How a batch reads the offers and items it plans against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locking {
    /// Read without locks; writes are guarded and fail with a conflict if a row moved.
    Optimistic,
    /// Lock every touched offer and item before reading it: for a batch that lost a race.
    Pessimistic,
}

/// Why one attempt at a batch failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Another transaction claimed one of the batch's event ids after this one read the
    /// journal (the claim index refused the row). Only the journal moved: the offers and
    /// items the batch read, and the offer cache, are still good, so the batch is planned
    /// again the same way and this time finds the claim.
    ClaimTaken(StoreError),
    /// A journal row fell on a day no partition covers: nothing was written.
    NoPartition(StoreError),
    /// Anything else; a `StoreError::Conflict` means rows the batch read have moved.
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::ClaimTaken(error) | Failure::NoPartition(error) | Failure::Store(error) => error,
        }
    }
}

async fn apply_once(
    pool: &PgPool,
    config: &StoreConfig,
    cache: &OfferCache,
    batch: &BatchInput,
    locking: Locking,
) -> Result<BatchResult, Failure> {
    let keys = BatchKeys::of(batch);
    let applied = async {
        let mut transaction = pool.begin().await.map_err(store_error)?;
        let written = write_batch(&mut transaction, config, &keys, Some(cache), batch, locking).await?;
        transaction.commit().await.map_err(store_error)?;
        Ok(written)
    }
    .await;
    match applied {
        Ok(Written { result, committed }) => {
            cache.remember(committed);
            Ok(result)
        }
        Err(failure @ (Failure::ClaimTaken(_) | Failure::NoPartition(_))) => Err(failure),
        Err(failure) => {
            // A lost race, or a commit that may or may not have happened: read them afresh.
            cache.forget(&keys.offers);
            Err(failure)
        }
    }
}

/// Moves a partition's checkpoint back from `from` to `to` (offset and cursor) if it is still
/// at `from` (`BatchStore::rewind_checkpoint`, decision 0040).
pub(crate) async fn rewind_checkpoint(
    pool: &PgPool,
    source: &str,
    partition: i32,
    from: i64,
    to: &Position,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE source_checkpoints SET next_offset = $4, cursor = $5, updated_at = now()
         WHERE source = $1 AND partition = $2 AND next_offset = $3",
    )
    .bind(source)
    .bind(partition)
    .bind(from)
    .bind(to.offset)
    .bind(to.cursor.as_deref())
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(done.rows_affected() == 1)
}

/// Plans and writes a batch exactly as `apply_once` would, then rolls it back.
pub(crate) async fn preview_batch(
    pool: &PgPool,
    config: &StoreConfig,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let keys = BatchKeys::of(batch);
    let written = write_batch(&mut transaction, config, &keys, None, batch, Locking::Pessimistic)
        .await
        .map_err(StoreError::from)?;
    transaction.rollback().await.map_err(store_error)?;
    Ok(written.result)
}

/// What a batch wrote: its result, and each offer's state and revision once it commits
/// (the ones it read and the ones it wrote), for the offer cache.
struct Written {
    result: BatchResult,
    committed: Vec<(OfferKey, catalog_core::OfferState, i64)>,
}

async fn write_batch(
    connection: &mut PgConnection,
    config: &StoreConfig,
    keys: &BatchKeys,
    cache: Option<&OfferCache>,
    batch: &BatchInput,
    locking: Locking,
) -> Result<Written, Failure> {
    // Locks and writes go in lock order: checkpoint rows (locked and read), offers, items,
    // journal; then outbox and the checkpoints' new positions.
    let mut steps = Steps::start();
    let stored = load::lock_checkpoints(connection, batch).await?;
    // The keys stay the whole batch's: reading an offer a skipped event names changes nothing.
    let fenced = fence(batch, &stored);
    steps.done("lock_checkpoints");
    let flags = load::flags(connection, keys, config.default_sync_enabled).await?;
    steps.done("flags");
    // A batch that lost a race reads (and locks) every offer; otherwise the cache answers first.
    let Lookup { mut offers, mut revisions, missing } = match (locking, cache) {
        (Locking::Optimistic, Some(cache)) => cache.lookup(&keys.offers),
        _ => Lookup { missing: keys.offers.iter().collect(), ..Lookup::default() },
    };
    let n_cached = offers.len();
    let (read, read_revisions) = load::offers(connection, &missing, locking).await?;
    let mut committed = Vec::new();
    if cache.is_some() {
        committed.reserve(read.len() + keys.offers.len());
        committed.extend(
            read.iter()
                .map(|(key, state)| (key.clone(), state.clone(), read_revisions.get(key).copied().unwrap_or(ABSENT))),
        );
    }
    offers.extend(read);
    revisions.extend(read_revisions);
    steps.done("load_offers");
    let items = load::items(connection, &keys.items, locking).await?;
    steps.done("load_items");
    let prior = journal::load_prior(connection, &keys.event_ids).await?;
    steps.done("load_prior");
    let read_flags = (flags.tenants.clone(), flags.suppliers.clone());
    let loaded = LoadedState { offers, items, prior, flags };
    let mut writes = prepare(&fenced.batch, loaded, config)?;
    writes.result.applied_before = fenced.applied_before;
    writes.result.of_another_log = fenced.of_another_log;
    steps.done("plan");
    // Held on flags read without a lock: a switch committed since would replay the journal
    // before these held rows are visible, and leave them held for good. Read under a share
    // lock, the flags make a switch in flight wait for this batch (whose held rows its replay
    // then finds); flags that moved meanwhile plan the batch again (decision 0049).
    if writes.result.decisions.iter().any(|decision| matches!(decision.outcome, catalog_core::Outcome::Held(_))) {
        let locked = load::locked_flags(connection, keys, config.default_sync_enabled).await?;
        if (locked.tenants, locked.suppliers) != read_flags {
            return Err(StoreError::Conflict("sync flags changed while the batch was planned".to_owned()).into());
        }
        steps.done("lock_flags");
    }
    write::offers(connection, &writes, &revisions).await?;
    if locking == Locking::Pessimistic {
        // Locking created a row for every offer of the batch; one the batch did not write
        // must not outlive it as an offer at 0, nor be cached as one.
        let dropped = load::drop_unwritten_offers(connection, &keys.offers).await?;
        committed.retain(|(key, ..)| !dropped.contains(key));
    }
    steps.done("write_offers");
    if cache.is_some() {
        // Written: nothing further needs the offers' rows, so they move into the cache.
        committed.extend(std::mem::take(&mut writes.offers).into_iter().map(|offer| {
            let revision = revisions.get(&offer.key).copied().unwrap_or(ABSENT) + 1;
            (offer.key, offer.state, revision)
        }));
    }
    write::items(connection, &writes).await?;
    if locking == Locking::Pessimistic {
        // Locking created a row for every item of the batch; one the batch did not write
        // (its events held, or changing nothing) must not outlive it as an item at version 0.
        load::drop_unwritten_items(connection, &keys.items).await?;
    }
    steps.done("write_items");
    journal::insert(connection, &writes).await?;
    steps.done("insert_journal");
    journal::update(connection, &writes).await?;
    steps.done("update_journal");
    write::upsert_outbox(connection, &writes.outbox).await?;
    steps.done("upsert_outbox");
    write::checkpoints(connection, &writes).await?;
    steps.done("checkpoints");
    tracing::debug!(
        n_events = batch.events.len(),
        n_offers = keys.offers.len(),
        n_cached,
        ?locking,
        steps = %steps,
        "batch written, not yet committed"
    );
    Ok(Written { result: writes.result, committed })
}

/// How long each step of a batch took, for the debug log: where a slow batch spends its time.
struct Steps {
    last: std::time::Instant,
    taken: Vec<(&'static str, std::time::Duration)>,
}

impl Steps {
    fn start() -> Self {
        Self { last: std::time::Instant::now(), taken: Vec::with_capacity(12) }
    }

    fn done(&mut self, step: &'static str) {
        let now = std::time::Instant::now();
        self.taken.push((step, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Steps {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, (step, taken)) in self.taken.iter().enumerate() {
            let separator = if index == 0 { "" } else { " " };
            write!(formatter, "{separator}{step}={:.1}ms", taken.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}

/// A guarded write that changed fewer rows than planned lost a race: plan again.
pub(super) fn guard(table: &str, written: u64, planned: usize) -> Result<(), StoreError> {
    if written == planned as u64 {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "{} of {planned} {table} changed since they were read",
        planned as u64 - written.min(planned as u64)
    )))
}
