//! The source handing its batches to the worker's applier over the embedded SQLite store, on
//! the mock cluster: what an operator reads of a partition on `/metrics`. Messages a worker
//! reads again below its own checkpoint (stepping back to check where its fetch starts) are
//! no other worker's, and a partition's queue lag in messages is known from its assignment on,
//! not from librdkafka's first statistics five seconds later.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catalog_app::{Applier, BatchSink, Metrics};
use catalog_kafka::KafkaSource;
use catalog_sqlite::SqliteStore;
use catalog_store::{BatchInput, BatchResult, BatchStore, Checkpoint, Position, StoreConfig, StoreError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::ClientConfig;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{cluster_with_topic, config, produce, wait_for, PARTITIONS, TOPIC};

/// The embedded store, each of whose batches waits for one of `permits` before it is applied:
/// a test holds the worker in the middle of a batch.
#[derive(Debug)]
struct HeldStore {
    inner: SqliteStore,
    permits: Arc<Semaphore>,
    /// How many batches reached the store (applied or waiting).
    arrived: Arc<AtomicUsize>,
}

impl HeldStore {
    fn new(inner: SqliteStore, permits: &Arc<Semaphore>) -> Self {
        Self { inner, permits: Arc::clone(permits), arrived: Arc::default() }
    }
}

#[async_trait]
impl BatchStore for HeldStore {
    async fn apply_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        // A checkpoint alone (an empty partition's start) is not held.
        if batch.events.is_empty() {
            return self.inner.apply_batch(batch).await;
        }
        self.arrived.fetch_add(1, Ordering::SeqCst);
        self.permits.acquire().await.expect("permits are never closed").forget();
        self.inner.apply_batch(batch).await
    }

    async fn preview_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        self.inner.preview_batch(batch).await
    }

    async fn checkpoints(&self, source: &str) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.checkpoints(source).await
    }

    async fn rewind_checkpoint(
        &self,
        source: &str,
        partition: i32,
        from: i64,
        to: &Position,
    ) -> Result<bool, StoreError> {
        self.inner.rewind_checkpoint(source, partition, from, to).await
    }
}

/// A store in a directory of its own, kept as long as the test holds it.
async fn embedded_store(directory: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("open the store")
}

/// One run of the worker: a member of `group` applying through an applier with metrics of
/// its own.
struct Worker {
    applier: Arc<Applier>,
    metrics: Metrics,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<Result<(), catalog_kafka::KafkaSourceError>>,
}

impl Worker {
    fn start(brokers: &str, group: &str, store: Arc<dyn BatchStore>) -> Self {
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();
        let applier = Arc::new(Applier::new(store, metrics.clone(), shutdown.clone()));
        let source =
            KafkaSource::new(config(brokers, group), Arc::clone(&applier) as Arc<dyn BatchSink>).expect("source");
        let running = tokio::spawn(source.run(shutdown.clone()));
        Self { applier, metrics, shutdown, running }
    }

    /// Events decided so far (the messages here are no events: each is rejected).
    fn n_decided(&self) -> u64 {
        self.applier.totals().events_by_outcome.values().sum()
    }

    /// The value of the sample `name{labels}` on `/metrics`; `None` while it is absent.
    fn sample(&self, name: &str, labels: &str) -> Option<i64> {
        let prefix = format!("{name}{{{labels}}} ");
        let rendered = self.metrics.render();
        let line = rendered.lines().find(|line| line.starts_with(&prefix))?;
        Some(line[prefix.len()..].parse::<f64>().expect("a sample's value is a number") as i64)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.await.expect("source task").expect("source run");
    }
}

fn partition(partition: i32) -> String {
    format!("partition=\"{partition}\"")
}

/// A worker restarted on partitions it had applied to the end finds nothing to read at its
/// checkpoints, steps back and reads each partition's last message again to check where its
/// fetch starts (decision 8), then skips it. No other worker applied it: it is counted in
/// `catalog_rereads_total`, not in `catalog_skipped_below_checkpoint_total` ("messages
/// another worker applied first", where it was counted), nor in the run's
/// `applied_by_another_worker`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_read_again_while_stepping_back_is_not_another_worker_s() {
    let (_cluster, brokers) = cluster_with_topic();
    produce(&brokers, 10);
    let directory = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn BatchStore> = Arc::new(embedded_store(&directory).await);

    let first = Worker::start(&brokers, "rereads", Arc::clone(&store));
    wait_for(Duration::from_secs(30), || first.n_decided() == 10 * PARTITIONS as u64).await;
    first.stop().await;

    let restarted = Worker::start(&brokers, "rereads", Arc::clone(&store));
    let start_checks = |worker: &Worker| -> Vec<Option<i64>> {
        (0..PARTITIONS)
            .map(|p| worker.sample("catalog_rereads_total", &format!("{},reason=\"start_check\"", partition(p))))
            .collect()
    };
    wait_for(Duration::from_secs(30), || start_checks(&restarted) == vec![Some(1); PARTITIONS as usize]).await;
    // What comes next is read and applied as ever.
    produce(&brokers, 1);
    wait_for(Duration::from_secs(30), || restarted.n_decided() == PARTITIONS as u64).await;
    let skipped: Vec<Option<i64>> =
        (0..PARTITIONS).map(|p| restarted.sample("catalog_skipped_below_checkpoint_total", &partition(p))).collect();
    let totals = restarted.applier.totals();
    let refetched = restarted.metrics.render().contains("reason=\"refetch\"");
    restarted.stop().await;
    assert_eq!(skipped, vec![None; PARTITIONS as usize], "no other worker applied a message");
    assert_eq!(totals.events_applied_elsewhere, 0, "nothing applied by another worker in the summary");
    assert!(!refetched, "nothing was delivered again once read");
}

/// A partition's queue lag in messages is on `/metrics` from its assignment on: read from the
/// partition's watermarks when the worker checks where to start, and from the watermarks of
/// the fetch that brought each batch. It was set from librdkafka's statistics (every 5 s), so
/// a partition was absent for its first seconds, and for good while nothing arrived on it.
/// Queue lag in seconds is only set once known: 0 when nothing waits, never a made-up 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_lag_in_messages_is_known_from_the_assignment_on() {
    let (_cluster, brokers) = cluster_with_topic();
    produce(&brokers, 10);
    let directory = tempfile::tempdir().expect("temp dir");
    let permits = Arc::new(Semaphore::new(0));
    let held = HeldStore::new(embedded_store(&directory).await, &permits);

    // Every batch waits in the store: nothing is applied yet.
    let worker = Worker::start(&brokers, "lag", Arc::new(held));
    let behind = |worker: &Worker| -> Vec<Option<i64>> {
        (0..PARTITIONS).map(|p| worker.sample("catalog_queue_lag_messages", &partition(p))).collect()
    };
    let seconds = |worker: &Worker| -> Vec<Option<i64>> {
        (0..PARTITIONS).map(|p| worker.sample("catalog_queue_lag_seconds", &partition(p))).collect()
    };
    let all = |value: i64| vec![Some(value); PARTITIONS as usize];
    wait_for(Duration::from_secs(30), || behind(&worker) == all(10)).await;
    assert_eq!(seconds(&worker), vec![None; PARTITIONS as usize], "how long they wait is not known yet");

    permits.add_permits(10_000);
    wait_for(Duration::from_secs(10), || behind(&worker) == all(0) && seconds(&worker) == all(0)).await;
    worker.stop().await;

    // Restarted on partitions it applied to the end, where nothing arrives: caught up.
    let store = embedded_store(&directory).await;
    let restarted = Worker::start(&brokers, "lag", Arc::new(store));
    wait_for(Duration::from_secs(30), || behind(&restarted) == all(0) && seconds(&restarted) == all(0)).await;
    restarted.stop().await;
}

/// A rebalance that gives a partition read through the shared queue back to the member
/// reading it: the assignment before finishes the batch it holds after the next one's reader
/// has started, and must not forget the partition the next one reads. It did: the partition's queue lag left `/metrics` and its
/// progress left the worker's reports (the queue-lag signal) until the next batch, for good
/// on a quiet partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_given_back_by_a_rebalance_keeps_its_queue_lag() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    let directory = tempfile::tempdir().expect("temp dir");
    let permits = Arc::new(Semaphore::new(0));
    let held = HeldStore::new(embedded_store(&directory).await, &permits);
    let arrived = Arc::clone(&held.arrived);
    let worker = Worker::start(&brokers, "given-back", Arc::new(held));
    // Created after the start, the topic's partitions come through the shared queue, where
    // each assignment of a partition has a reader task of its own (2 s: long enough for the
    // member's split of the partitions the topic had, none, on a loaded machine).
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    produce(&brokers, 10);
    // Each partition's ten messages are one batch, waiting in the store.
    wait_for(Duration::from_secs(30), || arrived.load(Ordering::SeqCst) == PARTITIONS as usize).await;

    // A second member joins: every partition is revoked, and some are given back.
    let other: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "given-back")
        .set("partition.assignment.strategy", "range,roundrobin")
        .create()
        .expect("consumer");
    other.subscribe(&[TOPIC]).expect("subscribe");
    let mut taken = BTreeSet::new();
    wait_for(Duration::from_secs(30), || {
        let _ = other.poll(Duration::from_millis(10));
        taken = other.assignment().expect("assignment").elements().iter().map(|e| e.partition()).collect();
        !taken.is_empty()
    })
    .await;
    let kept: BTreeSet<i32> = (0..PARTITIONS).filter(|p| !taken.contains(p)).collect();
    assert!(!kept.is_empty(), "the worker keeps some partitions");
    // The next assignments' readers have started: their batches wait behind the first ones.
    // At least: on a loaded machine the group may rebalance again (a member late to rejoin),
    // and each assignment's reader holds a batch of its own.
    wait_for(Duration::from_secs(30), || arrived.load(Ordering::SeqCst) >= PARTITIONS as usize + kept.len()).await;

    // The first batches are applied, and their assignments end.
    permits.add_permits(PARTITIONS as usize);
    wait_for(Duration::from_secs(30), || worker.n_decided() == 10 * PARTITIONS as u64).await;
    let lag = |p: i32| worker.sample("catalog_queue_lag_messages", &partition(p));
    wait_for(Duration::from_secs(30), || taken.iter().all(|p| lag(*p).is_none())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reported: BTreeSet<i32> = worker
        .applier
        .take_progress(chrono::Utc::now())
        .partitions
        .iter()
        .map(|progress| progress.partition.parse().expect("a partition number"))
        .collect();
    let shown: BTreeSet<i32> = kept.iter().copied().filter(|p| lag(*p).is_some()).collect();
    permits.add_permits(10_000);
    worker.stop().await;
    drop(other);
    assert_eq!(shown, kept, "the partitions the worker reads have a queue lag");
    assert_eq!(reported, kept, "and are in its progress reports");
}
