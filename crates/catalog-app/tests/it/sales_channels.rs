//! The sales channels end to end: a channels file with a storefront and three marketplaces,
//! each with its own buffer, cap, share, threshold and listings, read as the worker reads it,
//! drained by the worker's publishers over real HTTP while the storefront fails and throttles
//! and the marketplaces throttle; and Amazon and Walmart in their bulk forms (feeds). Each
//! channel ends holding exactly what its rules give the catalog's final quantities, and
//! nothing is dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use catalog_app::channels::{build_channels, http_channels_with, routes, HttpChannel, PublishSettings};
use catalog_app::publishing::publishers;
use catalog_app::Metrics;
use catalog_core::{ItemKey, Sku, TenantId};
use catalog_publish::WorkSignal;
use catalog_sqlite::SqliteStore;
use catalog_store::prelude::*;
use catalog_store::{BatchInput, IncomingEvent, OutboxStore, SourceRef, StoreConfig};
use catalog_testkit::marketplaces::{Faults, Marketplace, Platform};
use tokio_util::sync::CancellationToken;

const N_SKUS: u64 = 40;

fn sku(n: u64) -> String {
    format!("SKU-{n:03}")
}

/// The catalog quantity of SKU `n` after round `round`: rises and falls, and reaches zero
/// and values around every threshold below.
fn quantity(n: u64, round: u64) -> i64 {
    ((n * 7 + round * 13) % 45) as i64
}

fn events(round: u64) -> BatchInput {
    let events = (0..N_SKUS)
        .map(|n| {
            let id = round * 1_000 + n + 1;
            let raw = format!(
                r#"{{"event_id":"00000000-0000-0000-0000-{id:012}","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"{}","quantity":{},"updated_at":"2026-06-01T12:{round:02}:00Z"}}"#,
                sku(n),
                quantity(n, round)
            )
            .into_bytes();
            let source = SourceRef { source: "test".into(), partition: 0, offset: id as i64 };
            IncomingEvent::received(raw, chrono::Utc::now(), source, None)
        })
        .collect();
    BatchInput::new(events, vec![])
}

/// Writes `text` as the channels file at `path` and reads it as the worker does, credentials
/// from a fake environment, retries fast (the failures are what is tested, not the waits).
pub(crate) fn channels_in(path: &std::path::Path, text: String) -> (Vec<HttpChannel>, PublishSettings) {
    std::fs::write(path, text).expect("write the channels file");
    let settings = PublishSettings {
        storefront: None,
        channels_file: Some(path.to_path_buf()),
        lease: Duration::from_secs(30),
        settle: Duration::ZERO,
        max_wait: Duration::ZERO,
        max_attempts: 20,
    };
    let env = |name: &str| Some(format!("{name} value"));
    let mut channels = http_channels_with(&settings, &env).expect("channels");
    for channel in &mut channels {
        channel.config.backoff_min = Duration::from_millis(10);
        channel.config.backoff_max = Duration::from_millis(50);
    }
    (channels, settings)
}

/// A SQLite store in `directory` queuing for `channels`, and the worker's publishers draining
/// it while three rounds of changes are applied (the last one wins everywhere), until
/// everything is published or given up.
async fn publish_three_rounds(
    channels: Vec<HttpChannel>,
    settings: &PublishSettings,
    directory: &std::path::Path,
) -> (Arc<dyn CatalogStore>, Metrics) {
    let config = StoreConfig { channels: routes(&channels), ..StoreConfig::default() };
    let store: Arc<dyn CatalogStore> =
        Arc::new(SqliteStore::open_path(&directory.join("catalog.db"), config).await.expect("open"));
    let metrics = Metrics::new();
    let work = WorkSignal::new();
    let built = build_channels(channels).expect("adapters");
    let publishers = publishers(built, settings, Arc::clone(&store) as Arc<dyn OutboxStore>, &metrics, &work);
    let (shutdown, drained) = (CancellationToken::new(), CancellationToken::new());
    let running: Vec<_> = publishers
        .into_iter()
        .map(|publisher| tokio::spawn(publisher.run(shutdown.clone(), drained.clone())))
        .collect();
    for round in 0..3 {
        store.apply_batch(&events(round)).await.expect("apply");
        work.notify();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drained.cancel();
    for publisher in running {
        tokio::time::timeout(Duration::from_secs(60), publisher)
            .await
            .expect("every channel drains within a minute")
            .expect("publisher task")
            .expect("publisher");
    }
    (store, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_ends_at_what_its_rules_give_after_failures_and_throttling() {
    let storefront =
        Marketplace::start(Platform::Storefront, Faults { throttle_every: Some(4), fail_every: Some(3) }).await;
    let shopify = Marketplace::start(Platform::Shopify, Faults { throttle_every: Some(3), fail_every: None }).await;
    let ebay = Marketplace::start(Platform::Ebay, Faults { throttle_every: Some(2), fail_every: Some(5) }).await;
    let meli = Marketplace::start(Platform::MercadoLibre, Faults { throttle_every: Some(5), fail_every: None }).await;

    // Shopify lists every SKU under its inventory item; Mercado Libre only the even ones.
    let shopify_listings: Vec<String> =
        (0..N_SKUS).map(|n| format!(r#""{}": "gid://shopify/InventoryItem/{}""#, sku(n), 1_000 + n)).collect();
    let meli_listings: Vec<String> =
        (0..N_SKUS).step_by(2).map(|n| format!(r#""{}": "MLA{}""#, sku(n), 500_000 + n)).collect();
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("channels.json");
    let (channels, settings) = channels_in(
        &path,
        format!(
            r#"[
              {{"name": "storefront", "base_url": "{storefront}", "requests_per_second": 500}},
              {{"name": "shopify", "requests_per_second": 500,
                "adapter": {{"kind": "shopify", "base_url": "{shopify}", "location_id": "gid://shopify/Location/1", "access_token_env": "SHOPIFY_TOKEN"}},
                "stock": {{"buffer": 2, "cap": 20}}, "listings": {{{shopify_listings}}}}},
              {{"name": "ebay", "requests_per_second": 500,
                "adapter": {{"kind": "ebay", "base_url": "{ebay}", "client_id": "c", "client_secret_env": "EBAY_SECRET", "refresh_token_env": "EBAY_REFRESH"}},
                "stock": {{"share_percent": 50, "zero_below": 4}}}},
              {{"name": "mercadolibre", "requests_per_second": 500,
                "adapter": {{"kind": "mercadolibre", "base_url": "{meli}", "client_id": "c", "client_secret_env": "ML_SECRET", "refresh_token_env": "ML_REFRESH", "refresh_token_file": "{ml_token}"}},
                "stock": {{"buffer": 1, "share_percent": 30}}, "listings": {{{meli_listings}}}}}
            ]"#,
            storefront = storefront.base_url,
            shopify = shopify.base_url,
            ebay = ebay.base_url,
            meli = meli.base_url,
            shopify_listings = shopify_listings.join(", "),
            meli_listings = meli_listings.join(", "),
            ml_token = directory.path().join("ml.token").display(),
        ),
    );
    let (store, metrics) = publish_three_rounds(channels, &settings, directory.path()).await;

    let item_id = |n: u64| {
        let key =
            ItemKey { tenant: TenantId::parse("canary").expect("tenant"), sku: Sku::parse(&sku(n)).expect("sku") };
        key.item_id().to_string()
    };
    for n in 0..N_SKUS {
        let catalog = quantity(n, 2);
        assert_eq!(storefront.quantity(&item_id(n)), Some(catalog), "storefront, {}", sku(n));
        let listing = format!("gid://shopify/InventoryItem/{}", 1_000 + n);
        assert_eq!(shopify.quantity(&listing), Some((catalog - 2).clamp(0, 20)), "shopify, {}", sku(n));
        let offered = if catalog < 4 { 0 } else { catalog / 2 };
        assert_eq!(ebay.quantity(&sku(n)), Some(offered), "ebay, {}", sku(n));
        let listing = format!("MLA{}", 500_000 + n);
        let offered = (n % 2 == 0).then(|| (catalog - 1).max(0) * 30 / 100);
        assert_eq!(meli.quantity(&listing), offered, "mercadolibre, {}", sku(n));
    }
    assert_eq!(meli.quantities().len(), (N_SKUS / 2) as usize, "odd SKUs are not listed there, so never sent");
    assert!(store.open_dead_letters(100).await.expect("dead letters").is_empty(), "nothing was given up");
    let attempts = |channel: &str, result: &str| metrics.publish_attempts.with_label_values(&[channel, result]).get();
    assert!(
        attempts("storefront", "retry") > 0 && attempts("storefront", "throttled") > 0,
        "the storefront failed and throttled"
    );
    assert!(
        attempts("shopify", "throttled") > 0
            && attempts("ebay", "throttled") > 0
            && attempts("mercadolibre", "throttled") > 0
    );
    assert!(attempts("mercadolibre", "skipped") >= N_SKUS / 2, "odd SKUs are skipped there");
    assert_eq!(attempts("mercadolibre", "dead_lettered") + attempts("storefront", "dead_lettered"), 0);
}

/// Amazon and Walmart in their bulk forms, read from the channels file as the worker reads
/// it: each round of changes goes out in feeds, submissions throttled and failing now and
/// then, and each marketplace ends holding what its rules give, with nothing dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_channels_end_at_what_their_rules_give_after_throttling_and_failures() {
    let amazon = Marketplace::start(Platform::Amazon, Faults { throttle_every: Some(3), fail_every: None }).await;
    let walmart = Marketplace::start(Platform::Walmart, Faults { throttle_every: None, fail_every: Some(2) }).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let (channels, settings) = channels_in(
        &directory.path().join("channels.json"),
        format!(
            r#"[
              {{"name": "amazon", "requests_per_second": 50, "burst": 5, "stock": {{"share_percent": 50}},
                "adapter": {{"kind": "amazon", "base_url": "{amazon}", "token_url": "{amazon}/auth/o2/token", "seller_id": "A1", "marketplace_id": "ATVPDKIKX0DER", "client_id": "c", "client_secret_env": "S", "refresh_token_env": "R", "feed": {{"poll_interval_ms": 20, "timeout_s": 10}}}}}},
              {{"name": "walmart", "requests_per_second": 50, "stock": {{"buffer": 3, "cap": 10}},
                "adapter": {{"kind": "walmart", "base_url": "{walmart}", "client_id": "c", "client_secret_env": "S", "feed": {{"poll_interval_ms": 20, "timeout_s": 10}}}}}}
            ]"#,
            amazon = amazon.base_url,
            walmart = walmart.base_url,
        ),
    );
    let (store, metrics) = publish_three_rounds(channels, &settings, directory.path()).await;
    for n in 0..N_SKUS {
        let catalog = quantity(n, 2);
        assert_eq!(amazon.quantity(&sku(n)), Some(catalog / 2), "amazon, {}", sku(n));
        assert_eq!(walmart.quantity(&sku(n)), Some((catalog - 3).clamp(0, 10)), "walmart, {}", sku(n));
    }
    assert!(store.open_dead_letters(100).await.expect("dead letters").is_empty(), "nothing was given up");
    let attempts = |channel: &str, result: &str| metrics.publish_attempts.with_label_values(&[channel, result]).get();
    assert!(attempts("amazon", "throttled") > 0, "Amazon throttled some feeds");
    assert!(attempts("walmart", "retry") > 0, "Walmart failed some feeds");
}
