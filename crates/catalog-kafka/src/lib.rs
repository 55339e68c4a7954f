//! Kafka source of supplier events: a consumer-group member that batches each assigned
//! partition on its own, hands batches to a `catalog_app::BatchSink` that makes them durable,
//! and only then commits the offsets to Kafka. The store's checkpoints are the authority on
//! progress: a partition's worker seeks to its stored checkpoint (without one, to the
//! partition's earliest offset, not the group's committed one), steps back further while the
//! broker's fetch starts beyond it, and skips whatever lies below it.
//!
//! Every partition the topic has at start is split off into a librdkafka queue of its own
//! (before the member joins the group, so nothing of it was fetched into the shared queue),
//! read by a long-lived task that runs one `PartitionWorker` per assignment of it. A
//! partition whose batch is being applied then holds back only itself: librdkafka stops
//! fetching for it at its own prefetch limit while the others go on. Partitions added to
//! the topic later arrive through the consumer's shared queue and are dispatched to a
//! worker over a bounded channel.
//!
//! `config` holds the settings and the librdkafka configuration, `context` the callbacks
//! (ownership, statistics, commits), `source` the member and its dispatcher, `feed` where a
//! partition's messages come from, `native` librdkafka's C API where rdkafka falls short,
//! `partition` the worker of one partition, `start` where its reading starts, `rewind` the
//! check that its fetch starts where the store stopped (stepping back when it does not), and
//! `stall` the watch for partitions a dead member still holds (the source rejoins the group).

mod config;
mod context;
mod feed;
mod native;
mod partition;
mod rewind;
mod source;
mod stall;
mod start;
mod topic_id;

use catalog_core::{Classify, FailureClass};
use rdkafka::error::KafkaError;

pub use config::{ClientOption, ClientOptionError, KafkaSourceConfig, StartWithoutCheckpoint};
pub use context::BrokerStatus;
pub use source::KafkaSource;

/// Failures of the source itself.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error("kafka client: {0}")]
    Client(#[from] KafkaError),
    /// librdkafka refused the settings: its message, with the values of the operator's
    /// options blanked out (librdkafka repeats a value it refuses, and one may be a secret).
    #[error("creating the kafka client: {0}")]
    Creation(String),
    #[error("sink failed: {0}")]
    Sink(String),
    #[error("partition task panicked: {0}")]
    Task(String),
}

impl Classify for KafkaSourceError {
    fn failure_class(&self) -> FailureClass {
        match self {
            KafkaSourceError::Client(_) | KafkaSourceError::Creation(_) => FailureClass::NeedsOperator,
            KafkaSourceError::Sink(_) | KafkaSourceError::Task(_) => FailureClass::Fatal,
        }
    }
}
