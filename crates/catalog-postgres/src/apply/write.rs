//! The writes of a batch: offers and items (each guarded by what the batch read), outbox
//! rows (a new version replaces the one waiting) and checkpoints (never backwards).

use catalog_store::batch::{OutboxWrite, PreparedWrites};
use catalog_store::rows::OfferColumns;
use catalog_store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::guard;
use super::load::{Revisions, ABSENT};
use crate::columns::saturating_i64;
use crate::store_error;

/// Writes the changed offers, each only if its `revision` is still the one read.
pub(super) async fn offers(
    connection: &mut PgConnection,
    writes: &PreparedWrites,
    revisions: &Revisions<'_>,
) -> Result<(), StoreError> {
    let offers = &writes.offers;
    if offers.is_empty() {
        return Ok(());
    }
    let columns: Vec<OfferColumns> = offers.iter().map(|offer| OfferColumns::from_state(&offer.state)).collect();
    let tenants: Vec<&str> = offers.iter().map(|offer| offer.key.tenant.as_str()).collect();
    let suppliers: Vec<&str> = offers.iter().map(|offer| offer.key.supplier.as_str()).collect();
    let skus: Vec<&str> = offers.iter().map(|offer| offer.key.sku.as_str()).collect();
    let quantities: Vec<i64> = offers.iter().map(|offer| offer.quantity).collect();
    let winners: Vec<Option<Uuid>> = offers.iter().map(|offer| offer.winner.map(|id| id.0)).collect();
    let snapshot_quantities: Vec<Option<i64>> = columns.iter().map(|c| c.snapshot_quantity).collect();
    let snapshot_effective_ats: Vec<Option<DateTime<Utc>>> = columns.iter().map(|c| c.snapshot_effective_at).collect();
    let snapshot_sequences: Vec<Option<i64>> = columns.iter().map(|c| c.snapshot_sequence).collect();
    let snapshot_event_ids: Vec<Option<Uuid>> = columns.iter().map(|c| c.snapshot_event_id).collect();
    let adjustments: Vec<&str> = columns.iter().map(|c| c.adjustments.as_str()).collect();
    let folded: Vec<Option<&str>> = columns.iter().map(|c| c.folded.as_deref()).collect();
    let clamped_until: Vec<Option<DateTime<Utc>>> = columns.iter().map(|c| c.clamped_until).collect();
    // The new revision travels as EXCLUDED.revision; the guard is the one before it.
    let new_revisions: Vec<i64> =
        offers.iter().map(|offer| revisions.get(&offer.key).copied().unwrap_or(ABSENT) + 1).collect();
    // An upsert rather than UPDATE … FROM: it visits the rows in the given (key) order, the
    // lock order. A new offer (read as absent) is inserted at revision 0; if another
    // transaction created it meanwhile, the guard (revision -1) fails and the batch conflicts.
    let written = sqlx::query(
        r#"INSERT INTO offers AS o (tenant_id, supplier_id, sku, quantity, winner_event_id, snapshot_quantity,
               snapshot_effective_at, snapshot_sequence, snapshot_event_id, adjustments, folded, revision,
               clamped_until)
           SELECT t, s, k, q, w, sq, se, ss, si, a, f, r, c
           FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::uuid[], $6::int8[], $7::timestamptz[],
                       $8::int8[], $9::uuid[], $10::text[], $11::text[], $12::int8[], $13::timestamptz[])
                WITH ORDINALITY AS u(t, s, k, q, w, sq, se, ss, si, a, f, r, c, n)
           ORDER BY n
           ON CONFLICT (tenant_id, supplier_id, sku) DO UPDATE SET quantity = EXCLUDED.quantity,
               winner_event_id = EXCLUDED.winner_event_id, snapshot_quantity = EXCLUDED.snapshot_quantity,
               snapshot_effective_at = EXCLUDED.snapshot_effective_at,
               snapshot_sequence = EXCLUDED.snapshot_sequence, snapshot_event_id = EXCLUDED.snapshot_event_id,
               adjustments = EXCLUDED.adjustments, folded = EXCLUDED.folded, revision = EXCLUDED.revision,
               clamped_until = EXCLUDED.clamped_until, updated_at = now()
           WHERE o.revision = EXCLUDED.revision - 1"#,
    )
    .bind(&tenants)
    .bind(&suppliers)
    .bind(&skus)
    .bind(&quantities)
    .bind(&winners)
    .bind(&snapshot_quantities)
    .bind(&snapshot_effective_ats)
    .bind(&snapshot_sequences)
    .bind(&snapshot_event_ids)
    .bind(&adjustments)
    .bind(&folded)
    .bind(&new_revisions)
    .bind(&clamped_until)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    guard("offers", written.rows_affected(), offers.len())
}

/// Writes the changed items, each only if its version is still the one it was planned from;
/// a new item (read as absent, planned from version 0) is inserted, or, when another
/// transaction created it meanwhile, written only if that one left it at version 0.
pub(super) async fn items(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    let items = &writes.items;
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = items.iter().map(|changed| changed.item.id().0).collect();
    let tenants: Vec<&str> = items.iter().map(|changed| changed.item.tenant().as_str()).collect();
    let skus: Vec<&str> = items.iter().map(|changed| changed.item.sku().as_str()).collect();
    let quantities: Vec<i64> = items.iter().map(|changed| changed.item.quantity()).collect();
    let versions: Vec<i64> = items.iter().map(|item| saturating_i64(item.item.version())).collect();
    let written = sqlx::query(
        r#"INSERT INTO items AS i (item_id, tenant_id, sku, quantity, version)
           SELECT id, t, k, q, v
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[]) WITH ORDINALITY AS u(id, t, k, q, v, n)
           ORDER BY n
           ON CONFLICT (item_id) DO UPDATE SET quantity = EXCLUDED.quantity, version = EXCLUDED.version,
               updated_at = now()
           WHERE i.version = EXCLUDED.version - 1"#,
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&skus)
    .bind(&quantities)
    .bind(&versions)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    guard("items", written.rows_affected(), items.len())
}

/// Queues each new item version on its channels: one outbox row per item and channel, so
/// a version waiting unsent is replaced in place (coalesced) and keeps its first enqueue
/// time, its lease and its retry schedule, but not the failures counted against the older
/// version (a newer version starts with a budget of its own); a row that already waits at
/// this version or a newer one is left alone. Rows are written in (item id, channel) order, the order
/// `record_publishes` locks them in, so the two never wait on each other in a cycle.
pub(crate) async fn upsert_outbox(connection: &mut PgConnection, outbox: &[OutboxWrite]) -> Result<(), StoreError> {
    if outbox.is_empty() {
        return Ok(());
    }
    let mut order: Vec<&OutboxWrite> = outbox.iter().collect();
    order.sort_by(|a, b| (a.item_id.0, a.channel.as_bytes()).cmp(&(b.item_id.0, b.channel.as_bytes())));
    let ids: Vec<Uuid> = order.iter().map(|row| row.item_id.0).collect();
    let tenants: Vec<&str> = order.iter().map(|row| row.tenant.as_str()).collect();
    let skus: Vec<&str> = order.iter().map(|row| row.sku.as_str()).collect();
    let quantities: Vec<i64> = order.iter().map(|row| row.quantity).collect();
    let versions: Vec<i64> = order.iter().map(|row| row.version).collect();
    let channels: Vec<&str> = order.iter().map(|row| row.channel.as_str()).collect();
    let traceparents: Vec<Option<&str>> = order.iter().map(|row| row.traceparent.as_deref()).collect();
    sqlx::query(
        "INSERT INTO outbox AS o (item_id, tenant_id, sku, quantity, version, channel, traceparent)
         SELECT i, t, k, q, v, c, tp
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[])
              WITH ORDINALITY AS u(i, t, k, q, v, c, tp, n)
         ORDER BY n
         ON CONFLICT (item_id, channel) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, sku = EXCLUDED.sku,
             quantity = EXCLUDED.quantity, version = EXCLUDED.version, traceparent = EXCLUDED.traceparent,
             enqueued_at = EXCLUDED.enqueued_at, attempts = 0
         WHERE o.version < EXCLUDED.version",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&skus)
    .bind(&quantities)
    .bind(&versions)
    .bind(&channels)
    .bind(&traceparents)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub(super) async fn checkpoints(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    if writes.checkpoints.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = writes.checkpoints.iter().map(|c| c.source.as_str()).collect();
    let partitions: Vec<i32> = writes.checkpoints.iter().map(|c| c.partition).collect();
    let offsets: Vec<i64> = writes.checkpoints.iter().map(|c| c.position.offset).collect();
    let cursors: Vec<Option<&str>> = writes.checkpoints.iter().map(|c| c.position.cursor.as_deref()).collect();
    // The cursor goes with the furthest offset: a position that is not ahead keeps the stored one.
    sqlx::query(
        "INSERT INTO source_checkpoints AS c (source, partition, next_offset, cursor)
         SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[], $4::text[])
         ON CONFLICT (source, partition) DO UPDATE
         SET next_offset = GREATEST(c.next_offset, EXCLUDED.next_offset),
             cursor = CASE WHEN EXCLUDED.next_offset >= c.next_offset THEN EXCLUDED.cursor ELSE c.cursor END,
             updated_at = now()",
    )
    .bind(&sources)
    .bind(&partitions)
    .bind(&offsets)
    .bind(&cursors)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}
