//! A SKU two tenants hold, on channels read from a channels file as the worker reads it
//! (decision 0056): the storefront, whose requests name the tenant, gets both items; a
//! marketplace serving both tenants, which knows a seller account's listings by SKU alone,
//! writes that SKU for neither (each tenant's quantity would overwrite the other's) and
//! dead-letters it for an operator; one serving a single tenant writes that tenant's.

use std::sync::Arc;

use catalog_app::channels::{build_channels, routes};
use catalog_app::publishing::publishers;
use catalog_app::Metrics;
use catalog_core::{ItemKey, Sku, TenantId};
use catalog_publish::{WorkSignal, LISTING_SHARED_BY_TENANTS};
use catalog_sqlite::SqliteStore;
use catalog_store::prelude::*;
use catalog_store::{BatchInput, IncomingEvent, OutboxStore, SourceRef, StoreConfig};
use catalog_testkit::marketplaces::{Faults, Marketplace, Platform};
use tokio_util::sync::CancellationToken;

use crate::eventually;
use crate::sales_channels::channels_in;

/// `tenant`'s `sku` at `quantity`, as event `n`.
fn event(n: u64, tenant: &str, sku: &str, quantity: i64) -> IncomingEvent {
    let raw = format!(
        r#"{{"event_id":"00000000-0000-0000-0000-{n:012}","type":"inventory.updated","tenant_id":"{tenant}","supplier_id":"acme","sku":"{sku}","quantity":{quantity},"updated_at":"2026-06-01T12:00:{n:02}Z"}}"#
    )
    .into_bytes();
    IncomingEvent::received(
        raw,
        chrono::Utc::now(),
        SourceRef { source: "test".into(), partition: 0, offset: n as i64 },
        None,
    )
}

fn item_id(tenant: &str, sku: &str) -> String {
    ItemKey { tenant: TenantId::parse(tenant).expect("tenant"), sku: Sku::parse(sku).expect("sku") }
        .item_id()
        .to_string()
}

/// The four items of the tests (`canary` and `other` both hold SKU-1), in a SQLite store in
/// `directory`, published by the worker's publishers on `channels` until nothing waits.
async fn publish_the_four_items(
    channels: Vec<catalog_app::channels::HttpChannel>,
    settings: &catalog_app::channels::PublishSettings,
    directory: &std::path::Path,
) -> (Arc<dyn CatalogStore>, Metrics) {
    let config = StoreConfig { channels: routes(&channels), ..StoreConfig::default() };
    let store: Arc<dyn CatalogStore> =
        Arc::new(SqliteStore::open_path(&directory.join("catalog.db"), config).await.expect("open"));
    let events = vec![
        event(1, "canary", "SKU-1", 5),
        event(2, "other", "SKU-1", 9),
        event(3, "canary", "SKU-2", 3),
        event(4, "other", "SKU-3", 4),
    ];
    store.apply_batch(&BatchInput::new(events, vec![])).await.expect("apply");
    let (metrics, work) = (Metrics::new(), WorkSignal::new());
    let built = build_channels(channels).expect("adapters");
    let publishers = publishers(built, settings, Arc::clone(&store) as Arc<dyn OutboxStore>, &metrics, &work);
    let drained = CancellationToken::new();
    drained.cancel();
    for publisher in publishers {
        let run = publisher.run(CancellationToken::new(), drained.clone());
        tokio::time::timeout(std::time::Duration::from_secs(30), run).await.expect("drained").expect("publisher");
    }
    (store, metrics)
}

/// The four items published on two channels of one seller account (both `adapter`), named
/// `{prefix}-canary` and `{prefix}-other`, each serving that tenant, with `listings` (the
/// channels file's field and a comma, or nothing) each; the store once nothing waits, and the
/// directory it lives in.
async fn one_account_per_tenant(
    prefix: &str,
    adapter: &str,
    listings: (&str, &str),
) -> (Arc<dyn CatalogStore>, tempfile::TempDir) {
    let directory = tempfile::tempdir().expect("temp dir");
    let (channels, settings) = channels_in(
        &directory.path().join("channels.json"),
        format!(
            r#"[
              {{"name": "{prefix}-canary", "tenants": ["canary"], {} "adapter": {adapter}}},
              {{"name": "{prefix}-other", "tenants": ["other"], {} "adapter": {adapter}}}
            ]"#,
            listings.0, listings.1
        ),
    );
    let (store, _metrics) = publish_the_four_items(channels, &settings, directory.path()).await;
    (store, directory)
}

/// The open dead letters as (channel, reason, item), sorted.
async fn letters(store: &dyn CatalogStore) -> Vec<(String, String, String)> {
    let letters = store.open_dead_letters(10).await.expect("dead letters");
    let mut letters: Vec<(String, String, String)> =
        letters.into_iter().map(|letter| (letter.channel.unwrap_or_default(), letter.reason, letter.subject)).collect();
    letters.sort_unstable();
    letters
}

/// A dead letter of `tenant`'s SKU-1 on `channel`, as [`letters`] lists it.
fn shared(channel: &str, tenant: &str) -> (String, String, String) {
    (channel.to_owned(), LISTING_SHARED_BY_TENANTS.to_owned(), item_id(tenant, "SKU-1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sku_two_tenants_hold_is_written_to_no_listing_they_would_share() {
    let storefront = Marketplace::start(Platform::Storefront, Faults::default()).await;
    let ebay = Marketplace::start(Platform::Ebay, Faults::default()).await;
    let meli = Marketplace::start(Platform::MercadoLibre, Faults::default()).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let (channels, settings) = channels_in(
        &directory.path().join("channels.json"),
        format!(
            r#"[
              {{"name": "storefront", "base_url": "{storefront}"}},
              {{"name": "ebay", "adapter": {{"kind": "ebay", "base_url": "{ebay}", "client_id": "c", "client_secret_env": "EBAY_SECRET", "refresh_token_env": "EBAY_REFRESH"}}}},
              {{"name": "mercadolibre", "tenants": ["canary"], "listings": {{"SKU-1": "MLA1", "SKU-2": "MLA2"}},
                "adapter": {{"kind": "mercadolibre", "base_url": "{meli}", "client_id": "c", "client_secret_env": "ML_SECRET", "refresh_token_env": "ML_REFRESH", "refresh_token_file": "{ml_token}"}}}}
            ]"#,
            storefront = storefront.base_url,
            ebay = ebay.base_url,
            meli = meli.base_url,
            ml_token = directory.path().join("ml.token").display(),
        ),
    );
    let (store, metrics) = publish_the_four_items(channels, &settings, directory.path()).await;

    let held = [("canary", "SKU-1", 5), ("other", "SKU-1", 9), ("canary", "SKU-2", 3), ("other", "SKU-3", 4)];
    for (tenant, sku, quantity) in held {
        assert_eq!(storefront.quantity(&item_id(tenant, sku)), Some(quantity), "storefront, {tenant}/{sku}");
    }
    let ebay_holds = ebay.quantities();
    assert_eq!(ebay_holds.get("SKU-1"), None, "neither tenant's SKU-1 on the account both would share");
    assert_eq!((ebay_holds.get("SKU-2"), ebay_holds.get("SKU-3")), (Some(&3), Some(&4)), "each tenant's own SKU");
    let meli_holds = meli.quantities();
    assert_eq!((meli_holds.get("MLA1"), meli_holds.get("MLA2")), (Some(&5), Some(&3)), "the one tenant it serves");
    let mut expected = vec![shared("ebay", "canary"), shared("ebay", "other")];
    expected.sort_unstable();
    assert_eq!(letters(&*store).await, expected, "both items dead-lettered on ebay alone, for an operator");
    assert_eq!(metrics.publish_attempts.with_label_values(&["ebay", "dead_lettered"]).get(), 2);
}

/// Two channels on one eBay seller account (the same refresh token), each serving one tenant:
/// neither writes the SKU both tenants hold, and each writes its tenant's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_channels_on_one_seller_account_write_no_sku_their_tenants_share() {
    let ebay = Marketplace::start(Platform::Ebay, Faults::default()).await;
    let adapter = format!(
        r#"{{"kind": "ebay", "base_url": "{}", "client_id": "c", "client_secret_env": "EBAY_SECRET", "refresh_token_env": "EBAY_REFRESH"}}"#,
        ebay.base_url
    );
    let (store, _directory) = one_account_per_tenant("ebay", &adapter, ("", "")).await;

    let holds = ebay.quantities();
    assert_eq!(holds.get("SKU-1"), None, "neither tenant's SKU-1 on the account both channels write");
    assert_eq!((holds.get("SKU-2"), holds.get("SKU-3")), (Some(&3), Some(&4)), "each tenant's own SKU");
    assert_eq!(letters(&*store).await, [shared("ebay-canary", "canary"), shared("ebay-other", "other")]);
}

/// A second tenant's item for a SKU the channel has been writing for one tenant, while the
/// publisher runs and trusts the first item alone (decision 0056): the second item is found at
/// its first publish and dead-lettered, and the listing keeps the first tenant's quantity. The
/// first tenant's next version, within the minute its item was trusted alone, is written for
/// none either: the SKU found shared ends that trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_tenant_s_item_arriving_later_never_overwrites_the_listing() {
    let ebay = Marketplace::start(Platform::Ebay, Faults::default()).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let (channels, settings) = channels_in(
        &directory.path().join("channels.json"),
        format!(
            r#"[{{"name": "ebay", "adapter": {{"kind": "ebay", "base_url": "{}", "client_id": "c", "client_secret_env": "EBAY_SECRET", "refresh_token_env": "EBAY_REFRESH"}}}}]"#,
            ebay.base_url
        ),
    );
    let config = StoreConfig { channels: routes(&channels), ..StoreConfig::default() };
    let store: Arc<dyn CatalogStore> =
        Arc::new(SqliteStore::open_path(&directory.path().join("catalog.db"), config).await.expect("open"));
    let (metrics, work) = (Metrics::new(), WorkSignal::new());
    let built = build_channels(channels).expect("adapters");
    let publishers = publishers(built, &settings, Arc::clone(&store) as Arc<dyn OutboxStore>, &metrics, &work);
    let shutdown = CancellationToken::new();
    let running: Vec<_> = publishers
        .into_iter()
        .map(|publisher| tokio::spawn(publisher.run(shutdown.clone(), CancellationToken::new())))
        .collect();
    store.apply_batch(&BatchInput::new(vec![event(1, "canary", "SKU-1", 5)], vec![])).await.expect("apply");
    work.notify();
    eventually(std::time::Duration::from_secs(30), "canary's SKU-1 sent", || ebay.quantity("SKU-1") == Some(5)).await;
    store.apply_batch(&BatchInput::new(vec![event(2, "other", "SKU-1", 9)], vec![])).await.expect("apply");
    work.notify();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while letters(&*store).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "other's SKU-1 dead-lettered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(letters(&*store).await, [shared("ebay", "other")]);
    store.apply_batch(&BatchInput::new(vec![event(3, "canary", "SKU-1", 6)], vec![])).await.expect("apply");
    work.notify();
    while letters(&*store).await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "canary's next SKU-1 version dead-lettered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    for publisher in running {
        publisher.await.expect("publisher task").expect("publisher");
    }
    let mut both = [shared("ebay", "canary"), shared("ebay", "other")];
    both.sort_unstable();
    assert_eq!(letters(&*store).await, both, "canary's next version written for none either");
    assert_eq!(ebay.quantity("SKU-1"), Some(5), "the listing keeps canary's first quantity, never other's");
    assert!(ebay.history().lock().expect("history")["SKU-1"].iter().all(|(quantity, _)| *quantity == 5));
}

/// Two Mercado Libre channels on one account (one token file), one tenant each, with maps
/// that agree: a SKU one channel does not map is no listing there, so the other tenant's item
/// of that SKU takes nothing from the first channel's listing, and nothing is held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sku_the_other_channel_of_the_account_does_not_list_is_written() {
    let meli = Marketplace::start(Platform::MercadoLibre, Faults::default()).await;
    let tokens = tempfile::tempdir().expect("temp dir");
    let adapter = format!(
        r#"{{"kind": "mercadolibre", "base_url": "{}", "client_id": "c", "client_secret_env": "ML_SECRET", "refresh_token_env": "ML_REFRESH", "refresh_token_file": "{}"}}"#,
        meli.base_url,
        tokens.path().join("refresh-token").display()
    );
    let maps = (r#""listings": {"SKU-1": "MLA1", "SKU-2": "MLA2"},"#, r#""listings": {"SKU-3": "MLA3"},"#);
    let (store, _directory) = one_account_per_tenant("meli", &adapter, maps).await;

    let holds = meli.quantities();
    let held = [holds.get("MLA1"), holds.get("MLA2"), holds.get("MLA3")];
    assert_eq!(held, [Some(&5), Some(&3), Some(&4)], "other's SKU-1 is listed nowhere on the account");
    assert_eq!(letters(&*store).await, [], "nothing held back");
}

/// Channels spending one rate budget of a platform share one throttling hold, so a 429 or a
/// refusal either meets holds both: two locations of one app's shop (one cost bucket). Held
/// apart, each went on sending into the refusal the other met, and a shop that keeps
/// exceeding its limits is locked (found by review). Another app's token on the shop, or
/// another shop, is another budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_on_one_rate_budget_share_one_hold() {
    let directory = tempfile::tempdir().expect("temp dir");
    let shop = |name: &str, location: u32, token: &str, host: &str| {
        format!(
            r#"{{"name": "{name}", "listings": {{"ABC-1": "gid://shopify/InventoryItem/1"}}, "adapter": {{"kind": "shopify", "base_url": "{host}", "location_id": "gid://shopify/Location/{location}", "access_token_env": "{token}"}}}}"#
        )
    };
    let (channels, _settings) = channels_in(
        &directory.path().join("channels.json"),
        format!(
            "[{}, {}, {}, {}]",
            shop("east", 1, "SHOP_TOKEN", "http://127.0.0.1:9"),
            shop("west", 2, "SHOP_TOKEN", "http://127.0.0.1:9"),
            shop("other-app", 3, "OTHER_TOKEN", "http://127.0.0.1:9"),
            shop("other-shop", 1, "SHOP_TOKEN", "http://127.0.0.1:8"),
        ),
    );
    let built = build_channels(channels).expect("adapters");
    let shares = |a: usize, b: usize| Arc::ptr_eq(&built[a].hold, &built[b].hold);
    assert!(shares(0, 1), "two locations of one app's shop");
    assert!(!shares(0, 2) && !shares(0, 3) && !shares(2, 3), "another app, another shop");
    built[0].hold.extend(std::time::Duration::from_secs(5));
    assert!(built[1].hold.until().is_some(), "a 429 east met holds west");
    assert!(built[2].hold.until().is_none() && built[3].hold.until().is_none());
}
