//! Command-line options: every option is a flag and a `CATALOG_*` environment variable.

use std::path::PathBuf;
use std::time::Duration;

use catalog_app::channels::{PublishSettings, StorefrontSettings};
use catalog_cli::{LogFormat, StoreArgs, Switch};
use catalog_publish::Secret;
use clap::{Args, Parser};

/// Consumes supplier inventory events, applies them to the catalog in batches, and publishes
/// every item whose quantity changed.
#[derive(Debug, Clone, Parser)]
#[command(name = "sync-worker", version, about)]
pub struct WorkerArgs {
    /// Where events come from: `kafka`, `file:PATH` (NDJSON, one contract message per line),
    /// or `-` for NDJSON on standard input. A file source exits once everything is applied
    /// and published; re-running it resumes where it stopped.
    #[arg(long, env = "CATALOG_SOURCE", value_parser = parse_source)]
    pub source: SourceSpec,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// A batch is applied when it holds this many events.
    #[arg(long, env = "CATALOG_BATCH_SIZE", default_value_t = 5_000)]
    pub batch_size: usize,

    /// A batch is applied when its oldest event has waited this long, in milliseconds.
    #[arg(long, env = "CATALOG_BATCH_MAX_WAIT_MS", default_value_t = 50)]
    pub batch_max_wait_ms: u64,

    /// Address for `/metrics` (Prometheus), `/healthz` and `/readyz`; `off` to disable.
    #[arg(long, env = "CATALOG_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,

    #[command(flatten)]
    pub publish: PublishArgs,

    /// Log format on standard error.
    #[arg(long, env = "CATALOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl WorkerArgs {
    pub fn batch_max_wait(&self) -> Duration {
        Duration::from_millis(self.batch_max_wait_ms)
    }
}

/// Where changed items are published. Without a storefront URL or channels file, the `log`
/// publisher writes them to standard output.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// `off`: this worker applies and queues publishes but sends none; workers run with
    /// `on` (the same database and channels) drain the outbox. Splits applying from
    /// publishing across processes.
    #[arg(long = "publish", env = "CATALOG_PUBLISH", value_enum, default_value_t = Switch::On)]
    pub mode: Switch,

    /// Base URL of the storefront cache-bust API (`POST {url}/v1/tenants/{tenant}/items/{item}/invalidate`).
    #[arg(long, env = "CATALOG_STOREFRONT_URL")]
    pub storefront_url: Option<String>,

    /// Bearer token for the storefront. Prefer the environment variable: flags show in `ps`.
    #[arg(long, env = "CATALOG_STOREFRONT_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub storefront_token: Option<Secret>,

    /// Requests per second to the storefront at most.
    #[arg(long, env = "CATALOG_STOREFRONT_RATE", default_value_t = 50)]
    pub storefront_rate: u32,

    /// Storefront requests in flight at once.
    #[arg(long, env = "CATALOG_STOREFRONT_CONCURRENCY", default_value_t = 16)]
    pub storefront_concurrency: usize,

    /// How long claimed publishes stay reserved for this worker, in milliseconds; after a
    /// crash, they are sent again once it has passed.
    #[arg(long, env = "CATALOG_PUBLISH_LEASE_MS", default_value_t = 60_000)]
    pub publish_lease_ms: u64,

    /// An item is published once its newest version has waited this long, in milliseconds,
    /// so a burst of updates to it becomes one call; 0 publishes at once.
    #[arg(long, env = "CATALOG_PUBLISH_SETTLE_MS", default_value_t = 50)]
    pub publish_settle_ms: u64,

    /// …but never later than this after its oldest unpublished version was queued, in
    /// milliseconds, however often it changes: a hot item is never starved.
    #[arg(long, env = "CATALOG_PUBLISH_MAX_WAIT_MS", default_value_t = 250)]
    pub publish_max_wait_ms: u64,

    /// JSON file of further sales channels: `[{"name": "shopify", "base_url": "https://…",
    /// "token_env": "SHOPIFY_TOKEN", "requests_per_second": 5, "concurrency": 2}]`. Tokens are
    /// read from the named environment variables, never from the file.
    #[arg(long, env = "CATALOG_CHANNELS_FILE")]
    pub channels_file: Option<PathBuf>,
}

impl PublishArgs {
    /// The plain settings the application layer takes.
    pub fn settings(&self) -> PublishSettings {
        PublishSettings {
            storefront: self.storefront_url.as_ref().map(|url| StorefrontSettings {
                base_url: url.clone(),
                token: self.storefront_token.clone(),
                requests_per_second: self.storefront_rate,
                concurrency: self.storefront_concurrency,
            }),
            channels_file: self.channels_file.clone(),
            lease: Duration::from_millis(self.publish_lease_ms),
            settle: Duration::from_millis(self.publish_settle_ms),
            max_wait: Duration::from_millis(self.publish_max_wait_ms),
        }
    }
}

/// Kafka options, used with `--source kafka`.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, `host:port[,host:port…]`.
    #[arg(long, env = "CATALOG_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,

    /// Topic of supplier inventory events.
    #[arg(long, env = "CATALOG_TOPIC", default_value = "supplier.inventory.v1")]
    pub topic: String,

    /// Consumer group; workers in one group split the partitions.
    #[arg(long, env = "CATALOG_GROUP", default_value = "catalog-sync")]
    pub group: String,

    /// How long the group waits for a silent member before moving its partitions, in milliseconds.
    #[arg(long, env = "CATALOG_KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub kafka_session_timeout_ms: u64,

    /// Longest a fetch waits at the broker for messages, in milliseconds: lower gets events
    /// from a quiet topic sooner, at the cost of more fetch requests (and a broker that
    /// answers only at the end of the wait serves one response per wait).
    #[arg(long, env = "CATALOG_KAFKA_FETCH_WAIT_MS", default_value_t = 25)]
    pub kafka_fetch_wait_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Kafka,
    File(PathBuf),
    Stdin,
}

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}

fn parse_source(value: &str) -> Result<SourceSpec, String> {
    match value {
        "kafka" => Ok(SourceSpec::Kafka),
        "-" => Ok(SourceSpec::Stdin),
        _ => match value.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(SourceSpec::File(PathBuf::from(path))),
            _ => Err(format!("expected `kafka`, `file:PATH` or `-`, got {value:?}")),
        },
    }
}
