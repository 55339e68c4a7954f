//! The Kafka source's settings, and the librdkafka configuration they become.

use std::time::Duration;

use rdkafka::config::ClientConfig;

/// Where a partition with no stored checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartWithoutCheckpoint {
    /// At the partition's low watermark: everything the broker still holds. A new or restored
    /// database under a group that already read the topic reads it all again (the store
    /// recognizes what it holds).
    #[default]
    Earliest,
    /// At the group's committed offset, taken for the store's checkpoint and checked as one
    /// (beyond the partition's end: moved back to its start); at the earliest without one.
    Committed,
    /// At the partition's end when the worker starts: older messages are skipped.
    Latest,
}

impl StartWithoutCheckpoint {
    pub fn as_str(&self) -> &'static str {
        match self {
            StartWithoutCheckpoint::Earliest => "earliest",
            StartWithoutCheckpoint::Committed => "committed",
            StartWithoutCheckpoint::Latest => "latest",
        }
    }
}

/// One librdkafka setting given by the operator (`security.protocol`, `sasl.password`, …).
/// Its value may be a secret: `Debug` shows the key only, and so does every log line.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientOption {
    pub key: String,
    value: String,
}

impl ClientOption {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.into() }
    }

    /// The value, for librdkafka only.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for ClientOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=<redacted>", self.key)
    }
}

/// Why a `key=value` option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientOptionError {
    /// Not `key=value`; the option itself is not repeated, since it may hold a secret.
    #[error("a Kafka option is not key=value (or has an empty key)")]
    NotKeyValue,
    #[error("the value of {key} names the environment variable {name}, which is not set")]
    MissingVariable { key: String, name: String },
    /// A setting the source makes itself, which the guarantees rest on or a flag sets.
    #[error("{key} cannot be set as a Kafka option: {why}")]
    Reserved { key: String, why: &'static str },
}

/// The librdkafka settings an option may not change, and why: the source's guarantees rest on
/// them (offsets committed by hand once the store made a batch durable, transactions read
/// committed, a partition never reset past a gap the source counts itself), or the worker
/// sets them from a flag of their own (an option, applied last, would silently win).
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "the worker sets it from --kafka-brokers"),
    ("metadata.broker.list", "the worker sets it from --kafka-brokers"),
    ("group.id", "the worker sets it from --group"),
    ("enable.auto.commit", "offsets are committed by the worker, after the store made each batch durable"),
    ("auto.commit.enable", "offsets are committed by the worker, after the store made each batch durable"),
    ("enable.auto.offset.store", "offsets are committed by the worker, after the store made each batch durable"),
    (
        "auto.offset.reset",
        "a partition starts at the store's checkpoint (--kafka-start-without-checkpoint without one), and the \
         worker counts offsets the broker no longer holds as a gap; a reset to the end would skip records it holds",
    ),
    ("isolation.level", "records of a supplier's aborted transaction must never apply (read_committed)"),
    ("partition.assignment.strategy", "the source handles the eager range,roundrobin assignment it sets"),
    ("group.protocol", "the source handles the classic protocol's eager assignment, not KIP-848's incremental one"),
    (
        "group.remote.assignor",
        "the source handles the classic protocol's eager assignment, not KIP-848's incremental one",
    ),
    ("session.timeout.ms", "the worker sets it from --kafka-session-timeout-ms"),
    ("max.poll.interval.ms", "the worker sets it from --kafka-session-timeout-ms"),
    ("heartbeat.interval.ms", "the worker sets it from --kafka-session-timeout-ms"),
    ("fetch.wait.max.ms", "the worker sets it from --kafka-fetch-wait-ms"),
];

impl ClientOption {
    /// Parses `key=value`; a value `env:NAME` is read from the variable NAME through `lookup`
    /// (so that secrets stay out of the command line and `ps`).
    pub fn parse_with(option: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ClientOptionError> {
        let (key, value) = option
            .split_once('=')
            .map(|(key, value)| (key.trim(), value))
            .filter(|(key, _)| !key.is_empty())
            .ok_or(ClientOptionError::NotKeyValue)?;
        if let Some((_, why)) = RESERVED.iter().find(|(reserved, _)| reserved.eq_ignore_ascii_case(key)) {
            return Err(ClientOptionError::Reserved { key: key.to_owned(), why });
        }
        let value = match value.strip_prefix("env:") {
            Some(name) => lookup(name)
                .ok_or_else(|| ClientOptionError::MissingVariable { key: key.to_owned(), name: name.to_owned() })?,
            None => value.to_owned(),
        };
        Ok(Self::new(key, value))
    }

    /// Parses `key=value`, reading `env:NAME` values from the process environment.
    pub fn parse(option: &str) -> Result<Self, ClientOptionError> {
        Self::parse_with(option, |name| std::env::var(name).ok())
    }
}

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
    /// Where a partition with no stored checkpoint starts.
    pub start_without_checkpoint: StartWithoutCheckpoint,
    /// Another member's partition whose checkpoint has not moved for this long while
    /// messages wait is stalled (its member died without leaving): the source rejoins the
    /// group so that a rebalance gives it to a live member.
    pub stalled_partition_after: Duration,
    /// Message bytes all pending batches hold at most, shared evenly by the topic's
    /// partitions: a partition's batch is cut once it holds its share.
    pub max_bytes_in_flight: usize,
    /// Extra librdkafka settings (TLS, SASL, tuning), applied last.
    pub extra: Vec<ClientOption>,
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
        // Statistics say whether a broker is up (readiness).
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
    for option in &config.extra {
        client.set(&option.key, option.value());
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(option: &str) -> Result<ClientOption, ClientOptionError> {
        ClientOption::parse_with(option, |name| (name == "KAFKA_PASSWORD").then(|| "s3cret,with=signs".to_owned()))
    }

    #[test]
    fn options_are_key_value_and_secrets_come_from_the_environment() {
        let option = parse("security.protocol=SASL_SSL").expect("valid");
        assert_eq!((option.key.as_str(), option.value()), ("security.protocol", "SASL_SSL"));
        let option = parse("sasl.password=env:KAFKA_PASSWORD").expect("valid");
        assert_eq!((option.key.as_str(), option.value()), ("sasl.password", "s3cret,with=signs"));
        // Only the first `=` separates: a value may hold more.
        assert_eq!(parse("sasl.jaas.config=a=b").expect("valid").value(), "a=b");
        assert_eq!(parse("ssl.ca.location=").expect("valid").value(), "");
    }

    #[test]
    fn a_bad_option_names_the_key_never_the_value() {
        assert_eq!(parse("sasl.password:s3cret"), Err(ClientOptionError::NotKeyValue));
        assert_eq!(parse("=s3cret"), Err(ClientOptionError::NotKeyValue));
        assert!(!ClientOptionError::NotKeyValue.to_string().contains("s3cret"));
        let missing = parse("sasl.password=env:UNSET_VARIABLE").expect_err("unset");
        assert_eq!(
            missing.to_string(),
            "the value of sasl.password names the environment variable UNSET_VARIABLE, which is not set"
        );
    }

    #[test]
    fn a_setting_the_guarantees_rest_on_is_refused_with_why() {
        for option in ["enable.auto.commit=true", "auto.offset.reset=latest", "Isolation.Level=read_uncommitted"] {
            let refused = parse(option).expect_err(option);
            assert!(matches!(refused, ClientOptionError::Reserved { .. }), "{option}: {refused:?}");
        }
        let refused = parse("group.id=env:KAFKA_PASSWORD").expect_err("a flag sets it");
        assert_eq!(refused.to_string(), "group.id cannot be set as a Kafka option: the worker sets it from --group");
        assert!(parse("fetch.min.bytes=1").is_ok(), "tuning is left alone");
    }

    #[test]
    fn debug_output_hides_every_value() {
        let option = parse("sasl.password=env:KAFKA_PASSWORD").expect("valid");
        assert_eq!(format!("{option:?}"), "sasl.password=<redacted>");
        let config = KafkaSourceConfig {
            brokers: "localhost:9092".to_owned(),
            topic: "t".to_owned(),
            group: "g".to_owned(),
            batch_size: 1,
            batch_max_wait: Duration::from_millis(1),
            session_timeout: Duration::from_secs(1),
            start_without_checkpoint: StartWithoutCheckpoint::Earliest,
            stalled_partition_after: Duration::from_secs(60),
            max_bytes_in_flight: 1,
            extra: vec![option],
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
