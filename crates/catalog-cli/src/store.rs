//! The store options every binary takes, and opening the store a `--database-url` names.

use std::sync::Arc;

use catalog_core::ClockPolicy;
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_sqlite::SqliteStore;
use catalog_store::{CatalogStore, ChannelRoute, StoreConfig, StoreError};
use clap::{Args, ValueEnum};

/// Store options, shared by every binary that opens the catalog.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// `postgres://…` for PostgreSQL, or `sqlite://PATH` for the embedded store (created if missing).
    #[arg(long, env = "CATALOG_DATABASE_URL", default_value = "sqlite://catalog.db")]
    pub database_url: String,

    /// Whether sync starts on or off for a tenant or supplier seen for the first time.
    #[arg(long, env = "CATALOG_DEFAULT_SYNC", value_enum, default_value_t = Switch::On)]
    pub default_sync: Switch,

    /// How far a supplier clock may run ahead before its timestamps are clamped, in seconds.
    #[arg(long, env = "CATALOG_MAX_CLOCK_SKEW_SECS", default_value_t = 300)]
    pub max_clock_skew_secs: u32,

    /// PostgreSQL only: how many offers (about 0.5 KB each) the process remembers
    /// between batches instead of reading them again; 0 reads every batch's offers. Safe
    /// with several workers: every offer write checks the revision it was planned from.
    #[arg(long, env = "CATALOG_OFFER_CACHE_SIZE", default_value_t = catalog_postgres::DEFAULT_OFFER_CACHE_CAPACITY)]
    pub offer_cache_size: usize,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("--database-url must start with postgres://, postgresql:// or sqlite:, got {0:?}")]
    Url(String),
    #[error("opening the {backend} store: {error}")]
    Store { backend: &'static str, error: StoreError },
}

/// Opens the store `args` names, applying migrations, queuing item changes for `channels`.
pub async fn open_store(args: &StoreArgs, channels: Vec<ChannelRoute>) -> Result<Arc<dyn CatalogStore>, OpenError> {
    let config = StoreConfig {
        default_sync_enabled: args.default_sync == Switch::On,
        channels,
        clock: ClockPolicy { max_skew: chrono::Duration::seconds(i64::from(args.max_clock_skew_secs)) },
    };
    let url = args.database_url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PostgresOptions { offer_cache_capacity: args.offer_cache_size, ..PostgresOptions::default() };
        let store = PostgresStore::connect(url, config, options)
            .await
            .map_err(|error| OpenError::Store { backend: "PostgreSQL", error })?;
        Ok(Arc::new(store))
    } else if url.starts_with("sqlite:") {
        let store =
            SqliteStore::connect(url, config).await.map_err(|error| OpenError::Store { backend: "SQLite", error })?;
        Ok(Arc::new(store))
    } else {
        Err(OpenError::Url(url.to_owned()))
    }
}
