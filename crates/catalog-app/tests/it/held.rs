//! Switching a tenant's sync on while a batch of its events is being written with sync off,
//! on PostgreSQL: the batch held them on flags read without a lock, so a switch that committed
//! meanwhile replayed the journal before the batch's held rows were there, and they stayed
//! held for good. The batch now reads the flags again under a share lock when it holds
//! anything: the switch waits for it, and its replay applies what the batch held.

use std::sync::Arc;
use std::time::Duration;

use catalog_app::replay::{replay_held, HeldRequest};
use catalog_core::{ItemKey, Outcome, Sku, StockChange, TenantId};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::contract::{base, batch, incoming, offer};
use catalog_store::prelude::*;
use catalog_store::{JournalWindow, StoreConfig};
use catalog_testkit::TestDatabase;
use sqlx::{Connection, Executor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_switched_on_while_a_batch_holds_events_leaves_none_held() {
    let database = TestDatabase::create().await;
    let store = Arc::new(
        PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
            .await
            .expect("connect"),
    );
    let tenant = TenantId::parse("canary").expect("tenant");
    let first = incoming(0, &offer("canary", "acme", "SKU-0"), StockChange::Updated { quantity: 1 }, 0, 0);
    store.apply_batch(&batch(vec![first])).await.expect("the tenant is known");
    store.set_tenant_sync(&tenant, false).await.expect("sync off");

    // The journal is locked: the next batch plans (sync off: held), then waits to write it.
    let mut blocker = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    blocker.execute("BEGIN").await.expect("begin");
    blocker.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE").await.expect("lock the journal");
    let held = incoming(1, &offer("canary", "acme", "SKU-1"), StockChange::Updated { quantity: 5 }, 1, 1);
    let applying = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.apply_batch(&batch(vec![held])).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Sync switched on, and the held events replayed, as the admin API does.
    let switching = tokio::spawn({
        let (store, tenant) = (Arc::clone(&store), tenant.clone());
        async move {
            store.set_tenant_sync(&tenant, true).await.expect("sync on");
            let request = HeldRequest { tenant, supplier: None, since: base() - chrono::Duration::days(1) };
            replay_held(&*store, &request).await.expect("replay the held events")
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    blocker.execute("COMMIT").await.expect("release the journal");
    applying.await.expect("task").expect("the batch is applied");
    switching.await.expect("task");

    let window = JournalWindow { tenant: tenant.clone(), since: base(), until: None, supplier: None, held_only: true };
    let still_held: Vec<_> = store
        .journal_window(&window)
        .await
        .expect("journal")
        .into_iter()
        .filter(|entry| matches!(entry.outcome, Outcome::Held(_)))
        .collect();
    assert!(still_held.is_empty(), "held with sync on: {still_held:?}");
    let item = ItemKey { tenant, sku: Sku::parse("SKU-1").expect("sku") }.item_id();
    let trace = store.item_trace(item).await.expect("trace").expect("the held event was applied");
    assert_eq!(trace.item.quantity(), 5);
}

/// A window longer than a page (20,000 journal rows) is replayed whole: every held event of
/// every page applied once, every item touched, read a page at a time and applied in lanes
/// as it is read (decision 0058).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_events_over_several_pages_are_all_applied() {
    let directory = tempfile::tempdir().expect("temp dir");
    let store = catalog_sqlite::SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default())
        .await
        .expect("open");
    let tenant = TenantId::parse("canary").expect("tenant");
    let first = incoming(0, &offer("canary", "acme", "SKU-0"), StockChange::Updated { quantity: 0 }, 0, 0);
    store.apply_batch(&batch(vec![first])).await.expect("the tenant is known");
    store.set_tenant_sync(&tenant, false).await.expect("sync off");
    // 45,000 events over 9,000 SKUs, five each, received over three seconds: three pages,
    // their rows received at one time split between pages.
    let n_events: u64 = 45_000;
    let events: Vec<_> = (1..=n_events)
        .map(|n| {
            let sku = format!("SKU-{}", n % 9_000);
            incoming(
                n,
                &offer("canary", "acme", &sku),
                StockChange::Updated { quantity: n as i64 },
                n as i64,
                n as i64 / 15_000,
            )
        })
        .collect();
    for chunk in events.chunks(5_000) {
        store.apply_batch(&batch(chunk.to_vec())).await.expect("held");
    }
    store.set_tenant_sync(&tenant, true).await.expect("sync on");
    let request = HeldRequest { tenant: tenant.clone(), supplier: None, since: base() - chrono::Duration::days(1) };
    let summary = replay_held(&store, &request).await.expect("replay the held events");
    assert_eq!(summary.n_replayed, n_events as usize, "{:?}", summary.outcomes);
    assert_eq!(summary.outcomes.values().sum::<u64>(), n_events, "every event decided once: {:?}", summary.outcomes);
    assert_eq!(summary.touched.len(), 9_000);
    // Each SKU's newest event (its highest n) wins, whatever page or lane it came in.
    for n in [n_events - 1, n_events] {
        let item = ItemKey { tenant: tenant.clone(), sku: Sku::parse(&format!("SKU-{}", n % 9_000)).expect("sku") };
        let stored = store.item(item.item_id()).await.expect("item").expect("applied");
        assert_eq!(stored.quantity(), n as i64);
    }
    let window = JournalWindow { tenant, since: base(), until: None, supplier: None, held_only: true };
    assert!(store.journal_window(&window).await.expect("journal").is_empty(), "none left held");
}
