//! The source port: what every source (Kafka, an NDJSON file or stdin, a pulled feed) hands
//! its batches to, and what it tells about its own failures. Nothing here names a source's
//! client library; a position is opaque to everyone but the source that wrote it.

use std::sync::Arc;

use async_trait::async_trait;
use catalog_core::{FailureClass, InvalidTraceParent};
use catalog_store::{IncomingEvent, Position, SourceRef};
use chrono::{DateTime, Utc};

/// A batch of one partition of a source, in source order, ready to be made durable.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The source's stable name (`kafka:{group}:{topic}`, `file:{path}`, `stdin`): the key of
    /// its checkpoints, shared with its events' `SourceRef`s.
    pub source: Arc<str>,
    /// The partition; 0 for a source that has one.
    pub partition: i32,
    pub events: Vec<IncomingEvent>,
    /// The position after the batch's last message, stored in the batch's transaction;
    /// `None` for a source that cannot resume (stdin).
    pub checkpoint: Option<Position>,
    /// Broker time of the batch's last message: queue lag is now minus this.
    pub last_message_at: Option<DateTime<Utc>>,
    /// The partition's end when the batch was cut, if known: lag in messages.
    pub high_watermark: Option<i64>,
}

/// What a sink found once a batch was durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durable {
    /// Messages of the batch its partition's stored position had passed when the batch was
    /// applied: applied already by another worker (or another run of a feed), so not by this
    /// batch (decision 0028). A batch found committed after its own failed attempt counts
    /// none: it applied them itself.
    pub applied_elsewhere: usize,
}

/// Why a source read a message again that the store holds: a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reread {
    /// Read while checking where a partition's reading starts: stepping back until a fetch
    /// starts at or before the store's checkpoint (decision 8), or a fetch from the group's
    /// committed offset, behind the checkpoint.
    StartCheck,
    /// Delivered again while the partition was being read (a broker that resets its fetch):
    /// at or below a message read already.
    Refetch,
}

impl Reread {
    pub fn as_str(self) -> &'static str {
        match self {
            Reread::StartCheck => "start_check",
            Reread::Refetch => "refetch",
        }
    }
}

/// Why a sink gave up on a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Shutting down before the batch was durable: it is abandoned, not committed.
    #[error("abandoned at shutdown")]
    Abandoned,
    /// The sink cannot go on (a fatal store problem): the source stops.
    #[error("{0}")]
    Fatal(String),
}

/// A failure inside a source (a broker error, a failed commit, an unreadable file), told to
/// the sink to be counted and logged once; the source decides itself whether to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// The kind of source: `kafka`, `file`, `feed`.
    pub source: &'static str,
    /// Where it happened: `consume`, `commit`, `seek`, `metadata`, … (a metric label).
    pub operation: &'static str,
    pub class: FailureClass,
    pub message: String,
}

/// Where a source delivers batches: `apply` returns only once the batch is durable.
#[async_trait]
pub trait BatchSink: Send + Sync + 'static {
    /// The stored position of a source's partition, if any.
    async fn checkpoint(&self, source: &str, partition: i32) -> Result<Option<Position>, SinkError>;
    /// Makes a batch durable (retrying transient failures itself), or says why not.
    async fn apply(&self, batch: SourceBatch) -> Result<Durable, SinkError>;
    /// The broker no longer holds what was applied below the stored checkpoint `from`: the
    /// partition ends below it, or its topic was recreated (decision 0040). Moves the checkpoint
    /// back to `to` (the partition's low watermark, in the topic as it is now: its id in the
    /// cursor when known), so what the partition holds now is read
    /// and applied (what the store holds already is a duplicate); counted and logged. `to` at
    /// `from` itself names the log of a checkpoint written without one, or, with no cursor,
    /// takes a feed run's cursor off (decision 0015): not counted.
    /// `false`: the checkpoint had moved on from `from`, and was left alone.
    async fn rewind_checkpoint(
        &self,
        source: &str,
        partition: i32,
        from: i64,
        to: &Position,
    ) -> Result<bool, SinkError>;
    /// The source read a message of a partition again, below where its reading stands, and
    /// skipped it: the store holds it. Counted by why; no other worker applied it (what the
    /// store's fence finds another worker applied is counted by the sink itself).
    fn reread(&self, partition: i32, reason: Reread);
    /// Where a partition's reading starts, known before any batch: `next_offset` is the first
    /// position not applied, `high_watermark` the partition's end as the broker told it while
    /// the assignment's start was checked (at or beyond `next_offset`; told again when a later
    /// answer knows better). Sets its queue lag from there on.
    fn reading_starts(&self, partition: i32, next_offset: i64, high_watermark: i64);
    /// A source reported a failure; counted and logged.
    fn source_error(&self, error: &SourceError);
    /// Positions `from..to` of a partition, never applied, are gone from the source (a
    /// broker's retention deleted them): they will never be delivered. Counted and logged,
    /// never silently.
    fn offset_gap(&self, partition: i32, from: i64, to: i64);
    /// The message at `at` carried an invalid `traceparent`: it is applied without one.
    /// Counted and logged.
    fn invalid_traceparent(&self, at: &SourceRef, invalid: InvalidTraceParent);
    /// The source started reading a partition: its progress is reported from now on
    /// (queue lag), and its silence counts once the worker stops reporting.
    fn partition_started(&self, source: &str, partition: i32);
    /// A message of a partition is waiting to be applied, received (or stamped by the
    /// broker) at `at`. Sources call it for the first message of each pending batch: the
    /// oldest the partition holds unapplied until the batch with it is durable.
    fn message_waiting(&self, source: &str, partition: i32, at: DateTime<Utc>);
    /// The source read a partition to its end and stops (a file), or no longer owns it (a
    /// revoked Kafka partition, whose new owner reports it): its progress is forgotten, so
    /// this worker's silence on it from now on is no lag.
    fn partition_done(&self, source: &str, partition: i32);
}
