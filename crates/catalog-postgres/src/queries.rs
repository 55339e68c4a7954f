//! The `CatalogStore` implementation for Postgres: batch application with conflict
//! retries, flags, and the read queries behind tracing and status.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use catalog_core::{ItemId, SupplierId, TenantId};
use catalog_store::rows::{self, ItemRow, JournalRow, OfferColumns, OfferRow};
use catalog_store::{
    BatchInput, BatchResult, CatalogStore, Checkpoint, ItemTrace, JournalEntry, JournalWindow, PendingPublish,
    PublishAttempt, StoreError, StoredItem, SyncStatus, TenantFlags,
};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::{apply::apply_once, store_error, PostgresStore, MAX_CONFLICT_RETRIES, MIGRATOR};

const JOURNAL_COLUMNS: &str = "journal_id, event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, \
     updated_at, sequence, effective_at, clock_drift_clamped, received_at, outcome, reason, detail, \
     redelivery_count, payload_differs, source, source_partition, source_offset, traceparent, raw_payload, decided_at";

fn journal_row(row: &PgRow) -> JournalRow {
    JournalRow {
        journal_id: row.get(0),
        event_id: row.get(1),
        tenant: row.get(2),
        supplier: row.get(3),
        sku: row.get(4),
        event_type: row.get(5),
        quantity: row.get(6),
        delta: row.get(7),
        updated_at: row.get(8),
        sequence: row.get(9),
        effective_at: row.get(10),
        clock_drift_clamped: row.get(11),
        received_at: row.get(12),
        outcome: row.get(13),
        reason: row.get(14),
        detail: row.get(15),
        redelivery_count: row.get(16),
        payload_differs: row.get(17),
        source: row.get(18),
        source_partition: row.get(19),
        source_offset: row.get(20),
        traceparent: row.get(21),
        raw_payload: row.get(22),
        decided_at: row.get(23),
    }
}

fn item_row(row: &PgRow) -> ItemRow {
    ItemRow { item_id: row.get(0), tenant: row.get(1), sku: row.get(2), quantity: row.get(3), version: row.get(4) }
}

#[async_trait]
impl CatalogStore for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|error| StoreError::Schema(error.to_string()))
    }

    async fn apply_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        let mut attempt = 0;
        loop {
            match apply_once(&self.pool, &self.config, batch).await {
                Err(StoreError::Conflict(reason)) if attempt < MAX_CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, %reason, "batch lost a race, planning it again");
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                other => return other,
            }
        }
    }

    async fn checkpoints(&self, source: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let rows =
            sqlx::query("SELECT partition, next_offset FROM source_checkpoints WHERE source = $1 ORDER BY partition")
                .bind(source)
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|row| Checkpoint { source: source.to_owned(), partition: row.get(0), next_offset: row.get(1) })
            .collect())
    }

    async fn set_tenant_sync(&self, tenant: &TenantId, enabled: bool) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenants (tenant_id, sync_enabled) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO UPDATE SET sync_enabled = EXCLUDED.sync_enabled, updated_at = now()",
        )
        .bind(tenant.as_str())
        .bind(enabled)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn set_supplier_sync(
        &self,
        tenant: &TenantId,
        supplier: &SupplierId,
        enabled: bool,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await.map_err(store_error)?;
        sqlx::query("INSERT INTO tenants (tenant_id, sync_enabled) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(tenant.as_str())
            .bind(self.config.default_sync_enabled)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO suppliers (tenant_id, supplier_id, sync_enabled) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, supplier_id) DO UPDATE SET sync_enabled = EXCLUDED.sync_enabled, updated_at = now()",
        )
        .bind(tenant.as_str())
        .bind(supplier.as_str())
        .bind(enabled)
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
        transaction.commit().await.map_err(store_error)
    }

    async fn tenant_flags(&self, tenant: &TenantId) -> Result<Option<TenantFlags>, StoreError> {
        let Some(row) = sqlx::query("SELECT sync_enabled FROM tenants WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let suppliers = sqlx::query("SELECT supplier_id, sync_enabled FROM suppliers WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .iter()
            .map(|row| Ok((rows::supplier(row.get(0))?, row.get(1))))
            .collect::<Result<BTreeMap<_, _>, StoreError>>()?;
        Ok(Some(TenantFlags { tenant: tenant.clone(), sync_enabled: row.get(0), suppliers }))
    }

    async fn item(&self, item_id: ItemId) -> Result<Option<StoredItem>, StoreError> {
        sqlx::query("SELECT item_id, tenant_id, sku, quantity, version FROM items WHERE item_id = $1")
            .bind(item_id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
            .map(|row| item_row(&row).into_item())
            .transpose()
    }

    async fn items(&self, tenant: &TenantId) -> Result<Vec<StoredItem>, StoreError> {
        sqlx::query(
            r#"SELECT item_id, tenant_id, sku, quantity, version FROM items WHERE tenant_id = $1 ORDER BY sku COLLATE "C""#,
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| item_row(row).into_item())
        .collect()
    }

    async fn item_trace(&self, item_id: ItemId) -> Result<Option<ItemTrace>, StoreError> {
        let Some(item) = self.item(item_id).await? else {
            return Ok(None);
        };
        let offers = sqlx::query(
            r#"SELECT supplier_id, quantity, winner_event_id, snapshot_quantity, snapshot_effective_at,
                      snapshot_sequence, snapshot_event_id, adjustments
               FROM offers WHERE tenant_id = $1 AND sku = $2 ORDER BY supplier_id COLLATE "C""#,
        )
        .bind(item.tenant.as_str())
        .bind(item.sku.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| {
            OfferRow {
                supplier: row.get(0),
                quantity: row.get(1),
                winner_event_id: row.get(2),
                columns: OfferColumns {
                    snapshot_quantity: row.get(3),
                    snapshot_effective_at: row.get(4),
                    snapshot_sequence: row.get(5),
                    snapshot_event_id: row.get(6),
                    adjustments: row.get(7),
                },
            }
            .into_offer()
        })
        .collect::<Result<Vec<_>, _>>()?;
        let mut events =
            sqlx::query(&format!("SELECT {JOURNAL_COLUMNS} FROM events WHERE tenant_id = $1 AND sku = $2"))
                .bind(item.tenant.as_str())
                .bind(item.sku.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?
                .iter()
                .map(|row| journal_row(row).into_entry())
                .collect::<Result<Vec<_>, _>>()?;
        rows::sort_for_trace(&mut events);
        let pending_publishes = sqlx::query(
            "SELECT channel, version, enqueued_at FROM outbox WHERE item_id = $1 ORDER BY version, channel",
        )
        .bind(item_id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| {
            Ok(PendingPublish { channel: row.get(0), version: rows::version(row.get(1))?, enqueued_at: row.get(2) })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let publish_attempts = sqlx::query(
            "SELECT channel, version, attempt, status, result, latency_ms, error, attempted_at
             FROM publish_attempts WHERE item_id = $1 ORDER BY attempted_at, attempt_id",
        )
        .bind(item_id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| {
            Ok(PublishAttempt {
                channel: row.get(0),
                version: rows::version(row.get(1))?,
                attempt: u32::try_from(row.get::<i32, _>(2)).unwrap_or(0),
                status: row.get::<Option<i32>, _>(3).and_then(|status| u16::try_from(status).ok()),
                result: row.get(4),
                latency_ms: row.get::<Option<i64>, _>(5).and_then(|latency| u64::try_from(latency).ok()),
                error: row.get(6),
                attempted_at: row.get(7),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(ItemTrace { item, offers, events, pending_publishes, publish_attempts }))
    }

    async fn journal_window(&self, window: &JournalWindow) -> Result<Vec<JournalEntry>, StoreError> {
        sqlx::query(&format!(
            "SELECT {JOURNAL_COLUMNS} FROM events
             WHERE tenant_id = $1 AND received_at >= $2 AND ($3::timestamptz IS NULL OR received_at < $3)
               AND ($4::text IS NULL OR supplier_id = $4)
             ORDER BY received_at, journal_id"
        ))
        .bind(window.tenant.as_str())
        .bind(window.since)
        .bind(window.until)
        .bind(window.supplier.as_ref().map(SupplierId::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| journal_row(row).into_entry())
        .collect()
    }

    async fn sync_status(&self, tenant: &TenantId) -> Result<Option<SyncStatus>, StoreError> {
        let exists = sqlx::query("SELECT 1 FROM tenants WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        if exists.is_none() {
            return Ok(None);
        }
        let totals = sqlx::query(
            "SELECT max(received_at), max(received_at) FILTER (WHERE outcome = 'applied'),
                    coalesce(sum(redelivery_count), 0)::int8,
                    (SELECT count(*) FROM items WHERE tenant_id = $1),
                    (SELECT count(*) FROM outbox WHERE tenant_id = $1)
             FROM events WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        let events_by_outcome =
            sqlx::query("SELECT outcome, count(*) FROM events WHERE tenant_id = $1 GROUP BY outcome")
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?
                .iter()
                .map(|row| (row.get::<String, _>(0), row.get::<i64, _>(1) as u64))
                .collect();
        Ok(Some(SyncStatus {
            tenant: tenant.clone(),
            last_received_at: totals.get(0),
            last_applied_at: totals.get(1),
            events_by_outcome,
            redeliveries: totals.get::<i64, _>(2) as u64,
            n_items: totals.get::<i64, _>(3) as u64,
            outbox_pending: totals.get::<i64, _>(4) as u64,
        }))
    }
}
