//! Reconciliation: every few seconds, read back what a channel shows beside the store's own
//! pages in item id order (the storefront's list, page by page; a marketplace's quantities,
//! asked for the listings of each page, or first read from its catalog list and asked only
//! where they differ, `lookup`), and correct every drift
//! (`catalog_core::detect_drift`) as a new item version published the normal way. Detection
//! plus the next publish round is what bounds the time a channel shows something wrong
//! (decisions 0016 and 0022).

mod lookup;
mod pacer;
mod read;
mod recurring;
mod suspects;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalog_core::{
    detect_drift, version_out_of_reach, ChannelRules, Classify, Expected, FailureClass, Shown, TenantId,
};
use catalog_publish::{ChannelHold, ChannelReader, ReadBack, ReadBackError, ShownItem, WorkSignal};
use catalog_store::{ChannelItem, DriftCorrection, ReconcileStore, StoreError};
use tokio_util::sync::CancellationToken;

use crate::channels::BuiltChannel;
use crate::metrics::Metrics;
use pacer::Pacer;
use recurring::Corrected;
use suspects::Suspects;

/// How often and how fast a channel is reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// Pause between the end of one sweep and the start of the next.
    pub interval: Duration,
    /// Items per page, on both sides (at most the contract's 1,000).
    pub page_size: usize,
    /// Read-back requests per second at most: reconciliation must leave the channel's rate
    /// limit to publishing.
    pub requests_per_second: u32,
    /// Attempts at a throttled or failed request, the first included, before the sweep is
    /// abandoned (it starts again after `interval`).
    pub max_attempts: u32,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self { interval: Duration::from_secs(2), page_size: 1_000, requests_per_second: 40, max_attempts: 5 }
    }
}

/// What one sweep found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub tenants: u64,
    pub items_compared: u64,
    /// Differences corrected: the item got a new version, queued on its channels.
    pub drifts: u64,
    pub corrected: u64,
    /// Differences not corrected because the item had moved on since the sweep read it: the
    /// channel showed a version in flight, not drift (counted, never alerted on).
    pub moved_on: u64,
    /// Items the channel shows that the catalog does not hold (reported, not corrected).
    pub unknown: u64,
    /// Differences seen on a channel that applies updates asynchronously, not corrected
    /// until seen again after its settle time.
    pub waiting: u64,
    /// Listings read from the platform's list of its whole catalog, when it has one.
    pub listed: u64,
    /// Read requests paced: for a platform whose read takes more than one request, the most
    /// it may take (`LookupReadBack::requests_per_read`).
    pub requests: u64,
}

/// Why a sweep stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    #[error("reading back the channel: {0}")]
    ReadBack(#[from] ReadBackError),
    /// Tenants the channel would not read back; the others were swept.
    #[error("reading back {failed} of {tenants} tenants failed (the others were swept); the first: {first}")]
    Tenants { failed: u64, tenants: u64, first: ReadBackError },
}

impl Classify for SweepError {
    fn failure_class(&self) -> FailureClass {
        match self {
            SweepError::Store(error) => error.failure_class(),
            SweepError::ReadBack(error) | SweepError::Tenants { first: error, .. } => error.failure_class(),
        }
    }
}

/// Reconciles one channel.
#[derive(Debug)]
pub struct Reconciler {
    channel: String,
    store: Arc<dyn ReconcileStore>,
    reader: ChannelReader,
    settings: ReconcileSettings,
    metrics: Metrics,
    /// Woken when corrections were queued, so the publisher does not wait for its poll.
    work: Option<WorkSignal>,
    /// The channel's listings and stock rules: what it should show.
    rules: ChannelRules,
    /// Differences waiting for their confirmation (a channel with a settle time).
    suspects: Mutex<Suspects>,
    /// The channel's throttling hold, shared with its publisher (`held_by`).
    hold: Arc<ChannelHold>,
    /// Items corrected lately: a drift found on one again is recurring.
    corrected: Mutex<Corrected>,
    /// The settle time the channels file gives, in place of the adapter's.
    settle: Option<Duration>,
}

impl Reconciler {
    pub fn new(
        channel: impl Into<String>,
        store: Arc<dyn ReconcileStore>,
        reader: ChannelReader,
        settings: ReconcileSettings,
        metrics: Metrics,
        work: Option<WorkSignal>,
    ) -> Self {
        Self {
            channel: channel.into(),
            store,
            reader,
            settings,
            metrics,
            work,
            rules: ChannelRules::default(),
            suspects: Mutex::default(),
            hold: Arc::new(ChannelHold::default()),
            corrected: Mutex::default(),
            settle: None,
        }
    }

    /// Waits out, and extends, the channel's throttling hold `hold`, the publisher's too: a 429
    /// either meets is waited out by both, as the contract asks ("wait at least that long").
    pub fn held_by(mut self, hold: Arc<ChannelHold>) -> Self {
        self.hold = hold;
        self
    }

    /// Corrects a difference only once it lasted `settle` (`None`: the adapter's own).
    pub fn with_settle(mut self, settle: Option<Duration>) -> Self {
        self.settle = settle;
        self
    }

    /// Compares what the channel shows with what its stock rules offer it, not the catalog
    /// quantity, and leaves alone the SKUs it does not list.
    pub fn with_rules(mut self, rules: ChannelRules) -> Self {
        self.rules = rules;
        self
    }

    /// Sweeps until `shutdown`, pausing `interval` between sweeps. A failed sweep is
    /// counted and logged by its class and tried again after the pause, doubled after each
    /// failed sweep in a row up to `MAX_PAUSE_AFTER_FAILURES`: a channel that cannot be read
    /// back (a storefront without the read-back endpoints) was asked, and warned about, every
    /// two seconds for ever.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failed_in_a_row: u32 = 0;
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                result = self.sweep() => result,
                () = shutdown.cancelled() => return,
            };
            let seconds = started.elapsed().as_secs_f64();
            self.metrics.reconcile_sweep_seconds.with_label_values(&[&self.channel]).observe(seconds);
            match result {
                Ok(report) => {
                    failed_in_a_row = 0;
                    self.metrics.reconcile_sweeps.with_label_values(&[&self.channel, "complete"]).inc();
                    if report.drifts > 0 || report.unknown > 0 || report.waiting > 0 {
                        tracing::info!(
                            channel = %self.channel,
                            items = report.items_compared,
                            drifts = report.drifts,
                            corrected = report.corrected,
                            unknown = report.unknown,
                            waiting = report.waiting,
                            listed = report.listed,
                            seconds,
                            "reconciliation found drift"
                        );
                    }
                }
                Err(error) => {
                    failed_in_a_row = failed_after(failed_in_a_row, &error);
                    let class = error.failure_class();
                    self.metrics.reconcile_sweeps.with_label_values(&[&self.channel, class.as_str()]).inc();
                    let pause_ms = pause_after(self.settings.interval, failed_in_a_row).as_millis() as u64;
                    tracing::warn!(channel = %self.channel, %error, class = class.as_str(), failed_in_a_row, pause_ms, "reconciliation sweep stopped; trying again");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(pause_after(self.settings.interval, failed_in_a_row)) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// One pass over every tenant the channel serves.
    pub async fn sweep(&self) -> Result<SweepReport, SweepError> {
        let rate = self.settings.requests_per_second.max(1);
        let mut gap = Duration::from_secs(1) / rate;
        if let ChannelReader::Lookup(reader) = &self.reader {
            gap = gap.max(reader.read_interval());
        }
        let mut pacer = Pacer { gap, due: None, requests: 0 };
        let mut report = SweepReport::default();
        self.suspects.lock().expect("suspects").start_sweep();
        let tenants = self.store.reconcile_tenants(&self.channel).await?;
        // A platform's list of its whole catalog is read once for all the tenants it serves.
        let listed = match &self.reader {
            ChannelReader::Lookup(reader) if !tenants.is_empty() => match reader.catalog_list() {
                Some(list) => Some(self.read_catalog(list, &mut pacer, &mut report).await?),
                None => None,
            },
            _ => None,
        };
        // A tenant the channel will not read back (refused, malformed) is skipped, not the end
        // of the sweep: the tenants after it are healed all the same, and the sweep fails at
        // its end with the first such error. A channel that throttles or is down (its retries
        // spent) stops the sweep there: asking it for every other tenant would only load it.
        let (mut first_failure, mut failed): (Option<ReadBackError>, u64) = (None, 0);
        for tenant in tenants {
            report.tenants += 1;
            let swept = match &self.reader {
                ChannelReader::List(reader) => {
                    self.sweep_tenant(reader.as_ref(), &tenant, &mut pacer, &mut report).await
                }
                ChannelReader::Lookup(reader) => {
                    self.look_up_tenant(reader.as_ref(), listed.as_ref(), &tenant, &mut pacer, &mut report).await
                }
            };
            match swept {
                Ok(()) => {}
                Err(SweepError::ReadBack(error @ (ReadBackError::Refused { .. } | ReadBackError::Malformed(_)))) => {
                    tracing::warn!(channel = %self.channel, tenant = %tenant, %error, class = error.failure_class().as_str(), "reading back one tenant failed; sweeping the others");
                    failed += 1;
                    first_failure.get_or_insert(error);
                }
                Err(error) => return Err(error),
            }
        }
        if let Some(error) = first_failure {
            // What the failed tenants hold was not seen: the differences waiting for their
            // confirmation are kept for the next sweep, as after any failed sweep.
            return Err(SweepError::Tenants { failed, tenants: report.tenants, first: error });
        }
        self.corrected.lock().expect("corrected").forget_old(Instant::now());
        let mut suspects = self.suspects.lock().expect("suspects");
        suspects.end_sweep();
        report.waiting = suspects.waiting() as u64;
        report.requests = pacer.requests;
        Ok(report)
    }

    /// Merges the store's pages with the channel's, both in item id order.
    async fn sweep_tenant(
        &self,
        reader: &dyn ReadBack,
        tenant: &TenantId,
        pacer: &mut Pacer,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let page_size = self.settings.page_size.clamp(1, catalog_publish::MAX_PAGE);
        let mut shown: VecDeque<ShownItem> = VecDeque::new();
        // `Some(cursor)` while the channel has more pages.
        let mut channel_next: Option<Option<String>> = Some(None);
        let mut store_after = None;
        loop {
            let page = self.store.reconcile_page(&self.channel, tenant, store_after, page_size).await?;
            let Some(last) = page.last() else { break };
            if let Some(after) = store_after.filter(|_| !shown.is_empty() || channel_next.is_none()) {
                // What the channel showed beyond the last page (or that its list ended) was
                // read before this page of the store: compared with it, an item published in
                // between would look behind, or missing. It is read again, after the store.
                shown.clear();
                channel_next = Some(Some(after.to_string()));
            }
            store_after = Some(last.item_id);
            let mut corrections = Vec::new();
            for item in &page {
                // The catalog's ids (hyphenated lower-case UUIDs) sort as their bytes do in any
                // collation the channel's list may use; another system's ids may sort anywhere
                // among them, and are unknown wherever they are.
                let id = item.item_id.to_string();
                // Read the channel far enough to know whether it shows this item.
                while shown.iter().rev().find(|entry| entry.item_id.is_some()).is_none_or(|last| last.id < id) {
                    let Some(after) = channel_next.take() else { break };
                    let next = self.read_page(reader, tenant, after, page_size, pacer).await?;
                    channel_next = next.next.map(Some);
                    shown.extend(next.items);
                }
                while shown.front().is_some_and(|front| front.item_id.is_none() || front.id < id) {
                    shown.pop_front();
                    report.unknown += 1;
                }
                let on_channel = match shown.front() {
                    Some(front) if front.id == id => shown.pop_front().map(|front| front.shown),
                    _ => None,
                };
                report.items_compared += 1;
                // What the channel shows of a SKU it does not list is never read (nor drift).
                if self.rules.listing_of(&item.sku).is_none() {
                    continue;
                }
                let on_channel =
                    on_channel.transpose().map_err(|error| self.counted(ReadBackError::Malformed(error)))?;
                // A storefront applies what it accepts at once: no settle unless the channels
                // file gives one.
                let settle = self.settle.unwrap_or(Duration::ZERO);
                if let Some(correction) = self.compare(item, on_channel).filter(|_| self.confirmed(item, settle)) {
                    corrections.push(correction);
                }
            }
            self.correct(&corrections, report).await?;
            if page.len() < page_size {
                break;
            }
        }
        // What the channel shows beyond the catalog's last item is unknown to the catalog.
        report.unknown += shown.len() as u64;
        while let Some(after) = channel_next {
            let next = self.read_page(reader, tenant, after, page_size, pacer).await?;
            report.unknown += next.items.len() as u64;
            channel_next = next.next.map(Some);
        }
        Ok(())
    }

    /// The drift `shown` is from what the channel's rules offer it of `item`, if any. A SKU
    /// the channel does not list is never drift.
    /// A version beyond reach is counted (`version_out_of_reach`) and said on every sweep
    /// until an operator clears it on the channel: no correction can pass it.
    fn compare(&self, item: &ChannelItem, shown: Option<Shown>) -> Option<DriftCorrection> {
        self.rules.listing_of(&item.sku)?;
        let quantity = self.rules.stock.apply(item.quantity).0;
        let expected = expected(item, quantity);
        if let Some(version) = version_out_of_reach(expected, shown) {
            self.metrics.drifts_detected.with_label_values(&[&self.channel, "version_out_of_reach"]).inc();
            tracing::error!(
                channel = %self.channel,
                item_id = %item.item_id,
                sku = %item.sku,
                channel_version = version,
                catalog_version = item.version,
                "the channel holds a version of the item beyond any the catalog can issue: clear it on the channel (no correction can pass it)"
            );
            return None;
        }
        Some(DriftCorrection::of(item.item_id, item.version, detect_drift(expected, shown)?))
    }

    /// Whether a difference of `item` is to be corrected now, or waits for its confirmation
    /// after `settle` (`Suspects`).
    fn confirmed(&self, item: &ChannelItem, settle: Duration) -> bool {
        self.suspects.lock().expect("suspects").confirm(item.item_id, item.version, Instant::now(), settle)
    }

    async fn correct(&self, corrections: &[DriftCorrection], report: &mut SweepReport) -> Result<(), SweepError> {
        if corrections.is_empty() {
            return Ok(());
        }
        let corrected = self.store.correct_drifts(&self.channel, corrections).await?;
        let applied =
            |correction: &&DriftCorrection| corrected.binary_search_by_key(&correction.item_id.0, |id| id.0).is_ok();
        report.drifts += corrected.len() as u64;
        report.corrected += corrected.len() as u64;
        report.moved_on += (corrections.len() - corrected.len()) as u64;
        self.metrics.drifts_corrected.with_label_values(&[&self.channel]).inc_by(corrected.len() as u64);
        self.metrics
            .drift_corrections_moved_on
            .with_label_values(&[&self.channel])
            .inc_by((corrections.len() - corrected.len()) as u64);
        let now = Instant::now();
        for correction in corrections.iter().filter(applied) {
            self.metrics.drifts_detected.with_label_values(&[&self.channel, correction.kind.as_str()]).inc();
            if self.corrected.lock().expect("corrected").again(correction.item_id, now) {
                self.metrics.drifts_recurring.with_label_values(&[&self.channel]).inc();
            }
            tracing::info!(
                channel = %self.channel,
                item_id = %correction.item_id,
                kind = correction.kind.as_str(),
                shown_quantity = correction.shown.map(|shown| shown.quantity),
                shown_version = correction.shown.map(|shown| shown.version),
                catalog_version = correction.seen_version,
                corrected_version = correction.corrected_version,
                "drift corrected"
            );
        }
        if let Some(work) = &self.work {
            work.notify();
        }
        Ok(())
    }
}

/// Failed sweeps in a row after one that failed with `error`. A sweep that failed only some
/// tenants (the channel refuses to read them back) swept the others: the channel answers,
/// and backing off for those tenants' sake left every other tenant's drift unhealed for up
/// to `MAX_PAUSE_AFTER_FAILURES`, sweep after sweep, for as long as one tenant failed.
fn failed_after(failed_in_a_row: u32, error: &SweepError) -> u32 {
    match error {
        SweepError::Tenants { failed, tenants, .. } if failed < tenants => 0,
        _ => failed_in_a_row.saturating_add(1),
    }
}

/// The longest pause after failed sweeps: a channel that reads back again is swept within it.
const MAX_PAUSE_AFTER_FAILURES: Duration = Duration::from_secs(300);

/// The pause after a sweep, the `failed_in_a_row`-th failed one in a row (0: it succeeded):
/// `interval`, doubled for each failure after the first, at most `MAX_PAUSE_AFTER_FAILURES`
/// (never less than `interval`, however long that is).
fn pause_after(interval: Duration, failed_in_a_row: u32) -> Duration {
    let doublings = failed_in_a_row.saturating_sub(1).min(16);
    interval.max(interval.saturating_mul(1 << doublings).min(MAX_PAUSE_AFTER_FAILURES))
}

/// One reconciler per channel that can be read back (the storefront contract's list, a
/// marketplace's quantities), sharing the channel's adapter (its client and access tokens),
/// comparing against what the channel's stock rules offer it; none for the log channel,
/// which shows nothing to read back.
pub fn reconcilers(
    channels: &[BuiltChannel],
    store: Arc<dyn ReconcileStore>,
    settings: ReconcileSettings,
    metrics: &Metrics,
    work: &WorkSignal,
) -> Vec<Reconciler> {
    channels
        .iter()
        .filter_map(|built| {
            let config = &built.channel.config;
            let Some(reader) = built.reader.clone() else {
                tracing::info!(channel = %config.name, adapter = built.channel.adapter.kind(), "not reconciled: the adapter cannot read the channel back");
                return None;
            };
            let reconciler =
                Reconciler::new(config.name.clone(), Arc::clone(&store), reader, settings, metrics.clone(), Some(work.clone()));
            let reconciler = reconciler.with_rules(config.rules.clone()).with_settle(built.channel.read_back_settle);
            Some(reconciler.held_by(Arc::clone(&built.hold)))
        })
        .collect()
}

/// What a channel is expected to hold of `item`, `quantity` being the catalog's after the
/// channel's stock rules. With nothing on its way to the channel (no queued version, no open
/// dead letter), a version it did not accept was given up on, not in flight: the channel is
/// compared with the current version (`Expected::settled`), or a resolved dead letter left it
/// showing the older quantity until the item next changed.
pub(crate) fn expected(item: &ChannelItem, quantity: i64) -> Expected {
    let expected = Expected { quantity, version: item.version, accepted: item.accepted };
    if item.pending {
        expected
    } else {
        expected.settled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_sweeps_in_a_row_double_the_pause_up_to_five_minutes() {
        let pauses: Vec<u64> = (0..12).map(|failed| pause_after(Duration::from_secs(2), failed).as_secs()).collect();
        assert_eq!(pauses, [2, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(pause_after(Duration::from_secs(2), u32::MAX), MAX_PAUSE_AFTER_FAILURES);
        // An interval longer than the cap is kept.
        assert_eq!(pause_after(Duration::from_secs(600), 5), Duration::from_secs(600));
    }

    #[test]
    fn a_sweep_that_swept_some_tenants_backs_nothing_off() {
        let refused = || ReadBackError::Refused { status: 403, body: "not yours".to_owned() };
        let some = SweepError::Tenants { failed: 1, tenants: 3, first: refused() };
        assert_eq!(failed_after(6, &some), 0, "the others are swept at the interval");
        let all = SweepError::Tenants { failed: 3, tenants: 3, first: refused() };
        assert_eq!(failed_after(6, &all), 7);
        assert_eq!(failed_after(6, &SweepError::ReadBack(ReadBackError::Transient("down".to_owned()))), 7);
    }
}
