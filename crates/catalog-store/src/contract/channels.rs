//! Contract cases of what sales channels were sent: each attempt keeps the listing, quantity
//! and rule it sent (shown in the item trace), a skipped publish is done with its version
//! without holding or failing anything, attempts are counted per channel and result, a
//! channel's stale items are those of the tenants it serves, and a version a channel holds
//! past the signed range is kept at its largest.

use catalog_core::{StockChange, TenantId};
use chrono::{Duration, Utc};

use super::fixtures::*;
use crate::{PublishOutcome, PublishRecord, SentQuantity, StoreConfig};

pub(super) async fn attempts_keep_what_they_sent_and_a_skip_is_done_with_its_version<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let config = StoreConfig {
        channels: vec![crate::ChannelRoute::all("ebay"), crate::ChannelRoute::all("mercadolibre")],
        ..StoreConfig::default()
    };
    let (store, _guard) = factory(config).await;
    let a = offer("canary", "acme", "A-1");
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 12 }, 0, 1)])).await.expect("apply");
    let before = Utc::now() - Duration::seconds(1);

    let ebay = store.claim_outbox("ebay", &immediate(10)).await.expect("claim");
    let sent =
        SentQuantity { listing: "A-1".into(), quantity: 5, rule: "catalog 12; buffer 2: 10; share 50%: 5".into() };
    let record =
        PublishRecord { sent: Some(sent.clone()), status: Some(200), ..published(&ebay[0], PublishOutcome::Published) };
    store.record_publish(&record).await.expect("record");

    let mercadolibre = store.claim_outbox("mercadolibre", &immediate(10)).await.expect("claim");
    let skipped = PublishRecord {
        status: None,
        error: Some("unmapped_sku: SKU A-1 has no listing on channel mercadolibre".into()),
        ..published(&mercadolibre[0], PublishOutcome::Skipped)
    };
    store.record_publish(&skipped).await.expect("record");

    let depths = store.outbox_depth().await.expect("depth");
    assert_eq!(depths.iter().map(|depth| depth.pending).sum::<u64>(), 0, "a skip is done with its version: {depths:?}");
    let trace = store.item_trace(a.item_key().item_id()).await.expect("trace").expect("exists");
    let attempts: Vec<_> =
        trace.publish_attempts.iter().map(|p| (p.channel.as_str(), p.result.as_str(), p.sent.clone())).collect();
    assert_eq!(attempts, [("ebay", "published", Some(sent)), ("mercadolibre", "skipped", None)]);
    let held = store.published_versions(a.item_key().item_id()).await.expect("versions");
    let held: Vec<_> = held.iter().map(|version| (version.channel.as_str(), version.version)).collect();
    assert_eq!(held, [("ebay", 1)], "a skipped channel holds nothing");
    // Nor is the item stale there (decision 0044), in the gauge or in the signals' facts.
    assert_eq!(store.stale_items("mercadolibre").await.expect("stale"), 0, "a SKU not listed is not stale");
    assert_eq!(stale_in_facts(&*store).await, 0);
    // Nor is a skip a publish attempt: nothing was sent, so it neither fails nor dilutes the
    // publish errors signal (decision 0017).
    let overall = facts(&*store).await.overall;
    assert_eq!((overall.publish_attempts, overall.publish_failures), (1, 0), "only ebay's publish is an attempt");

    let counts = store.publish_attempt_counts(before).await.expect("counts");
    let counts: Vec<_> =
        counts.iter().map(|count| (count.channel.as_str(), count.result.as_str(), count.attempts)).collect();
    assert_eq!(counts, [("ebay", "published", 1), ("mercadolibre", "skipped", 1)]);
    assert!(store.publish_attempt_counts(Utc::now() + Duration::minutes(1)).await.expect("counts").is_empty());

    // A newer version is stale on the channel until it too is skipped.
    store.apply_batch(&batch(vec![incoming(2, &a, StockChange::Updated { quantity: 7 }, 1, 2)])).await.expect("apply");
    assert_eq!(store.stale_items("mercadolibre").await.expect("stale"), 1);
    assert_eq!(stale_in_facts(&*store).await, 1);
    let mercadolibre = store.claim_outbox("mercadolibre", &immediate(10)).await.expect("claim");
    store
        .record_publish(&PublishRecord { status: None, ..published(&mercadolibre[0], PublishOutcome::Skipped) })
        .await
        .expect("record");
    assert_eq!(store.stale_items("mercadolibre").await.expect("stale"), 0);
}

pub(super) async fn a_channel_routed_to_some_tenants_counts_only_their_items_stale<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let canary = TenantId::parse("canary").expect("valid tenant");
    let config = StoreConfig {
        channels: vec![crate::ChannelRoute::all("storefront"), crate::ChannelRoute::for_tenants("ebay", [canary])],
        ..StoreConfig::default()
    };
    let (store, _guard) = factory(config).await;
    let ours = offer("canary", "acme", "A-1");
    let theirs = offer("other", "acme", "Z-1");
    let events = vec![
        incoming(1, &ours, StockChange::Updated { quantity: 3 }, 0, 1),
        incoming(2, &theirs, StockChange::Updated { quantity: 4 }, 0, 2),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    assert_eq!(store.stale_items("storefront").await.expect("stale"), 2, "the storefront serves both tenants");
    assert_eq!(store.stale_items("ebay").await.expect("stale"), 1, "ebay never gets other's item: not stale there");
    assert_eq!(store.stale_items("walmart").await.expect("stale"), 0, "a channel no route names holds nothing");

    // Both published on the storefront: canary's item is still stale on ebay, other's nowhere,
    // in the gauge and in the signals' facts (past the stale grace) alike.
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    let records: Vec<PublishRecord> = claimed.iter().map(|entry| published(entry, PublishOutcome::Published)).collect();
    store.record_publishes(&records).await.expect("record");
    assert_eq!(store.stale_items("storefront").await.expect("stale"), 0);
    assert_eq!(store.stale_items("ebay").await.expect("stale"), 1, "canary's item past the grace is counted");
    let facts = facts(&*store).await;
    let stale_of = |name: &str| facts.tenants[&TenantId::parse(name).expect("valid tenant")].stale_items;
    assert_eq!((stale_of("canary"), stale_of("other")), (1, 0));
}

/// The signals' count of stale items overall, ten minutes on (past the stale grace).
async fn stale_in_facts(store: &dyn crate::CatalogStore) -> u64 {
    facts(store).await.overall.stale_items
}

/// The signals' facts ten minutes on (past the stale grace, within the publish window).
async fn facts(store: &dyn crate::CatalogStore) -> crate::FactsReport {
    let query = crate::FactsQuery {
        now: Utc::now() + Duration::minutes(10),
        stale_grace: Duration::seconds(60),
        publish_window: Duration::minutes(15),
        trace_grace: Duration::minutes(5),
        max_named: 10,
    };
    store.signal_facts(&query).await.expect("facts")
}

/// A 409 names the version the channel holds, any `u64`: one past `i64::MAX` is held at
/// `i64::MAX`, the signed column's largest, on both stores (SQLite wrapped it to a negative
/// number, which the attempt's own version 1 outranked).
pub(super) async fn a_channel_s_version_past_the_signed_range_is_held_at_the_largest<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    store
        .apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 4 }, 0, 1)]))
        .await
        .expect("apply");
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(claimed.iter().map(|entry| entry.item.version()).collect::<Vec<_>>(), [1]);
    let superseded = PublishOutcome::Superseded { current_version: u64::MAX };
    store.record_publish(&published(&claimed[0], superseded)).await.expect("record");
    let held = store.published_versions(key.item_key().item_id()).await.expect("published versions");
    let held: Vec<_> = held.iter().map(|version| (version.channel.as_str(), version.version)).collect();
    assert_eq!(held, [("storefront", i64::MAX as u64)]);
}

pub(super) async fn a_sku_items_of_several_served_tenants_hold_is_found<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let tenant = |name: &str| TenantId::parse(name).expect("valid tenant");
    let config = StoreConfig {
        channels: vec![
            crate::ChannelRoute::all("ebay"),
            crate::ChannelRoute::for_tenants("amazon", [tenant("canary"), tenant("third")]),
            crate::ChannelRoute::for_tenants("walmart-canary", [tenant("canary")]),
            crate::ChannelRoute::for_tenants("walmart-other", [tenant("other")]),
        ],
        ..StoreConfig::default()
    };
    let (store, _guard) = factory(config).await;
    let offers = [
        offer("canary", "acme", "A-1"),
        offer("other", "acme", "A-1"),
        offer("third", "acme", "A-1"),
        offer("canary", "acme", "B-1"),
        offer("other", "globex", "C-1"),
    ];
    let events = offers
        .iter()
        .enumerate()
        .map(|(n, offer)| incoming(n as u64 + 1, offer, StockChange::Updated { quantity: 3 }, 0, n as i64 + 1))
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let skus: Vec<catalog_core::Sku> =
        ["C-1", "A-1", "B-1", "Z-9"].iter().map(|sku| catalog_core::Sku::parse(sku).expect("valid sku")).collect();

    let on = |channels: &[&str]| channels.iter().map(|channel| (*channel).to_owned()).collect::<Vec<String>>();
    let shared = store.skus_of_several_tenants(&on(&["ebay"]), &skus).await.expect("shared");
    let shared: Vec<(&str, Vec<&str>)> =
        shared.iter().map(|found| (found.sku.as_str(), found.tenants.iter().map(TenantId::as_str).collect())).collect();
    assert_eq!(shared, [("A-1", vec!["canary", "other", "third"])], "every tenant's A-1; B-1 and C-1 are one's");
    let tenants_of = |shared: Vec<crate::SharedSku>| -> Vec<Vec<String>> {
        shared.iter().map(|found| found.tenants.iter().map(ToString::to_string).collect()).collect()
    };
    let shared = store.skus_of_several_tenants(&on(&["amazon"]), &skus).await.expect("shared");
    assert_eq!(tenants_of(shared), [vec!["canary", "third"]], "only the tenants amazon serves");
    // Two channels of one seller account, one tenant each: their tenants together.
    let alone = store.skus_of_several_tenants(&on(&["walmart-canary"]), &skus).await.expect("shared");
    assert!(alone.is_empty(), "one tenant alone shares nothing: {alone:?}");
    let together = store.skus_of_several_tenants(&on(&["walmart-canary", "walmart-other"]), &skus).await;
    assert_eq!(tenants_of(together.expect("shared")), [vec!["canary", "other"]]);
    let unrouted = store.skus_of_several_tenants(&on(&["walmart"]), &skus).await.expect("shared");
    assert!(unrouted.is_empty(), "a channel no route names serves no tenant: {unrouted:?}");
    assert!(store.skus_of_several_tenants(&on(&["ebay"]), &[]).await.expect("shared").is_empty());
}
