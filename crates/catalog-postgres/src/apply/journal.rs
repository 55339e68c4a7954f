//! The journal side of a batch: the claims of its event ids (with what a held one is decided
//! from), the new rows (binary `COPY`, with their claims), and the updates of existing ones
//! (redeliveries counted, held events decided afresh). The journal is partitioned by day of
//! receipt (decision 0019): claims live in `event_claims`, and every statement finds a journal
//! row by its key, (journal_id, received_at), so it touches one partition and never scans.

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

/// The claims of a batch's event ids ($1), each with its journal row while retention keeps it
/// (the event a held one is decided from). The row is looked up per claim by its key (the
/// `LIMIT` keeps the planner from turning that into a join over every partition).
pub(crate) const LOAD_PRIOR: &str = "SELECT c.event_id, c.journal_id, c.received_at, c.fingerprint, c.held, \
     e.journal_id IS NOT NULL AS journaled, e.tenant_id, e.supplier_id, e.sku, e.event_type, e.quantity, e.delta, \
     e.updated_at, e.sequence \
     FROM event_claims c LEFT JOIN LATERAL ( \
         SELECT journal_id, tenant_id, supplier_id, sku, event_type, quantity, delta, updated_at, sequence \
         FROM events WHERE journal_id = c.journal_id AND received_at = c.received_at LIMIT 1) e ON true \
     WHERE c.event_id = ANY($1)";

/// Counts redeliveries on decided journal rows and records fresh decisions of held ones, one
/// row per element of the arrays, each found by its key. A held row is decided afresh only if
/// it is still held. `$10` and `$11` bound the rows' receive times, so only the partitions
/// of those days are read.
pub(crate) const UPDATE_JOURNAL: &str = r#"UPDATE events AS e SET
           outcome = CASE WHEN u.redecided THEN u.outcome ELSE e.outcome END,
           reason = CASE WHEN u.redecided THEN u.reason ELSE e.reason END,
           effective_at = CASE WHEN u.redecided THEN u.effective_at ELSE e.effective_at END,
           clock_drift_clamped = CASE WHEN u.redecided THEN u.clamped ELSE e.clock_drift_clamped END,
           decided_at = CASE WHEN u.redecided THEN now() ELSE e.decided_at END,
           redelivery_count = e.redelivery_count + u.added,
           payload_differs = e.payload_differs OR u.differs,
           last_redelivered_at = CASE WHEN u.added > 0 THEN now() ELSE e.last_redelivered_at END
       FROM unnest($1::int8[], $2::timestamptz[], $3::bool[], $4::text[], $5::text[], $6::timestamptz[], $7::bool[],
                   $8::int8[], $9::bool[])
            AS u(journal_id, received_at, redecided, outcome, reason, effective_at, clamped, added, differs)
       WHERE e.journal_id = u.journal_id AND e.received_at = u.received_at
         AND (NOT u.redecided OR e.outcome = 'held')
         AND e.received_at BETWEEN $10 AND $11"#;

/// A held event decided afresh no longer holds its claim open.
const RELEASE_HELD: &str = "UPDATE event_claims SET held = false WHERE event_id = ANY($1) AND held";

/// Journal ids for a batch's new rows, taken from the journal's sequence in one round trip:
/// the claims carry them.
const NEXT_JOURNAL_IDS: &str = "SELECT nextval('events_journal_id_seq') FROM generate_series(1, $1)";

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
            let held: bool = column(row, "held")?;
            let journaled: bool = column(row, "journaled")?;
            let fingerprint: i64 = column(row, "fingerprint")?;
            let event_id = column(row, "event_id")?;
            let held_event = if held {
                if !journaled {
                    return Err(StoreError::Corrupt(format!("held event {event_id} has no journal row")));
                }
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
                journal_id: column(row, "journal_id")?,
                journaled,
            })
        })
        .collect()
}

/// Inserts the new journal rows with binary `COPY`, then the claims of the decided ones. A
/// claim of an event id that another transaction claimed after this one read the claims
/// violates `event_claims_pkey`: the whole batch rolls back as a conflict and is planned again.
pub(super) async fn insert(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), Failure> {
    let rows = &writes.journal_inserts;
    if rows.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let ids: Vec<i64> = sqlx::query_scalar(NEXT_JOURNAL_IDS)
        .bind(rows.len() as i64)
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
    if ids.len() != rows.len() {
        return Err(StoreError::Database(format!("{} journal ids for {} rows", ids.len(), rows.len())).into());
    }
    let mut copy = BinaryRows::new(26, rows.len(), 328);
    let mut claims = BinaryRows::new(6, rows.len(), 72);
    let mut n_claims = 0;
    for (row, journal_id) in rows.iter().zip(&ids) {
        if let (Some(event_id), Some(fingerprint)) = (row.event_id, row.fingerprint) {
            let held = row.outcome == "held";
            if held || matches!(row.outcome, "applied" | "stale" | "superseded") {
                claims
                    .row()
                    .uuid(Some(event_id.0))
                    .int8(Some(*journal_id))
                    .timestamptz(Some(row.received_at))
                    .int8(Some(fingerprint))
                    .bool(held)
                    .timestamptz(kept_from(row.updated_at, row.received_at));
                n_claims += 1;
            }
        }
        copy.row()
            .int8(Some(*journal_id))
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
    copy_in(
        connection,
        &format!("COPY events (journal_id, {JOURNAL_INSERT_COLUMNS}) FROM STDIN (FORMAT binary)"),
        copy,
        rows.len(),
    )
    .await?;
    if n_claims == 0 {
        return Ok(());
    }
    copy_in(
        connection,
        "COPY event_claims (event_id, journal_id, received_at, fingerprint, held, kept_from) FROM STDIN (FORMAT binary)",
        claims,
        n_claims,
    )
    .await
}

/// When a claim's retention starts, if not at its receipt: at the event's own time when that
/// is later (a clock that runs ahead, decision 0019), so a redelivery finds the claim for as
/// long as the event would still be clamped.
fn kept_from(updated_at: Option<DateTime<Utc>>, received_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    updated_at.filter(|updated_at| *updated_at > received_at)
}

/// A unique violation of the claim index is a lost race, not a broken database: the batch
/// is planned again.
fn claim_error(error: sqlx::Error) -> Failure {
    if let sqlx::Error::Database(database) = &error {
        // check_violation: a row received on a day no journal partition covers yet.
        if database.code().as_deref() == Some("23514") && database.message().starts_with("no partition of relation") {
            return Failure::NoPartition(StoreError::Database(database.message().to_owned()));
        }
        if let Some(constraint @ "event_claims_pkey") = database.constraint() {
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
    guard("journal rows", updated.rows_affected(), updates.len())?;
    // A held row decided afresh is released, unless it is held again (its supplier still
    // off): its claim stays held, or the replay that applies it later finds it claimed.
    let released: Vec<Uuid> = updates
        .iter()
        .filter(|update| update.redecided.as_ref().is_some_and(|redecided| redecided.outcome != "held"))
        .map(|update| update.event_id.0)
        .collect();
    if released.is_empty() {
        return Ok(());
    }
    let updated = sqlx::query(RELEASE_HELD).bind(&released).execute(&mut *connection).await.map_err(store_error)?;
    guard("held claims", updated.rows_affected(), released.len())
}

/// `statement` (`UPDATE_JOURNAL`, or a statement that explains it) with the updates bound as
/// its nine arrays, one element per journal row, and the range of their receive times.
pub(crate) fn journal_update_query<'q>(
    statement: &'q str,
    updates: &'q [JournalUpdate],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let journal_ids: Vec<i64> = updates.iter().map(|update| update.journal_id).collect();
    let received_ats: Vec<DateTime<Utc>> = updates.iter().map(|update| update.received_at).collect();
    let earliest = received_ats.iter().min().copied();
    let latest = received_ats.iter().max().copied();
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
        .bind(journal_ids)
        .bind(received_ats)
        .bind(redecided)
        .bind(outcomes)
        .bind(reasons)
        .bind(effective_ats)
        .bind(clamped)
        .bind(added)
        .bind(differs)
        .bind(earliest)
        .bind(latest)
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
