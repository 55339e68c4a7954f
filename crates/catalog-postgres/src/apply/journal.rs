//! The journal side of a batch: the decided rows of its event ids (claims and held rows),
//! the new rows (binary `COPY`), and the updates of existing ones (redeliveries counted,
//! held events decided afresh). Every statement states the claim index's predicate, so it
//! finds rows through that index and never scans the journal (`journal_plans` checks).

use catalog_core::{EventId, Sku, SupplierId, TenantId};
use catalog_store::batch::{JournalUpdate, PreparedWrites, PriorRow};
use catalog_store::rows::JournaledEventRow;
use catalog_store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{guard, Failure};
use crate::columns::{column, JOURNAL_INSERT_COLUMNS};
use crate::copy::BinaryRows;
use crate::store_error;

/// The journal outcomes that claim an event id, word for word the partial unique index's
/// `WHERE` clause: a statement on `events` finds rows by event id through that index (the
/// only index on `event_id`) only when its own `WHERE` says this too.
macro_rules! decided {
    () => {
        "outcome IN ('applied', 'stale', 'superseded', 'held')"
    };
}

/// The decided journal rows of a batch's event ids ($1), with what a held one is decided from.
pub(crate) const LOAD_PRIOR: &str = concat!(
    "SELECT event_id, outcome, fingerprint, received_at, tenant_id, supplier_id, sku, event_type, quantity, delta, \
     updated_at, sequence FROM events WHERE event_id = ANY($1) AND ",
    decided!()
);

/// Counts redeliveries on decided journal rows and records fresh decisions of held ones, one
/// row per element of the arrays. A held row is decided afresh only if it is still held.
pub(crate) const UPDATE_JOURNAL: &str = concat!(
    r#"UPDATE events AS e SET
           outcome = CASE WHEN u.redecided THEN u.outcome ELSE e.outcome END,
           reason = CASE WHEN u.redecided THEN u.reason ELSE e.reason END,
           effective_at = CASE WHEN u.redecided THEN u.effective_at ELSE e.effective_at END,
           clock_drift_clamped = CASE WHEN u.redecided THEN u.clamped ELSE e.clock_drift_clamped END,
           decided_at = CASE WHEN u.redecided THEN now() ELSE e.decided_at END,
           redelivery_count = e.redelivery_count + u.added,
           payload_differs = e.payload_differs OR u.differs,
           last_redelivered_at = CASE WHEN u.added > 0 THEN now() ELSE e.last_redelivered_at END
       FROM unnest($1::uuid[], $2::bool[], $3::text[], $4::text[], $5::timestamptz[], $6::bool[], $7::int8[],
                   $8::bool[]) AS u(event_id, redecided, outcome, reason, effective_at, clamped, added, differs)
       WHERE e.event_id = u.event_id AND (NOT u.redecided OR e.outcome = 'held') AND e."#,
    decided!()
);

pub(super) async fn load_prior(
    connection: &mut PgConnection,
    event_ids: &[EventId],
) -> Result<Vec<PriorRow>, StoreError> {
    if event_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = event_ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query(LOAD_PRIOR).bind(&ids).fetch_all(&mut *connection).await.map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let outcome: String = column(row, "outcome")?;
            let fingerprint: Option<i64> = column(row, "fingerprint")?;
            let fingerprint =
                fingerprint.ok_or_else(|| StoreError::Corrupt("decided journal row without fingerprint".into()))?;
            let event_id = column(row, "event_id")?;
            let held_event = if outcome == "held" {
                let journaled = JournaledEventRow {
                    event_id,
                    tenant: column(row, "tenant_id")?,
                    supplier: column(row, "supplier_id")?,
                    sku: column(row, "sku")?,
                    event_type: column(row, "event_type")?,
                    quantity: column(row, "quantity")?,
                    delta: column(row, "delta")?,
                    updated_at: column(row, "updated_at")?,
                    sequence: column(row, "sequence")?,
                };
                Some(journaled.into_event()?)
            } else {
                None
            };
            Ok(PriorRow {
                event_id: EventId(event_id),
                held_event,
                // Stored bit for bit in a signed column.
                fingerprint: fingerprint as u64,
                received_at: column(row, "received_at")?,
            })
        })
        .collect()
}

/// Inserts the new journal rows with binary `COPY`. A row claiming an event id that another
/// transaction claimed after this one read the journal violates the unique claim index:
/// the whole batch rolls back as a conflict and is planned again.
pub(super) async fn insert(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), Failure> {
    let rows = &writes.journal_inserts;
    if rows.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let mut copy = BinaryRows::new(25, rows.len(), 320);
    for row in rows {
        copy.row()
            .uuid(row.event_id.map(|id| id.0))
            .text(row.tenant.as_ref().map(TenantId::as_str))
            .text(row.supplier.as_ref().map(SupplierId::as_str))
            .text(row.sku.as_ref().map(Sku::as_str))
            .text(row.event_type)
            .int8(row.quantity)
            .int8(row.delta)
            .timestamptz(row.updated_at)
            .int8(row.sequence)
            .timestamptz(row.effective_at)
            .bool(row.clock_drift_clamped)
            .timestamptz(Some(row.received_at))
            .text(Some(row.outcome))
            .text(row.reason)
            .text(row.detail.as_deref())
            .int8(Some(row.redelivery_count))
            .bool(row.payload_differs)
            .text(Some(&*row.source.source))
            .int4(row.source.partition)
            .int8(Some(row.source.offset))
            .text(row.traceparent.as_deref())
            .bytea(row.raw_payload.as_deref())
            .int8(row.raw_payload_length)
            .int8(row.fingerprint)
            .timestamptz((row.redelivery_count > 0).then_some(now));
    }
    copy_in(connection, &format!("COPY events ({JOURNAL_INSERT_COLUMNS}) FROM STDIN (FORMAT binary)"), copy, rows.len())
        .await
}

/// A unique violation of the claim index is a lost race, not a broken database: the batch
/// is planned again.
fn claim_error(error: sqlx::Error) -> Failure {
    if let sqlx::Error::Database(database) = &error {
        if let Some(constraint @ "events_event_id_decided") = database.constraint() {
            return Failure::ClaimTaken(StoreError::Conflict(format!(
                "{constraint}: an event id was claimed concurrently"
            )));
        }
    }
    Failure::Store(store_error(error))
}

/// Counts redeliveries on existing journal rows and records fresh decisions of held ones;
/// a held row decided by another transaction since it was read is a conflict.
pub(super) async fn update(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    let updates = &writes.journal_updates;
    if updates.is_empty() {
        return Ok(());
    }
    let updated = journal_update_query(UPDATE_JOURNAL, updates).execute(&mut *connection).await.map_err(store_error)?;
    guard("journal rows", updated.rows_affected(), updates.len())
}

/// `statement` (`UPDATE_JOURNAL`, or a statement that explains it) with the updates bound as
/// its eight arrays, one element per journal row.
pub(crate) fn journal_update_query<'q>(
    statement: &'q str,
    updates: &'q [JournalUpdate],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let event_ids: Vec<Uuid> = updates.iter().map(|update| update.event_id.0).collect();
    let redecided: Vec<bool> = updates.iter().map(|update| update.redecided.is_some()).collect();
    let outcomes: Vec<Option<&str>> = updates.iter().map(|u| u.redecided.as_ref().map(|r| r.outcome)).collect();
    let reasons: Vec<Option<&str>> = updates.iter().map(|u| u.redecided.as_ref().and_then(|r| r.reason)).collect();
    let effective_ats: Vec<Option<DateTime<Utc>>> =
        updates.iter().map(|u| u.redecided.as_ref().map(|r| r.effective_at)).collect();
    let clamped: Vec<bool> =
        updates.iter().map(|u| u.redecided.as_ref().is_some_and(|r| r.clock_drift_clamped)).collect();
    let added: Vec<i64> = updates.iter().map(|update| update.redeliveries_added).collect();
    let differs: Vec<bool> = updates.iter().map(|update| update.payload_differs).collect();
    sqlx::query(statement)
        .bind(event_ids)
        .bind(redecided)
        .bind(outcomes)
        .bind(reasons)
        .bind(effective_ats)
        .bind(clamped)
        .bind(added)
        .bind(differs)
}

/// Sends `rows` (`expected` of them) through one `COPY … FROM STDIN (FORMAT binary)`.
async fn copy_in(
    connection: &mut PgConnection,
    statement: &str,
    rows: BinaryRows,
    expected: usize,
) -> Result<(), Failure> {
    let mut sink = connection.copy_in_raw(statement).await.map_err(store_error)?;
    if let Err(error) = sink.send(rows.finish()).await {
        let _ = sink.abort("send failed").await;
        return Err(store_error(error).into());
    }
    let copied = sink.finish().await.map_err(claim_error)?;
    if copied != expected as u64 {
        return Err(StoreError::Database(format!("COPY wrote {copied} of {expected} rows")).into());
    }
    Ok(())
}
