//! Command-line options: every option is a flag and a `CATALOG_*` environment variable.

mod kafka_options;

use std::path::PathBuf;
use std::time::Duration;

use catalog_app::channels::{PublishSettings, StorefrontSettings};
use catalog_app::publishing::HealSettings;
use catalog_app::signals::{SamplerSettings, TracerSettings};
use catalog_app::ReconcileSettings;
use catalog_cli::options::naming_env;
use catalog_cli::{LogFormat, SignalArgs, StoreArgs, Switch};
use catalog_kafka::StartWithoutCheckpoint;
use catalog_publish::Secret;
use clap::{Args, Parser};

pub use kafka_options::{KafkaOptions, KafkaOptionsParser};

/// The default of `--max-bytes-in-flight`: 64 MiB, 4 MiB per partition with 16 partitions.
pub const DEFAULT_MAX_BYTES_IN_FLIGHT: usize = 64 << 20;

/// Consumes supplier inventory events, applies them to the catalog in batches, and publishes
/// every item whose quantity changed.
#[derive(Debug, Clone, Parser)]
#[command(name = "sync-worker", version, about)]
pub struct WorkerArgs {
    /// Where events come from: `kafka`, `file:PATH` (NDJSON, one contract message per line),
    /// `-` for NDJSON on standard input, or `pull` for supplier feeds pulled on a schedule
    /// (`--feeds-file`, `--once`). A file source exits once everything is applied and
    /// published; re-running it resumes where it stopped.
    #[arg(long, env = "CATALOG_SOURCE", value_parser = parse_source)]
    pub source: SourceSpec,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub feeds: FeedArgs,

    /// A batch is applied when it holds this many events (at least 1).
    #[arg(long, env = "CATALOG_BATCH_SIZE", default_value_t = 5_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub batch_size: usize,

    /// A batch is applied when its oldest event has waited this long, in milliseconds.
    #[arg(long, env = "CATALOG_BATCH_MAX_WAIT_MS", default_value_t = 20)]
    pub batch_max_wait_ms: u64,

    /// Message bytes the worker holds in pending batches at most, shared evenly by the
    /// partitions it reads: a partition's batch is applied early once it holds its share
    /// (large messages make smaller batches). Kafka's prefetch (1 MB per partition) comes on top.
    #[arg(long, env = "CATALOG_MAX_BYTES_IN_FLIGHT", default_value_t = DEFAULT_MAX_BYTES_IN_FLIGHT)]
    pub max_bytes_in_flight: usize,

    /// Address for `/metrics` (Prometheus), `/healthz` and `/readyz`; `off` to disable.
    #[arg(long, env = "CATALOG_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,

    #[command(flatten)]
    pub publish: PublishArgs,

    #[command(flatten)]
    pub signals: WorkerSignalArgs,

    #[command(flatten)]
    pub retention: crate::retention::RetentionArgs,

    /// Log format on standard error.
    #[arg(long, env = "CATALOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl WorkerArgs {
    pub fn batch_max_wait(&self) -> Duration {
        Duration::from_millis(self.batch_max_wait_ms)
    }

    /// The pull source's settings: the feed options, and `--batch-size` as every source takes it.
    pub fn pull_settings(&self) -> catalog_feed::PullSettings {
        catalog_feed::PullSettings { batch_size: self.batch_size, ..self.feeds.settings() }
    }
}

/// Where changed items are published. Without a storefront URL or channels file, the `log`
/// publisher writes them to standard output.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// `off`: this worker applies and queues publishes but sends none; workers run with
    /// `on` (the same database and channels) drain the outbox. Splits applying from
    /// publishing across processes; an applying worker needs no channel credentials.
    #[arg(long = "publish", env = "CATALOG_PUBLISH", value_enum, default_value_t = Switch::On)]
    pub mode: Switch,

    /// Base URL of the storefront cache-bust API (`POST {url}/v1/tenants/{tenant}/items/{item}/invalidate`).
    #[arg(long, env = "CATALOG_STOREFRONT_URL", hide_env_values = true)]
    pub storefront_url: Option<String>,

    /// Bearer token for the storefront. Prefer the environment variable: flags show in `ps`.
    #[arg(long, env = "CATALOG_STOREFRONT_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub storefront_token: Option<Secret>,

    /// Requests per second to the storefront at most (at least 1).
    #[arg(long, env = "CATALOG_STOREFRONT_RATE", default_value_t = 50, value_parser = naming_env(clap::value_parser!(u32).range(1..)))]
    pub storefront_rate: u32,

    /// Storefront requests in flight at once (at least 1).
    #[arg(long, env = "CATALOG_STOREFRONT_CONCURRENCY", default_value_t = 16, value_parser = naming_env(clap::builder::RangedU64ValueParser::<usize>::new().range(1..)))]
    pub storefront_concurrency: usize,

    /// How long claimed publishes stay reserved for this worker, in milliseconds; after a
    /// crash, they are sent again once it has passed. A round that takes longer (a
    /// marketplace feed, waited for minutes) renews its claims every third of this. An item
    /// whose marketplace request went unanswered (a timeout, a lost connection) waits this
    /// long before it is sent again: the platform may still apply that request.
    #[arg(long, env = "CATALOG_PUBLISH_LEASE_MS", default_value_t = 60_000)]
    pub publish_lease_ms: u64,

    /// An item is published once its newest version has waited this long, in milliseconds,
    /// so a burst of updates to it becomes one call; 0 publishes at once.
    #[arg(long, env = "CATALOG_PUBLISH_SETTLE_MS", default_value_t = 10)]
    pub publish_settle_ms: u64,

    /// …but never later than this after its oldest unpublished version was queued, in
    /// milliseconds, however often it changes: a hot item is never starved.
    #[arg(long, env = "CATALOG_PUBLISH_MAX_WAIT_MS", default_value_t = 250)]
    pub publish_max_wait_ms: u64,

    /// Failures (5xx, 408, timeouts, dropped connections) an item version may have on a
    /// channel before it is dead-lettered; throttling (429) is not a failure. A channel in
    /// the channels file may set its own `max_attempts`.
    #[arg(long, env = "CATALOG_PUBLISH_MAX_ATTEMPTS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub publish_max_attempts: u32,

    /// JSON file of further sales channels, storefronts and marketplaces: `[{"name":
    /// "amazon-us", "adapter": {"kind": "amazon", "seller_id": "…", …, "refresh_token_env":
    /// "AMAZON_REFRESH_TOKEN"}, "stock": {"buffer": 2, "share_percent": 50}, "listings_file":
    /// "amazon.csv", "requests_per_second": 5}]` (README, "Sales channels"). Credentials are
    /// read from the named environment variables, never from the file; the file is checked
    /// whole at start.
    #[arg(long, env = "CATALOG_CHANNELS_FILE")]
    pub channels_file: Option<PathBuf>,

    /// Seconds between auto-heal passes: each open publish dead letter that is not
    /// quarantined gets its item's current version queued again on its channel, so an
    /// outage leaves nothing stale once the channel is back; 0 turns auto-heal off.
    #[arg(long, env = "CATALOG_DEAD_LETTER_HEAL_INTERVAL_SECS", default_value_t = 300)]
    pub dead_letter_heal_interval_secs: u64,

    /// Heal rounds a dead letter gets: one still failing after them is quarantined (healed
    /// no more, counted in `catalog_dead_letters_quarantined`) for an operator.
    #[arg(long, env = "CATALOG_DEAD_LETTER_MAX_HEALS", default_value_t = 5)]
    pub dead_letter_max_heals: u32,

    /// Reconciliation: read back what each HTTP channel shows (a storefront's list endpoint, a
    /// marketplace's read of the listings asked about) and correct every drift from what it
    /// accepted with a new item version. `off` trusts the channels.
    #[arg(long = "reconcile", env = "CATALOG_RECONCILE", value_enum, default_value_t = Switch::On)]
    pub reconcile: Switch,

    /// Milliseconds between the end of one reconciliation sweep and the start of the next.
    #[arg(long, env = "CATALOG_RECONCILE_INTERVAL_MS", default_value_t = 2_000)]
    pub reconcile_interval_ms: u64,

    /// Items per read-back page (the contract allows 1 to 1,000).
    #[arg(long, env = "CATALOG_RECONCILE_PAGE_SIZE", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub reconcile_page_size: u64,

    /// Read-back requests per second at most, per channel and per worker (several workers each
    /// read every channel back: reconcile on one), on top of the publish rate (a
    /// marketplace with a lower documented read rate is read slower).
    #[arg(long, env = "CATALOG_RECONCILE_RATE", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub reconcile_rate: u32,
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
            max_attempts: self.publish_max_attempts,
        }
    }

    /// How dead letters heal on their own.
    pub fn reconcile_settings(&self) -> ReconcileSettings {
        ReconcileSettings {
            interval: Duration::from_millis(self.reconcile_interval_ms),
            page_size: usize::try_from(self.reconcile_page_size).unwrap_or(1_000),
            requests_per_second: self.reconcile_rate,
            ..ReconcileSettings::default()
        }
    }

    pub fn heal_settings(&self) -> HealSettings {
        HealSettings {
            interval: Duration::from_secs(self.dead_letter_heal_interval_secs),
            max_heals: self.dead_letter_max_heals,
        }
    }
}

/// The launch signals inside the worker: the sampler, the tracer and the progress reports
/// (which every worker sends, whatever `--signals` says).
#[derive(Debug, Clone, Args)]
pub struct WorkerSignalArgs {
    /// `on`: judge the launch signals every interval (samples, gauges) and trace items against
    /// the journal; `off` for workers that only apply. Source progress (queue lag) is
    /// reported either way.
    #[arg(long = "signals", env = "CATALOG_SIGNALS", value_enum, default_value_t = Switch::On)]
    pub signals_mode: Switch,

    /// Seconds between two judgements of every tenant's signals (each kept as a sample).
    #[arg(long, env = "CATALOG_SIGNALS_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub signals_interval_secs: u64,

    /// Days signal samples are kept.
    #[arg(long, env = "CATALOG_SIGNALS_KEEP_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub signals_keep_days: u32,

    /// Seconds between two reports of each source partition's progress (queue lag); keep it
    /// well under `--stall-after-secs`.
    #[arg(long, env = "CATALOG_PROGRESS_INTERVAL_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub progress_interval_secs: u64,

    /// Seconds between two rounds of the tracer.
    #[arg(long, env = "CATALOG_TRACE_INTERVAL_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub trace_interval_secs: u64,

    /// Items changed since their last check that one tracer round re-derives at most (this or
    /// `--trace-sweep-per-round` may be 0, not both).
    #[arg(long, env = "CATALOG_TRACE_CHANGED_PER_ROUND", default_value_t = 500)]
    pub trace_changed_per_round: usize,

    /// Items of the rolling sweep of the whole catalog one tracer round re-derives.
    #[arg(long, env = "CATALOG_TRACE_SWEEP_PER_ROUND", default_value_t = 200)]
    pub trace_sweep_per_round: usize,

    #[command(flatten)]
    pub targets: SignalArgs,
}

impl WorkerSignalArgs {
    pub fn sampler_settings(&self) -> SamplerSettings {
        SamplerSettings {
            interval: Duration::from_secs(self.signals_interval_secs),
            signals: self.targets.settings(),
            keep: Duration::from_secs(u64::from(self.signals_keep_days) * 86_400),
        }
    }

    pub fn tracer_settings(&self, clock: catalog_core::ClockPolicy) -> TracerSettings {
        TracerSettings {
            interval: Duration::from_secs(self.trace_interval_secs),
            changed_per_round: self.trace_changed_per_round,
            sweep_per_round: self.trace_sweep_per_round,
            clock,
        }
    }

    pub fn progress_interval(&self) -> Duration {
        Duration::from_secs(self.progress_interval_secs)
    }
}

/// Supplier feed options, used with `--source pull`; the ones only a pull reads (`--feeds-file`,
/// `--once` and what goes with it) are refused with another source.
#[derive(Debug, Clone, Args)]
pub struct FeedArgs {
    /// TOML file of feeds (`[[feed]]` with `tenant`, `supplier`, `base_url`, `token_env`,
    /// `go_live_date`, and optionally `sync_frequency_hours`, `timezone`, `run_times`,
    /// `requests_per_second`, `sync_enabled`), stored at start (new feeds created, known
    /// ones' settings updated). Tokens are read from the named environment variables, never
    /// from the file. Without it, the feeds already in the store are pulled.
    #[arg(long, env = "CATALOG_FEEDS_FILE")]
    pub feeds_file: Option<PathBuf>,

    /// Pull what is due now (the unfinished window, the incremental window, every backfill
    /// chunk), publish it, and exit: for cron; non-zero if a feed failed, after publishing
    /// what the others pulled. Without it, feeds are pulled on their schedules until a signal.
    #[arg(long, env = "CATALOG_FEED_ONCE")]
    pub once: bool,

    /// With `--once`: also run a full refresh of each feed (its snapshot diffed against the
    /// stored offers, every difference corrected).
    #[arg(long, env = "CATALOG_FEED_FULL", requires = "once")]
    pub full: bool,

    /// With `--once`: only these feeds, `TENANT` (its feeds) or `TENANT/SUPPLIER` (one feed);
    /// repeat it or separate with commas. A manual run: `--once --feed canary/acme` pulls what
    /// is due of that feed now, `--once --full --feed canary/acme` forces its full refresh.
    #[arg(long = "feed", env = "CATALOG_FEED_ONLY", requires = "once", value_delimiter = ',')]
    pub only: Vec<catalog_feed::FeedSelector>,

    /// With `--once` and `--backfill-until`: pull `[SINCE, UNTIL)` again (RFC 3339 times) for
    /// the selected feeds, completed before or not, in 7-day chunks; records pulled again are
    /// duplicates. Asked for like a manual run through the admin API, then run.
    #[arg(long, env = "CATALOG_FEED_BACKFILL_SINCE", requires_all = ["once", "backfill_until"])]
    pub backfill_since: Option<chrono::DateTime<chrono::Utc>>,

    /// The end (exclusive) of `--backfill-since`'s range.
    #[arg(long, env = "CATALOG_FEED_BACKFILL_UNTIL", requires = "backfill_since")]
    pub backfill_until: Option<chrono::DateTime<chrono::Utc>>,

    /// Records per page asked of a feed (the contract allows 1 to 1,000).
    #[arg(long, env = "CATALOG_FEED_PAGE_SIZE", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub feed_page_size: u32,

    /// Feeds pulled at once at most; one slow feed takes one slot and delays no other.
    #[arg(long, env = "CATALOG_FEED_PARALLELISM", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub feed_parallelism: u64,

    /// Hours an incremental window reaches back before the end of the last one, so records a
    /// supplier stamps late are still pulled (as duplicates when they were not late).
    #[arg(long, env = "CATALOG_FEED_OVERLAP_HOURS", default_value_t = 24)]
    pub feed_overlap_hours: u32,

    /// Attempts at one page that failed (5xx, timeout, connection, garbage) before the run
    /// stops; it resumes at its last committed page at the next run.
    #[arg(long, env = "CATALOG_FEED_MAX_ATTEMPTS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    pub feed_max_attempts: u32,

    /// First wait before retrying a failed page, in milliseconds; doubled each time (to 30 s),
    /// with jitter.
    #[arg(long, env = "CATALOG_FEED_RETRY_INITIAL_MS", default_value_t = 500)]
    pub feed_retry_initial_ms: u64,

    /// How long one feed request may take, answer included, in milliseconds.
    #[arg(long, env = "CATALOG_FEED_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub feed_request_timeout_ms: u64,

    /// Requests per second to a feed that sets no `requests_per_second` of its own; 0 for
    /// no limit.
    #[arg(long, env = "CATALOG_FEED_RATE", default_value_t = 0)]
    pub feed_rate: u32,

    /// How often a feed switched off (through the admin API) is looked at again, in
    /// seconds: a switch takes effect within this long (scheduled mode; a feed switched off
    /// is also not pulled from its next piece of work on). The store's feeds are read again
    /// as often: a feed created meanwhile (another process's --feeds-file) is scheduled.
    #[arg(long, env = "CATALOG_FEED_SWITCH_POLL_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub feed_switch_poll_seconds: u32,

    /// How long a feed whose run failed waits before it is tried again, in seconds
    /// (scheduled mode), counted from the failure, or as long as its supplier asked if that is
    /// longer (a 429 whose Retry-After ended the run). The failure is a pull dead letter
    /// meanwhile. A manual run asked for after the failure does not wait for the hold, only
    /// for a supplier's Retry-After still in force.
    #[arg(long, env = "CATALOG_FEED_FAILURE_HOLD_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub feed_failure_hold_seconds: u32,
}

impl FeedArgs {
    /// The plain settings the pull source takes.
    pub fn settings(&self) -> catalog_feed::PullSettings {
        let defaults = catalog_feed::PullSettings::default();
        catalog_feed::PullSettings {
            page_size: self.feed_page_size,
            max_parallel_feeds: usize::try_from(self.feed_parallelism).unwrap_or(usize::MAX),
            overlap: chrono::Duration::hours(i64::from(self.feed_overlap_hours)),
            retry: catalog_feed::RetrySettings {
                max_attempts: self.feed_max_attempts,
                initial_backoff: Duration::from_millis(self.feed_retry_initial_ms),
                request_timeout: Duration::from_millis(self.feed_request_timeout_ms),
                ..defaults.retry
            },
            default_requests_per_second: (self.feed_rate > 0).then_some(self.feed_rate),
            switch_poll: chrono::Duration::seconds(i64::from(self.feed_switch_poll_seconds)),
            failure_hold: chrono::Duration::seconds(i64::from(self.feed_failure_hold_seconds)),
            ..defaults
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

    /// Where a partition the store has no checkpoint for starts: `earliest` (everything the
    /// broker holds; a new or restored database under a group that already read the topic
    /// reads it all again, and the store recognizes what it holds), `committed` (the group's
    /// committed offset, checked as a stored checkpoint is; the earliest where the group has
    /// none), or `latest` (the partition's end at start).
    #[arg(long, env = "CATALOG_KAFKA_START_WITHOUT_CHECKPOINT", value_enum, default_value_t = StartChoice::Earliest)]
    pub kafka_start_without_checkpoint: StartChoice,

    /// Another member's partition whose stored checkpoint has not moved for this long, in
    /// seconds, while messages wait on the broker is stalled: its member died without leaving
    /// the group (a broker that keeps such a member until the next rebalance, like tansu,
    /// would leave those messages unread). The worker then leaves and rejoins the group, so
    /// that the rebalance gives the partition to a live member. At least 1; the watch cannot
    /// be switched off (a few seconds would take a busy member's partition for stalled).
    #[arg(long, env = "CATALOG_KAFKA_STALLED_PARTITION_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub kafka_stalled_partition_secs: u64,

    /// A librdkafka setting, `key=value` (TLS and SASL: `security.protocol=SASL_SSL`,
    /// `sasl.mechanism=SCRAM-SHA-512`, `sasl.username=…`, `ssl.ca.location=…`); repeat the flag
    /// for several, each value taken whole, commas included (`ssl.cipher.suites=A,B`). A value
    /// `env:NAME` is read from the environment variable NAME: pass secrets that way, so they
    /// stay out of the command line. Only the keys are ever logged. In the environment
    /// variable, options are separated by commas (a value holding a comma goes through `env:`).
    /// Settings the worker's guarantees rest on, or that its own flags set, are refused. The
    /// variable's value is never shown in `--help`.
    #[arg(long = "kafka-option", env = "CATALOG_KAFKA_OPTIONS", hide_env_values = true, value_parser = KafkaOptionsParser)]
    pub kafka_options: Vec<KafkaOptions>,
}

/// `--kafka-start-without-checkpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartChoice {
    Earliest,
    Committed,
    Latest,
}

impl From<StartChoice> for StartWithoutCheckpoint {
    fn from(choice: StartChoice) -> Self {
        match choice {
            StartChoice::Earliest => StartWithoutCheckpoint::Earliest,
            StartChoice::Committed => StartWithoutCheckpoint::Committed,
            StartChoice::Latest => StartWithoutCheckpoint::Latest,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Kafka,
    Pull,
    File(PathBuf),
    Stdin,
}

impl std::fmt::Display for SourceSpec {
    /// As `--source` takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kafka => f.write_str("kafka"),
            Self::Pull => f.write_str("pull"),
            Self::File(path) => write!(f, "file:{}", path.display()),
            Self::Stdin => f.write_str("-"),
        }
    }
}

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value))
}

fn parse_source(value: &str) -> Result<SourceSpec, String> {
    match value {
        "kafka" => Ok(SourceSpec::Kafka),
        "pull" => Ok(SourceSpec::Pull),
        "-" => Ok(SourceSpec::Stdin),
        _ => match value.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(SourceSpec::File(PathBuf::from(path))),
            _ => Err(format!("expected `kafka`, `pull`, `file:PATH` or `-`, got {value:?}")),
        },
    }
}
