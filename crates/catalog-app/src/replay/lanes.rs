//! How a replay goes through its window: read a page at a time, its events in lanes by item,
//! applied as they come (or previewed whole, for a dry run), what they did kept in a `Tally`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use catalog_core::{ItemId, ItemKey, Outcome};
use catalog_store::{BatchInput, BatchResult, CatalogStore, IncomingEvent, JournalEntry, JournalWindow, WindowPages};
use chrono::{DateTime, Utc};

use super::{
    replayable, store_failed, within_retention, ReplayError, ReplayProgress, ReplaySummary, BATCH, LANES, PAGE,
    REPUBLISH_CHUNK,
};

/// The events of `rows` a replay decides afresh.
pub(super) fn replayable_rows(rows: &[JournalEntry], window: &JournalWindow) -> Vec<IncomingEvent> {
    rows.iter()
        .filter(|entry| !window.held_only || matches!(entry.outcome, Outcome::Held(_)))
        .filter_map(|entry| replayable(entry, &window.tenant))
        .collect()
}

/// A replay's way through its window: events applied (or previewed) in `LANES` lanes by item.
pub(super) struct Lanes<'a> {
    pub(super) store: &'a dyn CatalogStore,
    pub(super) dry_run: bool,
    /// The window's start, checked against the journal's retention before each batch.
    pub(super) reach_from: Option<DateTime<Utc>>,
    pub(super) progress: &'a (dyn Fn(ReplayProgress) + Sync),
}

impl Lanes<'_> {
    /// The window's next page (`PAGE` rows), or `None` once it is read to its end.
    async fn next_page(&self, pages: &mut WindowPages<'_>) -> Result<Option<Vec<JournalEntry>>, ReplayError> {
        pages.next(self.store).await.map_err(store_failed("reading the journal window"))
    }

    /// Decides one batch of events afresh, after checking the window's start against the
    /// journal's retention (decision 0019): a replay takes hours on a large tenant, and a
    /// retention pass that drops the window's first day meanwhile takes its claims with it.
    /// Applied, or in a dry run previewed and rolled back.
    async fn decide(&self, events: Vec<IncomingEvent>) -> Result<BatchResult, ReplayError> {
        if let Some(since) = self.reach_from {
            within_retention(self.store, since).await?;
        }
        let batch = BatchInput::new(events, Vec::new());
        if self.dry_run {
            self.store.preview_batch(&batch).await.map_err(store_failed("previewing the replay"))
        } else {
            self.store.apply_batch(&batch).await.map_err(store_failed("applying the replay"))
        }
    }

    /// Applies the window as it is read: a reader takes it a page at a time and hands each
    /// lane its events in batches of `BATCH` as they fill, and each lane applies its batches
    /// one after another, never waiting for the other lanes or for a page's end. A batch's
    /// apply changes its own rows, which are behind the reader's cursor. It may add one after
    /// it, when a rejection the rules now accept is journaled anew at its first reception
    /// time, which the cursor's may equal; read later, that row is a duplicate and changes
    /// nothing but the summary's counts. Memory: a page, and at most three batches per lane
    /// (filling, handed over, applying).
    pub(super) async fn apply_by_page(&self, window: &JournalWindow) -> Result<ReplaySummary, ReplayError> {
        let (mut senders, mut receivers) = (Vec::with_capacity(LANES), Vec::with_capacity(LANES));
        for _ in 0..LANES {
            let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<IncomingEvent>>(1);
            senders.push(sender);
            receivers.push(receiver);
        }
        let applied = AtomicUsize::new(0);
        // Set by a lane that failed: the reader hands out no more batches and the other lanes
        // take none, but each ends the batch it is applying, so that `applied` counts every
        // batch committed (dropped mid-way, a batch the store's writer still committed went
        // uncounted).
        let halted = AtomicBool::new(false);
        let lanes =
            futures::future::join_all(receivers.into_iter().map(|batches| self.apply_lane(batches, &applied, &halted)));
        let (read, lanes) = futures::join!(self.read_into_lanes(window, senders, &applied, &halted), lanes);
        // A lane's error first (a reader whose lane failed stops without one), then the reader's.
        let joined = lanes.into_iter().collect::<Result<Vec<Tally>, _>>().and_then(|lanes| Ok((read?, lanes)));
        let (mut tally, lanes) = match joined {
            // Overtaken once batches were applied: not the refusal a replay that applied
            // nothing gets, which reads as if nothing had happened.
            Err(ReplayError::PastRetention { kept_since, archive, .. }) if applied.load(Ordering::Relaxed) > 0 => {
                return Err(ReplayError::Overtaken { replayed: applied.load(Ordering::Relaxed), kept_since, archive })
            }
            joined => joined?,
        };
        // An item is in one lane only: the lanes' changed items are apart.
        for lane in lanes {
            for (outcome, n) in lane.outcomes {
                *tally.outcomes.entry(outcome).or_insert(0) += n;
            }
            tally.changed.extend(lane.changed);
        }
        self.finish(tally).await
    }

    /// Reads the window a page at a time and hands each lane its events, a batch at a time.
    /// A lane that failed took its batches' channel with it: reading stops, and the lane's
    /// error is the replay's.
    async fn read_into_lanes(
        &self,
        window: &JournalWindow,
        lanes: Vec<tokio::sync::mpsc::Sender<Vec<IncomingEvent>>>,
        applied: &AtomicUsize,
        halted: &AtomicBool,
    ) -> Result<Tally, ReplayError> {
        let mut tally = Tally::default();
        let mut filling: Vec<Vec<IncomingEvent>> = vec![Vec::new(); LANES];
        let mut pages = WindowPages::new(window, PAGE);
        while let Some(rows) = self.next_page(&mut pages).await? {
            tally.n_journaled += rows.len();
            let events = replayable_rows(&rows, window);
            drop(rows);
            tally.n_replayed += events.len();
            for event in events {
                let lane = lane_of(&event, &mut tally.touched);
                filling[lane].push(event);
                if filling[lane].len() >= BATCH
                    && (halted.load(Ordering::Acquire)
                        || lanes[lane].send(std::mem::take(&mut filling[lane])).await.is_err())
                {
                    return Ok(tally);
                }
            }
            self.report(applied.load(Ordering::Relaxed), &pages);
        }
        for (lane, batch) in lanes.iter().zip(filling) {
            if !batch.is_empty() && (halted.load(Ordering::Acquire) || lane.send(batch).await.is_err()) {
                break;
            }
        }
        Ok(tally)
    }

    /// Applies a lane's batches as they come.
    async fn apply_lane(
        &self,
        mut batches: tokio::sync::mpsc::Receiver<Vec<IncomingEvent>>,
        applied: &AtomicUsize,
        halted: &AtomicBool,
    ) -> Result<Tally, ReplayError> {
        let mut tally = Tally::default();
        while let Some(events) = batches.recv().await {
            if halted.load(Ordering::Acquire) {
                break;
            }
            let n_events = events.len();
            let result = self.decide(events).await.inspect_err(|_| halted.store(true, Ordering::Release))?;
            applied.fetch_add(n_events, Ordering::Relaxed);
            self.add(&result, &mut tally).await.inspect_err(|_| halted.store(true, Ordering::Release))?;
        }
        Ok(tally)
    }

    /// Tells `progress` how far the replay has come, once a page is read.
    fn report(&self, replayed: usize, pages: &WindowPages<'_>) {
        if let Some(read_through) = pages.read_through() {
            (self.progress)(ReplayProgress { replayed, read_through });
        }
    }

    /// Previews the window whole, refused beyond `limit` journal rows.
    pub(super) async fn preview_whole(
        &self,
        window: &JournalWindow,
        limit: usize,
    ) -> Result<ReplaySummary, ReplayError> {
        let mut tally = Tally::default();
        let mut events = Vec::new();
        let mut pages = WindowPages::new(window, PAGE);
        while let Some(rows) = self.next_page(&mut pages).await? {
            tally.n_journaled += rows.len();
            if tally.n_journaled > limit {
                let read_through = pages.read_through().map(|at| at.to_rfc3339()).unwrap_or_default();
                return Err(ReplayError::DryRunTooLarge { limit, read_through });
            }
            events.extend(replayable_rows(&rows, window));
        }
        tally.n_replayed = events.len();
        let mut lanes: Vec<Vec<IncomingEvent>> = vec![Vec::new(); LANES];
        for event in events {
            let lane = lane_of(&event, &mut tally.touched);
            lanes[lane].push(event);
        }
        let previews = futures::future::try_join_all(lanes.iter().map(|lane| self.preview_lane(lane))).await?;
        for result in previews.iter().flatten() {
            self.add(result, &mut tally).await?;
        }
        self.report(tally.n_replayed, &pages);
        self.finish(tally).await
    }

    /// Previews one lane's events in batches, each item's events in one batch (`item_chunks`).
    async fn preview_lane(&self, events: &[IncomingEvent]) -> Result<Vec<BatchResult>, ReplayError> {
        let mut results = Vec::new();
        for chunk in item_chunks(events, BATCH) {
            results.push(self.decide(chunk).await?);
        }
        Ok(results)
    }

    /// Adds what a batch did to `tally`: its outcomes, and its changed items.
    async fn add(&self, result: &BatchResult, tally: &mut Tally) -> Result<(), ReplayError> {
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
            // An item changed by two batches keeps the first one's "before" and the last's
            // "after".
            tally
                .changed
                .entry(item.sku().to_string())
                .and_modify(|change| change.1 = item.quantity())
                .or_insert((before, item.quantity()));
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
            // A chunk per transaction: a replay of a large tenant touches millions of items,
            // and one transaction held them all share-locked (the worker's batches on them
            // waited) and outlived the store's statement timeout, so nothing was queued.
            let ids: Vec<ItemId> = summary.touched.iter().map(|(_, id)| *id).collect();
            for chunk in ids.chunks(REPUBLISH_CHUNK) {
                summary.republished +=
                    self.store.republish(chunk).await.map_err(store_failed("queueing the cache bust"))?;
            }
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

/// The lane of `event`, its item noted in `touched`: item ids are UUID v5 hashes, whose bytes
/// spread items evenly over the lanes. `replayable` replays decoded events only; anything else
/// goes to the first lane all the same.
fn lane_of(event: &IncomingEvent, touched: &mut BTreeMap<ItemKey, ItemId>) -> usize {
    match &event.delivery.decoded {
        Ok(decoded) => {
            let key = decoded.offer().item_key();
            let id = key.item_id();
            touched.insert(key, id);
            usize::from(id.0.as_bytes()[0]) % LANES
        }
        Err(_) => 0,
    }
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
