//! Reconciliation of the five marketplaces end to end: the worker's publishers and
//! reconcilers, built from a channels file the way the worker builds them, over real HTTP to
//! local platforms that answer their documented reads. Once every channel holds what its
//! rules give, sweeps find nothing to correct; then a quantity edited or a listing removed
//! on each platform behind the channel's back is read back, corrected as a new item version
//! and republished, on Amazon only once the difference outlasted its settle time. Walmart
//! is swept through its catalog list, and asked SKU by SKU only where the list differs; two
//! SKUs are variations of one Mercado Libre item, two keep their stock on user products.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use catalog_app::channels::{build_channels, routes, BuiltChannel, HttpChannel};
use catalog_app::publishing::publishers;
use catalog_app::reconcile::{reconcilers, ReconcileSettings, Reconciler};
use catalog_app::Metrics;
use catalog_core::{DriftKind, ItemKey, Sku, TenantId};
use catalog_publish::WorkSignal;
use catalog_sqlite::SqliteStore;
use catalog_store::prelude::*;
use catalog_store::{BatchInput, IncomingEvent, ReconcileStore, SourceRef, StoreConfig};
use catalog_testkit::marketplaces::{Faults, Marketplace, Platform};
use tokio_util::sync::CancellationToken;

use crate::eventually;
use crate::sales_channels::channels_in;

const N_SKUS: u64 = 8;

fn sku(n: u64) -> String {
    format!("SKU-{n:03}")
}

fn quantity(n: u64) -> i64 {
    10 + n as i64 * 3
}

fn events(n_skus: u64) -> BatchInput {
    let events = (0..n_skus)
        .map(|n| {
            let raw = format!(
                r#"{{"event_id":"00000000-0000-0000-0000-{:012}","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"{}","quantity":{},"updated_at":"2026-06-01T12:00:00Z"}}"#,
                n + 1,
                sku(n),
                quantity(n)
            )
            .into_bytes();
            let source = SourceRef { source: "test".into(), partition: 0, offset: n as i64 };
            IncomingEvent::received(raw, chrono::Utc::now(), source, None)
        })
        .collect();
    BatchInput::new(events, vec![])
}

/// A SQLite store in a directory routing to `channels`, their adapters built once, and a
/// reconciler per channel sweeping every `interval`, retrying a read `max_attempts` times.
struct Harness {
    sqlite: Arc<SqliteStore>,
    store: Arc<dyn CatalogStore>,
    metrics: Metrics,
    work: WorkSignal,
    built: Vec<BuiltChannel>,
    reconcilers: Vec<Reconciler>,
}

impl Harness {
    async fn start(directory: &Path, channels: Vec<HttpChannel>, interval: Duration, max_attempts: u32) -> Harness {
        let config = StoreConfig { channels: routes(&channels), ..StoreConfig::default() };
        let sqlite = Arc::new(SqliteStore::open_path(&directory.join("catalog.db"), config).await.expect("open"));
        let metrics = Metrics::new();
        let work = WorkSignal::new();
        let built = build_channels(channels).expect("adapters");
        let settings = ReconcileSettings { interval, page_size: 1_000, requests_per_second: 1_000, max_attempts };
        let reconcile_store: Arc<dyn ReconcileStore> = sqlite.clone();
        let reconcilers = reconcilers(&built, reconcile_store, settings, &metrics, &work);
        Harness { store: sqlite.clone(), sqlite, metrics, work, built, reconcilers }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_marketplace_is_read_back_and_its_drift_corrected() {
    let quiet = Faults::default();
    let shopify = Marketplace::start(Platform::Shopify, Faults { throttle_every: Some(4), fail_every: None }).await;
    let amazon = Marketplace::start(Platform::Amazon, quiet).await;
    let walmart = Marketplace::start(Platform::Walmart, Faults { throttle_every: None, fail_every: Some(6) }).await;
    let ebay = Marketplace::start(Platform::Ebay, Faults { throttle_every: Some(5), fail_every: None }).await;
    let meli = Marketplace::start(Platform::MercadoLibre, quiet).await;
    let gid = |n: u64| format!("gid://shopify/InventoryItem/{}", 1_000 + n);
    // The last two SKUs are variations of one Mercado Libre item (decision 0024); two keep
    // their stock on a user product, at the selling address and at one warehouse (0027).
    let mla = |n: u64| match n {
        4 => "up:MLAU400000".to_owned(),
        5 => "up:MLAU500000@9876543/MXP123451".to_owned(),
        6 | 7 => format!("MLA600000/{}", 174_997_747_223 + n),
        _ => format!("MLA{}", 500_000 + n),
    };
    let shopify_listings: Vec<String> = (0..N_SKUS).map(|n| format!(r#""{}": "{}""#, sku(n), gid(n))).collect();
    let meli_listings: Vec<String> = (0..N_SKUS).map(|n| format!(r#""{}": "{}""#, sku(n), mla(n))).collect();
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("channels.json");
    let (channels, settings) = channels_in(
        &path,
        format!(
            r#"[
              {{"name": "shopify", "requests_per_second": 500,
                "adapter": {{"kind": "shopify", "base_url": "{shopify}", "location_id": "gid://shopify/Location/1", "access_token_env": "SHOPIFY_TOKEN"}},
                "stock": {{"buffer": 2}}, "listings": {{{shopify_listings}}}}},
              {{"name": "amazon", "requests_per_second": 500, "read_back_settle_ms": 3000,
                "adapter": {{"kind": "amazon", "base_url": "{amazon}", "token_url": "{amazon}/auth/o2/token", "seller_id": "A2SELLER", "marketplace_id": "ATVPDKIKX0DER", "client_id": "c", "client_secret_env": "AMAZON_SECRET", "refresh_token_env": "AMAZON_REFRESH"}},
                "stock": {{"cap": 15}}}},
              {{"name": "walmart", "requests_per_second": 500,
                "adapter": {{"kind": "walmart", "base_url": "{walmart}", "token_url": "{walmart}/v3/token", "client_id": "c", "client_secret_env": "WALMART_SECRET"}}}},
              {{"name": "ebay", "requests_per_second": 500,
                "adapter": {{"kind": "ebay", "base_url": "{ebay}", "token_url": "{ebay}/identity/v1/oauth2/token", "client_id": "c", "client_secret_env": "EBAY_SECRET", "refresh_token_env": "EBAY_REFRESH"}},
                "stock": {{"share_percent": 50}}}},
              {{"name": "mercadolibre", "requests_per_second": 500,
                "adapter": {{"kind": "mercadolibre", "base_url": "{meli}", "token_url": "{meli}/oauth/token", "client_id": "c", "client_secret_env": "ML_SECRET", "refresh_token_env": "ML_REFRESH", "refresh_token_file": "{ml_token}"}},
                "listings": {{{meli_listings}}}}}
            ]"#,
            shopify = shopify.base_url,
            amazon = amazon.base_url,
            walmart = walmart.base_url,
            ebay = ebay.base_url,
            meli = meli.base_url,
            shopify_listings = shopify_listings.join(", "),
            meli_listings = meli_listings.join(", "),
            ml_token = directory.path().join("ml.token").display(),
        ),
    );
    let Harness { sqlite, store, metrics, work, built, reconcilers: sweeping } =
        Harness::start(directory.path(), channels, Duration::from_millis(100), 10).await;
    assert_eq!(sweeping.len(), 5, "every marketplace can be read back");
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for publisher in publishers(built, &settings, Arc::clone(&store) as Arc<dyn OutboxStore>, &metrics, &work) {
        let (shutdown, never) = (shutdown.clone(), CancellationToken::new());
        tasks.push(tokio::spawn(async move {
            publisher.run(shutdown, never).await.expect("publisher");
        }));
    }
    for reconciler in sweeping {
        tasks.push(tokio::spawn(reconciler.run(shutdown.clone())));
    }
    store.apply_batch(&events(N_SKUS)).await.expect("apply");
    work.notify();

    // What each platform should hold of SKU n, by its channel's rules.
    let expected = |n: u64| -> HashMap<&str, (String, i64)> {
        let catalog = quantity(n);
        HashMap::from([
            ("shopify", (gid(n), catalog - 2)),
            ("amazon", (sku(n), catalog.min(15))),
            ("walmart", (sku(n), catalog)),
            ("ebay", (sku(n), catalog / 2)),
            ("mercadolibre", (mla(n), catalog)),
        ])
    };
    let platforms =
        [("shopify", &shopify), ("amazon", &amazon), ("walmart", &walmart), ("ebay", &ebay), ("mercadolibre", &meli)];
    let all_hold = || {
        (0..N_SKUS).all(|n| {
            let expected = expected(n);
            platforms.iter().all(|(name, platform)| {
                let (listing, quantity) = &expected[name];
                platform.quantity(listing) == Some(*quantity)
            })
        })
    };
    eventually(Duration::from_secs(30), "every platform holds what its rules give", all_hold).await;

    // Several sweeps over channels that hold the truth: nothing is drift, though reads were
    // throttled and failed.
    let sweeps = |channel: &str| metrics.reconcile_sweeps.with_label_values(&[channel, "complete"]).get();
    let read_errors =
        |channel: &str, kind: &str| metrics.reconcile_read_errors.with_label_values(&[channel, kind]).get();
    let before: Vec<u64> = platforms.iter().map(|(name, _)| sweeps(name)).collect();
    eventually(
        Duration::from_secs(30),
        "two more complete sweeps of every channel, reads throttled and failed",
        || {
            platforms.iter().zip(&before).all(|((name, _), before)| sweeps(name) >= before + 2)
                && read_errors("shopify", "throttled") > 0
                && read_errors("ebay", "throttled") > 0
                && read_errors("walmart", "transient") > 0
        },
    )
    .await;
    let corrected = |channel: &str| metrics.drifts_corrected.with_label_values(&[channel]).get();
    for (name, _) in &platforms {
        assert_eq!(corrected(name), 0, "{name}: a channel that holds the truth has no drift");
    }

    // Behind the channels' backs: edits on four platforms, a listing removed on eBay.
    shopify.edit(&gid(1), 99);
    amazon.edit(&sku(2), 0);
    walmart.edit(&sku(3), 50);
    ebay.remove(&sku(4));
    meli.edit(&mla(5), 77);
    meli.edit(&mla(7), 2);
    let edited_at = chrono::Utc::now();
    eventually(Duration::from_secs(30), "every drift is corrected", all_hold).await;
    for (name, _) in &platforms {
        assert!(corrected(name) >= 1, "{name}: its drift was corrected");
    }
    let amazon_key =
        ItemKey { tenant: TenantId::parse("canary").expect("tenant"), sku: Sku::parse(&sku(2)).expect("sku") };
    let amazon_drift = sqlite.item_drifts(amazon_key.item_id(), 10).await.expect("drifts");
    let waited = amazon_drift[0].detected_at - edited_at;
    assert!(
        waited >= chrono::Duration::milliseconds(3_000),
        "Amazon's difference was corrected after {waited}, before its settle time"
    );
    let kinds = |drifts: Vec<catalog_store::DriftRecord>| -> Vec<(String, DriftKind, Option<i64>)> {
        drifts.into_iter().map(|drift| (drift.channel, drift.kind, drift.shown.map(|shown| shown.quantity))).collect()
    };
    let mut drifts = Vec::new();
    for n in 0..N_SKUS {
        let key =
            ItemKey { tenant: TenantId::parse("canary").expect("tenant"), sku: Sku::parse(&sku(n)).expect("sku") };
        drifts.push(kinds(sqlite.item_drifts(key.item_id(), 10).await.expect("drifts")));
    }
    assert_eq!(drifts[1], [("shopify".to_owned(), DriftKind::QuantityDiffers, Some(99))]);
    assert_eq!(drifts[2], [("amazon".to_owned(), DriftKind::QuantityDiffers, Some(0))]);
    assert_eq!(drifts[4], [("ebay".to_owned(), DriftKind::Missing, None)]);
    assert_eq!(drifts[5], [("mercadolibre".to_owned(), DriftKind::QuantityDiffers, Some(77))]);
    assert_eq!(drifts[7], [("mercadolibre".to_owned(), DriftKind::QuantityDiffers, Some(2))]);
    assert!(drifts[0].is_empty(), "an item nobody touched has no drift");

    shutdown.cancel();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("stops").expect("task");
    }
}

/// Walmart reads one SKU per request but lists its whole catalog 50 SKUs a page: a sweep
/// reads the list, then asks about each SKU the list does not show as expected (an edit, a
/// removal) before correcting it, and about nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walmart_is_swept_through_its_catalog_list_and_asked_only_about_the_differences() {
    const SKUS: u64 = 120;
    let walmart = Marketplace::start(Platform::Walmart, Faults::default()).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let (channels, settings) = channels_in(
        &directory.path().join("channels.json"),
        format!(
            r#"[{{"name": "walmart", "requests_per_second": 1000,
                  "adapter": {{"kind": "walmart", "base_url": "{walmart}", "token_url": "{walmart}/v3/token", "client_id": "c", "client_secret_env": "WALMART_SECRET"}}}}]"#,
            walmart = walmart.base_url
        ),
    );
    let Harness { sqlite, store, metrics, work, built, mut reconcilers } =
        Harness::start(directory.path(), channels, Duration::from_secs(60), 3).await;
    let reconciler = reconcilers.remove(0);
    let publish = |built| {
        let shutdown = CancellationToken::new();
        let publisher =
            publishers(built, &settings, Arc::clone(&store) as Arc<dyn OutboxStore>, &metrics, &work).remove(0);
        let (stop, never) = (shutdown.clone(), CancellationToken::new());
        (shutdown, tokio::spawn(async move { publisher.run(stop, never).await.expect("publisher") }))
    };
    let (stop_publishing, publishing) = publish(built);
    store.apply_batch(&events(SKUS)).await.expect("apply");
    work.notify();
    let all_hold = || (0..SKUS).all(|n| walmart.quantity(&sku(n)) == Some(quantity(n)));
    eventually(Duration::from_secs(30), "Walmart holds every SKU", all_hold).await;
    // Walmart holds a quantity before its answer reaches the publisher: stop publishing only
    // once every send is recorded (nothing waits), or the last round is cut short, given
    // back unrecorded, and the sweep compares only the items recorded before it.
    let recorded = async {
        while store.outbox_depth().await.expect("outbox depth").iter().any(|depth| depth.pending > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), recorded).await.expect("every send recorded");
    stop_publishing.cancel();
    publishing.await.expect("publisher stops");

    // A sweep over a channel that holds the truth: three pages of the list and nothing else.
    let before = walmart.n_requests();
    let report = reconciler.sweep().await.expect("sweep");
    assert_eq!(walmart.n_requests() - before, 3, "ceil(120 / 50) list pages, no SKU asked about: {report:?}");
    assert_eq!((report.listed, report.items_compared, report.drifts), (SKUS, SKUS, 0));

    // Two edits and a removal behind the channel's back: each asked about, then corrected.
    walmart.edit(&sku(7), 1);
    walmart.edit(&sku(99), 1_000);
    walmart.remove(&sku(64));
    let before = walmart.n_requests();
    let report = reconciler.sweep().await.expect("sweep");
    assert_eq!(walmart.n_requests() - before, 3 + 3, "the list, then one read per difference: {report:?}");
    assert_eq!((report.items_compared, report.drifts, report.corrected), (SKUS, 3, 3));
    let drift_kinds = |n: u64| {
        let key =
            ItemKey { tenant: TenantId::parse("canary").expect("tenant"), sku: Sku::parse(&sku(n)).expect("sku") };
        let sqlite = Arc::clone(&sqlite);
        async move {
            let drifts = sqlite.item_drifts(key.item_id(), 10).await.expect("drifts");
            drifts.into_iter().map(|drift| (drift.kind, drift.shown.map(|shown| shown.quantity))).collect::<Vec<_>>()
        }
    };
    assert_eq!(drift_kinds(7).await, [(DriftKind::QuantityDiffers, Some(1))]);
    assert_eq!(drift_kinds(99).await, [(DriftKind::QuantityDiffers, Some(1_000))]);
    assert_eq!(drift_kinds(64).await, [(DriftKind::Missing, None)]);
}
