//! The consumer's context: librdkafka's callbacks (rebalances, statistics, commits) turned
//! into what the partition workers read (which partitions this member owns and since which
//! revocation) and what readiness reads (whether a broker is up).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use catalog_app::{BatchSink, SourceError};
use catalog_core::FailureClass;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use crate::feed::Ownership;

/// A Kafka client error as the source port reports it: `operation` says where it happened.
/// Configuration errors need an operator, and so do the consume errors no retry mends: a
/// batch this build cannot decompress or read, a topic or group the credentials may not read.
/// librdkafka retries everything else itself (an unknown topic or partition, too: it is often
/// a leader moving, and a topic deleted for good shows as lag).
pub(crate) fn source_error(operation: &'static str, error: &KafkaError) -> SourceError {
    let class = match error {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) | KafkaError::Subscription(_) => {
            FailureClass::NeedsOperator
        }
        KafkaError::MessageConsumption(code) if needs_operator(*code) => FailureClass::NeedsOperator,
        KafkaError::MessageConsumptionFatal(_) => FailureClass::Fatal,
        _ => FailureClass::Retryable,
    };
    SourceError { source: "kafka", operation, class, message: error.to_string() }
}

/// A consume error, reported classified; a refusal makes the member not ready.
pub(crate) fn consume_error(sink: &dyn BatchSink, brokers: &BrokerStatus, error: &KafkaError) -> SourceError {
    brokers.saw(error);
    let reported = source_error("consume", error);
    sink.source_error(&reported);
    reported
}

/// A consume error that stays until someone changes the build, the topic or the credentials.
fn needs_operator(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        NotImplemented | BadCompression | UnsupportedCompressionType | BadMessage | InvalidMessage | InvalidRecord
    ) || is_refusal(code)
}

/// Whether the source's connection to the brokers is up, as librdkafka last said: a broker
/// in state `UP` in its statistics (every 5 seconds), down at once when it reports every
/// broker down. Unknown (down) until the first statistics or metadata answer. And whether the
/// brokers refuse this member the topic or its group (their ACLs): an up connection that can
/// read nothing is no readier than a down one.
#[derive(Debug, Clone, Default)]
pub struct BrokerStatus(Arc<BrokerState>);

#[derive(Debug, Default)]
struct BrokerState {
    up: AtomicBool,
    /// The refusals met (`TOPIC_REFUSED`, `GROUP_REFUSED`) since the last sign of access:
    /// librdkafka goes on asking, and a refusal ends when the ACLs change.
    refused: AtomicU8,
}

/// The topic was refused (its metadata, a fetch): ended by partitions of it assigned or a
/// message read. librdkafka reports a fetch's refusal once, not at every retry, so nothing
/// short of those tells that it ended.
const TOPIC_REFUSED: u8 = 1;
/// The group or the cluster was refused (joining, committing): ended by joining, whatever the
/// assignment (a member beyond the partition count gets none).
const GROUP_REFUSED: u8 = 2;

impl BrokerStatus {
    pub fn is_up(&self) -> bool {
        self.0.up.load(Ordering::Relaxed)
    }

    /// Whether the brokers refused this member the topic, its group or the cluster, with no
    /// sign of access since.
    pub fn is_refused(&self) -> bool {
        self.0.refused.load(Ordering::Relaxed) != 0
    }

    pub(crate) fn set(&self, up: bool) {
        self.0.up.store(up, Ordering::Relaxed);
    }

    /// Takes note of a client error: an authorization refusal makes the member refused.
    #[doc(hidden)]
    pub fn saw(&self, error: &KafkaError) {
        let refused = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::TopicAuthorizationFailed) => TOPIC_REFUSED,
            Some(RDKafkaErrorCode::GroupAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed) => {
                GROUP_REFUSED
            }
            _ => return,
        };
        if self.0.refused.fetch_or(refused, Ordering::Relaxed) == 0 {
            // An operator must act: only the ACLs (or the credentials) end it.
            tracing::error!(%error, "the brokers refuse this member the topic or its group: not ready until it is let in");
        }
    }

    /// The member joined its group (an assignment, even an empty one).
    pub(crate) fn joined(&self) {
        self.clear(GROUP_REFUSED);
    }

    /// The member was assigned partitions of the topic or read a message: it is let in.
    pub(crate) fn granted(&self) {
        self.clear(TOPIC_REFUSED | GROUP_REFUSED);
    }

    fn clear(&self, refusals: u8) {
        let before = self.0.refused.load(Ordering::Relaxed);
        if before & refusals != 0 && self.0.refused.fetch_and(!refusals, Ordering::Relaxed) & !refusals == 0 {
            tracing::info!("the brokers let this member in again");
        }
    }
}

/// An error that says the credentials may not do what the member asked.
pub(crate) fn is_refusal(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
    )
}

/// Rebalance events handed from librdkafka's callback to the dispatcher.
#[derive(Debug)]
pub(crate) enum Assignment {
    /// These partitions were revoked; each moved to the given epoch.
    Revoked(Vec<(i32, u64)>),
    /// These partitions, which have no queue of their own (the shared queue feeds them),
    /// were assigned in the given epoch: each gets its worker now, which checks its start
    /// against the store before any message of it arrives (a quiet partition's too).
    Assigned(Vec<(i32, u64)>),
}

/// Each partition's epoch: how many times it was revoked from this member.
pub(crate) type Epochs = Arc<Mutex<HashMap<i32, u64>>>;

/// Receives rebalance callbacks (which partitions this member owns, which were revoked) and
/// librdkafka's statistics.
pub(crate) struct SourceContext {
    pub(crate) topic: String,
    /// Told about failed commits.
    pub(crate) sink: Arc<dyn BatchSink>,
    /// Partitions this member currently owns: offsets are committed only for these.
    pub(crate) assigned: Arc<Mutex<HashSet<i32>>>,
    /// Bumped for a partition each time it is revoked: a message is routed to a worker of
    /// the partition's current epoch only, never to one from before a rebalance.
    pub(crate) epochs: Epochs,
    pub(crate) events: mpsc::UnboundedSender<Assignment>,
    /// Who owns each partition read from its own queue, told to its task.
    pub(crate) ownership: Arc<Mutex<HashMap<i32, watch::Sender<Ownership>>>>,
    pub(crate) brokers: BrokerStatus,
}

impl ClientContext for SourceContext {
    /// rdkafka calls this for each error event, then the consumer's stream yields the same
    /// error, where the source reports it classified (`consume`): reported here too, every
    /// error was counted twice, once as `retryable` whatever it was.
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.brokers.set(false);
        }
        self.brokers.saw(&error);
        tracing::debug!(%error, reason, "kafka client error event (reported by the consumer's stream)");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.brokers.set(statistics.brokers.values().any(|broker| broker.state == "UP"));
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
            // Joined: the group let this member in. Partitions of the topic: the topic is
            // readable too (a leader refused the topic assigns nothing).
            self.brokers.joined();
            if !partitions.is_empty() {
                self.brokers.granted();
            }
            let ownership = lock(&self.ownership);
            let mut shared = Vec::new();
            for partition in &partitions {
                match ownership.get(partition) {
                    Some(owner) => owner.send_modify(|ownership| ownership.owned = true),
                    None => shared.push(*partition),
                }
            }
            drop(ownership);
            tracing::info!(?partitions, "partitions assigned");
            if !shared.is_empty() {
                let epochs = lock(&self.epochs);
                let assigned = shared.into_iter().map(|p| (p, epochs.get(&p).copied().unwrap_or(0))).collect();
                drop(epochs);
                // The receiver lives as long as the dispatcher; after it ends nothing listens.
                let _ = self.events.send(Assignment::Assigned(assigned));
            }
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            self.sink.source_error(&source_error("commit", &error));
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the set inside
    // is still a valid set of partitions.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use catalog_core::FailureClass;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    use super::source_error;

    #[test]
    fn a_consume_error_no_retry_mends_needs_an_operator() {
        let class = |error: KafkaError| source_error("consume", &error).class;
        for code in [
            RDKafkaErrorCode::NotImplemented,
            RDKafkaErrorCode::BadCompression,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::GroupAuthorizationFailed,
        ] {
            assert_eq!(class(KafkaError::MessageConsumption(code)), FailureClass::NeedsOperator, "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ] {
            assert_eq!(class(KafkaError::MessageConsumption(code)), FailureClass::Retryable, "{code:?}");
        }
        assert_eq!(class(KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::Fatal)), FailureClass::Fatal);
    }

    #[test]
    fn a_refusal_holds_until_the_member_is_let_in() {
        use super::BrokerStatus;
        let brokers = BrokerStatus::default();
        brokers.saw(&KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure));
        assert!(!brokers.is_refused(), "a transport failure is no refusal");
        brokers.saw(&KafkaError::MessageConsumption(RDKafkaErrorCode::GroupAuthorizationFailed));
        assert!(brokers.is_refused());
        brokers.saw(&KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown));
        assert!(brokers.is_refused(), "only a sign of access ends a refusal");
        brokers.joined();
        assert!(!brokers.is_refused(), "joined: the group lets it in");
        brokers.saw(&KafkaError::MetadataFetch(RDKafkaErrorCode::TopicAuthorizationFailed));
        assert!(brokers.is_refused(), "a refusal of the topic's metadata");
        brokers.joined();
        assert!(brokers.is_refused(), "joining says nothing of the topic");
        brokers.granted();
        assert!(!brokers.is_refused());
    }
}
