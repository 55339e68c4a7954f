//! End to end, in process: a real Kafka-protocol broker, real PostgreSQL, the worker's own
//! `run`; the result must equal what `catalog-core` computes for the same messages.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use catalog_core::{decode, TenantId};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::prelude::*;
use catalog_store::StoreConfig;
use catalog_testkit::{create_topic, produce, unique_name, TestDatabase, TestMessage};
use clap::Parser;
use sync_worker::config::WorkerArgs;
use tokio_util::sync::CancellationToken;

use crate::stream::{end_offsets, expected_quantities, feed, TENANTS};

pub(crate) const PARTITIONS: i32 = 4;

pub(crate) fn worker_args(database_url: &str, topic: &str, group: &str, batch_size: usize) -> Vec<String> {
    [
        "sync-worker",
        "--source",
        "kafka",
        "--database-url",
        database_url,
        "--kafka-brokers",
        &catalog_testkit::brokers(),
        "--topic",
        topic,
        "--group",
        group,
        "--batch-size",
        &batch_size.to_string(),
        "--batch-max-wait-ms",
        "50",
        "--metrics-addr",
        "off",
        "--kafka-session-timeout-ms",
        "6000",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

pub(crate) async fn connect(database: &TestDatabase) -> PostgresStore {
    PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default()).await.expect("connect")
}

/// Waits until the store's checkpoints of `source` reach the end of every partition.
pub(crate) async fn wait_until_applied(
    store: &dyn CatalogStore,
    source: &str,
    ends: &HashMap<i32, i64>,
    limit: Duration,
) {
    let started = Instant::now();
    loop {
        let stored: HashMap<i32, i64> = store
            .checkpoints(source)
            .await
            .expect("checkpoints")
            .into_iter()
            .map(|c| (c.partition, c.position.offset))
            .collect();
        if ends.iter().all(|(partition, end)| stored.get(partition).is_some_and(|next| next >= end)) {
            return;
        }
        assert!(started.elapsed() < limit, "not applied within {limit:?}: stored {stored:?}, expected {ends:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The final state equals the reference, and every message is in the journal exactly once.
/// `positions` (where each message landed) make a failure name the messages missing.
pub(crate) async fn verify(store: &PostgresStore, messages: &[TestMessage], positions: &[(i32, i64)]) {
    let journaled: std::collections::HashSet<uuid::Uuid> = sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT event_id FROM events WHERE event_id IS NOT NULL AND outcome <> 'rejected'",
    )
    .fetch_all(store.pool())
    .await
    .expect("journaled ids")
    .into_iter()
    .collect();
    let missing: Vec<(i32, i64)> = messages
        .iter()
        .zip(positions)
        .filter_map(|(message, position)| {
            let event = decode(message.payload.as_deref().unwrap_or_default()).ok()?;
            (!journaled.contains(&event.event_id().0)).then_some(*position)
        })
        .collect();
    assert!(missing.is_empty(), "events never journaled, at (partition, offset): {missing:?}");
    let mut quantities = BTreeMap::new();
    for tenant in TENANTS {
        for item in store.items(&TenantId::parse(tenant).expect("valid")).await.expect("items") {
            if item.quantity() != 0 {
                quantities.insert(item.key(), item.quantity());
            }
        }
    }
    assert_eq!(quantities, expected_quantities(messages));

    let (rows, redeliveries): (i64, i64) =
        sqlx::query_as("SELECT count(*), coalesce(sum(redelivery_count), 0)::int8 FROM events")
            .fetch_one(store.pool())
            .await
            .expect("journal count");
    assert_eq!(
        rows + redeliveries,
        messages.len() as i64,
        "every message is journaled once or counted on its original"
    );
    let rejected: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE outcome = 'rejected'")
        .fetch_one(store.pool())
        .await
        .expect("rejected count");
    let poison = messages.iter().filter(|m| decode(m.payload.as_deref().unwrap_or_default()).is_err()).count();
    assert_eq!(rejected, poison as i64, "each poison message is journaled with its reason");
    let decided_twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT event_id FROM events WHERE outcome <> 'rejected' GROUP BY event_id HAVING count(*) > 1) AS d",
    )
    .fetch_one(store.pool())
    .await
    .expect("duplicate decisions");
    assert_eq!(decided_twice, 0, "no event was decided twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_postgres_matches_the_core_for_a_hostile_stream() {
    let database = TestDatabase::create().await;
    let topic = unique_name("e2e");
    let group = unique_name("group");
    create_topic(&topic, PARTITIONS).await;
    let feed = feed(11, 3_000);
    assert!(feed.n_poison > 0);
    let positions = produce(&topic, &feed.messages).await;
    let ends = end_offsets(&positions);
    assert_eq!(ends.len(), PARTITIONS as usize, "the stream covers every partition");

    let args = WorkerArgs::parse_from(worker_args(&database.url, &topic, &group, 250));
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(sync_worker::run(args, shutdown.clone()));
    let store = connect(&database).await;
    let source = format!("kafka:{group}:{topic}");
    wait_until_applied(&store, &source, &ends, Duration::from_secs(90)).await;
    shutdown.cancel();
    let summary = worker.await.expect("worker task").expect("worker run");
    assert_eq!(summary.totals.events_by_outcome.values().sum::<u64>(), feed.messages.len() as u64);
    verify(&store, &feed.messages, &positions).await;

    // The traceparent header travels into the journal.
    let traced: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE traceparent LIKE '00-%'")
        .fetch_one(store.pool())
        .await
        .expect("traced count");
    assert!(traced > 0);
    // Offsets were committed to Kafka too, for standard lag tooling.
    let committed = group_committed_offsets(&topic, &group).await;
    assert_eq!(committed, ends, "group offsets follow the store");
}

/// The group's committed offsets, read through a throwaway consumer of the same group.
async fn group_committed_offsets(topic: &str, group: &str) -> HashMap<i32, i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::ClientConfig;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", catalog_testkit::brokers())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut partitions = rdkafka::TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition(topic, partition);
    }
    let committed =
        tokio::task::spawn_blocking(move || consumer.committed_offsets(partitions, Duration::from_secs(10)))
            .await
            .expect("blocking task")
            .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            rdkafka::Offset::Offset(offset) => Some((element.partition(), offset)),
            _ => None,
        })
        .collect()
}
