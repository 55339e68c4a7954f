//! The launch signals inside the long-running worker: the sampler judges every tenant and
//! overall on an interval (`catalog_core::judge` over the store's facts), keeps each judgement
//! as a sample and sets the signal gauges; the tracer re-derives items from the journal
//! (`catalog_core::check_item`, over the newest rows of each item's journal that settle it)
//! and records each check, so trace coverage is a query; the progress reporter writes what
//! each source partition has waiting, so queue lag is one too.

use std::sync::Arc;
use std::time::Duration;

use catalog_core::{
    judge, CatalogItem, Classify, ClockPolicy, FailureClass, ItemId, JournalReach, SignalSettings, Signals, TenantId,
    TraceGap, MAX_NAMED_ITEMS,
};
use catalog_store::prelude::*;
use catalog_store::{FactsQuery, SignalSample, StoreError, TraceCheck};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::apply::Applier;
use crate::metrics::Metrics;

/// The label the overall judgement's gauges carry instead of a tenant id.
pub const OVERALL_LABEL: &str = "all";

/// The label of the tenant whose id is `all`, which the overall judgement's gauges carry: a
/// value no tenant id can take (`:` is outside `[a-z0-9_-]`). Sharing the label, the tenant's
/// gauges, set after the overall ones, would overwrite them, and a red catalog read green.
pub const TENANT_ALL_LABEL: &str = "tenant:all";

/// The `tenant` label of a judgement's gauges: [`OVERALL_LABEL`] overall, the tenant id
/// otherwise, and [`TENANT_ALL_LABEL`] for the tenant whose id is the overall label.
pub fn signal_tenant_label(tenant: Option<&TenantId>) -> &str {
    match tenant {
        None => OVERALL_LABEL,
        Some(tenant) if tenant.as_str() == OVERALL_LABEL => TENANT_ALL_LABEL,
        Some(tenant) => tenant.as_str(),
    }
}

/// How the sampler judges and how long its history is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerSettings {
    /// Time between two judgements (and samples).
    pub interval: Duration,
    /// Targets, owners and the periods the signals are measured over.
    pub signals: SignalSettings,
    /// Samples older than this are deleted.
    pub keep: Duration,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            signals: SignalSettings::default(),
            keep: Duration::from_secs(30 * 86_400),
        }
    }
}

/// The facts query of `settings` at `now`.
pub fn facts_query(settings: &SignalSettings, now: chrono::DateTime<Utc>) -> FactsQuery {
    FactsQuery {
        now,
        stale_grace: settings.stale_grace,
        publish_window: settings.publish_window,
        trace_grace: settings.trace_grace,
        max_named: MAX_NAMED_ITEMS,
    }
}

/// Judges every tenant and overall at `now` from the store's facts: overall first, then each
/// tenant in id order.
pub async fn judge_all(
    store: &dyn SignalStore,
    settings: &SignalSettings,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<Signals>, StoreError> {
    let facts = store.signal_facts(&facts_query(settings, now)).await?;
    let mut judged = vec![judge(None, &facts.overall, settings, now)];
    judged.extend(facts.tenants.iter().map(|(tenant, facts)| judge(Some(tenant.clone()), facts, settings, now)));
    Ok(judged)
}

/// Judges, samples and sets the gauges every interval.
#[derive(Debug)]
pub struct Sampler {
    store: Arc<dyn CatalogStore>,
    settings: SamplerSettings,
    metrics: Metrics,
}

impl Sampler {
    pub fn new(store: Arc<dyn CatalogStore>, settings: SamplerSettings, metrics: Metrics) -> Self {
        Self { store, settings, metrics }
    }

    /// One round at `now`: judge, keep the samples, set the gauges, drop samples past their
    /// keep. Returns the judgements once the samples are kept and the gauges set: a failed
    /// drop is logged and counted (`catalog_signal_samples_prune_failures_total`,
    /// `CatalogSignalSamplesNotPruned`), and the next round drops them, where an error here
    /// would say the fresh gauges were stale.
    pub async fn sample_once(&self, now: chrono::DateTime<Utc>) -> Result<Vec<Signals>, StoreError> {
        let judged = judge_all(&*self.store, &self.settings.signals, now).await?;
        let samples: Vec<SignalSample> = judged.iter().map(SignalSample::of).collect();
        self.store.record_signal_samples(&samples).await?;
        for signals in &judged {
            let tenant = signal_tenant_label(signals.tenant_id.as_ref());
            for signal in signals.each() {
                let labels = [tenant, signal.name.as_str()];
                self.metrics.signal_value.with_label_values(&labels).set(signal.value);
                let green = i64::from(signal.status == catalog_core::Status::Green);
                self.metrics.signal_green.with_label_values(&labels).set(green);
            }
            if !signals.green {
                tracing::info!(tenant, red = ?signals.red(), untraced = signals.untraced_count, "signals red");
            }
        }
        let keep = chrono::Duration::from_std(self.settings.keep).unwrap_or(chrono::Duration::MAX);
        let before = now.checked_sub_signed(keep).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        if let Err(error) = self.store.prune_signal_samples(before).await {
            self.metrics.retention.signal_samples_prune_failures.inc();
            tracing::warn!(%error, class = error.failure_class().as_str(), "dropping signal samples past their keep failed: this round's samples are kept and its gauges set; the next round drops them");
        }
        Ok(judged)
    }

    /// One round of [`Sampler::run`] at `now`. A failed round is logged, and leaves the
    /// gauges as the last round set them: `catalog_report_last_success_timestamp_seconds
    /// {report="signals"}` says how old they are (`CatalogReportsStale`). Taken off instead, a
    /// red signal's alert would resolve at every failed round.
    pub async fn round(&self, now: chrono::DateTime<Utc>) -> Result<Vec<Signals>, StoreError> {
        let judged = self.sample_once(now).await;
        match &judged {
            Ok(_) => self.metrics.report_succeeded("signals"),
            Err(error) => {
                tracing::warn!(%error, class = error.failure_class().as_str(), "sampling the signals failed: their gauges show the last round's; trying again next interval");
            }
        }
        judged
    }

    /// Samples every interval until `shutdown`; a failed round is logged and the next one
    /// tries again (a gap in the samples is not green for the gate).
    pub async fn run(self, shutdown: CancellationToken) {
        self.metrics.report_started("signals");
        let mut ticks = tokio::time::interval(self.settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let _ = self.round(Utc::now()).await;
        }
    }
}

/// Journal rows the tracer reads of an item first: in a feed of snapshots, enough to hold the
/// latest snapshot of each of a few suppliers' offers.
pub const TAIL_ROWS: usize = 64;

/// How much the tracer checks per round, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracerSettings {
    pub interval: Duration,
    /// Items changed since their last check, per round (the longest-waiting first).
    pub changed_per_round: usize,
    /// Items of the rolling sweep of the whole catalog, per round.
    pub sweep_per_round: usize,
    /// How far a supplier's clock may run ahead of receipt: which rows retention may have
    /// dropped (`catalog_core::JournalReach`).
    pub clock: ClockPolicy,
}

impl Default for TracerSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            changed_per_round: 500,
            sweep_per_round: 200,
            clock: ClockPolicy::default(),
        }
    }
}

/// What one round of the tracer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceRound {
    pub checked: usize,
    pub gaps: usize,
    /// Items whose journal could not be read: not checked this round.
    pub unreadable: usize,
}

/// What a round found before it recorded anything, and how far through its items it went.
#[derive(Debug, Default)]
struct Gathered {
    checks: Vec<TraceCheck>,
    /// Items that could not be read for good: marked untraced (`mark_unreadable`).
    unreadable: Vec<ItemId>,
    /// Items that could not be read, marked or not.
    n_unreadable: usize,
    /// The round's items gone through, from the first: all of them unless it `stopped`.
    n_handled: usize,
    /// The store failure that stopped the round part way through its items.
    stopped: Option<StoreError>,
}

/// Re-derives items from the journal: changed items first, then a bounded page of a
/// rolling sweep of the whole catalog, so a journal row lost after an item's last change is
/// found too.
#[derive(Debug)]
pub struct Tracer {
    signals: Arc<dyn SignalStore>,
    horizon: Arc<dyn RetentionStore>,
    settings: TracerSettings,
    metrics: Metrics,
    /// Where the sweep goes on from: the last item id of it that a kept round went through.
    sweep_after: Option<ItemId>,
}

impl Tracer {
    pub fn new(store: Arc<dyn CatalogStore>, settings: TracerSettings, metrics: Metrics) -> Self {
        Self::over(store.clone(), store, settings, metrics)
    }

    /// The tracer over the two roles of a store it uses: the signals' (items, journals,
    /// checks) and retention's (how far back the journal reaches). A test stands a store
    /// that fails at one exact read in for the first, where a real database cannot be made
    /// to fail there.
    pub fn over(
        signals: Arc<dyn SignalStore>,
        horizon: Arc<dyn RetentionStore>,
        settings: TracerSettings,
        metrics: Metrics,
    ) -> Self {
        Self { signals, horizon, settings, metrics, sweep_after: None }
    }

    /// One round: the changed items, then the next page of the sweep (from the start again
    /// after the last page). A store that becomes unavailable part way through stops the
    /// round, and the checks made until then are recorded all the same: dropped, a blip
    /// would cost the round's work and the next round would check those items again. The
    /// checks are counted in `catalog_trace_checks_total` only once recorded, and the sweep
    /// moves on only past the items of a round that was recorded, so that an item is neither
    /// counted twice nor skipped until the next full sweep.
    pub async fn trace_once(&mut self) -> Result<TraceRound, StoreError> {
        let mut items = self.signals.items_to_trace(self.settings.changed_per_round).await?;
        let page = self.signals.sweep_items(self.sweep_after, self.settings.sweep_per_round).await?;
        for item in &page {
            if !items.contains(item) {
                items.push(*item);
            }
        }
        let reach = self.reach().await?;
        let gathered = self.gather(&items, reach).await;
        let round = TraceRound {
            checked: gathered.checks.len(),
            gaps: gathered.checks.iter().filter(|check| check.gap.is_some()).count(),
            unreadable: gathered.n_unreadable,
        };
        // The sweep moves on once the checks are recorded, whether or not the unreadable items
        // are marked too: moved on only after both, a failed mark had the next round record
        // and count the same checks again.
        let kept = match self.record_checks(&gathered).await {
            Ok(()) => {
                self.sweep_after = self.sweep_goes_on_after(&page, &items[..gathered.n_handled]);
                self.mark_unreadable(&gathered).await
            }
            Err(error) => Err(error),
        };
        match (gathered.stopped, kept) {
            // The failure that stopped the round says why it failed; one recording its
            // checks is most likely the same outage.
            (Some(error), _) | (None, Err(error)) => Err(error),
            (None, Ok(())) => Ok(round),
        }
    }

    /// Checks `items` in turn, until the store itself is unavailable.
    async fn gather(&self, items: &[ItemId], mut reach: Option<JournalReach>) -> Gathered {
        let mut gathered = Gathered::default();
        for &item_id in items {
            let mut checked = self.check(item_id, reach.as_ref()).await;
            // A gap found after a retention pass dropped a day since the round read the
            // horizon may be that day's rows: checked again under the horizon as it is now,
            // not recorded untraced (coverage red, the gate's green run broken, once a day).
            if matches!(&checked, Ok(Some((_, Err(_))))) {
                let now = match self.reach().await {
                    Ok(now) => now,
                    Err(error) => {
                        gathered.stopped = Some(error);
                        return gathered;
                    }
                };
                if now.as_ref().map(|reach| reach.kept_since) != reach.as_ref().map(|reach| reach.kept_since) {
                    reach = now;
                    checked = self.check(item_id, reach.as_ref()).await;
                }
            }
            let checked = match checked {
                // The store itself is down: every item would wait its deadline in turn.
                Err(error @ StoreError::Unavailable(_)) => {
                    gathered.stopped = Some(error);
                    return gathered;
                }
                checked => checked,
            };
            gathered.n_handled += 1;
            let checked = match checked {
                Ok(checked) => checked,
                // An item that cannot be read (a corrupt row, a history too long for the
                // store's deadline) is counted; one that cannot be read for good (corrupt) is
                // marked untraced (`mark_unreadable`: a clean check of it from before is no
                // longer trusted, and it is checked again first), named by the coverage
                // signal; failing the round would leave every other item unchecked, and
                // coverage red for every tenant, for as long as it cannot be read.
                Err(error) => {
                    gathered.n_unreadable += 1;
                    let class = error.failure_class();
                    // A read that may succeed next time (a deadline met on a busy moment)
                    // leaves the last check as it is: marked, one such read would turn
                    // coverage red, and break the gate's green run, for nothing.
                    if class != FailureClass::Retryable {
                        gathered.unreadable.push(item_id);
                    }
                    tracing::warn!(%item_id, %error, class = class.as_str(), "an item's journal could not be read to trace it; the others are checked");
                    continue;
                }
            };
            let Some((item, checked)) = checked else { continue };
            let gap = checked.err();
            if let Some(gap) = &gap {
                tracing::warn!(tenant = %item.tenant(), sku = %item.sku(), %item_id, gap = gap.as_str(), "item does not re-derive from its journal");
            }
            gathered.checks.push(TraceCheck { item_id, version: item.version(), checked_at: Utc::now(), gap });
        }
        gathered
    }

    /// Records the checks, counting each in `catalog_trace_checks_total` once recorded.
    async fn record_checks(&self, gathered: &Gathered) -> Result<(), StoreError> {
        self.signals.record_trace_checks(&gathered.checks).await?;
        for check in &gathered.checks {
            let result = check.gap.as_ref().map_or("traced", |gap| gap.as_str());
            self.metrics.trace_checks.with_label_values(&[result]).inc();
        }
        Ok(())
    }

    /// Marks the items that could not be read, counting them once marked (a sweep that moved
    /// on finds them again on its next pass).
    async fn mark_unreadable(&self, gathered: &Gathered) -> Result<(), StoreError> {
        self.signals.mark_unreadable(&gathered.unreadable).await?;
        if gathered.n_unreadable > 0 {
            self.metrics.trace_checks.with_label_values(&["unreadable"]).inc_by(gathered.n_unreadable as u64);
        }
        Ok(())
    }

    /// Where the sweep goes on from once a round went through `handled` of its items: past
    /// `page` when the round went through all of it (from the start again after the last
    /// page), else past the first items of the page it went through, so that the next round
    /// checks the rest.
    fn sweep_goes_on_after(&self, page: &[ItemId], handled: &[ItemId]) -> Option<ItemId> {
        let handled: std::collections::HashSet<&ItemId> = handled.iter().collect();
        let n_done = page.iter().take_while(|item| handled.contains(item)).count();
        if n_done == page.len() {
            if page.len() < self.settings.sweep_per_round {
                None
            } else {
                page.last().copied()
            }
        } else if n_done == 0 {
            self.sweep_after
        } else {
            Some(page[n_done - 1])
        }
    }

    /// How far back the journal reaches: once retention dropped rows, what an offer's state
    /// counts from them is made up from the state (the item was checked while they were kept,
    /// and the archive holds them).
    async fn reach(&self) -> Result<Option<JournalReach>, StoreError> {
        let horizon = self.horizon.journal_horizon().await?;
        let kept_since = horizon.and_then(|horizon| horizon.kept_since);
        Ok(kept_since.map(|kept_since| JournalReach { kept_since, max_skew: self.settings.clock.max_skew }))
    }

    /// Checks one item from the newest rows of its journal, reading [`TAIL_ROWS`] first and
    /// eight times more each time they do not settle it (`catalog_core::tail_settles`): the
    /// cost follows how far back each offer's latest snapshot lies, not the item's history.
    async fn check(
        &self,
        item_id: ItemId,
        reach: Option<&JournalReach>,
    ) -> Result<Option<(CatalogItem, Result<(), TraceGap>)>, StoreError> {
        let mut newest = TAIL_ROWS;
        loop {
            let Some(tail) = self.signals.journal_tail(item_id, newest).await? else { return Ok(None) };
            self.metrics.trace_rows_read.inc_by((tail.newest.len() + tail.winners.len()) as u64);
            if let Some(checked) = tail.check_within(reach) {
                return Ok(Some((tail.item, checked)));
            }
            newest = newest.saturating_mul(8);
        }
    }

    /// Traces every interval until `shutdown`; a failed round is logged and retried next
    /// interval (items not checked in time count against coverage).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(error) = self.trace_once().await {
                tracing::warn!(%error, "tracing items failed; trying again next interval");
            }
        }
    }
}

/// Writes what each source partition of this worker has waiting to the store every
/// `interval` (a report older than the signals' `stall_after` counts as lag), forgets the
/// partitions read to their end, and reports once more when `shutdown` fires.
pub async fn report_progress(
    applier: Arc<Applier>,
    store: Arc<dyn CatalogStore>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        let report = applier.take_progress(Utc::now());
        // Forgotten first: a partition revoked and assigned back since the last report is
        // among both, and its report must stand.
        let mut result = Ok(());
        let mut not_forgotten = Vec::new();
        for (source, partition) in report.done {
            if result.is_ok() {
                result = store.forget_progress(&source, &partition).await;
            }
            if result.is_err() {
                not_forgotten.push((source, partition));
            }
        }
        applier.forget_later(not_forgotten);
        if result.is_ok() {
            result = store.report_progress(&report.partitions).await;
        }
        if let Err(error) = result {
            tracing::warn!(%error, "reporting source progress failed; trying again next interval");
        }
        if stopping {
            return;
        }
    }
}
