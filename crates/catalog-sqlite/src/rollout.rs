//! The rollout role on SQLite: a tenant's gate stage written with the sync flags it implies
//! in one transaction on the writer, its history, and support's sign-offs.

use catalog_core::{ItemId, Rollout, SupplierId, TenantId};
use catalog_store::{
    restarts_stage, rollout_suppliers, rows, stored_rollout, switch_as_decided, AppliedItem, RolloutChange,
    RolloutChangeRecord, RolloutState, SignOff, SignOffRecord, StoreError, TenantFlags,
};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use sqlx::SqlitePool;

use crate::columns::{column, json_strings, micros, time_column, uuid_column};
use crate::error::{store_error, write_error};
use crate::writer::Writer;
use crate::SqliteStore;
use async_trait::async_trait;
use catalog_store::RolloutStore;

fn suppliers_json(rollout: &Rollout) -> String {
    json_strings(rollout_suppliers(rollout).iter().map(ToString::to_string))
}

fn parse_suppliers(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("rollout suppliers {text:?}: {error}")))
}

pub(crate) async fn rollout(pool: &SqlitePool, tenant: &TenantId) -> Result<RolloutState, StoreError> {
    let row = sqlx::query("SELECT stage, suppliers, changed_at FROM tenant_rollouts WHERE tenant_id = ?1")
        .bind(tenant.as_str())
        .fetch_all(pool)
        .await
        .map_err(store_error)?
        .into_iter()
        .next();
    let Some(row) = row else { return Ok(RolloutState { rollout: Rollout::Closed, changed_at: None }) };
    let stage: String = column(&row, "stage")?;
    let suppliers: String = column(&row, "suppliers")?;
    Ok(RolloutState {
        rollout: stored_rollout(&stage, &parse_suppliers(&suppliers)?)?,
        changed_at: Some(time_column(&row, "changed_at")?),
    })
}

/// The tenant's rollout and when it last changed, in microseconds (`None`: never).
fn current_state(connection: &rusqlite::Connection, tenant: &str) -> Result<(Rollout, Option<i64>), StoreError> {
    let current: Option<(String, String, i64)> = connection
        .query_row("SELECT stage, suppliers, changed_at FROM tenant_rollouts WHERE tenant_id = ?1", [tenant], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .map_err(write_error)?;
    match current {
        None => Ok((Rollout::Closed, None)),
        Some((stage, suppliers, changed_at)) => {
            Ok((stored_rollout(&stage, &parse_suppliers(&suppliers)?)?, Some(changed_at)))
        }
    }
}

pub(crate) async fn switch_within(
    writer: &Writer,
    default_enabled: bool,
    tenant: &TenantId,
    supplier: Option<&SupplierId>,
    since: &RolloutState,
    on: bool,
    actor: &str,
) -> Result<bool, StoreError> {
    let (tenant, supplier, actor) = (tenant.clone(), supplier.cloned(), actor.to_owned());
    let (stage, since) = (since.rollout.clone(), since.changed_at.map(micros));
    writer
        .transaction(move |connection| {
            if current_state(connection, tenant.as_str())? != (stage.clone(), since) {
                return Ok(false);
            }
            let was_off: Option<bool> = match &supplier {
                None => connection
                    .query_row("SELECT NOT sync_enabled FROM tenants WHERE tenant_id = ?1", [tenant.as_str()], |row| {
                        row.get(0)
                    })
                    .optional(),
                Some(supplier) => connection
                    .query_row(
                        "SELECT NOT sync_enabled FROM suppliers WHERE tenant_id = ?1 AND supplier_id = ?2",
                        [tenant.as_str(), supplier.as_str()],
                        |row| row.get(0),
                    )
                    .optional(),
            }
            .map_err(write_error)?;
            match &supplier {
                None => crate::flags::upsert_tenant_sync(connection, &tenant, on)?,
                Some(supplier) => {
                    crate::flags::upsert_supplier_sync(connection, &tenant, supplier, on, default_enabled)?
                }
            }
            if on && restarts_stage(&stage, was_off == Some(true)) {
                let at = micros(Utc::now());
                connection
                    .execute(
                        "UPDATE tenant_rollouts SET changed_at = ?2 WHERE tenant_id = ?1",
                        params![tenant.as_str(), at],
                    )
                    .map_err(write_error)?;
                connection
                    .execute(
                        "INSERT INTO rollout_changes (tenant_id, at, actor, step, from_stage, to_stage, suppliers)
                         VALUES (?1, ?2, ?3, 'restart', ?4, ?4, ?5)",
                        params![tenant.as_str(), at, actor, stage.stage(), suppliers_json(&stage)],
                    )
                    .map_err(write_error)?;
            }
            Ok(true)
        })
        .await
}

pub(crate) async fn change(
    writer: &Writer,
    default_enabled: bool,
    change: &RolloutChange,
) -> Result<Option<TenantFlags>, StoreError> {
    let change = change.clone();
    writer
        .transaction(move |connection| {
            let tenant = change.tenant.as_str();
            let now = micros(Utc::now());
            if current_state(connection, tenant)? != (change.from.clone(), change.from_since.map(micros)) {
                return Ok(None);
            }
            // A tenant with no row yet is made below with the default: its flags before, and
            // the switch the step was decided on (none), are the default's.
            let flags_before = crate::flags::flags_in(connection, &change.tenant)?.unwrap_or_else(|| TenantFlags {
                tenant: change.tenant.clone(),
                sync_enabled: default_enabled,
                suppliers: Default::default(),
            });
            if !switch_as_decided(&change, &flags_before, default_enabled) {
                return Ok(None);
            }
            let suppliers = suppliers_json(&change.to);
            let (tenant_on, new_suppliers_on) = match change.to {
                Rollout::Closed => (false, false),
                Rollout::Canary { .. } | Rollout::Widening { .. } => (true, false),
                Rollout::Open => (true, true),
            };
            connection
                .execute(
                    "INSERT INTO tenants (tenant_id, sync_enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
                     ON CONFLICT (tenant_id) DO NOTHING",
                    params![tenant, default_enabled, now],
                )
                .map_err(write_error)?;
            connection
                .execute(
                    "UPDATE tenants SET sync_enabled = ?2, new_suppliers_enabled = ?3, updated_at = ?4
                     WHERE tenant_id = ?1",
                    params![tenant, tenant_on, new_suppliers_on, now],
                )
                .map_err(write_error)?;
            match change.to {
                // Closed holds every event at the tenant's flag; the suppliers' flags stay.
                Rollout::Closed => {}
                Rollout::Open => {
                    connection
                        .execute(
                            "UPDATE suppliers SET sync_enabled = 1, updated_at = ?2 WHERE tenant_id = ?1",
                            params![tenant, now],
                        )
                        .map_err(write_error)?;
                }
                Rollout::Canary { .. } | Rollout::Widening { .. } => {
                    connection
                        .execute(
                            "INSERT INTO suppliers (tenant_id, supplier_id, sync_enabled, created_at, updated_at)
                             SELECT ?1, value, 1, ?3, ?3 FROM json_each(?2) WHERE true
                             ON CONFLICT (tenant_id, supplier_id) DO NOTHING",
                            params![tenant, suppliers, now],
                        )
                        .map_err(write_error)?;
                    connection
                        .execute(
                            "UPDATE suppliers
                             SET sync_enabled = (supplier_id IN (SELECT value FROM json_each(?2))), updated_at = ?3
                             WHERE tenant_id = ?1",
                            params![tenant, suppliers, now],
                        )
                        .map_err(write_error)?;
                }
            }
            let at = micros(change.at);
            connection
                .execute(
                    "INSERT INTO tenant_rollouts (tenant_id, stage, suppliers, changed_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant_id) DO UPDATE SET stage = excluded.stage, suppliers = excluded.suppliers,
                         changed_at = excluded.changed_at",
                    params![tenant, change.to.stage(), suppliers, at],
                )
                .map_err(write_error)?;
            connection
                .execute(
                    "INSERT INTO rollout_changes (tenant_id, at, actor, step, from_stage, to_stage, suppliers)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![tenant, at, change.actor, change.step, change.from.stage(), change.to.stage(), suppliers],
                )
                .map_err(write_error)?;
            Ok(Some(flags_before))
        })
        .await
}

pub(crate) async fn history(
    pool: &SqlitePool,
    tenant: &TenantId,
    limit: usize,
) -> Result<Vec<RolloutChangeRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, actor, step, from_stage, to_stage, suppliers FROM rollout_changes
         WHERE tenant_id = ?1 ORDER BY change_id DESC LIMIT ?2",
    )
    .bind(tenant.as_str())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let suppliers: String = column(row, "suppliers")?;
            Ok(RolloutChangeRecord {
                at: time_column(row, "at")?,
                actor: column(row, "actor")?,
                step: column(row, "step")?,
                from_stage: column(row, "from_stage")?,
                to_stage: column(row, "to_stage")?,
                suppliers: parse_suppliers(&suppliers)?,
            })
        })
        .collect()
}

pub(crate) async fn record_sign_off(writer: &Writer, sign_off: &SignOff) -> Result<i64, StoreError> {
    let sign_off = sign_off.clone();
    writer
        .transaction(move |connection| {
            connection
                .query_row(
                    "INSERT INTO gate_sign_offs (tenant_id, item_id, sku, item_version, signed_by, signed_at, note)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING sign_off_id",
                    params![
                        sign_off.tenant.as_str(),
                        sign_off.item_id.0.as_bytes().as_slice(),
                        sign_off.sku.as_str(),
                        i64::try_from(sign_off.version).unwrap_or(i64::MAX),
                        sign_off.signed_by,
                        micros(sign_off.signed_at),
                        sign_off.note,
                    ],
                    |row| row.get(0),
                )
                .map_err(write_error)
        })
        .await
}

pub(crate) async fn sign_offs(
    pool: &SqlitePool,
    tenant: &TenantId,
    since: DateTime<Utc>,
) -> Result<Vec<SignOffRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT sign_off_id, item_id, sku, item_version, signed_by, signed_at, note FROM gate_sign_offs
         WHERE tenant_id = ?1 AND signed_at >= ?2 ORDER BY signed_at, sign_off_id",
    )
    .bind(tenant.as_str())
    .bind(micros(since))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let sku: String = column(row, "sku")?;
            Ok(SignOffRecord {
                sign_off_id: column(row, "sign_off_id")?,
                item_id: ItemId(uuid_column(row, "item_id")?),
                sku: rows::sku(&sku)?,
                version: rows::version(column(row, "item_version")?)?,
                signed_by: column(row, "signed_by")?,
                signed_at: time_column(row, "signed_at")?,
                note: column(row, "note")?,
            })
        })
        .collect()
}

/// The gate's sample: the first `?3` distinct items applied since `?2`, each at its first
/// applied row, by the walk PostgreSQL's takes (windows of 5,000 rows of the tenant's journal
/// by `events_tenant_received`, the first new item's row or the window's last, at most 40
/// windows); the items picked are kept as a JSON array.
const APPLIED_ITEMS: &str = "WITH RECURSIVE walk (n, skus, sku, received_at, journal_id, picked, windows) AS (
         SELECT * FROM (
             SELECT 1, json_array(sku), sku, received_at, journal_id, 1, 0 FROM events
             WHERE tenant_id = ?1 AND received_at >= ?2 AND outcome = 'applied' AND sku IS NOT NULL
             ORDER BY received_at, journal_id LIMIT 1
         )
         UNION ALL
         SELECT w.n + (e.sku NOT IN (SELECT value FROM json_each(w.skus))),
                CASE WHEN e.sku NOT IN (SELECT value FROM json_each(w.skus))
                     THEN json_insert(w.skus, '$[#]', e.sku) ELSE w.skus END,
                e.sku, e.received_at, e.journal_id, e.sku NOT IN (SELECT value FROM json_each(w.skus)),
                w.windows + 1
         FROM walk AS w JOIN events AS e ON e.journal_id = coalesce(
             (SELECT journal_id FROM (
                  SELECT sku, received_at, journal_id FROM events
                  WHERE tenant_id = ?1 AND received_at >= w.received_at AND outcome = 'applied'
                    AND sku IS NOT NULL AND (received_at, journal_id) > (w.received_at, w.journal_id)
                  ORDER BY received_at, journal_id LIMIT 5000)
              WHERE sku NOT IN (SELECT value FROM json_each(w.skus))
              ORDER BY received_at, journal_id LIMIT 1),
             (SELECT journal_id FROM (
                  SELECT received_at, journal_id FROM events
                  WHERE tenant_id = ?1 AND received_at >= w.received_at AND outcome = 'applied'
                    AND sku IS NOT NULL AND (received_at, journal_id) > (w.received_at, w.journal_id)
                  ORDER BY received_at, journal_id LIMIT 5000)
              ORDER BY received_at DESC, journal_id DESC LIMIT 1))
         WHERE w.n < ?3 AND w.windows < 40
     )
     SELECT sku, received_at FROM walk WHERE picked ORDER BY n";

pub(crate) async fn applied_items_since(
    pool: &SqlitePool,
    tenant: &TenantId,
    since: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<AppliedItem>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(APPLIED_ITEMS)
        .bind(tenant.as_str())
        .bind(micros(since))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(|row| AppliedItem::read(tenant, &column::<String>(row, "sku")?, time_column(row, "received_at")?))
        .collect()
}

#[async_trait]
impl RolloutStore for SqliteStore {
    async fn rollout(&self, tenant: &TenantId) -> Result<RolloutState, StoreError> {
        rollout(&self.pool, tenant).await
    }

    async fn change_rollout(&self, change: &RolloutChange) -> Result<Option<TenantFlags>, StoreError> {
        self::change(&self.writer, self.config.default_sync_enabled, change).await
    }

    async fn switch_within(
        &self,
        tenant: &TenantId,
        supplier: Option<&SupplierId>,
        since: &RolloutState,
        on: bool,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let default_enabled = self.config.default_sync_enabled;
        switch_within(&self.writer, default_enabled, tenant, supplier, since, on, actor).await
    }

    async fn rollout_history(&self, tenant: &TenantId, limit: usize) -> Result<Vec<RolloutChangeRecord>, StoreError> {
        history(&self.pool, tenant, limit).await
    }

    async fn record_sign_off(&self, sign_off: &SignOff) -> Result<i64, StoreError> {
        record_sign_off(&self.writer, sign_off).await
    }

    async fn sign_offs(&self, tenant: &TenantId, since: DateTime<Utc>) -> Result<Vec<SignOffRecord>, StoreError> {
        sign_offs(&self.pool, tenant, since).await
    }

    async fn applied_items_since(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AppliedItem>, StoreError> {
        applied_items_since(&self.pool, tenant, since, limit).await
    }
}
