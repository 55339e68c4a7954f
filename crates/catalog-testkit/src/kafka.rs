//! Kafka helpers for tests against the local Kafka-protocol broker (tansu in CI).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// The broker the tests use; `.ci/run` starts it.
pub fn brokers() -> String {
    std::env::var("CATALOG_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A name no other test run uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates a topic, failing the test if the broker cannot be reached.
pub async fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&[NewTopic::new(name, partitions, TopicReplication::Fixed(1))], &options)
        .await
        .unwrap_or_else(|error| {
            panic!("a Kafka-protocol broker is required at {} and did not answer: {error}", brokers())
        });
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating topic {topic}: {code}"));
    }
}

/// One message to produce.
#[derive(Debug, Clone)]
pub struct TestMessage {
    pub key: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub traceparent: Option<String>,
    /// `None` lets the producer's partitioner choose (by key).
    pub partition: Option<i32>,
}

/// Produces messages in order, one record per batch, waits until the broker has
/// acknowledged every one, and returns where each landed: `(partition, offset)`.
///
/// One record per batch because tansu 0.6 cannot serve a fetch that starts in the middle of
/// a record batch (it returns nothing of that batch), which real Kafka does; with single-
/// record batches a consumer resuming at any offset reads on, as it would from Kafka.
pub async fn produce(topic: &str, messages: &[TestMessage]) -> Vec<(i32, i64)> {
    produce_with(topic, messages, "1").await
}

/// Produces with the producer's normal batching, for throughput; for streams consumed from
/// the start only (see [`produce`]).
pub async fn produce_batched(topic: &str, messages: &[TestMessage]) -> Vec<(i32, i64)> {
    produce_with(topic, messages, "10000").await
}

/// Produces as a real producer does, `records_per_batch` records to a record batch: the
/// messages are queued at once and the producer lingers until a batch is full, so each
/// partition's offsets are cut into batches of that size from its first offset (the last
/// one of a partition may be shorter). For tests of a consumer resuming inside a batch.
pub async fn produce_in_batches(topic: &str, messages: &[TestMessage], records_per_batch: usize) -> Vec<(i32, i64)> {
    produce_with(topic, messages, &records_per_batch.to_string()).await
}

async fn produce_with(topic: &str, messages: &[TestMessage], records_per_batch: &str) -> Vec<(i32, i64)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.timeout.ms", "60000")
        .set("message.max.bytes", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("batch.num.messages", records_per_batch)
        // Every message is queued before the first batch leaves: batches are full.
        .set("linger.ms", "200")
        .create()
        .expect("producer");
    let mut deliveries = Vec::with_capacity(messages.len());
    for message in messages {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic);
        if let Some(key) = &message.key {
            record = record.key(key.as_str());
        }
        if let Some(payload) = &message.payload {
            record = record.payload(payload.as_slice());
        }
        if let Some(partition) = message.partition {
            record = record.partition(partition);
        }
        if let Some(traceparent) = &message.traceparent {
            record =
                record.headers(OwnedHeaders::new().insert(Header { key: "traceparent", value: Some(traceparent) }));
        }
        deliveries.push(producer.send_result(record).expect("the producer queue has room"));
    }
    let mut positions = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let delivered =
            delivery.await.expect("producer dropped").unwrap_or_else(|(error, _)| panic!("producing: {error}"));
        positions.push((delivered.partition, delivered.offset));
    }
    positions
}

/// Commits `offsets` (`(partition, next offset)`) for `group` on `topic`, as a member of the
/// group that stopped there would have: what a new member of the group starts from.
pub async fn commit_group_offsets(topic: &str, group: &str, offsets: &[(i32, i64)]) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset)).expect("valid offset");
    }
    tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
        .await
        .expect("blocking task")
        .unwrap_or_else(|error| panic!("committing offsets for group {group}: {error}"));
}

/// The first offset a plain consumer (no group) receives when it starts fetching `partition`
/// at `offset`: `offset` itself from a broker that serves a fetch from inside a record batch
/// (Kafka), the next batch's first offset from one that does not (tansu 0.6).
pub async fn first_offset_fetched_from(topic: &str, partition: i32, offset: i64) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique_name("probe"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset)).expect("valid offset");
    consumer.assign(&list).expect("assign");
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        loop {
            assert!(started.elapsed() < Duration::from_secs(30), "nothing fetched from offset {offset} within 30 s");
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => return message.offset(),
                Some(Err(error)) => panic!("fetching from offset {offset}: {error}"),
                None => {}
            }
        }
    })
    .await
    .expect("blocking task")
}
