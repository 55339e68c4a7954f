//! Where a partition worker's messages come from: the partition's own librdkafka queue
//! ([`QueueFeed`]), or, for a partition that was not split off at start, the dispatcher over
//! a bounded channel; and the message as the worker holds it ([`OwnedDelivery`]).

use catalog_app::BatchSink;
use catalog_core::{InvalidTraceParent, TraceParent};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rdkafka::consumer::MessageStream;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::context::{consume_error, BrokerStatus, SourceContext};
use crate::native::first_header;

/// A message copied out of librdkafka's buffer, with its reception time.
#[derive(Debug)]
pub(crate) struct OwnedDelivery {
    pub(crate) offset: i64,
    pub(crate) payload: Vec<u8>,
    /// The `traceparent` header, validated; an invalid one is reported when the batch is cut.
    pub(crate) traceparent: Option<Result<TraceParent, InvalidTraceParent>>,
    /// When the broker appended it, on a topic that keeps `LogAppendTime`; `None` on one that
    /// keeps the producer's `CreateTime`, the supplier's clock, which may run behind or ahead.
    pub(crate) broker_timestamp: Option<DateTime<Utc>>,
    /// The producer's `CreateTime`, on a topic that keeps it: the only word of when a message
    /// of a backlog was written (`PartitionWorker::waiting_since`).
    pub(crate) create_time: Option<DateTime<Utc>>,
    pub(crate) received_at: DateTime<Utc>,
}

impl OwnedDelivery {
    pub(crate) fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let traceparent = first_header(message, b"traceparent").map(TraceParent::parse);
        Self {
            offset: message.offset(),
            // A message without a value (a tombstone) is an empty payload: rejected as
            // invalid_payload and journaled like any other bad message.
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            traceparent,
            broker_timestamp: match message.timestamp() {
                Timestamp::LogAppendTime(millis) => DateTime::from_timestamp_millis(millis),
                Timestamp::CreateTime(_) | Timestamp::NotAvailable => None,
            },
            create_time: match message.timestamp() {
                Timestamp::CreateTime(millis) => DateTime::from_timestamp_millis(millis),
                Timestamp::LogAppendTime(_) | Timestamp::NotAvailable => None,
            },
            received_at: Utc::now(),
        }
    }
}

#[derive(Debug)]
pub(crate) enum PartitionInput {
    Message(OwnedDelivery),
    /// The partition was taken away: drop what is not applied yet, commit nothing more.
    Revoked,
    /// From the dispatcher, after every message it took of the partition below this offset:
    /// librdkafka's position passed the offsets between (transaction markers, aborted
    /// records), which hold no message for the worker (decision 0042).
    PassedTo(i64),
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
    pub(crate) async fn next(&mut self) -> Option<PartitionInput> {
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
    pub(crate) brokers: &'q BrokerStatus,
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
                    Some(Ok(message)) => {
                        self.brokers.granted();
                        return Some(PartitionInput::Message(OwnedDelivery::from_message(&message)));
                    }
                    Some(Err(error)) => {
                        consume_error(self.sink, self.brokers, &error);
                    }
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
