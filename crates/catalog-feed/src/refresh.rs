//! The full refresh of a feed: the supplier's whole snapshot, diffed against the feed's
//! stored offers. Each difference is drift: recorded, and corrected through the rules as an
//! `inventory.updated` event as of the snapshot's `as_of` (provenance `Reconciliation`,
//! journaled under `feed-refresh:{tenant}/{supplier}`); an offer the snapshot no longer
//! lists goes to 0. A complete pass marks the feed's initial sync completed (decision 0015).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use catalog_app::SourceBatch;
use catalog_core::{decode, Sku, StockChange};
use catalog_store::{FeedDrift, FullRefresh, IncomingEvent, Provenance, SourceRef};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::client::{PageRequest, SeenCursors};
use crate::pull::{refresh_source_name, FeedRun, RunError};
use crate::record::{correction_event, record_event};

/// What a full refresh found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    pub n_listed: usize,
    pub drifts: Vec<FeedDrift>,
}

/// Which drift a difference is, for the metric.
fn drift_kind(drift: &FeedDrift) -> &'static str {
    match drift.stored {
        None => "not_stored",
        Some(_) if drift.supplier == 0 => "not_listed",
        Some(_) => "quantity_differs",
    }
}

impl FeedRun {
    /// Pulls the whole snapshot, then corrects every difference and records it.
    pub async fn full_refresh(&mut self, shutdown: &CancellationToken) -> Result<RefreshReport, RunError> {
        // The snapshot's quantity per SKU; a record the rules reject is counted, not used.
        let mut listed: HashMap<Sku, i64> = HashMap::new();
        let mut as_of: Option<String> = None;
        let mut cursor: Option<String> = None;
        let mut seen = SeenCursors::default();
        loop {
            let page = self.client.page(PageRequest::Snapshot { cursor: cursor.as_deref() }, shutdown).await?;
            seen.next(page.next_cursor.as_deref())?;
            if as_of.is_none() {
                as_of.clone_from(&page.as_of);
            }
            let mut n_rejected = 0;
            for record in page.records {
                match decode(&record_event(self.key(), record)) {
                    Ok(event) => {
                        if let StockChange::Updated { quantity } = event.change() {
                            listed.insert(event.offer().sku.clone(), quantity);
                        }
                    }
                    Err(_) => n_rejected += 1,
                }
            }
            if n_rejected > 0 {
                self.metrics.feed_records.with_label_values(&[&self.label, "rejected"]).inc_by(n_rejected);
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let as_of_text = as_of.unwrap_or_default();
        let as_of: DateTime<Utc> =
            DateTime::parse_from_rfc3339(&as_of_text).map_or_else(|_| Utc::now(), |at| at.to_utc());

        let stored: BTreeMap<Sku, i64> =
            self.store.feed_offers(self.key()).await?.into_iter().map(|offer| (offer.sku, offer.quantity)).collect();
        let mut drifts: Vec<FeedDrift> = Vec::new();
        let mut listed_skus: Vec<(&Sku, &i64)> = listed.iter().collect();
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
        for (sku, quantity) in &stored {
            if !listed.contains_key(sku) && *quantity != 0 {
                drifts.push(FeedDrift { sku: sku.clone(), stored: Some(*quantity), supplier: 0, as_of });
            }
        }

        let source: Arc<str> = refresh_source_name(self.key()).into();
        let received_at = Utc::now();
        for (chunk_index, chunk) in drifts.chunks(self.batch_size).enumerate() {
            let events = chunk
                .iter()
                .enumerate()
                .map(|(index, drift)| {
                    let payload = correction_event(self.key(), drift.sku.as_str(), drift.supplier, &as_of_text);
                    let at = SourceRef {
                        source: Arc::clone(&source),
                        partition: 0,
                        offset: (chunk_index * self.batch_size + index) as i64,
                    };
                    let mut event = IncomingEvent::received(payload, received_at, at, None);
                    event.provenance = Provenance::Reconciliation;
                    event
                })
                .collect();
            // No checkpoint: a refresh interrupted here is run again whole, and the
            // corrections it already applied come back as duplicates.
            let batch = SourceBatch {
                source: Arc::clone(&source),
                partition: 0,
                events,
                checkpoint: None,
                last_message_at: None,
                high_watermark: None,
            };
            self.sink.apply(batch).await?;
        }
        for drift in &drifts {
            self.metrics.feed_drift.with_label_values(&[&self.label, drift_kind(drift)]).inc();
        }
        let refresh = FullRefresh { key: self.key().clone(), as_of, completed_at: Utc::now(), drifts };
        self.store.complete_full_refresh(&refresh).await?;
        tracing::info!(feed = %self.label, %as_of, n_listed = listed.len(), n_drifts = refresh.drifts.len(), "full refresh complete");
        Ok(RefreshReport { n_listed: listed.len(), drifts: refresh.drifts })
    }
}
