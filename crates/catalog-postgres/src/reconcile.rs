//! Reconciliation on Postgres: pages of what a channel should show, and drift corrections as
//! new item versions queued on every channel, journaled in `drifts`, in one transaction.

use catalog_core::{ItemId, TenantId};
use catalog_store::batch::OutboxWrite;
use catalog_store::{rows, ChannelItem, DriftCorrection, DriftCount, DriftRecord, StoreConfig, StoreError};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use async_trait::async_trait;
use catalog_store::ReconcileStore;

use crate::apply::upsert_outbox;
use crate::columns::{column, saturating_i64};
use crate::{store_error, with_deadline, PostgresStore};

pub(crate) async fn tenants(pool: &PgPool, config: &StoreConfig, channel: &str) -> Result<Vec<TenantId>, StoreError> {
    let rows = sqlx::query(
        r#"SELECT tenant_id FROM items WHERE version > 0 GROUP BY tenant_id ORDER BY tenant_id COLLATE "C""#,
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut tenants = Vec::with_capacity(rows.len());
    for row in rows {
        let tenant = rows::tenant(column(&row, "tenant_id")?)?;
        if config.routes(channel, &tenant) {
            tenants.push(tenant);
        }
    }
    Ok(tenants)
}

pub(crate) async fn page(
    pool: &PgPool,
    channel: &str,
    tenant: &TenantId,
    after: Option<ItemId>,
    limit: usize,
) -> Result<Vec<ChannelItem>, StoreError> {
    let rows = sqlx::query(
        // Joined laterally, each a probe of a unique index per item of the page (its outbox
        // row; its open letter, by subject): as `EXISTS`, PostgreSQL hashed every waiting row
        // and open letter of the channel for each page, 48 ms a page of 500 against 11 ms.
        "SELECT i.item_id, i.sku, i.quantity, i.version, p.version AS accepted,
                (o.queued IS NOT NULL OR d.open IS NOT NULL) AS pending
         FROM items AS i LEFT JOIN published_versions AS p ON p.item_id = i.item_id AND p.channel = $1
         LEFT JOIN LATERAL (SELECT true AS queued FROM outbox
                            WHERE outbox.item_id = i.item_id AND outbox.channel = $1) AS o ON true
         LEFT JOIN LATERAL (SELECT true AS open FROM dead_letters
                            WHERE dead_letters.stage = 'publish' AND dead_letters.subject = i.item_id::text
                              AND coalesce(dead_letters.channel, '') = $1
                              AND dead_letters.resolved_at IS NULL) AS d ON true
         WHERE i.tenant_id = $2 AND i.item_id > $3
         ORDER BY i.item_id LIMIT $4",
    )
    .bind(channel)
    .bind(tenant.as_str())
    // No item id is the nil uuid (they are v5), so "after nil" is the first page, and the
    // condition stays a plain range on (tenant_id, item_id) the index serves.
    .bind(after.map_or(Uuid::nil(), |id| id.0))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(ChannelItem {
                item_id: ItemId(column(row, "item_id")?),
                sku: rows::sku(column(row, "sku")?)?,
                quantity: column(row, "quantity")?,
                version: rows::version(column(row, "version")?)?,
                accepted: column::<Option<i64>>(row, "accepted")?.map(rows::version).transpose()?,
                pending: column(row, "pending")?,
            })
        })
        .collect()
}

pub(crate) async fn correct(
    pool: &PgPool,
    config: &StoreConfig,
    channel: &str,
    corrections: &[DriftCorrection],
) -> Result<Vec<ItemId>, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    // Locked first, in the order batches lock items (`BatchKeys`: (tenant, sku) in byte order,
    // `COLLATE "C"`), so a round of corrections and a batch never wait on each other in a
    // cycle; the updates below then find their rows locked, whatever their order.
    let ids: Vec<Uuid> = corrections.iter().map(|correction| correction.item_id.0).collect();
    sqlx::query(
        r#"SELECT item_id FROM items WHERE item_id = ANY($1)
           ORDER BY tenant_id COLLATE "C", sku COLLATE "C" FOR UPDATE"#,
    )
    .bind(&ids)
    .execute(&mut *transaction)
    .await
    .map_err(store_error)?;
    let mut outbox = Vec::new();
    let mut corrected = Vec::new();
    // In item id order, so `corrected` is in the order the port promises.
    let mut ordered: Vec<&DriftCorrection> = corrections.iter().collect();
    ordered.sort_by_key(|correction| correction.item_id.0);
    for correction in ordered {
        let row = sqlx::query(
            "UPDATE items SET version = $3, updated_at = now() WHERE item_id = $1 AND version = $2
             RETURNING tenant_id, sku, quantity",
        )
        .bind(correction.item_id.0)
        .bind(saturating_i64(correction.seen_version))
        .bind(saturating_i64(correction.corrected_version))
        .fetch_optional(&mut *transaction)
        .await
        .map_err(store_error)?;
        let Some(row) = row else { continue };
        // A correction moves the version, never the quantity: a clean check of the version
        // it moved from still holds (decision 0014).
        sqlx::query(
            "UPDATE item_trace_checks SET checked_version = $3
             WHERE item_id = $1 AND checked_version = $2 AND gap IS NULL",
        )
        .bind(correction.item_id.0)
        .bind(saturating_i64(correction.seen_version))
        .bind(saturating_i64(correction.corrected_version))
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
        let tenant_text: String = column(&row, "tenant_id")?;
        let tenant = rows::tenant(&tenant_text)?;
        let sku: String = column(&row, "sku")?;
        let quantity: i64 = column(&row, "quantity")?;
        sqlx::query(
            "INSERT INTO drifts (item_id, tenant_id, sku, channel, kind, shown_quantity, shown_version,
                                 catalog_version, corrected_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(correction.item_id.0)
        .bind(&tenant_text)
        .bind(&sku)
        .bind(channel)
        .bind(correction.kind.as_str())
        .bind(correction.shown.map(|shown| shown.quantity))
        .bind(correction.shown.map(|shown| saturating_i64(shown.version)))
        .bind(saturating_i64(correction.seen_version))
        .bind(saturating_i64(correction.corrected_version))
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
        rows::sku(&sku)?;
        let version = saturating_i64(correction.corrected_version);
        outbox.extend(OutboxWrite::on_its_channels(config, correction.item_id, &tenant, &sku, quantity, version, None));
        corrected.push(correction.item_id);
    }
    upsert_outbox(&mut transaction, &outbox).await?;
    transaction.commit().await.map_err(store_error)?;
    Ok(corrected)
}

pub(crate) async fn item_drifts(pool: &PgPool, item_id: ItemId, limit: usize) -> Result<Vec<DriftRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT item_id, tenant_id, sku, channel, kind, shown_quantity, shown_version, catalog_version,
                corrected_version, detected_at
         FROM drifts WHERE item_id = $1 ORDER BY detected_at DESC, drift_id DESC LIMIT $2",
    )
    .bind(item_id.0)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(DriftRecord {
                item_id: ItemId(column::<Uuid>(row, "item_id")?),
                tenant_id: rows::tenant(column(row, "tenant_id")?)?,
                sku: rows::sku(column(row, "sku")?)?,
                channel: column(row, "channel")?,
                kind: rows::drift_kind(column(row, "kind")?)?,
                shown: rows::shown(column(row, "shown_quantity")?, column(row, "shown_version")?)?,
                catalog_version: rows::version(column(row, "catalog_version")?)?,
                corrected_version: rows::version(column(row, "corrected_version")?)?,
                detected_at: column(row, "detected_at")?,
            })
        })
        .collect()
}

pub(crate) async fn drift_counts(pool: &PgPool, since: DateTime<Utc>) -> Result<Vec<DriftCount>, StoreError> {
    let counts = crate::admin::counts_per_channel(pool, "drifts", "kind", "detected_at", since).await?;
    Ok(counts.into_iter().map(DriftCount::from).collect())
}

#[async_trait]
impl ReconcileStore for PostgresStore {
    async fn reconcile_tenants(&self, channel: &str) -> Result<Vec<TenantId>, StoreError> {
        with_deadline(self.deadline, "reconcile_tenants", tenants(&self.pool, &self.config, channel)).await
    }

    async fn reconcile_page(
        &self,
        channel: &str,
        tenant: &TenantId,
        after: Option<ItemId>,
        limit: usize,
    ) -> Result<Vec<ChannelItem>, StoreError> {
        with_deadline(self.deadline, "reconcile_page", page(&self.pool, channel, tenant, after, limit)).await
    }

    async fn correct_drifts(&self, channel: &str, corrections: &[DriftCorrection]) -> Result<Vec<ItemId>, StoreError> {
        with_deadline(self.deadline, "correct_drifts", correct(&self.pool, &self.config, channel, corrections)).await
    }

    async fn item_drifts(&self, item_id: ItemId, limit: usize) -> Result<Vec<DriftRecord>, StoreError> {
        with_deadline(self.deadline, "item_drifts", self::item_drifts(&self.pool, item_id, limit)).await
    }

    async fn drift_counts(&self, since: DateTime<Utc>) -> Result<Vec<DriftCount>, StoreError> {
        with_deadline(self.deadline, "drift_counts", self::drift_counts(&self.pool, since)).await
    }
}
