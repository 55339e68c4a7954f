//! The signals role: the facts `catalog_core::judge` needs, counted by the store (stale
//! items, publish attempts and failures, trace coverage) or reported to it (each source
//! partition's progress), the tracer's checks, and the sampled history of judgements.

use std::collections::BTreeMap;

use async_trait::async_trait;
use catalog_core::{
    AppliedChange, CatalogItem, EventId, ItemId, JournalReach, OfferTrace, OrderingKey, Outcome, PartitionProgress,
    SignalFacts, Signals, SupplierId, TenantId, TraceGap,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::error::StoreError;
use crate::model::{ItemTrace, JournalEntry, StoredOffer};

/// What `SignalStore::signal_facts` counts, as of `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsQuery {
    pub now: DateTime<Utc>,
    /// An item changed less than this long ago is not stale yet (`is_stale`).
    pub stale_grace: Duration,
    /// Publish attempts are counted since `now - publish_window`.
    pub publish_window: Duration,
    /// An item changed less than this long ago need not be traced yet.
    pub trace_grace: Duration,
    /// At most this many untraced items are named per tenant (and overall); all are counted.
    pub max_named: usize,
}

/// The facts of every tenant with at least one item or attempt, and overall.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FactsReport {
    pub overall: SignalFacts,
    pub tenants: BTreeMap<TenantId, SignalFacts>,
}

/// One check of an item by the tracer: the version it re-derived, when, and the gap found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceCheck {
    pub item_id: ItemId,
    pub version: u64,
    pub checked_at: DateTime<Utc>,
    /// `None`: the stored quantity re-derives exactly from the journal.
    pub gap: Option<TraceGap>,
}

/// One signal's value in a sample.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SampledValue {
    pub value: f64,
    pub green: bool,
}

/// A judgement of one tenant's signals (or overall: `tenant_id` is `None`) kept as history,
/// so "green for one business day" is a query.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalSample {
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub tenant_id: Option<TenantId>,
    pub at: DateTime<Utc>,
    pub green: bool,
    pub stale_items: SampledValue,
    pub queue_lag: SampledValue,
    pub publish_errors: SampledValue,
    pub trace_coverage: SampledValue,
}

impl SignalSample {
    /// The sample of a judgement.
    pub fn of(signals: &Signals) -> Self {
        let value = |signal: &catalog_core::Signal| SampledValue {
            value: signal.value,
            green: signal.status == catalog_core::Status::Green,
        };
        Self {
            tenant_id: signals.tenant_id.clone(),
            at: signals.at,
            green: signals.green,
            stale_items: value(&signals.stale_items),
            queue_lag: value(&signals.queue_lag),
            publish_errors: value(&signals.publish_errors),
            trace_coverage: value(&signals.trace_coverage),
        }
    }

    /// The four values in the seed's order, with their names.
    pub fn each(&self) -> [(catalog_core::SignalName, SampledValue); 4] {
        use catalog_core::SignalName;
        [
            (SignalName::StaleItems, self.stale_items),
            (SignalName::QueueLag, self.queue_lag),
            (SignalName::PublishErrors, self.publish_errors),
            (SignalName::TraceCoverage, self.trace_coverage),
        ]
    }

    /// What the gate decides from: when, and which were red.
    pub fn gate_sample(&self) -> catalog_core::GateSample {
        gate_sample(self.at, self.each().map(|(_, sampled)| sampled.green))
    }
}

/// The columns saying whether each signal was green, in the seed's order.
pub(crate) const GREEN_COLUMNS: [&str; 4] =
    ["stale_items_green", "queue_lag_green", "publish_errors_green", "trace_coverage_green"];

/// The gate samples of one merged span from its row's [`GREEN_COLUMNS`], read by `green`: one
/// at the span's first sample time and one at its last (one when they are the same), so the
/// gap between two spans' samples is the gap between samples taken, never a span wider.
pub fn gate_samples_of_span<E>(
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    green: impl Fn(&str) -> Result<bool, E>,
) -> Result<impl Iterator<Item = catalog_core::GateSample>, E> {
    let [stale, lag, errors, coverage] = GREEN_COLUMNS;
    let greens = [green(stale)?, green(lag)?, green(errors)?, green(coverage)?];
    let first = (first < last).then(|| gate_sample(first, greens));
    Ok(first.into_iter().chain([gate_sample(last, greens)]))
}

/// A gate sample at `at` from the four signals' greens in the seed's order
/// ([`SignalSample::each`]).
pub fn gate_sample(at: DateTime<Utc>, greens: [bool; 4]) -> catalog_core::GateSample {
    use catalog_core::SignalName;
    let names = [SignalName::StaleItems, SignalName::QueueLag, SignalName::PublishErrors, SignalName::TraceCoverage];
    catalog_core::GateSample {
        at,
        red: names.into_iter().zip(greens).filter(|(_, green)| !green).map(|(name, _)| name).collect(),
    }
}

/// The offers of an item trace as `catalog_core::check_item` reads them: each offer's stored
/// winner and the journal's applied events of that offer, nothing else of its stored state.
pub fn offer_traces(trace: &ItemTrace) -> Vec<OfferTrace> {
    offer_traces_of(&trace.offers, &trace.events)
}

/// Each offer's stored winner with the applied events of that offer among `events`.
fn offer_traces_of<'a>(
    offers: &[StoredOffer],
    events: impl IntoIterator<Item = &'a JournalEntry> + Clone,
) -> Vec<OfferTrace> {
    offers
        .iter()
        .map(|offer| OfferTrace {
            supplier: offer.supplier.clone(),
            winner: offer.winner,
            applied: events
                .clone()
                .into_iter()
                .filter(|entry| entry.outcome == Outcome::Applied)
                .filter(|entry| entry.supplier.as_deref() == Some(offer.supplier.as_str()))
                .filter_map(|entry| Some(AppliedChange { key: ordering_key(entry)?, change: entry.change? }))
                .collect(),
        })
        .collect()
}

/// A journal row's ordering key, when it has one (a rejected row has none).
fn ordering_key(entry: &JournalEntry) -> Option<OrderingKey> {
    Some(OrderingKey {
        effective_at: entry.effective_at?,
        // No sequence orders as 0, as the ordering key has it.
        sequence: entry.sequence.unwrap_or(0),
        event_id: entry.event_id?,
    })
}

/// What the tracer checks an item from ([`SignalStore::journal_tail`]): the item, its
/// offers, the newest rows of its journal, and the applied rows of winners older than those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalTail {
    pub item: CatalogItem,
    pub offers: Vec<StoredOffer>,
    /// The newest journal rows naming the item that carry an ordering key (at most the number
    /// asked), in ordering-key order: every such row newer than one of them is among them.
    pub newest: Vec<JournalEntry>,
    /// `newest` holds every row with an ordering key (fewer than asked were found).
    pub whole: bool,
    /// The applied rows of offers' winners that `newest` does not hold, found by event id.
    pub winners: Vec<JournalEntry>,
}

impl JournalTail {
    /// The check's answer when it stands for the whole journal (`whole`, or
    /// `catalog_core::tail_settles`): `None` when older rows must be read first.
    pub fn check(&self) -> Option<Result<(), TraceGap>> {
        self.check_within(None)
    }

    /// [`JournalTail::check`] of a journal retention has cut at `reach` (decision 0050): what
    /// each offer's state counts whose row may have been dropped is made up from the state
    /// (`JournalReach::archived_changes`). Rows reaching back past an offer's dropped
    /// snapshot settle it (every kept row newer than the snapshot is among them), and so do rows
    /// reaching back to what may have been dropped (every older row is made up from the state):
    /// the read is bounded by the retention, not the item's history.
    pub fn check_within(&self, reach: Option<&JournalReach>) -> Option<Result<(), TraceGap>> {
        let cut = offer_traces_of(&self.offers, &self.newest);
        let oldest = self.newest.iter().filter_map(ordering_key).min();
        let reaches_back = |offer: &StoredOffer| {
            let (Some(reach), Some(oldest)) = (reach, oldest) else { return false };
            reach.may_have_dropped(&oldest)
                || offer
                    .state
                    .snapshot()
                    .is_some_and(|snapshot| reach.may_have_dropped(&snapshot.key) && oldest <= snapshot.key)
        };
        let settles =
            self.whole
                || self.offers.iter().zip(&cut).all(|(offer, trace)| {
                    catalog_core::tail_settles(std::slice::from_ref(trace)) || reaches_back(offer)
                });
        settles.then(|| {
            let mut traces = offer_traces_of(&self.offers, self.newest.iter().chain(&self.winners));
            if let Some(reach) = reach {
                for (trace, offer) in traces.iter_mut().zip(&self.offers) {
                    let archived = reach.archived_changes(&offer.state, &trace.applied);
                    trace.applied.extend(archived);
                }
            }
            catalog_core::check_item(self.item.quantity(), &traces)
        })
    }
}

/// The offers' winners with no applied row among `newest`: what a store looks up by event id
/// for [`JournalTail::winners`].
pub fn winners_beyond(offers: &[StoredOffer], newest: &[JournalEntry]) -> Vec<EventId> {
    offers
        .iter()
        .filter_map(|offer| offer.winner)
        .filter(|winner| {
            !newest.iter().any(|entry| entry.event_id == Some(*winner) && entry.outcome == Outcome::Applied)
        })
        .collect()
}

/// A gap as stored: its name and the columns of its details.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredGap {
    pub gap: Option<String>,
    pub stored: Option<i64>,
    pub rederived: Option<i64>,
    pub supplier: Option<String>,
    pub event_id: Option<uuid::Uuid>,
}

impl StoredGap {
    /// The columns of a gap (all empty for none).
    pub fn of(gap: Option<&TraceGap>) -> Self {
        match gap {
            None => Self::default(),
            Some(TraceGap::QuantityDiffers { stored, rederived }) => Self {
                gap: Some("quantity_differs".to_owned()),
                stored: Some(*stored),
                rederived: Some(*rederived),
                ..Self::default()
            },
            Some(TraceGap::WinnerNotJournaled { supplier, event_id }) => Self {
                gap: Some("winner_not_journaled".to_owned()),
                supplier: Some(supplier.to_string()),
                event_id: Some(event_id.0),
                ..Self::default()
            },
            // `not_checked`, and any gap a later catalog-core names, by its stable name alone.
            Some(other) => Self { gap: Some(other.as_str().to_owned()), ..Self::default() },
        }
    }

    /// The gap the columns describe; `None` for none. A row whose details do not fit its name
    /// is corrupt.
    pub fn to_gap(&self) -> Result<Option<TraceGap>, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("trace check with an unreadable gap {:?}", self));
        match self.gap.as_deref() {
            None => Ok(None),
            Some("quantity_differs") => Ok(Some(TraceGap::QuantityDiffers {
                stored: self.stored.ok_or_else(corrupt)?,
                rederived: self.rederived.ok_or_else(corrupt)?,
            })),
            Some("winner_not_journaled") => Ok(Some(TraceGap::WinnerNotJournaled {
                supplier: SupplierId::parse(self.supplier.as_deref().ok_or_else(corrupt)?).map_err(|_| corrupt())?,
                event_id: catalog_core::EventId(self.event_id.ok_or_else(corrupt)?),
            })),
            Some("not_checked") => Ok(Some(TraceGap::NotChecked)),
            Some(_) => Err(corrupt()),
        }
    }
}

/// What the launch signals are measured from, and their history.
#[async_trait]
pub trait SignalStore: Send + Sync + std::fmt::Debug {
    /// Counts the facts of every tenant and overall, in a few statements (nothing is loaded
    /// item by item): items with a version; stale ones (`catalog_core::is_stale`: the newest
    /// version not accepted on every channel serving the tenant, changed more than
    /// `stale_grace` ago); publish attempts since the window began (a `throttled` record is
    /// no attempt) and the dead-lettered ones; items due for a trace (checked, or changed more
    /// than `trace_grace` ago) and the untraced among them (a gap at their last check, or
    /// never checked at their version past the grace: `not_checked`), the first `max_named`
    /// named; and every partition's reported progress, the same for each tenant (a message
    /// not yet applied may be any tenant's).
    async fn signal_facts(&self, query: &FactsQuery) -> Result<FactsReport, StoreError>;

    /// Stores what each source partition reports of its progress (replacing its last report).
    async fn report_progress(&self, progress: &[PartitionProgress]) -> Result<(), StoreError>;

    /// Forgets a partition's progress: a finite source that read everything, so its silence
    /// from now on is no lag.
    async fn forget_progress(&self, source: &str, partition: &str) -> Result<(), StoreError>;

    /// Up to `limit` items (version > 0) changed since their last check, never checked, or
    /// whose last check is marked unreadable (`mark_unreadable`), the longest-waiting change
    /// first: the tracer's first work.
    async fn items_to_trace(&self, limit: usize) -> Result<Vec<ItemId>, StoreError>;

    /// The item `item_id` names (`None` without an item row), its offers, the newest `newest`
    /// rows of its journal that carry an ordering key, and the applied rows of offers' winners
    /// older than those, read in one snapshot: what the tracer checks, at a cost bounded by
    /// `newest` however long the item's history.
    async fn journal_tail(&self, item_id: ItemId, newest: usize) -> Result<Option<JournalTail>, StoreError>;

    /// Up to `limit` items (version > 0) with an id greater than `after`, in id order: the
    /// tracer's rolling sweep of the whole catalog.
    async fn sweep_items(&self, after: Option<ItemId>, limit: usize) -> Result<Vec<ItemId>, StoreError>;

    /// Records the tracer's checks, replacing each item's previous one.
    async fn record_trace_checks(&self, checks: &[TraceCheck]) -> Result<(), StoreError>;

    /// Marks the last check of each of `items`, which the tracer could not read for good (a
    /// corrupt row; a read that may succeed next time marks nothing), `not_checked`: coverage
    /// names them until a check reads them again, instead of trusting a clean check of a
    /// version they may no longer hold. An item never checked has no check to mark; it is
    /// untraced already once its grace passes.
    async fn mark_unreadable(&self, items: &[ItemId]) -> Result<(), StoreError>;

    /// Appends judgements to the history.
    async fn record_signal_samples(&self, samples: &[SignalSample]) -> Result<(), StoreError>;

    /// A tenant's samples (overall for `None`) taken at or after `since`, oldest first, at
    /// most the newest `limit`.
    async fn signal_samples(
        &self,
        tenant: Option<&TenantId>,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SignalSample>, StoreError>;

    /// What the gate decides from: a tenant's samples (overall for `None`) taken at or after
    /// `since`, merged per `span` of time however many workers sampled in it (each samples
    /// every tenant), oldest first. A span gives a sample at its first and at its last sample
    /// time (one when they are the same), both red by every signal red in any sample within
    /// it: the gap between spans is the gap between samples taken. The rows grow with the
    /// window over `span`, never with workers.
    async fn gate_samples(
        &self,
        tenant: Option<&TenantId>,
        since: DateTime<Utc>,
        span: chrono::Duration,
    ) -> Result<Vec<catalog_core::GateSample>, StoreError>;

    /// Deletes samples taken before `before`, returning how many.
    async fn prune_signal_samples(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// What a backend counted for one tenant: its items, and the attempts in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantCounts {
    pub items: u64,
    pub stale_items: u64,
    pub items_due_for_trace: u64,
    pub untraced_items: u64,
    pub publish_attempts: u64,
    pub publish_failures: u64,
}

/// One named untraced item as a backend read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntracedRow {
    pub tenant: String,
    pub item_id: ItemId,
    pub sku: String,
    /// The stored gap; no gap stored means the item was not checked in time.
    pub gap: StoredGap,
}

/// A stored count as a `u64`; a negative one is corrupt.
pub fn count(name: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{name} count {value} is negative")))
}

/// Puts together what a backend counted and read into every tenant's facts and the overall
/// ones (sums, the same partitions, the first `max_named` untraced items by tenant and SKU).
pub fn assemble_facts(
    counts: BTreeMap<String, TenantCounts>,
    mut untraced: Vec<UntracedRow>,
    partitions: Vec<PartitionProgress>,
    max_named: usize,
) -> Result<FactsReport, StoreError> {
    untraced.sort_by(|a, b| (&a.tenant, &a.sku).cmp(&(&b.tenant, &b.sku)));
    let mut report = FactsReport::default();
    report.overall.partitions = partitions.clone();
    for (tenant_text, counted) in counts {
        let tenant = crate::rows::tenant(&tenant_text)?;
        let mut named = Vec::new();
        for row in untraced.iter().filter(|row| row.tenant == tenant_text).take(max_named) {
            named.push(catalog_core::UntracedItem {
                tenant_id: tenant.clone(),
                sku: crate::rows::sku(&row.sku)?,
                item_id: row.item_id,
                gap: row.gap.to_gap()?.unwrap_or(TraceGap::NotChecked),
            });
        }
        let overall = &mut report.overall;
        overall.items += counted.items;
        overall.stale_items += counted.stale_items;
        overall.items_due_for_trace += counted.items_due_for_trace;
        overall.untraced_items += counted.untraced_items;
        overall.publish_attempts += counted.publish_attempts;
        overall.publish_failures += counted.publish_failures;
        if overall.untraced.len() < max_named {
            overall.untraced.extend(named.iter().take(max_named - overall.untraced.len()).cloned());
        }
        let facts = SignalFacts {
            items: counted.items,
            stale_items: counted.stale_items,
            partitions: partitions.clone(),
            publish_attempts: counted.publish_attempts,
            publish_failures: counted.publish_failures,
            items_due_for_trace: counted.items_due_for_trace,
            untraced_items: counted.untraced_items,
            untraced: named,
        };
        report.tenants.insert(tenant, facts);
    }
    Ok(report)
}
