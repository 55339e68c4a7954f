//! PostgreSQL implementation of the catalog store: each batch is one transaction of about
//! ten statements over arrays and one binary `COPY` (never one round trip per event),
//! optimistic first and locking on a retry, with rows locked in one global order so
//! concurrent workers neither deadlock nor lose an update.

mod apply;
mod copy;
#[cfg(test)]
mod journal_plans;
mod offer_cache;
mod queries;

use std::sync::Arc;
use std::time::Duration;

use catalog_store::{StoreConfig, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The embedded migrations of `migrations/postgres`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// How many times `apply_batch` re-runs a batch that lost a race (deadlock, serialization
/// failure, a concurrent claim of the same event id) before reporting a conflict.
const MAX_CONFLICT_RETRIES: u32 = 5;

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
        catalog_store::CatalogStore::migrate(&store).await?;
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
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
            StoreError::Corrupt(error.to_string())
        }
        _ => StoreError::Database(error.to_string()),
    }
}
