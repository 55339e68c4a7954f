//! The source handing its batches to the worker's applier over the embedded SQLite store, on
//! the mock cluster: what an operator reads of a partition on `/metrics`. Messages a worker
//! reads again below its own checkpoint (stepping back to check where its fetch starts) are
//! no other worker's.

use std::sync::Arc;
use std::time::Duration;

use catalog_app::{Applier, BatchSink, Metrics};
use catalog_kafka::KafkaSource;
use catalog_sqlite::SqliteStore;
use catalog_store::{BatchStore, StoreConfig};
use rdkafka::mocking::MockCluster;
use tokio_util::sync::CancellationToken;

use crate::{config, produce, wait_for, PARTITIONS, TOPIC};

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
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
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
