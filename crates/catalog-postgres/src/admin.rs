//! The admin service's store role on Postgres: tokens (hashes only), the audit log, journal
//! lookups by event id and trace id, dead-letter lists and operator actions on them.

use catalog_core::{EventId, ItemId, TenantId};
use catalog_store::batch::OutboxWrite;
use catalog_store::rows;
use catalog_store::{
    AuditEntry, AuditRecord, ChannelCount, DeadLetter, DeadLetterFilter, DeadLetterRetry, JournalEntry, NewToken,
    OutcomeCounts, PublishAttemptCount, PublishedVersion, RejectionFilter, Role, StoreConfig, StoreError, TokenHash,
    TokenInfo, TokenMatch,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgPool;

use crate::apply::upsert_outbox;
use crate::columns::{column, journal_entries, narrowed, saturating_i64, JOURNAL_COLUMNS};
use crate::dead_letters::{dead_letter_row, fetch_dead_letters, DEAD_LETTER_COLUMNS};
use crate::store_error;

fn limit(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn role(row: &PgRow) -> Result<Role, StoreError> {
    let name: String = column(row, "role")?;
    Role::parse(&name).ok_or_else(|| StoreError::Corrupt(format!("stored token role {name:?} is unknown")))
}

fn json(row: &PgRow, name: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = column(row, name)?;
    text.map(|text| {
        serde_json::from_str(&text).map_err(|error| StoreError::Corrupt(format!("audit column {name}: {error}")))
    })
    .transpose()
}

pub(crate) async fn add_token(pool: &PgPool, token: &NewToken) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO admin_tokens (name, role, token_hash) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, token_hash = EXCLUDED.token_hash,
             created_at = now(), revoked_at = NULL
         WHERE admin_tokens.revoked_at IS NOT NULL",
    )
    .bind(&token.name)
    .bind(token.role.as_str())
    .bind(token.hash.0.as_slice())
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn tokens(pool: &PgPool) -> Result<Vec<TokenInfo>, StoreError> {
    sqlx::query(r#"SELECT name, role, created_at, revoked_at FROM admin_tokens ORDER BY name COLLATE "C""#)
        .fetch_all(pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| {
            Ok(TokenInfo {
                name: column(row, "name")?,
                role: role(row)?,
                created_at: column(row, "created_at")?,
                revoked_at: column(row, "revoked_at")?,
            })
        })
        .collect()
}

pub(crate) async fn revoke_token(pool: &PgPool, name: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE admin_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL")
        .bind(name)
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn token_by_hash(pool: &PgPool, hash: &TokenHash) -> Result<Option<TokenMatch>, StoreError> {
    let row =
        sqlx::query("SELECT name, role, token_hash FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(hash.0.as_slice())
            .fetch_optional(pool)
            .await
            .map_err(store_error)?;
    row.map(|row| {
        let stored: Vec<u8> = column(&row, "token_hash")?;
        let hash = <[u8; 32]>::try_from(stored.as_slice())
            .map_err(|_| StoreError::Corrupt("stored token hash is not 32 bytes".to_owned()))?;
        Ok(TokenMatch { name: column(&row, "name")?, role: role(&row)?, hash: TokenHash(hash) })
    })
    .transpose()
}

pub(crate) async fn record_audit(pool: &PgPool, record: &AuditRecord) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO audit_log (actor, action, target, before, after) VALUES ($1, $2, $3, $4, $5) RETURNING audit_id",
    )
    .bind(&record.actor)
    .bind(&record.action)
    .bind(&record.target)
    .bind(record.before.as_ref().map(serde_json::Value::to_string))
    .bind(record.after.as_ref().map(serde_json::Value::to_string))
    .fetch_one(pool)
    .await
    .map_err(store_error)
}

pub(crate) async fn audit_log(
    pool: &PgPool,
    max: usize,
    before_id: Option<i64>,
) -> Result<Vec<AuditEntry>, StoreError> {
    sqlx::query(
        "SELECT audit_id, at, actor, action, target, before, after FROM audit_log
         WHERE ($1::int8 IS NULL OR audit_id < $1) ORDER BY audit_id DESC LIMIT $2",
    )
    .bind(before_id)
    .bind(limit(max))
    .fetch_all(pool)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| {
        Ok(AuditEntry {
            audit_id: column(row, "audit_id")?,
            at: column(row, "at")?,
            actor: column(row, "actor")?,
            action: column(row, "action")?,
            target: column(row, "target")?,
            before: json(row, "before")?,
            after: json(row, "after")?,
        })
    })
    .collect()
}

pub(crate) async fn journal_by_event_id(
    pool: &PgPool,
    event_id: EventId,
    max: usize,
) -> Result<Vec<JournalEntry>, StoreError> {
    // The decided row through its claim (by its key, one partition), then the other rows that
    // name the id (rejected, or redeliveries after retention) through their own index: an
    // event only ever rejected has no claim (decision 0034).
    let decided = sqlx::query(&format!(
        "SELECT {JOURNAL_COLUMNS} FROM events WHERE (journal_id, received_at) IN
         (SELECT journal_id, received_at FROM event_claims WHERE event_id = $1)"
    ))
    .bind(event_id.0)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let undecided = sqlx::query(&format!(
        "SELECT {JOURNAL_COLUMNS} FROM events WHERE event_id = $1
         AND outcome NOT IN ('applied', 'stale', 'superseded', 'held') ORDER BY journal_id LIMIT $2"
    ))
    .bind(event_id.0)
    .bind(saturating_i64(max.saturating_sub(decided.len())))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut found = journal_entries(&decided)?;
    found.extend(journal_entries(&undecided)?);
    found.truncate(max);
    Ok(found)
}

pub(crate) async fn journal_by_trace_id(
    pool: &PgPool,
    trace_id: &str,
    max: usize,
) -> Result<Vec<JournalEntry>, StoreError> {
    let stored = sqlx::query(&format!(
        "SELECT {JOURNAL_COLUMNS} FROM events WHERE substr(traceparent, 4, 32) = $1 AND traceparent IS NOT NULL
         ORDER BY journal_id LIMIT $2"
    ))
    .bind(trace_id)
    .bind(limit(max))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    journal_entries(&stored)
}

pub(crate) async fn rejections(pool: &PgPool, filter: &RejectionFilter) -> Result<Vec<JournalEntry>, StoreError> {
    // Optional filters are bound as NULL and switched off in SQL; `events_rejected` finds the
    // window's rejected rows.
    let stored = sqlx::query(&format!(
        "SELECT {JOURNAL_COLUMNS} FROM events
         WHERE outcome = 'rejected' AND received_at >= $1 AND ($2::text IS NULL OR tenant_id = $2)
           AND ($3::text IS NULL OR source = $3) AND ($4::bigint IS NULL OR journal_id < $4)
         ORDER BY journal_id DESC LIMIT $5"
    ))
    .bind(filter.since)
    .bind(filter.tenant.as_ref().map(|tenant| tenant.as_str()))
    .bind(filter.source.as_deref())
    .bind(filter.before_journal_id)
    .bind(limit(filter.limit))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    journal_entries(&stored)
}

pub(crate) async fn tenant_ids(pool: &PgPool) -> Result<Vec<TenantId>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(r#"SELECT tenant_id FROM tenants ORDER BY tenant_id COLLATE "C""#)
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    names.iter().map(|name| rows::tenant(name)).collect()
}

pub(crate) async fn published_versions(pool: &PgPool, item_id: ItemId) -> Result<Vec<PublishedVersion>, StoreError> {
    sqlx::query(r#"SELECT channel, version, published_at FROM published_versions WHERE item_id = $1 ORDER BY channel COLLATE "C""#)
        .bind(item_id.0)
        .fetch_all(pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| {
            Ok(PublishedVersion {
                channel: column(row, "channel")?,
                version: rows::version(column(row, "version")?)?,
                published_at: column(row, "published_at")?,
            })
        })
        .collect()
}

pub(crate) async fn publish_attempt_counts(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> Result<Vec<PublishAttemptCount>, StoreError> {
    let counts = counts_per_channel(pool, "publish_attempts", "result", "attempted_at", since).await?;
    Ok(counts.into_iter().map(PublishAttemptCount::from).collect())
}

/// The rows of `table` at `at` or after `since`, counted per channel and `key`, with the
/// latest `at` of each, in channel and key order (`table`, `key` and `at` are this crate's
/// own identifiers, never input).
pub(crate) async fn counts_per_channel(
    pool: &PgPool,
    table: &str,
    key: &str,
    at: &str,
    since: DateTime<Utc>,
) -> Result<Vec<ChannelCount>, StoreError> {
    sqlx::query(&format!(
        "SELECT channel, {key} AS key, count(*) AS n, max({at}) AS last_at FROM {table}
         WHERE {at} >= $1 GROUP BY channel, {key} ORDER BY channel COLLATE \"C\", {key}"
    ))
    .bind(since)
    .fetch_all(pool)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| {
        let n: i64 = column(row, "n")?;
        Ok(ChannelCount {
            channel: column(row, "channel")?,
            key: column(row, "key")?,
            n: n.max(0) as u64,
            last_at: column(row, "last_at")?,
        })
    })
    .collect()
}

/// The conditions of a `DeadLetterFilter` on `dead_letters AS d`, bound as $1 to $5 (tenant,
/// channel, stage, open, before id); an absent one is bound as NULL and switched off. A
/// tenant's letters are its items' and its feeds' (a pull letter names no item: its subject
/// is `tenant/supplier`).
const DEAD_LETTER_FILTER: &str =
    "($1::text IS NULL OR EXISTS (SELECT 1 FROM items AS i WHERE i.item_id = d.item_id AND i.tenant_id = $1)
            OR (d.stage = 'pull' AND split_part(d.subject, '/', 1) = $1))
           AND ($2::text IS NULL OR d.channel = $2)
           AND ($3::text IS NULL OR d.stage = $3)
           AND ($4::bool IS NULL OR (d.resolved_at IS NULL) = $4)
           AND ($5::int8 IS NULL OR d.dead_letter_id < $5)";

pub(crate) async fn count_dead_letters(pool: &PgPool, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM dead_letters AS d WHERE {DEAD_LETTER_FILTER}"))
        .bind(filter.tenant.as_ref().map(|tenant| tenant.as_str()))
        .bind(filter.channel.as_deref())
        .bind(filter.stage.as_deref())
        .bind(filter.open)
        .bind(filter.before_id)
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    Ok(n.max(0) as u64)
}

pub(crate) async fn dead_letters(pool: &PgPool, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
    // Optional filters are bound as NULL and switched off in SQL: one statement for all.
    let columns = DEAD_LETTER_COLUMNS.split(", ").map(|name| format!("d.{name}")).collect::<Vec<_>>().join(", ");
    fetch_dead_letters(
        pool,
        sqlx::query(&format!(
            "SELECT {columns} FROM dead_letters AS d WHERE {DEAD_LETTER_FILTER} ORDER BY d.dead_letter_id DESC LIMIT $6"
        ))
        .bind(filter.tenant.as_ref().map(|tenant| tenant.as_str()))
        .bind(filter.channel.as_deref())
        .bind(filter.stage.as_deref())
        .bind(filter.open)
        .bind(filter.before_id)
        .bind(limit(filter.limit)),
    )
    .await
}

pub(crate) async fn dead_letter(pool: &PgPool, dead_letter_id: i64) -> Result<Option<DeadLetter>, StoreError> {
    sqlx::query(&format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE dead_letter_id = $1"))
        .bind(dead_letter_id)
        .fetch_optional(pool)
        .await
        .map_err(store_error)?
        .as_ref()
        .map(dead_letter_row)
        .transpose()
}

pub(crate) async fn retry_dead_letter(
    pool: &PgPool,
    config: &StoreConfig,
    dead_letter_id: i64,
    max_retries: u32,
) -> Result<DeadLetterRetry, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    // The item's outbox row is written before the letter, the lock order of a round of
    // records; the letter is read first without a lock and its update is guarded by the
    // retry count read, as auto-heal's is by its round count.
    let row = sqlx::query(
        "SELECT d.stage, d.channel, d.operator_retries, d.resolved_at, i.item_id, i.tenant_id
         FROM dead_letters AS d LEFT JOIN items AS i ON i.item_id = d.item_id WHERE d.dead_letter_id = $1",
    )
    .bind(dead_letter_id)
    .fetch_optional(&mut *transaction)
    .await
    .map_err(store_error)?;
    let Some(row) = row else { return Ok(DeadLetterRetry::NotFound) };
    let resolved_at: Option<DateTime<Utc>> = column(&row, "resolved_at")?;
    if resolved_at.is_some() {
        return Ok(DeadLetterRetry::AlreadyResolved);
    }
    let seen_retries: i32 = column(&row, "operator_retries")?;
    let retries = u32::try_from(seen_retries).map_err(|_| {
        StoreError::Corrupt(format!("dead letter {dead_letter_id} has {seen_retries} operator retries"))
    })?;
    if retries >= max_retries {
        return Ok(DeadLetterRetry::LoopGuard { retries });
    }
    let stage: String = column(&row, "stage")?;
    let channel: Option<String> = column(&row, "channel")?;
    let item_id: Option<uuid::Uuid> = column(&row, "item_id")?;
    let (Some(channel), Some(item_id), "publish") = (channel, item_id, stage.as_str()) else {
        return Ok(DeadLetterRetry::NotRetryable);
    };
    let tenant = rows::tenant(column(&row, "tenant_id")?)?;
    if !config.routes(&channel, &tenant) {
        return Ok(DeadLetterRetry::NotRetryable);
    }
    // The item as it is now, held `FOR SHARE`: no batch commits a newer version, published
    // before the version read here is queued (decision 0047).
    let item = sqlx::query("SELECT sku, quantity, version FROM items WHERE item_id = $1 FOR SHARE")
        .bind(item_id)
        .fetch_one(&mut *transaction)
        .await
        .map_err(store_error)?;
    let version: i64 = column(&item, "version")?;
    let write = OutboxWrite {
        item_id: ItemId(item_id),
        tenant,
        sku: column(&item, "sku")?,
        quantity: column(&item, "quantity")?,
        version,
        channel,
        traceparent: None,
    };
    upsert_outbox(&mut transaction, std::slice::from_ref(&write)).await?;
    let counted = sqlx::query(
        "UPDATE dead_letters SET operator_retries = operator_retries + 1, heal_rounds = 0, last_healed_at = now(),
                                 quarantined_at = NULL
         WHERE dead_letter_id = $1 AND operator_retries = $2 AND resolved_at IS NULL",
    )
    .bind(dead_letter_id)
    .bind(seen_retries)
    .execute(&mut *transaction)
    .await
    .map_err(store_error)?;
    if counted.rows_affected() != 1 {
        // Healed or resolved meanwhile: the caller may ask again.
        return Err(StoreError::Conflict(format!("dead letter {dead_letter_id} changed while it was retried")));
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(DeadLetterRetry::Requeued { version: rows::version(version)?, retries: retries + 1 })
}

pub(crate) async fn resolve_dead_letter(pool: &PgPool, dead_letter_id: i64, note: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE dead_letters SET resolved_at = now(), resolution = 'operator', note = $2
         WHERE dead_letter_id = $1 AND resolved_at IS NULL",
    )
    .bind(dead_letter_id)
    .bind(note)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn outcome_counts_since(
    pool: &PgPool,
    tenant: &TenantId,
    since: DateTime<Utc>,
) -> Result<OutcomeCounts, StoreError> {
    let stored = sqlx::query(
        "SELECT outcome, count(*) AS n_events, coalesce(sum(redelivery_count), 0)::int8 AS redeliveries FROM events
         WHERE tenant_id = $1 AND received_at >= $2 GROUP BY outcome",
    )
    .bind(tenant.as_str())
    .bind(since)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut counts = OutcomeCounts::default();
    for row in &stored {
        let redeliveries: u64 = narrowed(row, "redeliveries")?;
        counts.redeliveries += redeliveries;
        counts.events_by_outcome.insert(column(row, "outcome")?, narrowed(row, "n_events")?);
    }
    Ok(counts)
}
