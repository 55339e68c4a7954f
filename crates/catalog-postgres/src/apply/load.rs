//! What a batch plans against: the sync flags of its tenants and suppliers (creating those
//! seen for the first time), and its offers and items, read optimistically or under lock.

use std::collections::HashMap;

use catalog_core::{ItemId, ItemKey, ItemState, OfferKey, OfferState, TenantId};
use catalog_store::batch::{BatchKeys, FlagTable};
use catalog_store::fence::checkpoint_rows;
use catalog_store::rows;
use catalog_store::{BatchInput, Checkpoint, Position, StoreError};
use sqlx::postgres::PgRow;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Locking;
use crate::columns::{column, offer_columns};
use crate::store_error;

/// Locks the batch's checkpoint rows, first of all its rows, and returns their stored
/// positions: two members applying the same partition's messages take turns, and the second
/// finds the first one's position (decision 0028). A row not stored yet is made at offset 0
/// (nothing is below it), which no other transaction sees: the batch's own checkpoint write
/// moves it before its commit, and a rollback takes it away.
pub(super) async fn lock_checkpoints(
    connection: &mut PgConnection,
    batch: &BatchInput,
) -> Result<Vec<Checkpoint>, StoreError> {
    let rows = checkpoint_rows(batch);
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let (sources, partitions): (Vec<&str>, Vec<i32>) = rows.into_iter().unzip();
    let rows = sqlx::query(
        // Rows in the order given (byte order), so batches never wait on each other in a cycle.
        "INSERT INTO source_checkpoints AS c (source, partition, next_offset)
         SELECT s, p, 0 FROM unnest($1::text[], $2::int4[]) WITH ORDINALITY AS u(s, p, n) ORDER BY n
         ON CONFLICT (source, partition) DO UPDATE SET next_offset = c.next_offset
         RETURNING source, partition, next_offset, cursor",
    )
    .bind(&sources)
    .bind(&partitions)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(Checkpoint {
                source: column(row, "source")?,
                partition: column(row, "partition")?,
                position: Position { offset: column(row, "next_offset")?, cursor: column(row, "cursor")? },
            })
        })
        .collect()
}

pub(super) async fn flags(
    connection: &mut PgConnection,
    keys: &BatchKeys,
    default_enabled: bool,
) -> Result<FlagTable, StoreError> {
    let mut flags = FlagTable { default_enabled, ..FlagTable::default() };
    if keys.tenants.is_empty() {
        return Ok(flags);
    }
    let tenants: Vec<&str> = keys.tenants.iter().map(TenantId::as_str).collect();
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
    let supplier_tenants: Vec<&str> = keys.suppliers.iter().map(|(tenant, _)| tenant.as_str()).collect();
    let suppliers: Vec<&str> = keys.suppliers.iter().map(|(_, supplier)| supplier.as_str()).collect();
    let created: Vec<(String, String)> = sqlx::query_as(
        // A supplier first seen takes its tenant's flag for new suppliers where the gate set
        // one (canary and widening hold the suppliers not listed), else the default.
        r#"INSERT INTO suppliers (tenant_id, supplier_id, sync_enabled)
           SELECT t, s, coalesce((SELECT new_suppliers_enabled FROM tenants WHERE tenant_id = t), $3)
           FROM unnest($1::text[], $2::text[]) AS u(t, s) ORDER BY t COLLATE "C", s COLLATE "C"
           ON CONFLICT DO NOTHING
           RETURNING tenant_id, supplier_id"#,
    )
    .bind(&supplier_tenants)
    .bind(&suppliers)
    .bind(default_enabled)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    if !created.is_empty() {
        first_seen_under_the_gate(connection, &created, default_enabled).await?;
    }

    read_flags(connection, keys, &mut flags, false).await?;
    Ok(flags)
}

/// Gives the suppliers this batch just created (not committed yet) their tenant's flag for new
/// suppliers as the last gate step left it. A step locks the tenant's row for update, then
/// sets the tenant's flags and every supplier of the tenant it sees. A batch that inserts a
/// supplier in between read the flag before the step, and its insert (whose foreign key
/// waits for the step's lock) lands after the step set the suppliers: the new one kept the
/// old flag (an opened tenant's new supplier held for good, its events never replayed; a
/// canary's held one left on). Under the tenant's share lock, a step in flight has committed
/// (and the flag is read again after it), or waits for this batch, whose suppliers it sees.
/// A step that inserts the same supplier waits on this batch's row while this batch waits on
/// the step's lock: one of the two is refused as a deadlock, and the batch is planned again.
async fn first_seen_under_the_gate(
    connection: &mut PgConnection,
    created: &[(String, String)],
    default_enabled: bool,
) -> Result<(), StoreError> {
    let (tenants, suppliers): (Vec<&str>, Vec<&str>) =
        created.iter().map(|(tenant, supplier)| (tenant.as_str(), supplier.as_str())).unzip();
    sqlx::query(r#"SELECT 1 FROM tenants WHERE tenant_id = ANY($1) ORDER BY tenant_id COLLATE "C" FOR SHARE"#)
        .bind(&tenants)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
    sqlx::query(
        "UPDATE suppliers AS s SET sync_enabled = coalesce(t.new_suppliers_enabled, $3)
         FROM unnest($1::text[], $2::text[]) AS u(t, s), tenants AS t
         WHERE s.tenant_id = u.t AND s.supplier_id = u.s AND t.tenant_id = u.t
           AND s.sync_enabled IS DISTINCT FROM coalesce(t.new_suppliers_enabled, $3)",
    )
    .bind(&tenants)
    .bind(&suppliers)
    .bind(default_enabled)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}

/// The batch's flags read again under a share lock, in key order: a batch that held events
/// on flags read without one makes a switch in flight wait for its commit (decision 0049).
pub(super) async fn locked_flags(
    connection: &mut PgConnection,
    keys: &BatchKeys,
    default_enabled: bool,
) -> Result<FlagTable, StoreError> {
    let mut flags = FlagTable { default_enabled, ..FlagTable::default() };
    read_flags(connection, keys, &mut flags, true).await?;
    Ok(flags)
}

macro_rules! tenant_flags {
    () => {
        "SELECT tenant_id, sync_enabled FROM tenants WHERE tenant_id = ANY($1)"
    };
}
macro_rules! supplier_flags {
    () => {
        "SELECT tenant_id, supplier_id, sync_enabled FROM suppliers
         WHERE (tenant_id, supplier_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
    };
}
/// The flags a batch plans against, read without a lock; and read again under a share lock,
/// in key order (byte order), by a batch that holds events (decision 0049).
const TENANT_FLAGS: &str = tenant_flags!();
const TENANT_FLAGS_LOCKED: &str = concat!(tenant_flags!(), r#" ORDER BY tenant_id COLLATE "C" FOR SHARE"#);
const SUPPLIER_FLAGS: &str = supplier_flags!();
const SUPPLIER_FLAGS_LOCKED: &str =
    concat!(supplier_flags!(), r#" ORDER BY tenant_id COLLATE "C", supplier_id COLLATE "C" FOR SHARE"#);

/// Reads the batch's tenants' and suppliers' flags into `flags`; `locked`: under a share
/// lock, taken in key order (byte order, as a batch takes every lock).
async fn read_flags(
    connection: &mut PgConnection,
    keys: &BatchKeys,
    flags: &mut FlagTable,
    locked: bool,
) -> Result<(), StoreError> {
    let (tenants_sql, suppliers_sql) = match locked {
        true => (TENANT_FLAGS_LOCKED, SUPPLIER_FLAGS_LOCKED),
        false => (TENANT_FLAGS, SUPPLIER_FLAGS),
    };
    let tenants: Vec<&str> = keys.tenants.iter().map(TenantId::as_str).collect();
    let supplier_tenants: Vec<&str> = keys.suppliers.iter().map(|(tenant, _)| tenant.as_str()).collect();
    let suppliers: Vec<&str> = keys.suppliers.iter().map(|(_, supplier)| supplier.as_str()).collect();
    let rows = sqlx::query(tenants_sql).bind(&tenants).fetch_all(&mut *connection).await.map_err(store_error)?;
    for row in rows {
        let tenant: String = column(&row, "tenant_id")?;
        flags.tenants.insert(rows::tenant(&tenant)?, column(&row, "sync_enabled")?);
    }
    let rows = sqlx::query(suppliers_sql)
        .bind(&supplier_tenants)
        .bind(&suppliers)
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
    for row in rows {
        let tenant: String = column(&row, "tenant_id")?;
        let supplier: String = column(&row, "supplier_id")?;
        flags.set_supplier(rows::tenant(&tenant)?, rows::supplier(&supplier)?, column(&row, "sync_enabled")?);
    }
    Ok(())
}

/// An offer's `revision` as read, or `ABSENT` when it did not exist for this transaction.
pub(super) type Revisions<'k> = HashMap<&'k OfferKey, i64>;

/// The expected revision of an offer the read did not see: never matches a stored row.
pub(super) const ABSENT: i64 = -1;

/// What a batch reads of each offer: its key, its state and the revision its write is guarded by.
const OFFER_STATE: &str = "tenant_id, supplier_id, sku, snapshot_quantity, snapshot_effective_at, \
                           snapshot_sequence, snapshot_event_id, adjustments, folded, clamped_until, revision";

/// Reads the touched offers that exist. Pessimistically it creates the missing ones and
/// locks them all first (a batch that lost a race takes every row it plans against);
/// optimistically it only reads, and a missing offer is planned as new.
pub(super) async fn offers<'k>(
    connection: &mut PgConnection,
    keys: &[&'k OfferKey],
    locking: Locking,
) -> Result<(HashMap<OfferKey, OfferState>, Revisions<'k>), StoreError> {
    let mut offers = HashMap::with_capacity(keys.len());
    let mut revisions = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok((offers, revisions));
    }
    // The keys arrive sorted; ORDINALITY keeps that order, the one lock order of offers.
    let rows = match locking {
        // A missing offer is planned as new and inserted by the guarded write, which conflicts
        // if another transaction created it meanwhile: no row is written twice.
        Locking::Optimistic => {
            offer_rows(
                connection,
                &format!(
                    "SELECT {OFFER_STATE} FROM offers
                     JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(t, s, k)
                       ON tenant_id = t AND supplier_id = s AND sku = k"
                ),
                keys.iter().copied(),
            )
            .await?
        }
        Locking::Pessimistic => {
            offer_rows(
                connection,
                &format!(
                    "INSERT INTO offers AS o (tenant_id, supplier_id, sku)
                     SELECT t, s, k FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(t, s, k, n)
                     ORDER BY n
                     ON CONFLICT (tenant_id, supplier_id, sku) DO UPDATE SET updated_at = o.updated_at
                     RETURNING {OFFER_STATE}"
                ),
                keys.iter().copied(),
            )
            .await?
        }
    };
    for row in rows {
        let key = OfferKey {
            tenant: rows::tenant(column(&row, "tenant_id")?)?,
            supplier: rows::supplier(column(&row, "supplier_id")?)?,
            sku: rows::sku(column(&row, "sku")?)?,
        };
        let columns = offer_columns(&row)?;
        // Keyed by the batch's own key (the keys are sorted), not a copy of it.
        let Ok(index) = keys.binary_search(&&key) else {
            return Err(StoreError::Corrupt(format!("offer {key:?} was returned but not asked for")));
        };
        revisions.insert(keys[index], column(&row, "revision")?);
        offers.insert(key, columns.into_state()?);
    }
    Ok((offers, revisions))
}

/// Runs an offer statement taking the keys as three arrays ($1 tenants, $2 suppliers, $3 SKUs).
async fn offer_rows<'k>(
    connection: &mut PgConnection,
    sql: &str,
    keys: impl Iterator<Item = &'k OfferKey> + Clone,
) -> Result<Vec<PgRow>, StoreError> {
    sqlx::query(sql)
        .bind(keys.clone().map(|key| key.tenant.as_str()).collect::<Vec<_>>())
        .bind(keys.clone().map(|key| key.supplier.as_str()).collect::<Vec<_>>())
        .bind(keys.map(|key| key.sku.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)
}

/// Deletes the offer rows `offers` created to lock that no write of the batch reached (no
/// snapshot, no adjustment: their events held, or none of the batch): an offer exists once an
/// event was applied to it, as on the optimistic path and in SQLite. Left, a trace listed it
/// at 0, as if its supplier had sent 0, and a feed's refresh took it for a stored offer.
/// Returns the keys deleted.
pub(super) async fn drop_unwritten_offers(
    connection: &mut PgConnection,
    keys: &[OfferKey],
) -> Result<Vec<OfferKey>, StoreError> {
    let rows = offer_rows(
        connection,
        "DELETE FROM offers AS o USING unnest($1::text[], $2::text[], $3::text[]) AS u(t, s, k)
         WHERE o.tenant_id = u.t AND o.supplier_id = u.s AND o.sku = u.k
           AND o.snapshot_event_id IS NULL AND o.adjustments = '[]' AND o.folded IS NULL
         RETURNING o.tenant_id, o.supplier_id, o.sku",
        keys.iter(),
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(OfferKey {
                tenant: rows::tenant(column(row, "tenant_id")?)?,
                supplier: rows::supplier(column(row, "supplier_id")?)?,
                sku: rows::sku(column(row, "sku")?)?,
            })
        })
        .collect()
}

/// Deletes the rows `items` created to lock that no write of the batch reached (still at
/// version 0): an item exists once something was applied to it, whatever the locking.
pub(super) async fn drop_unwritten_items(
    connection: &mut PgConnection,
    keys: &[(ItemKey, ItemId)],
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = keys.iter().map(|(_, id)| id.0).collect();
    sqlx::query("DELETE FROM items WHERE item_id = ANY($1) AND version = 0")
        .bind(&ids)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Reads the touched items that exist, as `load_offers` reads offers: pessimistically it
/// creates and locks them all first; optimistically a missing item is planned as new.
pub(super) async fn items(
    connection: &mut PgConnection,
    keys: &[(ItemKey, ItemId)],
    locking: Locking,
) -> Result<HashMap<ItemKey, ItemState>, StoreError> {
    let mut items = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(items);
    }
    let rows = match locking {
        // As with offers, a missing item is planned as new and inserted by the guarded write.
        Locking::Optimistic => {
            let ids: Vec<Uuid> = keys.iter().map(|(_, id)| id.0).collect();
            sqlx::query("SELECT tenant_id, sku, quantity, version FROM items WHERE item_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *connection)
                .await
                .map_err(store_error)?
        }
        Locking::Pessimistic => {
            item_rows(
                connection,
                "INSERT INTO items AS i (item_id, tenant_id, sku)
                 SELECT id, t, k FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS u(id, t, k, n)
                 ORDER BY n
                 ON CONFLICT (item_id) DO UPDATE SET updated_at = i.updated_at
                 RETURNING tenant_id, sku, quantity, version",
                keys.iter(),
            )
            .await?
        }
    };
    for row in rows {
        let key = ItemKey { tenant: rows::tenant(column(&row, "tenant_id")?)?, sku: rows::sku(column(&row, "sku")?)? };
        items.insert(
            key,
            ItemState { quantity: column(&row, "quantity")?, version: rows::version(column(&row, "version")?)? },
        );
    }
    Ok(items)
}

/// Runs an item statement taking the keys as three arrays ($1 ids, $2 tenants, $3 SKUs).
async fn item_rows<'k>(
    connection: &mut PgConnection,
    sql: &str,
    keys: impl Iterator<Item = &'k (ItemKey, ItemId)> + Clone,
) -> Result<Vec<PgRow>, StoreError> {
    sqlx::query(sql)
        .bind(keys.clone().map(|(_, id)| id.0).collect::<Vec<Uuid>>())
        .bind(keys.clone().map(|(key, _)| key.tenant.as_str()).collect::<Vec<_>>())
        .bind(keys.map(|(key, _)| key.sku.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)
}
