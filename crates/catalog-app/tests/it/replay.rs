//! A replay's cache bust: every item it touched is queued again at its current version, a
//! chunk of items per store transaction.

use std::sync::Arc;

use catalog_core::StockChange;
use catalog_store::contract::{base, batch, incoming, offer};
use catalog_store::prelude::*;
use catalog_store::{IncomingEvent, StoreConfig};
use chrono::Utc;

/// 12,001 items, more than two chunks: every one is queued again, the last chunk's single
/// item included, and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_queues_every_item_it_touched_again_in_chunks() {
    let directory = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        catalog_sqlite::SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default())
            .await
            .expect("open"),
    );
    let received_second = (Utc::now() - chrono::Duration::hours(1) - base()).num_seconds();
    let events: Vec<IncomingEvent> = (1..=12_001u64)
        .map(|n| {
            let key = offer("canary", "acme", &format!("SKU-{n}"));
            incoming(n, &key, StockChange::Updated { quantity: 3 }, 0, received_second)
        })
        .collect();
    for chunk in events.chunks(5_000) {
        store.apply_batch(&batch(chunk.to_vec())).await.expect("apply");
    }
    let request = catalog_app::replay::ReplayRequest {
        tenant: catalog_core::TenantId::parse("canary").expect("tenant"),
        since: Utc::now() - chrono::Duration::days(1),
        until: None,
        supplier: None,
        dry_run: false,
        max_dry_run_events: catalog_app::replay::MAX_DRY_RUN_EVENTS,
        held_only: false,
    };
    let summary = catalog_app::replay::replay(&*store, &request, &|_| {}).await.expect("replay");
    assert_eq!((summary.touched.len(), summary.republished), (12_001, 12_001));
}
