//! Dead letters on Postgres (decision 0007): writing them from publish records, resolving
//! them once the channel takes a version at least as new, one round of auto-heal
//! (requeue, or quarantine after too many rounds), and the reads operators and gauges use.
//!
//! Lock order: a statement here that changes dead letters runs after the outbox rows of the
//! same items were locked (a round of records locks them first; a heal round upserts them
//! first), so no transaction waits on another in a cycle. A heal round also holds its items'
//! rows `FOR SHARE`, taken without waiting (`SKIP LOCKED`).

use catalog_core::ItemId;
use catalog_store::batch::OutboxWrite;
use catalog_store::rows;
use catalog_store::{
    DeadLetter, DeadLetterCount, DeadLetterHeal, HealRound, HealedDeadLetter, PublishRecord, ResolvedDeadLetter,
    StoreConfig, StoreError,
};
use sqlx::postgres::PgRow;
use sqlx::PgPool;

use crate::apply::upsert_outbox;
use crate::columns::{column, narrowed, narrowed_int4, saturating_i64};
use crate::store_error;

/// The columns [`dead_letter_row`] reads.
pub(crate) const DEAD_LETTER_COLUMNS: &str =
    "dead_letter_id, stage, subject, channel, reason, error, body, attempts, version, \
     first_failed_at, last_failed_at, heal_rounds, operator_retries, last_healed_at, quarantined_at, resolved_at, \
     resolution, note";

pub(crate) fn dead_letter_row(row: &PgRow) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        dead_letter_id: column(row, "dead_letter_id")?,
        stage: column(row, "stage")?,
        subject: column(row, "subject")?,
        channel: column(row, "channel")?,
        reason: column(row, "reason")?,
        error: column(row, "error")?,
        body: column(row, "body")?,
        attempts: narrowed_int4(row, "attempts")?,
        version: rows::version(column(row, "version")?)?,
        first_failed_at: column(row, "first_failed_at")?,
        last_failed_at: column(row, "last_failed_at")?,
        heal_rounds: narrowed_int4(row, "heal_rounds")?,
        operator_retries: narrowed_int4(row, "operator_retries")?,
        last_healed_at: column(row, "last_healed_at")?,
        quarantined_at: column(row, "quarantined_at")?,
        resolved_at: column(row, "resolved_at")?,
        resolution: column(row, "resolution")?,
        note: column(row, "note")?,
    })
}

/// The letters `query` (a `SELECT` of `DEAD_LETTER_COLUMNS`) finds, in its order.
pub(crate) async fn fetch_dead_letters(
    pool: &PgPool,
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<Vec<DeadLetter>, StoreError> {
    query.fetch_all(pool).await.map_err(store_error)?.iter().map(dead_letter_row).collect()
}

/// Writes, or counts on, the open dead letter of a publish that will not succeed: the open
/// letter keeps the newest version that failed, and the newest answer body any of its
/// failures came with (a later failure without one, retries run out on 503s, keeps it).
/// Every failed attempt of the version counts (the record's attempt is its number among
/// them), and a new letter starts at the first of them: the newest attempt 1 of that version
/// that failed, or now if retention has dropped it.
pub(crate) async fn write(connection: &mut sqlx::PgConnection, record: &PublishRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dead_letters (stage, subject, channel, reason, error, body, item_id, version, attempts,
                                   first_failed_at)
         VALUES ('publish', $1, $2, $3, $4, $5, $6, $7, $8,
                 coalesce((SELECT max(attempted_at) FROM publish_attempts
                           WHERE item_id = $6 AND channel = $2 AND version = $7 AND attempt = 1
                             AND result IN ('retry', 'dead_lettered')), now()))
         ON CONFLICT (stage, subject, coalesce(channel, '')) WHERE resolved_at IS NULL
         DO UPDATE SET attempts = dead_letters.attempts + EXCLUDED.attempts, last_failed_at = now(),
                       reason = EXCLUDED.reason,
                       error = EXCLUDED.error, body = coalesce(EXCLUDED.body, dead_letters.body),
                       item_id = EXCLUDED.item_id,
                       version = GREATEST(dead_letters.version, EXCLUDED.version)",
    )
    .bind(record.item_id.to_string())
    .bind(&record.channel)
    .bind(record.dead_letter_reason.as_deref().unwrap_or("unknown"))
    .bind(&record.error)
    .bind(&record.body)
    .bind(record.item_id.0)
    .bind(saturating_i64(record.version))
    .bind(i32::try_from(record.attempt.max(1)).unwrap_or(i32::MAX))
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}

/// A dead letter a recorded round resolved, as `recording::RECORD_ROUND` returns it.
pub(crate) fn resolved_row(row: &PgRow) -> Result<ResolvedDeadLetter, StoreError> {
    Ok(ResolvedDeadLetter {
        dead_letter_id: column(row, "dead_letter_id")?,
        item_id: rows::subject_item(&column::<String>(row, "subject")?)?,
        channel: column(row, "channel")?,
        version: rows::version(column(row, "version")?)?,
        resolution: rows::resolution(&column::<String>(row, "resolution")?)?,
        heal_rounds: narrowed_int4(row, "heal_rounds")?,
    })
}

/// A letter a heal round took up, with its item as it is now.
struct Candidate {
    letter: HealedDeadLetter,
    seen_heal_rounds: i32,
    write: OutboxWrite,
}

/// One round of auto-heal: see `OutboxStore::heal_dead_letters`.
pub(crate) async fn heal(pool: &PgPool, config: &StoreConfig, heal: &DeadLetterHeal) -> Result<HealRound, StoreError> {
    let channels: Vec<&str> = config.channels.iter().map(|route| route.name.as_str()).collect();
    let mut transaction = pool.begin().await.map_err(store_error)?;
    // The letters are not locked: the writes below are guarded by what was read, so two
    // processes healing at once count each round once. Their items are (`FOR SHARE`): no
    // batch commits a newer version, to be published and its outbox row deleted, before
    // this round queues the version it read, which would then be sent after it. An item a
    // batch is writing is skipped (`SKIP LOCKED`), for the next round: the round waits for
    // no lock on items, whatever order a batch takes them in (decision 0047).
    let rows = sqlx::query(
        "SELECT d.dead_letter_id, d.item_id, d.channel, d.reason, d.version AS letter_version, d.heal_rounds,
                i.tenant_id, i.sku, i.quantity, i.version
         FROM dead_letters AS d JOIN items AS i ON i.item_id = d.item_id
         WHERE d.resolved_at IS NULL AND d.quarantined_at IS NULL AND d.stage = 'publish'
           AND d.channel = ANY($1)
           AND (d.last_healed_at IS NULL OR d.last_healed_at <= now() - make_interval(secs => $2))
           AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.item_id = d.item_id AND o.channel = d.channel)
         ORDER BY coalesce(d.last_healed_at, d.first_failed_at), d.dead_letter_id
         LIMIT $3
         FOR SHARE OF i SKIP LOCKED",
    )
    .bind(&channels)
    .bind(heal.min_interval.as_secs_f64())
    .bind(i64::try_from(heal.limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *transaction)
    .await
    .map_err(store_error)?;
    let n_examined = rows.len();
    let (mut requeue, mut quarantine, mut unrouted) = (Vec::new(), Vec::new(), Vec::new());
    for row in &rows {
        let seen_heal_rounds: i32 = column(row, "heal_rounds")?;
        let channel: String = column(row, "channel")?;
        let tenant = rows::tenant(column(row, "tenant_id")?)?;
        let item_id = ItemId(column(row, "item_id")?);
        let dead_letter_id: i64 = column(row, "dead_letter_id")?;
        let heal_rounds = u32::try_from(seen_heal_rounds).map_err(|_| {
            StoreError::Corrupt(format!("dead letter {dead_letter_id} has {seen_heal_rounds} heal rounds"))
        })?;
        if heal_rounds >= heal.max_heals {
            let version = rows::version(column(row, "letter_version")?)?;
            let reason = column(row, "reason")?;
            quarantine.push(HealedDeadLetter { dead_letter_id, item_id, channel, reason, version, heal_rounds });
            continue;
        }
        if !config.routes(&channel, &tenant) {
            unrouted.push(dead_letter_id);
            continue;
        }
        let version: i64 = column(row, "version")?;
        requeue.push(Candidate {
            letter: HealedDeadLetter {
                dead_letter_id,
                item_id,
                channel: channel.clone(),
                reason: column(row, "reason")?,
                version: rows::version(version)?,
                heal_rounds: heal_rounds + 1,
            },
            seen_heal_rounds,
            write: OutboxWrite {
                item_id,
                tenant,
                sku: column(row, "sku")?,
                quantity: column(row, "quantity")?,
                version,
                channel,
                traceparent: None,
            },
        });
    }

    // Outbox rows first, then the letters: the lock order of a round of records.
    let writes: Vec<OutboxWrite> = requeue.iter().map(|candidate| candidate.write.clone()).collect();
    upsert_outbox(&mut transaction, &writes).await?;
    let ids: Vec<i64> = requeue.iter().map(|candidate| candidate.letter.dead_letter_id).collect();
    let seen: Vec<i32> = requeue.iter().map(|candidate| candidate.seen_heal_rounds).collect();
    let counted: Vec<i64> = sqlx::query_scalar(
        "UPDATE dead_letters AS d SET heal_rounds = d.heal_rounds + 1, last_healed_at = now()
         FROM unnest($1::int8[], $2::int4[]) AS u(id, seen)
         WHERE d.dead_letter_id = u.id AND d.heal_rounds = u.seen AND d.resolved_at IS NULL
           AND d.quarantined_at IS NULL
         RETURNING d.dead_letter_id",
    )
    .bind(&ids)
    .bind(&seen)
    .fetch_all(&mut *transaction)
    .await
    .map_err(store_error)?;
    // A channel that no longer serves the item's tenant: nothing to heal it to. The letter
    // stays open; marking it taken up lets the next rounds move on to other letters.
    sqlx::query(
        "UPDATE dead_letters SET last_healed_at = now() WHERE dead_letter_id = ANY($1) AND resolved_at IS NULL",
    )
    .bind(&unrouted)
    .execute(&mut *transaction)
    .await
    .map_err(store_error)?;
    let quarantine_ids: Vec<i64> = quarantine.iter().map(|letter| letter.dead_letter_id).collect();
    let quarantined: Vec<i64> = sqlx::query_scalar(
        "UPDATE dead_letters SET quarantined_at = now()
         WHERE dead_letter_id = ANY($1) AND resolved_at IS NULL AND quarantined_at IS NULL AND heal_rounds >= $2
         RETURNING dead_letter_id",
    )
    .bind(&quarantine_ids)
    .bind(i32::try_from(heal.max_heals).unwrap_or(i32::MAX))
    .fetch_all(&mut *transaction)
    .await
    .map_err(store_error)?;
    transaction.commit().await.map_err(store_error)?;
    Ok(HealRound {
        requeued: requeue
            .into_iter()
            .map(|candidate| candidate.letter)
            .filter(|letter| counted.contains(&letter.dead_letter_id))
            .collect(),
        quarantined: quarantine.into_iter().filter(|letter| quarantined.contains(&letter.dead_letter_id)).collect(),
        n_examined,
    })
}

pub(crate) async fn open_dead_letters(pool: &PgPool, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
    fetch_dead_letters(
        pool,
        sqlx::query(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE resolved_at IS NULL
             ORDER BY last_failed_at DESC, dead_letter_id DESC LIMIT $1"
        ))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX)),
    )
    .await
}

pub(crate) async fn item_dead_letters(pool: &PgPool, item_id: ItemId) -> Result<Vec<DeadLetter>, StoreError> {
    fetch_dead_letters(
        pool,
        sqlx::query(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE stage = 'publish' AND subject = $1
             ORDER BY dead_letter_id"
        ))
        .bind(item_id.to_string()),
    )
    .await
}

pub(crate) async fn open_pull_dead_letters(pool: &PgPool) -> Result<Vec<DeadLetter>, StoreError> {
    fetch_dead_letters(
        pool,
        // Byte order, as SQLite's: the stores agree whatever the database's collation.
        sqlx::query(&format!(
            r#"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE stage = $1 AND resolved_at IS NULL
               ORDER BY subject COLLATE "C", dead_letter_id"#
        ))
        .bind(catalog_store::PULL_STAGE),
    )
    .await
}

pub(crate) async fn dead_letter_counts(pool: &PgPool) -> Result<Vec<DeadLetterCount>, StoreError> {
    sqlx::query(
        "SELECT channel, count(*) AS open, count(quarantined_at) AS quarantined FROM dead_letters
         WHERE resolved_at IS NULL AND channel IS NOT NULL GROUP BY channel ORDER BY channel COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?
    .iter()
    .map(|row| {
        Ok(DeadLetterCount {
            channel: column(row, "channel")?,
            open: narrowed(row, "open")?,
            quarantined: narrowed(row, "quarantined")?,
        })
    })
    .collect()
}
