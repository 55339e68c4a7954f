//! The backend-independent half of `apply_batch`: which keys to lock, and turning a
//! `catalog-core` plan into the rows to write. Backends only load, lock and persist.

use std::collections::{BTreeMap, HashMap};

use catalog_core::{
    event_ids, plan_batch, touched_keys, BatchPlan, CatalogItem, Decision, EventId, HeldReason, ItemId, ItemKey,
    OfferKey, OfferState, Outcome, PlanState, Sku, StockChange, SupplierEvent, SupplierId, SyncFlags, TenantId,
};
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::model::{
    BatchInput, BatchResult, ChangedItem, Checkpoint, IncomingEvent, Provenance, SourceRef, StoreConfig,
    RAW_PAYLOAD_PREFIX_BYTES,
};

/// The rows a batch touches, each list sorted and unique: the one order every backend
/// locks them in, so concurrent batches never deadlock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchKeys {
    pub tenants: Vec<TenantId>,
    pub suppliers: Vec<(TenantId, SupplierId)>,
    pub offers: Vec<OfferKey>,
    pub items: Vec<(ItemKey, ItemId)>,
    pub event_ids: Vec<EventId>,
}

impl BatchKeys {
    pub fn of(batch: &BatchInput) -> Self {
        let (offers, items) = touched_keys(&batch.events);
        let mut suppliers: Vec<(TenantId, SupplierId)> =
            offers.iter().map(|offer| (offer.tenant.clone(), offer.supplier.clone())).collect();
        suppliers.dedup();
        let mut tenants: Vec<TenantId> = suppliers.iter().map(|(tenant, _)| tenant.clone()).collect();
        tenants.dedup();
        let items = items.into_iter().map(|key| {
            let item_id = key.item_id();
            (key, item_id)
        });
        Self { tenants, suppliers, offers, items: items.collect(), event_ids: event_ids(&batch.events) }
    }
}

/// A journal row of an event id, as loaded by a backend before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorRow {
    pub event_id: EventId,
    /// `Some` for a held row, which is decided afresh, as it was journaled (the first
    /// accepted payload counts); `None` for any other decided row, which claims the id.
    pub held_event: Option<SupplierEvent>,
    pub fingerprint: u64,
    pub received_at: DateTime<Utc>,
    /// The journal row's id: with `received_at`, where a redelivery is counted.
    pub journal_id: i64,
    /// `false` when only the claim is left: retention archived and dropped the row (decision
    /// 0019). A redelivery then gets a journal row of its own, `duplicate`
    /// (`journal_row_archived`).
    pub journaled: bool,
}

/// The reason on the journal row of a redelivery whose first row retention archived.
pub const JOURNAL_ROW_ARCHIVED: &str = "journal_row_archived";

/// Sync flags as loaded for a batch; tenants and suppliers not found use the default.
#[derive(Debug, Clone, Default)]
pub struct FlagTable {
    pub tenants: HashMap<TenantId, bool>,
    /// Per tenant, its suppliers' flags: looked up per event without building a key.
    pub suppliers: HashMap<TenantId, HashMap<SupplierId, bool>>,
    pub default_enabled: bool,
}

impl FlagTable {
    /// Records a supplier's flag.
    pub fn set_supplier(&mut self, tenant: TenantId, supplier: SupplierId, enabled: bool) {
        self.suppliers.entry(tenant).or_default().insert(supplier, enabled);
    }
}

impl SyncFlags for FlagTable {
    fn check(&self, tenant: &TenantId, supplier: &SupplierId) -> Result<(), HeldReason> {
        if !self.tenants.get(tenant).copied().unwrap_or(self.default_enabled) {
            return Err(HeldReason::TenantSyncOff);
        }
        let enabled = self.suppliers.get(tenant).and_then(|suppliers| suppliers.get(supplier)).copied();
        if !enabled.unwrap_or(self.default_enabled) {
            return Err(HeldReason::SupplierSyncOff);
        }
        Ok(())
    }
}

/// What a backend loaded, under lock, for the batch's keys.
#[derive(Debug, Clone, Default)]
pub struct LoadedState {
    pub offers: HashMap<OfferKey, OfferState>,
    pub items: HashMap<ItemKey, catalog_core::ItemState>,
    pub prior: Vec<PriorRow>,
    pub flags: FlagTable,
}

/// A new journal row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalInsert {
    pub event_id: Option<EventId>,
    pub tenant: Option<TenantId>,
    pub supplier: Option<SupplierId>,
    pub sku: Option<Sku>,
    pub event_type: Option<&'static str>,
    pub quantity: Option<i64>,
    pub delta: Option<i64>,
    pub updated_at: Option<DateTime<Utc>>,
    /// `sequence` stored bit-for-bit in a signed 64-bit column; read back with `as u64`.
    pub sequence: Option<i64>,
    pub effective_at: Option<DateTime<Utc>>,
    pub clock_drift_clamped: bool,
    pub received_at: DateTime<Utc>,
    pub outcome: &'static str,
    pub reason: Option<&'static str>,
    pub detail: Option<String>,
    /// The fingerprint stored bit-for-bit in a signed 64-bit column.
    pub fingerprint: Option<i64>,
    pub redelivery_count: i64,
    pub payload_differs: bool,
    pub source: SourceRef,
    pub traceparent: Option<String>,
    /// The first [`RAW_PAYLOAD_PREFIX_BYTES`] of a rejected message…
    pub raw_payload: Option<Vec<u8>>,
    /// …and its whole length.
    pub raw_payload_length: Option<i64>,
}

/// A change to an existing journal row: a held event decided afresh, and/or redeliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalUpdate {
    pub event_id: EventId,
    /// The row's id and receive time (the journal's partition key), as loaded.
    pub journal_id: i64,
    pub received_at: DateTime<Utc>,
    /// The new decision for a held row; `None` leaves the decision as it was.
    pub redecided: Option<Redecided>,
    pub redeliveries_added: i64,
    pub payload_differs: bool,
}

/// A fresh decision for a held journal row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redecided {
    pub outcome: &'static str,
    pub reason: Option<&'static str>,
    pub effective_at: DateTime<Utc>,
    pub clock_drift_clamped: bool,
}

/// An offer's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferWrite {
    pub key: OfferKey,
    pub quantity: i64,
    pub winner: Option<EventId>,
    pub state: OfferState,
}

/// An outbox row: publish this item version to this channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxWrite {
    pub item_id: ItemId,
    pub tenant: TenantId,
    pub sku: String,
    pub quantity: i64,
    pub version: i64,
    pub channel: String,
    pub traceparent: Option<String>,
}

impl OutboxWrite {
    /// One row per channel of `config` serving `tenant`: an item version queued the normal way.
    pub fn on_its_channels<'a>(
        config: &'a StoreConfig,
        item_id: ItemId,
        tenant: &'a TenantId,
        sku: &'a str,
        quantity: i64,
        version: i64,
        traceparent: Option<&'a str>,
    ) -> impl Iterator<Item = OutboxWrite> + 'a {
        config.channels.iter().filter(move |channel| channel.serves(tenant)).map(move |channel| OutboxWrite {
            item_id,
            tenant: tenant.clone(),
            sku: sku.to_owned(),
            quantity,
            version,
            channel: channel.name.clone(),
            traceparent: traceparent.map(str::to_owned),
        })
    }
}

/// Everything one batch writes, derived from the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedWrites {
    /// New journal rows: decoded ones sorted by event id (lock order), then rejected ones.
    pub journal_inserts: Vec<JournalInsert>,
    /// Sorted by event id.
    pub journal_updates: Vec<JournalUpdate>,
    /// Sorted by key.
    pub offers: Vec<OfferWrite>,
    /// Changed items, sorted by key.
    pub items: Vec<ChangedItem>,
    pub outbox: Vec<OutboxWrite>,
    /// Sorted, one per (source, partition), the furthest position of the batch.
    pub checkpoints: Vec<Checkpoint>,
    pub result: BatchResult,
}

/// Plans the batch with `catalog-core` against what the backend loaded, and derives the rows.
///
/// A planned item below zero means the loaded offers and item were not read at one moment
/// (a backend's offer cache behind the item row): that is a [`StoreError::Conflict`], and
/// the backend plans the batch again with what it reads under locks. Nothing is written.
pub fn prepare(batch: &BatchInput, loaded: LoadedState, config: &StoreConfig) -> Result<PreparedWrites, StoreError> {
    let LoadedState { offers, items, prior: prior_rows, flags } = loaded;
    let state = PlanState {
        offers,
        items,
        prior: prior_rows
            .iter()
            .map(|row| {
                let prior = catalog_core::PriorEvent {
                    claimed: row.held_event.is_none(),
                    fingerprint: row.fingerprint,
                    first_received_at: row.received_at,
                    held_event: row.held_event.clone(),
                };
                (row.event_id, prior)
            })
            .collect(),
    };
    let plan = plan_batch(&batch.events, &state, &flags, config.clock);
    let mut writes = journal_writes(batch, &plan, &prior_rows);
    writes.offers = plan
        .offers
        .iter()
        .map(|(key, change)| OfferWrite {
            key: key.clone(),
            quantity: change.state.quantity(),
            winner: change.state.winner().map(|winner| winner.event_id),
            state: change.state.clone(),
        })
        .collect();
    let traceparents = item_traceparents(batch, &plan);
    writes.items = plan
        .items
        .iter()
        .map(|(key, change)| {
            let item = CatalogItem::new(key.clone(), change.state.quantity, change.state.version).map_err(|error| {
                StoreError::Conflict(format!("item {key} planned from rows read at different moments: {error}"))
            })?;
            Ok(ChangedItem { item, traceparent: traceparents.get(key).cloned() })
        })
        .collect::<Result<_, StoreError>>()?;
    writes.outbox = writes
        .items
        .iter()
        .flat_map(|changed| {
            let item = &changed.item;
            OutboxWrite::on_its_channels(
                config,
                item.id(),
                item.tenant(),
                item.sku().as_str(),
                item.quantity(),
                crate::rows::saturating_i64(item.version()),
                changed.traceparent.as_deref(),
            )
        })
        .collect();
    writes.checkpoints = furthest_checkpoints(&batch.checkpoints);
    writes.result = BatchResult {
        decisions: plan.decisions,
        changed_items: writes.items.clone(),
        applied_before: Vec::new(),
        of_another_log: Vec::new(),
    };
    Ok(writes)
}

/// The traceparent of the last applied event of each changed item, for its publish call.
fn item_traceparents(batch: &BatchInput, plan: &BatchPlan) -> HashMap<ItemKey, String> {
    let mut traceparents = HashMap::new();
    for (event, decision) in batch.events.iter().zip(&plan.decisions) {
        if let (Ok(decoded), Outcome::Applied, Some(traceparent)) =
            (&event.delivery.decoded, decision.outcome, &event.traceparent)
        {
            traceparents.insert(decoded.offer().item_key(), traceparent.to_string());
        }
    }
    traceparents
}

fn furthest_checkpoints(checkpoints: &[Checkpoint]) -> Vec<Checkpoint> {
    let mut furthest: BTreeMap<(&str, i32), &Checkpoint> = BTreeMap::new();
    for checkpoint in checkpoints {
        let entry = furthest.entry((checkpoint.source.as_str(), checkpoint.partition)).or_insert(checkpoint);
        // The later of two equal offsets wins: its cursor is the one written last.
        if checkpoint.position.offset >= entry.position.offset {
            *entry = checkpoint;
        }
    }
    furthest.into_values().cloned().collect()
}

/// Where an event id's journal record lives while the batch is prepared.
enum JournalTarget {
    Insert(usize),
    Update(usize),
}

/// What a delivery's decision writes over its journaled row: nothing for a duplicate (the
/// row keeps its outcome), else the new outcome (a held event decided).
fn redecided(event: &IncomingEvent, decision: &Decision) -> Option<Redecided> {
    (decision.outcome != Outcome::Duplicate).then(|| Redecided {
        outcome: decision.outcome.as_str(),
        reason: decision.reason(),
        effective_at: decision.effective.map_or(event.delivery.received_at, |e| e.key.effective_at),
        clock_drift_clamped: decision.effective.is_some_and(|e| e.clock_drift_clamped),
    })
}

fn journal_writes(batch: &BatchInput, plan: &BatchPlan, prior_rows: &[PriorRow]) -> PreparedWrites {
    let prior: HashMap<EventId, &PriorRow> = prior_rows.iter().map(|row| (row.event_id, row)).collect();
    let mut inserts: Vec<JournalInsert> = Vec::new();
    let mut rejected: Vec<JournalInsert> = Vec::new();
    let mut updates: Vec<JournalUpdate> = Vec::new();
    let mut targets: HashMap<EventId, JournalTarget> = HashMap::new();

    for (event, decision) in batch.events.iter().zip(&plan.decisions) {
        let counted = i64::from(event.provenance == Provenance::Received);
        let Ok(decoded) = &event.delivery.decoded else {
            rejected.push(new_row(event, decision));
            continue;
        };
        let event_id = decoded.event_id();
        let payload_differs = decision.redelivery.is_some_and(|redelivery| redelivery.payload_differs);
        match (targets.get(&event_id), prior.get(&event_id)) {
            // A repeat within the batch: count it on the record of its first delivery.
            (Some(JournalTarget::Insert(index)), _) => {
                inserts[*index].redelivery_count += counted;
                inserts[*index].payload_differs |= payload_differs;
            }
            (Some(JournalTarget::Update(index)), _) => {
                let update = &mut updates[*index];
                update.redeliveries_added += counted;
                update.payload_differs |= payload_differs;
                // The copy that decided a held event, after one that could not (it named
                // another offer): the journaled row takes its decision.
                if update.redecided.is_none() {
                    update.redecided = redecided(event, decision);
                }
            }
            (None, Some(row)) if !row.journaled => {
                // The claim outlived its row: this delivery is journaled on its own, as the
                // redelivery it is (counted, and whether it differs from the first), as the
                // journaled row it stands for would have been.
                targets.insert(event_id, JournalTarget::Insert(inserts.len()));
                let mut row = new_row(event, decision);
                row.reason = Some(JOURNAL_ROW_ARCHIVED);
                row.received_at = event.delivery.received_at;
                row.redelivery_count = counted;
                row.payload_differs = payload_differs;
                inserts.push(row);
            }
            (None, Some(row)) => {
                targets.insert(event_id, JournalTarget::Update(updates.len()));
                updates.push(JournalUpdate {
                    event_id,
                    journal_id: row.journal_id,
                    received_at: row.received_at,
                    redecided: redecided(event, decision),
                    redeliveries_added: counted,
                    payload_differs,
                });
            }
            (None, None) => {
                targets.insert(event_id, JournalTarget::Insert(inserts.len()));
                inserts.push(new_row(event, decision));
            }
        }
    }
    inserts.sort_by_key(|row| row.event_id);
    inserts.extend(rejected);
    updates.sort_by_key(|update| update.event_id);
    PreparedWrites { journal_inserts: inserts, journal_updates: updates, ..PreparedWrites::default() }
}

fn new_row(event: &IncomingEvent, decision: &Decision) -> JournalInsert {
    let mut row = JournalInsert {
        event_id: None,
        tenant: None,
        supplier: None,
        sku: None,
        event_type: None,
        quantity: None,
        delta: None,
        updated_at: None,
        sequence: None,
        effective_at: decision.effective.map(|effective| effective.key.effective_at),
        clock_drift_clamped: decision.effective.is_some_and(|effective| effective.clock_drift_clamped),
        received_at: decision.first_received_at,
        outcome: decision.outcome.as_str(),
        reason: decision.reason(),
        detail: None,
        fingerprint: None,
        redelivery_count: 0,
        payload_differs: false,
        source: event.source.clone(),
        traceparent: event.traceparent.as_ref().map(ToString::to_string),
        raw_payload: None,
        raw_payload_length: None,
    };
    match &event.delivery.decoded {
        Ok(decoded) => {
            let (quantity, delta) = match decoded.change() {
                StockChange::Updated { quantity } => (Some(quantity), None),
                StockChange::Adjusted { delta } => (None, Some(delta)),
            };
            row.event_id = Some(decoded.event_id());
            row.tenant = Some(decoded.offer().tenant.clone());
            row.supplier = Some(decoded.offer().supplier.clone());
            row.sku = Some(decoded.offer().sku.clone());
            row.event_type = Some(decoded.change().type_name());
            row.quantity = quantity;
            row.delta = delta;
            row.updated_at = Some(decoded.updated_at());
            row.sequence = decoded.sequence().map(|sequence| sequence as i64);
            row.fingerprint = Some(decoded.fingerprint() as i64);
        }
        Err(rejection) => {
            row.event_id = rejection.event_id;
            row.tenant = rejection.tenant.clone();
            // The SKU puts a rejection in its item's trace. The supplier stays unset: a
            // replay filtered by supplier reads decided rows of that supplier only.
            row.sku = rejection.sku.clone();
            row.detail = Some(rejection.detail.clone());
            let kept = event.raw.len().min(RAW_PAYLOAD_PREFIX_BYTES);
            row.raw_payload = Some(event.raw[..kept].to_vec());
            row.raw_payload_length = Some(event.payload_length.max(event.raw.len() as u64) as i64);
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use catalog_core::{encode, ItemState, StockChange};

    use super::*;

    /// An offer cache behind the item row (offer at 10, item still at 0): a snapshot of 0
    /// plans the item at -10. That is a conflict to plan again under locks, never a write.
    #[test]
    fn offers_and_an_item_read_at_different_moments_are_a_conflict() {
        let at: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("time");
        let key = OfferKey {
            tenant: TenantId::parse("canary").expect("tenant"),
            supplier: SupplierId::parse("acme").expect("supplier"),
            sku: Sku::parse("ABC-1").expect("sku"),
        };
        let earlier = catalog_core::OrderingKey {
            effective_at: at - chrono::Duration::hours(1),
            sequence: 0,
            event_id: EventId(uuid::Uuid::nil()),
        };
        let snapshot = catalog_core::Snapshot { key: earlier, quantity: 10 };
        let offer_at_10 = OfferState::from_parts(Some(snapshot), None, Vec::new()).expect("valid state");
        let loaded = |item_quantity| LoadedState {
            offers: HashMap::from([(key.clone(), offer_at_10.clone())]),
            items: HashMap::from([(key.item_key(), ItemState { quantity: item_quantity, version: 3 })]),
            prior: Vec::new(),
            flags: FlagTable { default_enabled: true, ..FlagTable::default() },
        };
        let event = SupplierEvent::new(
            EventId(uuid::Uuid::from_u128(2)),
            key.clone(),
            StockChange::Updated { quantity: 0 },
            at,
            None,
        )
        .expect("valid event");
        let source = SourceRef { source: "test".into(), partition: 0, offset: 0 };
        let later =
            BatchInput::new(vec![IncomingEvent::received(encode(&event).into_bytes(), at, source, None)], Vec::new());
        let config = StoreConfig::default();
        let consistent = prepare(&later, loaded(10), &config).expect("planned");
        assert_eq!((consistent.items[0].item.quantity(), consistent.items[0].item.version()), (0, 4));
        let refused = prepare(&later, loaded(0), &config);
        assert!(matches!(&refused, Err(StoreError::Conflict(reason)) if reason.contains("ABC-1")), "{refused:?}");
    }
}
