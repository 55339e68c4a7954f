//! The sink every source delivers to: applies a batch through the store, retrying what is
//! retryable and never skipping a batch, then records what happened (metrics, logs, totals)
//! and wakes the publishers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use catalog_core::{FailureClass, InvalidTraceParent, Outcome, PartitionProgress};
use catalog_publish::WorkSignal;
use catalog_store::{BatchInput, BatchResult, BatchStore, Checkpoint, Position, SourceRef};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::source::{BatchSink, Durable, Reread, SinkError, SourceBatch, SourceError};

mod durable;
mod skipped;

use durable::Applied;

/// Counts for the end-of-run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub events_by_outcome: BTreeMap<&'static str, u64>,
    pub items_changed: u64,
    /// Events of batches found durable after their commit failed to confirm: decided, with
    /// their outcomes in the journal but not in `events_by_outcome`.
    pub events_unconfirmed: u64,
    /// Messages another worker had applied (a partition held by two members of the group, a
    /// file read by two workers): skipped by the store's fence, not decided here.
    pub events_applied_elsewhere: u64,
}

/// How the applier retries a store operation that failed: exponential backoff between these
/// bounds, for as long as it takes (a batch is never skipped), unless the failure is fatal or
/// the worker shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { first_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(10) }
    }
}

/// Whether batches become durable: per source partition, since when every attempt at its
/// batch has failed. A store that answers a ping but refuses writes (a read-only standby
/// after a failover, a full disk), or refuses one partition's batch for good, is retried with
/// backoff for ever; this says so to readiness and `/metrics`. Per partition, so another
/// partition's commits do not hide one that is stuck.
#[derive(Debug, Clone, Default)]
pub struct WriteHealth(Arc<Mutex<BTreeMap<(String, i32), Instant>>>);

impl WriteHealth {
    /// How long every attempt at the longest-failing partition's batch has failed; `None`
    /// while every partition's batches commit.
    pub fn failing_for(&self) -> Option<Duration> {
        self.lock().values().min().map(Instant::elapsed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, i32), Instant>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An attempt at `partition`'s batch failed: the first of a run of failures starts its
    /// clock.
    pub(crate) fn failed(&self, source: &str, partition: i32) {
        self.lock().entry((source.to_owned(), partition)).or_insert_with(Instant::now);
    }

    /// `partition`'s batch became durable. Whether it had been failing: nothing changes, and
    /// nothing is allocated, for a batch that commits while none fails.
    pub(crate) fn succeeded(&self, source: &str, partition: i32) -> bool {
        let mut failing = self.lock();
        !failing.is_empty() && failing.remove(&(source.to_owned(), partition)).is_some()
    }
}

/// The [`BatchSink`] of the worker.
#[derive(Debug)]
pub struct Applier {
    /// Per source partition, since when every attempt to make its batch durable has failed.
    writes: WriteHealth,
    store: Arc<dyn BatchStore>,
    metrics: Metrics,
    retry: RetryPolicy,
    shutdown: CancellationToken,
    /// Signalled after each batch that queued publishes.
    publish_work: WorkSignal,
    totals: Mutex<Totals>,
    /// What each source partition read by this worker has waiting, for the progress reports.
    progress: Mutex<Progress>,
}

/// The partitions a worker reads and the oldest message each holds unapplied, and the ones
/// read to their end, to be forgotten by the next report.
#[derive(Debug, Default)]
struct Progress {
    partitions: BTreeMap<(String, i32), Option<DateTime<Utc>>>,
    done: Vec<(String, String)>,
}

/// What a worker reports of its partitions' progress (`SignalStore::report_progress`), and
/// the partitions it read to their end (`forget_progress`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgressReport {
    pub partitions: Vec<PartitionProgress>,
    pub done: Vec<(String, String)>,
}

impl Applier {
    pub fn new(store: Arc<dyn BatchStore>, metrics: Metrics, shutdown: CancellationToken) -> Self {
        Self {
            store,
            metrics,
            retry: RetryPolicy::default(),
            shutdown,
            publish_work: WorkSignal::new(),
            totals: Mutex::default(),
            progress: Mutex::default(),
            writes: WriteHealth::default(),
        }
    }

    /// Whether batches become durable: what readiness follows.
    pub fn write_health(&self) -> WriteHealth {
        self.writes.clone()
    }

    /// Every partition this worker reads, as of `now`, and the ones read to their end since
    /// the last report (taken: each is reported done once).
    pub fn take_progress(&self, now: DateTime<Utc>) -> ProgressReport {
        let mut progress = self.progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let partitions = progress
            .partitions
            .iter()
            .map(|((source, partition), oldest)| PartitionProgress {
                source: source.clone(),
                partition: partition.to_string(),
                reported_at: now,
                oldest_unapplied_at: *oldest,
            })
            .collect();
        let done = std::mem::take(&mut progress.done);
        ProgressReport { partitions, done }
    }

    /// Partitions read to their end whose forgetting the store did not take: forgotten at the
    /// next report instead (left standing, their reports would age into lag for good).
    pub fn forget_later(&self, done: Vec<(String, String)>) {
        self.with_progress(|progress| progress.done.extend(done));
    }

    fn with_progress(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// What publishers wait on to hear that a batch queued publishes.
    pub fn publish_work(&self) -> &WorkSignal {
        &self.publish_work
    }

    pub fn totals(&self) -> Totals {
        self.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A batch found durable after its own commit failed: its decisions are in the journal
    /// but were never returned, so its events are counted apart from the outcomes.
    fn record_unconfirmed(&self, batch: &SourceBatch, n_events: usize, elapsed: Duration) {
        let kind = source_kind(&batch.source);
        self.metrics.batch_apply_seconds.with_label_values(&[kind]).observe(elapsed.as_secs_f64());
        self.metrics.batches_commit_unconfirmed.with_label_values(&[kind]).inc();
        self.metrics.events_commit_unconfirmed.with_label_values(&[kind]).inc_by(n_events as u64);
        self.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).events_unconfirmed += n_events as u64;
        tracing::warn!(
            source = &*batch.source,
            partition = batch.partition,
            n_events,
            next_offset = batch.checkpoint.as_ref().map(|position| position.offset),
            "the batch's commit failed to confirm, but the store's checkpoint has passed it: it is durable and not \
             applied again; its events' outcomes are in the journal"
        );
    }

    fn record(&self, batch: &SourceBatch, result: &BatchResult, elapsed: Duration) {
        let source = &*batch.source;
        self.metrics.batch_apply_seconds.with_label_values(&[source_kind(source)]).observe(elapsed.as_secs_f64());
        // Counted per (outcome, reason) first: one metric update per label set, not per event.
        let mut counts: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        let mut redeliveries = [0_u64; 2];
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        for (event, decision) in batch.events.iter().zip(&result.decisions) {
            let outcome = decision.outcome.as_str();
            *counts.entry((outcome, decision.reason().unwrap_or(""))).or_insert(0) += 1;
            if let Some(redelivery) = decision.redelivery {
                redeliveries[usize::from(redelivery.payload_differs)] += 1;
            }
            match (&decision.outcome, &event.delivery.decoded) {
                (Outcome::Rejected(reason), Err(rejection)) => tracing::warn!(
                    tenant = %rejection.tenant.as_ref().map(ToString::to_string).unwrap_or_default(),
                    event_id = %rejection.event_id.map(|id| id.to_string()).unwrap_or_default(),
                    reason = reason.as_str(), detail = %rejection.detail,
                    source = %event.source.source, partition = event.source.partition, offset = event.source.offset,
                    "event rejected"
                ),
                (_, Ok(decoded)) if debug => tracing::debug!(
                    tenant = %decoded.offer().tenant, sku = %decoded.offer().sku, event_id = %decoded.event_id(),
                    outcome, reason = decision.reason(), traceparent = event.traceparent.as_ref().map(catalog_core::TraceParent::as_str),
                    "event decided"
                ),
                _ => {}
            }
        }
        let mut totals = self.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((outcome, reason), count) in counts {
            *totals.events_by_outcome.entry(outcome).or_insert(0) += count;
            self.metrics.events.with_label_values(&[outcome, reason]).inc_by(count);
        }
        for (differs, count) in [("false", redeliveries[0]), ("true", redeliveries[1])] {
            if count > 0 {
                self.metrics.redeliveries.with_label_values(&[differs]).inc_by(count);
            }
        }
        totals.items_changed += result.changed_items.len() as u64;
        self.metrics.items_changed.inc_by(result.changed_items.len() as u64);
        for item in result.changed_items.iter().filter(|_| debug).map(|changed| &changed.item) {
            tracing::debug!(
                tenant = %item.tenant(),
                sku = %item.sku(),
                item_id = %item.id(),
                version = item.version(),
                quantity = item.quantity(),
                "item changed"
            );
        }
        let messages_behind =
            batch.high_watermark.zip(batch.checkpoint.as_ref()).map(|(end, position)| (end - position.offset).max(0));
        self.set_queue_lag(batch.partition, messages_behind, batch.last_message_at);
        tracing::debug!(
            source,
            n_events = batch.events.len(),
            n_items_changed = result.changed_items.len(),
            next_offset = batch.checkpoint.as_ref().map(|position| position.offset),
            "batch applied"
        );
    }

    /// Sets a partition's queue lag as far as it is known: in messages when its end is
    /// known; in seconds 0 when nothing waits, however old the last message (a partition gone
    /// quiet read 5 minutes of lag for good), else since the last message applied, when that
    /// is known. Nothing is set for what is not known: an absent series, never a made-up 0.
    fn set_queue_lag(&self, partition: i32, messages_behind: Option<i64>, last_message_at: Option<DateTime<Utc>>) {
        let partition = partition.to_string();
        if let Some(lag) = messages_behind {
            self.metrics.queue_lag_messages.with_label_values(&[&partition]).set(lag);
        }
        let seconds_behind = match (messages_behind, last_message_at) {
            (Some(0), _) => Some(0),
            (_, Some(last_message_at)) => Some((Utc::now() - last_message_at).num_seconds().max(0)),
            (_, None) => None,
        };
        match seconds_behind {
            Some(lag) => self.metrics.queue_lag_seconds.with_label_values(&[&partition]).set(lag),
            // Messages wait, since when is not known: a value set before (0 when nothing
            // waited) no longer holds.
            None if messages_behind.is_some_and(|lag| lag > 0) => {
                let _ = self.metrics.queue_lag_seconds.remove_label_values(&[&partition]);
            }
            None => {}
        }
    }
}

/// The metric label of a source name: `kafka`, `file`, `stdin`, `feed`, or `other`.
fn source_kind(source: &str) -> &'static str {
    match source.split(':').next() {
        Some("kafka") => "kafka",
        Some("file") => "file",
        Some("stdin") => "stdin",
        Some("feed") => "feed",
        _ => "other",
    }
}

#[async_trait]
impl BatchSink for Applier {
    async fn checkpoint(&self, source: &str, partition: i32) -> Result<Option<Position>, SinkError> {
        let checkpoints = self.with_retries("checkpoints", || self.store.checkpoints(source)).await?;
        Ok(checkpoints.into_iter().find(|checkpoint| checkpoint.partition == partition).map(|c| c.position))
    }

    async fn rewind_checkpoint(
        &self,
        source: &str,
        partition: i32,
        from: i64,
        to: &Position,
    ) -> Result<bool, SinkError> {
        let rewound = self
            .with_retries("rewind_checkpoint", || self.store.rewind_checkpoint(source, partition, from, to))
            .await?;
        if rewound && to.offset == from {
            // Where it stands, its log named: nothing is read again. Without a cursor, a feed
            // run's cursor taken off (fenced by another run's pages): the caller tells why.
            if to.cursor.is_some() {
                tracing::info!(
                    source,
                    partition,
                    checkpoint = from,
                    cursor = to.cursor,
                    "the checkpoint names its log now"
                );
            }
        } else if rewound {
            self.metrics.checkpoints_beyond_end.with_label_values(&[&partition.to_string()]).inc();
            tracing::error!(
                source,
                partition,
                checkpoint = from,
                low_watermark = to.offset,
                class = FailureClass::NeedsOperator.as_str(),
                "the broker no longer holds what the stored checkpoint passed (the topic recreated or truncated): \
                 reading the partition again from its low watermark; what the store holds already is a duplicate"
            );
        }
        Ok(rewound)
    }

    async fn apply(&self, mut batch: SourceBatch) -> Result<Durable, SinkError> {
        let started = Instant::now();
        let checkpoints = batch
            .checkpoint
            .iter()
            .map(|position| Checkpoint {
                source: batch.source.to_string(),
                partition: batch.partition,
                position: position.clone(),
            })
            .collect();
        let mut input = BatchInput::new(std::mem::take(&mut batch.events), checkpoints);
        // A Kafka message's offset, a file line's position (counted across the files read at
        // its path) and a feed record's page (every record of a page carries the page's number,
        // and the checkpoint the next page's) are their checkpoint's units: what the stored
        // position has passed is applied already (decision 0028). Standard input keeps no
        // checkpoint, and a full refresh's corrections none either.
        input.skip_applied = matches!(source_kind(&batch.source), "kafka" | "file" | "feed");
        let applied = self.apply_until_durable(&input, &batch.source, batch.partition).await?;
        batch.events = input.events;
        // Sources hand over everything they held with the batch: the partition has nothing
        // waiting until its next message. Only a partition its source reports on (started, not
        // done) has progress: a feed's pages, or a late batch of a partition given away, would
        // leave a row no one forgets, aging into queue lag for every tenant once it stops.
        self.with_progress(|progress| {
            if let Some(oldest) = progress.partitions.get_mut(&(batch.source.to_string(), batch.partition)) {
                *oldest = None;
            }
        });
        match applied {
            Applied::Confirmed(result) => {
                self.skip_applied_before(&mut batch, &result.applied_before);
                self.of_a_replaced_topic(&batch, &result.of_another_log);
                self.record(&batch, &result, started.elapsed());
                if !result.changed_items.is_empty() {
                    self.publish_work.notify();
                }
                Ok(Durable { applied_elsewhere: result.applied_before.len() })
            }
            Applied::Unconfirmed(n_events) => {
                self.record_unconfirmed(&batch, n_events, started.elapsed());
                // Whatever it queued waits in the outbox.
                self.publish_work.notify();
                Ok(Durable::default())
            }
        }
    }

    fn reread(&self, partition: i32, reason: Reread) {
        self.metrics.rereads.with_label_values(&[&partition.to_string(), reason.as_str()]).inc();
    }

    fn reading_starts(&self, partition: i32, next_offset: i64, high_watermark: i64) {
        self.set_queue_lag(partition, Some((high_watermark - next_offset).max(0)), None);
    }

    fn offset_gap(&self, partition: i32, from: i64, to: i64) {
        self.metrics.offset_gaps.with_label_values(&[&partition.to_string()]).inc_by((to - from).max(0) as u64);
        tracing::error!(
            partition,
            from,
            to,
            class = FailureClass::NeedsSupplier.as_str(),
            "offsets deleted by the broker's retention before they were applied; those messages are lost"
        );
    }

    fn invalid_traceparent(&self, at: &SourceRef, invalid: InvalidTraceParent) {
        self.metrics.traceparent_invalid.with_label_values(&[invalid.as_str()]).inc();
        tracing::warn!(
            source = %at.source,
            partition = at.partition,
            offset = at.offset,
            reason = invalid.as_str(),
            "invalid traceparent header dropped; the event is applied without it"
        );
    }

    fn partition_started(&self, source: &str, partition: i32) {
        self.with_progress(|progress| {
            progress.partitions.entry((source.to_owned(), partition)).or_insert(None);
        });
    }

    fn message_waiting(&self, source: &str, partition: i32, at: DateTime<Utc>) {
        self.with_progress(|progress| {
            let oldest = progress.partitions.entry((source.to_owned(), partition)).or_insert(None);
            *oldest = Some(oldest.map_or(at, |oldest| oldest.min(at)));
        });
    }

    fn partition_done(&self, source: &str, partition: i32) {
        self.with_progress(|progress| {
            progress.partitions.remove(&(source.to_owned(), partition));
            progress.done.push((source.to_owned(), partition.to_string()));
        });
        // Its new owner reports its lag: this worker's last value must not stand for it on a
        // dashboard's max. (A series never set has nothing to remove.)
        let label = partition.to_string();
        let _ = self.metrics.queue_lag_seconds.remove_label_values(&[&label]);
        let _ = self.metrics.queue_lag_messages.remove_label_values(&[&label]);
    }

    fn source_error(&self, error: &SourceError) {
        self.metrics.source_errors.with_label_values(&[error.source, error.operation, error.class.as_str()]).inc();
        match error.class {
            FailureClass::Retryable => {
                // Retryable, but not always retried at once: a file's half line waits for the
                // next run. The error says what happens to it.
                tracing::warn!(source = error.source, operation = error.operation, class = error.class.as_str(), error = %error.message, "source error")
            }
            class => {
                tracing::error!(source = error.source, operation = error.operation, class = class.as_str(), error = %error.message, "source error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One partition's batch failing for good is not hidden by another's commits: the
    /// longest run of failures counts, until that partition's batch commits.
    #[test]
    fn a_stuck_partition_is_not_hidden_by_another_s_commits() {
        let writes = WriteHealth::default();
        assert_eq!(writes.failing_for(), None);
        writes.failed("kafka:g:t", 0);
        writes.failed("kafka:g:t", 1);
        writes.succeeded("kafka:g:t", 1);
        assert!(writes.failing_for().is_some(), "partition 0 still fails");
        writes.failed("kafka:g:t", 0);
        writes.succeeded("kafka:g:t", 0);
        assert_eq!(writes.failing_for(), None);
    }
}
