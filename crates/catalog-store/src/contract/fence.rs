//! Contract cases of a batch that skips what is applied already (`BatchInput::skip_applied`,
//! decision 0028): a Kafka partition's messages delivered again, by a broker that hands the
//! partition to a second member or by a retry after a commit that landed unconfirmed, are
//! applied once and counted once, however the deliveries overlap or race.

use std::sync::Arc;

use catalog_core::{ClockPolicy, ReferenceCatalog, StockChange, TenantId};

use super::fixtures::*;
use crate::batch::FlagTable;
use crate::{BatchInput, CatalogStore, Checkpoint, IncomingEvent, Position, StoreConfig};

/// A partition's slice of messages as the Kafka applier sends it: the fixture's batch (the
/// position after its last message as its checkpoint), skipping what the stored position
/// has passed.
fn kafka_batch(events: &[IncomingEvent]) -> BatchInput {
    batch(events.to_vec()).skipping_applied()
}

/// Every delivery journaled once: rows plus the redeliveries counted on them equal the
/// messages of `tenant` in `events`.
async fn assert_each_message_accounted_once(store: &dyn CatalogStore, events: &[IncomingEvent], tenant: &str) {
    let tenant = TenantId::parse(tenant).expect("valid");
    let messages = messages_of(events, &tenant);
    assert_eq!(
        journal_accounted(store, &tenant).await,
        messages,
        "journal rows + redeliveries for {messages} messages of {tenant}"
    );
}

/// Windows of a partition's messages, each starting somewhere inside the one before (a
/// redelivery from an older position): only what no earlier window committed is applied,
/// and what is applied decides as the reference decides the same messages once.
pub(super) async fn overlapping_deliveries_of_a_partition_apply_each_message_once<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let flags = FlagTable { default_enabled: true, ..FlagTable::default() };
    let mut reference = ReferenceCatalog::default();
    let events = stream(5, 0, 400);
    let mut rng = Lcg(11);
    let (mut start, mut committed) = (0_usize, 0_usize);
    while committed < events.len() {
        let end = (committed + rng.next(50) as usize + 1).min(events.len());
        let window = &events[start..end];
        let result = store.apply_batch(&kafka_batch(window)).await.expect("apply");

        let passed: Vec<usize> = (0..committed - start).collect();
        assert_eq!(result.applied_before, passed, "the messages of {start}..{committed} are applied already");
        let plan = reference.apply(&deliveries(&events[committed..end]), &flags, ClockPolicy::default());
        assert_eq!(result.decisions, plan.decisions, "the rest decides as once");
        committed = end;
        // The next delivery starts again from anywhere in this window.
        start = rng.next((end - start) as u64 + 1) as usize + start;
    }
    let (offers, items) = snapshot(&*store, &["canary", "t2"]).await;
    assert_eq!(store_offers(offers), reference_offers(&reference));
    assert_eq!(items, reference_items(&reference));
    for tenant in ["canary", "t2"] {
        assert_each_message_accounted_once(&*store, &events, tenant).await;
    }

    // A repeat of everything applies nothing, journals nothing and keeps the position.
    let again = store.apply_batch(&kafka_batch(&events)).await.expect("apply");
    assert_eq!(again.applied_before.len(), events.len());
    assert!(again.decisions.is_empty() && again.changed_items.is_empty());
    assert_each_message_accounted_once(&*store, &events, "canary").await;
    let stored = store.checkpoints(SOURCE).await.expect("checkpoints");
    assert_eq!(stored[0].position.offset, events.len() as i64);
}

pub(super) async fn copies_of_a_batch_applied_at_once_apply_it_once<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    copies_of_a_batch_apply_once(&four_callers_of(store)).await;
}

/// Round after round, four callers (two members of a group holding the same partition, and
/// more) apply the same batch of a partition at once: one applies it, the others find it
/// applied, whichever commits first; nothing is counted as a redelivery that was not one.
/// Callers may be one store or separate stores on one database.
pub async fn copies_of_a_batch_apply_once(callers: &[Arc<dyn CatalogStore>; 4]) {
    let events = stream(6, 0, 30 * 40);
    let flags = FlagTable { default_enabled: true, ..FlagTable::default() };
    let mut reference = ReferenceCatalog::default();
    for window in events.chunks(40) {
        let batch = kafka_batch(window);
        let mut running = tokio::task::JoinSet::new();
        for caller in callers {
            let (caller, batch) = (Arc::clone(caller), batch.clone());
            running.spawn(async move { caller.apply_batch(&batch).await.expect("apply") });
        }
        let mut results = running.join_all().await;
        results.sort_by_key(|result| result.applied_before.len());
        let plan = reference.apply(&deliveries(window), &flags, ClockPolicy::default());
        assert_eq!(results[0].applied_before, Vec::<usize>::new(), "one caller applies the batch");
        assert_eq!(results[0].decisions, plan.decisions);
        for copy in &results[1..] {
            assert_eq!(copy.applied_before, (0..window.len()).collect::<Vec<_>>(), "the others find it applied");
            assert!(copy.decisions.is_empty() && copy.changed_items.is_empty());
        }
    }
    let (offers, items) = snapshot(&*callers[0], &["canary", "t2"]).await;
    assert_eq!(store_offers(offers), reference_offers(&reference));
    assert_eq!(items, reference_items(&reference));
    for tenant in ["canary", "t2"] {
        assert_each_message_accounted_once(&*callers[0], &events, tenant).await;
    }
}

/// A batch of another log than its stored checkpoint's (a Kafka topic created again, its
/// checkpoint moved back to the new topic, and a member still reading the old one, decision
/// 0040) neither is fenced by the stored position nor moves it: the new topic's messages below
/// the old one's offsets are still applied when they come.
pub(super) async fn a_batch_of_another_log_neither_is_fenced_nor_moves_the_checkpoint<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    const OLD: &str = "0123456789abcdef0123456789abcdef";
    const NEW: &str = "fedcba9876543210fedcba9876543210";
    let (store, _guard) = factory(StoreConfig::default()).await;
    let at = |position: Position| vec![Checkpoint { source: SOURCE.to_owned(), partition: 0, position }];
    let in_log = |events: Vec<IncomingEvent>, log: &str| {
        let next = events.iter().map(|event| event.source.offset + 1).max().unwrap_or(0);
        BatchInput::new(events, at(Position::in_log(next, log))).skipping_applied()
    };
    let key = offer("canary", "acme", "ABC-1");
    // The old topic's event is older than the new topic's: each is applied when it comes.
    let event = |n: u64, quantity: i64| {
        let second = if n >= 100 { 1 } else { n as i64 + 10 };
        incoming(n, &key, StockChange::Updated { quantity }, second, second)
    };

    store.apply_batch(&BatchInput::new(vec![], at(Position::in_log(1_000, OLD)))).await.expect("apply");
    assert!(store.rewind_checkpoint(SOURCE, 0, 1_000, &Position::in_log(0, NEW)).await.expect("rewind"));
    assert_eq!(store.checkpoints(SOURCE).await.expect("checkpoints"), at(Position::in_log(0, NEW)));

    // The old topic's member, still reading: its events are applied, the checkpoint stays.
    let zombie = store.apply_batch(&in_log(vec![event(500, 1)], OLD)).await.expect("apply");
    assert_eq!(zombie.of_another_log, [(SOURCE.to_owned(), 0)]);
    assert!(zombie.applied_before.is_empty());
    assert_eq!(zombie.decisions[0].outcome.as_str(), "applied");
    assert_eq!(store.checkpoints(SOURCE).await.expect("checkpoints"), at(Position::in_log(0, NEW)));

    // The new topic's messages, at offsets the old member passed, are applied and move it.
    let new = store.apply_batch(&in_log(vec![event(5, 2), event(6, 3)], NEW)).await.expect("apply");
    assert!(new.of_another_log.is_empty() && new.applied_before.is_empty(), "{new:?}");
    assert_eq!(new.decisions.iter().map(|d| d.outcome.as_str()).collect::<Vec<_>>(), ["applied", "applied"]);
    assert_eq!(store.checkpoints(SOURCE).await.expect("checkpoints"), at(Position::in_log(7, NEW)));

    // Under the new topic's checkpoint, its own messages are fenced as before; the old
    // topic's below it are not; a batch whose log is not known is fenced by offsets alone.
    let again = store.apply_batch(&in_log(vec![event(5, 2)], NEW)).await.expect("apply");
    assert_eq!(again.applied_before, [0]);
    let old = store.apply_batch(&in_log(vec![event(4, 9)], OLD)).await.expect("apply");
    assert!(old.applied_before.is_empty());
    assert_eq!(old.of_another_log, [(SOURCE.to_owned(), 0)]);
    let unknown = store.apply_batch(&kafka_batch(&[event(3, 8)])).await.expect("apply");
    assert_eq!(unknown.applied_before, [0]);
    assert!(unknown.of_another_log.is_empty());
    assert_eq!(store.checkpoints(SOURCE).await.expect("checkpoints"), at(Position::in_log(7, NEW)));
}
