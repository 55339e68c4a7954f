//! Contract cases of `ReconcileStore`: pages in the storefront's order with what the channel
//! accepted, and corrections as new versions queued and journaled.

use catalog_core::{detect_drift, DriftKind, Expected, ItemId, Shown, StockChange};

use super::fixtures::*;
use crate::{DriftCorrection, PublishOutcome, StoreConfig};

pub(super) async fn reconcile_pages_follow_item_id_order_with_accepted_versions<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let events: Vec<_> = (0..7u64)
        .map(|n| {
            incoming(
                n + 1,
                &offer("canary", "acme", &format!("SKU-{n}")),
                StockChange::Updated { quantity: 5 },
                0,
                n as i64,
            )
        })
        .chain([incoming(99, &offer("other", "acme", "SKU-0"), StockChange::Updated { quantity: 1 }, 0, 99)])
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let claimed = store.claim_outbox("storefront", &immediate(3)).await.expect("claim");
    for entry in &claimed {
        store.record_publish(&published(entry, PublishOutcome::Published)).await.expect("record");
    }
    let tenants = store.reconcile_tenants("storefront").await.expect("tenants");
    assert_eq!(tenants.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["canary", "other"]);
    assert!(store.reconcile_tenants("nowhere").await.expect("tenants").is_empty());

    let canary = &tenants[0];
    let mut seen: Vec<ItemId> = Vec::new();
    let mut after = None;
    loop {
        let page = store.reconcile_page("storefront", canary, after, 3).await.expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().map(|item| item.item_id);
        seen.extend(page.iter().map(|item| item.item_id));
        for item in &page {
            let accepted = claimed.iter().any(|entry| entry.item.id() == item.item_id);
            assert_eq!(item.accepted, accepted.then_some(1), "{item:?}");
            assert_eq!(item.pending, !accepted, "queued until published: {item:?}");
            assert_eq!((item.quantity, item.version), (5, 1));
        }
    }
    assert_eq!(seen.len(), 7, "every item of the tenant once, none of another tenant");
    let mut sorted = seen.clone();
    sorted.sort_by_key(|id| id.0);
    assert_eq!(seen, sorted, "in item id order, as the storefront lists them");
}

/// The storefront's page of `tenant`'s one item: its version, the version accepted, pending.
async fn pending_of(store: &dyn crate::CatalogStore, tenant: &catalog_core::TenantId) -> (u64, Option<u64>, bool) {
    let page = store.reconcile_page("storefront", tenant, None, 10).await.expect("page");
    assert_eq!(page.len(), 1);
    (page[0].version, page[0].accepted, page[0].pending)
}

/// A version on its way to a channel is pending while it is queued and while its dead
/// letter is open (auto-heal or an operator may send it yet); once the letter is resolved,
/// nothing is on its way, and the channel's older version is compared with the catalog's
/// (`Expected::settled`).
pub(super) async fn a_version_is_pending_while_queued_or_dead_lettered_open<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "SKU-1");
    let tenant = key.tenant.clone();
    store
        .apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, 1)]))
        .await
        .expect("apply");
    assert_eq!(pending_of(&*store, &tenant).await, (1, None, true), "queued");
    for entry in store.claim_outbox("storefront", &immediate(10)).await.expect("claim") {
        store.record_publish(&published(&entry, PublishOutcome::Published)).await.expect("record");
    }
    assert_eq!(pending_of(&*store, &tenant).await, (1, Some(1), false), "accepted, nothing on its way");

    store
        .apply_batch(&batch(vec![incoming(2, &key, StockChange::Updated { quantity: 4 }, 1, 2)]))
        .await
        .expect("apply");
    assert_eq!(pending_of(&*store, &tenant).await, (2, Some(1), true), "version 2 queued");
    dead_letter_every_due(&*store).await;
    assert_eq!(pending_of(&*store, &tenant).await, (2, Some(1), true), "its dead letter is open");
    let letters = crate::DeadLetterFilter { open: Some(true), limit: 10, ..crate::DeadLetterFilter::default() };
    let open = store.dead_letters(&letters).await.expect("letters");
    assert_eq!(open.len(), 1);
    assert!(store.resolve_dead_letter(open[0].dead_letter_id, "given up").await.expect("resolve"));
    assert_eq!(pending_of(&*store, &tenant).await, (2, Some(1), false), "resolved: nothing on its way");
    let item = store.reconcile_page("storefront", &tenant, None, 10).await.expect("page").remove(0);
    let expected = Expected { quantity: item.quantity, version: item.version, accepted: item.accepted };
    let shown = Some(Shown { quantity: 10, version: 1 });
    let drift = detect_drift(expected.settled(), shown).expect("the channel shows version 1's quantity");
    assert_eq!((drift.kind, drift.corrected_version), (DriftKind::VersionBehind, 3));
}

pub(super) async fn a_drift_correction_is_a_new_version_queued_and_journaled<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let channels = vec![crate::ChannelRoute::all("storefront"), crate::ChannelRoute::all("shopify")];
    let (store, _guard) = factory(StoreConfig { channels, ..StoreConfig::default() }).await;
    let key = offer("canary", "acme", "ABC-1");
    store
        .apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 12 }, 0, 1)]))
        .await
        .expect("apply");
    for channel in ["storefront", "shopify"] {
        let claimed = store.claim_outbox(channel, &immediate(10)).await.expect("claim");
        store.record_publish(&published(&claimed[0], PublishOutcome::Published)).await.expect("record");
    }
    let tenant = key.tenant.clone();
    let item = store.reconcile_page("storefront", &tenant, None, 10).await.expect("page").remove(0);
    // Someone set the storefront to 99 by hand.
    let shown = Some(Shown { quantity: 99, version: 1 });
    let drift =
        detect_drift(Expected { quantity: item.quantity, version: item.version, accepted: item.accepted }, shown)
            .expect("drift");
    assert_eq!(drift.kind, DriftKind::QuantityDiffers);
    let correction = DriftCorrection::of(item.item_id, item.version, drift);
    // The tracer checked version 1 clean before the sweep.
    let check = crate::TraceCheck { item_id: item.item_id, version: 1, checked_at: chrono::Utc::now(), gap: None };
    store.record_trace_checks(&[check]).await.expect("check");
    assert_eq!(
        store.correct_drifts("storefront", std::slice::from_ref(&correction)).await.expect("correct"),
        [correction.item_id]
    );
    // The correction moved the version, not the quantity: the clean check still holds. A
    // mass correction (a storefront's cache reset) otherwise left every item untraced until
    // the tracer got round to it, turning trace coverage red for half an hour and
    // restarting the gate's day.
    assert!(store.items_to_trace(10).await.expect("due").is_empty(), "still checked");

    let trace = store.item_trace(item.item_id).await.expect("trace").expect("exists");
    assert_eq!((trace.item.quantity(), trace.item.version()), (12, 2), "same quantity, the next version");
    let mut pending: Vec<_> = trace.pending_publishes.iter().map(|p| (p.channel.clone(), p.version)).collect();
    pending.sort();
    assert_eq!(pending, [("shopify".to_owned(), 2), ("storefront".to_owned(), 2)], "queued the normal way");
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!((claimed[0].item.quantity(), claimed[0].item.version()), (12, 2));

    let drifts = store.item_drifts(item.item_id, 10).await.expect("drifts");
    assert_eq!(drifts.len(), 1);
    assert_eq!(drifts[0].kind, DriftKind::QuantityDiffers);
    assert_eq!(drifts[0].shown, shown);
    assert_eq!((drifts[0].catalog_version, drifts[0].corrected_version), (1, 2));
    assert_eq!(drifts[0].channel, "storefront");
    let counts = store.drift_counts(chrono::Utc::now() - chrono::Duration::minutes(1)).await.expect("counts");
    let counts: Vec<_> =
        counts.iter().map(|count| (count.channel.as_str(), count.kind.as_str(), count.drifts)).collect();
    assert_eq!(counts, [("storefront", "quantity_differs", 1)], "a channel's health counts its drifts");
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    assert!(store.drift_counts(later).await.expect("counts").is_empty(), "only drifts since the time asked");

    // The same correction again finds the item moved on: nothing changes, nothing is journaled.
    assert_eq!(store.correct_drifts("storefront", &[correction]).await.expect("correct").len(), 0);
    assert_eq!(store.item_drifts(item.item_id, 10).await.expect("drifts").len(), 1);

    // A later batch builds on the corrected version.
    store
        .apply_batch(&batch(vec![incoming(2, &key, StockChange::Updated { quantity: 3 }, 1, 2)]))
        .await
        .expect("apply");
    let trace = store.item_trace(item.item_id).await.expect("trace").expect("exists");
    assert_eq!((trace.item.quantity(), trace.item.version()), (3, 3));
}
