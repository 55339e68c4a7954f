//! Contract cases of `ReadStore`: traces, journal windows and sync status.

use catalog_core::{ItemKey, Sku, StockChange, SupplierId, TenantId};
use chrono::Duration;

use super::fixtures::*;
use crate::{JournalWindow, StoreConfig, WindowCursor, WindowPage};

pub(super) async fn item_trace_explains_the_winner<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = offer("canary", "acme", "ABC-1");
    let globex = offer("canary", "globex", "abc-1");
    let events = vec![
        incoming(1, &acme, StockChange::Updated { quantity: 7 }, 5, 6),
        incoming(2, &acme, StockChange::Updated { quantity: 10 }, 1, 7),
        incoming(3, &acme, StockChange::Adjusted { delta: -2 }, 6, 8),
        incoming(4, &globex, StockChange::Updated { quantity: 5 }, 1, 9),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let trace = store.item_trace(acme.item_key().item_id()).await.expect("trace").expect("exists");
    assert_eq!((trace.item.quantity(), trace.item.version()), (10, 1));
    let offers: Vec<_> = trace.offers.iter().map(|o| (o.supplier.to_string(), o.quantity, o.winner)).collect();
    assert_eq!(offers, [("acme".to_owned(), 5, Some(event_id(3))), ("globex".to_owned(), 5, Some(event_id(4)))]);
    let events: Vec<_> =
        trace.events.iter().map(|e| (e.event_id, e.outcome.as_str(), e.traceparent.is_some())).collect();
    assert_eq!(
        events,
        [
            (Some(event_id(2)), "stale", true),
            (Some(event_id(4)), "applied", true),
            (Some(event_id(1)), "applied", true),
            (Some(event_id(3)), "applied", true)
        ],
        "events in ordering-key order"
    );
    assert!(store
        .item_trace(ItemKey { tenant: acme.tenant.clone(), sku: Sku::parse("NONE").expect("valid") }.item_id())
        .await
        .expect("trace")
        .is_none());
}

pub(super) async fn journal_window_filters_by_time_and_supplier<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = offer("canary", "acme", "ABC-1");
    let globex = offer("canary", "globex", "ABC-1");
    let other = offer("t2", "acme", "ABC-1");
    let events = vec![
        incoming(1, &acme, StockChange::Updated { quantity: 1 }, 0, 10),
        incoming(2, &globex, StockChange::Updated { quantity: 2 }, 0, 20),
        incoming(3, &acme, StockChange::Updated { quantity: 3 }, 0, 30),
        incoming(4, &other, StockChange::Updated { quantity: 4 }, 0, 20),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let window = |since: i64, until: Option<i64>, supplier: Option<&SupplierId>| JournalWindow {
        tenant: acme.tenant.clone(),
        since: base() + Duration::seconds(since),
        until: until.map(|until| base() + Duration::seconds(until)),
        supplier: supplier.cloned(),
        held_only: false,
    };
    let ids = |rows: Vec<crate::JournalEntry>| rows.into_iter().map(|row| row.event_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.journal_window(&window(0, None, None)).await.expect("journal")),
        [Some(event_id(1)), Some(event_id(2)), Some(event_id(3))]
    );
    assert_eq!(
        ids(store.journal_window(&window(10, Some(30), None)).await.expect("journal")),
        [Some(event_id(1)), Some(event_id(2))]
    );
    assert_eq!(
        ids(store.journal_window(&window(0, None, Some(&acme.supplier))).await.expect("journal")),
        [Some(event_id(1)), Some(event_id(3))]
    );
    assert!(store.journal_window(&window(31, None, None)).await.expect("journal").is_empty());

    // Globex switched off: its next event is held, and a held-only window has it alone.
    store.set_supplier_sync(&globex.tenant, &globex.supplier, false).await.expect("flag");
    store
        .apply_batch(&batch(vec![incoming(5, &globex, StockChange::Updated { quantity: 5 }, 1, 40)]))
        .await
        .expect("apply");
    let held = JournalWindow { held_only: true, ..window(0, None, None) };
    let rows = store.journal_window(&held).await.expect("journal");
    assert_eq!(
        rows.iter().map(|row| (row.event_id, row.outcome.to_string())).collect::<Vec<_>>(),
        [(Some(event_id(5)), "held(supplier_sync_off)".to_owned())]
    );
}

/// A window read in pages of two, each from the last one's cursor, is the window read whole:
/// every row once, in the same order, rows received at one time split over two pages too.
pub(super) async fn journal_window_pages_resume_after_their_cursor<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let skus = ["A-1", "B-1", "C-1", "D-1", "E-1", "F-1", "G-1"];
    // Three received at second 10, two at 20: pages of two split both.
    let received = [10, 10, 10, 20, 20, 30, 40];
    let events = skus
        .iter()
        .zip(received)
        .enumerate()
        .map(|(n, (sku, second))| {
            incoming(n as u64 + 1, &offer("canary", "acme", sku), StockChange::Updated { quantity: 1 }, 0, second)
        })
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let window = JournalWindow {
        tenant: TenantId::parse("canary").expect("valid"),
        since: base() + Duration::seconds(10),
        until: Some(base() + Duration::seconds(40)),
        supplier: None,
        held_only: false,
    };
    let whole = store.journal_window_page(&window, WindowPage { after: None, limit: 100 }).await.expect("journal");
    assert_eq!(whole.len(), 6, "the window's six rows: {whole:?}");
    let mut paged: Vec<crate::JournalEntry> = Vec::new();
    loop {
        let page = WindowPage { after: paged.last().map(WindowCursor::of), limit: 2 };
        let rows = store.journal_window_page(&window, page).await.expect("journal");
        assert!(rows.len() <= 2, "a page holds its limit at most");
        let last_page = rows.len() < 2;
        paged.extend(rows);
        if last_page {
            break;
        }
    }
    let ids =
        |rows: &[crate::JournalEntry]| rows.iter().map(|row| (row.received_at, row.journal_id)).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&whole));
    let mut sorted = ids(&whole);
    sorted.sort();
    assert_eq!(ids(&whole), sorted, "received time, then journal id");
}

pub(super) async fn sync_status_counts_outcomes<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    // Two channels: an item waits on each, and is one item waiting to publish.
    let channels = vec![crate::ChannelRoute::all("storefront"), crate::ChannelRoute::all("shopify")];
    let (store, _guard) = factory(StoreConfig { channels, ..StoreConfig::default() }).await;
    let key = offer("canary", "acme", "ABC-1");
    let first = incoming(1, &key, StockChange::Updated { quantity: 5 }, 5, 10);
    let events = vec![
        first.clone(),
        incoming(2, &key, StockChange::Updated { quantity: 6 }, 1, 11),
        first,
        raw_incoming(9, br#"{"tenant_id":"canary"}"#.to_vec(), 12),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let status = store.sync_status(&key.tenant).await.expect("status").expect("tenant exists");
    let counts: Vec<_> = status.events_by_outcome.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(counts, [("applied", 1), ("rejected", 1), ("stale", 1)]);
    assert_eq!(status.redeliveries, 1);
    assert_eq!(status.n_items, 1);
    assert_eq!(status.outbox_pending, 1, "items, not an item's rows on each channel");
    assert_eq!(status.last_received_at, Some(base() + Duration::seconds(12)));
    assert_eq!(status.last_applied_at, Some(base() + Duration::seconds(10)));
    assert!(store.sync_status(&TenantId::parse("nobody").expect("valid")).await.expect("status").is_none());
}

/// An item whose winning events carry no `sequence` (the contract makes it optional) is
/// traced like any other: its journal rows count as applied with sequence 0, the ordering
/// key's, so trace coverage does not report a gap where there is none.
pub(super) async fn events_without_a_sequence_re_derive_from_the_journal<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = offer("canary", "acme", "ABC-1");
    let without_sequence = |n: u64, change: StockChange, second: i64| {
        let event = catalog_core::SupplierEvent::new(
            event_id(n),
            acme.clone(),
            change,
            base() + Duration::seconds(second),
            None,
        )
        .expect("valid event");
        raw_incoming(n, catalog_core::encode(&event).into_bytes(), second + 1)
    };
    let events = vec![
        without_sequence(1, StockChange::Updated { quantity: 7 }, 5),
        without_sequence(2, StockChange::Adjusted { delta: 3 }, 6),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let trace = store.item_trace(acme.item_key().item_id()).await.expect("trace").expect("item");
    assert_eq!(trace.item.quantity(), 10);
    assert_eq!(trace.events.iter().map(|event| event.sequence).collect::<Vec<_>>(), [None, None]);
    let offers = crate::offer_traces(&trace);
    assert_eq!(catalog_core::check_item(trace.item.quantity(), &offers), Ok(()));
}
