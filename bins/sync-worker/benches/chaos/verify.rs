//! What the chaos run must end with, checked against the broker's own copy of the stream:
//! the store equals `catalog-core`'s reference, every message is in the journal exactly once
//! (each event decided once, each poison message rejected once at its position), and the
//! storefront shows every item's final version.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use catalog_core::{decode, TenantId};
use catalog_postgres::PostgresStore;
use catalog_store::prelude::*;
use catalog_testkit::feed::{expected_quantities, TENANTS};
use catalog_testkit::TestMessage;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::storefront::Shown;

/// Each partition's end (its high watermark): how many messages the broker holds in it, since
/// nothing is compacted or deleted during a run. Reading the messages back would be the other
/// way to know; tansu's SQLite storage serves a fetch from the start of a long partition too
/// slowly for that.
pub(crate) fn partition_ends(brokers: &str, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("chaos-watermarks-{}", uuid::Uuid::new_v4().simple()))
        .create()
        .expect("watermark consumer");
    (0..partitions)
        .map(|partition| {
            let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(60)).expect("watermarks");
            (partition, high)
        })
        .collect()
}

/// What the run must end with; every problem found, not just the first. `produced` are the
/// messages the producer had acknowledged, with where each landed; `ends` what the broker
/// holds (a message sent twice, when its first acknowledgement was lost, is there twice).
pub(crate) async fn verify(
    store: &PostgresStore,
    produced: &[((i32, i64), TestMessage)],
    ends: &HashMap<i32, i64>,
    shown: &Shown,
) -> Vec<String> {
    let mut problems = Vec::new();
    let messages: Vec<TestMessage> = produced.iter().map(|(_, message)| message.clone()).collect();

    // The store equals the reference.
    let mut quantities = BTreeMap::new();
    let mut versions = HashMap::new();
    for tenant in TENANTS {
        for item in store.items(&TenantId::parse(tenant).expect("valid")).await.expect("items") {
            versions.insert(item.id().to_string(), (item.quantity(), item.version()));
            if item.quantity() != 0 {
                quantities.insert(item.key(), item.quantity());
            }
        }
    }
    let expected = expected_quantities(&messages);
    if quantities != expected {
        let differing: Vec<String> = expected
            .keys()
            .chain(quantities.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|key| quantities.get(*key) != expected.get(*key))
            .map(|key| format!("{key}: store {:?}, reference {:?}", quantities.get(key), expected.get(key)))
            .collect();
        problems.push(format!("{} items differ from the reference: {}", differing.len(), differing.join("; ")));
    }

    // Every event decided once; every poison message rejected once, at its position.
    let decided: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
        "SELECT event_id, count(*) FROM events WHERE outcome <> 'rejected' AND event_id IS NOT NULL GROUP BY event_id",
    )
    .fetch_all(store.pool())
    .await
    .expect("decided rows");
    let decided: HashMap<uuid::Uuid, i64> = decided.into_iter().collect();
    let mut ids = HashSet::new();
    let mut poison = HashSet::new();
    for ((partition, offset), message) in produced {
        match decode(message.payload.as_deref().unwrap_or_default()) {
            Ok(event) => {
                ids.insert(event.event_id().0);
            }
            Err(_) => {
                poison.insert((*partition, *offset));
            }
        }
    }
    let missing: Vec<&uuid::Uuid> = ids.iter().filter(|id| !decided.contains_key(id)).take(20).collect();
    let n_missing = ids.iter().filter(|id| !decided.contains_key(id)).count();
    if n_missing > 0 {
        problems.push(format!("{n_missing} events never journaled (first: {missing:?})"));
    }
    let twice = decided.values().filter(|count| **count > 1).count();
    if twice > 0 {
        problems.push(format!("{twice} events decided more than once"));
    }
    let rejected: Vec<(i32, i64)> =
        sqlx::query_as("SELECT source_partition, source_offset FROM events WHERE outcome = 'rejected'")
            .fetch_all(store.pool())
            .await
            .expect("rejected rows");
    let rejected_positions: HashSet<(i32, i64)> = rejected.iter().copied().collect();
    if rejected.len() != rejected_positions.len() {
        problems.push(format!("{} poison messages journaled twice", rejected.len() - rejected_positions.len()));
    }
    let unjournaled: Vec<&(i32, i64)> = poison.difference(&rejected_positions).take(20).collect();
    if !unjournaled.is_empty() {
        problems.push(format!(
            "{} poison messages missing from the journal (first: {unjournaled:?})",
            poison.difference(&rejected_positions).count()
        ));
    }
    let (rows, redeliveries): (i64, i64) =
        sqlx::query_as("SELECT count(*), coalesce(sum(redelivery_count), 0)::int8 FROM events")
            .fetch_one(store.pool())
            .await
            .expect("journal count");
    let on_the_broker: i64 = ends.values().sum();
    if rows + redeliveries != on_the_broker {
        problems.push(format!(
            "journal rows + redeliveries = {} for {on_the_broker} messages on the broker",
            rows + redeliveries
        ));
    }

    // The storefront shows every item's final version.
    let shown = shown.lock().expect("storefront state").clone();
    let stale: Vec<String> = versions
        .iter()
        .filter(|(_, (_, version))| *version > 0)
        .filter(|(item, stored)| shown.get(*item) != Some(*stored))
        .map(|(item, stored)| format!("{item}: store {stored:?}, storefront {:?}", shown.get(item)))
        .collect();
    if !stale.is_empty() {
        problems.push(format!(
            "{} items not at their final version on the storefront: {}",
            stale.len(),
            stale.join("; ")
        ));
    }
    problems
}
