//! Reading Postgres rows without panicking: every column is read by name through
//! [`column`], and a value that does not decode, or does not fit what the read model
//! holds, is a classified `StoreError` (corrupt data, or a schema this build does not know),
//! as in the SQLite store. The journal's columns are listed once, here.

pub(crate) use catalog_store::rows::saturating_i64;
use catalog_store::rows::{ItemRow, JournalRow, OfferColumns, OfferRow};
use catalog_store::{JournalEntry, StoreError};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::store_error;

/// The journal's columns that describe an event and its decision, in the order every
/// statement writes and reads them: the one list the reads and the insert are built from.
macro_rules! journal_event_columns {
    () => {
        "event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, updated_at, sequence, effective_at, \
         clock_drift_clamped, received_at, outcome, reason, detail, redelivery_count, payload_differs, source, \
         source_partition, source_offset, traceparent, raw_payload, raw_payload_length"
    };
}

/// The columns [`journal_row`] reads: every query that returns journal entries selects these.
pub(crate) const JOURNAL_COLUMNS: &str = concat!("journal_id, ", journal_event_columns!(), ", decided_at");

/// The columns a new journal row is copied in with, in this order.
pub(crate) const JOURNAL_INSERT_COLUMNS: &str = concat!(journal_event_columns!(), ", fingerprint, last_redelivered_at");

/// The offer state columns [`offer_columns`] reads.
pub(crate) const OFFER_STATE_COLUMNS: &str =
    "snapshot_quantity, snapshot_effective_at, snapshot_sequence, snapshot_event_id, adjustments, folded, clamped_until";

/// The columns [`item_row`] reads.
pub(crate) const ITEM_COLUMNS: &str = "item_id, tenant_id, sku, quantity, version";

/// One column of `row`, by name.
pub(crate) fn column<'r, T>(row: &'r PgRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name).map_err(store_error)
}

/// A count or other non-negative integer column, narrowed to the type the read model holds.
pub(crate) fn narrowed<T: TryFrom<i64>>(row: &PgRow, name: &str) -> Result<T, StoreError> {
    let stored: i64 = column(row, name)?;
    T::try_from(stored).map_err(|_| StoreError::Corrupt(format!("{name} {stored} is out of range")))
}

/// A nullable non-negative integer column, narrowed like [`narrowed`].
pub(crate) fn optional_narrowed<T: TryFrom<i64>>(row: &PgRow, name: &str) -> Result<Option<T>, StoreError> {
    let stored: Option<i64> = column(row, name)?;
    stored
        .map(|stored| T::try_from(stored).map_err(|_| StoreError::Corrupt(format!("{name} {stored} is out of range"))))
        .transpose()
}

/// An `integer` column narrowed like [`narrowed`].
pub(crate) fn narrowed_int4<T: TryFrom<i32>>(row: &PgRow, name: &str) -> Result<T, StoreError> {
    let stored: i32 = column(row, name)?;
    T::try_from(stored).map_err(|_| StoreError::Corrupt(format!("{name} {stored} is out of range")))
}

/// Journal rows read with [`JOURNAL_COLUMNS`], as entries.
pub(crate) fn journal_entries(rows: &[PgRow]) -> Result<Vec<JournalEntry>, StoreError> {
    rows.iter().map(|row| journal_row(row)?.into_entry()).collect()
}

/// Reads [`JOURNAL_COLUMNS`].
pub(crate) fn journal_row(row: &PgRow) -> Result<JournalRow, StoreError> {
    Ok(JournalRow {
        journal_id: column(row, "journal_id")?,
        event_id: column(row, "event_id")?,
        tenant: column(row, "tenant_id")?,
        supplier: column(row, "supplier_id")?,
        sku: column(row, "sku")?,
        event_type: column(row, "event_type")?,
        quantity: column(row, "quantity")?,
        delta: column(row, "delta")?,
        updated_at: column(row, "updated_at")?,
        sequence: column(row, "sequence")?,
        effective_at: column(row, "effective_at")?,
        clock_drift_clamped: column(row, "clock_drift_clamped")?,
        received_at: column(row, "received_at")?,
        outcome: column(row, "outcome")?,
        reason: column(row, "reason")?,
        detail: column(row, "detail")?,
        redelivery_count: column(row, "redelivery_count")?,
        payload_differs: column(row, "payload_differs")?,
        source: column(row, "source")?,
        source_partition: column(row, "source_partition")?,
        source_offset: column(row, "source_offset")?,
        traceparent: column(row, "traceparent")?,
        raw_payload: column(row, "raw_payload")?,
        raw_payload_length: column(row, "raw_payload_length")?,
        decided_at: column(row, "decided_at")?,
    })
}

/// Reads [`OFFER_STATE_COLUMNS`].
pub(crate) fn offer_columns(row: &PgRow) -> Result<OfferColumns, StoreError> {
    Ok(OfferColumns {
        snapshot_quantity: column(row, "snapshot_quantity")?,
        snapshot_effective_at: column(row, "snapshot_effective_at")?,
        snapshot_sequence: column(row, "snapshot_sequence")?,
        snapshot_event_id: column(row, "snapshot_event_id")?,
        adjustments: column(row, "adjustments")?,
        folded: column(row, "folded")?,
        clamped_until: column(row, "clamped_until")?,
    })
}

/// Reads `supplier_id, quantity, winner_event_id` and [`OFFER_STATE_COLUMNS`].
pub(crate) fn offer_row(row: &PgRow) -> Result<OfferRow, StoreError> {
    Ok(OfferRow {
        supplier: column(row, "supplier_id")?,
        quantity: column(row, "quantity")?,
        winner_event_id: column(row, "winner_event_id")?,
        columns: offer_columns(row)?,
    })
}

/// Reads [`ITEM_COLUMNS`].
pub(crate) fn item_row(row: &PgRow) -> Result<ItemRow, StoreError> {
    Ok(ItemRow {
        item_id: column(row, "item_id")?,
        tenant: column(row, "tenant_id")?,
        sku: column(row, "sku")?,
        quantity: column(row, "quantity")?,
        version: column(row, "version")?,
    })
}
