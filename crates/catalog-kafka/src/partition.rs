//! One assigned partition: cut its messages into batches (size or wait), hand each to the
//! sink, and commit the offset to Kafka once the sink says the batch is durable. Messages
//! come from the partition's own librdkafka queue ([`QueueFeed`]), or, for a partition that
//! was not split off at start, from the dispatcher over a bounded channel.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_app::{BatchSink, SinkError, SourceBatch};
use catalog_store::{IncomingEvent, Position, SourceRef};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer, MessageStream};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::{lock, source_error, SourceContext};
use crate::source::SourceConsumer;

/// A message copied out of librdkafka's buffer, with its reception time.
#[derive(Debug)]
pub(crate) struct OwnedDelivery {
    offset: i64,
    payload: Vec<u8>,
    traceparent: Option<String>,
    broker_timestamp: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
}

impl OwnedDelivery {
    pub(crate) fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let traceparent = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|header| header.key.eq_ignore_ascii_case("traceparent"))
                .and_then(|header| header.value)
                .and_then(|value| std::str::from_utf8(value).ok())
                .map(str::to_owned)
        });
        Self {
            offset: message.offset(),
            // A message without a value (a tombstone) is an empty payload: rejected as
            // invalid_payload and journaled like any other bad message.
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            traceparent,
            broker_timestamp: message.timestamp().to_millis().and_then(DateTime::from_timestamp_millis),
            received_at: Utc::now(),
        }
    }
}

/// How long to wait for a seek to show before asking again.
const SEEK_RETRY: Duration = Duration::from_secs(5);

/// Whether the fetch position was checked against the stored checkpoint.
#[derive(Debug, Clone, Copy)]
enum Rewind {
    /// No message seen yet.
    Unchecked,
    /// The fetch began at `first_seen`, beyond the checkpoint; a seek back was requested.
    Awaiting { first_seen: i64, requested_at: Instant },
}

#[derive(Debug)]
pub(crate) enum PartitionInput {
    Message(OwnedDelivery),
    /// The partition was taken away: drop what is not applied yet, commit nothing more.
    Revoked,
}

/// Whether this member owns a partition, and since which revocation (`epoch` counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ownership {
    pub(crate) epoch: u64,
    pub(crate) owned: bool,
}

/// Where a partition worker's messages come from.
pub(crate) enum Feed<'q> {
    /// From the dispatcher: a partition that reads through the consumer's shared queue.
    Channel(mpsc::Receiver<PartitionInput>),
    /// From the partition's own librdkafka queue, for one assignment of it.
    Queue(QueueFeed<'q>),
}

impl Feed<'_> {
    /// The next input; `None` once the source stops (apply what is held, then return).
    async fn next(&mut self) -> Option<PartitionInput> {
        match self {
            Feed::Channel(receiver) => receiver.recv().await,
            Feed::Queue(queue) => queue.next().await,
        }
    }
}

/// One assignment of a partition read from its own queue: librdkafka fetches for it alone,
/// up to its own prefetch limit, so a partition whose batch is being applied holds back
/// only itself, never the others.
pub(crate) struct QueueFeed<'q> {
    pub(crate) messages: MessageStream<'q, SourceContext>,
    pub(crate) ownership: &'q mut watch::Receiver<Ownership>,
    /// The assignment this feed belongs to.
    pub(crate) epoch: u64,
    pub(crate) stop: &'q CancellationToken,
    pub(crate) sink: &'q dyn BatchSink,
}

impl QueueFeed<'_> {
    async fn next(&mut self) -> Option<PartitionInput> {
        loop {
            tokio::select! {
                // A revocation or a stop is seen before any further message: librdkafka drops
                // what was fetched for an old assignment, so nothing after this belongs to it.
                biased;
                () = self.stop.cancelled() => return None,
                changed = self.ownership.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let now = *self.ownership.borrow_and_update();
                    if now.epoch != self.epoch || !now.owned {
                        return Some(PartitionInput::Revoked);
                    }
                }
                message = self.messages.next() => match message {
                    Some(Ok(message)) => return Some(PartitionInput::Message(OwnedDelivery::from_message(&message))),
                    Some(Err(error)) => self.sink.source_error(&source_error("consume", &error)),
                    // The consumer's streams never end; if one did, the source is stopping.
                    None => return None,
                },
            }
        }
    }
}

/// Waits until this member owns the partition; `None` if the source stops first.
pub(crate) async fn owned(ownership: &mut watch::Receiver<Ownership>, stop: &CancellationToken) -> Option<u64> {
    loop {
        if stop.is_cancelled() {
            return None;
        }
        let now = *ownership.borrow_and_update();
        if now.owned {
            return Some(now.epoch);
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return None,
            changed = ownership.changed() => changed.ok()?,
        }
    }
}

pub(crate) struct PartitionWorker {
    pub(crate) topic: String,
    pub(crate) source: String,
    pub(crate) partition: i32,
    pub(crate) batch_size: usize,
    pub(crate) batch_max_wait: Duration,
    pub(crate) consumer: Arc<SourceConsumer>,
    pub(crate) assigned: Arc<Mutex<HashSet<i32>>>,
    pub(crate) high_watermarks: Arc<Mutex<std::collections::HashMap<i32, i64>>>,
    pub(crate) sink: Arc<dyn BatchSink>,
}

impl PartitionWorker {
    /// Runs one assignment of the partition until its feed ends (shutdown: apply what is
    /// held) or the partition is revoked (drop what is held).
    pub(crate) async fn run(&self, mut input: Feed<'_>) -> Result<(), SinkError> {
        // Anything below the stored checkpoint was applied already (the Kafka commit after
        // it may have been lost in a crash): skip it rather than journal it again.
        let stored = self.sink.checkpoint(&self.source, self.partition).await?.map(|position| position.offset);
        let mut next_offset = stored.unwrap_or(0);
        // Until the first message is seen, the fetch position is unknown: if it lies beyond
        // the stored checkpoint (the group's committed offset is ahead of the store, or the
        // broker forgot it), the messages in between would never be applied. Seek back.
        let mut rewind = stored.map(|_| Rewind::Unchecked);
        let mut pending: Vec<OwnedDelivery> = Vec::with_capacity(self.batch_size);
        // One timer per batch, armed by its first message: not one per message received.
        let mut deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            let received = match deadline.as_mut() {
                Some(timer) => tokio::select! {
                    biased;
                    received = input.next() => received,
                    () = timer.as_mut() => {
                        next_offset = self.flush(&mut pending, next_offset).await?;
                        deadline = None;
                        continue;
                    }
                },
                None => input.next().await,
            };
            match received {
                Some(PartitionInput::Message(delivery)) => {
                    match rewind {
                        Some(Rewind::Unchecked) if delivery.offset > next_offset => {
                            self.seek(next_offset);
                            rewind =
                                Some(Rewind::Awaiting { first_seen: delivery.offset, requested_at: Instant::now() });
                            continue;
                        }
                        Some(Rewind::Unchecked) => rewind = None,
                        // Messages fetched before the seek took effect are dropped; the first one
                        // at or below the first offset seen comes from the rewound fetch.
                        Some(Rewind::Awaiting { first_seen, requested_at }) => {
                            if delivery.offset > first_seen {
                                if requested_at.elapsed() > SEEK_RETRY {
                                    self.seek(next_offset);
                                    rewind = Some(Rewind::Awaiting { first_seen, requested_at: Instant::now() });
                                }
                                continue;
                            }
                            rewind = None;
                            if delivery.offset > next_offset {
                                self.sink.offset_gap(self.partition, next_offset, delivery.offset);
                            }
                        }
                        None => {}
                    }
                    if delivery.offset < next_offset {
                        self.sink.skipped_below_checkpoint(self.partition, 1);
                        continue;
                    }
                    if pending.is_empty() {
                        deadline = Some(Box::pin(tokio::time::sleep(self.batch_max_wait)));
                    }
                    pending.push(delivery);
                    if pending.len() >= self.batch_size {
                        next_offset = self.flush(&mut pending, next_offset).await?;
                        deadline = None;
                    }
                }
                Some(PartitionInput::Revoked) => {
                    tracing::info!(partition = self.partition, n_dropped = pending.len(), "partition revoked");
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

    fn seek(&self, offset: i64) {
        tracing::info!(
            partition = self.partition,
            offset,
            "fetch began beyond the stored checkpoint, seeking back to it"
        );
        // A zero timeout makes the seek asynchronous: this task must not block the runtime.
        if let Err(error) = self.consumer.seek(&self.topic, self.partition, Offset::Offset(offset), Duration::ZERO) {
            self.sink.source_error(&source_error("seek", &error));
        }
    }

    /// Applies the pending messages as one batch and commits the offset after it.
    /// Returns the new next offset.
    async fn flush(&self, pending: &mut Vec<OwnedDelivery>, next_offset: i64) -> Result<i64, SinkError> {
        let Some(last) = pending.last() else { return Ok(next_offset) };
        let new_next_offset = last.offset + 1;
        let last_message_at = last.broker_timestamp;
        // One name for the whole batch, shared by its events.
        let source: Arc<str> = self.source.as_str().into();
        let events = pending
            .drain(..)
            .map(|delivery| {
                let position =
                    SourceRef { source: Arc::clone(&source), partition: self.partition, offset: delivery.offset };
                IncomingEvent::received(delivery.payload, delivery.received_at, position, delivery.traceparent)
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
