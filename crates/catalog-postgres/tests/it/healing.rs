//! Auto-heal from several processes at once: each letter's round is counted once.

use std::time::Duration;

use catalog_core::StockChange;
use catalog_store::contract::{batch, incoming, offer};
use catalog_store::{DeadLetterHeal, OutboxClaim, PublishOutcome, PublishRecord};
use catalog_testkit::TestDatabase;

use crate::separate_stores;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_healing_at_once_count_each_round_once() {
    const N_ITEMS: u64 = 40;
    let database = TestDatabase::create().await;
    let stores = separate_stores(&database).await;
    let events = (0..N_ITEMS)
        .map(|n| incoming(n, &offer("canary", "acme", &format!("SKU-{n}")), StockChange::Updated { quantity: 1 }, 0, 0))
        .collect();
    stores[0].apply_batch(&batch(events)).await.expect("apply");
    let claimed = stores[0]
        .claim_outbox("storefront", &OutboxClaim::immediate(100, Duration::from_secs(30)))
        .await
        .expect("claim");
    let records: Vec<PublishRecord> = claimed
        .iter()
        .map(|entry| PublishRecord {
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
    stores[0].record_publishes(&records).await.expect("record");

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
