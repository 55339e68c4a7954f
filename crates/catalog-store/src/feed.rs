//! The feed role: supplier feeds the pull source reads (settings bootstrapped from a feeds
//! file, state kept per feed), the windows it completed, the failures it recorded for an
//! operator, and the drift its full refreshes found. Tokens are kept by reference only: the
//! name of the environment variable that holds one, never its value.

use async_trait::async_trait;
use catalog_core::{Sku, SupplierId, TenantId};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use crate::error::StoreError;

/// One feed: a supplier's inventory API as one tenant pulls it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FeedKey {
    pub tenant: TenantId,
    pub supplier: SupplierId,
}

impl FeedKey {
    /// The source a feed's records are journaled and checkpointed under:
    /// `feed:{tenant}/{supplier}`.
    pub fn source_name(&self) -> String {
        format!("feed:{self}")
    }

    /// The feed a pull dead letter is about: its subject is the key as `Display` writes it,
    /// `tenant/supplier`. `None` for a letter of another stage.
    pub fn of_pull_letter(letter: &crate::DeadLetter) -> Option<FeedKey> {
        if letter.stage != PULL_STAGE {
            return None;
        }
        let (tenant, supplier) = letter.subject.split_once('/')?;
        Some(FeedKey { tenant: TenantId::parse(tenant).ok()?, supplier: SupplierId::parse(supplier).ok()? })
    }
}

impl std::fmt::Display for FeedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.supplier)
    }
}

/// A feed's settings, as the feeds file (or an operator) gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedSettings {
    pub key: FeedKey,
    /// The feed API's base URL; requests go to `{base_url}/v1/inventory…`.
    pub base_url: String,
    /// The environment variable holding the bearer token: the token itself is never stored.
    pub token_env: String,
    /// The first day the feed's records count: backfill reaches back to its start.
    pub go_live_date: NaiveDate,
    pub sync_frequency_hours: u32,
    /// An IANA time zone name (`Europe/Berlin`): run times are local to it.
    pub timezone: String,
    /// Local times of day an incremental pull runs at.
    pub run_times: Vec<NaiveTime>,
    /// Requests per second to the feed at most; `None` leaves it to the pull source's default.
    pub requests_per_second: Option<u32>,
    pub sync_enabled: bool,
}

/// A feed as stored: its settings and what the pull source keeps about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFeed {
    pub settings: FeedSettings,
    /// When a window of it last completed.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Set by the first complete full refresh.
    pub initial_sync_completed: bool,
    pub last_full_refresh_at: Option<DateTime<Utc>>,
    /// The manual run an operator asked for and the worker has not run yet.
    pub run_request: Option<FeedRunRequest>,
    /// The supplier asked for no request before this (the last 429 whose `Retry-After` ended
    /// a run): no run, scheduled or manual, asks it anything before.
    pub supplier_hold_until: Option<DateTime<Utc>>,
}

/// What a manual run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum FeedRunKind {
    /// The incremental window due now, whatever the schedule says.
    Incremental,
    /// A full refresh now, whatever the week's schedule says.
    FullRefresh,
    /// The range `[since, until)` pulled again in backfill chunks, completed or not.
    Backfill { since: DateTime<Utc>, until: DateTime<Utc> },
}

impl FeedRunKind {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            FeedRunKind::Incremental => "incremental",
            FeedRunKind::FullRefresh => "full_refresh",
            FeedRunKind::Backfill { .. } => "backfill",
        }
    }

    /// The kind a stored name and range stand for.
    pub fn from_stored(
        name: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<FeedRunKind, StoreError> {
        match (name, since, until) {
            ("incremental", None, None) => Ok(FeedRunKind::Incremental),
            ("full_refresh", None, None) => Ok(FeedRunKind::FullRefresh),
            ("backfill", Some(since), Some(until)) if since < until => Ok(FeedRunKind::Backfill { since, until }),
            _ => Err(StoreError::Corrupt(format!("stored feed run request {name:?} {since:?}..{until:?}"))),
        }
    }

    /// The backfill range, if it is one.
    pub fn range(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        match self {
            FeedRunKind::Backfill { since, until } => (Some(*since), Some(*until)),
            _ => (None, None),
        }
    }
}

/// A manual run asked for, by whom and when (the time also names the request: the worker
/// clears only the one it ran).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedRunRequest {
    pub kind: FeedRunKind,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// Which mode pulled a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum WindowKind {
    /// The window since the last completed one, with an overlap, at a run time.
    Incremental,
    /// A gap since `go_live_date`, in chunks, at lower priority.
    Backfill,
}

impl WindowKind {
    /// The stored name (and metric label).
    pub fn as_str(&self) -> &'static str {
        match self {
            WindowKind::Incremental => "incremental",
            WindowKind::Backfill => "backfill",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<WindowKind> {
        [WindowKind::Incremental, WindowKind::Backfill].into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A window of a feed pulled to its end: every record with `since <= updated_at < until`
/// is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompletedWindow {
    pub kind: WindowKind,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    /// Records and pages its last pass pulled (a pass restarted by an expired cursor counts
    /// from the restart).
    pub n_records: u64,
    pub n_pages: u64,
    /// Windows this row stands for: 1 as pulled; more once compaction merged old ones
    /// (decision 0035), whose counts are then the sums.
    pub n_windows: u64,
    /// The `requested_at` of the manual run it was last pulled for (`None`: scheduled work,
    /// or merged by compaction): what a manual backfill resumed after a restart skips, told
    /// by the request's own stamp, never by comparing it with `completed_at` (the admin
    /// service's clock against the worker's; decision 0018).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<DateTime<Utc>>,
}

/// A failed run of a feed, for an operator: a dead letter at stage `pull`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullFailure {
    pub key: FeedKey,
    /// A stable reason: `http_401`, `invalid_page`, `unavailable`, …
    pub reason: String,
    pub error: String,
    /// The feed's answer (its first 4 KiB), when it sent one.
    pub body: Option<String>,
    /// The supplier asked for no request before this (a 429's `Retry-After` that ended the
    /// run): kept with the feed, which keeps the latest such time.
    pub supplier_hold_until: Option<DateTime<Utc>>,
}

/// The stage of the dead letters pull failures open.
pub const PULL_STAGE: &str = "pull";

/// An offer of a feed (its tenant and supplier) as stored, for a full refresh to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedOffer {
    pub sku: Sku,
    /// The offer's state. A refresh leaves an offer whose snapshot or fold is newer than its
    /// own snapshot alone (`OfferState::set_after`): the snapshot does not know that change,
    /// and a correction as of it would lose. It compares the others as of the snapshot, not
    /// held at zero (`OfferState::unclamped_quantity_as_of`), below zero for an oversold
    /// offer, which shows 0.
    pub state: catalog_core::OfferState,
}

/// A difference a full refresh found between the stored offer and the supplier's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedDrift {
    pub sku: Sku,
    /// `None`: the catalog had no offer the snapshot lists.
    pub stored: Option<i64>,
    /// The snapshot's quantity; 0 for an offer the snapshot no longer lists.
    pub supplier: i64,
    /// The snapshot's `as_of`.
    pub as_of: DateTime<Utc>,
}

/// A full refresh that went through the whole snapshot (its drift recorded as it corrected
/// it, `FeedStore::record_feed_drifts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullRefresh {
    pub key: FeedKey,
    pub as_of: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
}

/// A feed's journaled records of one UTC day (of first reception): how each was decided,
/// and how often records were pulled again (duplicates, counted on the first row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedJournalDay {
    pub date: NaiveDate,
    pub by_outcome: std::collections::BTreeMap<String, u64>,
    pub redeliveries: u64,
}

/// A drift as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedDriftRecord {
    pub key: FeedKey,
    pub drift: FeedDrift,
    pub detected_at: DateTime<Utc>,
}

/// What the pull source and the admin service keep and ask about feeds.
#[async_trait]
pub trait FeedStore: Send + Sync + std::fmt::Debug {
    /// Stores a feed's settings: a new feed is created with them; a known one takes every
    /// setting but `sync_enabled`, which belongs to operators once the feed exists. Its
    /// state (windows, last sync, initial sync) is kept.
    async fn upsert_feed(&self, settings: &FeedSettings) -> Result<(), StoreError>;

    /// Every feed, by tenant and supplier.
    async fn feeds(&self) -> Result<Vec<StoredFeed>, StoreError>;

    /// One feed, or `None`.
    async fn feed(&self, key: &FeedKey) -> Result<Option<StoredFeed>, StoreError>;

    /// Switches pulling a feed on or off; `false` for an unknown feed.
    async fn set_feed_sync(&self, key: &FeedKey, enabled: bool) -> Result<bool, StoreError>;

    /// Records a completed window (again: no change) and moves `last_sync_at` up to its
    /// completion.
    async fn complete_window(&self, key: &FeedKey, window: &CompletedWindow) -> Result<(), StoreError>;

    /// Every completed window of a feed, by `since`.
    async fn feed_windows(&self, key: &FeedKey) -> Result<Vec<CompletedWindow>, StoreError>;

    /// Opens a dead letter at stage `pull` for the feed, or counts the failure on its open
    /// one; returns the letter's id.
    async fn record_pull_failure(&self, failure: &PullFailure) -> Result<i64, StoreError>;

    /// Resolves the feed's open pull dead letter (resolution `pulled`) after a run that
    /// completed; `false` when there was none.
    async fn resolve_pull_failure(&self, key: &FeedKey) -> Result<bool, StoreError>;

    /// Every open pull dead letter (at most one per feed: its last run failed), by subject
    /// (`tenant/supplier`).
    async fn open_pull_dead_letters(&self) -> Result<Vec<crate::DeadLetter>, StoreError>;

    /// The stored offers of the feed's tenant and supplier, by SKU.
    async fn feed_offers(&self, key: &FeedKey) -> Result<Vec<FeedOffer>, StoreError>;

    /// Journals drift a full refresh found, at `detected_at` (the time the refresh then
    /// completes at): a refresh records its drift a batch of corrections at a time, before
    /// applying them, so that none is lost when it is cut short.
    async fn record_feed_drifts(
        &self,
        key: &FeedKey,
        drifts: &[FeedDrift],
        detected_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Marks the feed refreshed (and its initial sync completed).
    async fn complete_full_refresh(&self, refresh: &FullRefresh) -> Result<(), StoreError>;

    /// The newest drift found on a feed, newest first, at most `limit`.
    async fn feed_drifts(&self, key: &FeedKey, limit: usize) -> Result<Vec<FeedDriftRecord>, StoreError>;

    /// The feed's journal rows (source [`FeedKey::source_name`]) first received since
    /// `since`, per UTC day, newest first.
    async fn feed_journal_by_day(&self, key: &FeedKey, since: DateTime<Utc>)
        -> Result<Vec<FeedJournalDay>, StoreError>;

    /// Asks for a manual run of the feed, replacing one still waiting; `false` for an
    /// unknown feed.
    async fn request_feed_run(&self, key: &FeedKey, request: &FeedRunRequest) -> Result<bool, StoreError>;

    /// Clears the feed's run request made at `requested_at` once it ran; `false` when the
    /// waiting request is another (asked for meanwhile) or there is none.
    async fn clear_feed_run(&self, key: &FeedKey, requested_at: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// `run_times` as stored: `HH:MM` joined by commas.
pub fn render_run_times(run_times: &[NaiveTime]) -> String {
    run_times.iter().map(|time| time.format("%H:%M").to_string()).collect::<Vec<_>>().join(",")
}

/// `run_times` from their stored form.
pub fn parse_run_times(stored: &str) -> Result<Vec<NaiveTime>, StoreError> {
    stored
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            NaiveTime::parse_from_str(part, "%H:%M")
                .map_err(|error| StoreError::Corrupt(format!("feed run time {part:?}: {error}")))
        })
        .collect()
}
