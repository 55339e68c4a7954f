//! Where one assignment of a partition starts reading: the store's checkpoint checked against
//! the partition's end (decision 0040), or without one the partition's earliest or latest
//! offset; then the fetch checked to start at or before it, stepping back while it does not
//! (`rewind`, decision 8). The broker's answers (seeks, watermarks) are waited for here, and
//! given up on once the source stops or loses the partition.

use std::sync::Arc;
use std::time::Duration;

use catalog_app::{SinkError, SourceError};
use catalog_core::FailureClass;
use catalog_store::Position;
use rdkafka::consumer::Consumer;
use rdkafka::Offset;

use crate::config::StartWithoutCheckpoint;
use crate::context::{lock, source_error, Epochs};
use crate::feed::{Feed, PartitionInput};
use crate::partition::PartitionWorker;
use crate::rewind::{Check, Rewind};
use crate::source::SourceConsumer;
use crate::topic_id;

/// How long one seek, or one read of a partition's watermarks, may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the check of a checkpoint beyond the partition's reported end reads the
/// partition's last records at most (decision 0040)…
const END_CHECK: Duration = Duration::from_secs(5);
/// …and how long a fetch that delivered something stays quiet once it has read to the end.
const END_QUIET: Duration = Duration::from_millis(500);

/// What the check of a stored checkpoint against the partition's end found, with the high
/// watermark it read last.
enum End {
    /// The partition holds the checkpoint's last message (or the check could not tell).
    Holds { high_watermark: i64 },
    /// The partition ends below the checkpoint, which was moved back to `low_watermark`.
    Rewound { low_watermark: i64, high_watermark: i64 },
    /// The checkpoint was to be moved back, but had moved since it was read (another member,
    /// or a zombie's last batch): read it again and check again.
    Raced,
    /// The feed ended (shutdown) or the partition was revoked during the check.
    Ended,
}

/// How many times a start reads the checkpoint again after losing the race to move it back,
/// before it reads on from where it stands (and leaves the check to the next assignment).
const MOST_RACES: u32 = 5;

/// Where a partition without a stored checkpoint starts.
enum Without {
    /// At the group's committed offset, taken for the store's checkpoint.
    GroupOffset(i64),
    /// At the wanted offset, with the low and high watermarks read.
    At((i64, i64, i64)),
}

/// What the start check looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seen {
    /// A message at this offset.
    Message(i64),
    /// Nothing for a while since the last seek.
    Nothing,
}

impl PartitionWorker {
    /// Where this assignment starts reading, and the check of it. A partition read from its
    /// own queue seeks there before reading anything; one fed by the dispatcher already holds
    /// a message, and checks that. `None`: the source stopped, or lost the partition, before it started.
    pub(crate) async fn start(&self, input: &mut Feed<'_>) -> Result<Option<(i64, Rewind)>, SinkError> {
        let seek_first = matches!(input, Feed::Queue(_));
        // The topic's id first: the checkpoint is read as late as can be before it is checked.
        let topic_id = self.topic_ids.current().await;
        let mut stored = self.sink.checkpoint(&self.source, self.partition).await?;
        let mut races = 0;
        // Whether the group's committed offset was written as the checkpoint (once at most).
        let mut group_offset_written = false;
        let (want, low_watermark, high_watermark) = loop {
            let stored_cursor = stored.as_ref().and_then(|position| position.cursor.as_deref());
            let replaced = topic_id::replaced(stored_cursor, topic_id.as_deref()).map(str::to_owned);
            *lock(&self.topic_id) = topic_id::to_write(topic_id.clone(), stored_cursor);
            let Some(position) = stored.clone() else {
                let start = match self.start_without().await {
                    Some(Without::At(start)) => start,
                    // The group's offset, taken for the store's checkpoint: written, then read
                    // back and checked as a stored one is, so that a group offset beyond the
                    // partition's end is moved back to its start (decision 0040), and a fetch
                    // from inside a record batch steps back to the batch's first offset. Read
                    // unchecked, as librdkafka started it, tansu's fetch from inside a batch
                    // skipped the rest of that batch, unsaid (found by review).
                    Some(Without::GroupOffset(committed)) if !group_offset_written => {
                        group_offset_written = true;
                        self.apply_up_to(self.source.as_str().into(), Vec::new(), committed, None).await?;
                        stored = self.sink.checkpoint(&self.source, self.partition).await?;
                        continue;
                    }
                    // Written, and read back as none (a store that lost it): read from it all
                    // the same, the fetch checked to start at or before it.
                    Some(Without::GroupOffset(committed)) => {
                        tracing::error!(
                            partition = self.partition,
                            committed,
                            "the group's offset written as the checkpoint was not read back: reading from it, its end unchecked"
                        );
                        let Some((low, high)) = self.watermarks().await else { return Ok(None) };
                        (committed, low, high)
                    }
                    None => return Ok(None),
                };
                // Started at its end (`latest`, or an empty partition from its earliest or
                // from a group with no offset), the partition is checkpointed there at once:
                // quiet, no batch would write one, and every other member's stall watch,
                // reading no checkpoint as offset 0, took it for one behind and unmoved and
                // rejoined the group every minute until a message came (whichever feed it is
                // read from).
                if start.0 == start.2 && self.still_reading() {
                    self.apply_up_to(self.source.as_str().into(), Vec::new(), start.0, None).await?;
                }
                break (start.0, Some(start.1), start.2);
            };
            let check = self.check_end(input, position.offset, replaced, topic_id.as_deref()).await?;
            break match check {
                End::Holds { high_watermark } => {
                    // Written without the topic's id (before ids were kept, or moved back while
                    // the broker gave none): named now, before any batch, so that the store
                    // takes no batch of another topic's member for this one's (decision 0040).
                    if let (Some(id), None) = (topic_id.as_deref(), topic_id::of_cursor(stored_cursor)) {
                        let named = topic_id::position(position.offset, Some(id));
                        if !self.sink.rewind_checkpoint(&self.source, self.partition, position.offset, &named).await?
                            && races < MOST_RACES
                        {
                            races += 1;
                            stored = self.sink.checkpoint(&self.source, self.partition).await?;
                            continue;
                        }
                    }
                    (position.offset, None, high_watermark)
                }
                End::Rewound { low_watermark, high_watermark } => {
                    // Moved back by the end check alone (the id not read): the next batches
                    // are of the topic as it is, whose id is not known.
                    if topic_id.is_none() {
                        *lock(&self.topic_id) = None;
                    }
                    (low_watermark, Some(low_watermark), high_watermark)
                }
                End::Raced if races < MOST_RACES => {
                    races += 1;
                    stored = self.sink.checkpoint(&self.source, self.partition).await?;
                    continue;
                }
                End::Raced => {
                    tracing::warn!(
                        partition = self.partition,
                        checkpoint = position.offset,
                        "the checkpoint kept moving while it was checked; reading on from it, the next assignment checks it again"
                    );
                    *lock(&self.topic_id) = topic_id::of_cursor(stored_cursor).map(str::to_owned);
                    let Some((_, high_watermark)) = self.watermarks().await else { return Ok(None) };
                    (position.offset, None, high_watermark)
                }
                End::Ended => return Ok(None),
            };
        };
        // The partition's lag is known before any batch: on `/metrics` from now on. An end
        // read below the wanted offset is a broker's that reports less than it holds (tansu
        // answers with its last record batch's first offset plus one): no lag can be told
        // from it, and the fetch that checks the start tells (`tell_end`).
        if high_watermark >= want {
            self.sink.reading_starts(self.partition, want, high_watermark);
        }
        let mut rewind =
            if seek_first && self.seek(want).await { Rewind::sought_at_start(want) } else { Rewind::new(want) };
        if let Some(low) = low_watermark {
            // Read just now, before the seek. The wanted offset is below it only for a group's
            // offset that did not read back as the checkpoint (retention passed it): a gap,
            // said. Retention may move it again before the seek takes effect: read again
            // before a fetch beyond it is taken for offsets without records.
            if let Some((from, to)) = rewind.low_watermark_read_before_seek(low) {
                self.sink.offset_gap(self.partition, from, to);
            }
        }
        Ok(Some((want, rewind)))
    }

    /// Where a partition without a stored checkpoint starts (`--kafka-start-without-checkpoint`):
    /// the group's committed offset, or the wanted offset with the low and high watermarks.
    /// A group with no offset starts at the earliest, as `auto.offset.reset` has librdkafka
    /// do. `None`: the source stopped, or lost the partition, before the broker answered.
    async fn start_without(&self) -> Option<Without> {
        let choice = self.start_without_checkpoint;
        if choice == StartWithoutCheckpoint::Committed {
            if let Some(committed) = self.committed_offset().await? {
                tracing::info!(
                    partition = self.partition,
                    offset = committed,
                    "no stored checkpoint: starting from the group's committed offset"
                );
                return Some(Without::GroupOffset(committed));
            }
        }
        let (low, high) = self.watermarks().await?;
        let want = if choice == StartWithoutCheckpoint::Latest { high } else { low };
        tracing::info!(
            partition = self.partition,
            offset = want,
            start = choice.as_str(),
            "no stored checkpoint: reading from the partition's {} offset",
            if choice == StartWithoutCheckpoint::Latest { "latest" } else { "earliest" }
        );
        Some(Without::At((want, low, high)))
    }

    /// Checks a stored checkpoint against the partition's end (decision 0040). A partition
    /// that ends below it (a topic recreated, or truncated) holds messages the store never
    /// applied at offsets it takes for applied: the checkpoint is moved back to the low
    /// watermark. Kafka reports the end exactly; tansu reports its last record batch's first
    /// offset plus one, so an end below the checkpoint is read from there: a record at or past
    /// the checkpoint's last message says the partition holds it. Records delivered, none that
    /// far, then a quiet fetch: it ends below. Nothing delivered: the end read again decides.
    /// `replaced`: the checkpoint was written under a topic id the topic no longer has (the
    /// topic was deleted and created again, whatever its end): moved back at once. A checkpoint
    /// moved back is written under `topic_id`, the topic's id as read now (when read), so that
    /// the store refuses the old topic's batches of a member still reading it.
    async fn check_end(
        &self,
        input: &mut Feed<'_>,
        want: i64,
        replaced: Option<String>,
        topic_id: Option<&str>,
    ) -> Result<End, SinkError> {
        let Some((low, high)) = self.watermarks().await else { return Ok(End::Ended) };
        if let Some(stored_topic_id) = replaced {
            tracing::warn!(
                partition = self.partition,
                checkpoint = want,
                stored_topic_id,
                topic_id = topic_id.unwrap_or_default(),
                "the stored checkpoint is of a topic since deleted: the topic was created again under its name"
            );
            return self.rewind(want, topic_id::position(low, topic_id), high).await;
        }
        if want <= high {
            return Ok(End::Holds { high_watermark: high });
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
                Some(PartitionInput::Message(delivery)) if delivery.offset >= want - 1 => {
                    return Ok(End::Holds { high_watermark: high })
                }
                Some(PartitionInput::Message(delivery)) => delivered = Some(delivery.offset),
                // A word of markers passed says nothing of where the partition ends.
                Some(PartitionInput::PassedTo(_)) => {}
                Some(PartitionInput::Revoked) | None => return Ok(End::Ended),
            }
        }
        let Some((low, high)) = self.watermarks().await else { return Ok(End::Ended) };
        if delivered.is_none() && want <= high {
            return Ok(End::Holds { high_watermark: high });
        }
        tracing::warn!(
            partition = self.partition,
            checkpoint = want,
            high_watermark = high,
            last_offset_read = delivered,
            "the partition ends below the stored checkpoint"
        );
        self.rewind(want, topic_id::position(low, topic_id), high).await
    }

    /// Moves the checkpoint `want` back to `low` (the low watermark, of the topic as it is),
    /// unless it moved on meanwhile (`Raced`: it is read and checked again).
    async fn rewind(&self, want: i64, low: Position, high: i64) -> Result<End, SinkError> {
        if self.sink.rewind_checkpoint(&self.source, self.partition, want, &low).await? {
            Ok(End::Rewound { low_watermark: low.offset, high_watermark: high })
        } else {
            Ok(End::Raced)
        }
    }

    /// Checks what was seen against the start, and does what the check asks: a seek back, or
    /// reading the low watermark (offsets below it the store lacks are a gap, reported once)
    /// and checking again. `true`: read on from the message seen.
    pub(crate) async fn check_start(&self, rewind: &mut Rewind, seen: Seen) -> bool {
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

    /// Whether the source runs and this member still owns the partition in this worker's
    /// assignment: waits on the broker end otherwise. A worker of the shared queue revoked
    /// while it waited on the broker, its partition assigned again since, would otherwise
    /// seek the new assignment's fetch, purging what the new worker had not taken yet.
    fn still_reading(&self) -> bool {
        !self.stop.is_cancelled()
            && lock(&self.assigned).contains(&self.partition)
            && in_its_epoch(self.epoch.as_ref(), self.partition)
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
        self.ask_broker_until_answered("watermarks", |consumer, topic, partition| {
            consumer.fetch_watermarks(topic, partition, BROKER_TIMEOUT)
        })
        .await
    }

    /// The group's committed offset of the partition (`Some(None)`: the group has none),
    /// asked of the broker until it answers (each failure reported); `None` if the source
    /// stopped or lost the partition first.
    async fn committed_offset(&self) -> Option<Option<i64>> {
        let offset = self
            .ask_broker_until_answered("committed", |consumer, topic, partition| {
                let mut list = rdkafka::TopicPartitionList::new();
                list.add_partition(topic, partition);
                consumer
                    .committed_offsets(list, BROKER_TIMEOUT)
                    .map(|list| list.find_partition(topic, partition).map(|entry| entry.offset()))
            })
            .await?;
        Some(match offset {
            Some(Offset::Offset(offset)) if offset >= 0 => Some(offset),
            _ => None,
        })
    }

    /// `call`'s answer, asked again with a doubling backoff (up to 5 s) while the broker
    /// refuses (each refusal reported); `None` if the source stopped or lost the partition
    /// first.
    async fn ask_broker_until_answered<T: Send + 'static>(
        &self,
        operation: &'static str,
        call: impl Fn(&SourceConsumer, &str, i32) -> rdkafka::error::KafkaResult<T> + Clone + Send + 'static,
    ) -> Option<T> {
        let mut backoff = Duration::from_millis(100);
        while self.still_reading() {
            if let Some(answer) = self.ask_broker(operation, call.clone()).await {
                return Some(answer);
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => return None,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        None
    }

    /// `call` on the consumer for this partition, once, off the runtime (librdkafka blocks):
    /// its answer, or `None` with the broker's refusal reported as `operation`'s.
    async fn ask_broker<T: Send + 'static>(
        &self,
        operation: &'static str,
        call: impl FnOnce(&SourceConsumer, &str, i32) -> rdkafka::error::KafkaResult<T> + Send + 'static,
    ) -> Option<T> {
        let (consumer, topic, partition) = (Arc::clone(&self.consumer), self.topic.clone(), self.partition);
        match tokio::task::spawn_blocking(move || call(&consumer, &topic, partition)).await {
            Ok(Ok(answer)) => Some(answer),
            Ok(Err(error)) => {
                self.sink.source_error(&source_error(operation, &error));
                None
            }
            Err(error) => {
                tracing::warn!(partition, operation, %error, "asking the broker failed");
                None
            }
        }
    }
}

/// Whether a worker started in `epoch` (a shared queue's) still serves its assignment: the
/// partition was not revoked from this member since. A worker with no epoch (its own queue's)
/// always does.
fn in_its_epoch(epoch: Option<&(Epochs, u64)>, partition: i32) -> bool {
    epoch.is_none_or(|(epochs, started_in)| lock(epochs).get(&partition).copied().unwrap_or(0) == *started_in)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn a_shared_queue_worker_serves_its_assignment_until_the_partition_is_revoked() {
        let epochs = Arc::new(Mutex::new(HashMap::from([(3, 1)])));
        assert!(in_its_epoch(Some(&(Arc::clone(&epochs), 1)), 3));
        assert!(in_its_epoch(Some(&(Arc::clone(&epochs), 0)), 4), "never revoked");
        // Revoked (and perhaps assigned again): the worker of the earlier assignment is done.
        lock(&epochs).insert(3, 2);
        assert!(!in_its_epoch(Some(&(Arc::clone(&epochs), 1)), 3));
        assert!(in_its_epoch(None, 3), "a worker of its own queue");
    }
}
