//! `apply_batch` on Postgres: load, plan with `catalog-core`, write, in one transaction.
//!
//! Concurrency is optimistic first: the offers and items a batch touches are created when
//! missing and read without locking, and every write is guarded by what was read (an
//! offer's `revision`, an item's `version`, a held journal row still being `held`, the
//! unique claim of each event id). A guard that fails means another transaction changed a
//! row since it was read: the transaction rolls back with `StoreError::Conflict` and the
//! batch is planned again, this time locking its offers and items before reading them
//! ([`Locking::Pessimistic`]), so a contended batch cannot lose twice to the same rows.
//!
//! Lock order, the same in every transaction so none can wait on another in a cycle: new
//! tenants and suppliers, offers, items (each by key, byte order), journal rows by event
//! id, then outbox rows by (item id, channel), the order publish records lock them in.

use std::collections::HashMap;

use catalog_core::{EventId, ItemKey, ItemState, OfferKey, TenantId};
use catalog_store::batch::{prepare, BatchKeys, FlagTable, JournalUpdate, LoadedState, PreparedWrites, PriorRow};
use catalog_store::rows::OfferColumns;
use catalog_store::{BatchInput, BatchResult, StoreConfig, StoreError};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::copy::BinaryRows;
use crate::offer_cache::{Lookup, OfferCache};
use crate::store_error;

/// The journal outcomes that claim an event id, word for word the partial unique index's
/// `WHERE` clause: a statement on `events` finds rows by event id through that index (the
/// only index on `event_id`) only when its own `WHERE` says this too.
macro_rules! decided {
    () => {
        "outcome IN ('applied', 'stale', 'superseded', 'held')"
    };
}

/// The decided journal rows of a batch's event ids ($1).
pub(crate) const LOAD_PRIOR: &str =
    concat!("SELECT event_id, outcome, fingerprint, received_at FROM events WHERE event_id = ANY($1) AND ", decided!());

/// Counts redeliveries on decided journal rows and records fresh decisions of held ones, one
/// row per element of the arrays. A held row is decided afresh only if it is still held.
pub(crate) const UPDATE_JOURNAL: &str = concat!(
    r#"UPDATE events AS e SET
           outcome = CASE WHEN u.redecided THEN u.outcome ELSE e.outcome END,
           reason = CASE WHEN u.redecided THEN u.reason ELSE e.reason END,
           effective_at = CASE WHEN u.redecided THEN u.effective_at ELSE e.effective_at END,
           clock_drift_clamped = CASE WHEN u.redecided THEN u.clamped ELSE e.clock_drift_clamped END,
           decided_at = CASE WHEN u.redecided THEN now() ELSE e.decided_at END,
           redelivery_count = e.redelivery_count + u.added,
           payload_differs = e.payload_differs OR u.differs,
           last_redelivered_at = CASE WHEN u.added > 0 THEN now() ELSE e.last_redelivered_at END
       FROM unnest($1::uuid[], $2::bool[], $3::text[], $4::text[], $5::timestamptz[], $6::bool[], $7::int8[],
                   $8::bool[]) AS u(event_id, redecided, outcome, reason, effective_at, clamped, added, differs)
       WHERE e.event_id = u.event_id AND (NOT u.redecided OR e.outcome = 'held') AND e."#,
    decided!()
);

/// How a batch reads the offers and items it plans against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locking {
    /// Read without locks; writes are guarded and fail with a conflict if a row moved.
    Optimistic,
    /// Lock every touched offer and item before reading it: for a batch that lost a race.
    Pessimistic,
}

/// Why one attempt at a batch failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Another transaction claimed one of the batch's event ids after this one read the
    /// journal (the claim index refused the row). Only the journal moved: the offers and
    /// items the batch read, and the offer cache, are still good, so the batch is planned
    /// again the same way and this time finds the claim.
    ClaimTaken(StoreError),
    /// Anything else; a `StoreError::Conflict` means rows the batch read have moved.
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::ClaimTaken(error) | Failure::Store(error) => error,
        }
    }
}

pub(crate) async fn apply_once(
    pool: &PgPool,
    config: &StoreConfig,
    cache: &OfferCache,
    batch: &BatchInput,
    locking: Locking,
) -> Result<BatchResult, Failure> {
    let keys = BatchKeys::of(batch);
    let applied = async {
        let mut transaction = pool.begin().await.map_err(store_error)?;
        let written = write_batch(&mut transaction, config, &keys, Some(cache), batch, locking).await?;
        transaction.commit().await.map_err(store_error)?;
        Ok(written)
    }
    .await;
    match applied {
        Ok(Written { result, committed }) => {
            cache.remember(committed);
            Ok(result)
        }
        Err(failure @ Failure::ClaimTaken(_)) => Err(failure),
        Err(failure) => {
            // A lost race, or a commit that may or may not have happened: read them afresh.
            cache.forget(&keys.offers);
            Err(failure)
        }
    }
}

/// Plans and writes a batch exactly as `apply_once` would, then rolls it back.
pub(crate) async fn preview_once(
    pool: &PgPool,
    config: &StoreConfig,
    batch: &BatchInput,
) -> Result<BatchResult, StoreError> {
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let keys = BatchKeys::of(batch);
    let written = write_batch(&mut transaction, config, &keys, None, batch, Locking::Pessimistic)
        .await
        .map_err(StoreError::from)?;
    transaction.rollback().await.map_err(store_error)?;
    Ok(written.result)
}

/// What a batch wrote: its result, and each offer's state and revision once it commits
/// (the ones it read and the ones it wrote), for the offer cache.
struct Written {
    result: BatchResult,
    committed: Vec<(OfferKey, catalog_core::OfferState, i64)>,
}

async fn write_batch(
    connection: &mut PgConnection,
    config: &StoreConfig,
    keys: &BatchKeys,
    cache: Option<&OfferCache>,
    batch: &BatchInput,
    locking: Locking,
) -> Result<Written, Failure> {
    // Writes go in lock order: offers, items, journal; then outbox and checkpoints.
    let mut steps = Steps::start();
    let flags = load_flags(connection, keys, config.default_sync_enabled).await?;
    steps.done("flags");
    // A batch that lost a race reads (and locks) every offer; otherwise the cache answers first.
    let Lookup { mut offers, mut revisions, missing } = match (locking, cache) {
        (Locking::Optimistic, Some(cache)) => cache.lookup(&keys.offers),
        _ => Lookup { missing: keys.offers.iter().collect(), ..Lookup::default() },
    };
    let n_cached = offers.len();
    let (read, read_revisions) = load_offers(connection, &missing, locking).await?;
    let mut committed = Vec::new();
    if cache.is_some() {
        committed.reserve(read.len() + keys.offers.len());
        committed.extend(
            read.iter()
                .map(|(key, state)| (key.clone(), state.clone(), read_revisions.get(key).copied().unwrap_or(ABSENT))),
        );
    }
    offers.extend(read);
    revisions.extend(read_revisions);
    steps.done("load_offers");
    let items = load_items(connection, &keys.items, locking).await?;
    steps.done("load_items");
    let prior = load_prior(connection, &keys.event_ids).await?;
    steps.done("load_prior");
    let loaded = LoadedState { offers, items, prior, flags };
    let mut writes = prepare(batch, loaded, config);
    steps.done("plan");
    write_offers(connection, &writes, &revisions).await?;
    steps.done("write_offers");
    if cache.is_some() {
        // Written: nothing further needs the offers' rows, so they move into the cache.
        committed.extend(std::mem::take(&mut writes.offers).into_iter().map(|offer| {
            let revision = revisions.get(&offer.key).copied().unwrap_or(ABSENT) + 1;
            (offer.key, offer.state, revision)
        }));
    }
    write_items(connection, &writes).await?;
    steps.done("write_items");
    insert_journal(connection, &writes).await?;
    steps.done("insert_journal");
    update_journal(connection, &writes).await?;
    steps.done("update_journal");
    upsert_outbox(connection, &writes).await?;
    steps.done("upsert_outbox");
    write_checkpoints(connection, &writes).await?;
    steps.done("checkpoints");
    tracing::debug!(
        n_events = batch.events.len(),
        n_offers = keys.offers.len(),
        n_cached,
        ?locking,
        steps = %steps,
        "batch written, not yet committed"
    );
    Ok(Written { result: writes.result, committed })
}

/// How long each step of a batch took, for the debug log: where a slow batch spends its time.
struct Steps {
    last: std::time::Instant,
    taken: Vec<(&'static str, std::time::Duration)>,
}

impl Steps {
    fn start() -> Self {
        Self { last: std::time::Instant::now(), taken: Vec::with_capacity(12) }
    }

    fn done(&mut self, step: &'static str) {
        let now = std::time::Instant::now();
        self.taken.push((step, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Steps {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, (step, taken)) in self.taken.iter().enumerate() {
            let separator = if index == 0 { "" } else { " " };
            write!(formatter, "{separator}{step}={:.1}ms", taken.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}

/// Queues a publish of each item's current version on every channel serving its tenant.
pub(crate) async fn republish(
    pool: &PgPool,
    config: &StoreConfig,
    items: &[catalog_core::ItemId],
) -> Result<u64, StoreError> {
    let ids: Vec<Uuid> = items.iter().map(|id| id.0).collect();
    let mut transaction = pool.begin().await.map_err(store_error)?;
    let rows = sqlx::query("SELECT item_id, tenant_id, sku, quantity, version FROM items WHERE item_id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *transaction)
        .await
        .map_err(store_error)?;
    let mut outbox = Vec::new();
    for row in rows {
        let tenant = catalog_store::rows::tenant(row.get(1))?;
        for channel in config.channels.iter().filter(|channel| channel.serves(&tenant)) {
            outbox.push(catalog_store::batch::OutboxWrite {
                item_id: catalog_core::ItemId(row.get(0)),
                tenant: tenant.clone(),
                sku: row.get(2),
                quantity: row.get(3),
                version: row.get(4),
                channel: channel.name.clone(),
                traceparent: None,
            });
        }
    }
    let queued = outbox.len() as u64;
    let writes = PreparedWrites { outbox, ..PreparedWrites::default() };
    upsert_outbox(&mut transaction, &writes).await?;
    transaction.commit().await.map_err(store_error)?;
    Ok(queued)
}

async fn load_flags(
    connection: &mut PgConnection,
    keys: &BatchKeys,
    default_enabled: bool,
) -> Result<FlagTable, StoreError> {
    let mut flags = FlagTable { default_enabled, ..FlagTable::default() };
    if keys.tenants.is_empty() {
        return Ok(flags);
    }
    let tenants: Vec<&str> = keys.tenants.iter().map(TenantId::as_str).collect();
    sqlx::query(
        r#"INSERT INTO tenants (tenant_id, sync_enabled)
           SELECT t, $2 FROM unnest($1::text[]) AS u(t) ORDER BY t COLLATE "C"
           ON CONFLICT DO NOTHING"#,
    )
    .bind(&tenants)
    .bind(default_enabled)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    let supplier_tenants: Vec<&str> = keys.suppliers.iter().map(|(tenant, _)| tenant.as_str()).collect();
    let suppliers: Vec<&str> = keys.suppliers.iter().map(|(_, supplier)| supplier.as_str()).collect();
    sqlx::query(
        r#"INSERT INTO suppliers (tenant_id, supplier_id, sync_enabled)
           SELECT t, s, $3 FROM unnest($1::text[], $2::text[]) AS u(t, s) ORDER BY t COLLATE "C", s COLLATE "C"
           ON CONFLICT DO NOTHING"#,
    )
    .bind(&supplier_tenants)
    .bind(&suppliers)
    .bind(default_enabled)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;

    let rows = sqlx::query("SELECT tenant_id, sync_enabled FROM tenants WHERE tenant_id = ANY($1)")
        .bind(&tenants)
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
    for row in rows {
        let tenant: String = row.get(0);
        flags.tenants.insert(catalog_store::rows::tenant(&tenant)?, row.get(1));
    }
    let rows = sqlx::query(
        "SELECT tenant_id, supplier_id, sync_enabled FROM suppliers
         WHERE (tenant_id, supplier_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
    )
    .bind(&supplier_tenants)
    .bind(&suppliers)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    for row in rows {
        let tenant: String = row.get(0);
        let supplier: String = row.get(1);
        flags.set_supplier(
            catalog_store::rows::tenant(&tenant)?,
            catalog_store::rows::supplier(&supplier)?,
            row.get(2),
        );
    }
    Ok(flags)
}

/// An offer's `revision` as read, or `ABSENT` when it did not exist for this transaction.
type Revisions<'k> = HashMap<&'k OfferKey, i64>;

/// The expected revision of an offer the read did not see: never matches a stored row.
const ABSENT: i64 = -1;

const OFFER_STATE: &str = "tenant_id, supplier_id, sku, snapshot_quantity, snapshot_effective_at, \
                           snapshot_sequence, snapshot_event_id, adjustments, revision";

/// Reads the touched offers that exist. Pessimistically it creates the missing ones and
/// locks them all first (a batch that lost a race takes every row it plans against);
/// optimistically it only reads, and a missing offer is planned as new.
async fn load_offers<'k>(
    connection: &mut PgConnection,
    keys: &[&'k OfferKey],
    locking: Locking,
) -> Result<(HashMap<OfferKey, catalog_core::OfferState>, Revisions<'k>), StoreError> {
    let mut offers = HashMap::with_capacity(keys.len());
    let mut revisions = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok((offers, revisions));
    }
    // The keys arrive sorted; ORDINALITY keeps that order, the one lock order of offers.
    let rows = match locking {
        // A missing offer is planned as new and inserted by the guarded write, which conflicts
        // if another transaction created it meanwhile: no row is written twice.
        Locking::Optimistic => {
            offer_rows(
                connection,
                &format!(
                    "SELECT {OFFER_STATE} FROM offers
                     JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(t, s, k)
                       ON tenant_id = t AND supplier_id = s AND sku = k"
                ),
                keys.iter().copied(),
            )
            .await?
        }
        Locking::Pessimistic => {
            offer_rows(
                connection,
                &format!(
                    "INSERT INTO offers AS o (tenant_id, supplier_id, sku)
                     SELECT t, s, k FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(t, s, k, n)
                     ORDER BY n
                     ON CONFLICT (tenant_id, supplier_id, sku) DO UPDATE SET updated_at = o.updated_at
                     RETURNING {OFFER_STATE}"
                ),
                keys.iter().copied(),
            )
            .await?
        }
    };
    for row in rows {
        let key = OfferKey {
            tenant: catalog_store::rows::tenant(row.get(0))?,
            supplier: catalog_store::rows::supplier(row.get(1))?,
            sku: catalog_store::rows::sku(row.get(2))?,
        };
        let columns = OfferColumns {
            snapshot_quantity: row.get(3),
            snapshot_effective_at: row.get(4),
            snapshot_sequence: row.get(5),
            snapshot_event_id: row.get(6),
            adjustments: row.get(7),
        };
        // Keyed by the batch's own key (the keys are sorted), not a copy of it.
        let Ok(index) = keys.binary_search(&&key) else {
            return Err(StoreError::Corrupt(format!("offer {key:?} was returned but not asked for")));
        };
        revisions.insert(keys[index], row.get(8));
        offers.insert(key, columns.into_state()?);
    }
    Ok((offers, revisions))
}

/// Runs an offer statement taking the keys as three arrays ($1 tenants, $2 suppliers, $3 SKUs).
async fn offer_rows<'k>(
    connection: &mut PgConnection,
    sql: &str,
    keys: impl Iterator<Item = &'k OfferKey> + Clone,
) -> Result<Vec<sqlx::postgres::PgRow>, StoreError> {
    sqlx::query(sql)
        .bind(keys.clone().map(|key| key.tenant.as_str()).collect::<Vec<_>>())
        .bind(keys.clone().map(|key| key.supplier.as_str()).collect::<Vec<_>>())
        .bind(keys.map(|key| key.sku.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)
}

/// Reads the touched items that exist, as `load_offers` reads offers: pessimistically it
/// creates and locks them all first; optimistically a missing item is planned as new.
async fn load_items(
    connection: &mut PgConnection,
    keys: &[(ItemKey, catalog_core::ItemId)],
    locking: Locking,
) -> Result<HashMap<ItemKey, ItemState>, StoreError> {
    let mut items = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(items);
    }
    let rows = match locking {
        // As with offers, a missing item is planned as new and inserted by the guarded write.
        Locking::Optimistic => {
            let ids: Vec<Uuid> = keys.iter().map(|(_, id)| id.0).collect();
            sqlx::query("SELECT tenant_id, sku, quantity, version FROM items WHERE item_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *connection)
                .await
                .map_err(store_error)?
        }
        Locking::Pessimistic => {
            item_rows(
                connection,
                "INSERT INTO items AS i (item_id, tenant_id, sku)
                 SELECT id, t, k FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS u(id, t, k, n)
                 ORDER BY n
                 ON CONFLICT (item_id) DO UPDATE SET updated_at = i.updated_at
                 RETURNING tenant_id, sku, quantity, version",
                keys.iter(),
            )
            .await?
        }
    };
    for row in rows {
        let key =
            ItemKey { tenant: catalog_store::rows::tenant(row.get(0))?, sku: catalog_store::rows::sku(row.get(1))? };
        items.insert(key, ItemState { quantity: row.get(2), version: catalog_store::rows::version(row.get(3))? });
    }
    Ok(items)
}

/// Runs an item statement taking the keys as three arrays ($1 ids, $2 tenants, $3 SKUs).
async fn item_rows<'k>(
    connection: &mut PgConnection,
    sql: &str,
    keys: impl Iterator<Item = &'k (ItemKey, catalog_core::ItemId)> + Clone,
) -> Result<Vec<sqlx::postgres::PgRow>, StoreError> {
    sqlx::query(sql)
        .bind(keys.clone().map(|(_, id)| id.0).collect::<Vec<Uuid>>())
        .bind(keys.clone().map(|(key, _)| key.tenant.as_str()).collect::<Vec<_>>())
        .bind(keys.map(|(key, _)| key.sku.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)
}

async fn load_prior(connection: &mut PgConnection, event_ids: &[EventId]) -> Result<Vec<PriorRow>, StoreError> {
    if event_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = event_ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query(LOAD_PRIOR).bind(&ids).fetch_all(&mut *connection).await.map_err(store_error)?;
    rows.into_iter()
        .map(|row| {
            let outcome: String = row.get(1);
            let fingerprint: Option<i64> = row.get(2);
            Ok(PriorRow {
                event_id: EventId(row.get(0)),
                held: outcome == "held",
                fingerprint: fingerprint
                    .ok_or_else(|| StoreError::Corrupt("decided journal row without fingerprint".into()))?
                    as u64,
                received_at: row.get(3),
            })
        })
        .collect()
}

const JOURNAL_COLUMNS: &str = "event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, updated_at, \
     sequence, effective_at, clock_drift_clamped, received_at, outcome, reason, detail, fingerprint, \
     redelivery_count, payload_differs, source, source_partition, source_offset, traceparent, raw_payload, \
     last_redelivered_at";

/// Inserts the new journal rows with binary `COPY`. A row claiming an event id that another
/// transaction claimed after this one read the journal violates the unique claim index:
/// the whole batch rolls back as a conflict and is planned again.
async fn insert_journal(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), Failure> {
    let rows = &writes.journal_inserts;
    if rows.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let mut copy = BinaryRows::new(24, rows.len(), 320);
    for row in rows {
        copy.row()
            .uuid(row.event_id.map(|id| id.0))
            .text(row.tenant.as_ref().map(TenantId::as_str))
            .text(row.supplier.as_ref().map(catalog_core::SupplierId::as_str))
            .text(row.sku.as_ref().map(catalog_core::Sku::as_str))
            .text(row.event_type)
            .int8(row.quantity)
            .int8(row.delta)
            .timestamptz(row.updated_at)
            .int8(row.sequence)
            .timestamptz(row.effective_at)
            .bool(row.clock_drift_clamped)
            .timestamptz(Some(row.received_at))
            .text(Some(row.outcome))
            .text(row.reason)
            .text(row.detail.as_deref())
            .int8(row.fingerprint)
            .int8(Some(row.redelivery_count))
            .bool(row.payload_differs)
            .text(Some(&*row.source.source))
            .int4(row.source.partition)
            .int8(Some(row.source.offset))
            .text(row.traceparent.as_deref())
            .bytea(row.raw_payload.as_deref())
            .timestamptz((row.redelivery_count > 0).then_some(now));
    }
    copy_in(connection, &format!("COPY events ({JOURNAL_COLUMNS}) FROM STDIN (FORMAT binary)"), copy, rows.len()).await
}

/// A unique violation of the claim index is a lost race, not a broken database: the batch
/// is planned again.
fn claim_error(error: sqlx::Error) -> Failure {
    if let sqlx::Error::Database(database) = &error {
        if let Some(constraint @ "events_event_id_decided") = database.constraint() {
            return Failure::ClaimTaken(StoreError::Conflict(format!(
                "{constraint}: an event id was claimed concurrently"
            )));
        }
    }
    Failure::Store(store_error(error))
}

/// Counts redeliveries on existing journal rows and records fresh decisions of held ones;
/// a held row decided by another transaction since it was read is a conflict.
async fn update_journal(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    let updates = &writes.journal_updates;
    if updates.is_empty() {
        return Ok(());
    }
    let updated = journal_update_query(UPDATE_JOURNAL, updates).execute(&mut *connection).await.map_err(store_error)?;
    guard("journal rows", updated.rows_affected(), updates.len())
}

/// `statement` (`UPDATE_JOURNAL`, or a statement that explains it) with the updates bound as
/// its eight arrays, one element per journal row.
pub(crate) fn journal_update_query<'q>(
    statement: &'q str,
    updates: &'q [JournalUpdate],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let event_ids: Vec<Uuid> = updates.iter().map(|update| update.event_id.0).collect();
    let redecided: Vec<bool> = updates.iter().map(|update| update.redecided.is_some()).collect();
    let outcomes: Vec<Option<&str>> = updates.iter().map(|u| u.redecided.as_ref().map(|r| r.outcome)).collect();
    let reasons: Vec<Option<&str>> = updates.iter().map(|u| u.redecided.as_ref().and_then(|r| r.reason)).collect();
    let effective_ats: Vec<Option<DateTime<Utc>>> =
        updates.iter().map(|u| u.redecided.as_ref().map(|r| r.effective_at)).collect();
    let clamped: Vec<bool> =
        updates.iter().map(|u| u.redecided.as_ref().is_some_and(|r| r.clock_drift_clamped)).collect();
    let added: Vec<i64> = updates.iter().map(|update| update.redeliveries_added).collect();
    let differs: Vec<bool> = updates.iter().map(|update| update.payload_differs).collect();
    sqlx::query(statement)
        .bind(event_ids)
        .bind(redecided)
        .bind(outcomes)
        .bind(reasons)
        .bind(effective_ats)
        .bind(clamped)
        .bind(added)
        .bind(differs)
}

/// Writes the changed offers, each only if its `revision` is still the one read.
async fn write_offers(
    connection: &mut PgConnection,
    writes: &PreparedWrites,
    revisions: &Revisions<'_>,
) -> Result<(), StoreError> {
    let offers = &writes.offers;
    if offers.is_empty() {
        return Ok(());
    }
    let columns: Vec<OfferColumns> = offers.iter().map(|offer| OfferColumns::from_state(&offer.state)).collect();
    let tenants: Vec<&str> = offers.iter().map(|offer| offer.key.tenant.as_str()).collect();
    let suppliers: Vec<&str> = offers.iter().map(|offer| offer.key.supplier.as_str()).collect();
    let skus: Vec<&str> = offers.iter().map(|offer| offer.key.sku.as_str()).collect();
    let quantities: Vec<i64> = offers.iter().map(|offer| offer.quantity).collect();
    let winners: Vec<Option<Uuid>> = offers.iter().map(|offer| offer.winner.map(|id| id.0)).collect();
    let snapshot_quantities: Vec<Option<i64>> = columns.iter().map(|c| c.snapshot_quantity).collect();
    let snapshot_effective_ats: Vec<Option<DateTime<Utc>>> = columns.iter().map(|c| c.snapshot_effective_at).collect();
    let snapshot_sequences: Vec<Option<i64>> = columns.iter().map(|c| c.snapshot_sequence).collect();
    let snapshot_event_ids: Vec<Option<Uuid>> = columns.iter().map(|c| c.snapshot_event_id).collect();
    let adjustments: Vec<&str> = columns.iter().map(|c| c.adjustments.as_str()).collect();
    // The new revision travels as EXCLUDED.revision; the guard is the one before it.
    let new_revisions: Vec<i64> =
        offers.iter().map(|offer| revisions.get(&offer.key).copied().unwrap_or(ABSENT) + 1).collect();
    // An upsert rather than UPDATE … FROM: it visits the rows in the given (key) order, the
    // lock order. A new offer (read as absent) is inserted at revision 0; if another
    // transaction created it meanwhile, the guard (revision -1) fails and the batch conflicts.
    let written = sqlx::query(
        r#"INSERT INTO offers AS o (tenant_id, supplier_id, sku, quantity, winner_event_id, snapshot_quantity,
               snapshot_effective_at, snapshot_sequence, snapshot_event_id, adjustments, revision)
           SELECT t, s, k, q, w, sq, se, ss, si, a, r
           FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::uuid[], $6::int8[], $7::timestamptz[],
                       $8::int8[], $9::uuid[], $10::text[], $11::int8[]) WITH ORDINALITY
                AS u(t, s, k, q, w, sq, se, ss, si, a, r, n)
           ORDER BY n
           ON CONFLICT (tenant_id, supplier_id, sku) DO UPDATE SET quantity = EXCLUDED.quantity,
               winner_event_id = EXCLUDED.winner_event_id, snapshot_quantity = EXCLUDED.snapshot_quantity,
               snapshot_effective_at = EXCLUDED.snapshot_effective_at,
               snapshot_sequence = EXCLUDED.snapshot_sequence, snapshot_event_id = EXCLUDED.snapshot_event_id,
               adjustments = EXCLUDED.adjustments, revision = EXCLUDED.revision, updated_at = now()
           WHERE o.revision = EXCLUDED.revision - 1"#,
    )
    .bind(&tenants)
    .bind(&suppliers)
    .bind(&skus)
    .bind(&quantities)
    .bind(&winners)
    .bind(&snapshot_quantities)
    .bind(&snapshot_effective_ats)
    .bind(&snapshot_sequences)
    .bind(&snapshot_event_ids)
    .bind(&adjustments)
    .bind(&new_revisions)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    guard("offers", written.rows_affected(), offers.len())
}

/// Writes the changed items, each only if its version is still the one it was planned from;
/// a new item (read as absent, planned from version 0) is inserted, or, when another
/// transaction created it meanwhile, written only if that one left it at version 0.
async fn write_items(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    let items = &writes.items;
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = items.iter().map(|item| item.item_id.0).collect();
    let tenants: Vec<&str> = items.iter().map(|item| item.tenant.as_str()).collect();
    let skus: Vec<&str> = items.iter().map(|item| item.sku.as_str()).collect();
    let quantities: Vec<i64> = items.iter().map(|item| item.quantity).collect();
    let versions: Vec<i64> = items.iter().map(|item| item.version as i64).collect();
    let written = sqlx::query(
        r#"INSERT INTO items AS i (item_id, tenant_id, sku, quantity, version)
           SELECT id, t, k, q, v
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[]) WITH ORDINALITY AS u(id, t, k, q, v, n)
           ORDER BY n
           ON CONFLICT (item_id) DO UPDATE SET quantity = EXCLUDED.quantity, version = EXCLUDED.version,
               updated_at = now()
           WHERE i.version = EXCLUDED.version - 1"#,
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&skus)
    .bind(&quantities)
    .bind(&versions)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    guard("items", written.rows_affected(), items.len())
}

/// A guarded write that changed fewer rows than planned lost a race: plan again.
fn guard(table: &str, written: u64, planned: usize) -> Result<(), StoreError> {
    if written == planned as u64 {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "{} of {planned} {table} changed since they were read",
        planned as u64 - written.min(planned as u64)
    )))
}

/// Sends `rows` (`expected` of them) through one `COPY … FROM STDIN (FORMAT binary)`.
async fn copy_in(
    connection: &mut PgConnection,
    statement: &str,
    rows: BinaryRows,
    expected: usize,
) -> Result<(), Failure> {
    let mut sink = connection.copy_in_raw(statement).await.map_err(store_error)?;
    if let Err(error) = sink.send(rows.finish()).await {
        let _ = sink.abort("send failed").await;
        return Err(store_error(error).into());
    }
    let copied = sink.finish().await.map_err(claim_error)?;
    if copied != expected as u64 {
        return Err(StoreError::Database(format!("COPY wrote {copied} of {expected} rows")).into());
    }
    Ok(())
}

/// Queues each new item version on its channels: one outbox row per item and channel, so
/// a version waiting unsent is replaced in place (coalesced) and keeps its first enqueue
/// time, its lease and its retry schedule; a row that already waits at this version or a
/// newer one is left alone. Rows are written in (item id, channel) order, the order
/// `record_publishes` locks them in, so the two never wait on each other in a cycle.
async fn upsert_outbox(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    let outbox = &writes.outbox;
    if outbox.is_empty() {
        return Ok(());
    }
    let mut order: Vec<&catalog_store::batch::OutboxWrite> = outbox.iter().collect();
    order.sort_by(|a, b| (a.item_id.0, a.channel.as_bytes()).cmp(&(b.item_id.0, b.channel.as_bytes())));
    let ids: Vec<Uuid> = order.iter().map(|row| row.item_id.0).collect();
    let tenants: Vec<&str> = order.iter().map(|row| row.tenant.as_str()).collect();
    let skus: Vec<&str> = order.iter().map(|row| row.sku.as_str()).collect();
    let quantities: Vec<i64> = order.iter().map(|row| row.quantity).collect();
    let versions: Vec<i64> = order.iter().map(|row| row.version).collect();
    let channels: Vec<&str> = order.iter().map(|row| row.channel.as_str()).collect();
    let traceparents: Vec<Option<&str>> = order.iter().map(|row| row.traceparent.as_deref()).collect();
    sqlx::query(
        "INSERT INTO outbox AS o (item_id, tenant_id, sku, quantity, version, channel, traceparent)
         SELECT i, t, k, q, v, c, tp
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[])
              WITH ORDINALITY AS u(i, t, k, q, v, c, tp, n)
         ORDER BY n
         ON CONFLICT (item_id, channel) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, sku = EXCLUDED.sku,
             quantity = EXCLUDED.quantity, version = EXCLUDED.version, traceparent = EXCLUDED.traceparent,
             enqueued_at = EXCLUDED.enqueued_at
         WHERE o.version < EXCLUDED.version",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&skus)
    .bind(&quantities)
    .bind(&versions)
    .bind(&channels)
    .bind(&traceparents)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}

async fn write_checkpoints(connection: &mut PgConnection, writes: &PreparedWrites) -> Result<(), StoreError> {
    if writes.checkpoints.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = writes.checkpoints.iter().map(|c| c.source.as_str()).collect();
    let partitions: Vec<i32> = writes.checkpoints.iter().map(|c| c.partition).collect();
    let offsets: Vec<i64> = writes.checkpoints.iter().map(|c| c.next_offset).collect();
    sqlx::query(
        "INSERT INTO source_checkpoints (source, partition, next_offset)
         SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[])
         ON CONFLICT (source, partition) DO UPDATE
         SET next_offset = GREATEST(source_checkpoints.next_offset, EXCLUDED.next_offset), updated_at = now()",
    )
    .bind(&sources)
    .bind(&partitions)
    .bind(&offsets)
    .execute(&mut *connection)
    .await
    .map_err(store_error)?;
    Ok(())
}
