//! Auto-heal as the worker runs it: passes on a schedule requeue open dead letters, then
//! quarantine the ones that keep failing, and a later accepted version resolves them; each
//! counted once in the metrics and shown in the gauges.

use std::sync::Arc;
use std::time::Duration;

use catalog_app::channels::PublishSettings;
use catalog_app::publishing::{heal_dead_letters, publishers, report_outbox, HealSettings};
use catalog_app::Metrics;
use catalog_publish::WorkSignal;
use catalog_sqlite::SqliteStore;
use catalog_store::prelude::*;
use catalog_store::{BatchInput, IncomingEvent, OutboxClaim, PublishOutcome, PublishRecord, SourceRef, StoreConfig};
use tokio_util::sync::CancellationToken;

use crate::eventually;

/// Sets `sku` of tenant `canary` to `quantity`, as event `n`.
async fn set(store: &dyn CatalogStore, n: u64, sku: &str, quantity: i64) {
    let raw = format!(
        r#"{{"event_id":"00000000-0000-0000-0000-{n:012}","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"{sku}","quantity":{quantity},"updated_at":"2026-06-01T12:00:{n:02}Z"}}"#
    )
    .into_bytes();
    let event = IncomingEvent::received(
        raw,
        chrono::Utc::now(),
        SourceRef { source: "test".into(), partition: 0, offset: n as i64 },
        None,
    );
    store.apply_batch(&BatchInput::new(vec![event], vec![])).await.expect("apply");
}

/// Claims what is due on the storefront and records each as dead-lettered: the channel
/// refused them again.
async fn refuse_all_due(store: &dyn CatalogStore) -> usize {
    let claimed = store.claim_outbox("storefront", &OutboxClaim::immediate(10, Duration::from_secs(30))).await;
    let records: Vec<PublishRecord> = claimed
        .expect("claim")
        .iter()
        .map(|entry| PublishRecord {
            claim: entry.claim,
            item_id: entry.item.id(),
            channel: entry.channel.clone(),
            version: entry.item.version(),
            attempt: entry.attempts + 1,
            outcome: PublishOutcome::DeadLettered,
            status: Some(422),
            latency_ms: Some(1),
            error: Some("HTTP 422".into()),
            dead_letter_reason: Some("rejected_422".into()),
            body: Some("unknown sku".into()),
            sent: None,
        })
        .collect();
    store.record_publishes(&records).await.expect("record");
    records.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_requeue_then_quarantine_and_a_later_version_resolves() {
    let directory = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn CatalogStore> = Arc::new(
        SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("open"),
    );
    set(&*store, 1, "A-1", 4).await;
    set(&*store, 2, "B-1", 4).await;
    assert_eq!(refuse_all_due(&*store).await, 2);

    let metrics = Metrics::new();
    let heals = |result: &str| metrics.dead_letter_heals.with_label_values(&["storefront", result]).get();
    let shutdown = CancellationToken::new();
    let settings = HealSettings { interval: Duration::from_millis(50), max_heals: 1 };
    let healing = tokio::spawn(heal_dead_letters(
        Arc::clone(&store) as Arc<dyn OutboxStore>,
        settings,
        metrics.clone(),
        WorkSignal::new(),
        shutdown.clone(),
    ));
    eventually(Duration::from_secs(20), "both letters requeued", || heals("requeued") == 2).await;
    // The storefront refuses them again: the next pass gives up on them.
    assert_eq!(refuse_all_due(&*store).await, 2);
    eventually(Duration::from_secs(20), "both letters quarantined", || heals("quarantined") == 2).await;
    shutdown.cancel();
    healing.await.expect("the heal loop returns on shutdown");
    assert_eq!(heals("requeued"), 2, "a quarantined letter is not requeued again");

    let stopped = CancellationToken::new();
    stopped.cancel();
    report_outbox(Arc::clone(&store) as Arc<dyn OutboxStore>, vec!["storefront".into()], metrics.clone(), stopped)
        .await;
    assert_eq!(metrics.dead_letters_open.with_label_values(&["storefront"]).get(), 2);
    assert_eq!(metrics.dead_letters_quarantined.with_label_values(&["storefront"]).get(), 2);

    // A changes again and the channel (the log) takes it: its letter is resolved.
    set(&*store, 3, "A-1", 5).await;
    let settings = PublishSettings {
        storefront: None,
        channels_file: None,
        lease: Duration::from_secs(30),
        settle: Duration::ZERO,
        max_wait: Duration::ZERO,
        max_attempts: 8,
    };
    let publisher =
        publishers(Vec::new(), &settings, Arc::clone(&store) as Arc<dyn OutboxStore>, &metrics, &WorkSignal::new())
            .pop()
            .expect("one publisher");
    let drained = CancellationToken::new();
    drained.cancel();
    assert_eq!(publisher.run(CancellationToken::new(), drained).await.expect("drained"), 1);
    assert_eq!(metrics.dead_letters_resolved.with_label_values(&["storefront", "published_later"]).get(), 1);
    assert_eq!(store.open_dead_letters(10).await.expect("open letters").len(), 1, "B's letter stays quarantined");
}
