//! The store options every binary takes, and opening the store a `--database-url` names.

use std::sync::Arc;
use std::time::Duration;

use catalog_core::ClockPolicy;
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_sqlite::SqliteStore;
use catalog_store::{CatalogStore, ChannelRoute, StoreConfig, StoreError};
use clap::{Args, ValueEnum};

/// Store options, shared by every binary that opens the catalog. Global: a binary with
/// subcommands (`admin-api tokens list`) takes them after the subcommand as well as before it.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// `postgres://…` for PostgreSQL, or `sqlite://PATH` for the embedded store (created if missing).
    /// The variable's value is never shown in `--help`: it may hold the database's password.
    #[arg(
        long,
        env = "CATALOG_DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://catalog.db",
        global = true
    )]
    pub database_url: String,

    /// Whether sync starts on or off for a tenant or supplier seen for the first time.
    #[arg(long, env = "CATALOG_DEFAULT_SYNC", value_enum, default_value_t = Switch::On, global = true)]
    pub default_sync: Switch,

    /// How far a supplier clock may run ahead before its timestamps are clamped, in seconds.
    #[arg(long, env = "CATALOG_MAX_CLOCK_SKEW_SECS", default_value_t = 300, global = true)]
    pub max_clock_skew_secs: u32,

    /// PostgreSQL only: how many offers (about 0.5 KB each) the process remembers
    /// between batches instead of reading them again; 0 reads every batch's offers. Safe
    /// with several workers: every offer write checks the revision it was planned from.
    #[arg(long, env = "CATALOG_OFFER_CACHE_SIZE", default_value_t = catalog_postgres::DEFAULT_OFFER_CACHE_CAPACITY, global = true)]
    pub offer_cache_size: usize,

    /// PostgreSQL only: connections the process keeps to the database at most. By default 8
    /// (batches, reads, housekeeping) plus 2 per sales channel (each channel's publisher
    /// claims and records in two lanes); an operation waits for a free one.
    #[arg(long, env = "CATALOG_DB_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub db_max_connections: Option<u32>,

    /// PostgreSQL only: the server cancels a statement running longer than this, in
    /// milliseconds (retried as `transaction_timeout`). At least 1: PostgreSQL reads 0 as no
    /// limit at all.
    #[arg(long, env = "CATALOG_DB_STATEMENT_TIMEOUT_MS", default_value_t = 30_000, value_parser = at_least_one_ms(), global = true)]
    pub db_statement_timeout_ms: u64,

    /// PostgreSQL only: the server stops waiting for a lock after this long, in milliseconds
    /// (retried as `transaction_timeout`). At least 1: PostgreSQL reads 0 as waiting for ever.
    #[arg(long, env = "CATALOG_DB_LOCK_TIMEOUT_MS", default_value_t = 10_000, value_parser = at_least_one_ms(), global = true)]
    pub db_lock_timeout_ms: u64,

    /// PostgreSQL only: the worker gives up on a whole store operation (a batch's transaction,
    /// a claim, a read) after this long, in milliseconds, even when the database never answers
    /// (a black-holed connection); retried as `transaction_timeout`. At least 1: 0 would fail
    /// every operation at once.
    #[arg(long, env = "CATALOG_DB_TRANSACTION_TIMEOUT_MS", default_value_t = 60_000, value_parser = at_least_one_ms(), global = true)]
    pub db_transaction_timeout_ms: u64,
}

/// The parser of the store's timeouts: whole milliseconds, at least 1 (a refusal names the
/// flag and its variable).
fn at_least_one_ms() -> crate::options::NamingEnv<clap::builder::RangedU64ValueParser<u64>> {
    crate::options::naming_env(clap::value_parser!(u64).range(1..))
}

/// The store `url` names, for logs and messages: without a password (`user:***@`) and without
/// its query, which may carry one (`?…`).
pub fn shown_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((url, _)) => (url, "?…"),
        None => (url, ""),
    };
    let Some((scheme, rest)) = url.split_once("://") else { return format!("{url}{query}") };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(authority, path)| (authority, Some(path)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}:***@{host}")
        }
        _ => authority.to_owned(),
    };
    let path = path.map(|path| format!("/{path}")).unwrap_or_default();
    format!("{scheme}://{authority}{path}{query}")
}

impl StoreArgs {
    /// The store `--database-url` names, without a password ([`shown_url`]).
    pub fn shown_url(&self) -> String {
        shown_url(&self.database_url)
    }

    /// How far a supplier's clock may run ahead of receipt (`--max-clock-skew-secs`).
    pub fn clock(&self) -> ClockPolicy {
        ClockPolicy { max_skew: chrono::Duration::seconds(i64::from(self.max_clock_skew_secs)) }
    }
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
    #[error("reading the worker's channels (--channels-file): {0}")]
    Channels(#[from] catalog_app::channels::ChannelsError),
}

/// Connections for batches, reads and housekeeping, and for each channel's publisher lanes.
fn default_max_connections(n_channels: usize) -> u32 {
    let per_channel = u32::try_from(n_channels).unwrap_or(u32::MAX).saturating_mul(2);
    PostgresOptions::default().max_connections.saturating_add(per_channel)
}

/// Opens the store `args` names, applying migrations, queuing item changes for `channels`.
pub async fn open_store(args: &StoreArgs, channels: Vec<ChannelRoute>) -> Result<Arc<dyn CatalogStore>, OpenError> {
    let config = StoreConfig { default_sync_enabled: args.default_sync == Switch::On, channels, clock: args.clock() };
    let url = args.database_url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PostgresOptions {
            max_connections: args.db_max_connections.unwrap_or_else(|| default_max_connections(config.channels.len())),
            offer_cache_capacity: args.offer_cache_size,
            statement_timeout: Duration::from_millis(args.db_statement_timeout_ms),
            lock_timeout: Duration::from_millis(args.db_lock_timeout_ms),
            transaction_timeout: Duration::from_millis(args.db_transaction_timeout_ms),
            ..PostgresOptions::default()
        };
        let store = PostgresStore::connect(url, config, options)
            .await
            .map_err(|error| OpenError::Store { backend: "PostgreSQL", error })?;
        tracing::info!(store = %shown_url(url), "store opened");
        Ok(Arc::new(store))
    } else if url.starts_with("sqlite:") {
        let store =
            SqliteStore::connect(url, config).await.map_err(|error| OpenError::Store { backend: "SQLite", error })?;
        tracing::info!(store = %shown_url(url), "store opened");
        Ok(Arc::new(store))
    } else {
        Err(OpenError::Url(shown_url(url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        store: StoreArgs,
    }

    #[test]
    fn a_store_is_shown_without_its_password() {
        let shown: Vec<String> = [
            "postgres://catalog:s3cr3t@db.internal:5432/catalog?sslmode=require&password=again",
            "postgresql://catalog@127.0.0.1/test",
            "postgres://:only-a-password@host/db",
            "sqlite://catalog.db",
            "sqlite:///var/lib/catalog/catalog.db",
            "mysql:/wrong",
        ]
        .iter()
        .map(|url| shown_url(url))
        .collect();
        assert_eq!(
            shown,
            [
                "postgres://catalog:***@db.internal:5432/catalog?…",
                "postgresql://catalog@127.0.0.1/test",
                "postgres://:***@host/db",
                "sqlite://catalog.db",
                "sqlite:///var/lib/catalog/catalog.db",
                "mysql:/wrong",
            ]
        );
    }

    #[test]
    fn each_channel_adds_its_publisher_lanes_to_the_pool_unless_told() {
        assert_eq!(default_max_connections(0), 8);
        assert_eq!(default_max_connections(5), 18);
        let told = Cli::try_parse_from(["worker", "--db-max-connections", "40"]).expect("valid");
        assert_eq!(told.store.db_max_connections, Some(40));
        let error = Cli::try_parse_from(["worker", "--db-max-connections", "0"]).expect_err("no connections");
        assert!(error.to_string().contains("--db-max-connections"), "{error}");
    }

    /// A timeout of 0 is no timeout to PostgreSQL (statements, locks), or a store that fails
    /// every operation at once (the transaction timeout): refused, the flag and its variable
    /// named.
    #[test]
    fn a_store_timeout_of_zero_is_refused() {
        let defaults = Cli::try_parse_from(["worker"]).expect("the defaults");
        let timeouts = |store: &StoreArgs| {
            (store.db_statement_timeout_ms, store.db_lock_timeout_ms, store.db_transaction_timeout_ms)
        };
        assert_eq!(timeouts(&defaults.store), (30_000, 10_000, 60_000));
        for (flag, variable) in [
            ("--db-statement-timeout-ms", "CATALOG_DB_STATEMENT_TIMEOUT_MS"),
            ("--db-lock-timeout-ms", "CATALOG_DB_LOCK_TIMEOUT_MS"),
            ("--db-transaction-timeout-ms", "CATALOG_DB_TRANSACTION_TIMEOUT_MS"),
        ] {
            let error = Cli::try_parse_from(["worker", flag, "0"]).expect_err("0 is refused").to_string();
            assert!(error.contains(flag) && error.contains(variable), "{error}");
            Cli::try_parse_from(["worker", flag, "1"]).expect("1 ms is a timeout");
        }
    }
}
