//! Reconciliation on SQLite: pages of what a channel should show, and drift corrections as
//! new item versions queued on every channel, journaled in `drifts`, in one transaction on
//! the writer (decision 0013).

use std::sync::Arc;

use catalog_core::{ItemId, TenantId};
use catalog_store::batch::OutboxWrite;
use catalog_store::{rows, ChannelItem, DriftCorrection, DriftCount, DriftRecord, StoreConfig, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sqlx::SqlitePool;

use crate::apply::insert_outbox_rows;
use crate::columns::{column, micros, saturating_i64, time_column, uuid_column};
use crate::error::{store_error, write_error};
use crate::writer::Writer;

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
        if config.routes(channel, &tenant) {
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
    // BLOB comparison is memcmp, the order of the uuid's bytes: the storefront's order. An
    // open dead letter is found by its subject, the item id as text (`Uuid`'s hyphenated
    // form), through the index of open letters.
    let rows = sqlx::query(
        "SELECT i.item_id, i.sku, i.quantity, i.version, p.version AS accepted,
                EXISTS (SELECT 1 FROM outbox AS o WHERE o.item_id = i.item_id AND o.channel = ?1)
                OR EXISTS (SELECT 1 FROM dead_letters AS d
                           WHERE d.stage = 'publish' AND d.subject = lower(
                                 substr(hex(i.item_id), 1, 8) || '-' || substr(hex(i.item_id), 9, 4) || '-' ||
                                 substr(hex(i.item_id), 13, 4) || '-' || substr(hex(i.item_id), 17, 4) || '-' ||
                                 substr(hex(i.item_id), 21, 12))
                             AND coalesce(d.channel, '') = ?1 AND d.resolved_at IS NULL) AS pending
         FROM items AS i LEFT JOIN published_versions AS p ON p.item_id = i.item_id AND p.channel = ?1
         WHERE i.tenant_id = ?2 AND i.item_id > ?3
         ORDER BY i.item_id LIMIT ?4",
    )
    .bind(channel)
    .bind(tenant.as_str())
    // No item id is the nil uuid (they are v5), so "after nil" is the first page, and the
    // condition stays a plain range on (tenant_id, item_id) the index serves.
    .bind(after.map_or(uuid::Uuid::nil(), |id| id.0).as_bytes().to_vec())
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
                pending: column(row, "pending")?,
            })
        })
        .collect()
}

pub(crate) async fn correct(
    writer: &Writer,
    config: &Arc<StoreConfig>,
    channel: &str,
    corrections: &[DriftCorrection],
) -> Result<Vec<ItemId>, StoreError> {
    let (config, channel, corrections) = (Arc::clone(config), channel.to_owned(), corrections.to_vec());
    // One job of the one writer, in one transaction, like every other write of the store.
    writer.transaction(move |connection| correct_in(connection, &config, &channel, &corrections)).await
}

fn correct_in(
    connection: &Connection,
    config: &StoreConfig,
    channel: &str,
    corrections: &[DriftCorrection],
) -> Result<Vec<ItemId>, StoreError> {
    let now = micros(Utc::now());
    let mut corrected = Vec::new();
    let mut bump = connection
        .prepare_cached(
            "UPDATE items SET version = ?3, updated_at = ?4 WHERE item_id = ?1 AND version = ?2
             RETURNING tenant_id, sku, quantity",
        )
        .map_err(write_error)?;
    let mut journal = connection
        .prepare_cached(
            "INSERT INTO drifts (item_id, tenant_id, sku, channel, kind, shown_quantity, shown_version,
                                 catalog_version, corrected_version, detected_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(write_error)?;
    // A correction moves the version, never the quantity: a clean check of the version it
    // moved from still holds (decision 0014).
    let mut still_checked = connection
        .prepare_cached(
            "UPDATE item_trace_checks SET checked_version = ?3
             WHERE item_id = ?1 AND checked_version = ?2 AND gap IS NULL",
        )
        .map_err(write_error)?;
    for correction in corrections {
        let item_id = correction.item_id.0.as_bytes().as_slice();
        let bumped = bump
            .query_row(
                params![
                    item_id,
                    saturating_i64(correction.seen_version),
                    saturating_i64(correction.corrected_version),
                    now
                ],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)),
            )
            .optional()
            .map_err(write_error)?;
        let Some((tenant_text, sku_text, quantity)) = bumped else { continue };
        let tenant = rows::tenant(&tenant_text)?;
        still_checked
            .execute(params![
                item_id,
                saturating_i64(correction.seen_version),
                saturating_i64(correction.corrected_version)
            ])
            .map_err(write_error)?;
        journal
            .execute(params![
                item_id,
                &tenant_text,
                &sku_text,
                channel,
                correction.kind.as_str(),
                correction.shown.map(|shown| shown.quantity),
                correction.shown.map(|shown| saturating_i64(shown.version)),
                saturating_i64(correction.seen_version),
                saturating_i64(correction.corrected_version),
                now,
            ])
            .map_err(write_error)?;
        rows::sku(&sku_text)?;
        let version = saturating_i64(correction.corrected_version);
        let writes: Vec<OutboxWrite> =
            OutboxWrite::on_its_channels(config, correction.item_id, &tenant, &sku_text, quantity, version, None)
                .collect();
        insert_outbox_rows(connection, &writes, now)?;
        corrected.push(correction.item_id);
    }
    corrected.sort_by_key(|item_id| item_id.0);
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

pub(crate) async fn drift_counts(pool: &SqlitePool, since: DateTime<Utc>) -> Result<Vec<DriftCount>, StoreError> {
    let counts = crate::admin::counts_per_channel(pool, "drifts", "kind", "detected_at", since).await?;
    Ok(counts.into_iter().map(DriftCount::from).collect())
}
