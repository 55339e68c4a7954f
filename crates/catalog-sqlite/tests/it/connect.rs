//! Opening stores by URL, in memory, and applying large batches.

use std::sync::Arc;
use std::time::Instant;

use catalog_core::StockChange;
use catalog_sqlite::SqliteStore;
use catalog_store::prelude::*;
use catalog_store::StoreConfig;

use crate::{batch, incoming, offer};

#[tokio::test]
async fn a_file_url_creates_the_database() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("fresh.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url, StoreConfig::default()).await.expect("connect");
    assert!(path.exists(), "connect creates a missing file");
    let key = offer("canary", "acme", "ABC-1");
    store.apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 3 }, 1)])).await.expect("apply");
    let item = store.item(key.item_key().item_id()).await.expect("item").expect("exists");
    assert_eq!(item.quantity(), 3);
}

/// Processes opening one new or upgraded file at once (the worker and the admin API after an
/// upgrade) take turns at its migrations: each opens it, none fails on a migration another
/// applied meanwhile. sqlx's SQLite migrator takes no lock of its own; before, all but one
/// failed with `table … already exists` or a busy snapshot, told as a schema problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opened_at_once_on_one_new_file_all_open() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("shared.db");
    let opening: Vec<_> = (0..6)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open_path(&path, StoreConfig::default()).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opening {
        stores.push(open.await.expect("the task ends").expect("each store opens"));
    }
    let key = offer("canary", "acme", "ABC-1");
    stores[0]
        .apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 3 }, 1)]))
        .await
        .expect("apply");
    let item = stores[5].item(key.item_key().item_id()).await.expect("item").expect("exists");
    assert_eq!(item.quantity(), 3, "one database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_store_keeps_its_data_across_calls() {
    let store = Arc::new(SqliteStore::connect("sqlite::memory:", StoreConfig::default()).await.expect("connect"));
    let key = offer("canary", "acme", "ABC-1");
    // Two callers at once on the single in-memory connection: they queue, neither fails.
    let left_batch = batch(vec![incoming(1, &key, StockChange::Adjusted { delta: 2 }, 1)]);
    let right_batch = batch(vec![incoming(2, &key, StockChange::Adjusted { delta: 3 }, 2)]);
    let (left, right) = (Arc::clone(&store), Arc::clone(&store));
    let (left_result, right_result) = tokio::join!(
        tokio::spawn(async move { left.apply_batch(&left_batch).await }),
        tokio::spawn(async move { right.apply_batch(&right_batch).await }),
    );
    left_result.expect("task").expect("left apply");
    right_result.expect("task").expect("right apply");
    let item = store.item(key.item_key().item_id()).await.expect("item").expect("exists");
    assert_eq!(item.quantity(), 5);
}

/// The files of this process's in-memory stores in the temporary directory.
fn in_memory_files() -> Vec<String> {
    let prefix = format!("catalog-sqlite-memory-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .expect("temporary directory")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

#[tokio::test]
async fn an_in_memory_store_leaves_no_file_behind() {
    let store = SqliteStore::connect("sqlite::memory:", StoreConfig::default()).await.expect("connect");
    let key = offer("canary", "acme", "ABC-1");
    store.apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 3 }, 1)])).await.expect("apply");
    assert!(!in_memory_files().is_empty(), "an in-memory store stands on a private temporary file");
    let other = SqliteStore::connect("sqlite::memory:", StoreConfig::default()).await.expect("connect another");
    assert!(other.item(key.item_key().item_id()).await.expect("item").is_none(), "each in-memory store is its own");
    store.close().await;
    drop(store);
    other.close().await;
    drop(other);
    assert_eq!(in_memory_files(), Vec::<String>::new(), "dropping the stores removes their files");
}

#[tokio::test]
async fn a_large_batch_applies_in_one_call() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store =
        SqliteStore::open_path(&crate::database_path(directory.path()), StoreConfig::default()).await.expect("open");
    let n_events = 5_000u64;
    let events: Vec<_> = (0..n_events)
        .map(|n| {
            let key = offer("canary", ["acme", "globex"][(n % 2) as usize], &format!("SKU-{}", n % 500));
            incoming(n, &key, StockChange::Updated { quantity: (n % 40) as i64 + 1 }, n as i64)
        })
        .collect();
    let input = batch(events);
    let started = Instant::now();
    let result = store.apply_batch(&input).await.expect("apply");
    println!("applied {n_events} events in {:?}", started.elapsed());
    assert_eq!(result.decisions.len(), n_events as usize);
    assert!(result.decisions.iter().all(|decision| decision.outcome.as_str() == "applied"));
    let started = Instant::now();
    let again = store.apply_batch(&input).await.expect("apply again");
    println!("re-applied {n_events} events in {:?}", started.elapsed());
    assert!(again.decisions.iter().all(|decision| decision.outcome.as_str() == "duplicate"));
    let items = store.items(&offer("canary", "acme", "X").tenant).await.expect("items");
    assert_eq!(items.len(), 500);
}
