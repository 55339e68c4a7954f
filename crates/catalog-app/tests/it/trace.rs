//! The tracer when its store fails part way through a round: the checks made until then are
//! recorded and counted once, and its rolling sweep goes on from the first item it did not
//! check; when recording fails too, nothing is counted and the sweep stays where it was.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use catalog_app::signals::{judge_all, Tracer, TracerSettings};
use catalog_app::Metrics;
use catalog_core::{ItemId, PartitionProgress, SignalSettings, TenantId};
use catalog_sqlite::SqliteStore;
use catalog_store::prelude::*;
use catalog_store::{
    BatchInput, FactsQuery, FactsReport, JournalTail, SignalSample, StoreConfig, StoreError, TraceCheck,
};
use catalog_testkit::{bench_events, incoming};
use chrono::{DateTime, Utc};

/// The signal role of `inner`, as a database that drops its connections for a moment: the
/// `journal_tail_fails_at`-th read of a journal from now (counted from 1; 0 never) and, while
/// `recording_fails`, every recording of checks fail as unavailable.
#[derive(Debug)]
struct Blip {
    inner: Arc<dyn CatalogStore>,
    journal_tail_fails_at: AtomicUsize,
    recording_fails: AtomicBool,
    /// Every marking of unreadable items fails as unavailable.
    marking_fails: AtomicBool,
}

impl Blip {
    fn new(inner: Arc<dyn CatalogStore>) -> Self {
        Self { inner, journal_tail_fails_at: 0.into(), recording_fails: false.into(), marking_fails: false.into() }
    }

    fn unavailable() -> StoreError {
        StoreError::Unavailable("connection reset".to_owned())
    }
}

#[async_trait::async_trait]
impl SignalStore for Blip {
    async fn signal_facts(&self, query: &FactsQuery) -> Result<FactsReport, StoreError> {
        self.inner.signal_facts(query).await
    }
    async fn report_progress(&self, progress: &[PartitionProgress]) -> Result<(), StoreError> {
        self.inner.report_progress(progress).await
    }
    async fn forget_progress(&self, source: &str, partition: &str) -> Result<(), StoreError> {
        self.inner.forget_progress(source, partition).await
    }
    async fn items_to_trace(&self, limit: usize) -> Result<Vec<ItemId>, StoreError> {
        self.inner.items_to_trace(limit).await
    }
    async fn journal_tail(&self, item_id: ItemId, newest: usize) -> Result<Option<JournalTail>, StoreError> {
        let fails_now = self
            .journal_tail_fails_at
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| Some(left.saturating_sub(1)));
        if fails_now == Ok(1) {
            return Err(Self::unavailable());
        }
        self.inner.journal_tail(item_id, newest).await
    }
    async fn sweep_items(&self, after: Option<ItemId>, limit: usize) -> Result<Vec<ItemId>, StoreError> {
        self.inner.sweep_items(after, limit).await
    }
    async fn record_trace_checks(&self, checks: &[TraceCheck]) -> Result<(), StoreError> {
        if self.recording_fails.load(Ordering::SeqCst) {
            return Err(Self::unavailable());
        }
        self.inner.record_trace_checks(checks).await
    }
    async fn mark_unreadable(&self, items: &[ItemId]) -> Result<(), StoreError> {
        if self.marking_fails.load(Ordering::SeqCst) {
            return Err(Self::unavailable());
        }
        self.inner.mark_unreadable(items).await
    }
    async fn record_signal_samples(&self, samples: &[SignalSample]) -> Result<(), StoreError> {
        self.inner.record_signal_samples(samples).await
    }
    async fn signal_samples(
        &self,
        tenant: Option<&TenantId>,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SignalSample>, StoreError> {
        self.inner.signal_samples(tenant, since, limit).await
    }
    async fn gate_samples(
        &self,
        tenant: Option<&TenantId>,
        since: DateTime<Utc>,
        span: chrono::Duration,
    ) -> Result<Vec<catalog_core::GateSample>, StoreError> {
        self.inner.gate_samples(tenant, since, span).await
    }
    async fn prune_signal_samples(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_signal_samples(before).await
    }
}

/// `catalog_trace_checks_total{result="traced"}`, 0 before the first.
fn traced(metrics: &Metrics) -> u64 {
    let prefix = "catalog_trace_checks_total{result=\"traced\"} ";
    metrics.render().lines().find_map(|line| line.strip_prefix(prefix)?.parse().ok()).unwrap_or(0)
}

/// The items with no check recorded, ten minutes on (past the trace grace).
async fn not_checked(store: &dyn CatalogStore) -> u64 {
    let later = Utc::now() + chrono::Duration::minutes(10);
    judge_all(store, &SignalSettings::default(), later).await.expect("judge")[0].untraced_count
}

/// 40 items, a tracer that sweeps them 10 at a time (no changed items first, so that its
/// items are the sweep's, in id order), and the blip it reads through.
async fn forty_items_swept_by_ten() -> (tempfile::TempDir, Arc<dyn CatalogStore>, Arc<Blip>, Tracer, Metrics) {
    let directory = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn CatalogStore> = Arc::new(
        SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("store"),
    );
    let events = incoming(&bench_events(120), "test:trace", Utc::now());
    store.apply_batch(&BatchInput::new(events, Vec::new())).await.expect("apply");
    let n_items = store.items(&TenantId::parse("canary").expect("tenant")).await.expect("items").len();
    assert_eq!(n_items, 40);
    let blip = Arc::new(Blip::new(store.clone()));
    let metrics = Metrics::new();
    let settings = TracerSettings { changed_per_round: 0, sweep_per_round: 10, ..TracerSettings::default() };
    let tracer = Tracer::over(blip.clone(), store.clone(), settings, metrics.clone());
    (directory, store, blip, tracer, metrics)
}

/// The store drops its connection at the fifth item of a round: the four checked are
/// recorded and counted, and the next round sweeps on from the fifth, so that one sweep
/// checks every item once. Before, the round's checks were dropped though counted, and the
/// sweep had moved past the whole page: six items were skipped until the next full sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_lost_part_way_through_a_round_keeps_the_checks_made() {
    let (_directory, store, blip, mut tracer, metrics) = forty_items_swept_by_ten().await;
    blip.journal_tail_fails_at.store(5, Ordering::SeqCst);
    let error = tracer.trace_once().await.expect_err("the round stops at the fifth item");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    assert_eq!(traced(&metrics), 4, "the four checked");
    assert_eq!(not_checked(&*store).await, 36, "the four checked are recorded");

    let mut checked = Vec::new();
    for _ in 0..4 {
        checked.push(tracer.trace_once().await.expect("a round").checked);
    }
    assert_eq!(checked, [10, 10, 10, 6], "the sweep went on from the fifth item");
    assert_eq!(not_checked(&*store).await, 0, "one sweep checked every item, skipping none");
    assert_eq!(traced(&metrics), 40, "each counted once");
}

/// When the store cannot record the checks either, none is counted, and the sweep stays
/// where it was: the next round checks the same page, and counts it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_that_cannot_be_recorded_are_not_counted() {
    let (_directory, store, blip, mut tracer, metrics) = forty_items_swept_by_ten().await;
    blip.journal_tail_fails_at.store(5, Ordering::SeqCst);
    blip.recording_fails.store(true, Ordering::SeqCst);
    tracer.trace_once().await.expect_err("the round stops at the fifth item");
    assert_eq!(traced(&metrics), 0, "nothing recorded, nothing counted");
    assert_eq!(not_checked(&*store).await, 40);

    blip.recording_fails.store(false, Ordering::SeqCst);
    assert_eq!(tracer.trace_once().await.expect("a round").checked, 10);
    assert_eq!(traced(&metrics), 10);
    assert_eq!(not_checked(&*store).await, 30, "the first page, not the second");
    assert_eq!(tracer.trace_once().await.expect("a round").checked, 10);
    assert_eq!(not_checked(&*store).await, 20, "the second page");
}

/// When the checks are recorded but marking the unreadable items fails, the round fails and
/// the sweep still moves on: the next round checks the next page, and no check is counted
/// twice. Before, the sweep stayed, and the next round recorded and counted the same page
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_recorded_before_a_failed_mark_are_not_checked_again() {
    let (_directory, store, blip, mut tracer, metrics) = forty_items_swept_by_ten().await;
    blip.marking_fails.store(true, Ordering::SeqCst);
    tracer.trace_once().await.expect_err("the mark fails");
    assert_eq!((traced(&metrics), not_checked(&*store).await), (10, 30));
    blip.marking_fails.store(false, Ordering::SeqCst);
    assert_eq!(tracer.trace_once().await.expect("a round").checked, 10);
    assert_eq!(traced(&metrics), 20, "the second page, each counted once");
    assert_eq!(not_checked(&*store).await, 20);
}
