//! Contract cases of text order: ids and SKUs sort by their bytes in every store, whatever
//! the database's collation. PostgreSQL orders text by the database's (a linguistic one on
//! most clusters: `A_1` before `AB`), SQLite by bytes; a list or a choice made by SQL in the
//! database's order answered differently on the two, and on two PostgreSQL clusters.

use catalog_core::{StockChange, TenantId};
use chrono::{Duration, Utc};

use super::fixtures::*;
use super::signals::query;
use crate::StoreConfig;

pub(super) async fn ids_and_skus_are_ordered_by_their_bytes<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let mut events: Vec<_> = ["ab", "a_b", "a-b"]
        .iter()
        .enumerate()
        .map(|(n, tenant)| {
            incoming(n as u64 + 1, &offer(tenant, "acme", "X-1"), StockChange::Updated { quantity: 1 }, 0, n as i64)
        })
        .collect();
    events.extend(["A_1", "AB"].iter().enumerate().map(|(n, sku)| {
        incoming(n as u64 + 10, &offer("canary", "acme", sku), StockChange::Updated { quantity: 1 }, 0, 10)
    }));
    store.apply_batch(&batch(events)).await.expect("apply");

    let tenants: Vec<String> = store.tenant_ids().await.expect("tenants").iter().map(TenantId::to_string).collect();
    assert_eq!(tenants, ["a-b", "a_b", "ab", "canary"], "tenants in byte order");

    // One untraced item named of two: the first by its SKU's bytes (`B` is 0x42, `_` 0x5F).
    let facts = store.signal_facts(&query(Utc::now() + Duration::minutes(10), 1)).await.expect("facts");
    let canary = &facts.tenants[&TenantId::parse("canary").expect("tenant")];
    assert_eq!(canary.untraced_items, 2);
    let named: Vec<&str> = canary.untraced.iter().map(|item| item.sku.as_str()).collect();
    assert_eq!(named, ["AB"], "the first untraced SKU by its bytes");
}
