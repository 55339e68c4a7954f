//! The source itself: a consumer-group member that splits every partition the topic has at
//! start into a queue of its own, read by a long-lived task per partition, and dispatches
//! partitions added later from the shared queue to a worker each.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_app::{BatchSink, SinkError};
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{client_config, ClientOption, KafkaSourceConfig};
use crate::context::{consume_error, is_refusal, lock, source_error, Assignment, BrokerStatus, SourceContext};
use crate::feed::{self, Feed, OwnedDelivery, Ownership, PartitionInput, QueueFeed};
use crate::native;
use crate::partition::PartitionWorker;
use crate::stall::StallCheck;
use crate::topic_id::TopicIds;
use crate::KafkaSourceError;

pub(crate) type SourceConsumer = StreamConsumer<SourceContext>;

/// A partition's own librdkafka queue, split off the consumer's shared one.
type OwnQueue = rdkafka::consumer::stream_consumer::StreamPartitionQueue<SourceContext>;

/// How long the source waits at start for the topic's partitions before reading them all
/// through the shared queue instead.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a member taking partitions waits for the topic's id (decision 0040).
const TOPIC_ID_TIMEOUT: Duration = Duration::from_secs(5);

/// The Kafka source: `run` consumes until shutdown, then finishes in-flight batches.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    consumer: Arc<SourceConsumer>,
    assigned: Arc<Mutex<HashSet<i32>>>,
    epochs: Arc<Mutex<HashMap<i32, u64>>>,
    ownership: Arc<Mutex<HashMap<i32, watch::Sender<Ownership>>>>,
    events: mpsc::UnboundedReceiver<Assignment>,
    sink: Arc<dyn BatchSink>,
    /// Partitions this source reads, which share the bytes in flight.
    n_partitions: Arc<AtomicUsize>,
    brokers: BrokerStatus,
    topic_ids: Arc<TopicIds>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource").field("config", &self.config).finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Creates the consumer; `run` joins the group. Must be called inside a tokio runtime.
    pub fn new(config: KafkaSourceConfig, sink: Arc<dyn BatchSink>) -> Result<Self, KafkaSourceError> {
        let assigned = Arc::new(Mutex::new(HashSet::new()));
        let epochs = Arc::new(Mutex::new(HashMap::new()));
        let ownership = Arc::new(Mutex::new(HashMap::new()));
        let (events_sender, events) = mpsc::unbounded_channel();
        let brokers = BrokerStatus::default();
        let context = SourceContext {
            topic: config.topic.clone(),
            sink: Arc::clone(&sink),
            assigned: Arc::clone(&assigned),
            epochs: Arc::clone(&epochs),
            events: events_sender,
            ownership: Arc::clone(&ownership),
            brokers: brokers.clone(),
        };
        let consumer: SourceConsumer =
            client_config(&config).create_with_context(context).map_err(|error| creation_error(&error, &config))?;
        let consumer = Arc::new(consumer);
        let topic_ids = Arc::new(TopicIds::new(Arc::clone(&consumer), config.topic.clone(), TOPIC_ID_TIMEOUT));
        Ok(Self {
            config,
            consumer,
            assigned,
            epochs,
            ownership,
            events,
            sink,
            n_partitions: Arc::new(AtomicUsize::new(1)),
            brokers,
            topic_ids,
        })
    }

    /// Whether the connection to the brokers is up and whether they refuse this member the
    /// topic or its group, for readiness checks; follows the source while it runs.
    pub fn broker_status(&self) -> BrokerStatus {
        self.brokers.clone()
    }

    /// Splits every partition the topic has now into a queue of its own, before the member
    /// joins the group, each with the receiver its task learns its ownership from. Without
    /// the topic's metadata (broker unreachable, topic missing) it splits nothing, and every
    /// partition is read through the shared queue.
    async fn split_partitions(&self) -> Vec<(i32, OwnQueue, watch::Receiver<Ownership>)> {
        let consumer = Arc::clone(&self.consumer);
        let topic = self.config.topic.clone();
        let partitions = tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
            let found = metadata.topics().iter().find(|found| found.name() == topic);
            Ok::<_, KafkaError>(match found.map(|found| (found, found.error())) {
                Some((found, None)) => Ok(found.partitions().iter().map(|partition| partition.id()).collect()),
                Some((_, Some(error))) => Err(RDKafkaErrorCode::from(error)),
                None => Ok(Vec::new()),
            })
        })
        .await;
        let partitions = match partitions {
            Ok(Ok(partitions)) => {
                // A broker answered: up until statistics or an error say otherwise.
                self.brokers.set(true);
                partitions.unwrap_or_else(|code| {
                    // The topic's own error: missing (created later, read through the shared
                    // queue) or refused to these credentials (not ready until it is granted).
                    if is_refusal(code) {
                        let error = KafkaError::MessageConsumption(code);
                        self.brokers.saw(&error);
                        self.sink.source_error(&source_error("metadata", &error));
                    }
                    Vec::new()
                })
            }
            Ok(Err(error)) => {
                self.sink.source_error(&source_error("metadata", &error));
                Vec::new()
            }
            Err(error) => {
                tracing::warn!(%error, "reading the topic's partitions failed");
                Vec::new()
            }
        };
        if partitions.is_empty() {
            tracing::warn!(topic = %self.config.topic, "no partitions known at start: all are read through the shared queue");
        }
        let mut ownership = lock(&self.ownership);
        partitions
            .into_iter()
            .filter_map(|partition| {
                let queue = self.consumer.split_partition_queue(&self.config.topic, partition)?;
                let owner = watch::Sender::new(Ownership::default());
                let receiver = owner.subscribe();
                ownership.insert(partition, owner);
                Some((partition, queue, receiver))
            })
            .collect()
    }

    fn partition_worker(&self, partition: i32, stop: &CancellationToken) -> PartitionWorker {
        PartitionWorker {
            topic: self.config.topic.clone(),
            source: self.config.source_name(),
            partition,
            batch_size: self.config.batch_size.max(1),
            batch_max_wait: self.config.batch_max_wait,
            max_bytes_in_flight: self.config.max_bytes_in_flight,
            n_partitions: Arc::clone(&self.n_partitions),
            start_without_checkpoint: self.config.start_without_checkpoint,
            consumer: Arc::clone(&self.consumer),
            assigned: Arc::clone(&self.assigned),
            sink: Arc::clone(&self.sink),
            stop: stop.clone(),
            topic_ids: Arc::clone(&self.topic_ids),
            topic_id: Mutex::new(None),
            epoch: None,
        }
    }

    /// Consumes until `shutdown`, then stops fetching, finishes the batches in flight,
    /// commits them, and returns.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), KafkaSourceError> {
        let mut workers: JoinSet<Result<(), SinkError>> = JoinSet::new();
        // Stops the partitions' own tasks once this loop ends, whatever ended it.
        let stop = shutdown.child_token();
        let split = self.split_partitions().await;
        let n_split = split.len();
        self.n_partitions.store(n_split.max(1), Ordering::Relaxed);
        // Partitions read through the shared queue, counted once each among those sharing
        // the bytes in flight.
        let mut dispatched: HashSet<i32> = HashSet::new();
        for (partition, queue, ownership) in split {
            let worker = self.partition_worker(partition, &stop);
            workers.spawn(read_own_queue(worker, queue, ownership, stop.clone(), self.brokers.clone()));
        }
        self.consumer.subscribe(&[&self.config.topic])?;
        let stall_check = StallCheck {
            consumer: Arc::clone(&self.consumer),
            topic: self.config.topic.clone(),
            source: self.config.source_name(),
            assigned: Arc::clone(&self.assigned),
            sink: Arc::clone(&self.sink),
            stalled_after: self.config.stalled_partition_after,
        };
        workers.spawn(stall_check.run(stop.clone()));
        // Each dispatched partition's worker, with the epoch it was started in.
        let mut partitions: HashMap<i32, (u64, mpsc::Sender<PartitionInput>)> = HashMap::new();
        // Per dispatched partition: the offset after the last message taken of it, and the
        // position the worker was last told it may pass to (`pass_markers_of_dispatched`).
        let mut taken: HashMap<i32, i64> = HashMap::new();
        let mut passed: HashMap<i32, i64> = HashMap::new();
        let mut markers = tokio::time::interval(PASS_DISPATCHED_MARKERS_EVERY);
        markers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let consumer = Arc::clone(&self.consumer);
        let mut stream = consumer.stream();
        let mut outcome = Ok(());
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // Every event is taken here: one that matched no pattern would be dropped.
                Some(event) = self.events.recv() => match event {
                    Assignment::Revoked(revoked) => {
                        for (partition, epoch) in revoked {
                            // Only a worker from before this revocation stops: one started since,
                            // for the new assignment, already holds its start.
                            if partitions.get(&partition).is_some_and(|(worker_epoch, _)| *worker_epoch < epoch) {
                                if let Some((_, sender)) = partitions.remove(&partition) {
                                    // The worker drops what it has not applied: the next owner reads it.
                                    let _ = sender.send(PartitionInput::Revoked).await;
                                }
                            }
                        }
                    }
                    // A worker per partition as soon as it is assigned, not at its first message:
                    // a quiet partition's start is checked against the store (a new database
                    // under an old group reads it from its start), and `latest` starts at the end
                    // as of the assignment, not as of the first message (which skipped every
                    // message before it).
                    Assignment::Assigned(assigned) => {
                        for (partition, epoch) in assigned {
                            let current = self.current_epoch(partition);
                            // Revoked again since, or started by a message of this assignment and
                            // still running. A worker started by a message that came after the
                            // revocation but before this assignment found the partition not
                            // owned and ended: this assignment needs one of its own.
                            if current != epoch || feeds(partitions.get(&partition), epoch) {
                                continue;
                            }
                            if let Some((_, sender)) = partitions.remove(&partition) {
                                let _ = sender.send(PartitionInput::Revoked).await;
                            }
                            let sender =
                                self.spawn_dispatched(partition, &mut workers, &mut dispatched, n_split, &stop, epoch);
                            partitions.insert(partition, (epoch, sender));
                        }
                    }
                },
                Some(finished) = workers.join_next(), if !workers.is_empty() => {
                    if let Some(error) = worker_failure(finished) {
                        outcome = Err(error);
                        break;
                    }
                }
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let message = match message {
                        Ok(message) => message,
                        Err(error) => {
                            let reported = consume_error(&*self.sink, &self.brokers, &error);
                            // A fatal error ends the consumer for good (librdkafka's word: a
                            // static member fenced by another with its id, a producer's
                            // transaction fenced): reading on would leave a worker that reads
                            // nothing, its readiness green. The run ends with the error.
                            if reported.class == catalog_core::FailureClass::Fatal {
                                outcome = Err(KafkaSourceError::Client(error));
                                break;
                            }
                            continue;
                        }
                    };
                    self.brokers.granted();
                    let partition = message.partition();
                    let delivery = OwnedDelivery::from_message(&message);
                    drop(message);
                    taken.insert(partition, delivery.offset + 1);
                    // A message after a word: the worker may have thrown that word away (its
                    // start unchecked, a step back), so the next position is told again.
                    passed.remove(&partition);
                    // A rebalance may have happened inside the poll that returned this message,
                    // before its revoke event was handled: a worker from an earlier epoch must not
                    // get it (it would drop it as revoked, leaving a gap its successor skips).
                    // A worker that ended (it found the partition not owned when it started)
                    // is replaced too.
                    let epoch = self.current_epoch(partition);
                    if !feeds(partitions.get(&partition), epoch) {
                        if let Some((_, sender)) = partitions.remove(&partition) {
                            let _ = sender.send(PartitionInput::Revoked).await;
                        }
                    }
                    let (_, sender) = partitions.entry(partition).or_insert_with(|| {
                        (epoch, self.spawn_dispatched(partition, &mut workers, &mut dispatched, n_split, &stop, epoch))
                    });
                    // A full channel makes the dispatcher wait: backpressure, not buffering.
                    tokio::select! {
                        sent = sender.send(PartitionInput::Message(delivery)) => {
                            if let Err(mpsc::error::SendError(unsent)) = sent {
                                // The worker ended meanwhile (it found the partition not
                                // owned at its start); the message is not applied and not
                                // committed. Another owner reads it from the committed offset.
                                // If this member owns the partition again, a new worker takes
                                // the message, and its start check steps back to the store's
                                // checkpoint for what came before it. Before, the message was
                                // dropped, and a quiet partition had no worker until the stall
                                // watch rejoined the group.
                                partitions.remove(&partition);
                                if self.current_epoch(partition) == epoch && lock(&self.assigned).contains(&partition) {
                                    let sender = self.spawn_dispatched(
                                        partition,
                                        &mut workers,
                                        &mut dispatched,
                                        n_split,
                                        &stop,
                                        epoch,
                                    );
                                    // Its channel is empty: the message fits.
                                    let _ = sender.try_send(unsent);
                                    partitions.insert(partition, (epoch, sender));
                                }
                            }
                        }
                        _ = shutdown.cancelled() => break,
                    }
                }
                _ = markers.tick() => self.pass_markers_of_dispatched(&partitions, &taken, &mut passed),
            }
        }
        // Stop reading; each worker applies what it holds (told by its closed channel, or by
        // the stop token for one reading its own queue).
        stop.cancel();
        drop(stream);
        partitions.clear();
        while let Some(finished) = workers.join_next().await {
            if let Some(error) = worker_failure(finished) {
                outcome = outcome.and(Err(error));
            }
        }
        outcome
    }
}

impl KafkaSource {
    /// The epoch `partition` is in now: how many times it was revoked from this member.
    fn current_epoch(&self, partition: i32) -> u64 {
        lock(&self.epochs).get(&partition).copied().unwrap_or(0)
    }

    /// Starts the worker of `partition`, fed by the dispatcher from the shared queue: the
    /// sender it reads. `dispatched` counts the partitions read so, among the `n_split` with
    /// queues of their own, for the bytes in flight each may hold.
    fn spawn_dispatched(
        &self,
        partition: i32,
        workers: &mut JoinSet<Result<(), SinkError>>,
        dispatched: &mut HashSet<i32>,
        n_split: usize,
        stop: &CancellationToken,
        epoch: u64,
    ) -> mpsc::Sender<PartitionInput> {
        if lock(&self.ownership).contains_key(&partition) {
            // Cannot happen (it was split off before the member joined); applied anyway.
            tracing::warn!(partition, "a partition with its own queue is also read through the shared one");
        }
        if dispatched.insert(partition) {
            self.n_partitions.store(n_split + dispatched.len(), Ordering::Relaxed);
        }
        let (sender, receiver) = mpsc::channel(self.config.batch_size.max(1));
        let mut worker = self.partition_worker(partition, stop);
        worker.epoch = Some((Arc::clone(&self.epochs), epoch));
        workers.spawn(async move { worker.run(Feed::Channel(receiver)).await });
        sender
    }

    /// Tells each dispatched partition's worker when librdkafka's position for it passed the
    /// offset after the last message taken of it: what lies between held no message for the
    /// worker (transaction markers, aborted records), and its checkpoint may pass it (decision
    /// 0042). Run between two reads of the shared queue, so every message below the position
    /// was taken, and sent to the worker before this word. Without it, a partition added to
    /// the topic after start whose last record is a marker kept its checkpoint one below its
    /// end, and every other member took it for stalled and rejoined the group every minute.
    fn pass_markers_of_dispatched(
        &self,
        partitions: &HashMap<i32, (u64, mpsc::Sender<PartitionInput>)>,
        taken: &HashMap<i32, i64>,
        passed: &mut HashMap<i32, i64>,
    ) {
        for (&partition, (worker_epoch, sender)) in partitions {
            let epoch = self.current_epoch(partition);
            let Some(&taken) = taken.get(&partition) else { continue };
            let Some(position) = native::position(&self.consumer, &self.config.topic, partition) else { continue };
            if *worker_epoch != epoch || position <= taken || passed.get(&partition).is_some_and(|p| *p >= position) {
                continue;
            }
            // A full channel: the worker is busy; told at a later tick.
            if sender.try_send(PartitionInput::PassedTo(position)).is_ok() {
                passed.insert(partition, position);
            }
        }
    }
}

/// How often the dispatcher looks for markers passed in the partitions it feeds.
const PASS_DISPATCHED_MARKERS_EVERY: Duration = Duration::from_secs(1);

/// Why librdkafka refused the settings, without the values of the operator's options: its
/// message repeats the value it refused, which may be a secret.
fn creation_error(error: &KafkaError, config: &KafkaSourceConfig) -> KafkaSourceError {
    // Longest first, so a value containing another is blanked out whole. Values this short
    // cannot hide a secret, and blanking them would garble the message.
    let mut values: Vec<&str> = config.extra.iter().map(ClientOption::value).filter(|value| value.len() >= 4).collect();
    values.sort_by_key(|value| std::cmp::Reverse(value.len()));
    let message = values.into_iter().fold(error.to_string(), |message, value| message.replace(value, "<redacted>"));
    KafkaSourceError::Creation(message)
}

/// A partition read from its own queue, for the source's lifetime: one worker per assignment.
async fn read_own_queue(
    worker: PartitionWorker,
    queue: OwnQueue,
    mut ownership: watch::Receiver<Ownership>,
    stop: CancellationToken,
    brokers: BrokerStatus,
) -> Result<(), SinkError> {
    while let Some(epoch) = feed::owned(&mut ownership, &stop).await {
        let feed = QueueFeed {
            messages: queue.stream(),
            ownership: &mut ownership,
            epoch,
            stop: &stop,
            sink: &*worker.sink,
            brokers: &brokers,
        };
        worker.run(Feed::Queue(feed)).await?;
    }
    Ok(())
}

/// Whether `worker`, the one held for a dispatched partition, feeds the partition's
/// assignment in `epoch`: started in it, and still running. A worker ends of itself when it
/// finds the partition not owned at its start, and its sender stays in the map.
fn feeds(worker: Option<&(u64, mpsc::Sender<PartitionInput>)>, epoch: u64) -> bool {
    worker.is_some_and(|(worker_epoch, sender)| *worker_epoch == epoch && !sender.is_closed())
}

fn worker_failure(finished: Result<Result<(), SinkError>, tokio::task::JoinError>) -> Option<KafkaSourceError> {
    match finished {
        Ok(Ok(())) | Ok(Err(SinkError::Abandoned)) => None,
        Ok(Err(SinkError::Fatal(reason))) => Some(KafkaSourceError::Sink(reason)),
        Err(error) => Some(KafkaSourceError::Task(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(epoch: u64) -> ((u64, mpsc::Sender<PartitionInput>), mpsc::Receiver<PartitionInput>) {
        let (sender, receiver) = mpsc::channel(1);
        ((epoch, sender), receiver)
    }

    #[test]
    fn a_running_worker_of_the_epoch_feeds_it() {
        let (running, _receiver) = worker(2);
        assert!(feeds(Some(&running), 2));
    }

    #[test]
    fn a_worker_of_another_epoch_or_none_does_not_feed_it() {
        let (older, _receiver) = worker(1);
        assert!(!feeds(Some(&older), 2));
        assert!(!feeds(None, 2));
    }

    #[test]
    fn a_worker_of_the_epoch_that_ended_does_not_feed_it() {
        // Started by a message after the revocation, before the assignment: it found the
        // partition not owned and ended, dropping its receiver.
        let (ended, receiver) = worker(2);
        drop(receiver);
        assert!(!feeds(Some(&ended), 2));
    }
}
