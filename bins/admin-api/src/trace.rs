//! The trace of an item as the API answers it: what it shows, and per offer the winning
//! event and the adjustments counted on top of it, so the quantity can be checked by hand.
//! Built from the store's `TracePage` alone; nothing here re-decides a rule.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use catalog_core::{EventId, ItemKey, OfferState, StockChange};
use catalog_store::{
    DeadLetter, DriftRecord, JournalEntry, JournalHorizon, PendingPublish, PublishAttempt, PublishedVersion, TracePage,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Events per page unless asked otherwise, and the most a page holds.
pub const DEFAULT_EVENTS_PER_PAGE: u64 = 100;
pub const MAX_EVENTS_PER_PAGE: u64 = 1_000;

/// Why the storefront shows what it shows. An item only held or rejected events name (no
/// event of it was applied yet) shows quantity 0, version 0 and no offers, with its events.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TraceView {
    pub item_id: String,
    pub tenant_id: String,
    pub sku: String,
    pub quantity: i64,
    pub version: u64,
    /// The newest version each channel is known to hold.
    pub published: Vec<PublishedVersion>,
    pub offers: Vec<OfferView>,
    pub events: EventPage,
    pub pending_publishes: Vec<PendingPublish>,
    /// Publish attempts per channel with status and result, oldest first: the newest 200
    /// (`catalog_store::MAX_TRACE_ATTEMPTS`) of `publishes_total`.
    pub publishes: Vec<PublishAttempt>,
    /// Every publish attempt kept of the item (within the retention), shown or not.
    pub publishes_total: u64,
    pub open_dead_letters: Vec<DeadLetter>,
    /// Set once retention has dropped journal days or publish attempts: events received
    /// before `kept_since` are not in `events` (they are in the archive), so an offer's counted
    /// event may be missing; attempts made before `attempts_kept_since` are not in `publishes`.
    pub journal_retention: Option<JournalReach>,
    /// Reconciliation's corrections of what a channel showed of the item, newest first (at
    /// most [`MAX_DRIFT_CORRECTIONS`]).
    pub drift_corrections: Vec<DriftView>,
}

/// Drift corrections a trace lists at most, newest first.
pub const MAX_DRIFT_CORRECTIONS: usize = 50;

/// A drift reconciliation found on a channel and corrected by publishing a new version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DriftView {
    pub channel: String,
    /// `missing`, `quantity_differs`, `version_behind` or `version_ahead`.
    pub kind: &'static str,
    /// The quantity the channel showed; absent when it showed nothing (`missing`).
    pub shown_quantity: Option<i64>,
    /// The version the channel said it showed; absent when it showed nothing.
    pub shown_version: Option<u64>,
    /// The catalog's version when the drift was found.
    pub catalog_version: u64,
    /// The version the correction was published as.
    pub corrected_version: u64,
    pub detected_at: DateTime<Utc>,
}

impl From<&DriftRecord> for DriftView {
    fn from(drift: &DriftRecord) -> Self {
        DriftView {
            channel: drift.channel.clone(),
            kind: drift.kind.as_str(),
            shown_quantity: drift.shown.map(|shown| shown.quantity),
            shown_version: drift.shown.map(|shown| shown.version),
            catalog_version: drift.catalog_version,
            corrected_version: drift.corrected_version,
            detected_at: drift.detected_at,
        }
    }
}

/// How far back the journal and the publish attempts reach (decisions 0019 and 0030).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JournalReach {
    /// Events received before this were archived and dropped from the journal.
    pub kept_since: Option<DateTime<Utc>>,
    /// Where the last archive went.
    pub archive: Option<String>,
    /// Publish attempts made before this were dropped (they are not archived).
    pub attempts_kept_since: Option<DateTime<Utc>>,
    /// The same, in one or two sentences for people.
    pub note: String,
}

impl From<JournalHorizon> for JournalReach {
    fn from(horizon: JournalHorizon) -> Self {
        let when = |time: DateTime<Utc>| time.format("%Y-%m-%d %H:%M UTC").to_string();
        let journal = horizon.kept_since.map(|kept_since| {
            format!(
                "The journal keeps events received since {}; older events were archived{} and are not listed here.",
                when(kept_since),
                horizon.archive.as_deref().map(|archive| format!(" (the last archive: {archive})")).unwrap_or_default()
            )
        });
        let attempts = horizon.attempts_kept_since.map(|kept_since| {
            format!(
                "Publish attempts are kept since {}; older attempts were dropped without an archive.",
                when(kept_since)
            )
        });
        let note = journal.into_iter().chain(attempts).collect::<Vec<_>>().join(" ");
        JournalReach {
            kept_since: horizon.kept_since,
            archive: horizon.archive,
            attempts_kept_since: horizon.attempts_kept_since,
            note,
        }
    }
}

/// One supplier's offer and how its quantity comes about: the winning snapshot, plus the
/// adjustments newer than it (folded ones summed), never below zero.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OfferView {
    pub supplier_id: String,
    pub quantity: i64,
    /// The `inventory.updated` in effect (the greatest snapshot by ordering key), if any.
    pub winning_event: Option<EventView>,
    /// Applied adjustments newer than the winning event, counted on top of it, oldest first.
    pub adjustments: Vec<EventView>,
    /// Adjustments older than the horizon, summed (decision 0009).
    pub folded_adjustments: Option<FoldedView>,
    /// The greatest applied event still in effect.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub newest_event_id: Option<EventId>,
    /// The snapshot in effect as the offer itself keeps it, whether or not the journal still
    /// holds its row (`winning_event` is absent once retention dropped that).
    pub snapshot: Option<CountedChange>,
    /// Every adjustment counted on top of the snapshot, as the offer keeps it, oldest first:
    /// `snapshot` + these + `folded_adjustments` is the offer's quantity, even after retention.
    pub counted_adjustments: Vec<CountedChange>,
}

/// A change the offer counts, from its own state (decision 0050).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CountedChange {
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// The quantity a snapshot set; absent for an adjustment.
    pub quantity: Option<i64>,
    /// An adjustment's change; absent for a snapshot.
    pub delta: Option<i64>,
    pub effective_at: DateTime<Utc>,
    pub sequence: u64,
    /// Its journal row was dropped by retention (archived): the offer still counts it.
    pub archived: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FoldedView {
    pub delta: i64,
    pub count: u64,
    #[schema(value_type = String, format = Uuid)]
    pub through_event_id: EventId,
}

/// One journaled event, with what was decided and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub journal_id: i64,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<EventId>,
    /// `inventory.updated`, `inventory.adjusted`, or absent for an undecodable message.
    #[serde(rename = "type")]
    pub event_type: Option<&'static str>,
    pub supplier_id: Option<String>,
    pub quantity: Option<i64>,
    pub delta: Option<i64>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The time the ordering key uses: `updated_at`, clamped when the supplier clock ran ahead.
    pub effective_at: Option<DateTime<Utc>>,
    pub sequence: Option<u64>,
    pub clock_drift_clamped: bool,
    pub received_at: DateTime<Utc>,
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub redelivery_count: u32,
    pub payload_differs: bool,
    pub traceparent: Option<String>,
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    /// A rejected message's first bytes (at most 4 KiB) as text, any byte that is not UTF-8
    /// shown as U+FFFD; absent for a message that was not rejected.
    pub raw_payload: Option<String>,
    /// The same bytes exactly, in base64.
    pub raw_payload_base64: Option<String>,
    /// The whole message's length in bytes: more than the bytes kept when only its first
    /// 4 KiB were.
    pub raw_payload_length: Option<u64>,
}

impl From<&JournalEntry> for EventView {
    fn from(entry: &JournalEntry) -> Self {
        let (quantity, delta) = match entry.change {
            Some(StockChange::Updated { quantity }) => (Some(quantity), None),
            Some(StockChange::Adjusted { delta }) => (None, Some(delta)),
            None => (None, None),
        };
        EventView {
            journal_id: entry.journal_id,
            event_id: entry.event_id,
            event_type: entry.change.map(|change| change.type_name()),
            supplier_id: entry.supplier.clone(),
            quantity,
            delta,
            updated_at: entry.updated_at,
            effective_at: entry.effective_at,
            sequence: entry.sequence,
            clock_drift_clamped: entry.clock_drift_clamped,
            received_at: entry.received_at,
            outcome: entry.outcome.as_str(),
            reason: entry.reason.clone(),
            detail: entry.detail.clone(),
            redelivery_count: entry.redelivery_count,
            payload_differs: entry.payload_differs,
            traceparent: entry.traceparent.clone(),
            source: entry.source.source.to_string(),
            partition: entry.source.partition,
            offset: entry.source.offset,
            raw_payload: entry.raw_payload.as_deref().map(|raw| String::from_utf8_lossy(raw).into_owned()),
            raw_payload_base64: entry.raw_payload.as_deref().map(|raw| BASE64.encode(raw)),
            raw_payload_length: entry.raw_payload_length,
        }
    }
}

/// A page of an item's events, in ordering-key order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
    /// The newest journal row the pages count: pass it back as `events_through` with the
    /// next `events_offset`, and events journaled meanwhile (a late one sorts among the
    /// others) move no row between pages. `null` when the item has no event.
    pub through: Option<i64>,
    pub entries: Vec<EventView>,
}

/// The applied journal rows the offers' states hold in effect, by event id: each offer's
/// winner and adjustments are looked up here.
type Applied<'a> = std::collections::HashMap<EventId, &'a JournalEntry>;

fn offer_view(supplier_id: String, quantity: i64, state: &OfferState, applied: &Applied<'_>) -> OfferView {
    let find = |event_id: EventId| applied.get(&event_id).map(|entry| EventView::from(*entry));
    let winning_event = state.snapshot().and_then(|snapshot| find(snapshot.key.event_id));
    let adjustments = state.adjustments().iter().filter_map(|adjustment| find(adjustment.key.event_id)).collect();
    let counted = |key: catalog_core::OrderingKey, quantity: Option<i64>, delta: Option<i64>| CountedChange {
        event_id: key.event_id,
        quantity,
        delta,
        effective_at: key.effective_at,
        sequence: key.sequence,
        archived: !applied.contains_key(&key.event_id),
    };
    let snapshot = state.snapshot().map(|snapshot| counted(snapshot.key, Some(snapshot.quantity), None));
    let counted_adjustments =
        state.adjustments().iter().map(|adjustment| counted(adjustment.key, None, Some(adjustment.delta))).collect();
    OfferView {
        snapshot,
        counted_adjustments,
        supplier_id,
        quantity,
        winning_event,
        adjustments,
        folded_adjustments: state.folded().map(|folded| FoldedView {
            delta: folded.delta,
            count: folded.count,
            through_event_id: folded.through.event_id,
        }),
        newest_event_id: state.winner().map(|key| key.event_id),
    }
}

/// The view of one trace page of the item `key` names.
pub fn view(
    key: &ItemKey,
    trace: &TracePage,
    published: Vec<PublishedVersion>,
    dead_letters: Vec<DeadLetter>,
    horizon: Option<JournalHorizon>,
    offset: u64,
    limit: u64,
) -> TraceView {
    let applied: Applied<'_> = trace
        .in_effect
        .iter()
        .filter(|entry| entry.outcome.as_str() == "applied")
        .filter_map(|entry| entry.event_id.map(|event_id| (event_id, entry)))
        .collect();
    let offers = trace
        .offers
        .iter()
        .map(|offer| offer_view(offer.supplier.to_string(), offer.quantity, &offer.state, &applied))
        .collect();
    TraceView {
        item_id: key.item_id().to_string(),
        tenant_id: key.tenant.to_string(),
        sku: key.sku.to_string(),
        quantity: trace.item.as_ref().map_or(0, |item| item.quantity()),
        version: trace.item.as_ref().map_or(0, |item| item.version()),
        published,
        offers,
        events: EventPage {
            total: trace.n_events,
            offset,
            limit,
            through: trace.events_through,
            entries: trace.events.iter().map(EventView::from).collect(),
        },
        pending_publishes: trace.pending_publishes.clone(),
        publishes: trace.publish_attempts.clone(),
        publishes_total: trace.n_publish_attempts,
        open_dead_letters: dead_letters.into_iter().filter(|letter| letter.resolved_at.is_none()).collect(),
        journal_retention: horizon.map(JournalReach::from),
        drift_corrections: Vec::new(),
    }
}
