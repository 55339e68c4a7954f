//! Kafka helpers for tests against the local Kafka-protocol broker (tansu in CI).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

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

async fn produce_with(topic: &str, messages: &[TestMessage], records_per_batch: &str) -> Vec<(i32, i64)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.timeout.ms", "60000")
        .set("message.max.bytes", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("batch.num.messages", records_per_batch)
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
