//! Contract cases of the tracer's work in `SignalStore`: which items it checks, in what order,
//! and what its checks (and the items it could not read) make of trace coverage.

use catalog_core::{StockChange, TraceGap};
use chrono::{DateTime, Duration, Utc};

use super::fixtures::*;
use super::signals::{item_id, query, tenant};
use crate::{StoreConfig, TraceCheck};

/// The untraced items of tenant `canary` the signals would name at `at`, with their gaps.
async fn untraced(store: &dyn crate::CatalogStore, at: DateTime<Utc>) -> Vec<(String, TraceGap)> {
    let facts = store.signal_facts(&query(at, 50)).await.expect("facts");
    facts.tenants[&tenant("canary")].untraced.iter().map(|item| (item.sku.to_string(), item.gap.clone())).collect()
}

pub(super) async fn the_tracer_gets_changed_items_first_and_sweeps_by_id<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = |sku: &str| offer("canary", "acme", sku);
    store
        .apply_batch(&batch(vec![
            incoming(1, &key("A-1"), StockChange::Updated { quantity: 5 }, 0, 0),
            incoming(2, &key("B-1"), StockChange::Updated { quantity: 5 }, 0, 1),
        ]))
        .await
        .expect("apply");
    let mut due = store.items_to_trace(10).await.expect("due");
    due.sort_by_key(|id| id.0);
    let mut both = vec![item_id("canary", "A-1"), item_id("canary", "B-1")];
    both.sort_by_key(|id| id.0);
    assert_eq!(due, both, "never checked");
    assert_eq!(store.items_to_trace(1).await.expect("due").len(), 1, "bounded");

    let now = Utc::now();
    let checks: Vec<TraceCheck> =
        both.iter().map(|id| TraceCheck { item_id: *id, version: 1, checked_at: now, gap: None }).collect();
    store.record_trace_checks(&checks).await.expect("checks");
    assert!(store.items_to_trace(10).await.expect("due").is_empty(), "checked at their versions");

    store
        .apply_batch(&batch(vec![incoming(3, &key("B-1"), StockChange::Updated { quantity: 7 }, 1, 3)]))
        .await
        .expect("apply");
    assert_eq!(store.items_to_trace(10).await.expect("due"), [item_id("canary", "B-1")], "changed since its check");
    // Another worker's slower round, which checked version 1, records after this one's check
    // of version 2: the newer check stands.
    let b = item_id("canary", "B-1");
    store.record_trace_checks(&[TraceCheck { item_id: b, version: 2, checked_at: now, gap: None }]).await.expect("new");
    store.record_trace_checks(&[TraceCheck { item_id: b, version: 1, checked_at: now, gap: None }]).await.expect("old");
    assert!(store.items_to_trace(10).await.expect("due").is_empty(), "an older check never replaces a newer one");

    // B-1 could not be read since: its clean check no longer counts, and a check that reads it
    // again stands.
    let later = Utc::now() + Duration::minutes(10);
    assert!(untraced(&*store, later).await.is_empty(), "both traced");
    store.mark_unreadable(&[b]).await.expect("mark");
    assert_eq!(untraced(&*store, later).await, [("B-1".to_owned(), TraceGap::NotChecked)]);
    assert_eq!(store.items_to_trace(10).await.expect("due"), [b], "checked again first");
    store
        .record_trace_checks(&[TraceCheck { item_id: b, version: 2, checked_at: now, gap: None }])
        .await
        .expect("again");
    assert!(untraced(&*store, later).await.is_empty(), "read again, traced");

    let first = store.sweep_items(None, 1).await.expect("sweep");
    let rest = store.sweep_items(first.last().copied(), 10).await.expect("sweep");
    assert_eq!([first, rest].concat(), both, "the whole catalog in id order, page by page");
}
