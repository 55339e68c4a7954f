//! Tenant and supplier sync flags: created on first sight with the configured default,
//! switched by operators (through the writer), and loaded for a batch's decisions.

use std::collections::BTreeMap;

use catalog_core::{SupplierId, TenantId};
use catalog_store::batch::{BatchKeys, FlagTable};
use catalog_store::{rows, StoreError, TenantFlags};
use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension};
use sqlx::{SqliteConnection, SqlitePool};

use crate::columns::{self, micros};
use crate::error::{store_error, write_error};
use crate::writer::Writer;

fn insert_tenant_if_missing(
    connection: &Connection,
    tenant: &TenantId,
    sync_enabled: bool,
    now: i64,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO tenants (tenant_id, sync_enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .and_then(|mut insert| insert.execute(params![tenant.as_str(), sync_enabled, now]))
        .map_err(write_error)?;
    Ok(())
}

fn insert_supplier_if_missing(
    connection: &Connection,
    tenant: &TenantId,
    supplier: &SupplierId,
    sync_enabled: bool,
    now: i64,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            // A supplier first seen takes its tenant's flag for new suppliers where the gate
            // set one (canary and widening hold the suppliers not listed), else the default.
            "INSERT INTO suppliers (tenant_id, supplier_id, sync_enabled, created_at, updated_at) \
             SELECT ?1, ?2, coalesce((SELECT new_suppliers_enabled FROM tenants WHERE tenant_id = ?1), ?3), ?4, ?4 \
             WHERE true ON CONFLICT (tenant_id, supplier_id) DO NOTHING",
        )
        .and_then(|mut insert| insert.execute(params![tenant.as_str(), supplier.as_str(), sync_enabled, now]))
        .map_err(write_error)?;
    Ok(())
}

/// Creates the batch's tenants and suppliers not seen before, with the default flag, and
/// loads every one's flag. Runs inside the batch's write transaction, on the writer.
pub(crate) fn create_and_load(
    connection: &Connection,
    keys: &BatchKeys,
    default_sync_enabled: bool,
    now: i64,
) -> Result<FlagTable, StoreError> {
    let mut flags = FlagTable { default_enabled: default_sync_enabled, ..FlagTable::default() };
    for tenant in &keys.tenants {
        insert_tenant_if_missing(connection, tenant, default_sync_enabled, now)?;
        let sync_enabled: bool = connection
            .prepare_cached("SELECT sync_enabled FROM tenants WHERE tenant_id = ?1")
            .and_then(|mut select| select.query_row([tenant.as_str()], |row| row.get(0)))
            .map_err(write_error)?;
        flags.tenants.insert(tenant.clone(), sync_enabled);
    }
    for (tenant, supplier) in &keys.suppliers {
        insert_supplier_if_missing(connection, tenant, supplier, default_sync_enabled, now)?;
        let sync_enabled: bool = connection
            .prepare_cached("SELECT sync_enabled FROM suppliers WHERE tenant_id = ?1 AND supplier_id = ?2")
            .and_then(|mut select| select.query_row([tenant.as_str(), supplier.as_str()], |row| row.get(0)))
            .map_err(write_error)?;
        flags.set_supplier(tenant.clone(), supplier.clone(), sync_enabled);
    }
    Ok(flags)
}

pub(crate) async fn set_tenant_sync(writer: &Writer, tenant: &TenantId, sync_enabled: bool) -> Result<(), StoreError> {
    let tenant = tenant.clone();
    writer.transaction(move |connection| upsert_tenant_sync(connection, &tenant, sync_enabled)).await
}

/// Sets a tenant's flag, making its row if need be, in the writer's transaction.
pub(crate) fn upsert_tenant_sync(
    connection: &Connection,
    tenant: &TenantId,
    sync_enabled: bool,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO tenants (tenant_id, sync_enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (tenant_id) DO UPDATE SET sync_enabled = excluded.sync_enabled, \
             updated_at = excluded.updated_at",
        )
        .and_then(|mut upsert| upsert.execute(params![tenant.as_str(), sync_enabled, micros(Utc::now())]))
        .map_err(write_error)?;
    Ok(())
}

pub(crate) async fn set_supplier_sync(
    writer: &Writer,
    tenant: &TenantId,
    supplier: &SupplierId,
    sync_enabled: bool,
    default_sync_enabled: bool,
) -> Result<(), StoreError> {
    let (tenant, supplier) = (tenant.clone(), supplier.clone());
    writer
        .transaction(move |connection| {
            upsert_supplier_sync(connection, &tenant, &supplier, sync_enabled, default_sync_enabled)
        })
        .await
}

/// Sets one supplier's flag, making its tenant's row if need be, in the writer's transaction.
pub(crate) fn upsert_supplier_sync(
    connection: &Connection,
    tenant: &TenantId,
    supplier: &SupplierId,
    sync_enabled: bool,
    default_sync_enabled: bool,
) -> Result<(), StoreError> {
    let now = micros(Utc::now());
    insert_tenant_if_missing(connection, tenant, default_sync_enabled, now)?;
    connection
        .prepare_cached(
            "INSERT INTO suppliers (tenant_id, supplier_id, sync_enabled, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?4) \
             ON CONFLICT (tenant_id, supplier_id) DO UPDATE SET sync_enabled = excluded.sync_enabled, \
             updated_at = excluded.updated_at",
        )
        .and_then(|mut upsert| upsert.execute(params![tenant.as_str(), supplier.as_str(), sync_enabled, now]))
        .map_err(write_error)?;
    Ok(())
}

pub(crate) async fn tenant_flags(pool: &SqlitePool, tenant: &TenantId) -> Result<Option<TenantFlags>, StoreError> {
    // One read transaction, so the tenant and its suppliers come from the same snapshot.
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let connection: &mut SqliteConnection = &mut transaction;
    let sync_enabled: Option<bool> = sqlx::query_scalar("SELECT sync_enabled FROM tenants WHERE tenant_id = ?1")
        .bind(tenant.as_str())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?
        .into_iter()
        .next();
    let Some(sync_enabled) = sync_enabled else { return Ok(None) };
    let supplier_rows =
        sqlx::query("SELECT supplier_id, sync_enabled FROM suppliers WHERE tenant_id = ?1 ORDER BY supplier_id")
            .bind(tenant.as_str())
            .fetch_all(&mut *connection)
            .await
            .map_err(store_error)?;
    let mut suppliers = BTreeMap::new();
    for row in &supplier_rows {
        let supplier: String = columns::column(row, "supplier_id")?;
        suppliers.insert(rows::supplier(&supplier)?, columns::column(row, "sync_enabled")?);
    }
    Ok(Some(TenantFlags { tenant: tenant.clone(), sync_enabled, suppliers }))
}

/// A tenant's flags as the writer's transaction reads them.
pub(crate) fn flags_in(connection: &Connection, tenant: &TenantId) -> Result<Option<TenantFlags>, StoreError> {
    let sync_enabled: Option<bool> = connection
        .prepare_cached("SELECT sync_enabled FROM tenants WHERE tenant_id = ?1")
        .and_then(|mut select| select.query_row([tenant.as_str()], |row| row.get(0)).optional())
        .map_err(write_error)?;
    let Some(sync_enabled) = sync_enabled else { return Ok(None) };
    let mut select = connection
        .prepare_cached("SELECT supplier_id, sync_enabled FROM suppliers WHERE tenant_id = ?1")
        .map_err(write_error)?;
    let read = select
        .query_map([tenant.as_str()], |row| Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?)))
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(write_error)?;
    let suppliers = read
        .into_iter()
        .map(|(supplier, on)| Ok((rows::supplier(&supplier)?, on)))
        .collect::<Result<BTreeMap<_, _>, StoreError>>()?;
    Ok(Some(TenantFlags { tenant: tenant.clone(), sync_enabled, suppliers }))
}
