//! `apply_batch` on Postgres: lock, load, plan with `catalog-core`, write, in one transaction.
//!
//! Lock order, the same in every transaction so none can wait on another in a cycle:
//! tenants, suppliers, offers, items (each by key, byte order), then journal claims by
//! event id. Offers and items are locked by an upsert that also creates the missing ones,
//! so every row the plan reads is locked before the plan is made and no concurrent batch
//! can plan against a stale copy.

use std::collections::HashMap;

use catalog_core::{EventId, ItemKey, ItemState, OfferKey};
use catalog_store::batch::{prepare, BatchKeys, FlagTable, LoadedState, PreparedWrites, PriorRow};
use catalog_store::rows::OfferColumns;
use catalog_store::{BatchInput, BatchResult, StoreConfig, StoreError};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::store_error;

/// The journal outcomes that claim an event id; the partial unique index has the same list.
const DECIDED: &str = "('applied', 'stale', 'superseded', 'held')";

pub(crate) async fn apply_once(
    pool: &PgPool,
    config: &StoreConfig,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let result = write_batch(&mut transaction, config, batch).await?;
    transaction.commit().await.map_err(store_error)?;
    Ok(result)
}

/// Plans and writes a batch exactly as `apply_once` would, then rolls it back.
pub(crate) async fn preview_once(
    pool: &PgPool,
    config: &StoreConfig,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let result = write_batch(&mut transaction, config, batch).await?;
    transaction.rollback().await.map_err(store_error)?;
    Ok(result)
}

async fn write_batch(
    connection: &mut PgConnection,
    config: &StoreConfig,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    let keys = BatchKeys::of(batch);
    let flags = lock_flags(connection, &keys, config.default_sync_enabled).await?;
    let offers = lock_offers(connection, &keys.offers).await?;
    let items = lock_items(connection, &keys.items).await?;
    let prior = load_prior(connection, &keys.event_ids).await?;
    let loaded = LoadedState { offers, items, prior, flags };
    let writes = prepare(batch, &loaded, config);
    write(connection, &writes).await?;
    Ok(writes.result)
}

/// Queues a publish of each item's current version on every channel serving its tenant.
pub(crate) async fn republish(
    pool: &PgPool,
    config: &StoreConfig,
    items: &[catalog_core::ItemId],
) -> Result<u64, StoreError> {
    let ids: Vec<Uuid> = items.iter().map(|id| id.0).collect();
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let rows = sqlx::query("SELECT item_id, tenant_id, sku, quantity, version FROM items WHERE item_id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *transaction)
        .await
        .map_err(store_error)?;
    let mut outbox = Vec::new();
    for row in rows {
        let tenant = catalog_store::rows::tenant(row.get(1))?;
        for channel in config.channels.iter().filter(|channel| channel.serves(&tenant)) {
            outbox.push(catalog_store::batch::OutboxWrite {
                item_id: catalog_core::ItemId(row.get(0)),
                tenant: tenant.clone(),
                sku: row.get(2),
                quantity: row.get(3),
                version: row.get(4),
                channel: channel.name.clone(),
                traceparent: None,
            });
        }
    }
    let queued = outbox.len() as u64;
    let writes = PreparedWrites { outbox, ..PreparedWrites::default() };
    insert_outbox(&mut transaction, &writes).await?;
    transaction.commit().await.map_err(store_error)?;
    Ok(queued)
}

fn strings<T: ToString>(values: impl Iterator<Item = T>) -> Vec<String> {
    values.map(|value| value.to_string()).collect()
}

async fn lock_flags(
    connection: &mut PgConnection,
    keys: &BatchKeys,
    default_enabled: bool,
) -> Result<FlagTable, StoreError> {
    let mut flags = FlagTable { default_enabled, ..FlagTable::default() };
    if keys.tenants.is_empty() {
        return Ok(flags);
    }
    let tenants = strings(keys.tenants.iter());
    sqlx::query(
        r#"INSERT INTO tenants (tenant_id, sync_enabled)
           SELECT t, $2 FROM unnest($1::text[]) AS u(t) ORDER BY t COLLATE "C"
           ON CONFLICT DO NOTHING"#,
    )
    .bind(&tenants)
    .bind(default_enabled)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    let supplier_tenants = strings(keys.suppliers.iter().map(|(tenant, _)| tenant));
    let suppliers = strings(keys.suppliers.iter().map(|(_, supplier)| supplier));
    sqlx::query(
        r#"INSERT INTO suppliers (tenant_id, supplier_id, sync_enabled)
           SELECT t, s, $3 FROM unnest($1::text[], $2::text[]) AS u(t, s) ORDER BY t COLLATE "C", s COLLATE "C"
           ON CONFLICT DO NOTHING"#,
    )
    .bind(&supplier_tenants)
    .bind(&suppliers)
    .bind(default_enabled)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;

    let rows = sqlx::query("SELECT tenant_id, sync_enabled FROM tenants WHERE tenant_id = ANY($1)")
        .bind(&tenants)
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
    for row in rows {
        let tenant: String = row.get(0);
        flags.tenants.insert(catalog_store::rows::tenant(&tenant)?, row.get(1));
    }
    let rows = sqlx::query(
        "SELECT tenant_id, supplier_id, sync_enabled FROM suppliers
         WHERE (tenant_id, supplier_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
    )
    .bind(&supplier_tenants)
    .bind(&suppliers)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    for row in rows {
        let tenant: String = row.get(0);
        let supplier: String = row.get(1);
        flags
            .suppliers
            .insert((catalog_store::rows::tenant(&tenant)?, catalog_store::rows::supplier(&supplier)?), row.get(2));
    }
    Ok(flags)
}

async fn lock_offers(
    connection: &mut PgConnection,
    keys: &[OfferKey],
) -> Result<HashMap<OfferKey, catalog_core::OfferState>, StoreError> {
    let mut offers = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(offers);
    }
    let tenants = strings(keys.iter().map(|key| &key.tenant));
    let suppliers = strings(keys.iter().map(|key| &key.supplier));
    let skus = strings(keys.iter().map(|key| &key.sku));
    // One statement creates the missing offers and locks them all, in key order (the keys
    // arrive sorted; ORDINALITY keeps that order), returning their current state.
    let rows = sqlx::query(
        r#"INSERT INTO offers AS o (tenant_id, supplier_id, sku)
           SELECT t, s, k FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(t, s, k, n) ORDER BY n
           ON CONFLICT (tenant_id, supplier_id, sku) DO UPDATE SET updated_at = o.updated_at
           RETURNING tenant_id, supplier_id, sku, snapshot_quantity, snapshot_effective_at, snapshot_sequence,
                     snapshot_event_id, adjustments"#,
    )
    .bind(&tenants)
    .bind(&suppliers)
    .bind(&skus)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    for row in rows {
        let key = OfferKey {
            tenant: catalog_store::rows::tenant(row.get(0))?,
            supplier: catalog_store::rows::supplier(row.get(1))?,
            sku: catalog_store::rows::sku(row.get(2))?,
        };
        let columns = OfferColumns {
            snapshot_quantity: row.get(3),
            snapshot_effective_at: row.get(4),
            snapshot_sequence: row.get(5),
            snapshot_event_id: row.get(6),
            adjustments: row.get(7),
        };
        offers.insert(key, columns.into_state()?);
    }
    Ok(offers)
}

async fn lock_items(
    connection: &mut PgConnection,
    keys: &[(ItemKey, catalog_core::ItemId)],
) -> Result<HashMap<ItemKey, ItemState>, StoreError> {
    let mut items = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(items);
    }
    let ids: Vec<Uuid> = keys.iter().map(|(_, id)| id.0).collect();
    let tenants = strings(keys.iter().map(|(key, _)| &key.tenant));
    let skus = strings(keys.iter().map(|(key, _)| &key.sku));
    let rows = sqlx::query(
        r#"INSERT INTO items AS i (item_id, tenant_id, sku)
           SELECT id, t, k FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS u(id, t, k, n) ORDER BY n
           ON CONFLICT (item_id) DO UPDATE SET updated_at = i.updated_at
           RETURNING tenant_id, sku, quantity, version"#,
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&skus)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    for row in rows {
        let key =
            ItemKey { tenant: catalog_store::rows::tenant(row.get(0))?, sku: catalog_store::rows::sku(row.get(1))? };
        items.insert(key, ItemState { quantity: row.get(2), version: catalog_store::rows::version(row.get(3))? });
    }
    Ok(items)
}

async fn load_prior(connection: &mut PgConnection, event_ids: &[EventId]) -> Result<Vec<PriorRow>, StoreError> {
    if event_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = event_ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query(&format!(
        "SELECT event_id, outcome, fingerprint, received_at FROM events
         WHERE event_id = ANY($1) AND outcome IN {DECIDED}"
    ))
    .bind(&ids)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    rows.into_iter()
        .map(|row| {
            let outcome: String = row.get(1);
            let fingerprint: Option<i64> = row.get(2);
            Ok(PriorRow {
                event_id: EventId(row.get(0)),
                held: outcome == "held",
                fingerprint: fingerprint
                    .ok_or_else(|| StoreError::Corrupt("decided journal row without fingerprint".into()))?
                    as u64,
                received_at: row.get(3),
            })
        })
        .collect()
}

async fn write(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    insert_journal(connection, writes).await?;
    update_journal(connection, writes).await?;
    write_offers(connection, writes).await?;
    write_items(connection, writes).await?;
    insert_outbox(connection, writes).await?;
    write_checkpoints(connection, writes).await
}

async fn insert_journal(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    let rows = &writes.journal_inserts;
    if rows.is_empty() {
        return Ok(());
    }
    let event_ids: Vec<Option<Uuid>> = rows.iter().map(|row| row.event_id.map(|id| id.0)).collect();
    let tenants: Vec<Option<&str>> = rows.iter().map(|row| row.tenant.as_deref()).collect();
    let suppliers: Vec<Option<&str>> = rows.iter().map(|row| row.supplier.as_deref()).collect();
    let skus: Vec<Option<&str>> = rows.iter().map(|row| row.sku.as_deref()).collect();
    let event_types: Vec<Option<&str>> = rows.iter().map(|row| row.event_type).collect();
    let quantities: Vec<Option<i64>> = rows.iter().map(|row| row.quantity).collect();
    let deltas: Vec<Option<i64>> = rows.iter().map(|row| row.delta).collect();
    let updated_ats: Vec<Option<DateTime<Utc>>> = rows.iter().map(|row| row.updated_at).collect();
    let sequences: Vec<Option<i64>> = rows.iter().map(|row| row.sequence).collect();
    let effective_ats: Vec<Option<DateTime<Utc>>> = rows.iter().map(|row| row.effective_at).collect();
    let clamped: Vec<bool> = rows.iter().map(|row| row.clock_drift_clamped).collect();
    let received_ats: Vec<DateTime<Utc>> = rows.iter().map(|row| row.received_at).collect();
    let outcomes: Vec<&str> = rows.iter().map(|row| row.outcome).collect();
    let reasons: Vec<Option<&str>> = rows.iter().map(|row| row.reason).collect();
    let details: Vec<Option<&str>> = rows.iter().map(|row| row.detail.as_deref()).collect();
    let fingerprints: Vec<Option<i64>> = rows.iter().map(|row| row.fingerprint).collect();
    let redeliveries: Vec<i64> = rows.iter().map(|row| row.redelivery_count).collect();
    let differs: Vec<bool> = rows.iter().map(|row| row.payload_differs).collect();
    let sources: Vec<&str> = rows.iter().map(|row| row.source.source.as_str()).collect();
    let partitions: Vec<i32> = rows.iter().map(|row| row.source.partition).collect();
    let offsets: Vec<i64> = rows.iter().map(|row| row.source.offset).collect();
    let traceparents: Vec<Option<&str>> = rows.iter().map(|row| row.traceparent.as_deref()).collect();
    let raw_payloads: Vec<Option<&[u8]>> = rows.iter().map(|row| row.raw_payload.as_deref()).collect();
    let expected_claims =
        rows.iter().filter(|row| matches!(row.outcome, "applied" | "stale" | "superseded" | "held")).count();

    let inserted = sqlx::query(&format!(
        r#"INSERT INTO events (event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, updated_at,
               sequence, effective_at, clock_drift_clamped, received_at, outcome, reason, detail, fingerprint,
               redelivery_count, payload_differs, source, source_partition, source_offset, traceparent, raw_payload,
               last_redelivered_at)
           SELECT u.*, CASE WHEN u.redelivery_count > 0 THEN now() END
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[],
                       $8::timestamptz[], $9::int8[], $10::timestamptz[], $11::bool[], $12::timestamptz[],
                       $13::text[], $14::text[], $15::text[], $16::int8[], $17::int8[], $18::bool[], $19::text[],
                       $20::int4[], $21::int8[], $22::text[], $23::bytea[])
                AS u(event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, updated_at, sequence,
                     effective_at, clock_drift_clamped, received_at, outcome, reason, detail, fingerprint,
                     redelivery_count, payload_differs, source, source_partition, source_offset, traceparent,
                     raw_payload)
           ON CONFLICT (event_id) WHERE outcome IN {DECIDED} DO NOTHING
           RETURNING outcome IN {DECIDED}"#
    ))
    .bind(&event_ids)
    .bind(&tenants)
    .bind(&suppliers)
    .bind(&skus)
    .bind(&event_types)
    .bind(&quantities)
    .bind(&deltas)
    .bind(&updated_ats)
    .bind(&sequences)
    .bind(&effective_ats)
    .bind(&clamped)
    .bind(&received_ats)
    .bind(&outcomes)
    .bind(&reasons)
    .bind(&details)
    .bind(&fingerprints)
    .bind(&redeliveries)
    .bind(&differs)
    .bind(&sources)
    .bind(&partitions)
    .bind(&offsets)
    .bind(&traceparents)
    .bind(&raw_payloads)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    let claimed = inserted.iter().filter(|row| row.get::<bool, _>(0)).count();
    if claimed != expected_claims {
        // Another transaction claimed one of these event ids for a different offer after we
        // read the journal: our plan is wrong. Roll back; the batch is planned again.
        return Err(StoreError::Conflict(format!(
            "{} event ids were claimed concurrently",
            expected_claims - claimed.min(expected_claims)
        )));
    }
    Ok(())
}

async fn update_journal(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    let updates = &writes.journal_updates;
    if updates.is_empty() {
        return Ok(());
    }
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
    let updated = sqlx::query(&format!(
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
           WHERE e.event_id = u.event_id AND e.outcome IN {DECIDED}"#
    ))
    .bind(&event_ids)
    .bind(&redecided)
    .bind(&outcomes)
    .bind(&reasons)
    .bind(&effective_ats)
    .bind(&clamped)
    .bind(&added)
    .bind(&differs)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    if updated.rows_affected() != updates.len() as u64 {
        return Err(StoreError::Conflict("a journal row changed while the batch was planned".into()));
    }
    Ok(())
}

async fn write_offers(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    let offers = &writes.offers;
    if offers.is_empty() {
        return Ok(());
    }
    let columns: Vec<OfferColumns> = offers.iter().map(|offer| OfferColumns::from_state(&offer.state)).collect();
    let tenants = strings(offers.iter().map(|offer| &offer.key.tenant));
    let suppliers = strings(offers.iter().map(|offer| &offer.key.supplier));
    let skus = strings(offers.iter().map(|offer| &offer.key.sku));
    let quantities: Vec<i64> = offers.iter().map(|offer| offer.quantity).collect();
    let winners: Vec<Option<Uuid>> = offers.iter().map(|offer| offer.winner.map(|id| id.0)).collect();
    let snapshot_quantities: Vec<Option<i64>> = columns.iter().map(|c| c.snapshot_quantity).collect();
    let snapshot_effective_ats: Vec<Option<DateTime<Utc>>> = columns.iter().map(|c| c.snapshot_effective_at).collect();
    let snapshot_sequences: Vec<Option<i64>> = columns.iter().map(|c| c.snapshot_sequence).collect();
    let snapshot_event_ids: Vec<Option<Uuid>> = columns.iter().map(|c| c.snapshot_event_id).collect();
    let adjustments: Vec<&str> = columns.iter().map(|c| c.adjustments.as_str()).collect();
    sqlx::query(
        r#"UPDATE offers AS o SET quantity = u.quantity, winner_event_id = u.winner,
               snapshot_quantity = u.snapshot_quantity, snapshot_effective_at = u.snapshot_effective_at,
               snapshot_sequence = u.snapshot_sequence, snapshot_event_id = u.snapshot_event_id,
               adjustments = u.adjustments, updated_at = now()
           FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::uuid[], $6::int8[], $7::timestamptz[],
                       $8::int8[], $9::uuid[], $10::text[])
                AS u(tenant_id, supplier_id, sku, quantity, winner, snapshot_quantity, snapshot_effective_at,
                     snapshot_sequence, snapshot_event_id, adjustments)
           WHERE o.tenant_id = u.tenant_id AND o.supplier_id = u.supplier_id AND o.sku = u.sku"#,
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
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}

async fn write_items(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    if writes.items.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = writes.items.iter().map(|item| item.item_id.0).collect();
    let quantities: Vec<i64> = writes.items.iter().map(|item| item.quantity).collect();
    let versions: Vec<i64> = writes.items.iter().map(|item| item.version as i64).collect();
    sqlx::query(
        "UPDATE items AS i SET quantity = u.quantity, version = u.version, updated_at = now()
         FROM unnest($1::uuid[], $2::int8[], $3::int8[]) AS u(item_id, quantity, version)
         WHERE i.item_id = u.item_id",
    )
    .bind(&ids)
    .bind(&quantities)
    .bind(&versions)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}

async fn insert_outbox(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    let outbox = &writes.outbox;
    if outbox.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = outbox.iter().map(|row| row.item_id.0).collect();
    let tenants = strings(outbox.iter().map(|row| &row.tenant));
    let skus: Vec<&str> = outbox.iter().map(|row| row.sku.as_str()).collect();
    let quantities: Vec<i64> = outbox.iter().map(|row| row.quantity).collect();
    let versions: Vec<i64> = outbox.iter().map(|row| row.version).collect();
    let channels: Vec<&str> = outbox.iter().map(|row| row.channel.as_str()).collect();
    let traceparents: Vec<Option<&str>> = outbox.iter().map(|row| row.traceparent.as_deref()).collect();
    sqlx::query(
        "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel, traceparent)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[])
         ON CONFLICT (item_id, version, channel) DO NOTHING",
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

async fn write_checkpoints(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    if writes.checkpoints.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = writes.checkpoints.iter().map(|c| c.source.as_str()).collect();
    let partitions: Vec<i32> = writes.checkpoints.iter().map(|c| c.partition).collect();
    let offsets: Vec<i64> = writes.checkpoints.iter().map(|c| c.next_offset).collect();
    sqlx::query(
        "INSERT INTO source_checkpoints (source, partition, next_offset)
         SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[])
         ON CONFLICT (source, partition) DO UPDATE
         SET next_offset = GREATEST(source_checkpoints.next_offset, EXCLUDED.next_offset), updated_at = now()",
    )
    .bind(&sources)
    .bind(&partitions)
    .bind(&offsets)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}
