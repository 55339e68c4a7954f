//! Reconciliation on SQLite: pages of what a channel should show, and drift corrections as
//! new item versions queued on every channel, journaled in `drifts`, in one transaction.

use catalog_core::{ItemId, TenantId};
use catalog_store::batch::OutboxWrite;
use catalog_store::{rows, ChannelItem, DriftCorrection, DriftRecord, StoreConfig, StoreError};
use chrono::Utc;
use sqlx::SqlitePool;

use crate::apply::insert_outbox_rows;
use crate::columns::{column, micros, time_column, uuid_column};
use crate::error::store_error;

/// A version or count for an INTEGER column, held at the limit rather than wrapped.
fn stored(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) async fn tenants(
    pool: &SqlitePool,
    config: &StoreConfig,
    channel: &str,
) -> Result<Vec<TenantId>, StoreError> {
    let rows = sqlx::query("SELECT DISTINCT tenant_id FROM items WHERE version > 0 ORDER BY tenant_id")
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    let mut tenants = Vec::with_capacity(rows.len());
    for row in rows {
        let text: String = column(&row, "tenant_id")?;
        let tenant = rows::tenant(&text)?;
        if config.channels.iter().any(|route| route.name == channel && route.serves(&tenant)) {
            tenants.push(tenant);
        }
    }
    Ok(tenants)
}

pub(crate) async fn page(
    pool: &SqlitePool,
    channel: &str,
    tenant: &TenantId,
    after: Option<ItemId>,
    limit: usize,
) -> Result<Vec<ChannelItem>, StoreError> {
    // BLOB comparison is memcmp, the order of the uuid's bytes: the storefront's order.
    let rows = sqlx::query(
        "SELECT i.item_id, i.sku, i.quantity, i.version, p.version AS accepted
         FROM items AS i LEFT JOIN published_versions AS p ON p.item_id = i.item_id AND p.channel = ?1
         WHERE i.tenant_id = ?2 AND (?3 IS NULL OR i.item_id > ?3)
         ORDER BY i.item_id LIMIT ?4",
    )
    .bind(channel)
    .bind(tenant.as_str())
    .bind(after.map(|id| id.0.as_bytes().to_vec()))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let sku: String = column(row, "sku")?;
            Ok(ChannelItem {
                item_id: ItemId(uuid_column(row, "item_id")?),
                sku: rows::sku(&sku)?,
                quantity: column(row, "quantity")?,
                version: rows::version(column(row, "version")?)?,
                accepted: column::<Option<i64>>(row, "accepted")?.map(rows::version).transpose()?,
            })
        })
        .collect()
}

pub(crate) async fn correct(
    pool: &SqlitePool,
    config: &StoreConfig,
    channel: &str,
    corrections: &[DriftCorrection],
) -> Result<u64, StoreError> {
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
    let now = micros(Utc::now());
    let mut corrected = 0;
    for correction in corrections {
        let item_id = correction.item_id.0.as_bytes().as_slice();
        let row = sqlx::query(
            "UPDATE items SET version = ?3, updated_at = ?4 WHERE item_id = ?1 AND version = ?2
             RETURNING tenant_id, sku, quantity",
        )
        .bind(item_id)
        .bind(stored(correction.seen_version))
        .bind(stored(correction.corrected_version))
        .bind(now)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(store_error)?;
        let Some(row) = row else { continue };
        let tenant_text: String = column(&row, "tenant_id")?;
        let tenant = rows::tenant(&tenant_text)?;
        let sku_text: String = column(&row, "sku")?;
        let quantity: i64 = column(&row, "quantity")?;
        sqlx::query(
            "INSERT INTO drifts (item_id, tenant_id, sku, channel, kind, shown_quantity, shown_version,
                                 catalog_version, corrected_version, detected_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(item_id)
        .bind(&tenant_text)
        .bind(&sku_text)
        .bind(channel)
        .bind(correction.kind.as_str())
        .bind(correction.shown.map(|shown| shown.quantity))
        .bind(correction.shown.map(|shown| stored(shown.version)))
        .bind(stored(correction.seen_version))
        .bind(stored(correction.corrected_version))
        .bind(now)
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
        rows::sku(&sku_text)?;
        let writes: Vec<OutboxWrite> = config
            .channels
            .iter()
            .filter(|route| route.serves(&tenant))
            .map(|route| OutboxWrite {
                item_id: correction.item_id,
                tenant: tenant.clone(),
                sku: sku_text.clone(),
                quantity,
                version: stored(correction.corrected_version),
                channel: route.name.clone(),
                traceparent: None,
            })
            .collect();
        insert_outbox_rows(&mut transaction, &writes, now).await?;
        corrected += 1;
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(corrected)
}

pub(crate) async fn item_drifts(
    pool: &SqlitePool,
    item_id: ItemId,
    limit: usize,
) -> Result<Vec<DriftRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT item_id, tenant_id, sku, channel, kind, shown_quantity, shown_version, catalog_version,
                corrected_version, detected_at
         FROM drifts WHERE item_id = ?1 ORDER BY detected_at DESC, drift_id DESC LIMIT ?2",
    )
    .bind(item_id.0.as_bytes().as_slice())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let tenant: String = column(row, "tenant_id")?;
            let sku: String = column(row, "sku")?;
            let kind: String = column(row, "kind")?;
            Ok(DriftRecord {
                item_id: ItemId(uuid_column(row, "item_id")?),
                tenant_id: rows::tenant(&tenant)?,
                sku: rows::sku(&sku)?,
                channel: column(row, "channel")?,
                kind: rows::drift_kind(&kind)?,
                shown: rows::shown(column(row, "shown_quantity")?, column(row, "shown_version")?)?,
                catalog_version: rows::version(column(row, "catalog_version")?)?,
                corrected_version: rows::version(column(row, "corrected_version")?)?,
                detected_at: time_column(row, "detected_at")?,
            })
        })
        .collect()
}
