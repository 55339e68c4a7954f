//! Kafka source of supplier events: a consumer-group member that batches each assigned
//! partition on its own, hands batches to a sink that makes them durable, and only then
//! commits the offsets to Kafka. The store's checkpoints are the authority on progress: a
//! partition's worker starts from its stored checkpoint, seeking back to it when the fetch
//! starts beyond it and skipping whatever lies below it.
//!
//! Every partition the topic has at start is split off into a librdkafka queue of its own
//! (before the member joins the group, so nothing of it was fetched into the shared queue),
//! read by a long-lived task that runs one `PartitionWorker` per assignment of it. A
//! partition whose batch is being applied then holds back only itself: librdkafka stops
//! fetching for it at its own prefetch limit while the others go on. Partitions added to
//! the topic later arrive through the consumer's shared queue and are dispatched to a
//! worker over a bounded channel.

mod partition;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use catalog_core::{Classify, FailureClass};
use catalog_store::{Checkpoint, IncomingEvent};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Message, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::partition::{Feed, OwnedDelivery, Ownership, PartitionInput, PartitionWorker, QueueFeed};

/// Re-exported so sinks can name it without depending on rdkafka.
pub use rdkafka::error::KafkaError as ClientError;

/// Settings of the Kafka source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSourceConfig {
    /// `host:port[,host:port…]`
    pub brokers: String,
    pub topic: String,
    pub group: String,
    /// A partition's batch is applied when it holds this many messages…
    pub batch_size: usize,
    /// …or when its oldest message has waited this long, whichever comes first.
    pub batch_max_wait: Duration,
    /// How long the group waits for a silent member before giving its partitions away.
    pub session_timeout: Duration,
    /// Extra librdkafka settings, applied last.
    pub extra: Vec<(String, String)>,
}

impl KafkaSourceConfig {
    /// The source name under which checkpoints and journal rows are stored.
    pub fn source_name(&self) -> String {
        format!("kafka:{}:{}", self.group, self.topic)
    }
}

/// A batch of one partition, in offset order, ready to be made durable.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    pub events: Vec<IncomingEvent>,
    /// The position after the batch's last message.
    pub checkpoint: Checkpoint,
    /// Broker timestamp of the batch's last message: queue lag is now minus this.
    pub last_message_at: Option<DateTime<Utc>>,
    /// The partition's high watermark when the batch was cut, if known: lag in messages.
    pub high_watermark: Option<i64>,
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

/// Where the source delivers batches: `apply` returns only once the batch is durable.
#[async_trait]
pub trait BatchSink: Send + Sync + 'static {
    /// The stored next offset of a partition, if any.
    async fn checkpoint(&self, source: &str, partition: i32) -> Result<Option<i64>, SinkError>;
    /// Makes a batch durable (retrying transient failures itself), or says why not.
    async fn apply(&self, batch: SourceBatch) -> Result<(), SinkError>;
    /// A message was below the stored checkpoint and skipped (already applied).
    fn skipped_below_checkpoint(&self, partition: i32, count: u64);
    /// Kafka reported an error while consuming or committing; counted and logged.
    fn kafka_error(&self, kind: &'static str, error: &KafkaError);
    /// After seeking back to the stored checkpoint, the broker's first message was beyond it:
    /// offsets `from..to` were never delivered (compacted away, or a broker that cannot serve
    /// a fetch from inside a record batch). Counted and logged, never silently.
    fn offset_gap(&self, partition: i32, from: i64, to: i64);
}

/// Failures of the source itself.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error("kafka client: {0}")]
    Client(#[from] KafkaError),
    #[error("sink failed: {0}")]
    Sink(String),
    #[error("partition task panicked: {0}")]
    Task(String),
}

impl Classify for KafkaSourceError {
    fn failure_class(&self) -> FailureClass {
        match self {
            KafkaSourceError::Client(_) => FailureClass::NeedsOperator,
            KafkaSourceError::Sink(_) | KafkaSourceError::Task(_) => FailureClass::Fatal,
        }
    }
}

/// Rebalance events handed from librdkafka's callback to the dispatcher.
#[derive(Debug)]
enum Assignment {
    /// These partitions were revoked; each moved to the given epoch.
    Revoked(Vec<(i32, u64)>),
}

/// Receives rebalance callbacks (which partitions this member owns, which were revoked) and
/// librdkafka's statistics.
pub(crate) struct SourceContext {
    topic: String,
    /// Told about failed commits.
    sink: Arc<dyn BatchSink>,
    /// Partitions this member currently owns: offsets are committed only for these.
    assigned: Arc<Mutex<HashSet<i32>>>,
    /// Bumped for a partition each time it is revoked: a message is routed to a worker of
    /// the partition's current epoch only, never to one from before a rebalance.
    epochs: Arc<Mutex<HashMap<i32, u64>>>,
    events: mpsc::UnboundedSender<Assignment>,
    /// High watermark per partition, from librdkafka's periodic statistics.
    high_watermarks: Arc<Mutex<HashMap<i32, i64>>>,
    /// Who owns each partition read from its own queue, told to its task.
    ownership: Arc<Mutex<HashMap<i32, watch::Sender<Ownership>>>>,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        let mut high_watermarks = lock(&self.high_watermarks);
        for (partition, stats) in &topic.partitions {
            if *partition >= 0 && stats.hi_offset >= 0 {
                high_watermarks.insert(*partition, stats.hi_offset);
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<i32> = list.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
            lock(&self.assigned).retain(|partition| !partitions.contains(partition));
            let mut epochs = lock(&self.epochs);
            let revoked: Vec<(i32, u64)> = partitions
                .iter()
                .map(|partition| {
                    let epoch = epochs.entry(*partition).or_insert(0);
                    *epoch += 1;
                    (*partition, *epoch)
                })
                .collect();
            drop(epochs);
            let ownership = lock(&self.ownership);
            for (partition, epoch) in &revoked {
                if let Some(owner) = ownership.get(partition) {
                    owner.send_replace(Ownership { epoch: *epoch, owned: false });
                }
            }
            drop(ownership);
            tracing::info!(?partitions, "partitions revoked");
            // The receiver lives as long as the dispatcher; after it ends nothing listens.
            let _ = self.events.send(Assignment::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions: Vec<i32> = list.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
            lock(&self.assigned).extend(partitions.iter().copied());
            let ownership = lock(&self.ownership);
            for partition in &partitions {
                if let Some(owner) = ownership.get(partition) {
                    owner.send_modify(|ownership| ownership.owned = true);
                }
            }
            drop(ownership);
            tracing::info!(?partitions, "partitions assigned");
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            self.sink.kafka_error("commit", &error);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the set inside
    // is still a valid set of partitions.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type SourceConsumer = StreamConsumer<SourceContext>;

/// A partition's own librdkafka queue, split off the consumer's shared one.
type OwnQueue = rdkafka::consumer::stream_consumer::StreamPartitionQueue<SourceContext>;

/// How long the source waits at start for the topic's partitions before reading them all
/// through the shared queue instead.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The Kafka source: `run` consumes until shutdown, then finishes in-flight batches.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    consumer: Arc<SourceConsumer>,
    assigned: Arc<Mutex<HashSet<i32>>>,
    epochs: Arc<Mutex<HashMap<i32, u64>>>,
    high_watermarks: Arc<Mutex<HashMap<i32, i64>>>,
    ownership: Arc<Mutex<HashMap<i32, watch::Sender<Ownership>>>>,
    events: mpsc::UnboundedReceiver<Assignment>,
    sink: Arc<dyn BatchSink>,
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
        let high_watermarks = Arc::new(Mutex::new(HashMap::new()));
        let epochs = Arc::new(Mutex::new(HashMap::new()));
        let ownership = Arc::new(Mutex::new(HashMap::new()));
        let (events_sender, events) = mpsc::unbounded_channel();
        let context = SourceContext {
            topic: config.topic.clone(),
            sink: Arc::clone(&sink),
            assigned: Arc::clone(&assigned),
            epochs: Arc::clone(&epochs),
            events: events_sender,
            high_watermarks: Arc::clone(&high_watermarks),
            ownership: Arc::clone(&ownership),
        };
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group)
            // Offsets are committed by hand, after the store has made the batch durable.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", config.session_timeout.as_millis().to_string())
            // Also the group's rebalance timeout: how long a rebalance waits for members to
            // rejoin before going on without them. Kept short, since a batch never takes long.
            .set("max.poll.interval.ms", (config.session_timeout.as_millis() * 2).max(1_000).to_string())
            .set("heartbeat.interval.ms", (config.session_timeout.as_millis() / 3).max(100).to_string())
            // Bounded read-ahead: librdkafka's prefetch is the only buffer before a partition's
            // worker. It applies to each partition read from its own queue (and to the shared
            // queue as a whole): 1 MB, about 4,000 messages, refilled while a batch is applied.
            .set("queued.max.messages.kbytes", "1024")
            .set("partition.assignment.strategy", "range,roundrobin")
            // A fetch returns after at most 25 ms even when little has arrived: what a quiet
            // partition produces reaches the store quickly (librdkafka's default is 500 ms).
            // A broker that answers only at the end of the wait whatever it holds (tansu 0.6)
            // serves one response (`fetch.max.bytes`) per wait, so the wait also bounds
            // throughput there: 1 MB per 100 ms was 46k messages/s, per 25 ms 157k.
            // The worker's --kafka-fetch-wait-ms sets it (through `extra`).
            .set("fetch.wait.max.ms", "25")
            // Statistics carry each partition's high watermark: lag in messages.
            .set("statistics.interval.ms", "5000")
            // At most 1 MB per fetch response. librdkafka rotates which partition leads each
            // fetch request; a broker that fills a response from the first partition before the
            // next (tansu 0.6 does) then still serves every assigned partition in turn, so the
            // partitions' batches are applied concurrently instead of one partition at a time.
            .set("fetch.max.bytes", "1048576")
            // A partition whose prefetch is full (its worker is applying a batch) is fetched
            // for again 10 ms after it has room, not librdkafka's default 1 s: with the default,
            // one partition alone reached 16k events/s, with 10 ms 43k.
            .set("fetch.queue.backoff.ms", "10");
        for (key, value) in &config.extra {
            client.set(key, value);
        }
        let consumer: SourceConsumer = client.create_with_context(context)?;
        Ok(Self { config, consumer: Arc::new(consumer), assigned, epochs, high_watermarks, ownership, events, sink })
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
            Ok::<Vec<i32>, KafkaError>(
                metadata
                    .topics()
                    .iter()
                    .filter(|found| found.name() == topic && found.error().is_none())
                    .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
                    .collect(),
            )
        })
        .await;
        let partitions = match partitions {
            Ok(Ok(partitions)) => partitions,
            Ok(Err(error)) => {
                self.sink.kafka_error("metadata", &error);
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

    fn partition_worker(&self, partition: i32) -> PartitionWorker {
        PartitionWorker {
            topic: self.config.topic.clone(),
            source: self.config.source_name(),
            partition,
            batch_size: self.config.batch_size.max(1),
            batch_max_wait: self.config.batch_max_wait,
            consumer: Arc::clone(&self.consumer),
            assigned: Arc::clone(&self.assigned),
            high_watermarks: Arc::clone(&self.high_watermarks),
            sink: Arc::clone(&self.sink),
        }
    }

    /// Consumes until `shutdown`, then stops fetching, finishes the batches in flight,
    /// commits them, and returns.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), KafkaSourceError> {
        let mut workers: JoinSet<Result<(), SinkError>> = JoinSet::new();
        // Stops the partitions' own tasks once this loop ends, whatever ended it.
        let stop = shutdown.child_token();
        for (partition, queue, ownership) in self.split_partitions().await {
            workers.spawn(read_own_queue(self.partition_worker(partition), queue, ownership, stop.clone()));
        }
        self.consumer.subscribe(&[&self.config.topic])?;
        // Each dispatched partition's worker, with the epoch it was started in.
        let mut partitions: HashMap<i32, (u64, mpsc::Sender<PartitionInput>)> = HashMap::new();
        let consumer = Arc::clone(&self.consumer);
        let mut stream = consumer.stream();
        let mut outcome = Ok(());
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(Assignment::Revoked(revoked)) = self.events.recv() => {
                    for (partition, epoch) in revoked {
                        // Only a worker from before this revocation stops: one started since, for
                        // a message of the new assignment, already holds that message.
                        if partitions.get(&partition).is_some_and(|(worker_epoch, _)| *worker_epoch < epoch) {
                            if let Some((_, sender)) = partitions.remove(&partition) {
                                // The worker drops what it has not applied: the next owner reads it.
                                let _ = sender.send(PartitionInput::Revoked).await;
                            }
                        }
                    }
                }
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
                            self.sink.kafka_error("consume", &error);
                            continue;
                        }
                    };
                    let partition = message.partition();
                    let delivery = OwnedDelivery::from_message(&message);
                    drop(message);
                    // A rebalance may have happened inside the poll that returned this message,
                    // before its revoke event was handled: a worker from an earlier epoch must not
                    // get it (it would drop it as revoked, leaving a gap its successor skips).
                    let epoch = lock(&self.epochs).get(&partition).copied().unwrap_or(0);
                    if partitions.get(&partition).is_some_and(|(worker_epoch, _)| *worker_epoch != epoch) {
                        if let Some((_, sender)) = partitions.remove(&partition) {
                            let _ = sender.send(PartitionInput::Revoked).await;
                        }
                    }
                    let (_, sender) = partitions.entry(partition).or_insert_with(|| {
                        if lock(&self.ownership).contains_key(&partition) {
                            // Cannot happen (it was split off before the member joined); applied anyway.
                            tracing::warn!(partition, "a partition with its own queue is also read through the shared one");
                        }
                        let (sender, receiver) = mpsc::channel(self.config.batch_size.max(1));
                        let worker = self.partition_worker(partition);
                        workers.spawn(async move { worker.run(Feed::Channel(receiver)).await });
                        (epoch, sender)
                    });
                    // A full channel makes the dispatcher wait: backpressure, not buffering.
                    tokio::select! {
                        sent = sender.send(PartitionInput::Message(delivery)) => {
                            if sent.is_err() {
                                // The worker ended (revoked meanwhile); the message is not applied
                                // and not committed, so whoever owns the partition reads it again.
                                partitions.remove(&partition);
                            }
                        }
                        _ = shutdown.cancelled() => break,
                    }
                }
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

/// A partition read from its own queue, for the source's lifetime: one worker per assignment.
async fn read_own_queue(
    worker: PartitionWorker,
    queue: OwnQueue,
    mut ownership: watch::Receiver<Ownership>,
    stop: CancellationToken,
) -> Result<(), SinkError> {
    while let Some(epoch) = partition::owned(&mut ownership, &stop).await {
        let feed =
            QueueFeed { messages: queue.stream(), ownership: &mut ownership, epoch, stop: &stop, sink: &*worker.sink };
        worker.run(Feed::Queue(feed)).await?;
    }
    Ok(())
}

fn worker_failure(finished: Result<Result<(), SinkError>, tokio::task::JoinError>) -> Option<KafkaSourceError> {
    match finished {
        Ok(Ok(())) | Ok(Err(SinkError::Abandoned)) => None,
        Ok(Err(SinkError::Fatal(reason))) => Some(KafkaSourceError::Sink(reason)),
        Err(error) => Some(KafkaSourceError::Task(error.to_string())),
    }
}
