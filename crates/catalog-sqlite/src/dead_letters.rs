//! Dead letters on SQLite (decision 0007): writing them from publish records, resolving
//! them once the channel takes a version at least as new, one round of auto-heal
//! (requeue, or quarantine after too many rounds), and the reads operators and gauges use.
//! Writes run on the writer thread inside the caller's `BEGIN IMMEDIATE` transaction: the
//! write lock is held, so no letter appears, heals or closes between a read and the write
//! that follows it.

use std::sync::Arc;

use catalog_core::ItemId;
use catalog_store::batch::OutboxWrite;
use catalog_store::{
    rows, DeadLetter, DeadLetterCount, DeadLetterHeal, DeadLetterResolution, HealRound, HealedDeadLetter,
    PublishRecord, ResolvedDeadLetter, StoreConfig, StoreError,
};
use chrono::Utc;
use rusqlite::{params, Connection};
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use crate::apply::insert_outbox_rows;
use crate::columns::{self, micros, raw, saturating_i64};
use crate::error::{store_error, write_error};
use crate::writer::Writer;

/// The `stage` of dead letters written for publishes.
const PUBLISH_STAGE: &str = "publish";

/// The reason recorded on a dead letter whose record did not name one.
const UNKNOWN_REASON: &str = "unknown";

/// The columns [`dead_letter_row`] reads.
pub(crate) const DEAD_LETTER_COLUMNS: &str =
    "dead_letter_id, stage, subject, channel, reason, error, body, attempts, version, \
     first_failed_at, last_failed_at, heal_rounds, operator_retries, last_healed_at, quarantined_at, resolved_at, \
     resolution, note";

pub(crate) fn dead_letter_row(row: &SqliteRow) -> Result<DeadLetter, StoreError> {
    let attempts: i64 = columns::column(row, "attempts")?;
    let heal_rounds: i64 = columns::column(row, "heal_rounds")?;
    let operator_retries: i64 = columns::column(row, "operator_retries")?;
    Ok(DeadLetter {
        dead_letter_id: columns::column(row, "dead_letter_id")?,
        stage: columns::column(row, "stage")?,
        subject: columns::column(row, "subject")?,
        channel: columns::column(row, "channel")?,
        reason: columns::column(row, "reason")?,
        error: columns::column(row, "error")?,
        body: columns::column(row, "body")?,
        attempts: columns::narrowed("attempts", attempts)?,
        version: rows::version(columns::column(row, "version")?)?,
        first_failed_at: columns::time_column(row, "first_failed_at")?,
        last_failed_at: columns::time_column(row, "last_failed_at")?,
        heal_rounds: columns::narrowed("heal_rounds", heal_rounds)?,
        operator_retries: columns::narrowed("operator_retries", operator_retries)?,
        last_healed_at: columns::optional_time_column(row, "last_healed_at")?,
        quarantined_at: columns::optional_time_column(row, "quarantined_at")?,
        resolved_at: columns::optional_time_column(row, "resolved_at")?,
        resolution: columns::column(row, "resolution")?,
        note: columns::column(row, "note")?,
    })
}

/// The letters `query` (a `SELECT` of `DEAD_LETTER_COLUMNS`) finds, in its order.
pub(crate) async fn fetch_dead_letters<'q>(
    pool: &SqlitePool,
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
) -> Result<Vec<DeadLetter>, StoreError> {
    query.fetch_all(pool).await.map_err(store_error)?.iter().map(dead_letter_row).collect()
}

/// Counts the failures on the item's open dead letter for the channel (which keeps the newest
/// version that failed, and the newest answer body any of its failures came with), or opens
/// one. Every failed attempt of the version counts (the record's attempt is its number among
/// them), and a new letter starts at the first of them: the newest attempt 1 of that version
/// that failed, or now if retention has dropped it.
pub(crate) fn write(connection: &Connection, record: &PublishRecord, now: i64) -> Result<(), StoreError> {
    let subject = record.item_id.to_string();
    let reason = record.dead_letter_reason.as_deref().unwrap_or(UNKNOWN_REASON);
    // A version past the signed column's range is held at its largest, as PostgreSQL holds it.
    let version = saturating_i64(record.version);
    let item_id = record.item_id.0.as_bytes().as_slice();
    let failures = i64::from(record.attempt.max(1));
    // The channel term repeats the partial unique index's expression, so SQLite can use it.
    let updated = connection
        .prepare_cached(
            "UPDATE dead_letters SET attempts = attempts + ?10, last_failed_at = ?1, reason = ?2, error = ?3, \
             body = coalesce(?4, body), item_id = ?8, version = max(version, ?9) \
             WHERE stage = ?5 AND subject = ?6 AND coalesce(channel, '') = ?7 AND resolved_at IS NULL",
        )
        .and_then(|mut update| {
            update.execute(params![
                now,
                reason,
                record.error.as_deref(),
                record.body.as_deref(),
                PUBLISH_STAGE,
                subject.as_str(),
                record.channel.as_str(),
                item_id,
                version,
                failures,
            ])
        })
        .map_err(write_error)?;
    if updated > 0 {
        return Ok(());
    }
    connection
        .prepare_cached(
            "INSERT INTO dead_letters (stage, subject, channel, reason, error, body, attempts, first_failed_at, \
             last_failed_at, item_id, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?10, \
             coalesce((SELECT max(attempted_at) FROM publish_attempts WHERE item_id = ?8 AND channel = ?3 \
                       AND version = ?9 AND attempt = 1 AND result IN ('retry', 'dead_lettered')), ?7), \
             ?7, ?8, ?9)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                PUBLISH_STAGE,
                subject.as_str(),
                record.channel.as_str(),
                reason,
                record.error.as_deref(),
                record.body.as_deref(),
                now,
                item_id,
                version,
                failures,
            ])
        })
        .map_err(write_error)?;
    Ok(())
}

/// The channel now holds the record's item at `held_version`: its open letter on the
/// channel is resolved if it failed at that version or an older one.
pub(crate) fn resolve(
    connection: &Connection,
    record: &PublishRecord,
    held_version: i64,
    resolution: DeadLetterResolution,
    now: i64,
) -> Result<Option<ResolvedDeadLetter>, StoreError> {
    let mut update = connection
        .prepare_cached(
            "UPDATE dead_letters SET resolved_at = ?1, resolution = ?2 \
             WHERE stage = ?3 AND subject = ?4 AND coalesce(channel, '') = ?5 AND resolved_at IS NULL \
             AND version <= ?6 RETURNING dead_letter_id, heal_rounds",
        )
        .map_err(write_error)?;
    let mut resolved = update
        .query(params![
            now,
            resolution.as_str(),
            PUBLISH_STAGE,
            record.item_id.to_string(),
            record.channel.as_str(),
            held_version,
        ])
        .map_err(write_error)?;
    let Some(row) = resolved.next().map_err(write_error)? else { return Ok(None) };
    let heal_rounds: i64 = raw::column(row, "heal_rounds")?;
    let letter = ResolvedDeadLetter {
        dead_letter_id: raw::column(row, "dead_letter_id")?,
        item_id: record.item_id,
        channel: record.channel.clone(),
        version: rows::version(held_version)?,
        resolution,
        heal_rounds: columns::narrowed("heal_rounds", heal_rounds)?,
    };
    // At most one open letter per item and channel (a partial unique index); stepping to
    // the end finishes the statement.
    while resolved.next().map_err(write_error)?.is_some() {}
    Ok(Some(letter))
}

/// One round of auto-heal: see `OutboxStore::heal_dead_letters`. The pick and its writes are
/// one job of the writer, in one transaction, so two heal loops never heal one letter in the
/// same round.
pub(crate) async fn heal(
    writer: &Writer,
    config: &Arc<StoreConfig>,
    heal: &DeadLetterHeal,
) -> Result<HealRound, StoreError> {
    if config.channels.is_empty() || heal.limit == 0 {
        return Ok(HealRound::default());
    }
    let (config, heal) = (Arc::clone(config), *heal);
    writer.transaction(move |connection| heal_in(connection, &config, &heal)).await
}

fn heal_in(connection: &Connection, config: &StoreConfig, heal: &DeadLetterHeal) -> Result<HealRound, StoreError> {
    let now = micros(Utc::now());
    let placeholders = (0..config.channels.len()).map(|n| format!("?{}", n + 4)).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT d.dead_letter_id, d.item_id, d.channel, d.reason, d.version AS letter_version, d.heal_rounds, \
         i.tenant_id, i.sku, i.quantity, i.version \
         FROM dead_letters AS d JOIN items AS i ON i.item_id = d.item_id \
         WHERE d.resolved_at IS NULL AND d.quarantined_at IS NULL AND d.stage = ?1 \
           AND d.channel IN ({placeholders}) \
           AND (d.last_healed_at IS NULL OR d.last_healed_at <= ?2) \
           AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.item_id = d.item_id AND o.channel = d.channel) \
         ORDER BY coalesce(d.last_healed_at, d.first_failed_at), d.dead_letter_id \
         LIMIT ?3"
    );
    let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![
        Box::new(PUBLISH_STAGE),
        Box::new(now.saturating_sub(saturating_i64(heal.min_interval.as_micros()))),
        Box::new(saturating_i64(heal.limit)),
    ];
    values.extend(config.channels.iter().map(|route| Box::new(route.name.clone()) as Box<dyn rusqlite::ToSql>));
    let mut pick = connection.prepare_cached(&sql).map_err(write_error)?;
    let mut picked = pick.query(rusqlite::params_from_iter(values.iter())).map_err(write_error)?;

    let mut round = HealRound::default();
    let mut writes = Vec::new();
    let mut taken_up = Vec::new();
    while let Some(row) = picked.next().map_err(write_error)? {
        round.n_examined += 1;
        let dead_letter_id: i64 = raw::column(row, "dead_letter_id")?;
        let stored_heal_rounds: i64 = raw::column(row, "heal_rounds")?;
        let heal_rounds: u32 = columns::narrowed("heal_rounds", stored_heal_rounds)?;
        let channel: String = raw::column(row, "channel")?;
        let tenant_id: String = raw::column(row, "tenant_id")?;
        let tenant = rows::tenant(&tenant_id)?;
        let item_id = ItemId(raw::uuid_column(row, "item_id")?);
        let reason: String = raw::column(row, "reason")?;
        if heal_rounds >= heal.max_heals {
            let version = rows::version(raw::column(row, "letter_version")?)?;
            round.quarantined.push(HealedDeadLetter { dead_letter_id, item_id, channel, reason, version, heal_rounds });
            continue;
        }
        if !config.routes(&channel, &tenant) {
            // A channel that no longer serves the item's tenant: nothing to heal it to. The
            // letter stays open; marking it taken up lets the next rounds move on.
            taken_up.push(dead_letter_id);
            continue;
        }
        let version: i64 = raw::column(row, "version")?;
        writes.push(OutboxWrite {
            item_id,
            tenant,
            sku: raw::column(row, "sku")?,
            quantity: raw::column(row, "quantity")?,
            version,
            channel: channel.clone(),
            traceparent: None,
        });
        round.requeued.push(HealedDeadLetter {
            dead_letter_id,
            item_id,
            channel,
            reason,
            version: rows::version(version)?,
            heal_rounds: heal_rounds + 1,
        });
    }
    drop(picked);
    let mark = |sql: &str, dead_letter_id: i64| -> Result<(), StoreError> {
        connection
            .prepare_cached(sql)
            .and_then(|mut update| update.execute(params![now, dead_letter_id]))
            .map_err(write_error)?;
        Ok(())
    };
    for dead_letter_id in taken_up {
        mark("UPDATE dead_letters SET last_healed_at = ?1 WHERE dead_letter_id = ?2", dead_letter_id)?;
    }
    insert_outbox_rows(connection, &writes, now)?;
    for letter in &round.requeued {
        mark(
            "UPDATE dead_letters SET heal_rounds = heal_rounds + 1, last_healed_at = ?1 WHERE dead_letter_id = ?2",
            letter.dead_letter_id,
        )?;
    }
    for letter in &round.quarantined {
        mark("UPDATE dead_letters SET quarantined_at = ?1 WHERE dead_letter_id = ?2", letter.dead_letter_id)?;
    }
    Ok(round)
}

pub(crate) async fn open_dead_letters(pool: &SqlitePool, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
    fetch_dead_letters(
        pool,
        sqlx::query(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE resolved_at IS NULL \
             ORDER BY last_failed_at DESC, dead_letter_id DESC LIMIT ?1"
        ))
        .bind(saturating_i64(limit)),
    )
    .await
}

pub(crate) async fn item_dead_letters(pool: &SqlitePool, item_id: ItemId) -> Result<Vec<DeadLetter>, StoreError> {
    fetch_dead_letters(
        pool,
        sqlx::query(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE stage = ?1 AND subject = ?2 ORDER BY dead_letter_id"
        ))
        .bind(PUBLISH_STAGE)
        .bind(item_id.to_string()),
    )
    .await
}

pub(crate) async fn open_pull_dead_letters(pool: &SqlitePool) -> Result<Vec<DeadLetter>, StoreError> {
    fetch_dead_letters(
        pool,
        sqlx::query(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE stage = ?1 AND resolved_at IS NULL
             ORDER BY subject, dead_letter_id"
        ))
        .bind(catalog_store::PULL_STAGE),
    )
    .await
}

pub(crate) async fn dead_letter_counts(pool: &SqlitePool) -> Result<Vec<DeadLetterCount>, StoreError> {
    sqlx::query(
        "SELECT channel, count(*) AS open, count(quarantined_at) AS quarantined FROM dead_letters \
         WHERE resolved_at IS NULL AND channel IS NOT NULL GROUP BY channel ORDER BY channel",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| {
        let open: i64 = columns::column(row, "open")?;
        let quarantined: i64 = columns::column(row, "quarantined")?;
        Ok(DeadLetterCount {
            channel: columns::column(row, "channel")?,
            open: columns::narrowed("open", open)?,
            quarantined: columns::narrowed("quarantined", quarantined)?,
        })
    })
    .collect()
}
