//! Replay: re-runs every journaled event of a tenant received in a window through the same
//! `catalog-core` rules and the same `apply_batch` (held events get a fresh decision, applied
//! ones are no-ops by construction), then queues a publish of every touched item's current
//! version. A library function over a [`ReplayRequest`], so the `replay` binary, the admin
//! API and tests run the same code.

use std::collections::BTreeMap;

use catalog_core::{decode, Delivery, ItemId, ItemKey, OfferKey, Outcome, Sku, SupplierEvent, SupplierId, TenantId};
use catalog_store::{CatalogStore, IncomingEvent, JournalEntry, JournalWindow, Provenance, StoreError, WindowPage};
use chrono::{DateTime, Utc};

mod lanes;

use lanes::Lanes;

/// Events replayed per store transaction.
const BATCH: usize = 5_000;

/// Touched items queued again (the cache bust) per store transaction.
const REPUBLISH_CHUNK: usize = 5_000;

/// Streams of the window a replay applies at once, as the worker applies partitions: an item
/// (and so each of its offers) belongs to one lane, so two lanes never write the same offer
/// or item row, and the store's work on them proceeds side by side.
const LANES: usize = 4;

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    pub tenant: TenantId,
    /// Inclusive start of the window, on the time events were received.
    pub since: DateTime<Utc>,
    /// Exclusive end of the window; open when `None`.
    pub until: Option<DateTime<Utc>>,
    /// Only this supplier's events.
    pub supplier: Option<SupplierId>,
    /// Decide and report, write nothing.
    pub dry_run: bool,
    /// Most journal rows a dry run reads (it holds its window whole): more is refused as
    /// `DryRunTooLarge`. [`MAX_DRY_RUN_EVENTS`] unless an operator says otherwise.
    pub max_dry_run_events: usize,
    /// Only the window's held events: they are never dropped (retention keeps a day that
    /// holds one), so the window may reach past the journal's retention.
    pub held_only: bool,
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("--since {since} is not before --until {until}")]
    EmptyWindow { since: String, until: String },
    #[error(
        "--since {since} reaches past the journal's retention: it keeps events received since {kept_since} \
         (older ones were archived{archive}); replay from {kept_since} or later, or with --held-only for the \
         held events retention keeps past it"
    )]
    PastRetention { since: String, kept_since: String, archive: String },
    #[error(
        "the journal's retention passed the window's start while it was replayed, after {replayed} events were \
         replayed: it now keeps events received since {kept_since} (older ones were archived{archive}). What was \
         applied stays applied, and the items it changed are queued to publish; the touched items' versions were \
         not queued again (the cache bust). Replay again from {kept_since} or later, or with --held-only"
    )]
    Overtaken { replayed: usize, kept_since: String, archive: String },
    #[error(
        "a dry run previews at most {limit} journaled events, and this window holds more (read through {read_through}): \
         narrow it with --until or --supplier, raise --max-dry-run-events, or replay without --dry-run, which reads any window a page at a time"
    )]
    DryRunTooLarge { limit: usize, read_through: String },
    #[error(
        "--since {since} is not before {end}, where a window without --until ends (the replay's start): \
         nothing can be in it; is it a local time written with Z?"
    )]
    SinceAhead { since: String, end: String },
    #[error("unknown tenant {0:?}: no event of it was ever applied, and none is journaled in the window")]
    UnknownTenant(String),
    #[error(
        "unknown supplier {supplier:?} of tenant {tenant:?}: no event of it was ever applied for the tenant, \
         and none is journaled in the window"
    )]
    UnknownSupplier { tenant: String, supplier: String },
    #[error("{what}: {error}")]
    Store { what: &'static str, error: StoreError },
}

fn store_failed(what: &'static str) -> impl FnOnce(StoreError) -> ReplayError {
    move |error| ReplayError::Store { what, error }
}

/// What a replay did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub n_journaled: usize,
    pub n_replayed: usize,
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Touched items, in (tenant, sku) order.
    pub touched: Vec<(ItemKey, ItemId)>,
    /// Items whose quantity changed: sku, quantity before (known in a dry run), after.
    pub changed: Vec<(String, Option<i64>, i64)>,
    pub republished: u64,
}

/// The event a journal row describes, as it would arrive again, or `None` when there is
/// nothing to decide afresh (a rejection the current rules still reject, a duplicate row).
fn replayable(entry: &JournalEntry, tenant: &TenantId) -> Option<IncomingEvent> {
    let decoded = match (&entry.outcome, entry.event_id, entry.change, entry.updated_at) {
        // Only a message journaled whole can be decided afresh: of a longer one, the journal
        // keeps a prefix (and its length) for support, not for replay.
        (Outcome::Rejected(_), _, _, _) => {
            let raw = entry.raw_payload.as_deref()?;
            if entry.raw_payload_length.is_some_and(|length| length > raw.len() as u64) {
                return None;
            }
            decode(raw).ok()?
        }
        (Outcome::Duplicate, _, _, _) => return None,
        (_, Some(event_id), Some(change), Some(updated_at)) => {
            let offer = OfferKey {
                tenant: tenant.clone(),
                supplier: SupplierId::parse(entry.supplier.as_deref()?).ok()?,
                sku: Sku::parse(entry.sku.as_deref()?).ok()?,
            };
            SupplierEvent::new(event_id, offer, change, updated_at, entry.sequence).ok()?
        }
        _ => return None,
    };
    Some(IncomingEvent {
        // The first reception time: a clamped clock is clamped exactly as it was.
        delivery: Delivery { decoded: Ok(decoded), received_at: entry.received_at },
        // The journal keeps a message's bytes for rejections only, and this one decodes.
        raw: Vec::new(),
        payload_length: 0,
        source: entry.source.clone(),
        // Journaled before traceparents were validated, an invalid one is not sent again.
        traceparent: entry.traceparent.as_deref().and_then(|value| value.parse().ok()),
        provenance: Provenance::Replayed,
    })
}

/// How far a replay has come, told as each page of its window is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Events replayed (or previewed) so far.
    pub replayed: usize,
    /// The received time of the last journal row read: the window is read in that order.
    pub read_through: DateTime<Utc>,
}

/// Replays the window against `store`, a page of the journal at a time (`PAGE` rows), so its
/// memory is that of a page, however long the window: the rules decide the same whatever the
/// order events come in (`catalog-core`'s property tests), so each page is applied as it is
/// read. A dry run is the exception: it previews the window whole (`MAX_DRY_RUN_EVENTS` at
/// most), since each preview is rolled back and an item's events previewed in two parts would
/// each start from the state before both. A window left open ends at the replay's start:
/// events received since are decided by the worker under the rules as they are now, and a
/// replay that followed them would chase the live stream. `progress` is told after each page.
pub async fn replay(
    store: &dyn CatalogStore,
    request: &ReplayRequest,
    progress: &(dyn Fn(ReplayProgress) + Sync),
) -> Result<ReplaySummary, ReplayError> {
    if let Some(until) = request.until {
        if request.since >= until {
            return Err(ReplayError::EmptyWindow { since: request.since.to_rfc3339(), until: until.to_rfc3339() });
        }
    }
    // Held events are kept past the retention; the others are checked again before each
    // batch (`Lanes::decide`).
    let reach_from = (!request.held_only).then_some(request.since);
    if let Some(since) = reach_from {
        within_retention(store, since).await?;
    }
    let end = request.until.unwrap_or_else(|| window_end(request.held_only, Utc::now()));
    // A start ahead of an open window's end read nothing and said so with `replayed=0`, which
    // reads as "nothing needed replaying" (a local time written with `Z`, most likely).
    if request.until.is_none() && request.since >= end {
        return Err(ReplayError::SinceAhead { since: request.since.to_rfc3339(), end: end.to_rfc3339() });
    }
    let window = JournalWindow {
        tenant: request.tenant.clone(),
        since: request.since,
        until: Some(end),
        supplier: request.supplier.clone(),
        held_only: request.held_only,
    };
    // A tenant (or a supplier of it) no event of which was ever decided has no row, but may
    // have rejections in the window (a rule since fixed): only one with neither is unknown (a
    // typo, most likely, which replayed nothing and exited 0).
    let flags = store.tenant_flags(&request.tenant).await.map_err(store_failed("reading the tenant"))?;
    let unknown = match (&flags, &request.supplier) {
        (None, _) => Some(ReplayError::UnknownTenant(request.tenant.to_string())),
        (Some(flags), Some(supplier)) if !flags.suppliers.contains_key(supplier) => {
            Some(ReplayError::UnknownSupplier { tenant: request.tenant.to_string(), supplier: supplier.to_string() })
        }
        _ => None,
    };
    if let Some(unknown) = unknown {
        let first = WindowPage { after: None, limit: 1 };
        if store.journal_window_page(&window, first).await.map_err(store_failed("reading the window"))?.is_empty() {
            return Err(unknown);
        }
    }
    let lanes = Lanes { store, dry_run: request.dry_run, reach_from, progress };
    if request.dry_run {
        lanes.preview_whole(&window, request.max_dry_run_events).await
    } else {
        lanes.apply_by_page(&window).await
    }
}

/// Most journal rows a dry run reads by default: it holds its window whole (see [`replay`]).
pub const MAX_DRY_RUN_EVENTS: usize = 250_000;

/// Journal rows a replay reads at once: a batch for each lane.
const PAGE: usize = BATCH * LANES;

/// How long after a replay's start a held event may have been received and still be in its
/// window when the window is left open: the worker that journaled it stamps its own clock,
/// which may run ahead of this process's.
const HELD_CLOCK_ALLOWANCE: chrono::Duration = chrono::Duration::minutes(5);

/// The end of a window left open, for a replay started at `started`.
fn window_end(held_only: bool, started: DateTime<Utc>) -> DateTime<Utc> {
    if held_only {
        started + HELD_CLOCK_ALLOWANCE
    } else {
        started
    }
}

/// Refuses a window from `since` once the journal no longer reaches back there: retention
/// dropped the days before its horizon, with their claims, so an event of them would be
/// decided anew (a folded adjustment counted again).
async fn within_retention(store: &dyn CatalogStore, since: DateTime<Utc>) -> Result<(), ReplayError> {
    let horizon = store.journal_horizon().await.map_err(store_failed("reading the journal's retention"))?;
    match horizon.and_then(|horizon| Some((horizon.kept_since?, horizon))) {
        Some((kept_since, horizon)) if since < kept_since => Err(ReplayError::PastRetention {
            since: since.to_rfc3339(),
            kept_since: kept_since.to_rfc3339(),
            archive: horizon.archive.map(|archive| format!(", the last to {archive}")).unwrap_or_default(),
        }),
        _ => Ok(()),
    }
}

/// What [`replay_held`] applies: one tenant's held events (or one supplier's of it) received
/// since a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRequest {
    pub tenant: TenantId,
    pub supplier: Option<SupplierId>,
    /// Held events received before this are left as they are.
    pub since: DateTime<Utc>,
}

/// Decides afresh, through the same rules and the same lanes as [`replay`], a page at a time,
/// the held events of a tenant (or of one supplier of it) received since `request.since`:
/// what switching sync on does. Idempotent: a second run finds nothing held that sync lets
/// through. An unknown tenant has nothing held.
pub async fn replay_held(store: &dyn CatalogStore, request: &HeldRequest) -> Result<ReplaySummary, ReplayError> {
    let window = JournalWindow {
        tenant: request.tenant.clone(),
        since: request.since,
        until: Some(window_end(true, Utc::now())),
        supplier: request.supplier.clone(),
        held_only: true,
    };
    Lanes { store, dry_run: false, reach_from: None, progress: &|_| {} }.apply_by_page(&window).await
}
