//! Journal retention (decision 0019): the journal keeps what was received within the
//! retention; older rows are archived, then dropped, day by day. Claims are kept apart for
//! the dedupe horizon (`catalog_core::ClockPolicy::claim_retention`), so a redelivery of an
//! event whose row is gone is still never applied twice. Held events are pending work: a day
//! that holds one is never dropped (Postgres) or keeps them (SQLite). Publish attempts and
//! drifts are kept for the journal's retention and dropped without an archive (decision 0030).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::StoreError;
use crate::model::JournalEntry;

/// Where retention writes the rows it is about to drop, one segment (a day of the journal)
/// at a time. A store drops a segment's rows only after [`ArchiveSink::finish`] returned.
pub trait ArchiveSink: Send + Sync {
    /// Starts the archive of segment `name` (the same name again starts it afresh).
    fn begin(&mut self, name: &str) -> std::io::Result<()>;
    /// Adds rows, in journal order.
    fn write(&mut self, entries: &[JournalEntry]) -> std::io::Result<()>;
    /// Makes the segment's archive durable and says where it is.
    fn finish(&mut self) -> std::io::Result<String>;
    /// Whether the pass is to stop at its next safe point (the worker is shutting down):
    /// before a segment, between the chunks of its archive, between the chunks of a prune.
    /// A segment whose archive was not finished is not dropped; the next pass archives it
    /// again whole. A pass over a long backlog held the worker's shutdown for as long as it
    /// took, past any orchestrator's grace period.
    fn stopping(&self) -> bool {
        false
    }
}

/// What one retention pass drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Journal rows received before this are archived and dropped; publish attempts made and
    /// drifts detected before it are dropped.
    pub journal_cutoff: DateTime<Utc>,
    /// Claims of events received before this are forgotten. Never later than
    /// `now - claim_retention`: the dedupe horizon depends on it.
    pub claim_cutoff: DateTime<Utc>,
    /// Rows read, deleted or archived per statement and per transaction.
    pub chunk: usize,
}

/// One segment retention archived and dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedSegment {
    pub name: String,
    pub rows: u64,
    pub archive: String,
}

/// A segment past the retention that was kept, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptSegment {
    pub name: String,
    /// Held events in it: pending work, decided once their tenant or supplier is switched on.
    pub held_events: u64,
}

/// What one retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Another process's pass held the store's retention lock: this one did nothing (every
    /// worker runs retention; one at a time archives and drops, decision 0019).
    pub another_pass_running: bool,
    pub dropped: Vec<DroppedSegment>,
    pub kept: Vec<KeptSegment>,
    /// Event id claims forgotten past the dedupe horizon, whether pruned apart or (SQLite)
    /// gone with their journal rows because they were past it already.
    pub claims_pruned: u64,
    /// Days of publish attempts dropped (Postgres partitions; SQLite days deleted from).
    pub attempt_days_dropped: u64,
    /// Drifts deleted: reconciliation's and full refreshes' findings of the past.
    pub drifts_pruned: u64,
    /// Dead letters resolved before the cutoff, deleted (open ones stay, whatever their age).
    pub dead_letters_pruned: u64,
    /// Rows fewer in `feed_windows`: old windows that overlap or touch merged into one
    /// (decision 0035).
    pub feed_windows_compacted: u64,
    /// The pass stopped early, told to by its sink ([`ArchiveSink::stopping`]): what it did
    /// is above, the next pass goes on from there.
    pub stopped: bool,
}

/// How far back the journal and the publish attempts reach, for trace and replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalHorizon {
    /// Rows received before this were archived and dropped (held events excepted); `None`
    /// while no journal day was dropped.
    pub kept_since: Option<DateTime<Utc>>,
    /// Where the last archive went.
    pub archive: Option<String>,
    /// Publish attempts made before this were dropped (not archived); `None` while none was.
    pub attempts_kept_since: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait RetentionStore: Send + Sync + std::fmt::Debug {
    /// Makes room for journal rows received and publish attempts made until `until` (Postgres
    /// creates daily partitions of both ahead); idempotent. Returns how many segments it created.
    async fn prepare_journal(&self, until: DateTime<Utc>) -> Result<u32, StoreError>;

    /// Archives through `sink`, then drops, every journal segment received before
    /// `policy.journal_cutoff`, oldest first; drops the publish attempts and drifts older
    /// than it, and the dead letters resolved before it; merges the feed windows completed
    /// before it that overlap or touch; and forgets claims older than `policy.claim_cutoff`.
    /// Safe beside a running worker.
    async fn expire_journal(
        &self,
        policy: &RetentionPolicy,
        sink: &mut dyn ArchiveSink,
    ) -> Result<RetentionReport, StoreError>;

    /// `None` until retention first dropped journal rows or publish attempts.
    async fn journal_horizon(&self) -> Result<Option<JournalHorizon>, StoreError>;
}
