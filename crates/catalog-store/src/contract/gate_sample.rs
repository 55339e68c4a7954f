//! Contract case of the gate's sample (`RolloutStore::applied_items_since`): a walk in
//! windows, bounded, that a hot item does not stop.

use catalog_core::{StockChange, TenantId};

use super::fixtures::*;
use crate::StoreConfig;

/// The sample walks the journal in windows: a hot item's 20,000 rows between the first pick
/// and the next item (four windows with none new) do not hide the next items, and a canary
/// whose journal holds fewer items than asked is walked to its end, a bounded walk.
pub(super) async fn a_gate_sample_walks_past_a_hot_item_in_windows<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = |sku: &str| offer("few", "acme", sku);
    // A-1, then 20,000 adjustments of it, then B-1 and C-1.
    let mut events = vec![incoming(1, &key("A-1"), StockChange::Updated { quantity: 1 }, 0, 0)];
    events.extend((0..20_000u64).map(|n| incoming(10 + n, &key("A-1"), StockChange::Adjusted { delta: 1 }, 1, 1)));
    for chunk in events.chunks(5_000) {
        store.apply_batch(&batch(chunk.to_vec())).await.expect("apply");
    }
    store
        .apply_batch(&batch(vec![
            incoming(30_001, &key("B-1"), StockChange::Updated { quantity: 1 }, 2, 2),
            incoming(30_002, &key("C-1"), StockChange::Updated { quantity: 1 }, 2, 2),
        ]))
        .await
        .expect("apply");
    let tenant = TenantId::parse("few").expect("tenant");
    let skus =
        |applied: Vec<crate::AppliedItem>| -> Vec<String> { applied.iter().map(|item| item.sku.to_string()).collect() };
    assert_eq!(skus(store.applied_items_since(&tenant, base(), 3).await.expect("sample")), ["A-1", "B-1", "C-1"]);
    // More asked for than the canary has: every item, the walk ended at the journal's end.
    assert_eq!(skus(store.applied_items_since(&tenant, base(), 5).await.expect("sample")), ["A-1", "B-1", "C-1"]);
}
