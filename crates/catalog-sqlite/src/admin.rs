//! The admin service's store role on SQLite: tokens (hashes only), the audit log, journal
//! lookups by event id and trace id, dead-letter lists and operator actions on them.

use std::sync::Arc;

use catalog_core::{EventId, ItemId, TenantId};
use catalog_store::batch::OutboxWrite;
use catalog_store::{
    rows, AuditEntry, AuditRecord, ChannelCount, DeadLetter, DeadLetterFilter, DeadLetterRetry, JournalEntry, NewToken,
    OutcomeCounts, PublishAttemptCount, PublishedVersion, RejectionFilter, Role, StoreConfig, StoreError, TokenHash,
    TokenInfo, TokenMatch,
};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use crate::apply::insert_outbox_rows;
use crate::columns::{self, micros, saturating_i64, JOURNAL_COLUMNS};
use crate::dead_letters::{dead_letter_row, fetch_dead_letters, DEAD_LETTER_COLUMNS};
use crate::error::{store_error, write_error};
use crate::writer::Writer;

fn limit(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn role(row: &SqliteRow) -> Result<Role, StoreError> {
    let name: String = columns::column(row, "role")?;
    Role::parse(&name).ok_or_else(|| StoreError::Corrupt(format!("stored token role {name:?} is unknown")))
}

fn json(row: &SqliteRow, name: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = columns::column(row, name)?;
    text.map(|text| {
        serde_json::from_str(&text).map_err(|error| StoreError::Corrupt(format!("audit column {name}: {error}")))
    })
    .transpose()
}

pub(crate) async fn add_token(writer: &Writer, token: &NewToken) -> Result<bool, StoreError> {
    let token = token.clone();
    writer
        .transaction(move |connection| {
            let changed = connection
                .execute(
                    "INSERT INTO admin_tokens (name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (name) DO UPDATE SET role = excluded.role, token_hash = excluded.token_hash, \
                         created_at = excluded.created_at, revoked_at = NULL \
                     WHERE admin_tokens.revoked_at IS NOT NULL",
                    params![token.name, token.role.as_str(), token.hash.0.as_slice(), micros(Utc::now())],
                )
                .map_err(write_error)?;
            Ok(changed == 1)
        })
        .await
}

pub(crate) async fn tokens(pool: &SqlitePool) -> Result<Vec<TokenInfo>, StoreError> {
    sqlx::query("SELECT name, role, created_at, revoked_at FROM admin_tokens ORDER BY name")
        .fetch_all(pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| {
            Ok(TokenInfo {
                name: columns::column(row, "name")?,
                role: role(row)?,
                created_at: columns::time_column(row, "created_at")?,
                revoked_at: columns::optional_time_column(row, "revoked_at")?,
            })
        })
        .collect()
}

pub(crate) async fn revoke_token(writer: &Writer, name: &str) -> Result<bool, StoreError> {
    let name = name.to_owned();
    writer
        .transaction(move |connection| {
            let changed = connection
                .execute(
                    "UPDATE admin_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                    params![name, micros(Utc::now())],
                )
                .map_err(write_error)?;
            Ok(changed == 1)
        })
        .await
}

pub(crate) async fn token_by_hash(pool: &SqlitePool, hash: &TokenHash) -> Result<Option<TokenMatch>, StoreError> {
    let row =
        sqlx::query("SELECT name, role, token_hash FROM admin_tokens WHERE token_hash = ?1 AND revoked_at IS NULL")
            .bind(hash.0.as_slice())
            .fetch_all(pool)
            .await
            .map_err(store_error)?
            .into_iter()
            .next();
    row.map(|row| {
        let stored: Vec<u8> = columns::column(&row, "token_hash")?;
        let hash = <[u8; 32]>::try_from(stored.as_slice())
            .map_err(|_| StoreError::Corrupt("stored token hash is not 32 bytes".to_owned()))?;
        Ok(TokenMatch { name: columns::column(&row, "name")?, role: role(&row)?, hash: TokenHash(hash) })
    })
    .transpose()
}

pub(crate) async fn record_audit(writer: &Writer, record: &AuditRecord) -> Result<i64, StoreError> {
    let record = record.clone();
    writer
        .transaction(move |connection| {
            connection
                .query_row(
                    "INSERT INTO audit_log (at, actor, action, target, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     RETURNING audit_id",
                    params![
                        micros(Utc::now()),
                        record.actor,
                        record.action,
                        record.target,
                        record.before.as_ref().map(serde_json::Value::to_string),
                        record.after.as_ref().map(serde_json::Value::to_string),
                    ],
                    |row| row.get(0),
                )
                .map_err(write_error)
        })
        .await
}

pub(crate) async fn audit_log(
    pool: &SqlitePool,
    max: usize,
    before_id: Option<i64>,
) -> Result<Vec<AuditEntry>, StoreError> {
    sqlx::query(
        "SELECT audit_id, at, actor, action, target, before, after FROM audit_log \
         WHERE (?1 IS NULL OR audit_id < ?1) ORDER BY audit_id DESC LIMIT ?2",
    )
    .bind(before_id)
    .bind(limit(max))
    .fetch_all(pool)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| {
        Ok(AuditEntry {
            audit_id: columns::column(row, "audit_id")?,
            at: columns::time_column(row, "at")?,
            actor: columns::column(row, "actor")?,
            action: columns::column(row, "action")?,
            target: columns::column(row, "target")?,
            before: json(row, "before")?,
            after: json(row, "after")?,
        })
    })
    .collect()
}

fn entries(stored: &[SqliteRow]) -> Result<Vec<JournalEntry>, StoreError> {
    stored.iter().map(|row| columns::journal_row(row)?.into_entry()).collect()
}

pub(crate) async fn journal_by_event_id(
    pool: &SqlitePool,
    event_id: EventId,
    max: usize,
) -> Result<Vec<JournalEntry>, StoreError> {
    // The decided row, then the other rows that name the id (rejected, or redeliveries after
    // retention), each through its own partial index: an event only ever rejected has no
    // decided row (decision 0034).
    let id = event_id.0.as_bytes().to_vec();
    let mut found = Vec::new();
    for outcomes in ["IN", "NOT IN"] {
        let stored = sqlx::query(&format!(
            "SELECT {JOURNAL_COLUMNS} FROM events WHERE event_id = ?1 \
             AND outcome {outcomes} ('applied', 'stale', 'superseded', 'held') ORDER BY journal_id LIMIT ?2"
        ))
        .bind(&id)
        .bind(saturating_i64(max.saturating_sub(found.len())))
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
        found.extend(entries(&stored)?);
    }
    Ok(found)
}

pub(crate) async fn journal_by_trace_id(
    pool: &SqlitePool,
    trace_id: &str,
    max: usize,
) -> Result<Vec<JournalEntry>, StoreError> {
    let stored = sqlx::query(&format!(
        "SELECT {JOURNAL_COLUMNS} FROM events WHERE substr(traceparent, 4, 32) = ?1 AND traceparent IS NOT NULL \
         ORDER BY journal_id LIMIT ?2"
    ))
    .bind(trace_id)
    .bind(limit(max))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    entries(&stored)
}

pub(crate) async fn rejections(pool: &SqlitePool, filter: &RejectionFilter) -> Result<Vec<JournalEntry>, StoreError> {
    // Optional filters are bound as NULL and switched off in SQL; `events_rejected` finds the
    // window's rejected rows.
    let stored = sqlx::query(&format!(
        "SELECT {JOURNAL_COLUMNS} FROM events \
         WHERE outcome = 'rejected' AND received_at >= ?1 AND (?2 IS NULL OR tenant_id = ?2) \
           AND (?3 IS NULL OR source = ?3) AND (?4 IS NULL OR journal_id < ?4) \
         ORDER BY journal_id DESC LIMIT ?5"
    ))
    .bind(micros(filter.since))
    .bind(filter.tenant.as_ref().map(|tenant| tenant.as_str()))
    .bind(filter.source.as_deref())
    .bind(filter.before_journal_id)
    .bind(limit(filter.limit))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    entries(&stored)
}

pub(crate) async fn tenant_ids(pool: &SqlitePool) -> Result<Vec<TenantId>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM tenants ORDER BY tenant_id")
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    names.iter().map(|name| rows::tenant(name)).collect()
}

pub(crate) async fn published_versions(
    pool: &SqlitePool,
    item_id: ItemId,
) -> Result<Vec<PublishedVersion>, StoreError> {
    sqlx::query("SELECT channel, version, published_at FROM published_versions WHERE item_id = ?1 ORDER BY channel")
        .bind(item_id.0.as_bytes().as_slice())
        .fetch_all(pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| {
            Ok(PublishedVersion {
                channel: columns::column(row, "channel")?,
                version: rows::version(columns::column(row, "version")?)?,
                published_at: columns::time_column(row, "published_at")?,
            })
        })
        .collect()
}

pub(crate) async fn publish_attempt_counts(
    pool: &SqlitePool,
    since: DateTime<Utc>,
) -> Result<Vec<PublishAttemptCount>, StoreError> {
    let counts = counts_per_channel(pool, "publish_attempts", "result", "attempted_at", since).await?;
    Ok(counts.into_iter().map(PublishAttemptCount::from).collect())
}

/// The rows of `table` at `at` or after `since`, counted per channel and `key`, with the
/// latest `at` of each, in channel and key order (`table`, `key` and `at` are this crate's
/// own identifiers, never input).
pub(crate) async fn counts_per_channel(
    pool: &SqlitePool,
    table: &str,
    key: &str,
    at: &str,
    since: DateTime<Utc>,
) -> Result<Vec<ChannelCount>, StoreError> {
    sqlx::query(&format!(
        "SELECT channel, {key} AS key, count(*) AS n, max({at}) AS last_at FROM {table} \
         WHERE {at} >= ?1 GROUP BY channel, {key} ORDER BY channel, {key}"
    ))
    .bind(micros(since))
    .fetch_all(pool)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| {
        let n: i64 = columns::column(row, "n")?;
        Ok(ChannelCount {
            channel: columns::column(row, "channel")?,
            key: columns::column(row, "key")?,
            n: n.max(0) as u64,
            last_at: columns::time_column(row, "last_at")?,
        })
    })
    .collect()
}

/// The conditions of a `DeadLetterFilter` on `dead_letters AS d`, bound as ?1 to ?5 (tenant,
/// channel, stage, open, before id); an absent one is bound as NULL and switched off. A
/// tenant's letters are its items' and its feeds' (a pull letter names no item: its subject
/// is `tenant/supplier`).
const DEAD_LETTER_FILTER: &str =
    "(?1 IS NULL OR EXISTS (SELECT 1 FROM items AS i WHERE i.item_id = d.item_id AND i.tenant_id = ?1) \
            OR (d.stage = 'pull' AND substr(d.subject, 1, length(?1) + 1) = ?1 || '/')) \
           AND (?2 IS NULL OR d.channel = ?2) \
           AND (?3 IS NULL OR d.stage = ?3) \
           AND (?4 IS NULL OR (d.resolved_at IS NULL) = ?4) \
           AND (?5 IS NULL OR d.dead_letter_id < ?5)";

pub(crate) async fn count_dead_letters(pool: &SqlitePool, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
    let counted: Vec<i64> =
        sqlx::query_scalar(&format!("SELECT count(*) FROM dead_letters AS d WHERE {DEAD_LETTER_FILTER}"))
            .bind(filter.tenant.as_ref().map(|tenant| tenant.as_str()))
            .bind(filter.channel.as_deref())
            .bind(filter.stage.as_deref())
            .bind(filter.open)
            .bind(filter.before_id)
            .fetch_all(pool)
            .await
            .map_err(store_error)?;
    Ok(counted.first().copied().unwrap_or(0).max(0) as u64)
}

pub(crate) async fn dead_letters(pool: &SqlitePool, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
    let columns = DEAD_LETTER_COLUMNS.split(", ").map(|name| format!("d.{name}")).collect::<Vec<_>>().join(", ");
    fetch_dead_letters(
        pool,
        sqlx::query(&format!(
            "SELECT {columns} FROM dead_letters AS d WHERE {DEAD_LETTER_FILTER} ORDER BY d.dead_letter_id DESC LIMIT ?6"
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

pub(crate) async fn dead_letter(pool: &SqlitePool, dead_letter_id: i64) -> Result<Option<DeadLetter>, StoreError> {
    sqlx::query(&format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE dead_letter_id = ?1"))
        .bind(dead_letter_id)
        .fetch_all(pool)
        .await
        .map_err(store_error)?
        .into_iter()
        .next()
        .as_ref()
        .map(dead_letter_row)
        .transpose()
}

pub(crate) async fn retry_dead_letter(
    writer: &Writer,
    config: &Arc<StoreConfig>,
    dead_letter_id: i64,
    max_retries: u32,
) -> Result<DeadLetterRetry, StoreError> {
    let config = Arc::clone(config);
    // One job of the writer: nothing heals or resolves the letter between its read and write.
    writer.transaction(move |connection| retry_in(connection, &config, dead_letter_id, max_retries)).await
}

/// The columns of the letter and its item a retry reads.
struct RetryRow {
    stage: String,
    channel: Option<String>,
    operator_retries: i64,
    resolved: bool,
    item: Option<(Vec<u8>, String, String, i64, i64)>,
}

fn retry_in(
    connection: &Connection,
    config: &StoreConfig,
    dead_letter_id: i64,
    max_retries: u32,
) -> Result<DeadLetterRetry, StoreError> {
    let row = connection
        .query_row(
            "SELECT d.stage, d.channel, d.operator_retries, d.resolved_at, i.item_id, i.tenant_id, i.sku, i.quantity, \
             i.version FROM dead_letters AS d LEFT JOIN items AS i ON i.item_id = d.item_id WHERE d.dead_letter_id = ?1",
            params![dead_letter_id],
            |row| {
                let item_id: Option<Vec<u8>> = row.get(4)?;
                let item = match item_id {
                    Some(id) => Some((id, row.get(5)?, row.get(6)?, row.get(7)?, row.get(8)?)),
                    None => None,
                };
                Ok(RetryRow {
                    stage: row.get(0)?,
                    channel: row.get(1)?,
                    operator_retries: row.get(2)?,
                    resolved: row.get::<_, Option<i64>>(3)?.is_some(),
                    item,
                })
            },
        )
        .optional()
        .map_err(write_error)?;
    let Some(row) = row else { return Ok(DeadLetterRetry::NotFound) };
    if row.resolved {
        return Ok(DeadLetterRetry::AlreadyResolved);
    }
    let retries: u32 = columns::narrowed("operator_retries", row.operator_retries)?;
    if retries >= max_retries {
        return Ok(DeadLetterRetry::LoopGuard { retries });
    }
    let (Some(channel), Some((item_id, tenant_id, sku, quantity, version)), "publish") =
        (row.channel, row.item, row.stage.as_str())
    else {
        return Ok(DeadLetterRetry::NotRetryable);
    };
    let tenant = rows::tenant(&tenant_id)?;
    if !config.routes(&channel, &tenant) {
        return Ok(DeadLetterRetry::NotRetryable);
    }
    let item_id = uuid::Uuid::from_slice(&item_id)
        .map_err(|_| StoreError::Corrupt(format!("item_id is {} bytes, not a 16-byte uuid", item_id.len())))?;
    let write = OutboxWrite { item_id: ItemId(item_id), tenant, sku, quantity, version, channel, traceparent: None };
    let now = micros(Utc::now());
    insert_outbox_rows(connection, std::slice::from_ref(&write), now)?;
    connection
        .execute(
            "UPDATE dead_letters SET operator_retries = operator_retries + 1, heal_rounds = 0, last_healed_at = ?2, \
             quarantined_at = NULL WHERE dead_letter_id = ?1",
            params![dead_letter_id, now],
        )
        .map_err(write_error)?;
    Ok(DeadLetterRetry::Requeued { version: rows::version(version)?, retries: retries + 1 })
}

pub(crate) async fn resolve_dead_letter(writer: &Writer, dead_letter_id: i64, note: &str) -> Result<bool, StoreError> {
    let note = note.to_owned();
    writer
        .transaction(move |connection| {
            let changed = connection
                .execute(
                    "UPDATE dead_letters SET resolved_at = ?3, resolution = 'operator', note = ?2 \
                     WHERE dead_letter_id = ?1 AND resolved_at IS NULL",
                    params![dead_letter_id, note, micros(Utc::now())],
                )
                .map_err(write_error)?;
            Ok(changed == 1)
        })
        .await
}

pub(crate) async fn outcome_counts_since(
    pool: &SqlitePool,
    tenant: &TenantId,
    since: DateTime<Utc>,
) -> Result<OutcomeCounts, StoreError> {
    let stored = sqlx::query(
        "SELECT outcome, count(*) AS n_events, coalesce(sum(redelivery_count), 0) AS redeliveries FROM events \
         WHERE tenant_id = ?1 AND received_at >= ?2 GROUP BY outcome",
    )
    .bind(tenant.as_str())
    .bind(micros(since))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut counts = OutcomeCounts::default();
    for row in &stored {
        let n_events: i64 = columns::column(row, "n_events")?;
        let redeliveries: i64 = columns::column(row, "redeliveries")?;
        counts.redeliveries += columns::narrowed::<u64>("redeliveries", redeliveries)?;
        counts.events_by_outcome.insert(columns::column(row, "outcome")?, columns::narrowed("n_events", n_events)?);
    }
    Ok(counts)
}
