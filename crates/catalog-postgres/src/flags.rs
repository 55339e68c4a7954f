//! Sync flags on Postgres: switching tenants and suppliers on and off, and reading them.

use std::collections::BTreeMap;

use catalog_core::{SupplierId, TenantId};
use catalog_store::{rows, StoreError, TenantFlags};
use sqlx::PgPool;

use crate::columns::column;
use crate::store_error;

pub(crate) async fn set_tenant_sync<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    tenant: &TenantId,
    enabled: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tenants (tenant_id, sync_enabled) VALUES ($1, $2)
         ON CONFLICT (tenant_id) DO UPDATE SET sync_enabled = EXCLUDED.sync_enabled, updated_at = now()",
    )
    .bind(tenant.as_str())
    .bind(enabled)
    .execute(executor)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub(crate) async fn set_supplier_sync(
    pool: &PgPool,
    tenant: &TenantId,
    supplier: &SupplierId,
    enabled: bool,
    default_enabled: bool,
) -> Result<(), StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    sqlx::query("INSERT INTO tenants (tenant_id, sync_enabled) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(tenant.as_str())
        .bind(default_enabled)
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
    upsert_supplier_sync(&mut transaction, tenant, supplier, enabled).await?;
    transaction.commit().await.map_err(store_error)
}

/// Sets one supplier's flag, in a transaction that made its tenant's row.
pub(crate) async fn upsert_supplier_sync(
    transaction: &mut sqlx::PgConnection,
    tenant: &TenantId,
    supplier: &SupplierId,
    enabled: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO suppliers (tenant_id, supplier_id, sync_enabled) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, supplier_id) DO UPDATE SET sync_enabled = EXCLUDED.sync_enabled, updated_at = now()",
    )
    .bind(tenant.as_str())
    .bind(supplier.as_str())
    .bind(enabled)
    .execute(transaction)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub(crate) async fn tenant_flags(pool: &PgPool, tenant: &TenantId) -> Result<Option<TenantFlags>, StoreError> {
    let mut connection = pool.acquire().await.map_err(store_error)?;
    flags_on(&mut connection, tenant, false).await
}

/// A tenant's flags as `connection` reads them; `locking` (in a transaction) its suppliers'
/// rows `FOR UPDATE`, so no switch of one lands before the transaction ends.
pub(crate) async fn flags_on(
    connection: &mut sqlx::PgConnection,
    tenant: &TenantId,
    locking: bool,
) -> Result<Option<TenantFlags>, StoreError> {
    let Some(row) = sqlx::query("SELECT sync_enabled FROM tenants WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_optional(&mut *connection)
        .await
        .map_err(store_error)?
    else {
        return Ok(None);
    };
    let suppliers = if locking {
        // In key order (byte order), as batches take their share locks.
        r#"SELECT supplier_id, sync_enabled FROM suppliers WHERE tenant_id = $1
           ORDER BY supplier_id COLLATE "C" FOR UPDATE"#
    } else {
        "SELECT supplier_id, sync_enabled FROM suppliers WHERE tenant_id = $1"
    };
    let suppliers = sqlx::query(suppliers)
        .bind(tenant.as_str())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| Ok((rows::supplier(column(row, "supplier_id")?)?, column(row, "sync_enabled")?)))
        .collect::<Result<BTreeMap<_, _>, StoreError>>()?;
    Ok(Some(TenantFlags { tenant: tenant.clone(), sync_enabled: column(&row, "sync_enabled")?, suppliers }))
}
