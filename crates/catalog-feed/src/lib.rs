//! The pull source: supplier inventory feeds (`supplier-feed-api.md`) pulled on a schedule
//! into the same source port as Kafka and files (`catalog_app::BatchSink`). Each record
//! becomes an `inventory.updated` event with the contract's deterministic event id
//! (`record`), each page one batch whose checkpoint is the window's cursor (`pull`, `window`),
//! fetched by a client that follows the contract's error table (`client`) and reads no body
//! past its cap (`body`), a pass stopped when its paging would never end (`paging`), a
//! failed run classed, held and recorded as a pull dead letter (`failure`). Feeds come from a feeds file (`config`) into the store
//! (`catalog_store::FeedStore`); `schedule` says when each mode is due (incrementals at the
//! feed's `cadence`), with an injected clock;
//! `refresh` is the weekly full refresh. The source runs each feed's loop (`scheduled`), or
//! what is due once (`once`).

pub mod body;
pub mod cadence;
pub mod client;
pub mod config;
mod failure;
mod once;
pub mod paging;
pub mod pull;
pub mod record;
pub mod refresh;
pub mod schedule;
mod scheduled;
pub mod verdict;
pub mod window;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use catalog_app::{BatchSink, Metrics};
use catalog_store::{FeedKey, FeedSettings, FeedStore, StoreError, StoredFeed};
use chrono::{Duration, NaiveTime};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use client::{classify_response, FeedClient, FeedToken, PullError, RetrySettings, Verdict};
pub use config::{parse_feeds, read_feeds_file, FeedsFileError};
pub use failure::{JobKind, RunError};
pub use once::{OnceReport, OnceScope};
pub use pull::{refresh_source_name, source_name, FeedRun};
pub use refresh::RefreshReport;
pub use schedule::{Clock, Hold, JumpingClock, Plan, SystemClock, Work};
pub use window::{Window, WindowCursor};

/// Looks a feed's token up by the name of its variable (the environment, in production).
pub type TokenLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Tokens from the process environment.
pub fn tokens_from_environment() -> TokenLookup {
    Arc::new(|name| std::env::var(name).ok())
}

/// How the pull source pulls, whatever the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSettings {
    /// Records per page asked for (the contract allows 1 to 1,000).
    pub page_size: u32,
    /// Feeds pulled at once at most; the others wait for a slot, never for one another.
    pub max_parallel_feeds: usize,
    /// How far an incremental window reaches back before the end of the last one.
    pub overlap: Duration,
    pub retry: RetrySettings,
    /// Requests per second for feeds that do not set their own; `None`: no limit.
    pub default_requests_per_second: Option<u32>,
    /// How long a feed whose run failed waits before it is tried again (scheduled mode;
    /// `--feed-failure-hold-seconds`), or longer if its supplier asked (`RunError::hold`).
    pub failure_hold: Duration,
    /// How often a feed switched off (or not readable) is looked at again (scheduled mode):
    /// an operator's switch takes effect within this long.
    pub switch_poll: Duration,
    /// Records per applied batch at most: the pages fetched while one batch is made durable
    /// are applied next as one (at least one page each); also a full refresh's corrections
    /// per batch.
    pub batch_size: usize,
    /// Local time of the weekly full refresh (on Sunday).
    pub full_refresh_time: NaiveTime,
}

impl Default for PullSettings {
    fn default() -> Self {
        Self {
            page_size: 1_000,
            max_parallel_feeds: 8,
            overlap: window::DEFAULT_OVERLAP,
            retry: RetrySettings::default(),
            default_requests_per_second: None,
            failure_hold: Duration::minutes(5),
            switch_poll: Duration::minutes(1),
            batch_size: 5_000,
            full_refresh_time: NaiveTime::from_hms_opt(2, 0, 0).expect("02:00 exists"),
        }
    }
}

/// Why the pull source could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum FeedSourceError {
    #[error("feed store: {0}")]
    Store(#[from] StoreError),
    #[error("building the HTTP client: {0}")]
    Client(String),
    #[error("no enabled feed matches {0} (see GET /v1/feeds; a feed switched off is not pulled)")]
    NoSuchFeed(String),
    #[error("invalid backfill range: {0}")]
    InvalidRange(String),
    /// A feed's run failed in a way no retry mends (its batch refused for good): every feed
    /// stops, and the worker with them.
    #[error("feed {feed}: {error}")]
    Fatal { feed: String, error: RunError },
}

/// A tenant's feeds, or one feed: `TENANT` or `TENANT/SUPPLIER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSelector {
    pub tenant: catalog_core::TenantId,
    pub supplier: Option<catalog_core::SupplierId>,
}

impl FeedSelector {
    /// Whether the feed `key` names is selected.
    pub fn selects(&self, key: &FeedKey) -> bool {
        key.tenant == self.tenant && self.supplier.as_ref().is_none_or(|supplier| *supplier == key.supplier)
    }
}

impl std::str::FromStr for FeedSelector {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (tenant, supplier) = match value.split_once('/') {
            Some((tenant, supplier)) => (tenant, Some(supplier)),
            None => (value, None),
        };
        let tenant = catalog_core::TenantId::parse(tenant).map_err(|error| format!("tenant {error}"))?;
        let supplier =
            supplier.map(catalog_core::SupplierId::parse).transpose().map_err(|error| format!("supplier {error}"))?;
        Ok(FeedSelector { tenant, supplier })
    }
}

impl std::fmt::Display for FeedSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.supplier {
            Some(supplier) => write!(f, "{}/{supplier}", self.tenant),
            None => write!(f, "{}", self.tenant),
        }
    }
}

/// The pull source: every enabled feed of the store, pulled into `sink`.
#[derive(Clone)]
pub struct FeedSource {
    settings: PullSettings,
    store: Arc<dyn FeedStore>,
    sink: Arc<dyn BatchSink>,
    metrics: Metrics,
    tokens: TokenLookup,
    http: reqwest::Client,
}

impl std::fmt::Debug for FeedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedSource").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl FeedSource {
    pub fn new(
        settings: PullSettings,
        store: Arc<dyn FeedStore>,
        sink: Arc<dyn BatchSink>,
        metrics: Metrics,
        tokens: TokenLookup,
    ) -> Result<FeedSource, FeedSourceError> {
        let http = reqwest::Client::builder()
            .connect_timeout(StdDuration::from_secs(10))
            .build()
            .map_err(|error| FeedSourceError::Client(error.to_string()))?;
        Ok(FeedSource { settings, store, sink, metrics, tokens, http })
    }

    /// Stores the feeds of a feeds file (new ones created, known ones' settings updated).
    pub async fn bootstrap(&self, feeds: &[FeedSettings]) -> Result<(), FeedSourceError> {
        for feed in feeds {
            self.store.upsert_feed(feed).await?;
        }
        tracing::info!(n_feeds = feeds.len(), "feeds bootstrapped from the feeds file");
        Ok(())
    }

    async fn enabled_feeds(&self) -> Result<Vec<StoredFeed>, FeedSourceError> {
        Ok(self.store.feeds().await?.into_iter().filter(|feed| feed.settings.sync_enabled).collect())
    }

    /// The enabled feeds `only` selects (all when empty); a selector no enabled feed matches
    /// is an error, so a typo never passes for "nothing to do".
    async fn selected_feeds(&self, only: &[FeedSelector]) -> Result<Vec<StoredFeed>, FeedSourceError> {
        let mut feeds = self.enabled_feeds().await?;
        if let Some(unmatched) =
            only.iter().find(|selector| !feeds.iter().any(|feed| selector.selects(&feed.settings.key)))
        {
            return Err(FeedSourceError::NoSuchFeed(unmatched.to_string()));
        }
        if !only.is_empty() {
            feeds.retain(|feed| only.iter().any(|selector| selector.selects(&feed.settings.key)));
        }
        Ok(feeds)
    }

    /// Opens a run of one feed: its token, client and checkpoint.
    async fn open(&self, feed: StoredFeed) -> Result<FeedRun, RunError> {
        let settings = &feed.settings;
        let token = match (self.tokens)(&settings.token_env).as_deref().and_then(FeedToken::from_variable) {
            Some(token) if token.is_valid_header() => Some(token),
            Some(_) => return Err(RunError::Pull(PullError::InvalidToken(settings.token_env.clone()))),
            None => return Err(RunError::Pull(PullError::NoToken(settings.token_env.clone()))),
        };
        let client = FeedClient::new(
            self.http.clone(),
            &settings.base_url,
            token,
            settings.requests_per_second.or(self.settings.default_requests_per_second),
            self.settings.retry,
            self.settings.page_size,
            settings.key.to_string(),
            self.metrics.clone(),
        );
        FeedRun::open(
            feed,
            client,
            Arc::clone(&self.sink),
            Arc::clone(&self.store),
            self.metrics.clone(),
            self.settings.overlap,
            self.settings.batch_size,
        )
        .await
    }

    /// Schedules every feed until `shutdown`: each feed's own loop (`schedule`), its work
    /// taking one of `max_parallel_feeds` slots at a time, so a slow or failing feed holds
    /// back no other. A feed switched off (by an operator, through the admin API) does no
    /// work until it is switched on again: its loop reads the switch before each piece of
    /// work, and every `switch_poll` while it is off. The store's feeds are read again every
    /// `switch_poll` of wall time: a feed created meanwhile (another process's `--feeds-file`)
    /// is scheduled, with a manual run asked for it, without a restart.
    pub async fn run(&self, clock: Arc<dyn Clock>, shutdown: CancellationToken) -> Result<(), FeedSourceError> {
        let feeds = self.store.feeds().await?;
        let n_enabled = feeds.iter().filter(|feed| feed.settings.sync_enabled).count();
        tracing::info!(n_feeds = feeds.len(), n_enabled, "scheduling feeds");
        let permits = Arc::new(Semaphore::new(self.settings.max_parallel_feeds.max(1)));
        // Stops every feed once one fails fatally.
        let stop = shutdown.child_token();
        let mut loops: JoinSet<Result<(), FeedSourceError>> = JoinSet::new();
        let mut scheduled: HashSet<FeedKey> = HashSet::new();
        let reread =
            self.settings.switch_poll.to_std().unwrap_or(StdDuration::from_secs(60)).max(StdDuration::from_millis(50));
        let mut feeds = Some(feeds);
        let mut first_read = true;
        let mut outcome = Ok(());
        while !stop.is_cancelled() {
            let known = match feeds.take() {
                Some(feeds) => feeds,
                None => match self.store.feeds().await {
                    Ok(feeds) => feeds,
                    Err(error) => {
                        tracing::warn!(%error, "reading the feeds again failed; the scheduled ones go on");
                        Vec::new()
                    }
                },
            };
            for feed in known {
                if !scheduled.insert(feed.settings.key.clone()) {
                    continue;
                }
                if !first_read {
                    tracing::info!(feed = %feed.settings.key, "a feed created meanwhile is scheduled");
                }
                let (source, permits, clock, stop) =
                    (self.clone(), Arc::clone(&permits), Arc::clone(&clock), stop.clone());
                let name = feed.settings.key.to_string();
                loops.spawn(async move {
                    source
                        .feed_loop(feed, clock, permits, stop)
                        .await
                        .map_err(|error| FeedSourceError::Fatal { feed: name, error })
                });
            }
            first_read = false;
            tokio::select! {
                Some(joined) = loops.join_next() => {
                    if let Err(error) = feed_loop_ended(joined) {
                        stop.cancel();
                        outcome = outcome.and(Err(error));
                    }
                }
                () = tokio::time::sleep(reread) => {}
                () = stop.cancelled() => {}
            }
        }
        while let Some(joined) = loops.join_next().await {
            if let Err(error) = feed_loop_ended(joined) {
                outcome = outcome.and(Err(error));
            }
        }
        outcome
    }
}

/// How a feed's loop ended: a fatal failure stops every feed.
fn feed_loop_ended(joined: Result<Result<(), FeedSourceError>, tokio::task::JoinError>) -> Result<(), FeedSourceError> {
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            tracing::error!(%error, "a feed failed fatally: stopping every feed");
            Err(error)
        }
        Err(error) => {
            tracing::error!(%error, "a feed's scheduling task failed");
            Ok(())
        }
    }
}
