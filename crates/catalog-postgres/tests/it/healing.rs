//! Auto-heal from several processes at once: each letter's round is counted once, and an
//! item a batch is writing is left to the next round.

use std::time::Duration;

use catalog_core::StockChange;
use catalog_store::contract::{batch, incoming, offer};
use catalog_store::{DeadLetterHeal, OutboxClaim, PublishOutcome, PublishRecord};
use catalog_testkit::TestDatabase;

use crate::separate_stores;

/// `n_items` items applied and dead-lettered on the storefront by `store`.
async fn dead_lettered(store: &dyn catalog_store::CatalogStore, n_items: u64) {
    let events = (0..n_items)
        .map(|n| incoming(n, &offer("canary", "acme", &format!("SKU-{n}")), StockChange::Updated { quantity: 1 }, 0, 0))
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let claimed =
        store.claim_outbox("storefront", &OutboxClaim::immediate(100, Duration::from_secs(30))).await.expect("claim");
    let records: Vec<PublishRecord> = claimed
        .iter()
        .map(|entry| PublishRecord {
            claim: entry.claim,
            item_id: entry.item.id(),
            channel: entry.channel.clone(),
            version: entry.item.version(),
            attempt: 1,
            outcome: PublishOutcome::DeadLettered,
            status: Some(503),
            latency_ms: Some(1),
            error: Some("HTTP 503".into()),
            dead_letter_reason: Some("retries_exhausted".into()),
            body: None,
            sent: None,
        })
        .collect();
    store.record_publishes(&records).await.expect("record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_healing_at_once_count_each_round_once() {
    const N_ITEMS: u64 = 40;
    let database = TestDatabase::create().await;
    let stores = separate_stores(&database).await;
    dead_lettered(&*stores[0], N_ITEMS).await;

    let heal = DeadLetterHeal { limit: 100, max_heals: 5, min_interval: Duration::ZERO };
    let mut healing = tokio::task::JoinSet::new();
    for store in &stores {
        let store = std::sync::Arc::clone(store);
        healing.spawn(async move { store.heal_dead_letters(&heal).await.expect("heal round") });
    }
    let mut requeued = Vec::new();
    while let Some(round) = healing.join_next().await {
        requeued.extend(round.expect("task").requeued.into_iter().map(|letter| letter.dead_letter_id));
    }
    requeued.sort_unstable();
    let distinct = requeued.len();
    requeued.dedup();
    assert_eq!((distinct, requeued.len()), (N_ITEMS as usize, N_ITEMS as usize), "each letter requeued once");
    let letters = stores[0].open_dead_letters(100).await.expect("letters");
    assert!(letters.iter().all(|letter| letter.heal_rounds == 1), "{letters:?}");
    let depth: u64 = stores[0].outbox_depth().await.expect("depth").iter().map(|d| d.pending).sum();
    assert_eq!(depth, N_ITEMS);
}

/// A heal round reads an item and queues it: had it read the item unlocked, a batch could
/// commit a newer version, that version be published and its outbox row deleted, and then
/// the round queue the older version it read, sent after the newer one. The round takes the
/// items it queues `FOR SHARE SKIP LOCKED`: one a batch is writing waits for the next round,
/// and no batch commits a newer version under a round that holds its item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_a_batch_is_writing_is_healed_by_the_next_round() {
    let database = TestDatabase::create().await;
    let stores = separate_stores(&database).await;
    dead_lettered(&*stores[0], 1).await;
    let heal = DeadLetterHeal { limit: 10, max_heals: 5, min_interval: Duration::ZERO };

    // A batch holds the item's row, as while it writes a newer version.
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let mut writing = pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM items FOR UPDATE").execute(&mut *writing).await.expect("lock the item");
    let round = tokio::time::timeout(Duration::from_secs(10), stores[1].heal_dead_letters(&heal))
        .await
        .expect("a round waits for no batch")
        .expect("heal round");
    assert_eq!(round.requeued, [], "the item a batch is writing is not queued");
    let depth: u64 = stores[0].outbox_depth().await.expect("depth").iter().map(|d| d.pending).sum();
    assert_eq!(depth, 0);

    writing.rollback().await.expect("rollback");
    let round = stores[1].heal_dead_letters(&heal).await.expect("heal round");
    assert_eq!(round.requeued.len(), 1, "{round:?}");
    let depth: u64 = stores[0].outbox_depth().await.expect("depth").iter().map(|d| d.pending).sum();
    assert_eq!(depth, 1);
}
