//! One assigned partition: check where its fetch starts (`rewind`), cut its messages into
//! batches (count, bytes or wait), hand each to the sink, and commit the offset to Kafka once
//! the sink says the batch is durable. Its messages come from a [`Feed`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_app::{BatchLimits, BatchSink, PendingBatch, SinkError, SourceBatch, SourceError};
use catalog_core::FailureClass;
use catalog_store::{IncomingEvent, Position, SourceRef};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::StartWithoutCheckpoint;
use crate::context::{lock, source_error};
use crate::feed::{Feed, OwnedDelivery, PartitionInput};
use crate::native;
use crate::rewind::{Check, Rewind};
use crate::source::SourceConsumer;

/// How long one seek, or one read of a partition's watermarks, may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// While the start is unchecked and nothing arrives, how long to wait before stepping back
/// (doubling up to [`MAX_IDLE_CHECK`]).
const FIRST_IDLE_CHECK: Duration = Duration::from_millis(500);
const MAX_IDLE_CHECK: Duration = Duration::from_secs(5);

/// How long the check of a checkpoint beyond the partition's reported end reads the
/// partition's last records at most (decision 0040)…
const END_CHECK: Duration = Duration::from_secs(5);
/// …and how long a fetch that delivered something stays quiet once it has read to the end.
const END_QUIET: Duration = Duration::from_millis(500);

pub(crate) struct PartitionWorker {
    pub(crate) topic: String,
    pub(crate) source: String,
    pub(crate) partition: i32,
    pub(crate) batch_size: usize,
    pub(crate) batch_max_wait: Duration,
    /// The worker's budget of message bytes in pending batches, shared evenly by…
    pub(crate) max_bytes_in_flight: usize,
    /// …the partitions this source reads.
    pub(crate) n_partitions: Arc<AtomicUsize>,
    pub(crate) start_without_checkpoint: StartWithoutCheckpoint,
    pub(crate) consumer: Arc<SourceConsumer>,
    pub(crate) assigned: Arc<Mutex<HashSet<i32>>>,
    pub(crate) high_watermarks: Arc<Mutex<std::collections::HashMap<i32, i64>>>,
    pub(crate) sink: Arc<dyn BatchSink>,
    /// Cancelled when the source stops: ends waits on the broker.
    pub(crate) stop: CancellationToken,
}

/// What the check of a stored checkpoint against the partition's end found.
enum End {
    /// The partition holds the checkpoint's last message (or the check could not tell).
    Holds,
    /// The partition ends below the checkpoint, which was moved back to this offset, the
    /// partition's low watermark.
    Rewound(i64),
    /// The feed ended (shutdown) or the partition was revoked during the check.
    Ended,
}

/// What the start check looks at.
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// A message at this offset.
    Message(i64),
    /// Nothing for a while since the last seek.
    Nothing,
}

impl PartitionWorker {
    /// Runs one assignment of the partition until its feed ends (shutdown: apply what is
    /// held) or the partition is revoked (drop what is held).
    pub(crate) async fn run(&self, mut input: Feed<'_>) -> Result<(), SinkError> {
        // Anything below the wanted offset was applied already (the Kafka commit after it may
        // have been lost in a crash): skip it rather than journal it again. Until a fetch is
        // seen to start at or before it, the start is checked (`rewind`).
        let Some((mut next_offset, mut rewind)) = self.start(&mut input).await? else { return Ok(()) };
        self.sink.partition_started(&self.source, self.partition);
        let mut pending: PendingBatch<OwnedDelivery> = PendingBatch::new(self.limits());
        // One timer per batch, armed by its first message: not one per message received.
        let mut deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let mut idle_check = FIRST_IDLE_CHECK;
        // Whether a message past the start was read: from then on, offsets jumped over are
        // checked (the start check accounts for those before the first).
        let mut reading = false;
        loop {
            let received = match (deadline.as_mut(), rewind.as_mut()) {
                (Some(timer), _) => tokio::select! {
                    biased;
                    received = input.next() => received,
                    () = timer.as_mut() => {
                        next_offset = self.flush(&mut pending, next_offset).await?;
                        deadline = None;
                        continue;
                    }
                },
                // Nothing arrives while the start is unchecked: a fetch from inside the
                // partition's last record batch returns nothing (tansu 0.6), so step back.
                (None, Some(unchecked)) => tokio::select! {
                    biased;
                    received = input.next() => received,
                    () = tokio::time::sleep(idle_check) => {
                        idle_check = (idle_check * 2).min(MAX_IDLE_CHECK);
                        self.check_start(unchecked, Seen::Nothing).await;
                        continue;
                    }
                },
                (None, None) => input.next().await,
            };
            match received {
                Some(PartitionInput::Message(delivery)) => {
                    if let Some(unchecked) = rewind.as_mut() {
                        idle_check = FIRST_IDLE_CHECK;
                        if !self.check_start(unchecked, Seen::Message(delivery.offset)).await {
                            continue;
                        }
                        next_offset = unchecked.want();
                        if unchecked.n_seeks() > 0 {
                            tracing::info!(
                                partition = self.partition,
                                offset = delivery.offset,
                                wanted = next_offset,
                                n_seeks = unchecked.n_seeks(),
                                "fetch starts at or before the wanted offset after stepping back"
                            );
                        }
                        rewind = None;
                    }
                    // Below the checkpoint, or at or below a message the pending batch holds
                    // (a broker that resets its fetch delivers messages again): held already.
                    let expected = pending.last().map_or(next_offset, |last| last.offset + 1);
                    if delivery.offset < expected {
                        self.sink.skipped_below_checkpoint(self.partition, 1);
                        continue;
                    }
                    if reading && delivery.offset > expected {
                        self.check_jump(expected, delivery.offset);
                    }
                    reading = true;
                    if pending.is_empty() {
                        let at = delivery.broker_timestamp.unwrap_or(delivery.received_at);
                        self.sink.message_waiting(&self.source, self.partition, at);
                        pending.set_limits(self.limits());
                        deadline = Some(Box::pin(tokio::time::sleep(self.batch_max_wait)));
                    }
                    let n_bytes = delivery.payload.len();
                    if pending.push(delivery, n_bytes) {
                        next_offset = self.flush(&mut pending, next_offset).await?;
                        deadline = None;
                    }
                }
                Some(PartitionInput::Revoked) => {
                    tracing::info!(partition = self.partition, n_dropped = pending.len(), "partition revoked");
                    // Its new owner reports its progress from now on; this member's last
                    // report must not stand in for it.
                    self.sink.partition_done(&self.source, self.partition);
                    return Ok(());
                }
                None => {
                    self.flush(&mut pending, next_offset).await?;
                    return Ok(());
                }
            }
            if pending.is_empty() {
                deadline = None;
            }
        }
    }

    /// This partition's share of the bytes in flight.
    fn limits(&self) -> BatchLimits {
        BatchLimits::share(self.batch_size, self.max_bytes_in_flight, self.n_partitions.load(Ordering::Relaxed))
    }

    /// Where this assignment starts reading, and the check of it (`None`: from wherever the
    /// group's committed offset says, unchecked). A partition read from its own queue seeks
    /// there before reading anything; one fed by the dispatcher already holds a message, and
    /// checks that. `None`: the source stopped, or lost the partition, before it started.
    async fn start(&self, input: &mut Feed<'_>) -> Result<Option<(i64, Option<Rewind>)>, SinkError> {
        let seek_first = matches!(input, Feed::Queue(_));
        let stored = self.sink.checkpoint(&self.source, self.partition).await?;
        let (want, low_watermark) = match (stored, self.start_without_checkpoint) {
            (Some(position), _) => match self.check_end(input, position.offset).await? {
                End::Holds => (position.offset, None),
                End::Rewound(low) => (low, Some(low)),
                End::Ended => return Ok(None),
            },
            (None, StartWithoutCheckpoint::Committed) => {
                tracing::info!(
                    partition = self.partition,
                    "no stored checkpoint: starting from the group's committed offset"
                );
                return Ok(Some((0, None)));
            }
            (None, choice) => {
                // `None`: the source is stopping, or lost the partition, before the broker answered.
                let Some((low, high)) = self.watermarks().await else { return Ok(Some((0, None))) };
                let want = if choice == StartWithoutCheckpoint::Latest { high } else { low };
                tracing::info!(
                    partition = self.partition,
                    offset = want,
                    start = choice.as_str(),
                    "no stored checkpoint: reading from the partition's {} offset, not the group's committed one",
                    choice.as_str()
                );
                (want, Some(low))
            }
        };
        let mut rewind =
            if seek_first && self.seek(want).await { Rewind::sought_at_start(want) } else { Rewind::new(want) };
        if let Some(low) = low_watermark {
            // Read just now, and the wanted offset is not below it: no gap.
            let _ = rewind.low_watermark(low);
        }
        Ok(Some((want, Some(rewind))))
    }

    /// Checks a stored checkpoint against the partition's end (decision 0040). A partition
    /// that ends below it (a topic recreated, or truncated) holds messages the store never
    /// applied at offsets it takes for applied: the checkpoint is moved back to the low
    /// watermark. Kafka reports the end exactly; tansu reports its last record batch's first
    /// offset plus one, so an end below the checkpoint is read from there: a record at or past
    /// the checkpoint's last message says the partition holds it. Records delivered, none that
    /// far, then a quiet fetch: it ends below. Nothing delivered: the end read again decides.
    async fn check_end(&self, input: &mut Feed<'_>, want: i64) -> Result<End, SinkError> {
        let Some((low, high)) = self.watermarks().await else { return Ok(End::Ended) };
        if want <= high {
            return Ok(End::Holds);
        }
        if !self.seek((high - 1).max(low)).await {
            return Ok(End::Ended);
        }
        let began = std::time::Instant::now();
        let mut delivered = None;
        loop {
            let quiet = if delivered.is_some() { END_QUIET } else { END_CHECK };
            let left = END_CHECK.saturating_sub(began.elapsed());
            let received = tokio::select! {
                received = input.next() => received,
                () = tokio::time::sleep(quiet.min(left)) => break,
            };
            match received {
                Some(PartitionInput::Message(delivery)) if delivery.offset >= want - 1 => return Ok(End::Holds),
                Some(PartitionInput::Message(delivery)) => delivered = Some(delivery.offset),
                Some(PartitionInput::Revoked) | None => return Ok(End::Ended),
            }
        }
        let Some((low, high)) = self.watermarks().await else { return Ok(End::Ended) };
        if delivered.is_none() && want <= high {
            return Ok(End::Holds);
        }
        tracing::warn!(
            partition = self.partition,
            checkpoint = want,
            high_watermark = high,
            last_offset_read = delivered,
            "the partition ends below the stored checkpoint"
        );
        if self.sink.rewind_checkpoint(&self.source, self.partition, want, low).await? {
            Ok(End::Rewound(low))
        } else {
            Ok(End::Holds)
        }
    }

    /// Checks what was seen against the start, and does what the check asks: a seek back, or
    /// reading the low watermark (offsets below it the store lacks are a gap, reported once)
    /// and checking again. `true`: read on from the message seen.
    async fn check_start(&self, rewind: &mut Rewind, seen: Seen) -> bool {
        loop {
            let check = match seen {
                Seen::Message(offset) => rewind.check(offset),
                Seen::Nothing => match rewind.idle() {
                    Some(check) => check,
                    None => return false,
                },
            };
            match (check, seen) {
                (Check::Started, Seen::Message(_)) => return true,
                (Check::NoRecordsBetween { from, to }, Seen::Message(_)) => {
                    tracing::warn!(
                        partition = self.partition,
                        from,
                        to,
                        "the broker holds no records between these offsets, even from its low watermark; reading on"
                    );
                    return true;
                }
                (Check::SeekTo(position), _) => {
                    tracing::info!(
                        partition = self.partition,
                        wanted = rewind.want(),
                        position,
                        "fetch began beyond the wanted offset, stepping back"
                    );
                    self.seek(position).await;
                    return false;
                }
                (Check::NeedsLowWatermark, _) => {
                    let Some((low, _)) = self.watermarks().await else { return false };
                    if let Some((from, to)) = rewind.low_watermark(low) {
                        self.sink.offset_gap(self.partition, from, to);
                    }
                }
                (Check::Stale | Check::Started | Check::NoRecordsBetween { .. }, _) => return false,
            }
        }
    }

    /// Offsets jumped over between two messages: none held a record of this partition's
    /// (a compacted topic, a transaction's marker), or retention deleted them before they
    /// were fetched, and librdkafka started the fetch again at the partition's new start
    /// (`auto.offset.reset`, decision 0041). The low watermark librdkafka read with the fetch
    /// that brought `offset` tells: offsets below it that were never delivered are a gap.
    fn check_jump(&self, expected: i64, offset: i64) {
        let Some((low, _)) = native::cached_watermarks(&self.consumer, &self.topic, self.partition) else { return };
        if low > expected {
            self.sink.offset_gap(self.partition, expected, low.min(offset));
        }
    }

    /// Whether the source runs and this member still owns the partition: waits on the broker
    /// end otherwise.
    fn still_reading(&self) -> bool {
        !self.stop.is_cancelled() && lock(&self.assigned).contains(&self.partition)
    }

    /// Seeks the partition's fetch to `offset` and waits until librdkafka has done it,
    /// retrying while the fetch has not started yet (right after an assignment, a seek fails
    /// until the group's committed offset is read); `false` if the source stopped or lost the
    /// partition first.
    async fn seek(&self, offset: i64) -> bool {
        let mut backoff = Duration::from_millis(20);
        let mut failing_since: Option<std::time::Instant> = None;
        while self.still_reading() {
            let consumer = Arc::clone(&self.consumer);
            let topic = self.topic.clone();
            let partition = self.partition;
            let sought = tokio::task::spawn_blocking(move || {
                consumer.seek(&topic, partition, Offset::Offset(offset), BROKER_TIMEOUT)
            })
            .await;
            let error = match sought {
                Ok(Ok(())) => return true,
                Ok(Err(error)) => error.to_string(),
                Err(error) => error.to_string(),
            };
            // Failing for a moment after an assignment is normal; for long, it is reported.
            let since = *failing_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > BROKER_TIMEOUT {
                self.sink.source_error(&SourceError {
                    source: "kafka",
                    operation: "seek",
                    class: FailureClass::Retryable,
                    message: error,
                });
                failing_since = Some(std::time::Instant::now());
            } else {
                tracing::debug!(partition, offset, %error, "seek not done yet, retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => return false,
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        false
    }

    /// The partition's low and high watermarks, asked of the broker until it answers; `None`
    /// if the source stopped or lost the partition first.
    async fn watermarks(&self) -> Option<(i64, i64)> {
        let mut backoff = Duration::from_millis(100);
        while self.still_reading() {
            if let Some(watermarks) = self.watermarks_once().await {
                return Some(watermarks);
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => return None,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        None
    }

    /// The partition's low and high watermarks, asked of the broker once (a failure is
    /// reported).
    async fn watermarks_once(&self) -> Option<(i64, i64)> {
        let consumer = Arc::clone(&self.consumer);
        let topic = self.topic.clone();
        let partition = self.partition;
        let fetched =
            tokio::task::spawn_blocking(move || consumer.fetch_watermarks(&topic, partition, BROKER_TIMEOUT)).await;
        match fetched {
            Ok(Ok(watermarks)) => Some(watermarks),
            Ok(Err(error)) => {
                self.sink.source_error(&source_error("watermarks", &error));
                None
            }
            Err(error) => {
                tracing::warn!(partition, %error, "reading the partition's watermarks failed");
                None
            }
        }
    }

    /// Applies the pending messages as one batch and commits the offset after it.
    /// Returns the new next offset.
    async fn flush(&self, pending: &mut PendingBatch<OwnedDelivery>, next_offset: i64) -> Result<i64, SinkError> {
        let Some(last) = pending.last() else { return Ok(next_offset) };
        let new_next_offset = last.offset + 1;
        let last_message_at = last.broker_timestamp;
        // One name for the whole batch, shared by its events.
        let source: Arc<str> = self.source.as_str().into();
        let events = pending
            .take()
            .into_iter()
            .map(|delivery| {
                let position =
                    SourceRef { source: Arc::clone(&source), partition: self.partition, offset: delivery.offset };
                let traceparent = match delivery.traceparent {
                    Some(Ok(traceparent)) => Some(traceparent),
                    Some(Err(invalid)) => {
                        // Dropped here, once: never stored, never sent on.
                        self.sink.invalid_traceparent(&position, invalid);
                        None
                    }
                    None => None,
                };
                IncomingEvent::received(delivery.payload, delivery.received_at, position, traceparent)
            })
            .collect();
        let high_watermark = lock(&self.high_watermarks).get(&self.partition).copied();
        let batch = SourceBatch {
            source,
            partition: self.partition,
            events,
            checkpoint: Some(Position::at(new_next_offset)),
            last_message_at,
            high_watermark,
        };
        self.sink.apply(batch).await?;
        // Committed to Kafka only after the store has the batch, and only while we own the
        // partition: standard lag tooling sees progress, and a stale member never moves the
        // group's offset. Losing this commit in a crash costs a re-read, never a loss.
        if lock(&self.assigned).contains(&self.partition) {
            let mut offsets = TopicPartitionList::new();
            if let Err(error) =
                offsets.add_partition_offset(&self.topic, self.partition, Offset::Offset(new_next_offset))
            {
                self.sink.source_error(&source_error("commit", &error));
            } else if let Err(error) = self.consumer.commit(&offsets, CommitMode::Async) {
                self.sink.source_error(&source_error("commit", &error));
            }
        }
        Ok(new_next_offset)
    }
}
