//! What `/readyz` answers: ready only while the source runs, the store answers (a cheap
//! query, every few seconds) and takes batches (none has failed to become durable for
//! [`WRITES_FAILING_AFTER`] on end), the source's broker connection is up and the brokers do
//! not refuse it the topic or its group (Kafka), and every publisher task started is still
//! running. Anything else is named in the 503's body.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use catalog_app::WriteHealth;
use catalog_kafka::BrokerStatus;
use catalog_store::CatalogStore;
use tokio_util::sync::CancellationToken;

/// How often the store is asked whether it answers, and how long an answer may take.
const STORE_CHECK_INTERVAL: Duration = Duration::from_secs(2);
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long every attempt to make a batch durable may fail before the worker is not ready:
/// a store that answers its ping but refuses writes (a read-only standby after a failover, a
/// full disk) is retried with backoff for ever, and looked ready.
pub const WRITES_FAILING_AFTER: Duration = Duration::from_secs(30);

/// The worker's readiness, shared by the parts that make it up and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<Parts>);

#[derive(Debug, Default)]
struct Parts {
    source_running: AtomicBool,
    store_answers: AtomicBool,
    /// Set for a source with a broker connection (Kafka).
    brokers: OnceLock<BrokerStatus>,
    /// Whether the applier's batches become durable.
    writes: OnceLock<WriteHealth>,
    publishers_started: AtomicUsize,
    publishers_running: AtomicUsize,
}

impl Readiness {
    /// `Ok` when ready; otherwise the parts that are not, in a fixed order.
    pub fn check(&self) -> Result<(), Vec<&'static str>> {
        let parts = &self.0;
        let mut not_ready = Vec::new();
        if !parts.source_running.load(Ordering::Relaxed) {
            not_ready.push("source");
        }
        if !parts.store_answers.load(Ordering::Relaxed) {
            not_ready.push("store");
        }
        let writes_failing = parts.writes.get().and_then(WriteHealth::failing_for);
        if writes_failing.is_some_and(|failing| failing >= WRITES_FAILING_AFTER) {
            not_ready.push("store_writes");
        }
        if parts.brokers.get().is_some_and(|brokers| !brokers.is_up()) {
            not_ready.push("broker");
        }
        if parts.brokers.get().is_some_and(BrokerStatus::is_refused) {
            not_ready.push("broker_access");
        }
        if parts.publishers_running.load(Ordering::Relaxed) < parts.publishers_started.load(Ordering::Relaxed) {
            not_ready.push("publishers");
        }
        if not_ready.is_empty() {
            Ok(())
        } else {
            Err(not_ready)
        }
    }

    pub fn source_running(&self, running: bool) {
        self.0.source_running.store(running, Ordering::Relaxed);
    }

    /// Whether the applier's batches become durable counts from now on.
    pub fn follow_writes(&self, writes: WriteHealth) {
        let _ = self.0.writes.set(writes);
    }

    /// The source's broker connection counts from now on.
    pub fn follow_brokers(&self, brokers: BrokerStatus) {
        let _ = self.0.brokers.set(brokers);
    }

    /// A publisher task starts: it counts as running until the guard is dropped (the task
    /// ended, whatever ended it).
    pub fn publisher_started(&self) -> PublisherRunning {
        self.0.publishers_started.fetch_add(1, Ordering::Relaxed);
        self.0.publishers_running.fetch_add(1, Ordering::Relaxed);
        PublisherRunning(Arc::clone(&self.0))
    }

    /// Asks the store whether it answers, now and every few seconds, until `shutdown`.
    pub async fn watch_store(self, store: Arc<dyn CatalogStore>, shutdown: CancellationToken) {
        // The first check says only what is wrong: a store that answers from the start has
        // not come back from anything.
        let mut first = true;
        loop {
            let answers = matches!(tokio::time::timeout(STORE_CHECK_TIMEOUT, store.ping()).await, Ok(Ok(())));
            let changed = self.0.store_answers.swap(answers, Ordering::Relaxed) != answers;
            if answers && changed && !first {
                tracing::info!("the store answers again");
            } else if !answers && (changed || first) {
                tracing::warn!(
                    timeout_ms = STORE_CHECK_TIMEOUT.as_millis() as u64,
                    "the store does not answer: not ready"
                );
            }
            first = false;
            tokio::select! {
                () = tokio::time::sleep(STORE_CHECK_INTERVAL) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// Held by a running publisher task.
#[derive(Debug)]
pub struct PublisherRunning(Arc<Parts>);

impl Drop for PublisherRunning {
    fn drop(&mut self) {
        self.0.publishers_running.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    use super::*;

    #[test]
    fn ready_only_when_every_part_is() {
        let readiness = Readiness::default();
        assert_eq!(readiness.check(), Err(vec!["source", "store"]));
        readiness.source_running(true);
        readiness.0.store_answers.store(true, Ordering::Relaxed);
        assert_eq!(readiness.check(), Ok(()));

        let brokers = BrokerStatus::default();
        readiness.follow_brokers(brokers.clone());
        assert_eq!(readiness.check(), Err(vec!["broker"]), "a broker connection not known to be up");

        let publisher = readiness.publisher_started();
        let other = readiness.publisher_started();
        drop(other);
        assert_eq!(readiness.check(), Err(vec!["broker", "publishers"]), "one of two publishers ended");
        drop(publisher);
        readiness.source_running(false);
        assert_eq!(readiness.check(), Err(vec!["source", "broker", "publishers"]));

        let refused = KafkaError::MessageConsumption(RDKafkaErrorCode::TopicAuthorizationFailed);
        brokers.saw(&refused);
        assert_eq!(
            readiness.check(),
            Err(vec!["source", "broker", "broker_access", "publishers"]),
            "the brokers refuse the topic"
        );
    }
}
