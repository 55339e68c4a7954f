//! SQLite column conventions and row reading: timestamps as INTEGER microseconds since the
//! Unix epoch (UTC), UUIDs as 16-byte BLOBs, booleans as 0/1, and rows into the shared
//! `catalog_store::rows` shapes so both SQL backends read columns the same way.

pub(crate) use catalog_store::rows::saturating_i64;
use catalog_store::rows::{ItemRow, JournalRow, OfferColumns, OfferRow};
use catalog_store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::error::store_error;

/// The journal's columns that describe an event and its decision, in the order every
/// statement writes and reads them: the one list the reads and the insert are built from.
macro_rules! journal_event_columns {
    () => {
        "event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, updated_at, sequence, effective_at, \
         clock_drift_clamped, received_at, outcome, reason, detail, redelivery_count, payload_differs, source, \
         source_partition, source_offset, traceparent, raw_payload, raw_payload_length"
    };
}

/// The columns `journal_row` reads: every query that returns journal entries selects these.
pub(crate) const JOURNAL_COLUMNS: &str = concat!("journal_id, ", journal_event_columns!(), ", decided_at");

/// The columns a new journal row is written with (`?1` to `?26`, in this order).
pub(crate) const JOURNAL_INSERT_COLUMNS: &str =
    concat!(journal_event_columns!(), ", fingerprint, decided_at, last_redelivered_at");

/// The offer state columns that `OfferColumns` maps, shared by the load and the trace query.
pub(crate) const OFFER_STATE_COLUMNS: &str =
    "snapshot_quantity, snapshot_effective_at, snapshot_sequence, snapshot_event_id, adjustments, folded, clamped_until";

pub(crate) const ITEM_COLUMNS: &str = "item_id, tenant_id, sku, quantity, version";

/// A list of strings as a JSON array, the one way a statement takes a list (`json_each`).
pub(crate) fn json_strings<S: AsRef<str>>(strings: impl IntoIterator<Item = S>) -> String {
    let strings: Vec<String> = strings.into_iter().map(|string| string.as_ref().to_owned()).collect();
    serde_json::to_string(&strings).expect("a list of strings serializes")
}

/// A timestamp as stored: whole microseconds since the Unix epoch, UTC.
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn column<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(store_error)
}

/// A non-null timestamp column.
pub(crate) fn time_column(row: &SqliteRow, name: &str) -> Result<DateTime<Utc>, StoreError> {
    let stored: i64 = column(row, name)?;
    DateTime::from_timestamp_micros(stored).ok_or_else(|| corrupt(format_args!("{name} {stored} is out of range")))
}

pub(crate) fn optional_time_column(row: &SqliteRow, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let stored: Option<i64> = column(row, name)?;
    stored
        .map(|stored| {
            DateTime::from_timestamp_micros(stored)
                .ok_or_else(|| corrupt(format_args!("{name} {stored} is out of range")))
        })
        .transpose()
}

/// A non-null UUID column: exactly 16 bytes.
pub(crate) fn uuid_column(row: &SqliteRow, name: &str) -> Result<Uuid, StoreError> {
    let stored: Vec<u8> = column(row, name)?;
    Uuid::from_slice(&stored).map_err(|_| corrupt(format_args!("{name} is {} bytes, not a 16-byte uuid", stored.len())))
}

pub(crate) fn optional_uuid_column(row: &SqliteRow, name: &str) -> Result<Option<Uuid>, StoreError> {
    let stored: Option<Vec<u8>> = column(row, name)?;
    stored
        .map(|stored| {
            Uuid::from_slice(&stored)
                .map_err(|_| corrupt(format_args!("{name} is {} bytes, not a 16-byte uuid", stored.len())))
        })
        .transpose()
}

/// An unsigned column that must fit the narrower type the read model uses.
pub(crate) fn narrowed<T: TryFrom<i64>>(name: &str, stored: i64) -> Result<T, StoreError> {
    T::try_from(stored).map_err(|_| corrupt(format_args!("{name} {stored} is out of range")))
}

/// Reads `JOURNAL_COLUMNS`.
pub(crate) fn journal_row(row: &SqliteRow) -> Result<JournalRow, StoreError> {
    Ok(JournalRow {
        journal_id: column(row, "journal_id")?,
        event_id: optional_uuid_column(row, "event_id")?,
        tenant: column(row, "tenant_id")?,
        supplier: column(row, "supplier_id")?,
        sku: column(row, "sku")?,
        event_type: column(row, "event_type")?,
        quantity: column(row, "quantity")?,
        delta: column(row, "delta")?,
        updated_at: optional_time_column(row, "updated_at")?,
        sequence: column(row, "sequence")?,
        effective_at: optional_time_column(row, "effective_at")?,
        clock_drift_clamped: column(row, "clock_drift_clamped")?,
        received_at: time_column(row, "received_at")?,
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
        decided_at: time_column(row, "decided_at")?,
    })
}

/// Reads `OFFER_STATE_COLUMNS`.
pub(crate) fn offer_columns(row: &SqliteRow) -> Result<OfferColumns, StoreError> {
    Ok(OfferColumns {
        snapshot_quantity: column(row, "snapshot_quantity")?,
        snapshot_effective_at: optional_time_column(row, "snapshot_effective_at")?,
        snapshot_sequence: column(row, "snapshot_sequence")?,
        snapshot_event_id: optional_uuid_column(row, "snapshot_event_id")?,
        adjustments: column(row, "adjustments")?,
        folded: column(row, "folded")?,
        clamped_until: optional_time_column(row, "clamped_until")?,
    })
}

/// Reads `supplier_id, quantity, winner_event_id` and `OFFER_STATE_COLUMNS`.
pub(crate) fn offer_row(row: &SqliteRow) -> Result<OfferRow, StoreError> {
    Ok(OfferRow {
        supplier: column(row, "supplier_id")?,
        quantity: column(row, "quantity")?,
        winner_event_id: optional_uuid_column(row, "winner_event_id")?,
        columns: offer_columns(row)?,
    })
}

/// Reads `ITEM_COLUMNS`.
pub(crate) fn item_row(row: &SqliteRow) -> Result<ItemRow, StoreError> {
    Ok(ItemRow {
        item_id: uuid_column(row, "item_id")?,
        tenant: column(row, "tenant_id")?,
        sku: column(row, "sku")?,
        quantity: column(row, "quantity")?,
        version: column(row, "version")?,
    })
}

/// The same conventions for rows the writer's connection (rusqlite) reads.
pub(crate) mod raw {
    use catalog_store::rows::{JournalRow, OfferColumns};
    use catalog_store::StoreError;
    use chrono::{DateTime, Utc};
    use rusqlite::types::FromSql;
    use rusqlite::Row;
    use uuid::Uuid;

    use super::corrupt;
    use crate::error::write_error;

    pub(crate) fn column<T: FromSql>(row: &Row<'_>, name: &str) -> Result<T, StoreError> {
        row.get(name).map_err(write_error)
    }

    fn micros_to_time(name: &str, stored: i64) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_micros(stored).ok_or_else(|| corrupt(format_args!("{name} {stored} is out of range")))
    }

    pub(crate) fn time_column(row: &Row<'_>, name: &str) -> Result<DateTime<Utc>, StoreError> {
        micros_to_time(name, column(row, name)?)
    }

    pub(crate) fn optional_time_column(row: &Row<'_>, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let stored: Option<i64> = column(row, name)?;
        stored.map(|stored| micros_to_time(name, stored)).transpose()
    }

    fn bytes_to_uuid(name: &str, stored: &[u8]) -> Result<Uuid, StoreError> {
        Uuid::from_slice(stored)
            .map_err(|_| corrupt(format_args!("{name} is {} bytes, not a 16-byte uuid", stored.len())))
    }

    pub(crate) fn uuid_column(row: &Row<'_>, name: &str) -> Result<Uuid, StoreError> {
        let stored: Vec<u8> = column(row, name)?;
        bytes_to_uuid(name, &stored)
    }

    pub(crate) fn optional_uuid_column(row: &Row<'_>, name: &str) -> Result<Option<Uuid>, StoreError> {
        let stored: Option<Vec<u8>> = column(row, name)?;
        stored.map(|stored| bytes_to_uuid(name, &stored)).transpose()
    }

    /// Reads `JOURNAL_COLUMNS`.
    pub(crate) fn journal_row(row: &Row<'_>) -> Result<JournalRow, StoreError> {
        Ok(JournalRow {
            journal_id: column(row, "journal_id")?,
            event_id: optional_uuid_column(row, "event_id")?,
            tenant: column(row, "tenant_id")?,
            supplier: column(row, "supplier_id")?,
            sku: column(row, "sku")?,
            event_type: column(row, "event_type")?,
            quantity: column(row, "quantity")?,
            delta: column(row, "delta")?,
            updated_at: optional_time_column(row, "updated_at")?,
            sequence: column(row, "sequence")?,
            effective_at: optional_time_column(row, "effective_at")?,
            clock_drift_clamped: column(row, "clock_drift_clamped")?,
            received_at: time_column(row, "received_at")?,
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
            decided_at: time_column(row, "decided_at")?,
        })
    }

    /// Reads `OFFER_STATE_COLUMNS`.
    pub(crate) fn offer_columns(row: &Row<'_>) -> Result<OfferColumns, StoreError> {
        Ok(OfferColumns {
            snapshot_quantity: column(row, "snapshot_quantity")?,
            snapshot_effective_at: optional_time_column(row, "snapshot_effective_at")?,
            snapshot_sequence: column(row, "snapshot_sequence")?,
            snapshot_event_id: optional_uuid_column(row, "snapshot_event_id")?,
            adjustments: column(row, "adjustments")?,
            folded: column(row, "folded")?,
            clamped_until: optional_time_column(row, "clamped_until")?,
        })
    }
}
