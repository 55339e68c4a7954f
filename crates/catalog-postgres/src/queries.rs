//! The `CatalogStore` implementation for Postgres: batch application with conflict
//! retries, flags, and the read queries behind tracing and status.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use catalog_core::{ItemId, SupplierId, TenantId};
use catalog_store::rows::{self, ItemRow, JournalRow, OfferColumns, OfferRow};
use catalog_store::{
    BatchInput, BatchResult, CatalogStore, Checkpoint, DeadLetter, ItemTrace, JournalEntry, JournalWindow, OutboxClaim,
    OutboxDepth, OutboxEntry, PendingPublish, PublishAttempt, PublishOutcome, PublishRecord, StoreError, StoredItem,
    SyncStatus, TenantFlags,
};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::{
    apply::apply_once, apply::preview_once, apply::Failure, apply::Locking, store_error, PostgresStore,
    MAX_CONFLICT_RETRIES, MIGRATOR,
};

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
        let mut locking = Locking::Optimistic;
        loop {
            let reason = match apply_once(&self.pool, &self.config, &self.offers, batch, locking).await {
                Ok(result) => return Ok(result),
                // Only the journal moved: plan again the same way, against the claim now there.
                Err(Failure::ClaimTaken(StoreError::Conflict(reason))) if attempt < MAX_CONFLICT_RETRIES => reason,
                // Rows the batch read moved: from now on it locks what it reads.
                Err(Failure::Store(StoreError::Conflict(reason))) if attempt < MAX_CONFLICT_RETRIES => {
                    locking = Locking::Pessimistic;
                    reason
                }
                Err(failure) => return Err(failure.into()),
            };
            attempt += 1;
            tracing::debug!(attempt, %reason, ?locking, "batch lost a race, planning it again");
            tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
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

    async fn claim_outbox(&self, channel: &str, claim: &OutboxClaim) -> Result<Vec<OutboxEntry>, StoreError> {
        // One row per item and channel, holding its newest waiting version: the claim walks
        // the channel's rows longest-waiting first and stops at the limit. SKIP LOCKED lets
        // concurrent publishers take disjoint items without waiting; the due test is on the
        // locked row itself, so a lease committed meanwhile is seen and skipped.
        let rows = sqlx::query(
            "WITH picked AS (
                 SELECT outbox_id FROM outbox
                 WHERE channel = $1 AND available_at <= now()
                   AND (enqueued_at <= now() - make_interval(secs => $4)
                        OR first_enqueued_at <= now() - make_interval(secs => $5))
                 ORDER BY first_enqueued_at, outbox_id
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE outbox AS o SET available_at = now() + make_interval(secs => $3)
             FROM picked WHERE o.outbox_id = picked.outbox_id
             RETURNING o.item_id, o.tenant_id, o.sku, o.quantity, o.version, o.channel, o.traceparent, o.attempts,
                       o.enqueued_at",
        )
        .bind(channel)
        .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX))
        .bind(claim.lease.as_secs_f64())
        .bind(claim.settle.as_secs_f64())
        .bind(claim.max_wait.as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(OutboxEntry {
                    item_id: ItemId(row.get(0)),
                    tenant: rows::tenant(row.get(1))?,
                    sku: rows::sku(row.get(2))?,
                    quantity: row.get(3),
                    version: rows::version(row.get(4))?,
                    channel: row.get(5),
                    traceparent: row.get(6),
                    attempts: u32::try_from(row.get::<i32, _>(7)).unwrap_or(0),
                    enqueued_at: row.get(8),
                })
            })
            .collect()
    }

    async fn record_publishes(&self, records: &[PublishRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool.begin().await.map_err(store_error)?;
        let mut keys = std::collections::HashSet::with_capacity(records.len());
        if records.iter().all(|record| keys.insert((record.item_id, record.channel.as_str()))) {
            let mut round: Vec<&PublishRecord> = records.iter().collect();
            round.sort_by(|a, b| (a.item_id.0, a.channel.as_bytes()).cmp(&(b.item_id.0, b.channel.as_bytes())));
            record_round(&mut transaction, &round).await?;
        } else {
            // The same item and channel twice: their effects depend on order, record one by one.
            for record in records {
                record_round(&mut transaction, &[record]).await?;
            }
        }
        transaction.commit().await.map_err(store_error)
    }

    async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError> {
        let rows = sqlx::query(
            "SELECT channel, count(*), min(first_enqueued_at) FROM outbox GROUP BY channel ORDER BY channel",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|row| OutboxDepth {
                channel: row.get(0),
                pending: row.get::<i64, _>(1) as u64,
                oldest_enqueued_at: row.get(2),
            })
            .collect())
    }

    async fn preview_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        preview_once(&self.pool, &self.config, batch).await
    }

    async fn republish(&self, items: &[ItemId]) -> Result<u64, StoreError> {
        crate::apply::republish(&self.pool, &self.config, items).await
    }

    async fn stale_items(&self, channel: &str) -> Result<u64, StoreError> {
        let stale: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM items AS i
             LEFT JOIN published_versions AS p ON p.item_id = i.item_id AND p.channel = $1
             WHERE i.version > coalesce(p.version, 0)",
        )
        .bind(channel)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(stale as u64)
    }

    async fn open_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT dead_letter_id, stage, subject, channel, reason, error, body, attempts, first_failed_at,
                    last_failed_at
             FROM dead_letters WHERE resolved_at IS NULL ORDER BY last_failed_at DESC, dead_letter_id DESC LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|row| DeadLetter {
                dead_letter_id: row.get(0),
                stage: row.get(1),
                subject: row.get(2),
                channel: row.get(3),
                reason: row.get(4),
                error: row.get(5),
                body: row.get(6),
                attempts: u32::try_from(row.get::<i32, _>(7)).unwrap_or(0),
                first_failed_at: row.get(8),
                last_failed_at: row.get(9),
            })
            .collect())
    }
}

/// The version a record says the channel now holds, if it says one.
fn held_version(record: &PublishRecord) -> Option<i64> {
    let version = record.version as i64;
    match record.outcome {
        PublishOutcome::Published => Some(version),
        PublishOutcome::Superseded { current_version } => Some(version.max(current_version as i64)),
        PublishOutcome::RetryAt(_) | PublishOutcome::DeadLettered => None,
    }
}

/// Records a round of attempts, at most one per item and channel and sorted by (item id,
/// channel), with one statement per kind of effect: the outbox rows locked, in that order
/// (the order `apply_batch` writes them in, so neither waits on the other in a cycle); the
/// attempts; the version each channel now holds; the rows that are done with; the rows
/// that now wait for a version queued while this one was out; the retries; the dead letters.
async fn record_round(connection: &mut sqlx::PgConnection, records: &[&PublishRecord]) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = records.iter().map(|record| record.item_id.0).collect();
    let channels: Vec<&str> = records.iter().map(|record| record.channel.as_str()).collect();
    let versions: Vec<i64> = records.iter().map(|record| record.version as i64).collect();
    let attempts: Vec<i32> = records.iter().map(|record| i32::try_from(record.attempt).unwrap_or(i32::MAX)).collect();
    let statuses: Vec<Option<i32>> = records.iter().map(|record| record.status.map(i32::from)).collect();
    let results: Vec<&str> = records.iter().map(|record| record.outcome.as_str()).collect();
    let latencies: Vec<Option<i64>> = records.iter().map(|record| record.latency_ms.map(|l| l as i64)).collect();
    let errors: Vec<Option<&str>> = records.iter().map(|record| record.error.as_deref()).collect();
    sqlx::query(
        "SELECT 1 FROM outbox AS o
         JOIN unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS u(i, c, n) ON o.item_id = u.i AND o.channel = u.c
         ORDER BY u.n
         FOR UPDATE OF o",
    )
    .bind(&ids)
    .bind(&channels)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    sqlx::query(
        "INSERT INTO publish_attempts (item_id, version, channel, attempt, status, result, latency_ms, error)
         SELECT * FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::int4[], $5::int4[], $6::text[], $7::int8[],
                              $8::text[])",
    )
    .bind(&ids)
    .bind(&versions)
    .bind(&channels)
    .bind(&attempts)
    .bind(&statuses)
    .bind(&results)
    .bind(&latencies)
    .bind(&errors)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;

    // Published and superseded: the channel holds a version; dead-lettered: done with too.
    let (mut done_ids, mut done_channels, mut done_versions, mut held) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut retry_ids, mut retry_channels, mut retry_dues) = (Vec::new(), Vec::new(), Vec::new());
    for record in records {
        match record.outcome {
            PublishOutcome::RetryAt(due_at) => {
                retry_ids.push(record.item_id.0);
                retry_channels.push(record.channel.as_str());
                retry_dues.push(due_at);
            }
            PublishOutcome::Published | PublishOutcome::Superseded { .. } | PublishOutcome::DeadLettered => {
                done_ids.push(record.item_id.0);
                done_channels.push(record.channel.as_str());
                done_versions.push(held_version(record).unwrap_or(record.version as i64));
                held.push(held_version(record).is_some());
            }
        }
    }
    if !done_ids.is_empty() {
        sqlx::query(
            "INSERT INTO published_versions (item_id, channel, version)
             SELECT i, c, v FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::bool[]) AS u(i, c, v, held) WHERE held
             ON CONFLICT (item_id, channel) DO UPDATE
             SET version = GREATEST(published_versions.version, EXCLUDED.version), published_at = now()",
        )
        .bind(&done_ids)
        .bind(&done_channels)
        .bind(&done_versions)
        .bind(&held)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
        // A row still waiting at the version the channel holds (or an older one) is done
        // with; a row a newer version was queued into while this one was out is due now, as
        // a fresh run that started waiting when that version was queued.
        for statement in [
            "DELETE FROM outbox AS o USING unnest($1::uuid[], $2::text[], $3::int8[]) AS u(i, c, v)
             WHERE o.item_id = u.i AND o.channel = u.c AND o.version <= u.v",
            "UPDATE outbox AS o SET available_at = now(), attempts = 0, first_enqueued_at = o.enqueued_at
             FROM unnest($1::uuid[], $2::text[], $3::int8[]) AS u(i, c, v)
             WHERE o.item_id = u.i AND o.channel = u.c AND o.version > u.v",
        ] {
            sqlx::query(statement)
                .bind(&done_ids)
                .bind(&done_channels)
                .bind(&done_versions)
                .execute(&mut *connection)
                .await
                .map_err(store_error)?;
        }
    }
    if !retry_ids.is_empty() {
        // The item waits out the backoff whatever version it now holds: a newer version
        // queued meanwhile goes out at the retry, not at once to a channel that just failed.
        sqlx::query(
            "UPDATE outbox AS o SET available_at = u.due, attempts = o.attempts + 1
             FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS u(i, c, due)
             WHERE o.item_id = u.i AND o.channel = u.c",
        )
        .bind(&retry_ids)
        .bind(&retry_channels)
        .bind(&retry_dues)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
    }
    for record in records.iter().filter(|record| record.outcome == PublishOutcome::DeadLettered) {
        dead_letter(connection, record).await?;
    }
    Ok(())
}

/// Writes, or counts on, the open dead letter of a publish that will not succeed.
async fn dead_letter(connection: &mut sqlx::PgConnection, record: &PublishRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dead_letters (stage, subject, channel, reason, error, body)
         VALUES ('publish', $1, $2, $3, $4, $5)
         ON CONFLICT (stage, subject, coalesce(channel, '')) WHERE resolved_at IS NULL
         DO UPDATE SET attempts = dead_letters.attempts + 1, last_failed_at = now(), reason = EXCLUDED.reason,
                       error = EXCLUDED.error, body = EXCLUDED.body",
    )
    .bind(record.item_id.to_string())
    .bind(&record.channel)
    .bind(record.dead_letter_reason.as_deref().unwrap_or("unknown"))
    .bind(&record.error)
    .bind(&record.body)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}
