//! The Kafka source against librdkafka's in-process mock cluster (consumer groups and
//! commits, no broker process): every message of every partition reaches the sink once and
//! in offset order, whether the partition was split into a queue of its own at start or
//! arrives later through the shared queue, and across a rebalance between two members.
//! `broker` runs it against the real Kafka-protocol broker, where producers batch records.

mod access;
mod broker;
mod marker;
mod metrics;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use catalog_app::{BatchSink, Durable, SinkError, SourceBatch, SourceError};
use catalog_kafka::{ClientOption, KafkaSource, KafkaSourceConfig, StartWithoutCheckpoint};
use catalog_store::Position;
use rdkafka::message::ToBytes;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "supplier.inventory.v1";
const PARTITIONS: i32 = 3;

/// A store stand-in: keeps each partition's checkpoint (shared by the members of a group, as
/// their database is), and every offset this member was handed.
#[derive(Default)]
struct RecordingSink {
    checkpoints: Arc<Mutex<HashMap<i32, i64>>>,
    /// Each checkpoint's cursor, kept with its furthest offset as a store keeps it.
    cursors: Mutex<HashMap<i32, Option<String>>>,
    /// Per partition, the offsets of every batch applied, in the order applied.
    applied: Mutex<BTreeMap<i32, Vec<i64>>>,
    gaps: Mutex<Vec<(i32, i64, i64)>>,
    /// Checkpoints moved back: partition, from, to.
    rewinds: Mutex<Vec<(i32, i64, i64)>>,
    /// The cursor each checkpoint moved back was written with, in the order moved.
    rewound_cursors: Mutex<Vec<Option<String>>>,
    /// Checkpoints given a topic id where they stand: partition, offset, cursor.
    named: Mutex<Vec<(i32, i64, Option<String>)>>,
    /// The `traceparent` of every message applied, by offset (partition 0 only).
    traceparents: Mutex<BTreeMap<i64, Option<String>>>,
    /// When set, each batch of messages takes a permit before it is applied: a test holds the
    /// member in the middle of a batch. A checkpoint alone (an empty partition's start) takes
    /// none.
    permits: Option<Arc<tokio::sync::Semaphore>>,
    /// Every time a partition was said to have a message waiting since.
    waiting_since: Mutex<Vec<chrono::DateTime<chrono::Utc>>>,
    /// Every time a partition's reading was said to start: partition, next offset, end.
    reading_starts: Mutex<Vec<(i32, i64, i64)>>,
    /// When set, the next move back loses its race: a zombie's last batch moved the
    /// checkpoint to this offset first (its cursor kept).
    zombie_moves_to: Mutex<Option<i64>>,
    /// Every failure the source reported: its operation and class.
    source_errors: Mutex<Vec<(&'static str, catalog_core::FailureClass)>>,
    /// The offsets of the messages whose `traceparent` was said to be invalid.
    invalid_traceparents: Mutex<Vec<i64>>,
}

impl RecordingSink {
    fn applied(&self) -> BTreeMap<i32, Vec<i64>> {
        self.applied.lock().expect("sink state").clone()
    }

    fn checkpoints(&self) -> HashMap<i32, i64> {
        self.checkpoints.lock().expect("sink state").clone()
    }
}

#[async_trait]
impl BatchSink for RecordingSink {
    async fn checkpoint(&self, _source: &str, partition: i32) -> Result<Option<Position>, SinkError> {
        let offset = self.checkpoints.lock().expect("sink state").get(&partition).copied();
        let cursor = self.cursors.lock().expect("sink state").get(&partition).cloned().flatten();
        Ok(offset.map(|offset| Position { offset, cursor }))
    }

    async fn apply(&self, batch: SourceBatch) -> Result<Durable, SinkError> {
        if let Some(permits) = self.permits.as_ref().filter(|_| !batch.events.is_empty()) {
            permits.acquire().await.expect("permits are never closed").forget();
        }
        let partition = batch.partition;
        let position = batch.checkpoint.expect("a Kafka batch always has a position");
        let next_offset = position.offset;
        let offsets: Vec<i64> = batch.events.iter().map(|event| event.source.offset).collect();
        assert!(offsets.iter().all(|offset| *offset < next_offset));
        if partition == 0 {
            let mut traceparents = self.traceparents.lock().expect("sink state");
            for event in &batch.events {
                traceparents.insert(event.source.offset, event.traceparent.as_ref().map(ToString::to_string));
            }
        }
        self.applied.lock().expect("sink state").entry(partition).or_default().extend(offsets);
        let mut checkpoints = self.checkpoints.lock().expect("sink state");
        let next = checkpoints.entry(partition).or_insert(0);
        if next_offset >= *next {
            self.cursors.lock().expect("sink state").insert(partition, position.cursor);
        }
        *next = (*next).max(next_offset);
        Ok(Durable::default())
    }

    async fn rewind_checkpoint(
        &self,
        _source: &str,
        partition: i32,
        from: i64,
        to: &Position,
    ) -> Result<bool, SinkError> {
        let mut checkpoints = self.checkpoints.lock().expect("sink state");
        if let Some(moved_to) = self.zombie_moves_to.lock().expect("sink state").take() {
            checkpoints.insert(partition, moved_to);
        }
        let stored = checkpoints.get_mut(&partition).filter(|stored| **stored == from);
        let Some(stored) = stored else { return Ok(false) };
        if to.offset == from {
            self.cursors.lock().expect("sink state").insert(partition, to.cursor.clone());
            self.named.lock().expect("sink state").push((partition, from, to.cursor.clone()));
            return Ok(true);
        }
        *stored = to.offset;
        self.cursors.lock().expect("sink state").insert(partition, to.cursor.clone());
        self.rewinds.lock().expect("sink state").push((partition, from, to.offset));
        self.rewound_cursors.lock().expect("sink state").push(to.cursor.clone());
        Ok(true)
    }

    fn reread(&self, _partition: i32, _reason: catalog_app::Reread) {}

    fn reading_starts(&self, partition: i32, next_offset: i64, high_watermark: i64) {
        self.reading_starts.lock().expect("sink state").push((partition, next_offset, high_watermark));
    }

    fn source_error(&self, error: &SourceError) {
        self.source_errors.lock().expect("sink state").push((error.operation, error.class));
    }

    fn offset_gap(&self, partition: i32, from: i64, to: i64) {
        self.gaps.lock().expect("sink state").push((partition, from, to));
    }

    fn invalid_traceparent(&self, at: &catalog_store::SourceRef, _invalid: catalog_core::InvalidTraceParent) {
        self.invalid_traceparents.lock().expect("sink state").push(at.offset);
    }

    fn partition_started(&self, _source: &str, _partition: i32) {}

    fn message_waiting(&self, _source: &str, _partition: i32, at: chrono::DateTime<chrono::Utc>) {
        self.waiting_since.lock().expect("sink state").push(at);
    }

    fn partition_done(&self, _source: &str, _partition: i32) {}
}

fn config(brokers: &str, group: &str) -> KafkaSourceConfig {
    KafkaSourceConfig {
        brokers: brokers.to_owned(),
        topic: TOPIC.to_owned(),
        group: group.to_owned(),
        batch_size: 50,
        batch_max_wait: Duration::from_millis(20),
        session_timeout: Duration::from_millis(6_000),
        start_without_checkpoint: StartWithoutCheckpoint::Earliest,
        stalled_partition_after: Duration::from_secs(60),
        max_bytes_in_flight: 64 << 20,
        // Find a topic created after start quickly (librdkafka's default is five minutes).
        extra: vec![ClientOption::new("topic.metadata.refresh.interval.ms", "200")],
    }
}

/// librdkafka's mock cluster of one broker holding the topic, with its bootstrap servers; the
/// cluster lives as long as the value does.
fn cluster_with_topic() -> (MockCluster<'static, rdkafka::producer::DefaultProducerContext>, String) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    (cluster, brokers)
}

/// Produces `per_partition` messages to each partition; the payloads need not decode (the
/// source hands rejections to the sink like any other message).
fn produce(brokers: &str, per_partition: i64) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().expect("producer");
    for partition in 0..PARTITIONS {
        for n in 0..per_partition {
            let payload = format!("message {n} of partition {partition}");
            send(&producer, BaseRecord::<'_, str, str>::to(TOPIC).partition(partition).payload(&payload));
        }
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// Queues `record`, serving the producer's events while its queue is full.
fn send<K: ToBytes + ?Sized, P: ToBytes + ?Sized>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, returned)) => {
                record = returned;
                producer.poll(Duration::from_millis(10));
            }
        }
    }
}

/// One group member: a source running until stopped.
struct Member {
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<Result<(), catalog_kafka::KafkaSourceError>>,
}

impl Member {
    fn start(brokers: &str, group: &str, sink: &Arc<RecordingSink>) -> Self {
        Self::start_with(config(brokers, group), sink)
    }

    fn start_with(config: KafkaSourceConfig, sink: &Arc<RecordingSink>) -> Self {
        let source = KafkaSource::new(config, Arc::clone(sink) as Arc<dyn BatchSink>).expect("source");
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(source.run(shutdown.clone()));
        Self { shutdown, running }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.await.expect("source task").expect("source run");
    }
}

/// Every partition's checkpoint at `per_partition`.
fn all_at(per_partition: i64) -> HashMap<i32, i64> {
    (0..PARTITIONS).map(|partition| (partition, per_partition)).collect()
}

/// Produces `per_partition` messages to each partition, and runs one member of `group` until
/// every partition's checkpoint is at its end.
async fn read_to_the_end(brokers: &str, group: &str, sink: &Arc<RecordingSink>, per_partition: i64) {
    produce(brokers, per_partition);
    let member = Member::start(brokers, group, sink);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(per_partition)).await;
    member.stop().await;
}

/// One member, no rebalance: each offset exactly once, in order.
fn assert_each_offset_once_in_order(applied: &BTreeMap<i32, Vec<i64>>, per_partition: i64) {
    for partition in 0..PARTITIONS {
        assert_eq!(applied[&partition], (0..per_partition).collect::<Vec<_>>(), "partition {partition}");
    }
}

async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "not done within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every partition's offsets `0..per_partition`, each at least once.
fn assert_complete(applied: &BTreeMap<i32, Vec<i64>>, per_partition: i64) {
    for partition in 0..PARTITIONS {
        let mut seen: Vec<i64> = applied.get(&partition).cloned().unwrap_or_default();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..per_partition).collect::<Vec<_>>(), "partition {partition}: every offset applied");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partition_split_at_start_is_read_once_and_in_order() {
    let (_cluster, brokers) = cluster_with_topic();
    let sink = Arc::new(RecordingSink::default());
    read_to_the_end(&brokers, "split", &sink, 400).await;
    assert_each_offset_once_in_order(&sink.applied(), 400);
    assert!(sink.gaps.lock().expect("sink state").is_empty());
}

/// A supplier's producer may compress its batches with zstd, lz4 or gzip: each is read.
/// zstd was not built in, and a zstd batch stopped its partition for good (retried forever as
/// `__NOT_IMPLEMENTED`, a log line at warn), with queue lag green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_compressed_with_every_codec_are_read() {
    let (_cluster, brokers) = cluster_with_topic();
    let codecs = ["zstd", "lz4", "gzip"];
    for (partition, codec) in codecs.into_iter().enumerate() {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("compression.type", codec)
            .set("linger.ms", "50")
            .create()
            .unwrap_or_else(|error| panic!("a {codec} producer: {error}"));
        for n in 0..200 {
            let payload = format!("message {n} of partition {partition}, compressed with {codec} {}", "x".repeat(100));
            send(&producer, BaseRecord::<'_, str, str>::to(TOPIC).partition(partition as i32).payload(&payload));
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
    }
    let sink = Arc::new(RecordingSink::default());
    let member = Member::start(&brokers, "codecs", &sink);
    assert_eq!(codecs.len(), PARTITIONS as usize, "one codec per partition");
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(200)).await;
    member.stop().await;
    assert_each_offset_once_in_order(&sink.applied(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_after_start_is_read_through_the_shared_queue() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    let sink = Arc::new(RecordingSink::default());
    // The topic does not exist yet: nothing is split, every partition comes through the shared queue.
    let member = Member::start(&brokers, "late", &sink);
    // Long enough for the member to have split off the partitions the topic had (none) on a
    // loaded machine: created later, they come through the shared queue.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    produce(&brokers, 300);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(300)).await;
    member.stop().await;
    assert_each_offset_once_in_order(&sink.applied(), 300);
}

/// A partition read through the shared queue gets its worker when it is assigned, not at its
/// first message: its start is checked then (a quiet partition's too), and `latest` starts at
/// the end as of the assignment. Before, the worker came with the first message and read the
/// end only then, so every message produced after the assignment up to that end was skipped
/// (counted as read before), and a quiet partition's start was never checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_of_the_shared_queue_starts_when_it_is_assigned() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    let sink = Arc::new(RecordingSink::default());
    let config = KafkaSourceConfig {
        start_without_checkpoint: StartWithoutCheckpoint::Latest,
        ..config(&brokers, "late-latest")
    };
    let member = Member::start_with(config, &sink);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let started = || sink.reading_starts.lock().expect("sink state").iter().map(|(p, ..)| *p).collect::<BTreeSet<_>>();
    wait_for(Duration::from_secs(30), || started() == (0..PARTITIONS).collect::<BTreeSet<i32>>()).await;
    let starts = sink.reading_starts.lock().expect("sink state").clone();
    assert!(starts.iter().all(|(_, next, _)| *next == 0), "the topic was empty when assigned: {starts:?}");
    produce(&brokers, 300);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(300)).await;
    member.stop().await;
    assert_each_offset_once_in_order(&sink.applied(), 300);
}

/// A partition started at its end (`latest`) that stays quiet gets its checkpoint there with
/// no message to apply, and then the messages after it are read. Without it, no batch was
/// ever applied: every other member's stall watch took the partition for one behind and
/// unmoved, and rejoined the group every minute until a message came (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_partition_started_at_its_end_is_checkpointed_there() {
    let (_cluster, brokers) = cluster_with_topic();
    produce(&brokers, 30);
    a_quiet_start_is_checkpointed_at(&brokers, "quiet-latest", StartWithoutCheckpoint::Latest, 30).await;
}

/// A member of `group` started at `start` without a stored checkpoint, on partitions of
/// `end` messages it is to start after: each is checkpointed at `end` while quiet, with
/// nothing applied, and the 5 messages produced next are read.
async fn a_quiet_start_is_checkpointed_at(brokers: &str, group: &str, start: StartWithoutCheckpoint, end: i64) {
    let sink = Arc::new(RecordingSink::default());
    let config = KafkaSourceConfig { start_without_checkpoint: start, ..config(brokers, group) };
    let member = Member::start_with(config, &sink);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(end)).await;
    assert!(sink.applied().values().all(Vec::is_empty), "nothing before the start: {:?}", sink.applied());
    produce(brokers, 5);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(end + 5)).await;
    member.stop().await;
    let applied = sink.applied();
    assert!(applied.values().all(|offsets| *offsets == (end..end + 5).collect::<Vec<i64>>()), "{applied:?}");
}

/// An empty partition is read from its end whatever the start: checkpointed there at once,
/// from the earliest and from a group with no offset alike, as a `latest` start is. Before,
/// no batch wrote a checkpoint while it stayed quiet, and every other member's stall watch
/// rejoined the group every minute until a message came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_empty_partition_is_checkpointed_at_its_end_from_any_start() {
    for (group, start) in
        [("empty-earliest", StartWithoutCheckpoint::Earliest), ("empty-committed", StartWithoutCheckpoint::Committed)]
    {
        let (_cluster, brokers) = cluster_with_topic();
        a_quiet_start_is_checkpointed_at(&brokers, group, start, 0).await;
    }
}

/// A partition started from the group's committed offset (`committed`) that stays quiet is
/// checkpointed there too, the offset asked of the broker, and the messages after it are read.
/// Before, as for `latest`, no batch wrote a checkpoint and every other member's stall watch
/// rejoined the group every minute until a message came (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_partition_started_at_the_group_s_offset_is_checkpointed_there() {
    let (_cluster, brokers) = cluster_with_topic();
    produce(&brokers, 30);
    // Another store's member reads the topic under the group and commits its offsets.
    let earlier = Arc::new(RecordingSink::default());
    let member = Member::start(&brokers, "quiet-committed", &earlier);
    wait_for(Duration::from_secs(30), || earlier.checkpoints() == all_at(30)).await;
    member.stop().await;
    a_quiet_start_is_checkpointed_at(&brokers, "quiet-committed", StartWithoutCheckpoint::Committed, 30).await;
}

/// A group offset beyond the partition's end (a log truncated under the group), written as the
/// checkpoint, is checked as a stored one and moved back to the partition's start
/// (decision 0040): every message is read. Left where it was, it would have fenced off every
/// message below it (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_offset_beyond_the_partition_s_end_is_moved_back_to_its_start() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

    let (_cluster, brokers) = cluster_with_topic();
    produce(&brokers, 30);
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "committed-ahead")
        .create()
        .expect("consumer");
    let mut offsets = rdkafka::TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        offsets.add_partition_offset(TOPIC, partition, rdkafka::Offset::Offset(1_000)).expect("offset");
    }
    committer.commit(&offsets, CommitMode::Sync).expect("commit");
    drop(committer);

    let sink = Arc::new(RecordingSink::default());
    let config = KafkaSourceConfig {
        start_without_checkpoint: StartWithoutCheckpoint::Committed,
        ..config(&brokers, "committed-ahead")
    };
    let member = Member::start_with(config, &sink);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(30)).await;
    member.stop().await;
    let applied = sink.applied();
    assert!(applied.values().all(|offsets| *offsets == (0..30).collect::<Vec<i64>>()), "{applied:?}");
}

/// Watermarks the stall watch cannot read (an offline partition, a broker timing out) are
/// said, and the partitions the broker answers for are still watched. Before, one failing
/// partition made the whole tick give up, on every tick, without a word: the watch was off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermarks_the_stall_watch_cannot_read_are_said() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    let (cluster, brokers) = cluster_with_topic();
    produce(&brokers, 5);
    let sink = Arc::new(RecordingSink::default());
    let config =
        KafkaSourceConfig { stalled_partition_after: Duration::from_secs(6), ..config(&brokers, "watermarks") };
    let member = Member::start_with(config, &sink);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(5)).await;
    let refusals = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 200];
    cluster.request_errors(RDKafkaApiKey::ListOffsets, &refusals);
    let said =
        || sink.source_errors.lock().expect("sink state").iter().any(|(operation, _)| *operation == "stall_watermarks");
    wait_for(Duration::from_secs(30), said).await;
    cluster.clear_request_errors(RDKafkaApiKey::ListOffsets);
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_member_takes_partitions_over_without_a_gap() {
    let (_cluster, brokers) = cluster_with_topic();
    // Both members share one store's checkpoints, as two workers share one database.
    let sink = Arc::new(RecordingSink::default());
    let other = Arc::new(RecordingSink { checkpoints: Arc::clone(&sink.checkpoints), ..RecordingSink::default() });
    let first = Member::start(&brokers, "pair", &sink);
    produce(&brokers, 200);
    let second = Member::start(&brokers, "pair", &other);
    produce(&brokers, 200);
    wait_for(Duration::from_secs(60), || sink.checkpoints() == all_at(400)).await;
    first.stop().await;
    second.stop().await;

    // The second member took partitions over, and read some of them.
    let (by_first, by_second) = (sink.applied(), other.applied());
    assert!(!by_second.is_empty(), "the second member applied nothing");
    // A partition that moved may be read again from the shared checkpoint (the store absorbs
    // that as duplicates), but never with an offset left out.
    let mut applied = by_first;
    for (partition, offsets) in by_second {
        applied.entry(partition).or_default().extend(offsets);
    }
    assert_complete(&applied, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_sasl_settings_are_accepted_and_an_unknown_one_is_refused() {
    let mut secure = config("127.0.0.1:9093", "secure");
    secure.extra = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "catalog-sync"),
        ("sasl.password", "s3cret"),
        ("ssl.endpoint.identification.algorithm", "https"),
    ]
    .into_iter()
    .map(|(key, value)| ClientOption::new(key, value))
    .collect();
    let sink: Arc<dyn BatchSink> = Arc::new(RecordingSink::default());
    let source = KafkaSource::new(secure.clone(), Arc::clone(&sink)).expect("librdkafka is built with TLS and SASL");
    assert!(!format!("{source:?}").contains("s3cret"), "no secret in Debug output");

    let mut unknown = secure.clone();
    unknown.extra.push(ClientOption::new("no.such.setting", "1"));
    let error = KafkaSource::new(unknown, Arc::clone(&sink)).expect_err("an unknown setting");
    assert!(error.to_string().contains("no.such.setting"), "{error}");

    // librdkafka repeats a value it refuses: the error says what is wrong, not the value.
    secure.extra.push(ClientOption::new("sasl.mechanism", "s3cret-MECHANISM"));
    let error = KafkaSource::new(secure, sink).expect_err("an unknown mechanism");
    assert_eq!(
        error.to_string(),
        "creating the kafka client: Client creation error: Unsupported SASL mechanism: <redacted>"
    );
}

/// A header name Kafka takes but that is not UTF-8 (rdkafka's header reader panicked on it,
/// stopping the partition at that message for good): the message is read like any other, and
/// a `traceparent` after such a header is still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(unsafe_code)]
async fn a_header_name_that_is_not_utf_8_stops_nothing() {
    use rdkafka::bindings::{rd_kafka_header_add, rd_kafka_headers_t};
    use rdkafka::message::{BorrowedHeaders, Header, OwnedHeaders};

    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (_cluster, brokers) = cluster_with_topic();
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("producer");
    for n in 0..3 {
        // Safe rdkafka only adds names that are `&str`: the invalid one goes in through the
        // C API, on the list `OwnedHeaders` owns (a `BorrowedHeaders` is that list's address).
        let headers = OwnedHeaders::new_with_capacity(2);
        if n < 2 {
            let list =
                std::ptr::from_ref::<BorrowedHeaders>(headers.as_borrowed()).cast_mut().cast::<rd_kafka_headers_t>();
            let (name, value) = (b"\xff\xfe", b"binary");
            // SAFETY: `list` is the live header list `headers` owns; name and value are copied.
            let added =
                unsafe { rd_kafka_header_add(list, name.as_ptr().cast(), 2, value.as_ptr().cast_mut().cast(), 6) };
            assert_eq!(added, rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR);
        }
        let headers =
            if n == 1 { headers.insert(Header { key: "traceparent", value: Some(TRACEPARENT) }) } else { headers };
        let payload = format!("message {n}");
        let record: BaseRecord<'_, str, str> =
            BaseRecord::to(TOPIC).partition(0).payload(payload.as_str()).headers(headers);
        producer.send(record).map_err(|(error, _)| error).expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");

    let sink = Arc::new(RecordingSink::default());
    let member = Member::start(&brokers, "bytes", &sink);
    wait_for(Duration::from_secs(30), || sink.checkpoints().get(&0) == Some(&3)).await;
    member.stop().await;
    let traceparents = sink.traceparents.lock().expect("sink state").clone();
    assert_eq!(traceparents, BTreeMap::from([(0, None), (1, Some(TRACEPARENT.to_owned())), (2, None)]));
}

/// An invalid `traceparent` is said once its batch is durable, not while the batch is built:
/// a batch abandoned (a shutdown, a revoke) is read again, and its invalid headers were
/// counted and logged a second time (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_traceparent_is_said_once_its_batch_is_durable() {
    use rdkafka::message::{Header, OwnedHeaders};

    let (_cluster, brokers) = cluster_with_topic();
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("producer");
    let headers = OwnedHeaders::new().insert(Header { key: "traceparent", value: Some("not a trace") });
    send(&producer, BaseRecord::<'_, str, str>::to(TOPIC).partition(0).payload("message").headers(headers));
    producer.flush(Duration::from_secs(10)).expect("flush");
    let permits = Arc::new(tokio::sync::Semaphore::new(0));
    let sink = Arc::new(RecordingSink { permits: Some(Arc::clone(&permits)), ..RecordingSink::default() });
    let member = Member::start(&brokers, "said-once", &sink);
    // The message is read, its batch cut (after 20 ms) and waiting to be applied.
    wait_for(Duration::from_secs(30), || !sink.waiting_since.lock().expect("sink state").is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*sink.invalid_traceparents.lock().expect("sink state"), Vec::<i64>::new(), "not durable yet");
    permits.add_permits(100);
    wait_for(Duration::from_secs(30), || sink.checkpoints().get(&0) == Some(&1)).await;
    member.stop().await;
    assert_eq!(*sink.invalid_traceparents.lock().expect("sink state"), [0]);
}

/// A `traceparent` header with no value (null, not empty) is an invalid one, counted as an
/// empty one is: it was taken for no header at all, and nothing said a producer sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_with_no_value_is_counted_invalid() {
    use rdkafka::message::{Header, OwnedHeaders};

    let (_cluster, brokers) = cluster_with_topic();
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("producer");
    let headers = OwnedHeaders::new().insert(Header { key: "traceparent", value: None::<&str> });
    send(&producer, BaseRecord::<'_, str, str>::to(TOPIC).partition(0).payload("message").headers(headers));
    producer.flush(Duration::from_secs(10)).expect("flush");
    let sink = Arc::new(RecordingSink::default());
    let member = Member::start(&brokers, "null-header", &sink);
    wait_for(Duration::from_secs(30), || sink.checkpoints().get(&0) == Some(&1)).await;
    member.stop().await;
    assert_eq!(*sink.invalid_traceparents.lock().expect("sink state"), [0]);
    assert_eq!(sink.traceparents.lock().expect("sink state").get(&0), Some(&None), "none carried on");
}

/// Each batch's checkpoint names the id of the topic its offsets are of. A member taking a
/// partition whose stored checkpoint names another id (the topic was deleted and created
/// again since, and may hold as many messages as the old one did) moves it back to the low
/// watermark and reads the partition again (decision 0040); under the same id it reads on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_written_under_another_topic_id_is_moved_back() {
    let (_cluster, brokers) = cluster_with_topic();
    let sink = Arc::new(RecordingSink::default());
    read_to_the_end(&brokers, "topic-id", &sink, 10).await;
    let cursors = sink.cursors.lock().expect("sink state").clone();
    let topic_id = cursors[&0].clone().expect("a cursor");
    assert!(topic_id.starts_with("topic-id:") && topic_id.len() == "topic-id:".len() + 32, "{topic_id}");
    assert!(cursors.values().all(|cursor| cursor.as_ref() == Some(&topic_id)), "{cursors:?}");

    // Partition 0's checkpoint as a member of an earlier topic under this name wrote it.
    let other_topic = format!("topic-id:{}", "0".repeat(31) + "1");
    sink.cursors.lock().expect("sink state").insert(0, Some(other_topic));
    let member = Member::start(&brokers, "topic-id", &sink);
    wait_for(Duration::from_secs(30), || sink.applied()[&0].len() == 20).await;
    member.stop().await;
    assert_eq!(sink.applied()[&0], (0..10).chain(0..10).collect::<Vec<_>>(), "partition 0 read again");
    assert_eq!(sink.applied()[&1], (0..10).collect::<Vec<_>>(), "the others read on");
    assert_eq!(*sink.rewinds.lock().expect("sink state"), [(0, 10, 0)]);
    assert_eq!(
        *sink.rewound_cursors.lock().expect("sink state"),
        [Some(topic_id.clone())],
        "moved back under the topic's id: the store refuses the old topic's batches from then on"
    );
    assert_eq!(
        sink.cursors.lock().expect("sink state")[&0].as_ref(),
        Some(&topic_id),
        "written under the topic's id again"
    );
}

/// A checkpoint written without a topic id (before ids were kept, or moved back while the
/// broker gave none) is given the topic's id where it stands when a member takes its
/// partition, before any batch: the store then refuses a batch of another topic's member
/// for it (decision 0040). Nothing is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_written_without_a_topic_id_is_given_the_topic_s_id() {
    let (_cluster, brokers) = cluster_with_topic();
    let sink = Arc::new(RecordingSink::default());
    read_to_the_end(&brokers, "unnamed", &sink, 10).await;
    let topic_id = sink.cursors.lock().expect("sink state")[&0].clone().expect("a cursor");
    sink.cursors.lock().expect("sink state").insert(0, None);

    produce(&brokers, 1);
    let member = Member::start(&brokers, "unnamed", &sink);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(11)).await;
    member.stop().await;
    assert_eq!(*sink.named.lock().expect("sink state"), [(0, 10, Some(topic_id.clone()))]);
    assert_eq!(*sink.rewinds.lock().expect("sink state"), [], "nothing moved back");
    assert_eq!(sink.applied()[&0], (0..11).collect::<Vec<_>>(), "read on from the checkpoint");
}

/// The move back of a checkpoint written under another topic id loses its race: a zombie's
/// last batch (of the old topic) moved the checkpoint on first. The checkpoint is read and
/// checked again, and moved back from where it stands now; it was read on from where it had
/// been, and the new topic's messages below the zombie's checkpoint were skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_back_that_loses_its_race_reads_the_checkpoint_again() {
    let (_cluster, brokers) = cluster_with_topic();
    let sink = Arc::new(RecordingSink::default());
    read_to_the_end(&brokers, "raced", &sink, 10).await;

    // Partition 0's checkpoint at 8 under an earlier topic's id; a zombie moves it to 10.
    let other_topic = format!("topic-id:{}", "0".repeat(31) + "1");
    sink.checkpoints.lock().expect("sink state").insert(0, 8);
    sink.cursors.lock().expect("sink state").insert(0, Some(other_topic));
    *sink.zombie_moves_to.lock().expect("sink state") = Some(10);
    let member = Member::start(&brokers, "raced", &sink);
    wait_for(Duration::from_secs(30), || sink.applied()[&0].len() >= 20).await;
    member.stop().await;
    assert_eq!(sink.applied()[&0], (0..10).chain(0..10).collect::<Vec<_>>(), "partition 0 read again whole");
    assert_eq!(*sink.rewinds.lock().expect("sink state"), [(0, 10, 0)], "moved back from where the zombie left it");
}

/// Partition 0's first offset the broker still holds.
fn low_watermark(brokers: &str) -> i64 {
    let consumer: rdkafka::consumer::BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("consumer");
    let (low, _) =
        rdkafka::consumer::Consumer::fetch_watermarks(&consumer, TOPIC, 0, Duration::from_secs(5)).expect("watermarks");
    low
}

/// Produces `count` messages of `size` bytes to partition 0.
fn produce_large(brokers: &str, count: usize, size: usize) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().expect("producer");
    let payload = vec![b'x'; size];
    for _ in 0..count {
        send(&producer, BaseRecord::<'_, str, [u8]>::to(TOPIC).partition(0).payload(payload.as_slice()));
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// The broker's retention deletes offsets the member has not fetched yet, while it applies
/// a batch (it lags): librdkafka's next fetch is out of range and starts again at the
/// partition's new start (`auto.offset.reset`). The offsets it jumped over are lost upstream,
/// and reported as a gap, never skipped silently: every offset of the partition is either
/// applied or in a gap, never both. (The mock cluster keeps 5 MB of a partition, dropping
/// its oldest record batches beyond that.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_retention_deletes_while_the_member_lags_are_a_gap_not_a_silent_skip() {
    const SIZE: usize = 100_000;
    let (_cluster, brokers) = cluster_with_topic();
    produce_large(&brokers, 30, SIZE);
    let permits = Arc::new(tokio::sync::Semaphore::new(1));
    let sink = Arc::new(RecordingSink { permits: Some(Arc::clone(&permits)), ..RecordingSink::default() });
    let member = Member::start(&brokers, "lagging", &sink);
    // The first batch is applied, the second waits: the member reads mid-partition. Ahead of
    // what it applied it holds at most the waiting batch (50 messages) and librdkafka's
    // prefetch (1 MB queued, and one more 1 MB fetch response: about twenty messages).
    wait_for(Duration::from_secs(30), || sink.checkpoints().contains_key(&0)).await;
    let applied_first = sink.checkpoints()[&0];
    let fetched_at_most = applied_first + 50 + 2 * (1 << 20) / i64::try_from(SIZE).expect("size");
    // 20 MB in all: all but the last 5 MB are deleted, beyond anything the member can have
    // fetched. The member resumes only once the broker has deleted them: on a loaded machine
    // the deletion could come after the member had caught up, and there would be no gap to
    // find. (Waiting for "ten messages ahead" let the member be past it under load.)
    produce_large(&brokers, 170, SIZE);
    wait_for(Duration::from_secs(30), || low_watermark(&brokers) > fetched_at_most).await;
    permits.add_permits(10_000);
    wait_for(Duration::from_secs(30), || sink.checkpoints().get(&0) == Some(&200)).await;
    member.stop().await;

    let applied: Vec<i64> = sink.applied().get(&0).cloned().unwrap_or_default();
    let gaps = sink.gaps.lock().expect("sink state").clone();
    assert!(!gaps.is_empty(), "no gap reported; applied {applied:?}");
    let mut accounted = BTreeSet::new();
    for offset in &applied {
        assert!(accounted.insert(*offset), "offset {offset} applied twice");
    }
    for &(partition, from, to) in &gaps {
        assert_eq!(partition, 0);
        assert!(from >= applied_first, "gap {from}..{to} below what the first batch applied");
        for offset in from..to {
            assert!(accounted.insert(offset), "offset {offset} both applied and in the gap {from}..{to}");
        }
    }
    assert_eq!(accounted, (0..200).collect::<BTreeSet<_>>(), "every offset applied or reported lost");
}

/// A partition whose last record is a transaction's commit marker, which librdkafka reads and
/// never hands to the application: once the partition is quiet, the checkpoint passes the
/// marker (decision 0042), so the partition shows no lag and no other member takes it for
/// stalled. A marker between messages is no gap (decision 0041).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_ending_in_a_transaction_marker_is_read_to_its_end() {
    let (_cluster, brokers) = cluster_with_topic();
    // Partition 0: messages 0-9, a marker at 10, messages 11-20, a marker at 21.
    produce(&brokers, 10);
    assert_eq!(marker::produce_commit_marker(&brokers, TOPIC, 0), 10);
    produce(&brokers, 10);
    assert_eq!(marker::produce_commit_marker(&brokers, TOPIC, 0), 21);
    let sink = Arc::new(RecordingSink::default());
    let member = Member::start(&brokers, "transactions", &sink);
    let ends = HashMap::from([(0, 22), (1, 20), (2, 20)]);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == ends).await;
    member.stop().await;

    let applied = sink.applied();
    assert_eq!(applied[&0], (0..10).chain(11..21).collect::<Vec<_>>(), "every message once, no marker");
    assert_eq!(applied[&1], (0..20).collect::<Vec<_>>());
    assert_eq!(*sink.gaps.lock().expect("sink state"), Vec::new(), "a marker is no gap");
}

/// A stretch that delivers no message at all (a lone marker; aborted records and their
/// marker, which `read_committed` keeps from the application) still moves the checkpoint to
/// the partition's end: after a quiet spell with nothing delivered, and in a partition that
/// never held a message. Before, only a delivered message armed the check: the checkpoint
/// stayed below the end for good, every other member took the partition for stalled and
/// rejoined the group every minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stretch_that_delivers_no_message_is_passed() {
    let (_cluster, brokers) = cluster_with_topic();
    // Partition 0 holds only a marker; partitions 1 and 2 ten messages each.
    assert_eq!(marker::produce_commit_marker(&brokers, TOPIC, 0), 0);
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("producer");
    for partition in 1..PARTITIONS {
        for n in 0..10 {
            send(&producer, BaseRecord::<'_, str, str>::to(TOPIC).partition(partition).payload(&format!("m{n}")));
        }
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let sink = Arc::new(RecordingSink::default());
    let member = Member::start(&brokers, "no-message", &sink);
    let ends = HashMap::from([(0, 1), (1, 10), (2, 10)]);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == ends).await;

    // Quiet, caught up: a marker alone after the last message of partition 1.
    assert_eq!(marker::produce_commit_marker(&brokers, TOPIC, 1), 10);
    let ends = HashMap::from([(0, 1), (1, 11), (2, 10)]);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == ends).await;
    member.stop().await;
    assert!(sink.applied().get(&0).is_none_or(Vec::is_empty), "nothing applied of a marker");
    assert_eq!(*sink.gaps.lock().expect("sink state"), Vec::new(), "a marker is no gap");
}

/// On a topic that keeps the producer's `CreateTime`, a caught-up partition's queue lag is
/// timed from when the worker received a message: a supplier whose clock runs ten minutes
/// behind does not turn the signal red for every tenant. A backlog (more than a batch to the
/// partition's end) is timed from the producer's time, the only word of how old it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_clock_behind_is_no_queue_lag() {
    let (_cluster, brokers) = cluster_with_topic();
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let ten_minutes_ago = (started - chrono::Duration::minutes(10)).timestamp_millis();
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("producer");
    for n in 0..10 {
        let payload = format!("m{n}");
        send(
            &producer,
            BaseRecord::<'_, str, str>::to(TOPIC).partition(0).payload(&payload).timestamp(ten_minutes_ago),
        );
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let sink = Arc::new(RecordingSink::default());
    let member = Member::start(&brokers, "clock-behind", &sink);
    wait_for(Duration::from_secs(30), || sink.checkpoints().get(&0) == Some(&10)).await;
    member.stop().await;
    let waiting = std::mem::take(&mut *sink.waiting_since.lock().expect("sink state"));
    assert!(!waiting.is_empty());
    assert!(waiting.iter().all(|at| *at >= started), "timed from receipt: {waiting:?}, started {started}");

    // A backlog of 500 written ten minutes ago, read by a new member: ten minutes behind.
    for n in 0..500 {
        let payload = format!("b{n}");
        send(
            &producer,
            BaseRecord::<'_, str, str>::to(TOPIC).partition(1).payload(&payload).timestamp(ten_minutes_ago),
        );
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let member = Member::start(&brokers, "clock-behind", &sink);
    wait_for(Duration::from_secs(30), || sink.checkpoints().get(&1) == Some(&500)).await;
    member.stop().await;
    let waiting = sink.waiting_since.lock().expect("sink state").clone();
    let oldest = waiting.iter().min().copied().expect("a backlog waited");
    assert!(oldest <= started - chrono::Duration::minutes(9), "a backlog's age: {waiting:?}, started {started}");
}

/// A partition read through the shared queue (the topic was created after the worker
/// started) whose last record is a transaction marker: the dispatcher tells its worker once
/// librdkafka's position passed the marker, and the checkpoint reaches the partition's end
/// (decision 0042). Before, it stayed one below for good, and every other member took the
/// partition for stalled and rejoined the group every minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatched_partition_ending_in_a_transaction_marker_is_read_to_its_end() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    let sink = Arc::new(RecordingSink::default());
    let member = Member::start(&brokers, "late-transactions", &sink);
    // Long enough for the member to have split off the partitions the topic had (none) on a
    // loaded machine: created later, they come through the shared queue and the dispatcher.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    produce(&brokers, 10);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(10)).await;
    // Quiet, caught up: a marker after the last message of partition 0.
    assert_eq!(marker::produce_commit_marker(&brokers, TOPIC, 0), 10);
    let ends = HashMap::from([(0, 11), (1, 10), (2, 10)]);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == ends).await;
    member.stop().await;
    assert_each_offset_once_in_order(&sink.applied(), 10);
    assert_eq!(*sink.gaps.lock().expect("sink state"), Vec::new(), "a marker is no gap");
}

/// A fatal consumer error (a static member fenced: another member joined with its
/// `group.instance.id`) ends the run with the error, reported once and as fatal. The run read
/// on with a consumer that reads nothing (its readiness green), and every consumer error was
/// counted twice, the second time as retryable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_consumer_error_ends_the_run_and_is_counted_once() {
    let (cluster, brokers) = cluster_with_topic();
    let sink = Arc::new(RecordingSink::default());
    let mut fenced = config(&brokers, "fenced");
    fenced.extra.push(ClientOption::new("group.instance.id", "worker-1"));
    cluster.request_errors(
        rdkafka::types::RDKafkaApiKey::JoinGroup,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID],
    );
    let Member { shutdown, running } = Member::start_with(fenced, &sink);
    let ended = tokio::time::timeout(Duration::from_secs(30), running).await;
    shutdown.cancel();
    let ended = ended.expect("the run ends by itself").expect("source task");
    assert!(matches!(ended, Err(catalog_kafka::KafkaSourceError::Client(_))), "{ended:?}");
    let errors = sink.source_errors.lock().expect("sink state").clone();
    assert_eq!(errors, [("consume", catalog_core::FailureClass::Fatal)], "once, as fatal");
}

/// Started from the group's committed offset (`--kafka-start-without-checkpoint committed`,
/// no checkpoint), on a quiet partition whose committed offset is a transaction's marker and
/// whose start retention has deleted: the checkpoint passes the marker and no gap is reported.
/// The offsets before the committed one were the group's to skip, not lost: before, the pass
/// of the marker compared them with the log's start and reported `0..start` as a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_start_on_a_marker_reports_no_gap() {
    let (_cluster, brokers) = cluster_with_topic();
    // 10 MB: the mock cluster keeps the last 5 of a partition, so its start is past 0.
    produce_large(&brokers, 100, 100_000);
    wait_for(Duration::from_secs(30), || low_watermark(&brokers) > 0).await;
    let marker = marker::produce_commit_marker(&brokers, TOPIC, 0);
    let committer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "committed-marker")
        .create()
        .expect("consumer");
    let mut offsets = rdkafka::TopicPartitionList::new();
    offsets.add_partition_offset(TOPIC, 0, rdkafka::Offset::Offset(marker)).expect("offset");
    rdkafka::consumer::Consumer::commit(&committer, &offsets, rdkafka::consumer::CommitMode::Sync).expect("commit");
    drop(committer);

    let sink = Arc::new(RecordingSink::default());
    let committed = KafkaSourceConfig {
        start_without_checkpoint: StartWithoutCheckpoint::Committed,
        ..config(&brokers, "committed-marker")
    };
    let member = Member::start_with(committed, &sink);
    wait_for(Duration::from_secs(30), || sink.checkpoints().get(&0) == Some(&(marker + 1))).await;
    member.stop().await;
    assert_eq!(*sink.gaps.lock().expect("sink state"), Vec::new(), "the group's start is no gap");
}
