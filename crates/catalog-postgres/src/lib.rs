//! PostgreSQL implementation of the catalog store: each batch is one transaction of about
//! ten statements over arrays and one binary `COPY` (never one round trip per event),
//! optimistic first and locking on a retry, with rows locked in one global order so
//! concurrent workers neither deadlock nor lose an update.

mod apply;
mod columns;
mod copy;
mod flags;
#[cfg(test)]
mod journal_plans;
mod offer_cache;
mod outbox;
mod reads;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catalog_core::{ItemId, SupplierId, TenantId};
use catalog_store::{
    BatchInput, BatchResult, BatchStore, CatalogStore, Checkpoint, DeadLetter, FlagStore, ItemTrace, JournalEntry,
    JournalWindow, OutboxClaim, OutboxDepth, OutboxEntry, OutboxStore, PublishRecord, ReadStore, StoreConfig,
    StoreError, StoredItem, SyncStatus, TenantFlags,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The embedded migrations of `migrations/postgres`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connection settings for [`PostgresStore::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// How many offers (state and revision, about 0.5 KB each) a store remembers
    /// between batches instead of reading them again; 0 reads every batch's offers.
    pub offer_cache_capacity: usize,
}

/// The default [`PostgresOptions::offer_cache_capacity`]: about 50 MB when full.
pub const DEFAULT_OFFER_CACHE_CAPACITY: usize = 100_000;

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            offer_cache_capacity: DEFAULT_OFFER_CACHE_CAPACITY,
        }
    }
}

/// The production catalog store. Clones share one pool and one offer cache.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    config: StoreConfig,
    offers: Arc<offer_cache::OfferCache>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) and applies pending migrations.
    pub async fn connect(url: &str, config: StoreConfig, options: PostgresOptions) -> Result<Self, StoreError> {
        let connect_options: PgConnectOptions = url.parse().map_err(|error: sqlx::Error| {
            StoreError::Schema(format!("invalid database url: {}", error.to_string().replace(url, "<url>")))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options)
            .await
            .map_err(store_error)?;
        let offers = Arc::new(offer_cache::OfferCache::new(options.offer_cache_capacity));
        let store = Self { pool, config, offers };
        store.migrate().await?;
        Ok(store)
    }

    /// Wraps an existing pool, with an offer cache of the default capacity; migrations are
    /// not run.
    pub fn from_pool(pool: PgPool, config: StoreConfig) -> Self {
        Self { pool, config, offers: Arc::new(offer_cache::OfferCache::new(DEFAULT_OFFER_CACHE_CAPACITY)) }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Classifies a database failure: unreachable and lost races are retryable, the rest is not.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(database) => match database.code().as_deref() {
            // serialization_failure, deadlock_detected, lock_not_available
            Some("40001" | "40P01" | "55P03") => StoreError::Conflict(database.to_string()),
            // connection exceptions, admin shutdown, crash shutdown, cannot connect now
            Some(code) if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03") => {
                StoreError::Unavailable(database.to_string())
            }
            // undefined_table, undefined_column
            Some("42P01" | "42703") => StoreError::Schema(database.to_string()),
            _ => StoreError::Database(database.to_string()),
        },
        sqlx::Error::Migrate(_) => StoreError::Schema(error.to_string()),
        // A missing column means the schema is not the one this build migrated to.
        sqlx::Error::ColumnNotFound(_) | sqlx::Error::ColumnIndexOutOfBounds { .. } => {
            StoreError::Schema(error.to_string())
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::TypeNotFound { .. } => {
            StoreError::Corrupt(error.to_string())
        }
        _ => StoreError::Database(error.to_string()),
    }
}

#[async_trait]
impl CatalogStore for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|error| StoreError::Schema(error.to_string()))
    }
}

#[async_trait]
impl BatchStore for PostgresStore {
    async fn apply_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        apply::apply_batch(&self.pool, &self.config, &self.offers, batch).await
    }

    async fn preview_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        apply::preview_batch(&self.pool, &self.config, batch).await
    }

    async fn checkpoints(&self, source: &str) -> Result<Vec<Checkpoint>, StoreError> {
        reads::checkpoints(&self.pool, source).await
    }
}

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn claim_outbox(&self, channel: &str, claim: &OutboxClaim) -> Result<Vec<OutboxEntry>, StoreError> {
        outbox::claim_outbox(&self.pool, channel, claim).await
    }

    async fn record_publishes(&self, records: &[PublishRecord]) -> Result<(), StoreError> {
        outbox::record_publishes(&self.pool, records).await
    }

    async fn republish(&self, items: &[ItemId]) -> Result<u64, StoreError> {
        outbox::republish(&self.pool, &self.config, items).await
    }

    async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError> {
        outbox::outbox_depth(&self.pool).await
    }

    async fn stale_items(&self, channel: &str) -> Result<u64, StoreError> {
        outbox::stale_items(&self.pool, channel).await
    }

    async fn open_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        outbox::open_dead_letters(&self.pool, limit).await
    }
}

#[async_trait]
impl FlagStore for PostgresStore {
    async fn set_tenant_sync(&self, tenant: &TenantId, enabled: bool) -> Result<(), StoreError> {
        flags::set_tenant_sync(&self.pool, tenant, enabled).await
    }

    async fn set_supplier_sync(
        &self,
        tenant: &TenantId,
        supplier: &SupplierId,
        enabled: bool,
    ) -> Result<(), StoreError> {
        flags::set_supplier_sync(&self.pool, tenant, supplier, enabled, self.config.default_sync_enabled).await
    }

    async fn tenant_flags(&self, tenant: &TenantId) -> Result<Option<TenantFlags>, StoreError> {
        flags::tenant_flags(&self.pool, tenant).await
    }
}

#[async_trait]
impl ReadStore for PostgresStore {
    async fn item(&self, item_id: ItemId) -> Result<Option<StoredItem>, StoreError> {
        reads::item(&self.pool, item_id).await
    }

    async fn items(&self, tenant: &TenantId) -> Result<Vec<StoredItem>, StoreError> {
        reads::items(&self.pool, tenant).await
    }

    async fn item_trace(&self, item_id: ItemId) -> Result<Option<ItemTrace>, StoreError> {
        reads::item_trace(&self.pool, item_id).await
    }

    async fn journal_window(&self, window: &JournalWindow) -> Result<Vec<JournalEntry>, StoreError> {
        reads::journal_window(&self.pool, window).await
    }

    async fn sync_status(&self, tenant: &TenantId) -> Result<Option<SyncStatus>, StoreError> {
        reads::sync_status(&self.pool, tenant).await
    }
}
