//! Replay: re-runs every journaled event of a tenant received in a window through the same
//! `catalog-core` rules and the same `apply_batch` (held events get a fresh decision, applied
//! ones are no-ops by construction), then queues a publish of every touched item's current
//! version. A library function over a [`ReplayRequest`], so the `replay` binary, the admin
//! API and tests run the same code.

use std::collections::BTreeMap;

use catalog_core::{decode, Delivery, ItemId, ItemKey, OfferKey, Outcome, Sku, SupplierEvent, SupplierId, TenantId};
use catalog_store::{
    BatchInput, BatchResult, CatalogStore, IncomingEvent, JournalEntry, JournalWindow, Provenance, StoreError,
    WindowCursor, WindowPage,
};
use chrono::{DateTime, Utc};

/// Events replayed per store transaction.
const BATCH: usize = 5_000;

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
        "a dry run previews at most {limit} journaled events, and this window holds more (read through {read_through}): \
         narrow it with --until or --supplier, raise --max-dry-run-events, or replay without --dry-run, which reads any window a page at a time"
    )]
    DryRunTooLarge { limit: usize, read_through: String },
    #[error("unknown tenant {0:?}: no event of it was ever received")]
    UnknownTenant(String),
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
    // batch (`replay_lane`).
    let reach_from = (!request.held_only).then_some(request.since);
    if let Some(since) = reach_from {
        within_retention(store, since).await?;
    }
    if store.tenant_flags(&request.tenant).await.map_err(store_failed("reading the tenant"))?.is_none() {
        return Err(ReplayError::UnknownTenant(request.tenant.to_string()));
    }
    let window = JournalWindow {
        tenant: request.tenant.clone(),
        since: request.since,
        until: Some(request.until.unwrap_or_else(|| window_end(request.held_only, Utc::now()))),
        supplier: request.supplier.clone(),
        held_only: request.held_only,
    };
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

/// The events of `rows` a replay decides afresh.
fn replayable_rows(rows: &[JournalEntry], window: &JournalWindow) -> Vec<IncomingEvent> {
    rows.iter()
        .filter(|entry| !window.held_only || matches!(entry.outcome, Outcome::Held(_)))
        .filter_map(|entry| replayable(entry, &window.tenant))
        .collect()
}

/// A replay's way through its window: events applied (or previewed) in `LANES` lanes by item.
struct Lanes<'a> {
    store: &'a dyn CatalogStore,
    dry_run: bool,
    /// The window's start, checked against the journal's retention before each batch.
    reach_from: Option<DateTime<Utc>>,
    progress: &'a (dyn Fn(ReplayProgress) + Sync),
}

impl Lanes<'_> {
    async fn page(
        &self,
        window: &JournalWindow,
        after: Option<WindowCursor>,
    ) -> Result<Vec<JournalEntry>, ReplayError> {
        self.store
            .journal_window_page(window, WindowPage { after, limit: PAGE })
            .await
            .map_err(store_failed("reading the journal window"))
    }

    /// Applies the window page after page, each page's events in lanes, the next page read
    /// while the last is applied: a page's apply changes its own rows, which are behind the
    /// cursor. It may add one after it, when a rejection the rules now accept is journaled
    /// anew at its first reception time, which the cursor's may equal; read by a later page,
    /// that row is a duplicate and changes nothing but the summary's counts.
    async fn apply_by_page(&self, window: &JournalWindow) -> Result<ReplaySummary, ReplayError> {
        let mut tally = Tally::default();
        let mut rows = self.page(window, None).await?;
        while let Some(last) = rows.last().map(WindowCursor::of) {
            tally.n_journaled += rows.len();
            let more = rows.len() == PAGE;
            let events = replayable_rows(&rows, window);
            let next = async {
                match more {
                    true => self.page(window, Some(last)).await,
                    false => Ok(Vec::new()),
                }
            };
            let (ran, next) = futures::join!(self.run(events, &mut tally), next);
            ran?;
            (self.progress)(ReplayProgress { replayed: tally.n_replayed, read_through: last.received_at });
            rows = next?;
        }
        self.finish(tally).await
    }

    /// Previews the window whole, refused beyond `limit` journal rows.
    async fn preview_whole(&self, window: &JournalWindow, limit: usize) -> Result<ReplaySummary, ReplayError> {
        let mut tally = Tally::default();
        let (mut events, mut after) = (Vec::new(), None);
        loop {
            let rows = self.page(window, after).await?;
            let Some(last) = rows.last().map(WindowCursor::of) else { break };
            after = Some(last);
            tally.n_journaled += rows.len();
            if tally.n_journaled > limit {
                return Err(ReplayError::DryRunTooLarge { limit, read_through: last.received_at.to_rfc3339() });
            }
            events.extend(replayable_rows(&rows, window));
            if rows.len() < PAGE {
                break;
            }
        }
        self.run(events, &mut tally).await?;
        if let Some(last) = after {
            (self.progress)(ReplayProgress { replayed: tally.n_replayed, read_through: last.received_at });
        }
        self.finish(tally).await
    }

    /// Applies (or previews) `events` in lanes by item and adds what they did to `tally`.
    async fn run(&self, events: Vec<IncomingEvent>, tally: &mut Tally) -> Result<(), ReplayError> {
        tally.n_replayed += events.len();
        let mut lanes: Vec<Vec<IncomingEvent>> = vec![Vec::new(); LANES];
        for event in events {
            let lane = match &event.delivery.decoded {
                Ok(decoded) => {
                    let key = decoded.offer().item_key();
                    let id = key.item_id();
                    tally.touched.insert(key, id);
                    // Item ids are UUID v5 hashes: their bytes spread items evenly over the lanes.
                    usize::from(id.0.as_bytes()[0]) % LANES
                }
                // `replayable` replays decoded events only; anything else is applied all the same.
                Err(_) => 0,
            };
            lanes[lane].push(event);
        }
        let lane_results = futures::future::try_join_all(
            lanes.iter().map(|lane| replay_lane(self.store, lane, self.dry_run, self.reach_from)),
        )
        .await?;
        for result in lane_results.iter().flatten() {
            for decision in &result.decisions {
                *tally.outcomes.entry(decision.outcome.as_str()).or_insert(0) += 1;
            }
            for item in result.changed_items.iter().map(|changed| &changed.item) {
                // A preview was rolled back, so the store still holds the quantity before it.
                let before = if self.dry_run {
                    let stored = self.store.item(item.id()).await.map_err(store_failed("reading an item"))?;
                    Some(stored.map_or(0, |stored| stored.quantity()))
                } else {
                    None
                };
                // An item changed on two pages keeps the first page's "before" and the last's
                // "after".
                tally
                    .changed
                    .entry(item.sku().to_string())
                    .and_modify(|change| change.1 = item.quantity())
                    .or_insert((before, item.quantity()));
            }
        }
        Ok(())
    }

    /// The summary, after queueing the touched items' current versions (not in a dry run).
    async fn finish(&self, tally: Tally) -> Result<ReplaySummary, ReplayError> {
        let mut summary = ReplaySummary {
            n_journaled: tally.n_journaled,
            n_replayed: tally.n_replayed,
            outcomes: tally.outcomes,
            touched: tally.touched.into_iter().collect(),
            changed: tally.changed.into_iter().map(|(sku, (before, after))| (sku, before, after)).collect(),
            republished: 0,
        };
        if !self.dry_run {
            let ids: Vec<ItemId> = summary.touched.iter().map(|(_, id)| *id).collect();
            summary.republished = self.store.republish(&ids).await.map_err(store_failed("queueing the cache bust"))?;
        }
        Ok(summary)
    }
}

/// What a replay has done so far: its summary's counts, the touched and changed items kept
/// once each (by item and SKU), so it grows with the items touched, never with the events.
#[derive(Debug, Default)]
struct Tally {
    n_journaled: usize,
    n_replayed: usize,
    outcomes: BTreeMap<&'static str, u64>,
    touched: BTreeMap<ItemKey, ItemId>,
    /// SKU → quantity before (known in a dry run) and after.
    changed: BTreeMap<String, (Option<i64>, i64)>,
}

/// `events` (in journal order) in batches of about `size`, each item's events in one batch, in
/// journal order: a preview is rolled back after each batch, so an item's events split over
/// two would be previewed each against the state before both (a snapshot to 5, then a delta
/// of -2 shown as from 10 to 8 where the replay ends at 3). A batch holds more than `size`
/// only for an item with more events than that.
fn item_chunks(events: &[IncomingEvent], size: usize) -> Vec<Vec<IncomingEvent>> {
    let item = |event: &IncomingEvent| event.delivery.decoded.as_ref().ok().map(|d| d.offer().item_key().item_id());
    let mut by_item: Vec<&IncomingEvent> = events.iter().collect();
    // Stable: each item's events stay in journal order.
    by_item.sort_by_key(|event| item(event));
    let mut chunks: Vec<Vec<IncomingEvent>> = Vec::new();
    for event in by_item {
        let next_item = item(event);
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < size || chunk.last().map(item) == Some(next_item) => chunk.push(event.clone()),
            _ => chunks.push(vec![event.clone()]),
        }
    }
    chunks
}

/// Applies (or previews) one lane's events in batches, each item's events in one batch.
/// `reach_from`: the window's start, checked against the journal's retention before each
/// batch: a replay takes hours on a large tenant, and a retention pass that drops the window's
/// first day meanwhile takes its claims with it (decision 0019).
async fn replay_lane(
    store: &dyn CatalogStore,
    events: &[IncomingEvent],
    dry_run: bool,
    reach_from: Option<DateTime<Utc>>,
) -> Result<Vec<BatchResult>, ReplayError> {
    let mut results = Vec::new();
    for chunk in item_chunks(events, BATCH) {
        if let Some(since) = reach_from {
            within_retention(store, since).await?;
        }
        let batch = BatchInput::new(chunk, Vec::new());
        let result = if dry_run {
            store.preview_batch(&batch).await.map_err(store_failed("previewing the replay"))?
        } else {
            store.apply_batch(&batch).await.map_err(store_failed("applying the replay"))?
        };
        results.push(result);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use catalog_core::StockChange;
    use catalog_store::contract::{incoming, offer};

    use super::*;

    #[test]
    fn an_item_s_events_are_never_split_over_two_batches_and_keep_their_order() {
        let offers = [offer("canary", "acme", "A-1"), offer("canary", "acme", "B-1"), offer("canary", "globex", "C-1")];
        // Interleaved as the journal holds them: A B C A B C A.
        let events: Vec<IncomingEvent> = (0..7_u64)
            .map(|n| incoming(n + 1, &offers[n as usize % 3], StockChange::Updated { quantity: n as i64 }, 0, 1))
            .collect();
        let item = |event: &IncomingEvent| event.delivery.decoded.as_ref().expect("decoded").offer().item_key();
        let chunks = item_chunks(&events, 2);
        let mut seen: Vec<ItemKey> = Vec::new();
        for chunk in &chunks {
            let keys: std::collections::BTreeSet<ItemKey> = chunk.iter().map(item).collect();
            for key in &keys {
                assert!(!seen.contains(key), "{key:?} is in two batches: {chunks:?}");
            }
            seen.extend(keys);
        }
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), events.len(), "every event once");
        for key in seen {
            let order: Vec<u64> = chunks
                .iter()
                .flatten()
                .filter(|event| item(event) == key)
                .map(|event| event.source.offset as u64)
                .collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(order, sorted, "journal order kept for {key:?}");
        }
    }
}
