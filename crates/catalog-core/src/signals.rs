//! The four launch signals, judged from facts a store provides: whether the sync can be
//! trusted for a tenant (or overall) right now.
//!
//! | signal | value | green when | owner |
//! | --- | --- | --- | --- |
//! | `stale_items` | share of items whose newest version is not accepted on every enabled channel after a grace period | < 1 % | storefront-integration |
//! | `queue_lag` | seconds since the oldest message not yet applied was received; silence counts | < 90 s | catalog-sync-oncall |
//! | `publish_errors` | failed publish attempts ÷ attempts over a sliding window; a 409 is not a failure | < 0.5 % | storefront-integration |
//! | `trace_coverage` | share of items whose stored quantity re-derives exactly from the journal | 100 % | catalog-support |
//!
//! Nothing here reads a clock: `now` is passed in.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Serialize, Serializer};

use crate::ids::{ItemId, Sku, TenantId};
use crate::rederive::TraceGap;

/// At most this many untraced items are named in one judgement; the count is always whole.
pub const MAX_NAMED_ITEMS: usize = 50;

/// One of the four launch signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalName {
    /// Share of items some enabled channel has not accepted after the grace period.
    StaleItems,
    /// Seconds the oldest unapplied message has waited (or a silent partition's silence).
    QueueLag,
    /// Share of publish attempts in the window that failed for good.
    PublishErrors,
    /// Share of items due for a trace whose quantity re-derives from the journal.
    TraceCoverage,
}

impl SignalName {
    /// All four, in the seed's order.
    pub const ALL: [SignalName; 4] =
        [SignalName::StaleItems, SignalName::QueueLag, SignalName::PublishErrors, SignalName::TraceCoverage];

    /// The stable name: JSON key and metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            SignalName::StaleItems => "stale_items",
            SignalName::QueueLag => "queue_lag",
            SignalName::PublishErrors => "publish_errors",
            SignalName::TraceCoverage => "trace_coverage",
        }
    }

    /// What the value measures: `ratio` (0 to 1) or `seconds`.
    pub fn unit(&self) -> &'static str {
        match self {
            SignalName::QueueLag => "seconds",
            _ => "ratio",
        }
    }
}

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a signal turns red.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// Green while the value is strictly below.
    Below(f64),
    /// Green while the value is at least this.
    AtLeast(f64),
}

impl Threshold {
    /// Whether `value` is on the green side.
    pub fn is_met(&self, value: f64) -> bool {
        match *self {
            Threshold::Below(limit) => value < limit,
            Threshold::AtLeast(limit) => value >= limit,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Below(limit) => write!(f, "< {limit}"),
            Threshold::AtLeast(limit) => write!(f, ">= {limit}"),
        }
    }
}

/// In JSON a threshold is its text, `"< 0.01"` or `">= 1"`: what a reader compares by eye.
impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A signal's threshold and the team that answers for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What the value must meet to be green.
    pub threshold: Threshold,
    /// The team that answers for the signal, e.g. `storefront-integration`.
    pub owner: String,
}

/// Targets, owners and the periods the signals are measured over.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSettings {
    /// Below 1 % by default, owned by `storefront-integration`.
    pub stale_items: Target,
    /// In seconds: below 90 by default, owned by `catalog-sync-oncall`.
    pub queue_lag: Target,
    /// Below 0.5 % by default, owned by `storefront-integration`.
    pub publish_errors: Target,
    /// At least 100 % by default, owned by `catalog-support`.
    pub trace_coverage: Target,
    /// An item changed less than this long ago is not yet stale: publishing takes time.
    pub stale_grace: Duration,
    /// Publish errors are counted over this sliding window.
    pub publish_window: Duration,
    /// A source that has not reported progress for this long is lagging by its silence.
    pub stall_after: Duration,
    /// An item changed less than this long ago need not be traced yet.
    pub trace_grace: Duration,
}

impl Default for SignalSettings {
    /// The seed's table: stale < 1 %, lag < 90 s, publish errors < 0.5 %, coverage 100 %.
    fn default() -> Self {
        let target = |threshold, owner: &str| Target { threshold, owner: owner.to_owned() };
        Self {
            stale_items: target(Threshold::Below(0.01), "storefront-integration"),
            queue_lag: target(Threshold::Below(90.0), "catalog-sync-oncall"),
            publish_errors: target(Threshold::Below(0.005), "storefront-integration"),
            trace_coverage: target(Threshold::AtLeast(1.0), "catalog-support"),
            stale_grace: Duration::seconds(60),
            publish_window: Duration::minutes(15),
            stall_after: Duration::seconds(30),
            trace_grace: Duration::minutes(5),
        }
    }
}

impl SignalSettings {
    /// The target of one signal.
    pub fn target(&self, name: SignalName) -> &Target {
        match name {
            SignalName::StaleItems => &self.stale_items,
            SignalName::QueueLag => &self.queue_lag,
            SignalName::PublishErrors => &self.publish_errors,
            SignalName::TraceCoverage => &self.trace_coverage,
        }
    }
}

/// Green or red.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The value meets its target.
    Green,
    /// It does not.
    Red,
}

impl Status {
    /// The stable name: `green` or `red`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Green => "green",
            Status::Red => "red",
        }
    }
}

/// One judged signal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// Which of the four.
    pub name: SignalName,
    /// The measured value, in [`Signal::unit`].
    pub value: f64,
    /// `ratio` (0 to 1) or `seconds` ([`SignalName::unit`]).
    pub unit: &'static str,
    /// The threshold it was judged against.
    pub target: Threshold,
    /// The team that answers for it.
    pub owner: String,
    /// Green when the value meets the target.
    pub status: Status,
    /// The counts behind the value, in words: `3 of 1000 items`.
    pub detail: String,
}

/// What one source partition last reported of its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The source, e.g. `kafka:supplier-events` or `file:/feeds/a.ndjson`.
    pub source: String,
    /// The partition within the source, e.g. `3` for a Kafka partition or `0` for a file.
    pub partition: String,
    /// When the worker last reported on this partition.
    pub reported_at: DateTime<Utc>,
    /// Receive (or broker) time of the oldest message not yet applied when it reported;
    /// `None` when it had applied everything it knew of.
    pub oldest_unapplied_at: Option<DateTime<Utc>>,
}

impl PartitionProgress {
    /// The partition's queue lag at `now`: how long the oldest unapplied message has waited,
    /// and at least the silence since the last report once that exceeds `stall_after`, so a
    /// stalled or dead worker turns lag red instead of freezing it at its last value.
    pub fn lag(&self, now: DateTime<Utc>, stall_after: Duration) -> Duration {
        let waiting = self.oldest_unapplied_at.map_or(Duration::zero(), |oldest| now - oldest);
        let silence = now - self.reported_at;
        let silent = if silence > stall_after { silence } else { Duration::zero() };
        waiting.max(silent).max(Duration::zero())
    }
}

/// An item whose stored state its journal does not explain, named so someone can look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UntracedItem {
    /// The item's tenant.
    pub tenant_id: TenantId,
    /// The item's SKU, normalized.
    pub sku: Sku,
    /// The item's stable id ([`ItemKey::item_id`](crate::ItemKey::item_id)).
    pub item_id: ItemId,
    /// What the journal does not explain.
    #[serde(flatten)]
    pub gap: TraceGap,
}

/// What a store counts for one tenant (or all of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignalFacts {
    /// Items with at least one version.
    pub items: u64,
    /// Of those, items whose newest version is not accepted on every enabled channel and
    /// changed more than the grace period ago ([`is_stale`]).
    pub stale_items: u64,
    /// The partitions carrying the tenant's events.
    pub partitions: Vec<PartitionProgress>,
    /// Publish attempts in the window, 409s included.
    pub publish_attempts: u64,
    /// Of those, the ones that failed for good: dead-lettered or given up.
    pub publish_failures: u64,
    /// Items whose trace is due: checked, or changed more than the trace grace ago.
    pub items_due_for_trace: u64,
    /// How many items due for a trace did not re-derive (or were not checked in time), whole.
    pub untraced_items: u64,
    /// Items due for a trace that did not re-derive: a store names at most
    /// [`MAX_NAMED_ITEMS`] and counts the rest in `untraced_items`; the judgement names the
    /// first [`MAX_NAMED_ITEMS`].
    pub untraced: Vec<UntracedItem>,
}

/// Whether an item counts as stale at `now`: its newest `version` changed at `changed_at`
/// is not yet accepted on every enabled channel (`accepted` holds each channel's accepted
/// version, `None` for none yet), and the grace period has passed. An item at version 0
/// never had anything to publish.
pub fn is_stale(
    version: u64,
    changed_at: DateTime<Utc>,
    accepted: &[Option<u64>],
    now: DateTime<Utc>,
    grace: Duration,
) -> bool {
    version > 0 && now - changed_at > grace && accepted.iter().any(|channel| channel.is_none_or(|v| v < version))
}

/// The four signals of one tenant, or overall when `tenant` is `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signals {
    /// The tenant judged; absent for the whole catalog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
    /// When they were judged (the `now` passed to [`judge`]).
    pub at: DateTime<Utc>,
    /// All four green.
    pub green: bool,
    /// [`SignalName::StaleItems`].
    pub stale_items: Signal,
    /// [`SignalName::QueueLag`].
    pub queue_lag: Signal,
    /// [`SignalName::PublishErrors`].
    pub publish_errors: Signal,
    /// [`SignalName::TraceCoverage`].
    pub trace_coverage: Signal,
    /// How many items are untraced, whole.
    pub untraced_count: u64,
    /// The first [`MAX_NAMED_ITEMS`] of them.
    pub untraced: Vec<UntracedItem>,
}

impl Signals {
    /// The four, in the seed's order.
    pub fn each(&self) -> [&Signal; 4] {
        [&self.stale_items, &self.queue_lag, &self.publish_errors, &self.trace_coverage]
    }

    /// The red ones.
    pub fn red(&self) -> Vec<SignalName> {
        self.each().into_iter().filter(|signal| signal.status == Status::Red).map(|signal| signal.name).collect()
    }
}

/// A share that is 0 (or 1) when there is nothing to count.
fn share(part: u64, whole: u64, empty: f64) -> f64 {
    if whole == 0 {
        empty
    } else {
        part as f64 / whole as f64
    }
}

/// Judges `facts` against `settings` at `now`.
///
/// ```
/// use catalog_core::{judge, SignalFacts, SignalName, SignalSettings, Status};
///
/// let facts = SignalFacts { items: 1_000, stale_items: 20, publish_attempts: 400, publish_failures: 1, ..Default::default() };
/// let signals = judge(None, &facts, &SignalSettings::default(), "2026-06-01T12:00:00Z".parse().unwrap());
/// assert_eq!(signals.stale_items.status, Status::Red); // 2 % is not below 1 %
/// assert_eq!(signals.publish_errors.status, Status::Green); // 0.25 % is below 0.5 %
/// assert_eq!(signals.red(), [SignalName::StaleItems]);
/// assert!(!signals.green);
/// ```
pub fn judge(tenant: Option<TenantId>, facts: &SignalFacts, settings: &SignalSettings, now: DateTime<Utc>) -> Signals {
    let signal = |name: SignalName, value: f64, detail: String| {
        let target = settings.target(name);
        let status = if target.threshold.is_met(value) { Status::Green } else { Status::Red };
        Signal { name, value, unit: name.unit(), target: target.threshold, owner: target.owner.clone(), status, detail }
    };
    let stale_items = signal(
        SignalName::StaleItems,
        share(facts.stale_items, facts.items, 0.0),
        format!("{} of {} items", facts.stale_items, facts.items),
    );
    let lagging = facts.partitions.iter().max_by_key(|partition| partition.lag(now, settings.stall_after));
    let queue_lag = match lagging {
        Some(partition) => {
            let lag = partition.lag(now, settings.stall_after);
            signal(
                SignalName::QueueLag,
                lag.num_milliseconds() as f64 / 1000.0,
                format!("{} partition {}", partition.source, partition.partition),
            )
        }
        None => signal(SignalName::QueueLag, 0.0, "no partition reported".to_owned()),
    };
    let publish_errors = signal(
        SignalName::PublishErrors,
        share(facts.publish_failures, facts.publish_attempts, 0.0),
        format!("{} of {} attempts", facts.publish_failures, facts.publish_attempts),
    );
    let untraced_count = facts.untraced_items.max(facts.untraced.len() as u64);
    let traced = facts.items_due_for_trace.saturating_sub(untraced_count);
    let trace_coverage = signal(
        SignalName::TraceCoverage,
        share(traced, facts.items_due_for_trace, 1.0),
        format!("{traced} of {} items", facts.items_due_for_trace),
    );
    let green = [&stale_items, &queue_lag, &publish_errors, &trace_coverage]
        .iter()
        .all(|signal| signal.status == Status::Green);
    Signals {
        tenant_id: tenant,
        at: now,
        green,
        stale_items,
        queue_lag,
        publish_errors,
        trace_coverage,
        untraced_count,
        untraced: facts.untraced.iter().take(MAX_NAMED_ITEMS).cloned().collect(),
    }
}
