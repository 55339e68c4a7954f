//! Plain row shapes shared by the SQL backends, and their checked conversion to domain
//! values, so both stores read the same columns the same way.

use catalog_core::{
    Adjustment, CatalogItem, EventId, FoldedAdjustments, ItemId, ItemKey, OfferKey, OfferState, OrderingKey, Outcome,
    Sku, Snapshot, StockChange, SupplierEvent, SupplierId, TenantId,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::{JournalEntry, SourceRef, StoredOffer};

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A count, limit or version for a signed 64-bit column: one past `i64::MAX` is held there
/// rather than wrapped to a negative number (a negative `LIMIT` is no limit on SQLite and
/// refused by PostgreSQL; a negative version is outranked by every real one).
pub fn saturating_i64<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

pub fn tenant(value: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(value).map_err(|error| corrupt(format_args!("stored tenant {value:?} {error}")))
}

pub fn supplier(value: &str) -> Result<SupplierId, StoreError> {
    SupplierId::parse(value).map_err(|error| corrupt(format_args!("stored supplier {value:?} {error}")))
}

pub fn sku(value: &str) -> Result<Sku, StoreError> {
    Sku::parse(value).map_err(|error| corrupt(format_args!("stored sku {value:?} {error}")))
}

pub fn version(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format_args!("stored version {value} is negative")))
}

/// What a publish attempt sent: listing, quantity and rule, all three or none.
pub fn sent_quantity(
    listing: Option<String>,
    quantity: Option<i64>,
    rule: Option<String>,
) -> Result<Option<crate::SentQuantity>, StoreError> {
    match (listing, quantity, rule) {
        (Some(listing), Some(quantity), Some(rule)) => Ok(Some(crate::SentQuantity { listing, quantity, rule })),
        (None, None, None) => Ok(None),
        _ => Err(corrupt(format_args!("a publish attempt's listing, sent quantity and rule are only partly stored"))),
    }
}

/// A journaled drift's kind.
pub fn drift_kind(value: &str) -> Result<catalog_core::DriftKind, StoreError> {
    catalog_core::DriftKind::parse(value).ok_or_else(|| corrupt(format_args!("stored drift kind {value:?} is unknown")))
}

/// A drift's shown quantity and version, both or neither.
pub fn shown(quantity: Option<i64>, version: Option<i64>) -> Result<Option<catalog_core::Shown>, StoreError> {
    match (quantity, version) {
        (Some(quantity), Some(version)) => Ok(Some(catalog_core::Shown { quantity, version: self::version(version)? })),
        (None, None) => Ok(None),
        _ => Err(corrupt("a drift's shown quantity and version are stored both or neither")),
    }
}

/// The item a publish dead letter's `subject` names.
pub fn subject_item(value: &str) -> Result<ItemId, StoreError> {
    value.parse().map(ItemId).map_err(|_| corrupt(format_args!("dead letter subject {value:?} is not an item id")))
}

/// A stored dead-letter resolution.
pub fn resolution(value: &str) -> Result<crate::DeadLetterResolution, StoreError> {
    crate::DeadLetterResolution::parse(value)
        .ok_or_else(|| corrupt(format_args!("stored dead letter resolution {value:?} is unknown")))
}

/// An offer's state columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferColumns {
    pub snapshot_quantity: Option<i64>,
    pub snapshot_effective_at: Option<DateTime<Utc>>,
    pub snapshot_sequence: Option<i64>,
    pub snapshot_event_id: Option<Uuid>,
    /// JSON array of `[effective_at_micros, sequence, event_id, delta]`, sorted by key.
    pub adjustments: String,
    /// Adjustments folded beyond the horizon: JSON `[through_effective_at_micros,
    /// through_sequence, through_event_id, delta, count]`, or `None`.
    pub folded: Option<String>,
    /// [`OfferState::clamped_until`].
    pub clamped_until: Option<DateTime<Utc>>,
}

impl OfferColumns {
    pub fn from_state(state: &OfferState) -> Self {
        let adjustments: Vec<(i64, i64, Uuid, i64)> = state
            .adjustments()
            .iter()
            .map(|adjustment| {
                let key = adjustment.key;
                (key.effective_at.timestamp_micros(), key.sequence as i64, key.event_id.0, adjustment.delta)
            })
            .collect();
        Self {
            snapshot_quantity: state.snapshot().map(|snapshot| snapshot.quantity),
            snapshot_effective_at: state.snapshot().map(|snapshot| snapshot.key.effective_at),
            snapshot_sequence: state.snapshot().map(|snapshot| snapshot.key.sequence as i64),
            snapshot_event_id: state.snapshot().map(|snapshot| snapshot.key.event_id.0),
            adjustments: serde_json::to_string(&adjustments).expect("tuples of integers and uuids always serialize"),
            folded: state.folded().map(|folded| {
                let through = folded.through;
                let row = (
                    through.effective_at.timestamp_micros(),
                    through.sequence as i64,
                    through.event_id.0,
                    folded.delta,
                    folded.count as i64,
                );
                serde_json::to_string(&row).expect("a tuple of integers and a uuid always serializes")
            }),
            clamped_until: state.clamped_until(),
        }
    }

    pub fn into_state(self) -> Result<OfferState, StoreError> {
        let snapshot = match (self.snapshot_quantity, self.snapshot_effective_at, self.snapshot_event_id) {
            (Some(quantity), Some(effective_at), Some(event_id)) => Some(Snapshot {
                key: OrderingKey {
                    effective_at,
                    sequence: self.snapshot_sequence.unwrap_or(0) as u64,
                    event_id: EventId(event_id),
                },
                quantity,
            }),
            (None, None, None) => None,
            _ => return Err(corrupt("offer snapshot columns are partly null")),
        };
        let adjustments: Vec<(i64, i64, Uuid, i64)> = serde_json::from_str(&self.adjustments)
            .map_err(|error| corrupt(format_args!("offer adjustments are not valid JSON: {error}")))?;
        let adjustments = adjustments
            .into_iter()
            .map(|(micros, sequence, event_id, delta)| {
                let effective_at = DateTime::from_timestamp_micros(micros)
                    .ok_or_else(|| corrupt(format_args!("adjustment time {micros} out of range")))?;
                Ok(Adjustment {
                    key: OrderingKey { effective_at, sequence: sequence as u64, event_id: EventId(event_id) },
                    delta,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let folded = self
            .folded
            .map(|folded| {
                let (micros, sequence, event_id, delta, count): (i64, i64, Uuid, i64, i64) =
                    serde_json::from_str(&folded)
                        .map_err(|error| corrupt(format_args!("offer fold is not valid JSON: {error}")))?;
                let effective_at = DateTime::from_timestamp_micros(micros)
                    .ok_or_else(|| corrupt(format_args!("fold time {micros} out of range")))?;
                Ok::<_, StoreError>(FoldedAdjustments {
                    through: OrderingKey { effective_at, sequence: sequence as u64, event_id: EventId(event_id) },
                    delta,
                    count: u64::try_from(count).map_err(|_| corrupt(format_args!("fold count {count} is negative")))?,
                })
            })
            .transpose()?;
        OfferState::from_parts(snapshot, folded, adjustments)
            .map(|state| state.with_clamped_until(self.clamped_until))
            .map_err(|error| corrupt(format_args!("stored offer state: {error}")))
    }
}

/// An item row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub item_id: Uuid,
    pub tenant: String,
    pub sku: String,
    pub quantity: i64,
    pub version: i64,
}

impl ItemRow {
    pub fn into_item(self) -> Result<CatalogItem, StoreError> {
        catalog_item(self.item_id, &self.tenant, &self.sku, self.quantity, self.version)
    }
}

/// An item's columns as a [`CatalogItem`], checked: its stored id is the one its key
/// derives, its quantity never below zero.
pub fn catalog_item(
    item_id: Uuid,
    tenant_id: &str,
    sku_value: &str,
    quantity: i64,
    version_value: i64,
) -> Result<CatalogItem, StoreError> {
    let key = ItemKey { tenant: tenant(tenant_id)?, sku: sku(sku_value)? };
    let item = CatalogItem::new(key, quantity, version(version_value)?)
        .map_err(|error| corrupt(format_args!("stored item {item_id}: {error}")))?;
    if item.id().0 != item_id {
        return Err(corrupt(format_args!("stored item id {item_id} is not the id of {}", item.key())));
    }
    Ok(item)
}

/// A claimed outbox row's item (`catalog_item`), or `None` once said: a row that cannot be
/// read (its id not its key's, a SKU the rules refuse since) is left out of the claim that
/// leased it, which stays, and logged at error for an operator, with its channel, row and
/// fault. It is not lost: it waits in the outbox, counted in its depth, until it is mended
/// or deleted by hand. Failing the whole claim instead, the row came first in line again
/// and its channel sent nothing more.
pub fn readable_outbox_row(channel: &str, row: &str, item: Result<CatalogItem, StoreError>) -> Option<CatalogItem> {
    match item {
        Ok(item) => Some(item),
        Err(error) => {
            tracing::error!(channel, row, %error, reason = "unreadable_row", "an outbox row cannot be read: left out of the claim, waiting in the outbox until it is mended or deleted");
            None
        }
    }
}

/// An offer row with its supplier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRow {
    pub supplier: String,
    pub quantity: i64,
    pub winner_event_id: Option<Uuid>,
    pub columns: OfferColumns,
}

impl OfferRow {
    pub fn into_offer(self) -> Result<StoredOffer, StoreError> {
        Ok(StoredOffer {
            supplier: supplier(&self.supplier)?,
            quantity: self.quantity,
            winner: self.winner_event_id.map(EventId),
            state: self.columns.into_state()?,
        })
    }
}

/// A journal row, column for column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    pub journal_id: i64,
    pub event_id: Option<Uuid>,
    pub tenant: Option<String>,
    pub supplier: Option<String>,
    pub sku: Option<String>,
    pub event_type: Option<String>,
    pub quantity: Option<i64>,
    pub delta: Option<i64>,
    pub updated_at: Option<DateTime<Utc>>,
    pub sequence: Option<i64>,
    pub effective_at: Option<DateTime<Utc>>,
    pub clock_drift_clamped: bool,
    pub received_at: DateTime<Utc>,
    pub outcome: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub redelivery_count: i64,
    pub payload_differs: bool,
    pub source: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub traceparent: Option<String>,
    pub raw_payload: Option<Vec<u8>>,
    /// `None` on rows journaled before the length was kept: their `raw_payload` is whole.
    pub raw_payload_length: Option<i64>,
    pub decided_at: DateTime<Utc>,
}

impl JournalRow {
    pub fn into_entry(self) -> Result<JournalEntry, StoreError> {
        let outcome = Outcome::from_parts(&self.outcome, self.reason.as_deref()).ok_or_else(|| {
            corrupt(format_args!(
                "journal row {} has unknown outcome {:?}/{:?}",
                self.journal_id, self.outcome, self.reason
            ))
        })?;
        let change = stock_change(self.event_type.as_deref(), self.quantity, self.delta)
            .map_err(|error| corrupt(format_args!("journal row {}: {error}", self.journal_id)))?;
        Ok(JournalEntry {
            journal_id: self.journal_id,
            event_id: self.event_id.map(EventId),
            tenant: self.tenant,
            supplier: self.supplier,
            sku: self.sku,
            change,
            updated_at: self.updated_at,
            sequence: self.sequence.map(|sequence| sequence as u64),
            effective_at: self.effective_at,
            clock_drift_clamped: self.clock_drift_clamped,
            received_at: self.received_at,
            outcome,
            reason: self.reason,
            detail: self.detail,
            redelivery_count: u32::try_from(self.redelivery_count).unwrap_or(u32::MAX),
            payload_differs: self.payload_differs,
            source: SourceRef {
                source: self.source.into(),
                partition: self.source_partition,
                offset: self.source_offset,
            },
            traceparent: self.traceparent,
            raw_payload_length: match self.raw_payload_length {
                Some(length) => Some(u64::try_from(length).map_err(|_| {
                    corrupt(format_args!("journal row {} has raw_payload_length {length}", self.journal_id))
                })?),
                None => self.raw_payload.as_ref().map(|raw| raw.len() as u64),
            },
            raw_payload: self.raw_payload,
            decided_at: self.decided_at,
        })
    }
}

/// A journaled event's change from its columns; `None` for a row without a type (a rejection).
fn stock_change(
    event_type: Option<&str>,
    quantity: Option<i64>,
    delta: Option<i64>,
) -> Result<Option<StockChange>, String> {
    match (event_type, quantity, delta) {
        (Some("inventory.updated"), Some(quantity), _) => Ok(Some(StockChange::Updated { quantity })),
        (Some("inventory.adjusted"), _, Some(delta)) => Ok(Some(StockChange::Adjusted { delta })),
        (None, _, _) => Ok(None),
        (other, quantity, delta) => Err(format!("type {other:?} with quantity {quantity:?} and delta {delta:?}")),
    }
}

/// The columns of a decided journal row that describe its event: what a held event is
/// decided afresh from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournaledEventRow {
    pub event_id: Uuid,
    pub tenant: Option<String>,
    pub supplier: Option<String>,
    pub sku: Option<String>,
    pub event_type: Option<String>,
    pub quantity: Option<i64>,
    pub delta: Option<i64>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Stored bit for bit in a signed 64-bit column.
    pub sequence: Option<i64>,
}

impl JournaledEventRow {
    /// The event as it was journaled; a decided row that does not describe a valid event is
    /// corrupt.
    pub fn into_event(self) -> Result<SupplierEvent, StoreError> {
        let event_id = self.event_id;
        let missing = |column: &str| corrupt(format_args!("decided journal row of event {event_id} has no {column}"));
        let offer = OfferKey {
            tenant: tenant(self.tenant.as_deref().ok_or_else(|| missing("tenant"))?)?,
            supplier: supplier(self.supplier.as_deref().ok_or_else(|| missing("supplier"))?)?,
            sku: sku(self.sku.as_deref().ok_or_else(|| missing("sku"))?)?,
        };
        let change = stock_change(self.event_type.as_deref(), self.quantity, self.delta)
            .map_err(|error| corrupt(format_args!("decided journal row of event {event_id}: {error}")))?
            .ok_or_else(|| missing("type"))?;
        let updated_at = writable(self.updated_at.ok_or_else(|| missing("updated_at"))?);
        SupplierEvent::new(EventId(event_id), offer, change, updated_at, self.sequence.map(|sequence| sequence as u64))
            .map_err(|error| corrupt(format_args!("decided journal row of event {event_id}: {error}")))
    }
}

/// A journaled `updated_at` held within the years `SupplierEvent::new` takes (0000 to 9999).
/// Rows journaled before catalog-core refused the others may lie outside: one of a later year
/// was clamped to its receipt + 5 minutes when decided, and is again once held at 9999; one
/// before the year 0000 is older than anything it meets either way. A held row must load,
/// not be corrupt and stop every batch of its offer.
fn writable(updated_at: DateTime<Utc>) -> DateTime<Utc> {
    let first = DateTime::<Utc>::from_naive_utc_and_offset(
        chrono::NaiveDate::from_ymd_opt(0, 1, 1).and_then(|day| day.and_hms_opt(0, 0, 0)).expect("a valid date"),
        Utc,
    );
    let last = DateTime::<Utc>::from_naive_utc_and_offset(
        chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
            .and_then(|day| day.and_hms_micro_opt(23, 59, 59, 999_999))
            .expect("a valid date"),
        Utc,
    );
    updated_at.clamp(first, last)
}

/// Journal entries of an item in the order that explains it: by ordering key, then received.
pub fn sort_for_trace(entries: &mut [JournalEntry]) {
    entries.sort_by(|a, b| {
        let key = |entry: &JournalEntry| {
            (entry.effective_at, entry.sequence.unwrap_or(0), entry.event_id, entry.received_at, entry.journal_id)
        };
        key(a).cmp(&key(b))
    });
}

/// A feed's waiting manual run from its columns: none unless kind, requester and time are
/// all stored; a backfill's range checked by [`crate::FeedRunKind::from_stored`].
pub fn run_request(
    kind: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    requested_by: Option<String>,
    requested_at: Option<DateTime<Utc>>,
) -> Result<Option<crate::FeedRunRequest>, StoreError> {
    let (Some(kind), Some(requested_by), Some(requested_at)) = (kind, requested_by, requested_at) else {
        return Ok(None);
    };
    let kind = crate::FeedRunKind::from_stored(&kind, since, until)?;
    Ok(Some(crate::FeedRunRequest { kind, requested_by, requested_at }))
}

/// Rows of `(day, outcome, events, redeliveries)`, ordered by day, as one
/// [`crate::FeedJournalDay`] per day in that order.
pub fn journal_days(
    rows: impl IntoIterator<Item = (chrono::NaiveDate, String, u64, u64)>,
) -> Vec<crate::FeedJournalDay> {
    let mut days: Vec<crate::FeedJournalDay> = Vec::new();
    for (date, outcome, n_events, redeliveries) in rows {
        match days.last_mut() {
            Some(day) if day.date == date => {
                day.by_outcome.insert(outcome, n_events);
                day.redeliveries += redeliveries;
            }
            _ => days.push(crate::FeedJournalDay {
                date,
                by_outcome: std::collections::BTreeMap::from([(outcome, n_events)]),
                redeliveries,
            }),
        }
    }
    days
}

/// The SKUs several tenants hold, from `(sku, tenant)` rows of those SKUs' items (any order):
/// each SKU once, in byte order, with its tenants in byte order.
pub fn shared_skus(rows: Vec<(String, String)>) -> Result<Vec<crate::SharedSku>, StoreError> {
    let mut by_sku: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for (sku, tenant) in rows {
        by_sku.entry(sku).or_default().push(tenant);
    }
    by_sku
        .into_iter()
        .filter(|(_, tenants)| tenants.len() > 1)
        .map(|(sku_text, mut tenants)| {
            tenants.sort_unstable();
            Ok(crate::SharedSku {
                sku: sku(&sku_text)?,
                tenants: tenants.iter().map(|t| tenant(t)).collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_row_is_checked_against_its_key() {
        let key = ItemKey { tenant: tenant("canary").unwrap(), sku: sku("A-1").unwrap() };
        let id = key.item_id().0;
        let item = catalog_item(id, "canary", "a-1", 5, 2).expect("a sound row");
        assert_eq!((item.key(), item.quantity(), item.version()), (key, 5, 2));

        let cases = [
            ("another item's id", catalog_item(Uuid::nil(), "canary", "A-1", 5, 2)),
            ("a quantity below zero", catalog_item(id, "canary", "A-1", -1, 2)),
            ("a negative version", catalog_item(id, "canary", "A-1", 5, -2)),
        ];
        for (what, result) in cases {
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{what}: {result:?}");
        }
    }

    /// A row journaled before catalog-core refused years past 9999 (or before 0000) still
    /// loads, at the nearest instant an event can hold.
    #[test]
    fn a_journaled_event_of_a_year_rfc_3339_cannot_write_loads_at_the_nearest_it_can() {
        let row = |updated_at: &str| JournaledEventRow {
            event_id: Uuid::from_u128(1),
            tenant: Some("canary".into()),
            supplier: Some("acme".into()),
            sku: Some("A-1".into()),
            event_type: Some("inventory.updated".into()),
            quantity: Some(3),
            delta: None,
            updated_at: Some(updated_at.parse().expect("a time")),
            sequence: None,
        };
        let loaded = |updated_at: &str| row(updated_at).into_event().expect("loads").updated_at().to_rfc3339();
        assert_eq!(loaded("+10000-01-01T00:59:59Z"), "9999-12-31T23:59:59.999999+00:00");
        assert_eq!(loaded("-0001-12-31T23:00:00Z"), "0000-01-01T00:00:00+00:00");
        assert_eq!(loaded("2026-06-01T12:00:00Z"), "2026-06-01T12:00:00+00:00");
    }
}
