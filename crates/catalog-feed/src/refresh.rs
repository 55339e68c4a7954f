//! The full refresh of a feed: the supplier's whole snapshot, diffed against the feed's
//! stored offers. Each difference is drift: recorded, and corrected through the rules as an
//! `inventory.updated` event as of the snapshot's `as_of` (provenance `Reconciliation`,
//! journaled under `feed-refresh:{tenant}/{supplier}`); an offer the snapshot no longer
//! lists goes to 0. A snapshot record the rules reject is journaled there too, with its
//! reason (at its page's number; the corrections follow the last page's), and its SKU's
//! offer is left alone: listed, with no quantity to trust (decision 0045). A complete pass
//! marks the feed's initial sync completed (decision 0015).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use catalog_app::SourceBatch;
use catalog_core::{EventId, Sku, StockChange};
use catalog_store::{FeedDrift, FeedOffer, FullRefresh, IncomingEvent, Provenance, SourceRef};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::client::{PageRequest, PullError};
use crate::failure::RunError;
use crate::paging::PassPaging;
use crate::pull::{refresh_source_name, FeedRun, MAX_PASS_RESTARTS};
use crate::record::{correction_event, normalized_sku, record_event};

/// What a full refresh found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    pub n_listed: usize,
    /// Records the rules rejected (journaled with their reasons; their SKUs left alone).
    pub n_rejected: u64,
    pub drifts: Vec<FeedDrift>,
}

/// Which drift a difference is, for the metric, `listed` saying whether the snapshot lists its
/// SKU: one it lists at 0 (sold out) differs in quantity, and is not one it no longer lists.
fn drift_kind(drift: &FeedDrift, listed: bool) -> &'static str {
    match drift.stored {
        None => "not_stored",
        Some(_) if !listed => "not_listed",
        Some(_) => "quantity_differs",
    }
}

/// A batch of the refresh's journal source, without a checkpoint: a refresh interrupted
/// midway is run again whole, and the corrections it already applied come back as duplicates.
fn uncheckpointed(source: &Arc<str>, events: Vec<IncomingEvent>) -> SourceBatch {
    SourceBatch {
        source: Arc::clone(source),
        partition: 0,
        events,
        checkpoint: None,
        last_message_at: None,
        high_watermark: None,
    }
}

/// Where a record sorts among the snapshot's records of its SKU, as an event among its
/// offer's: (updated_at, sequence or 0, event id).
type RecordOrder = (DateTime<Utc>, u64, EventId);

/// The snapshot as one complete pass read it.
#[derive(Debug, Default)]
struct Snapshot {
    /// The quantity of each SKU a valid record lists; of a SKU listed more than once, the
    /// record the rules would take for the newest (updated_at, sequence, event id), wherever
    /// it came in the snapshot.
    listed: HashMap<Sku, (RecordOrder, i64)>,
    /// The SKUs of records the rules rejected: listed, with no quantity to trust. Their
    /// offers are left as they are (not corrected to 0 as unlisted).
    rejected: HashSet<Sku>,
    /// Records the rules rejected, over the complete pass.
    n_rejected: u64,
    /// Rejected records that name no SKU (no object, or no readable `sku`): any SKU the
    /// snapshot does not list may be theirs, so none is corrected to 0 as unlisted.
    n_unnamed: u64,
    /// The first page's `as_of`, as sent.
    as_of: Option<String>,
    /// Pages read, over every pass (restarts included): the journal offsets they took.
    n_pages: i64,
}

/// How long a snapshot pass cut short by its supplier (a `Retry-After` longer than a run
/// waits, the retries run out) is kept for the next refresh to go on with: the longest hold a
/// `Retry-After` gets (a day), and an hour for the run after it to come. An older one is read
/// again from its first page.
const PAUSED_PASS_KEPT: chrono::TimeDelta = chrono::TimeDelta::hours(25);

/// A snapshot pass its supplier cut short, kept by its run: the next full refresh of the run
/// asks for the page it did not get, as the contract says of a 429 (ask for the same page
/// again) and of failures (resume from the last completed page), where a pass read again from
/// its first page met the same limit at the same page every time, and never completed.
#[derive(Debug)]
pub(crate) struct PausedPass {
    snapshot: Snapshot,
    /// The page not read: `None`, the first.
    cursor: Option<String>,
    paging: PassPaging,
    restarts: u32,
    paused_at: DateTime<Utc>,
}

impl FeedRun {
    /// Reads the whole snapshot. A record the rules reject is journaled with its reason (and
    /// counted) as the page arrives; an expired cursor restarts the pass from its first page,
    /// up to [`MAX_PASS_RESTARTS`] times, as a window's would. A pass its supplier cut short
    /// is kept ([`PausedPass`]) and goes on at the next call, within a day.
    async fn read_snapshot(&mut self, shutdown: &CancellationToken) -> Result<Snapshot, RunError> {
        let source: Arc<str> = refresh_source_name(self.key()).into();
        let paused = self.paused_pass.take().filter(|paused| Utc::now() - paused.paused_at < PAUSED_PASS_KEPT);
        if let Some(paused) = &paused {
            tracing::info!(feed = %self.label, n_pages = paused.snapshot.n_pages, paused_at = %paused.paused_at, "going on with the snapshot pass the supplier cut short, at the page it did not give");
        }
        let PausedPass { mut snapshot, mut cursor, mut paging, mut restarts, .. } = paused.unwrap_or(PausedPass {
            snapshot: Snapshot::default(),
            cursor: None,
            paging: PassPaging::default(),
            restarts: 0,
            paused_at: Utc::now(),
        });
        loop {
            let page = match self.client.page(PageRequest::Snapshot { cursor: cursor.as_deref() }, shutdown).await {
                Ok(page) => page,
                Err(PullError::CursorExpired) if restarts < MAX_PASS_RESTARTS => {
                    restarts += 1;
                    self.metrics.feed_retries.with_label_values(&["cursor_expired"]).inc();
                    tracing::warn!(feed = %self.label, "cursor expired: reading the snapshot again from its first page");
                    let n_pages = snapshot.n_pages;
                    (snapshot, cursor, paging) =
                        (Snapshot { n_pages, ..Snapshot::default() }, None, PassPaging::default());
                    continue;
                }
                // The supplier holds us off or fails: what was read is kept for the next
                // refresh, which asks for this page again.
                Err(error @ (PullError::HeldOff { .. } | PullError::Unavailable { .. })) => {
                    self.paused_pass = Some(PausedPass { snapshot, cursor, paging, restarts, paused_at: Utc::now() });
                    return Err(error.into());
                }
                Err(error) => return Err(error.into()),
            };
            paging.next(&page)?;
            if snapshot.as_of.is_none() {
                snapshot.as_of.clone_from(&page.as_of);
            }
            let at = SourceRef { source: Arc::clone(&source), partition: 0, offset: snapshot.n_pages };
            snapshot.n_pages += 1;
            let received_at = Utc::now();
            let mut rejected = Vec::new();
            for record in page.records {
                // The SKU as the record names it, for a rejection that came before the SKU
                // was read (a record too large to decode still lists its SKU). One refused for
                // a letter outside ASCII names, upper-cased as Unicode does, the offer an
                // earlier version stored it under (`straße-1` as `STRASSE-1`, decision 0065):
                // that one is left alone, where naming none zeroed no unlisted offer at all.
                let named = record
                    .get("sku")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|sku| Sku::parse(&normalized_sku(sku)).ok());
                let writes_a_sku = record.get("sku").is_some_and(serde_json::Value::is_string);
                let event = IncomingEvent::received(record_event(self.key(), record), received_at, at.clone(), None);
                match &event.delivery.decoded {
                    Ok(decoded) => {
                        if let StockChange::Updated { quantity } = decoded.change() {
                            let order = (decoded.updated_at(), decoded.sequence().unwrap_or(0), decoded.event_id());
                            snapshot
                                .listed
                                .entry(decoded.offer().sku.clone())
                                .and_modify(|listed| {
                                    if listed.0 < order {
                                        *listed = (order, quantity);
                                    }
                                })
                                .or_insert((order, quantity));
                        }
                    }
                    Err(rejection) => {
                        match (rejection.sku.clone().or(named), writes_a_sku) {
                            (Some(sku), _) => {
                                snapshot.rejected.insert(sku);
                            }
                            // A SKU written that breaks the rules (`AB 12`, 65 characters) names
                            // no stored offer, every stored SKU being valid: nothing to leave
                            // alone. Counted unnamed, it stopped every unlisted offer of the
                            // supplier from being zeroed, every week it was sent.
                            (None, true) => {}
                            (None, false) => snapshot.n_unnamed += 1,
                        }
                        rejected.push(event);
                    }
                }
            }
            if !rejected.is_empty() {
                snapshot.n_rejected += rejected.len() as u64;
                self.metrics.feed_records.with_label_values(&[&self.label, "rejected"]).inc_by(rejected.len() as u64);
                self.sink.apply(uncheckpointed(&source, rejected)).await?;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(snapshot),
            }
        }
    }

    /// Pulls the whole snapshot, then corrects every difference and records it. A SKU whose
    /// only records the rules rejected is neither corrected nor counted as drift; and while
    /// a rejected record names no SKU, no SKU is corrected to 0 as unlisted.
    pub async fn full_refresh(&mut self, shutdown: &CancellationToken) -> Result<RefreshReport, RunError> {
        let Snapshot { listed, rejected, n_rejected, n_unnamed, as_of, n_pages } = self.read_snapshot(shutdown).await?;
        let as_of_text = as_of.unwrap_or_default();
        let as_of: DateTime<Utc> =
            DateTime::parse_from_rfc3339(&as_of_text).map_or_else(|_| Utc::now(), |at| at.to_utc());

        // An offer whose quantity took effect after the snapshot's `as_of` changed after it (an
        // incremental pulled while a pass the supplier cut short waited, a pushed event, a fold
        // of a hot offer's adjustments): the snapshot does not know it, and a correction as of
        // `as_of` would be stale. Left alone.
        let (stored, newer): (Vec<FeedOffer>, Vec<FeedOffer>) =
            self.store.feed_offers(self.key()).await?.into_iter().partition(|offer| !offer.state.set_after(as_of));
        let newer: HashSet<Sku> = newer.into_iter().map(|offer| offer.sku).collect();
        // Compared as of the snapshot and not held at zero: an oversold offer (a snapshot of
        // 2, then -5 pushed) shows 0, as a snapshot of 0 does, and left alone its deficit
        // outlived the refresh meant to reset it (the supplier's next +10 showed 7). The
        // correction, as of the snapshot, sets the base again and drops the adjustments
        // before it; those after it stay, so they are no difference.
        let stored: BTreeMap<Sku, i64> =
            stored.into_iter().map(|offer| (offer.sku, offer.state.unclamped_quantity_as_of(as_of))).collect();
        let mut drifts: Vec<FeedDrift> = Vec::new();
        let mut listed_skus: Vec<(&Sku, &i64)> = listed
            .iter()
            .filter(|(sku, _)| !newer.contains(*sku))
            .map(|(sku, (_, quantity))| (sku, quantity))
            .collect();
        listed_skus.sort();
        for (sku, quantity) in listed_skus {
            match stored.get(sku) {
                Some(stored) if stored == quantity => {}
                Some(stored) => {
                    drifts.push(FeedDrift { sku: sku.clone(), stored: Some(*stored), supplier: *quantity, as_of })
                }
                None if *quantity == 0 => {}
                None => drifts.push(FeedDrift { sku: sku.clone(), stored: None, supplier: *quantity, as_of }),
            }
        }
        if n_unnamed > 0 {
            tracing::warn!(
                feed = %self.label,
                n_unnamed,
                "the snapshot holds rejected records that name no SKU: no offer is corrected to 0 as unlisted this time"
            );
        } else {
            for (sku, quantity) in &stored {
                if !listed.contains_key(sku) && !rejected.contains(sku) && *quantity != 0 {
                    drifts.push(FeedDrift { sku: sku.clone(), stored: Some(*quantity), supplier: 0, as_of });
                }
            }
        }

        let source: Arc<str> = refresh_source_name(self.key()).into();
        let received_at = Utc::now();
        // Each chunk's drift is recorded before its corrections are applied, as found by the
        // refresh that completes at `received_at`: recorded after them all, a refresh cut
        // short after some corrections lost their drift (the next one finds it mended).
        for (chunk_index, chunk) in drifts.chunks(self.batch_size).enumerate() {
            self.store.record_feed_drifts(self.key(), chunk, received_at).await?;
            for drift in chunk {
                let kind = drift_kind(drift, listed.contains_key(&drift.sku));
                self.metrics.feed_drift.with_label_values(&[&self.label, kind]).inc();
            }
            let events = chunk
                .iter()
                .enumerate()
                .map(|(index, drift)| {
                    let payload = correction_event(self.key(), drift.sku.as_str(), drift.supplier, &as_of_text);
                    let at = SourceRef {
                        source: Arc::clone(&source),
                        partition: 0,
                        offset: n_pages + (chunk_index * self.batch_size + index) as i64,
                    };
                    let mut event = IncomingEvent::received(payload, received_at, at, None);
                    event.provenance = Provenance::Reconciliation;
                    event
                })
                .collect();
            self.sink.apply(uncheckpointed(&source, events)).await?;
        }
        let refresh = FullRefresh { key: self.key().clone(), as_of, completed_at: received_at };
        self.store.complete_full_refresh(&refresh).await?;
        tracing::info!(feed = %self.label, %as_of, n_listed = listed.len(), n_rejected, n_drifts = drifts.len(), "full refresh complete");
        Ok(RefreshReport { n_listed: listed.len(), n_rejected, drifts })
    }
}
