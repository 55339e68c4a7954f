//! The Kafka source's settings, and the librdkafka configuration they become.

use std::time::Duration;

use rdkafka::config::ClientConfig;

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

/// The librdkafka settings of the source's consumer: manual commits after the store, bounded
/// prefetch per partition, short fetch waits; `config.extra` last.
pub(crate) fn client_config(config: &KafkaSourceConfig) -> ClientConfig {
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
        // throughput there (measured in docs/benchmarks.md, session 5).
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
        // for again 10 ms after it has room, not librdkafka's default 1 s, which stalled a
        // partition after every batch (docs/benchmarks.md, session 5).
        .set("fetch.queue.backoff.ms", "10");
    for (key, value) in &config.extra {
        client.set(key, value);
    }
    client
}
