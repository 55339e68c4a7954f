//! Partitions that nobody reads: a member that died without leaving can keep its partitions
//! in the group (tansu 0.6 gives them away only at a rebalance after the member's session
//! expired, and nothing starts one once the survivors have joined). Messages then wait
//! forever while every live worker is healthy. The watch notices a partition of someone
//! else's whose stored checkpoint has not moved for a while although the broker holds
//! messages beyond it, and the source leaves and rejoins the group: that rebalance hands the
//! dead member's partitions to a live one. A worker whose own partitions are stuck as well
//! does not rejoin: the cause is then shared (the store), and a rebalance would not help.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalog_app::{BatchSink, SinkError, SourceError};
use catalog_core::FailureClass;
use rdkafka::consumer::Consumer;
use tokio_util::sync::CancellationToken;

use crate::context::{lock, source_error};
use crate::source::SourceConsumer;

/// Where a partition stands: the store's next offset to apply (`None`: no checkpoint) and the
/// broker's low and high watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartitionPosition {
    pub(crate) partition: i32,
    pub(crate) checkpoint: Option<i64>,
    pub(crate) low_watermark: i64,
    pub(crate) high_watermark: i64,
}

impl PartitionPosition {
    /// Whether messages wait beyond the checkpoint. Nothing below the low watermark can be
    /// read: a partition retention emptied, never applied here, waits for nothing. (tansu's
    /// high watermark may lag the end of the partition, never lead it: a partition it calls
    /// caught up may not be, one it calls behind is.)
    fn is_behind(&self) -> bool {
        self.checkpoint.unwrap_or(0).max(self.low_watermark) < self.high_watermark
    }
}

/// Remembers since when each partition's checkpoint has not moved.
#[derive(Debug)]
pub(crate) struct StallWatch {
    /// A partition behind and unmoved this long is stalled.
    stalled_after: Duration,
    /// Per partition: the checkpoint last seen and when it was first seen at that value.
    unmoved_since: HashMap<i32, (Option<i64>, Instant)>,
    last_rejoin: Option<Instant>,
}

impl StallWatch {
    pub(crate) fn new(stalled_after: Duration) -> Self {
        Self { stalled_after, unmoved_since: HashMap::new(), last_rejoin: None }
    }

    /// Takes in the partitions' positions at `now` and returns the stalled partitions of
    /// other members if the source should rejoin the group for them (never twice within
    /// `stalled_after`), or an empty list.
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        assigned: &HashSet<i32>,
        positions: &[PartitionPosition],
    ) -> Vec<i32> {
        let mut stalled_mine = false;
        let mut stalled_others = Vec::new();
        for position in positions {
            let since = match self.unmoved_since.get(&position.partition) {
                Some((checkpoint, since)) if *checkpoint == position.checkpoint => *since,
                _ => now,
            };
            self.unmoved_since.insert(position.partition, (position.checkpoint, since));
            if position.is_behind() && now.duration_since(since) >= self.stalled_after {
                if assigned.contains(&position.partition) {
                    stalled_mine = true;
                } else {
                    stalled_others.push(position.partition);
                }
            }
        }
        let rested = self.last_rejoin.is_none_or(|last| now.duration_since(last) >= self.stalled_after);
        if stalled_mine || stalled_others.is_empty() || !rested {
            return Vec::new();
        }
        self.last_rejoin = Some(now);
        stalled_others.sort_unstable();
        stalled_others
    }
}

/// What the watch needs of the source.
pub(crate) struct StallCheck {
    pub(crate) consumer: Arc<SourceConsumer>,
    pub(crate) topic: String,
    pub(crate) source: String,
    pub(crate) assigned: Arc<Mutex<HashSet<i32>>>,
    pub(crate) sink: Arc<dyn BatchSink>,
    pub(crate) stalled_after: Duration,
}

/// How long a broker request of the watch may take…
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
/// …and all of a tick's watermark requests together.
const TICK_TIMEOUT: Duration = Duration::from_secs(10);

impl StallCheck {
    /// Looks at every partition a few times per `stalled_after` until `stop`, and rejoins the
    /// group when another member's partition is stalled.
    pub(crate) async fn run(self, stop: CancellationToken) -> Result<(), SinkError> {
        let mut watch = StallWatch::new(self.stalled_after);
        let mut ticks = tokio::time::interval((self.stalled_after / 3).max(Duration::from_millis(100)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => return Ok(()),
            }
            // A tick waits on the broker (a few seconds at most); a stop does not wait for it.
            let positions = tokio::select! {
                positions = self.positions() => positions,
                () = stop.cancelled() => return Ok(()),
            };
            let Some(positions) = positions else { continue };
            let assigned = lock(&self.assigned).clone();
            let stalled = watch.observe(Instant::now(), &assigned, &positions);
            if stalled.is_empty() {
                continue;
            }
            let message = format!(
                "partitions {stalled:?} have had messages waiting beyond their checkpoint for {} s, unread by any \
                 live member: leaving and rejoining the group so that a rebalance gives them to one",
                self.stalled_after.as_secs()
            );
            tracing::warn!(topic = %self.topic, ?stalled, "stalled partitions of another member: rejoining the group");
            self.sink.source_error(&SourceError {
                source: "kafka",
                operation: "stalled_partition",
                class: FailureClass::Retryable,
                message,
            });
            self.consumer.unsubscribe();
            if let Err(error) = self.consumer.subscribe(&[&self.topic]) {
                self.sink.source_error(&source_error("subscribe", &error));
            }
        }
    }

    /// The checkpoint and watermarks of every partition the broker and the store answered
    /// for, or `None` if the topic's metadata or the store could not be read (the next tick
    /// tries again). A partition whose watermarks could not be read (an offline partition, a
    /// broker timing out) is left out of this tick and said (`stall_watermarks`): one failing
    /// partition no longer blinded the watch to every other, without a word. Metadata not
    /// read is said too (`stall_metadata`).
    async fn positions(&self) -> Option<Vec<PartitionPosition>> {
        let consumer = Arc::clone(&self.consumer);
        let topic = self.topic.clone();
        let read = tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), BROKER_TIMEOUT)?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|found| found.name() == topic && found.error().is_none())
                .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
                .collect();
            // One tick waits at most `TICK_TIMEOUT` in all: a broker down that leads many
            // partitions made each wait its own timeout, one after another. Partitions not
            // asked in time are unread this tick.
            let deadline = Instant::now() + TICK_TIMEOUT;
            let watermarks = partitions
                .into_iter()
                .map(|partition| {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let read = if left.is_zero() {
                        Err("not asked: the tick's time ran out".to_owned())
                    } else {
                        consumer
                            .fetch_watermarks(&topic, partition, left.min(BROKER_TIMEOUT))
                            .map_err(|e| e.to_string())
                    };
                    (partition, read)
                })
                .collect::<Vec<_>>();
            Ok::<_, rdkafka::error::KafkaError>(watermarks)
        })
        .await;
        let watermarks = match read {
            Ok(Ok(watermarks)) => watermarks,
            Ok(Err(error)) => {
                self.sink.source_error(&source_error("stall_metadata", &error));
                return None;
            }
            // The blocking task was cancelled or panicked: the runtime is going away.
            Err(_) => return None,
        };
        let mut positions = Vec::with_capacity(watermarks.len());
        let mut unread = Vec::new();
        for (partition, read) in watermarks {
            let (low_watermark, high_watermark) = match read {
                Ok(watermarks) => watermarks,
                Err(error) => {
                    unread.push(format!("{partition} ({error})"));
                    continue;
                }
            };
            let checkpoint = self.sink.checkpoint(&self.source, partition).await.ok()?;
            positions.push(PartitionPosition {
                partition,
                checkpoint: checkpoint.map(|position| position.offset),
                low_watermark,
                high_watermark,
            });
        }
        if !unread.is_empty() {
            self.sink.source_error(&SourceError {
                source: "kafka",
                operation: "stall_watermarks",
                class: FailureClass::Retryable,
                message: format!(
                    "the stall watch could not read the watermarks of partitions {}: they are not watched until \
                     the broker answers for them",
                    unread.join(", ")
                ),
            });
        }
        Some(positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(checkpoint: i64, high_watermark: i64, partition: i32) -> PartitionPosition {
        PartitionPosition { partition, checkpoint: Some(checkpoint), low_watermark: 0, high_watermark }
    }

    const AFTER: Duration = Duration::from_secs(30);

    #[test]
    fn another_member_s_partition_behind_and_unmoved_triggers_one_rejoin() {
        let start = Instant::now();
        let mine: HashSet<i32> = [0].into();
        let mut watch = StallWatch::new(AFTER);
        assert!(watch.observe(start, &mine, &[at(10, 10, 0), at(5, 50, 1)]).is_empty());
        assert!(watch.observe(start + AFTER / 2, &mine, &[at(10, 10, 0), at(5, 50, 1)]).is_empty());
        assert_eq!(watch.observe(start + AFTER, &mine, &[at(10, 10, 0), at(5, 50, 1)]), [1]);
        // Not again right away: the rebalance needs time to happen.
        assert!(watch.observe(start + AFTER + AFTER / 2, &mine, &[at(10, 10, 0), at(5, 50, 1)]).is_empty());
        assert_eq!(watch.observe(start + AFTER * 2, &mine, &[at(10, 10, 0), at(5, 50, 1)]), [1]);
    }

    #[test]
    fn a_partition_that_moves_or_is_caught_up_is_not_stalled() {
        let start = Instant::now();
        let mine: HashSet<i32> = [0].into();
        let mut watch = StallWatch::new(AFTER);
        watch.observe(start, &mine, &[at(5, 50, 1), at(7, 7, 2)]);
        watch.observe(start + AFTER / 2, &mine, &[at(6, 50, 1), at(7, 7, 2)]);
        assert!(watch.observe(start + AFTER, &mine, &[at(6, 51, 1), at(7, 7, 2)]).is_empty());
        assert_eq!(watch.observe(start + AFTER * 3 / 2, &mine, &[at(6, 51, 1), at(7, 7, 2)]), [1]);
    }

    /// The store is slow for everyone: this member's partitions are stuck too, so a rebalance
    /// would only add work.
    #[test]
    fn no_rejoin_while_this_member_s_own_partitions_are_stuck_too() {
        let start = Instant::now();
        let mine: HashSet<i32> = [0].into();
        let mut watch = StallWatch::new(AFTER);
        watch.observe(start, &mine, &[at(1, 10, 0), at(5, 50, 1)]);
        assert!(watch.observe(start + AFTER, &mine, &[at(1, 10, 0), at(5, 50, 1)]).is_empty());
    }

    #[test]
    fn a_partition_never_applied_counts_as_behind() {
        let start = Instant::now();
        let mut watch = StallWatch::new(AFTER);
        let never = PartitionPosition { partition: 3, checkpoint: None, low_watermark: 0, high_watermark: 4 };
        watch.observe(start, &HashSet::new(), &[never]);
        assert_eq!(watch.observe(start + AFTER, &HashSet::new(), &[never]), [3]);
    }

    /// Retention deleted every message of a partition never applied here (a new database),
    /// or the messages below a checkpoint left behind: nothing can be read, nobody is late,
    /// and rejoining every `stalled_after` would only cost every member its pending batches.
    #[test]
    fn a_partition_with_nothing_readable_beyond_its_checkpoint_is_not_stalled() {
        let start = Instant::now();
        let emptied = PartitionPosition { partition: 3, checkpoint: None, low_watermark: 4, high_watermark: 4 };
        let left_behind = PartitionPosition { partition: 4, checkpoint: Some(2), low_watermark: 9, high_watermark: 9 };
        let mut watch = StallWatch::new(AFTER);
        watch.observe(start, &HashSet::new(), &[emptied, left_behind]);
        assert!(watch.observe(start + AFTER * 2, &HashSet::new(), &[emptied, left_behind]).is_empty());
        // Readable messages beyond the low watermark still count.
        let readable = PartitionPosition { low_watermark: 4, high_watermark: 6, ..emptied };
        watch.observe(start + AFTER * 2, &HashSet::new(), &[readable]);
        assert_eq!(watch.observe(start + AFTER * 3, &HashSet::new(), &[readable]), [3]);
    }
}
