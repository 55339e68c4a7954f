//! The rollout role on Postgres: a tenant's gate stage written with the sync flags it
//! implies in one transaction, its history, and support's sign-offs.

use catalog_core::{ItemId, Rollout, SupplierId, TenantId};
use catalog_store::{
    restarts_stage, rollout_suppliers, rows, stored_rollout, switch_as_decided, AppliedItem, RolloutChange,
    RolloutChangeRecord, RolloutState, SignOff, SignOffRecord, StoreError, TenantFlags,
};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::columns::column;
use crate::store_error;
use crate::PostgresStore;
use async_trait::async_trait;
use catalog_store::RolloutStore;

fn suppliers_json(rollout: &Rollout) -> String {
    let names: Vec<String> = rollout_suppliers(rollout).iter().map(ToString::to_string).collect();
    serde_json::to_string(&names).expect("a list of strings serializes")
}

fn parse_suppliers(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("rollout suppliers {text:?}: {error}")))
}

pub(crate) async fn rollout(pool: &PgPool, tenant: &TenantId) -> Result<RolloutState, StoreError> {
    let row = sqlx::query("SELECT stage, suppliers, changed_at FROM tenant_rollouts WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_optional(pool)
        .await
        .map_err(store_error)?;
    let Some(row) = row else { return Ok(RolloutState { rollout: Rollout::Closed, changed_at: None }) };
    let stage: String = column(&row, "stage")?;
    let suppliers: String = column(&row, "suppliers")?;
    Ok(RolloutState {
        rollout: stored_rollout(&stage, &parse_suppliers(&suppliers)?)?,
        changed_at: Some(column(&row, "changed_at")?),
    })
}

/// Takes the tenant row's lock, the one every change of its rollout and flags takes first
/// (making the row if need be), and reads its rollout and when it last changed under it.
async fn lock_rollout(
    transaction: &mut sqlx::PgConnection,
    tenant: &str,
    default_enabled: bool,
) -> Result<RolloutState, StoreError> {
    sqlx::query("INSERT INTO tenants (tenant_id, sync_enabled) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .bind(default_enabled)
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
    sqlx::query("SELECT 1 FROM tenants WHERE tenant_id = $1 FOR UPDATE")
        .bind(tenant)
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
    let current = sqlx::query("SELECT stage, suppliers, changed_at FROM tenant_rollouts WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(store_error)?;
    match current {
        None => Ok(RolloutState { rollout: Rollout::Closed, changed_at: None }),
        Some(row) => {
            let stage: String = column(&row, "stage")?;
            let suppliers: String = column(&row, "suppliers")?;
            let rollout = stored_rollout(&stage, &parse_suppliers(&suppliers)?)?;
            Ok(RolloutState { rollout, changed_at: Some(column(&row, "changed_at")?) })
        }
    }
}

pub(crate) async fn switch_within(
    pool: &PgPool,
    default_enabled: bool,
    tenant: &TenantId,
    supplier: Option<&SupplierId>,
    since: &RolloutState,
    on: bool,
    actor: &str,
) -> Result<bool, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    if lock_rollout(&mut transaction, tenant.as_str(), default_enabled).await? != *since {
        return Ok(false);
    }
    let stage = &since.rollout;
    let was_off: Option<bool> = match supplier {
        None => sqlx::query_scalar("SELECT NOT sync_enabled FROM tenants WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut *transaction)
            .await
            .map_err(store_error)?,
        Some(supplier) => {
            sqlx::query_scalar("SELECT NOT sync_enabled FROM suppliers WHERE tenant_id = $1 AND supplier_id = $2")
                .bind(tenant.as_str())
                .bind(supplier.as_str())
                .fetch_optional(&mut *transaction)
                .await
                .map_err(store_error)?
        }
    };
    match supplier {
        None => crate::flags::set_tenant_sync(&mut *transaction, tenant, on).await?,
        Some(supplier) => crate::flags::upsert_supplier_sync(&mut transaction, tenant, supplier, on).await?,
    }
    if on && restarts_stage(stage, was_off == Some(true)) {
        // The application's clock, as every step's and SQLite's: the gate judges a stage's age
        // and its signal samples by it, not by the database server's.
        let at = chrono::Utc::now();
        sqlx::query("UPDATE tenant_rollouts SET changed_at = $2 WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .bind(at)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO rollout_changes (tenant_id, at, actor, step, from_stage, to_stage, suppliers)
             VALUES ($1, $2, $3, 'restart', $4, $4, $5)",
        )
        .bind(tenant.as_str())
        .bind(at)
        .bind(actor)
        .bind(stage.stage())
        .bind(suppliers_json(stage))
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(true)
}

pub(crate) async fn change(
    pool: &PgPool,
    default_enabled: bool,
    change: &RolloutChange,
) -> Result<Option<TenantFlags>, StoreError> {
    let tenant = change.tenant.as_str();
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let current = lock_rollout(&mut transaction, tenant, default_enabled).await?;
    if current.rollout != change.from || current.changed_at != change.from_since {
        return Ok(None);
    }
    // The tenant's row exists: `lock_rollout` made it, with the default, if it did not. Its
    // suppliers' rows are locked too, so no supplier switch lands between this read and the
    // step's own writes to them.
    let Some(flags_before) = crate::flags::flags_on(&mut transaction, &change.tenant, true).await? else {
        return Ok(None);
    };
    if !switch_as_decided(change, &flags_before, default_enabled) {
        return Ok(None);
    }
    let listed: Vec<String> = rollout_suppliers(&change.to).iter().map(ToString::to_string).collect();
    let (tenant_on, new_suppliers_on) = match change.to {
        Rollout::Closed => (false, false),
        Rollout::Canary { .. } | Rollout::Widening { .. } => (true, false),
        Rollout::Open => (true, true),
    };
    sqlx::query(
        "UPDATE tenants SET sync_enabled = $2, new_suppliers_enabled = $3, updated_at = now() WHERE tenant_id = $1",
    )
    .bind(tenant)
    .bind(tenant_on)
    .bind(new_suppliers_on)
    .execute(&mut *transaction)
    .await
    .map_err(store_error)?;
    match change.to {
        // Closed holds every event at the tenant's flag; the suppliers' flags stay as they were.
        Rollout::Closed => {}
        Rollout::Open => {
            sqlx::query("UPDATE suppliers SET sync_enabled = true, updated_at = now() WHERE tenant_id = $1")
                .bind(tenant)
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?;
        }
        Rollout::Canary { .. } | Rollout::Widening { .. } => {
            sqlx::query(
                r#"INSERT INTO suppliers (tenant_id, supplier_id, sync_enabled)
                   SELECT $1, s, true FROM unnest($2::text[]) AS u(s) ORDER BY s COLLATE "C"
                   ON CONFLICT DO NOTHING"#,
            )
            .bind(tenant)
            .bind(&listed)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
            sqlx::query(
                "UPDATE suppliers SET sync_enabled = (supplier_id = ANY($2)), updated_at = now()
                 WHERE tenant_id = $1 AND sync_enabled <> (supplier_id = ANY($2))",
            )
            .bind(tenant)
            .bind(&listed)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        }
    }
    let suppliers = suppliers_json(&change.to);
    sqlx::query(
        "INSERT INTO tenant_rollouts (tenant_id, stage, suppliers, changed_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id) DO UPDATE SET stage = EXCLUDED.stage, suppliers = EXCLUDED.suppliers,
             changed_at = EXCLUDED.changed_at",
    )
    .bind(tenant)
    .bind(change.to.stage())
    .bind(&suppliers)
    .bind(change.at)
    .execute(&mut *transaction)
    .await
    .map_err(store_error)?;
    sqlx::query(
        "INSERT INTO rollout_changes (tenant_id, at, actor, step, from_stage, to_stage, suppliers)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(change.at)
    .bind(&change.actor)
    .bind(&change.step)
    .bind(change.from.stage())
    .bind(change.to.stage())
    .bind(&suppliers)
    .execute(&mut *transaction)
    .await
    .map_err(store_error)?;
    transaction.commit().await.map_err(store_error)?;
    Ok(Some(flags_before))
}

pub(crate) async fn history(
    pool: &PgPool,
    tenant: &TenantId,
    limit: usize,
) -> Result<Vec<RolloutChangeRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, actor, step, from_stage, to_stage, suppliers FROM rollout_changes
         WHERE tenant_id = $1 ORDER BY change_id DESC LIMIT $2",
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
                at: column(row, "at")?,
                actor: column(row, "actor")?,
                step: column(row, "step")?,
                from_stage: column(row, "from_stage")?,
                to_stage: column(row, "to_stage")?,
                suppliers: parse_suppliers(&suppliers)?,
            })
        })
        .collect()
}

pub(crate) async fn record_sign_off(pool: &PgPool, sign_off: &SignOff) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO gate_sign_offs (tenant_id, item_id, sku, item_version, signed_by, signed_at, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING sign_off_id",
    )
    .bind(sign_off.tenant.as_str())
    .bind(sign_off.item_id.0)
    .bind(sign_off.sku.as_str())
    .bind(i64::try_from(sign_off.version).unwrap_or(i64::MAX))
    .bind(&sign_off.signed_by)
    .bind(sign_off.signed_at)
    .bind(&sign_off.note)
    .fetch_one(pool)
    .await
    .map_err(store_error)
}

pub(crate) async fn sign_offs(
    pool: &PgPool,
    tenant: &TenantId,
    since: DateTime<Utc>,
) -> Result<Vec<SignOffRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT sign_off_id, item_id, sku, item_version, signed_by, signed_at, note FROM gate_sign_offs
         WHERE tenant_id = $1 AND signed_at >= $2 ORDER BY signed_at, sign_off_id",
    )
    .bind(tenant.as_str())
    .bind(since)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let sku: String = column(row, "sku")?;
            Ok(SignOffRecord {
                sign_off_id: column(row, "sign_off_id")?,
                item_id: ItemId(column(row, "item_id")?),
                sku: rows::sku(&sku)?,
                version: rows::version(column(row, "item_version")?)?,
                signed_by: column(row, "signed_by")?,
                signed_at: column(row, "signed_at")?,
                note: column(row, "note")?,
            })
        })
        .collect()
}

/// The gate's sample: the first `$3` distinct items applied since `$2`, each at its first
/// applied row. The walk reads the tenant's journal by `events_tenant_received` in windows of
/// 5,000 rows from its cursor: a window that holds an item not yet picked picks the first
/// such row and moves the cursor there, one that holds none moves the cursor to its end. At
/// most 40 windows (200,000 rows), however few items the canary has (a walk to the end of its
/// journal on every gate read) and however busy a hot item is; an item first applied further
/// on is left out (the sample is smaller, and the gate says so).
pub(crate) const APPLIED_ITEMS: &str =
    "WITH RECURSIVE walk (n, skus, sku, received_at, journal_id, picked, windows) AS (
         (SELECT 1, ARRAY[sku], sku, received_at, journal_id, true, 0 FROM events
          WHERE tenant_id = $1 AND received_at >= $2 AND outcome = 'applied' AND sku IS NOT NULL
          ORDER BY received_at, journal_id LIMIT 1)
         UNION ALL
         SELECT w.n + f.new::int, CASE WHEN f.new THEN w.skus || f.sku ELSE w.skus END,
                f.sku, f.received_at, f.journal_id, f.new, w.windows + 1
         FROM walk AS w
         CROSS JOIN LATERAL (
             SELECT win.sku, win.received_at, win.journal_id, NOT (win.sku = ANY (w.skus)) AS new
             FROM (
                 SELECT sku, received_at, journal_id, row_number() OVER (ORDER BY received_at, journal_id) AS at
                 FROM (
                     SELECT sku, received_at, journal_id FROM events
                     WHERE tenant_id = $1 AND received_at >= w.received_at AND outcome = 'applied'
                       AND sku IS NOT NULL AND (received_at, journal_id) > (w.received_at, w.journal_id)
                     ORDER BY received_at, journal_id LIMIT 5000
                 ) AS rows
             ) AS win
             -- The first new item's row, else the window's last row.
             ORDER BY win.sku = ANY (w.skus), CASE WHEN win.sku = ANY (w.skus) THEN -win.at ELSE win.at END
             LIMIT 1
         ) AS f
         WHERE w.n < $3 AND w.windows < 40
     )
     SELECT sku, received_at FROM walk WHERE picked ORDER BY n";

pub(crate) async fn applied_items_since(
    pool: &PgPool,
    tenant: &TenantId,
    since: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<AppliedItem>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(APPLIED_ITEMS)
        .bind(tenant.as_str())
        .bind(since)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(|row| AppliedItem::read(tenant, &column::<String>(row, "sku")?, column(row, "received_at")?))
        .collect()
}

#[async_trait]
impl RolloutStore for PostgresStore {
    async fn rollout(&self, tenant: &TenantId) -> Result<RolloutState, StoreError> {
        crate::with_deadline(self.deadline, "rollout", rollout(&self.pool, tenant)).await
    }

    async fn change_rollout(&self, change: &RolloutChange) -> Result<Option<TenantFlags>, StoreError> {
        let default_enabled = self.config.default_sync_enabled;
        crate::with_deadline(self.deadline, "change_rollout", self::change(&self.pool, default_enabled, change)).await
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
        let switch = switch_within(&self.pool, default_enabled, tenant, supplier, since, on, actor);
        crate::with_deadline(self.deadline, "switch_within", switch).await
    }

    async fn rollout_history(&self, tenant: &TenantId, limit: usize) -> Result<Vec<RolloutChangeRecord>, StoreError> {
        crate::with_deadline(self.deadline, "rollout_history", history(&self.pool, tenant, limit)).await
    }

    async fn record_sign_off(&self, sign_off: &SignOff) -> Result<i64, StoreError> {
        crate::with_deadline(self.deadline, "record_sign_off", record_sign_off(&self.pool, sign_off)).await
    }

    async fn sign_offs(&self, tenant: &TenantId, since: DateTime<Utc>) -> Result<Vec<SignOffRecord>, StoreError> {
        crate::with_deadline(self.deadline, "sign_offs", sign_offs(&self.pool, tenant, since)).await
    }

    async fn applied_items_since(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AppliedItem>, StoreError> {
        crate::with_deadline(
            self.deadline,
            "applied_items_since",
            applied_items_since(&self.pool, tenant, since, limit),
        )
        .await
    }
}
