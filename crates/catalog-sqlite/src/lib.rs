//! The embedded SQLite implementation of the catalog store: one file, no server, the
//! default store for a first run and for single-node deployments.
//!
//! Every write — a batch, a claim, a round of publish records, a heal round, a flag — is a
//! job of one writer thread (`writer`), which owns the only writing connection and runs each
//! job as one `BEGIN IMMEDIATE` transaction: a batch costs one crossing between threads,
//! whatever its size, and the applier and the publishers never contend for SQLite's write
//! lock. Reads go through a small sqlx pool, beside the writer (WAL lets them). The database
//! runs in WAL mode with `synchronous = FULL`, so a batch acknowledged as committed survives
//! a power loss. The decisions themselves come from `catalog-core` through
//! `catalog_store::batch`.

mod admin;
mod apply;
mod columns;
mod dead_letters;
mod error;
mod feed_windows;
mod feeds;
mod flags;
mod listings;
mod memory;
mod migrate;
#[cfg(test)]
mod migration_tests;
mod publish;
mod read;
mod reconcile;
mod retention;
mod rollout;
mod signals;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catalog_core::{CatalogItem, EventId, ItemId, ItemKey, Sku, SupplierId, TenantId};
use catalog_store::{
    AdminStore, AuditEntry, AuditRecord, DeadLetterFilter, DeadLetterRetry, EventsPage, NewToken, OutcomeCounts,
    PublishAttemptCount, PublishedVersion, RejectionFilter, TokenHash, TokenInfo, TokenMatch, TracePage,
};
use catalog_store::{
    BatchInput, BatchResult, BatchStore, CatalogStore, ChannelItem, Checkpoint, DeadLetter, DeadLetterCount,
    DeadLetterHeal, DriftCorrection, DriftCount, DriftRecord, FlagStore, HealRound, HeldClaim, ItemTrace, JournalEntry,
    JournalWindow, OutboxClaim, OutboxDepth, OutboxEntry, OutboxStore, Position, PublishRecord, ReadStore,
    ReconcileStore, ResolvedDeadLetter, SharedSku, StoreConfig, StoreError, SyncStatus, TenantFlags, WindowPage,
};
use catalog_store::{
    CompletedWindow, FeedDrift, FeedDriftRecord, FeedJournalDay, FeedKey, FeedOffer, FeedRunRequest, FeedSettings,
    FeedStore, FullRefresh, PullFailure, StoredFeed,
};
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::error::store_error;
use crate::memory::{names_an_in_memory_database, TemporaryDatabase};
use crate::migrate::migrate_on_own_connection;

use crate::writer::Writer;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a connection waits for another's write lock before giving up with
/// `SQLITE_BUSY`, which becomes a retryable `StoreError::Conflict`. Within a process only
/// migrations ever wait: every other write goes through the one writer. Another process on
/// the same file (an operator's tool, a second worker) does wait on it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reading connections to a database file. Writes go through the one writer; these let
/// reads (traces, status, journal windows, gauges) proceed while a batch is written.
const MAX_READ_CONNECTIONS: u32 = 4;

/// The catalog store on one SQLite database. Cloning shares the writer and the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Arc<Writer>,
    /// The database file, for reads that open a connection of their own.
    path: Arc<Path>,
    config: Arc<StoreConfig>,
    /// Set for an in-memory URL: the private file that stands in for it, removed when the
    /// last clone of the store is dropped. Declared last, so it outlives the connections.
    _temporary: Option<Arc<TemporaryDatabase>>,
}

impl SqliteStore {
    /// Opens the database at `url` (`sqlite://catalog.db`, `sqlite:///abs/path.db` or
    /// `sqlite::memory:`), creating the file if missing, and runs pending migrations.
    ///
    /// An in-memory database lives in a private temporary file instead, removed once the
    /// store is dropped: the writer and the readers are separate connections, and separate
    /// connections share an in-memory database only through SQLite's shared cache, whose
    /// table locks fail at once instead of waiting.
    pub async fn connect(url: &str, config: StoreConfig) -> Result<SqliteStore, StoreError> {
        if names_an_in_memory_database(url) {
            let temporary = TemporaryDatabase::new();
            let options = SqliteConnectOptions::new().filename(&temporary.path);
            return Self::open(options, Some(Arc::new(temporary)), config).await;
        }
        let options = SqliteConnectOptions::from_str(url).map_err(store_error)?;
        Self::open(options, None, config).await
    }

    /// Opens (creating if missing) the database file at `path` and runs pending migrations.
    pub async fn open_path(path: &Path, config: StoreConfig) -> Result<SqliteStore, StoreError> {
        Self::open(SqliteConnectOptions::new().filename(path), None, config).await
    }

    async fn open(
        options: SqliteConnectOptions,
        temporary: Option<Arc<TemporaryDatabase>>,
        config: StoreConfig,
    ) -> Result<SqliteStore, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL on every commit; the writer sets it on its own connection too.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let path = options.get_filename().to_path_buf();
        migrate_on_own_connection(&options).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_READ_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(store_error)?;
        // The file exists and is migrated (and in WAL mode) before the writer opens it.
        let writer = Writer::start(&path, BUSY_TIMEOUT)?;
        Ok(SqliteStore {
            pool,
            writer: Arc::new(writer),
            path: Arc::from(path),
            config: Arc::new(config),
            _temporary: temporary,
        })
    }

    async fn run_migrations(&self) -> Result<(), StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(&*self.path)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        migrate_on_own_connection(&options).await
    }

    /// Stops the writer (after the jobs it was given) and closes every connection, waiting
    /// for them to finish, so the WAL is checkpointed into the database file before the
    /// process exits.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.run_migrations().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(store_error)
    }
}

#[async_trait]
impl BatchStore for SqliteStore {
    async fn apply_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        apply::apply_batch(&self.writer, &self.config, batch).await
    }

    async fn preview_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        apply::preview_batch(&self.writer, &self.config, batch).await
    }

    async fn checkpoints(&self, source: &str) -> Result<Vec<Checkpoint>, StoreError> {
        read::checkpoints(&self.pool, source).await
    }

    async fn rewind_checkpoint(
        &self,
        source: &str,
        partition: i32,
        from: i64,
        to: &Position,
    ) -> Result<bool, StoreError> {
        apply::rewind_checkpoint(&self.writer, source, partition, from, to).await
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn claim_outbox(&self, channel: &str, claim: &OutboxClaim) -> Result<Vec<OutboxEntry>, StoreError> {
        publish::claim_outbox(&self.writer, channel, claim).await
    }

    async fn record_publishes(&self, records: &[PublishRecord]) -> Result<Vec<ResolvedDeadLetter>, StoreError> {
        publish::record_publishes(&self.writer, records).await
    }

    async fn release_claims(&self, channel: &str, claims: &[HeldClaim]) -> Result<u64, StoreError> {
        publish::release_claims(&self.writer, channel, claims).await
    }

    async fn extend_claims(&self, channel: &str, claims: &[HeldClaim], lease: Duration) -> Result<u64, StoreError> {
        publish::extend_claims(&self.writer, channel, claims, lease).await
    }

    async fn republish(&self, items: &[ItemId]) -> Result<u64, StoreError> {
        apply::republish(&self.writer, &self.config, items).await
    }

    async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError> {
        publish::outbox_depth(&self.pool).await
    }

    /// The process's clock: rows are stamped with it when written (`apply`), by this process
    /// or another on the same machine.
    async fn outbox_clock(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(Utc::now())
    }

    async fn stale_items(&self, channel: &str) -> Result<u64, StoreError> {
        publish::stale_items(&self.pool, &self.config, channel).await
    }

    async fn skus_of_several_tenants(&self, channels: &[String], skus: &[Sku]) -> Result<Vec<SharedSku>, StoreError> {
        listings::skus_of_several_tenants(&self.pool, &self.config, channels, skus).await
    }

    async fn open_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        dead_letters::open_dead_letters(&self.pool, limit).await
    }

    async fn item_dead_letters(&self, item_id: ItemId) -> Result<Vec<DeadLetter>, StoreError> {
        dead_letters::item_dead_letters(&self.pool, item_id).await
    }

    async fn heal_dead_letters(&self, heal: &DeadLetterHeal) -> Result<HealRound, StoreError> {
        dead_letters::heal(&self.writer, &self.config, heal).await
    }

    async fn dead_letter_counts(&self) -> Result<Vec<DeadLetterCount>, StoreError> {
        dead_letters::dead_letter_counts(&self.pool).await
    }
}

#[async_trait]
impl FlagStore for SqliteStore {
    async fn set_tenant_sync(&self, tenant: &TenantId, enabled: bool) -> Result<(), StoreError> {
        flags::set_tenant_sync(&self.writer, tenant, enabled).await
    }

    async fn set_supplier_sync(
        &self,
        tenant: &TenantId,
        supplier: &SupplierId,
        enabled: bool,
    ) -> Result<(), StoreError> {
        flags::set_supplier_sync(&self.writer, tenant, supplier, enabled, self.config.default_sync_enabled).await
    }

    async fn tenant_flags(&self, tenant: &TenantId) -> Result<Option<TenantFlags>, StoreError> {
        flags::tenant_flags(&self.pool, tenant).await
    }
}

#[async_trait]
impl ReconcileStore for SqliteStore {
    async fn reconcile_tenants(&self, channel: &str) -> Result<Vec<TenantId>, StoreError> {
        reconcile::tenants(&self.pool, &self.config, channel).await
    }

    async fn reconcile_page(
        &self,
        channel: &str,
        tenant: &TenantId,
        after: Option<ItemId>,
        limit: usize,
    ) -> Result<Vec<ChannelItem>, StoreError> {
        reconcile::page(&self.pool, channel, tenant, after, limit).await
    }

    async fn correct_drifts(&self, channel: &str, corrections: &[DriftCorrection]) -> Result<Vec<ItemId>, StoreError> {
        reconcile::correct(&self.writer, &self.config, channel, corrections).await
    }

    async fn item_drifts(&self, item_id: ItemId, limit: usize) -> Result<Vec<DriftRecord>, StoreError> {
        reconcile::item_drifts(&self.pool, item_id, limit).await
    }

    async fn drift_counts(&self, since: DateTime<Utc>) -> Result<Vec<DriftCount>, StoreError> {
        reconcile::drift_counts(&self.pool, since).await
    }
}

#[async_trait]
impl FeedStore for SqliteStore {
    async fn upsert_feed(&self, settings: &FeedSettings) -> Result<(), StoreError> {
        feeds::upsert_feed(&self.writer, settings).await
    }

    async fn feeds(&self) -> Result<Vec<StoredFeed>, StoreError> {
        feeds::feeds(&self.pool).await
    }

    async fn feed(&self, key: &FeedKey) -> Result<Option<StoredFeed>, StoreError> {
        feeds::feed(&self.pool, key).await
    }

    async fn set_feed_sync(&self, key: &FeedKey, enabled: bool) -> Result<bool, StoreError> {
        feeds::set_feed_sync(&self.writer, key, enabled).await
    }

    async fn complete_window(&self, key: &FeedKey, window: &CompletedWindow) -> Result<(), StoreError> {
        feed_windows::complete_window(&self.writer, key, window).await
    }

    async fn feed_windows(&self, key: &FeedKey) -> Result<Vec<CompletedWindow>, StoreError> {
        feed_windows::feed_windows(&self.pool, key).await
    }

    async fn record_pull_failure(&self, failure: &PullFailure) -> Result<i64, StoreError> {
        feeds::record_pull_failure(&self.writer, failure).await
    }

    async fn resolve_pull_failure(&self, key: &FeedKey) -> Result<bool, StoreError> {
        feeds::resolve_pull_failure(&self.writer, key).await
    }

    async fn open_pull_dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        dead_letters::open_pull_dead_letters(&self.pool).await
    }

    async fn feed_offers(&self, key: &FeedKey) -> Result<Vec<FeedOffer>, StoreError> {
        feeds::feed_offers(&self.pool, key).await
    }

    async fn record_feed_drifts(
        &self,
        key: &FeedKey,
        drifts: &[FeedDrift],
        detected_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        feeds::record_feed_drifts(&self.writer, key, drifts, detected_at).await
    }

    async fn complete_full_refresh(&self, refresh: &FullRefresh) -> Result<(), StoreError> {
        feeds::complete_full_refresh(&self.writer, refresh).await
    }

    async fn feed_drifts(&self, key: &FeedKey, limit: usize) -> Result<Vec<FeedDriftRecord>, StoreError> {
        feeds::feed_drifts(&self.pool, key, limit).await
    }

    async fn feed_journal_by_day(
        &self,
        key: &FeedKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<FeedJournalDay>, StoreError> {
        feeds::feed_journal_by_day(&self.pool, key, since).await
    }

    async fn request_feed_run(&self, key: &FeedKey, request: &FeedRunRequest) -> Result<bool, StoreError> {
        feeds::request_feed_run(&self.writer, key, request).await
    }

    async fn clear_feed_run(&self, key: &FeedKey, requested_at: DateTime<Utc>) -> Result<bool, StoreError> {
        feeds::clear_feed_run(&self.writer, key, requested_at).await
    }
}

#[async_trait]
impl ReadStore for SqliteStore {
    async fn item(&self, item_id: ItemId) -> Result<Option<CatalogItem>, StoreError> {
        read::item(&self.pool, item_id).await
    }

    async fn items(&self, tenant: &TenantId) -> Result<Vec<CatalogItem>, StoreError> {
        read::items(&self.pool, tenant).await
    }

    async fn item_trace(&self, item_id: ItemId) -> Result<Option<ItemTrace>, StoreError> {
        read::item_trace(&self.pool, item_id).await
    }

    async fn journal_window_page(
        &self,
        window: &JournalWindow,
        page: WindowPage,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        read::journal_window_page(&self.path, BUSY_TIMEOUT, window, page).await
    }

    async fn sync_status(&self, tenant: &TenantId) -> Result<Option<SyncStatus>, StoreError> {
        read::sync_status(&self.pool, tenant).await
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn item_trace_page(&self, key: &ItemKey, page: EventsPage) -> Result<Option<TracePage>, StoreError> {
        read::item_trace_page(&self.pool, key, page).await
    }

    async fn add_token(&self, token: &NewToken) -> Result<bool, StoreError> {
        admin::add_token(&self.writer, token).await
    }

    async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        admin::tokens(&self.pool).await
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        admin::revoke_token(&self.writer, name).await
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenMatch>, StoreError> {
        admin::token_by_hash(&self.pool, hash).await
    }

    async fn record_audit(&self, record: &AuditRecord) -> Result<i64, StoreError> {
        admin::record_audit(&self.writer, record).await
    }

    async fn audit_log(&self, limit: usize, before_id: Option<i64>) -> Result<Vec<AuditEntry>, StoreError> {
        admin::audit_log(&self.pool, limit, before_id).await
    }

    async fn journal_by_event_id(&self, event_id: EventId, max: usize) -> Result<Vec<JournalEntry>, StoreError> {
        admin::journal_by_event_id(&self.pool, event_id, max).await
    }

    async fn journal_by_trace_id(&self, trace_id: &str, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        admin::journal_by_trace_id(&self.pool, trace_id, limit).await
    }

    async fn rejections(&self, filter: &RejectionFilter) -> Result<Vec<JournalEntry>, StoreError> {
        admin::rejections(&self.pool, filter).await
    }

    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        admin::tenant_ids(&self.pool).await
    }

    async fn published_versions(&self, item_id: ItemId) -> Result<Vec<PublishedVersion>, StoreError> {
        admin::published_versions(&self.pool, item_id).await
    }

    async fn publish_attempt_counts(&self, since: DateTime<Utc>) -> Result<Vec<PublishAttemptCount>, StoreError> {
        admin::publish_attempt_counts(&self.pool, since).await
    }

    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        admin::dead_letters(&self.pool, filter).await
    }

    async fn count_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        admin::count_dead_letters(&self.pool, filter).await
    }

    async fn dead_letter(&self, dead_letter_id: i64) -> Result<Option<DeadLetter>, StoreError> {
        admin::dead_letter(&self.pool, dead_letter_id).await
    }

    async fn retry_dead_letter(&self, dead_letter_id: i64, max_retries: u32) -> Result<DeadLetterRetry, StoreError> {
        admin::retry_dead_letter(&self.writer, &self.config, dead_letter_id, max_retries).await
    }

    async fn resolve_dead_letter(&self, dead_letter_id: i64, note: &str) -> Result<bool, StoreError> {
        admin::resolve_dead_letter(&self.writer, dead_letter_id, note).await
    }

    async fn outcome_counts_since(&self, tenant: &TenantId, since: DateTime<Utc>) -> Result<OutcomeCounts, StoreError> {
        admin::outcome_counts_since(&self.pool, tenant, since).await
    }
}
