//! Drift corrections against concurrent batches: a round of corrections locks its items in
//! the order batches lock them, (tenant, sku) in byte order, so the two never deadlock.

use std::sync::Arc;
use std::time::Duration;

use catalog_core::{DriftKind, ItemKey, StockChange};
use catalog_store::contract::{batch, incoming, offer};
use catalog_store::prelude::*;
use catalog_store::{DriftCorrection, StoreConfig};
use catalog_testkit::TestDatabase;
use sqlx::{Connection, PgConnection};

use crate::connect;

/// Two SKUs of one tenant whose item ids sort the other way round from their keys.
fn keys_against_id_order() -> (ItemKey, ItemKey) {
    let key = |n: u32| offer("canary", "acme", &format!("SKU-{n}")).item_key();
    for n in 1..100 {
        let (first, second) = (key(n), key(n + 1));
        assert!(first < second, "SKU-{n} sorts before SKU-{}", n + 1);
        if first.item_id().0 > second.item_id().0 {
            return (first, second);
        }
    }
    unreachable!("about every other pair of v5 ids sorts against its keys")
}

/// A transaction locks the first item by key, as a batch does; a round of corrections of
/// both items starts and waits; then the transaction locks the second item. Corrections that
/// locked in item id order would hold the second and wait for the first: a deadlock
/// (40P01). Locked in the batches' order, they wait for the first holding nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_corrections_lock_items_in_the_batches_order() {
    let database = TestDatabase::create().await;
    let store = Arc::new(connect(&database, StoreConfig::default()).await);
    let (first, second) = keys_against_id_order();
    let events = [&first, &second]
        .iter()
        .enumerate()
        .map(|(n, key)| {
            let key = offer("canary", "acme", key.sku.as_str());
            incoming(n as u64 + 1, &key, StockChange::Updated { quantity: 5 }, 0, n as i64)
        })
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");

    let mut batch_like = PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut batch_like).await.expect("begin");
    let lock = "SELECT item_id FROM items WHERE item_id = $1 FOR UPDATE";
    sqlx::query(lock).bind(first.item_id().0).execute(&mut batch_like).await.expect("lock the first");

    let correction = |key: &ItemKey| DriftCorrection {
        item_id: key.item_id(),
        seen_version: 1,
        kind: DriftKind::Missing,
        shown: None,
        corrected_version: 2,
    };
    let corrections = vec![correction(&first), correction(&second)];
    let correcting = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.correct_drifts("storefront", &corrections).await })
    };
    let mut watcher = PgConnection::connect(&database.url).await.expect("connect");
    let waiting =
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let mut waited = false;
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar(waiting).fetch_one(&mut watcher).await.expect("activity");
        if n > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(waited, "the corrections wait for the first item");

    let locked = sqlx::query(lock).bind(second.item_id().0).execute(&mut batch_like).await;
    assert!(locked.is_ok(), "the batch-like transaction locks the second item: {locked:?}");
    sqlx::query("COMMIT").execute(&mut batch_like).await.expect("commit");
    let corrected = correcting.await.expect("task").expect("the corrections finish");
    let mut expected = vec![first.item_id(), second.item_id()];
    expected.sort_by_key(|id| id.0);
    assert_eq!(corrected, expected, "both corrected, in item id order");
}
