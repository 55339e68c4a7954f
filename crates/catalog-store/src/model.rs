//! The values that cross the store port: what goes into a batch, what comes out, and the
//! read models for tracing and status.

use std::collections::BTreeMap;

use catalog_core::{
    CatalogItem, ClockPolicy, Decision, Delivery, EventId, ItemId, OfferState, Outcome, PublishResult, StockChange,
    SupplierId, TenantId, TraceParent,
};
use chrono::{DateTime, Utc};

pub(crate) use crate::checkpoint::{Checkpoint, Position};
use crate::route::ChannelRoute;
use serde::Serialize;

/// Where an event came from, precisely enough to find it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SourceRef {
    /// The source's stable name: `kafka:{group}:{topic}`, `file:{path}`, `replay`. Shared:
    /// every event of a batch names the same source.
    pub source: std::sync::Arc<str>,
    /// Kafka partition; 0 for a file.
    pub partition: i32,
    /// Kafka offset of the message, or byte offset of the line in a file.
    pub offset: i64,
}

/// Why a delivery is in this batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Provenance {
    /// Received from a source: a repeat of a journaled event is a redelivery and is counted.
    Received,
    /// Re-run from the journal by `replay`: a repeat is expected and not counted.
    Replayed,
    /// A correction a feed's full refresh derived from the supplier's snapshot (decision
    /// 0015): decided by the same rules, journaled under the source
    /// `feed-refresh:{tenant}/{supplier}`; a repeat (a second refresh of an unchanged
    /// snapshot) is expected and not counted as a redelivery.
    Reconciliation,
}

/// How many bytes of a rejected message the journal keeps: enough to recognize it, with its
/// length beside it; never the whole of a message of up to 64 KiB (or a longer line).
pub const RAW_PAYLOAD_PREFIX_BYTES: usize = 4 * 1024;

/// One message entering the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingEvent {
    pub delivery: Delivery,
    /// The message bytes as received, journaled (their first [`RAW_PAYLOAD_PREFIX_BYTES`])
    /// when the message was rejected; a source that builds events with
    /// [`IncomingEvent::received`] keeps only that prefix, and only for rejections.
    pub raw: Vec<u8>,
    /// The message's length in bytes as received: `raw` may hold only its first bytes.
    pub payload_length: u64,
    pub source: SourceRef,
    /// W3C trace context from the message header, carried into the journal and the publish
    /// call; an invalid header never gets this far.
    pub traceparent: Option<TraceParent>,
    pub provenance: Provenance,
}

impl IncomingEvent {
    /// A message as a source received it: decoded, with the first bytes of it kept only when
    /// it was rejected (the journal stores a prefix of rejected messages alone, so more would
    /// only take memory while its batch is applied).
    pub fn received(
        payload: Vec<u8>,
        received_at: DateTime<Utc>,
        source: SourceRef,
        traceparent: Option<TraceParent>,
    ) -> Self {
        let payload_length = payload.len() as u64;
        Self::received_in_part(payload, payload_length, received_at, source, traceparent)
    }

    /// A message of `payload_length` bytes of which the source kept only the first ones
    /// (`payload`): a line too long to hold whole, still rejected as too large.
    pub fn received_in_part(
        mut payload: Vec<u8>,
        payload_length: u64,
        received_at: DateTime<Utc>,
        source: SourceRef,
        traceparent: Option<TraceParent>,
    ) -> Self {
        let decoded = catalog_core::decode_prefix(&payload, payload_length);
        let raw = if decoded.is_ok() {
            Vec::new()
        } else {
            payload.truncate(RAW_PAYLOAD_PREFIX_BYTES);
            payload.shrink_to_fit();
            payload
        };
        Self {
            delivery: Delivery { decoded, received_at },
            raw,
            payload_length,
            source,
            traceparent,
            provenance: Provenance::Received,
        }
    }
}

impl AsRef<Delivery> for IncomingEvent {
    fn as_ref(&self) -> &Delivery {
        &self.delivery
    }
}

/// A batch: its events, in delivery order, and the source positions it completes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchInput {
    pub events: Vec<IncomingEvent>,
    /// Written in the same transaction; a position never moves backwards. Every store locks
    /// a batch's checkpoint rows before anything else it writes.
    pub checkpoints: Vec<Checkpoint>,
    /// The events' offsets are their checkpoints' own units (a Kafka partition's offsets, a
    /// file's positions): under the lock on its checkpoint row, an event whose offset is below
    /// its partition's stored position is skipped, not applied again, and listed in
    /// [`BatchResult::applied_before`] (decision 0028). `false` for a feed (its checkpoint
    /// counts pages) and replay: their events are applied whatever the checkpoint says, and a
    /// repeat is a redelivery.
    pub skip_applied: bool,
}

impl BatchInput {
    /// A batch applied whatever its checkpoints hold.
    pub fn new(events: Vec<IncomingEvent>, checkpoints: Vec<Checkpoint>) -> Self {
        Self { events, checkpoints, skip_applied: false }
    }

    /// A batch whose events below their partition's stored position are skipped: see
    /// [`BatchInput::skip_applied`].
    pub fn skipping_applied(self) -> Self {
        Self { skip_applied: true, ..self }
    }
}

/// An item whose quantity the batch changed, at its new version, queued for publishing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedItem {
    pub item: CatalogItem,
    /// The `traceparent` of the event that made this version, sent along with it.
    pub traceparent: Option<String>,
}

/// What a committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// One per event applied (every event not in `applied_before`), in delivery order.
    pub decisions: Vec<Decision>,
    /// In item key order.
    pub changed_items: Vec<ChangedItem>,
    /// The indices, ascending, of the events of a [`BatchInput::skip_applied`] batch that
    /// were not applied: their partition's stored position had passed them (another member
    /// of the group committed them, or an earlier attempt at this batch did). Always empty
    /// for other batches.
    pub applied_before: Vec<usize>,
    /// The checkpoint rows, `(source, partition)`, whose stored position is of another log
    /// than the batch's (both name one, [`Position::log_id`], and they differ): a member
    /// still reading a topic after it was created again and its checkpoint moved back to the
    /// new one. Neither fenced by the stored position nor written: only moving the
    /// checkpoint back changes its log. Always empty for other batches.
    pub of_another_log: Vec<(String, i32)>,
}

impl BatchResult {
    pub fn count_outcomes(&self) -> BTreeMap<&'static str, u64> {
        let mut counts = BTreeMap::new();
        for decision in &self.decisions {
            *counts.entry(decision.outcome.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

/// Configuration every store implementation takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Whether sync is on for a tenant or supplier seen for the first time.
    pub default_sync_enabled: bool,
    /// Publish channels an item change is queued for, e.g. `storefront`, each for all
    /// tenants or for some.
    pub channels: Vec<ChannelRoute>,
    pub clock: ClockPolicy,
}

impl StoreConfig {
    /// Whether item changes of `tenant` are queued on the channel named `channel`.
    pub fn routes(&self, channel: &str, tenant: &TenantId) -> bool {
        self.channels.iter().any(|route| route.name == channel && route.serves(tenant))
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            default_sync_enabled: true,
            channels: vec![ChannelRoute::all("storefront")],
            clock: ClockPolicy::default(),
        }
    }
}

/// One row of the journal: an event as received, and what was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    pub journal_id: i64,
    pub event_id: Option<EventId>,
    pub tenant: Option<String>,
    pub supplier: Option<String>,
    pub sku: Option<String>,
    pub change: Option<StockChange>,
    pub updated_at: Option<DateTime<Utc>>,
    pub sequence: Option<u64>,
    pub effective_at: Option<DateTime<Utc>>,
    pub clock_drift_clamped: bool,
    pub received_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// The recorded reason: a held or rejection reason, `payload_differs` or `clock_drift_clamped`.
    pub reason: Option<String>,
    /// Human-readable detail of a rejection.
    pub detail: Option<String>,
    /// Deliveries of the same event after this one, counted here, never applied again.
    pub redelivery_count: u32,
    /// A redelivery carried a different payload than this one.
    pub payload_differs: bool,
    pub source: SourceRef,
    pub traceparent: Option<String>,
    /// The first bytes of the message (at most [`RAW_PAYLOAD_PREFIX_BYTES`]), kept when it
    /// was rejected.
    pub raw_payload: Option<Vec<u8>>,
    /// The whole message's length in bytes, kept with `raw_payload`: longer than it when
    /// only a prefix was kept.
    pub raw_payload_length: Option<u64>,
    pub decided_at: DateTime<Utc>,
}

/// One supplier's offer of an item, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredOffer {
    pub supplier: SupplierId,
    pub quantity: i64,
    /// The greatest applied event still in effect.
    pub winner: Option<EventId>,
    pub state: OfferState,
}

/// One publish attempt of an item version to a channel.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishAttempt {
    pub channel: String,
    pub version: u64,
    pub attempt: u32,
    pub status: Option<u16>,
    pub result: String,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    pub attempted_at: DateTime<Utc>,
    /// What the channel was sent: its listing, the quantity its stock rules gave and the rule
    /// text; absent for an attempt that sent nothing (skipped) or recorded before rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<SentQuantity>,
}

/// What one publish attempt sent a channel, by the channel's rules.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentQuantity {
    /// The channel's id of the listing.
    pub listing: String,
    /// The quantity sent.
    pub quantity: i64,
    /// How the channel's stock rules reached it, e.g. `catalog 12; buffer 2: 10`.
    pub rule: String,
}

/// Everything known about one item: why it shows what it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemTrace {
    pub item: CatalogItem,
    pub offers: Vec<StoredOffer>,
    /// Every journaled event of the item's offers, in ordering-key order, with outcome and reason.
    pub events: Vec<JournalEntry>,
    pub pending_publishes: Vec<PendingPublish>,
    pub publish_attempts: Vec<PublishAttempt>,
}

/// An item waiting to be published on a channel: at most one per item and channel, holding
/// the newest version queued (older unsent versions were replaced by it).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingPublish {
    pub channel: String,
    pub version: u64,
    /// When this version was queued.
    pub enqueued_at: DateTime<Utc>,
    /// No publisher sends it before then: a time to come means a publisher has claimed it
    /// and is sending it (a marketplace feed is waited for minutes), or it waits out a
    /// retry's backoff or the channel's throttling.
    pub not_before: DateTime<Utc>,
    /// Failed sends of this item on this channel since it was last published (throttling
    /// is not a failure); it is dead-lettered when they reach the channel's `max_attempts`.
    pub failed_attempts: u32,
}

/// A tenant's sync flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantFlags {
    pub tenant: TenantId,
    pub sync_enabled: bool,
    /// Suppliers seen for this tenant and whether each is on.
    pub suppliers: BTreeMap<SupplierId, bool>,
}

/// A tenant's sync status for operators and launch signals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    pub tenant: TenantId,
    pub last_received_at: Option<DateTime<Utc>>,
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Journal rows by outcome name, redeliveries counted on their original.
    pub events_by_outcome: BTreeMap<String, u64>,
    pub redeliveries: u64,
    pub n_items: u64,
    /// Items waiting to be published on at least one channel (an item waiting on three
    /// channels is one).
    pub outbox_pending: u64,
}

/// What a publisher asks of `CatalogStore::claim_outbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxClaim {
    /// At most this many items.
    pub limit: usize,
    /// Claimed entries are not handed to another caller for this long.
    pub lease: std::time::Duration,
    /// An item is due once its newest version has waited this long (a burst of updates
    /// settles into one publish)…
    pub settle: std::time::Duration,
    /// …or once its oldest waiting version has waited this long, so a hot item whose newest
    /// version never settles is still published.
    pub max_wait: std::time::Duration,
}

impl OutboxClaim {
    /// Everything due now, no settling: for publishers that coalesce nothing.
    pub fn immediate(limit: usize, lease: std::time::Duration) -> Self {
        Self { limit, lease, settle: std::time::Duration::ZERO, max_wait: std::time::Duration::ZERO }
    }
}

/// A pending publish claimed from the outbox: the newest waiting version of one item for one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxEntry {
    /// The item at the version to send: every channel's request and idempotency key come
    /// from it.
    pub item: CatalogItem,
    pub channel: String,
    pub traceparent: Option<String>,
    /// Failures counted against the channel's budget for this version, before this claim:
    /// throttled attempts are not failures, and a newer version starts again at 0.
    pub attempts: u32,
    pub enqueued_at: DateTime<Utc>,
    /// The claim this entry was leased under, unique to it: the records of its sends change
    /// its outbox row only while this claim holds it (`PublishRecord::claim`). `None` for an
    /// entry no store claimed.
    pub claim: Option<uuid::Uuid>,
}

impl OutboxEntry {
    /// The row this entry was claimed as, to give it back or hold it longer.
    pub fn held_claim(&self) -> HeldClaim {
        HeldClaim { item_id: self.item.id(), claim: self.claim }
    }
}

/// A claimed outbox row of one channel as the round that claimed it names it when it gives
/// the row back (`OutboxStore::release_claims`) or holds it longer
/// (`OutboxStore::extend_claims`): either changes the row only while this claim holds it, so
/// a round whose lease passed never touches the claim of the publisher that took the row
/// since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeldClaim {
    pub item_id: ItemId,
    /// The claim the row was leased under (`OutboxEntry::claim`); `None` names the row
    /// whatever claim holds it (an entry no store claimed).
    pub claim: Option<uuid::Uuid>,
}

/// How one publish attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum PublishOutcome {
    /// The channel accepted this version (202, or the log publisher wrote it).
    Published,
    /// The channel already holds `current_version`, newer than this one (409).
    Superseded { current_version: u64 },
    /// Failed for now (5xx, 408, timeout): try again at the given time. Counts toward the
    /// channel's failure budget (the outbox row's `attempts`) if the row still holds this
    /// version.
    RetryAt(DateTime<Utc>),
    /// Throttled (429): try again at the given time. Not a failure: the budget is untouched.
    ThrottledUntil(DateTime<Utc>),
    /// Will not succeed by retrying (4xx, attempts exhausted): dead-lettered.
    DeadLettered,
    /// Not sent: the channel does not list the item's SKU (`unmapped_sku`). Done for this
    /// version, like a publish; nothing is accepted, and nothing fails.
    Skipped,
}

impl From<PublishResult> for PublishOutcome {
    /// A channel's answer: accepted is published, refused as older is superseded by the
    /// version it holds.
    fn from(result: PublishResult) -> Self {
        match result.current_version() {
            None => PublishOutcome::Published,
            Some(current_version) => PublishOutcome::Superseded { current_version },
        }
    }
}

impl PublishOutcome {
    /// The stable name recorded on the attempt and used as a metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            PublishOutcome::Published => "published",
            PublishOutcome::Superseded { .. } => "superseded",
            PublishOutcome::RetryAt(_) => "retry",
            PublishOutcome::ThrottledUntil(_) => "throttled",
            PublishOutcome::DeadLettered => "dead_lettered",
            PublishOutcome::Skipped => "skipped",
        }
    }
}

/// One finished publish attempt, recorded with `CatalogStore::record_publish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRecord {
    /// The claim the send was made under (`OutboxEntry::claim`). The record changes the item's
    /// outbox row only while that claim holds it: once its lease passed and another publisher
    /// claimed the row, the attempt, the version the channel holds and the dead letters are
    /// recorded, and the row is left to the claim that holds it (a retry's backoff, a
    /// requeue or a delete would land on a send in flight). `None` changes the row whatever
    /// holds it (a record not made from a claim).
    pub claim: Option<uuid::Uuid>,
    pub item_id: ItemId,
    pub channel: String,
    pub version: u64,
    /// Which attempt of the failure budget this was: the failures before it, plus 1. A
    /// throttled attempt uses none, so the send after it carries the same number.
    pub attempt: u32,
    pub outcome: PublishOutcome,
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    /// The dead-letter reason (for `DeadLettered`), e.g. `rejected_4xx`, `retries_exhausted`.
    pub dead_letter_reason: Option<String>,
    /// The response body kept with a dead letter.
    pub body: Option<String>,
    /// What was sent, by the channel's rules; `None` when nothing was.
    pub sent: Option<SentQuantity>,
}

/// Pending publishes of one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxDepth {
    pub channel: String,
    /// Items waiting, each once, at its newest version.
    pub pending: u64,
    /// When the longest-waiting item's oldest unsent version was queued.
    pub oldest_enqueued_at: Option<DateTime<Utc>>,
}
