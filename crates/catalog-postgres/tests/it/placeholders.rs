//! A batch retried with locks after a lost race creates the rows of its offers and items to
//! lock them; the rows it did not write are gone when it commits, so an item or an offer
//! nothing was applied to does not exist, as on SQLite and as after an optimistic batch.

use std::sync::Arc;

use catalog_core::{ItemKey, StockChange, SupplierId, TenantId};
use catalog_store::contract::{batch, incoming, offer};
use catalog_store::prelude::*;
use catalog_store::{FeedKey, StoreConfig};
use catalog_testkit::TestDatabase;

use crate::connect;

/// Store `first` caches acme's offer; `second` moves it on, so `first`'s next batch loses
/// its guarded write and is retried with locks. That batch also holds globex's first event
/// for a new SKU (globex switched off): no item of it is written, and none is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_retried_with_locks_leaves_no_item_it_did_not_write() {
    let database = TestDatabase::create().await;
    let first: Arc<dyn CatalogStore> = Arc::new(connect(&database, StoreConfig::default()).await);
    let second: Arc<dyn CatalogStore> = Arc::new(connect(&database, StoreConfig::default()).await);
    let tenant = TenantId::parse("canary").expect("tenant");
    let acme = offer("canary", "acme", "A-1");
    first
        .apply_batch(&batch(vec![incoming(1, &acme, StockChange::Updated { quantity: 5 }, 0, 0)]))
        .await
        .expect("apply");
    second
        .apply_batch(&batch(vec![incoming(2, &acme, StockChange::Updated { quantity: 6 }, 1, 1)]))
        .await
        .expect("apply");
    first.set_supplier_sync(&tenant, &SupplierId::parse("globex").expect("supplier"), false).await.expect("switch");

    let new = offer("canary", "globex", "NEW-1");
    let events = vec![
        incoming(3, &acme, StockChange::Updated { quantity: 7 }, 2, 2),
        incoming(4, &new, StockChange::Updated { quantity: 9 }, 0, 2),
        incoming(5, &offer("canary", "globex", "A-1"), StockChange::Updated { quantity: 4 }, 0, 2),
    ];
    let result = first.apply_batch(&batch(events)).await.expect("apply after a lost race");
    let outcomes: Vec<&str> = result.decisions.iter().map(|decision| decision.outcome.as_str()).collect();
    assert_eq!(outcomes, ["applied", "held", "held"]);
    // Nor any offer: a held event's offer listed at 0 reads as its supplier having sent 0.
    let a1 = ItemKey { tenant: tenant.clone(), sku: acme.sku.clone() }.item_id();
    let trace = first.item_trace(a1).await.expect("trace").expect("A-1 exists");
    let suppliers: Vec<&str> = trace.offers.iter().map(|offer| offer.supplier.as_str()).collect();
    assert_eq!(suppliers, ["acme"], "the held supplier has no offer of A-1 yet");
    let globex = FeedKey { tenant: tenant.clone(), supplier: SupplierId::parse("globex").expect("supplier") };
    assert_eq!(first.feed_offers(&globex).await.expect("offers"), [], "globex has no stored offer");
    let new_item = ItemKey { tenant: tenant.clone(), sku: new.sku.clone() }.item_id();
    assert!(first.item(new_item).await.expect("read").is_none(), "no item of the held event");
    let listed: Vec<String> =
        first.items(&tenant).await.expect("items").iter().map(|item| item.sku().to_string()).collect();
    assert_eq!(listed, ["A-1"]);
    assert_eq!(first.republish(&[new_item]).await.expect("republish"), 0, "nothing to publish of it");
}
