//! One assigned partition: check where its fetch starts (`start`), cut its messages into
//! batches (count, bytes or wait), hand each to the sink, and commit the offset to Kafka once
//! the sink says the batch is durable. Its messages come from a [`Feed`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_app::{BatchLimits, BatchSink, PendingBatch, Reread, SinkError, SourceBatch};
use catalog_store::{IncomingEvent, SourceRef};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::StartWithoutCheckpoint;
use crate::context::{lock, source_error, Epochs};
use crate::feed::{Feed, OwnedDelivery, PartitionInput};
use crate::native;
use crate::source::SourceConsumer;
use crate::start::Seen;
use crate::topic_id::{self, TopicIds};

/// While the start is unchecked and nothing arrives, how long to wait before stepping back
/// (doubling up to [`MAX_IDLE_CHECK`]).
const FIRST_IDLE_CHECK: Duration = Duration::from_millis(500);
const MAX_IDLE_CHECK: Duration = Duration::from_secs(5);

/// How long a partition read from its own queue stays quiet, nothing pending, before its
/// checkpoint is moved past offsets that held no message (decision 0042); doubling up to
/// [`MAX_IDLE_CHECK`] while it stays quiet and nothing moves.
const PASS_MARKERS_AFTER: Duration = Duration::from_secs(1);

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
    pub(crate) sink: Arc<dyn BatchSink>,
    /// Cancelled when the source stops: ends waits on the broker.
    pub(crate) stop: CancellationToken,
    /// The topic's id, shared by the source's partitions…
    pub(crate) topic_ids: Arc<TopicIds>,
    /// …and as this assignment read it at its start: each batch's checkpoint carries it.
    pub(crate) topic_id: Mutex<Option<String>>,
    /// A worker of the shared queue: the partitions' epochs (revocations from this member)
    /// and the one it was started in. Another assignment of the partition gets a worker of
    /// its own, and this one, still asking the broker at its start, must not seek for it.
    /// `None` for a partition read from its own queue, whose workers run one after another.
    pub(crate) epoch: Option<(Epochs, u64)>,
}

impl PartitionWorker {
    /// Runs one assignment of the partition until its feed ends (shutdown: apply what is
    /// held) or the partition is revoked (drop what is held).
    pub(crate) async fn run(&self, mut input: Feed<'_>) -> Result<(), SinkError> {
        // Anything below the wanted offset was applied already (the Kafka commit after it may
        // have been lost in a crash): skip it rather than journal it again. Until a fetch is
        // seen to start at or before it, the start is checked (`rewind`).
        let Some((mut next_offset, rewind)) = self.start(&mut input).await? else {
            // Lost before it started: what an earlier assignment's reader left of the partition
            // (it left it to this one) is forgotten, unless the partition came back again.
            self.forget_unless_assigned_again();
            return Ok(());
        };
        self.sink.partition_started(&self.source, self.partition);
        // `None` once checked.
        let mut rewind = Some(rewind);
        let mut pending: PendingBatch<OwnedDelivery> = PendingBatch::new(self.limits());
        // One timer per batch, armed by its first message: not one per message received.
        let mut deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let mut idle_check = FIRST_IDLE_CHECK;
        // Whether a message past the start was read: from then on, offsets jumped over are
        // checked (the start check accounts for those before the first).
        let mut reading = false;
        // How long to stay quiet before comparing the checkpoint with librdkafka's position
        // (`pass_markers`): a stretch of aborted records and markers moves it without a message.
        let mut markers_check = PASS_MARKERS_AFTER;
        // The seek count of the start check when a message last came while it ran: a pass to
        // librdkafka's position is only for a fetch that delivered nothing since its seek.
        let mut delivered_at_seek: Option<u32> = None;
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
                        // Read from the log's start, nothing came, yet librdkafka's position
                        // passed the wanted offset: what lies between held no message for
                        // this worker (aborted records, markers), and nothing else comes.
                        let quiet_since_seek = delivered_at_seek != Some(unchecked.n_seeks());
                        if matches!(input, Feed::Queue(_)) && unchecked.sought_the_floor() && quiet_since_seek {
                            let passed = self.pass_markers(unchecked.want()).await?;
                            if passed > unchecked.want() {
                                next_offset = passed;
                                rewind = None;
                            }
                        }
                        continue;
                    }
                },
                // Quiet, nothing pending: a transaction's marker may follow the last message,
                // or a stretch of aborted records and markers may have arrived alone.
                (None, None) if matches!(input, Feed::Queue(_)) => tokio::select! {
                    biased;
                    received = input.next() => received,
                    () = tokio::time::sleep(markers_check) => {
                        let passed = self.pass_markers(next_offset).await?;
                        markers_check = if passed > next_offset { PASS_MARKERS_AFTER } else { (markers_check * 2).min(MAX_IDLE_CHECK) };
                        next_offset = passed;
                        continue;
                    }
                },
                (None, None) => input.next().await,
            };
            match received {
                Some(PartitionInput::Message(delivery)) => {
                    if let Some(unchecked) = rewind.as_mut() {
                        idle_check = FIRST_IDLE_CHECK;
                        delivered_at_seek = Some(unchecked.n_seeks());
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
                        self.tell_end(next_offset);
                    }
                    markers_check = PASS_MARKERS_AFTER;
                    // Below the checkpoint, or at or below a message the pending batch holds
                    // (a broker that resets its fetch delivers messages again): held already.
                    // Either way it was read again: the store held it when this assignment
                    // started, or this worker read it before. Not the store fence's "applied
                    // by another worker", which counts what another member applied meanwhile.
                    let expected = pending.last().map_or(next_offset, |last| last.offset + 1);
                    if delivery.offset < expected {
                        let reason = if reading { Reread::Refetch } else { Reread::StartCheck };
                        self.sink.reread(self.partition, reason);
                        continue;
                    }
                    if reading && delivery.offset > expected {
                        self.check_jump(expected, delivery.offset);
                    }
                    reading = true;
                    if pending.is_empty() {
                        self.sink.message_waiting(&self.source, self.partition, self.waiting_since(&delivery));
                        pending.set_limits(self.limits());
                        deadline = Some(Box::pin(tokio::time::sleep(self.batch_max_wait)));
                    }
                    let n_bytes = delivery.payload.len();
                    if pending.push(delivery, n_bytes) {
                        next_offset = self.flush(&mut pending, next_offset).await?;
                        deadline = None;
                    }
                }
                // Ignored while the start is unchecked: the worker may have stepped back, and
                // the messages it wants come again.
                Some(PartitionInput::PassedTo(position)) if rewind.is_none() => {
                    next_offset = self.flush(&mut pending, next_offset).await?;
                    deadline = None;
                    next_offset = self.pass_to(next_offset, position).await?;
                }
                Some(PartitionInput::PassedTo(_)) => {}
                Some(PartitionInput::Revoked) => {
                    tracing::info!(partition = self.partition, n_dropped = pending.len(), "partition revoked");
                    self.forget_unless_assigned_again();
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

    /// Since when `delivery` waits: the broker's append time on a topic that keeps it. On one
    /// that keeps the producer's `CreateTime` (the supplier's clock), the time it was received
    /// while the partition is caught up, so a clock running behind is no lag; the producer's
    /// time while a backlog lies beyond it (more than a batch to the partition's end), the
    /// only word of how old the backlog is.
    fn waiting_since(&self, delivery: &OwnedDelivery) -> chrono::DateTime<chrono::Utc> {
        if let Some(appended) = delivery.broker_timestamp {
            return appended;
        }
        let backlog = native::cached_watermarks(&self.consumer, &self.topic, self.partition)
            .is_some_and(|(_, high)| high - delivery.offset > self.batch_size as i64);
        match delivery.create_time {
            Some(created) if backlog => created.min(delivery.received_at),
            _ => delivery.received_at,
        }
    }

    /// Tells the sink the partition's end as the fetch that checked the start read it: on a
    /// quiet partition no batch will, and a broker's answer at the assignment can fall short
    /// of it (tansu's ListOffsets answers with its last record batch's first offset plus one).
    fn tell_end(&self, next_offset: i64) {
        let end = native::cached_high_watermark(&self.consumer, &self.topic, self.partition);
        if let Some(high_watermark) = end.filter(|high_watermark| *high_watermark >= next_offset) {
            self.sink.reading_starts(self.partition, next_offset, high_watermark);
        }
    }

    /// Its new owner reports the revoked partition's progress from now on; this member's last
    /// report must not stand in for it. When the new owner is this member (a rebalance gave
    /// the partition back while this assignment finished its batch), the next assignment's
    /// reader already reports it, or will: forgetting it now would take its queue lag off
    /// `/metrics` and the signals until its next batch. The set of assigned partitions is held
    /// meanwhile, so an assignment cannot come between the look and the forgetting.
    fn forget_unless_assigned_again(&self) {
        let assigned = lock(&self.assigned);
        if !assigned.contains(&self.partition) {
            self.sink.partition_done(&self.source, self.partition);
        }
    }

    /// This partition's share of the bytes in flight.
    fn limits(&self) -> BatchLimits {
        BatchLimits::share(self.batch_size, self.max_bytes_in_flight, self.n_partitions.load(Ordering::Relaxed))
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

    /// Applies the pending messages as one batch and commits the offset after it.
    /// Returns the new next offset.
    async fn flush(&self, pending: &mut PendingBatch<OwnedDelivery>, next_offset: i64) -> Result<i64, SinkError> {
        let Some(last) = pending.last() else { return Ok(next_offset) };
        let new_next_offset = last.offset + 1;
        let last_message_at = Some(self.waiting_since(last));
        // One name for the whole batch, shared by its events.
        let source: Arc<str> = self.source.as_str().into();
        let mut invalid = Vec::new();
        let events = pending
            .take()
            .into_iter()
            .map(|delivery| {
                let position =
                    SourceRef { source: Arc::clone(&source), partition: self.partition, offset: delivery.offset };
                let traceparent = match delivery.traceparent {
                    Some(Ok(traceparent)) => Some(traceparent),
                    // Dropped: never stored, never sent on.
                    Some(Err(reason)) => {
                        invalid.push((position.clone(), reason));
                        None
                    }
                    None => None,
                };
                IncomingEvent::received(delivery.payload, delivery.received_at, position, traceparent)
            })
            .collect();
        let next_offset = self.apply_up_to(source, events, new_next_offset, last_message_at).await?;
        // Said once the batch is durable: a batch abandoned (a shutdown, a revoke) is read
        // again, and its invalid headers were counted and logged twice.
        for (position, reason) in invalid {
            self.sink.invalid_traceparent(&position, reason);
        }
        Ok(next_offset)
    }

    /// Hands `events` to the sink as one batch whose checkpoint is `next_offset`, then
    /// commits that offset to Kafka. Returns it.
    pub(crate) async fn apply_up_to(
        &self,
        source: Arc<str>,
        events: Vec<IncomingEvent>,
        next_offset: i64,
        last_message_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<i64, SinkError> {
        // As librdkafka read it with its latest fetch, the one that brought the batch's last
        // message or a later one: known from the first batch on.
        let high_watermark = native::cached_high_watermark(&self.consumer, &self.topic, self.partition);
        let batch = SourceBatch {
            source,
            partition: self.partition,
            events,
            checkpoint: Some(topic_id::position(next_offset, lock(&self.topic_id).as_deref())),
            last_message_at,
            high_watermark,
        };
        self.sink.apply(batch).await?;
        self.commit(next_offset);
        Ok(next_offset)
    }

    /// Commits `next_offset` to Kafka, once the store has what lies below it, and only while
    /// this member owns the partition: standard lag tooling sees progress, and a stale member
    /// never moves the group's offset. Losing this commit in a crash costs a re-read, never a
    /// loss.
    fn commit(&self, next_offset: i64) {
        if !lock(&self.assigned).contains(&self.partition) {
            return;
        }
        let mut offsets = TopicPartitionList::new();
        if let Err(error) = offsets.add_partition_offset(&self.topic, self.partition, Offset::Offset(next_offset)) {
            self.sink.source_error(&source_error("commit", &error));
        } else if let Err(error) = self.consumer.commit(&offsets, CommitMode::Async) {
            self.sink.source_error(&source_error("commit", &error));
        }
    }

    /// Moves the checkpoint past offsets that held no message for this worker (decision
    /// 0042): a transaction's commit or abort marker, and the aborted records before one,
    /// which librdkafka reads and keeps from the application. A partition whose last record is
    /// a marker otherwise keeps its checkpoint one below the end for good: a message of lag,
    /// and a partition other members take for stalled. librdkafka's position for the
    /// partition passes the markers it read; the worker is the only reader of the partition's
    /// queue and holds nothing pending, so every message below that position has reached the
    /// store. Returns the new next offset.
    async fn pass_markers(&self, next_offset: i64) -> Result<i64, SinkError> {
        let Some(position) = self.position() else { return Ok(next_offset) };
        self.pass_to(next_offset, position).await
    }

    /// Moves the checkpoint from `next_offset` to `position`, past offsets that held no
    /// message for this worker, once every message below `position` is in the store (the
    /// worker's own queue read to there, or the dispatcher's word after its last message).
    /// The offsets before `next_offset` are known applied (every start is checked), so offsets
    /// passed below the log's start are a gap. Returns the new next offset.
    async fn pass_to(&self, next_offset: i64, position: i64) -> Result<i64, SinkError> {
        if position <= next_offset {
            return Ok(next_offset);
        }
        // Retention may have deleted offsets the member had not read, the next record read
        // being a marker: a gap, as between two messages.
        self.check_jump(next_offset, position);
        tracing::debug!(
            partition = self.partition,
            from = next_offset,
            to = position,
            "checkpoint moved past offsets that hold no message (transaction markers)"
        );
        self.apply_up_to(self.source.as_str().into(), Vec::new(), position, None).await
    }

    /// librdkafka's position in the partition: past the last message or marker the
    /// application's reads went by.
    fn position(&self) -> Option<i64> {
        native::position(&self.consumer, &self.topic, self.partition)
    }
}
