//! Why a feed's run stopped (`RunError`): how each failure is classed, how long it holds
//! the feed, and the pull dead letter it opens or counts on (`record_failure`).

use catalog_app::{BatchSink, SinkError};
use catalog_core::{Classify, FailureClass};
use catalog_store::{FeedKey, FeedStore, Position, PullFailure, StoreError};

use crate::client::PullError;
use crate::pull::FeedRun;

/// Why a feed's run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("pulling: {0}")]
    Pull(#[from] PullError),
    #[error("applying a page: {0}")]
    Sink(#[from] SinkError),
    #[error("feed store: {0}")]
    Store(#[from] StoreError),
    /// The feed's checkpoint could not be read: the run cannot start.
    #[error("reading the feed's checkpoint: {0}")]
    Checkpoint(SinkError),
    #[error("feed {feed} has an unknown time zone {timezone:?}")]
    TimeZone { feed: FeedKey, timezone: String },
    /// Another run of the same feed (another worker, a manual `--once`) checkpointed pages
    /// numbered as this run's first: the store fenced this run's records of them off as
    /// applied, though they may be records of another window. The window is not recorded,
    /// so the next run pulls it again.
    #[error(
        "another run of this feed applied its pages up to page {stored} first, so {n_records} records of this run's \
         pages up to {ours} were taken for applied; the window is not recorded and is pulled again at the next run"
    )]
    ConcurrentRun { ours: i64, stored: i64, n_records: usize },
}

impl Classify for RunError {
    fn failure_class(&self) -> FailureClass {
        match self {
            // Refused (400, 401, 403, 404): the contract records it "for an operator", whose
            // token, base URL or settings it is; so is a token variable left unset, and a base
            // URL no request can be made at (or whose redirects loop).
            RunError::Pull(
                PullError::Refused { .. }
                | PullError::NoToken(_)
                | PullError::InvalidToken(_)
                | PullError::UnusableUrl { .. },
            ) => FailureClass::NeedsOperator,
            // The feed's paging or pages are broken, whatever the retries: its supplier must
            // mend them (docs/operations.md says so of each).
            RunError::Pull(
                PullError::CursorLoop { .. }
                | PullError::EmptyPages { .. }
                | PullError::CursorExpired
                | PullError::Unavailable { reason: "invalid_page", .. },
            ) => FailureClass::NeedsSupplier,
            RunError::Pull(_) => FailureClass::Retryable,
            RunError::Sink(SinkError::Abandoned) => FailureClass::Retryable,
            RunError::Sink(SinkError::Fatal(_)) | RunError::Checkpoint(SinkError::Fatal(_)) => FailureClass::Fatal,
            RunError::Checkpoint(SinkError::Abandoned) => FailureClass::Retryable,
            RunError::Store(error) => error.failure_class(),
            RunError::TimeZone { .. } => FailureClass::NeedsOperator,
            RunError::ConcurrentRun { .. } => FailureClass::Retryable,
        }
    }
}

impl RunError {
    /// How long the feed waits before its next run: the failure hold, or longer when the feed
    /// asked for longer (a 429's `Retry-After`).
    pub fn hold(&self, failure_hold: chrono::Duration) -> chrono::Duration {
        self.supplier_wait().map_or(failure_hold, |wait| wait.max(failure_hold))
    }

    /// How long the feed's supplier asked not to be asked again, when that ended the run (a
    /// 429's `Retry-After` longer than a run waits out): even a manual run waits for it.
    pub fn supplier_wait(&self) -> Option<chrono::Duration> {
        match self {
            RunError::Pull(PullError::HeldOff { wait }) => chrono::Duration::from_std(*wait).ok(),
            _ => None,
        }
    }

    /// Whether the run ended because the process is shutting down (nothing to record).
    pub fn is_shutdown(&self) -> bool {
        matches!(
            self,
            RunError::Pull(PullError::Abandoned)
                | RunError::Sink(SinkError::Abandoned)
                | RunError::Checkpoint(SinkError::Abandoned)
        )
    }
}

/// The feed's checkpoint (`source`, partition 0) as the sink reads it, a failure said as one of
/// reading the checkpoint (`store_checkpoint`), wherever in a run it is read.
pub(crate) async fn checkpoint(sink: &dyn BatchSink, source: &str) -> Result<Option<Position>, RunError> {
    sink.checkpoint(source, 0).await.map_err(RunError::Checkpoint)
}

/// What a feed's job pulled: its windows (incrementals, backfills, a window resumed), or its
/// snapshot (a full refresh). The two are endpoints of their own, which fail apart: a
/// snapshot that answers 404 says nothing of the windows, and windows pulled say nothing of
/// the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Also a run that could not start (no token, an unknown time zone): the windows are
    /// pulled far more often than the snapshot, and the first of them that completes shows
    /// the run starts again.
    Windows,
    FullRefresh,
}

/// How the error of a pull dead letter a full refresh opened begins. The store keeps one
/// pull letter per feed and no column for the job that failed; the error's text carries it,
/// which an operator reads too, and which is all [`JobKind::of_letter`] reads back.
const FULL_REFRESH_LETTER_PREFIX: &str = "full refresh: ";

impl JobKind {
    /// The job whose failure a pull dead letter's `error` tells of. A letter written before
    /// the job was kept reads as the windows': the next windows pulled resolve it, as any
    /// completed run did then.
    fn of_letter(error: Option<&str>) -> JobKind {
        match error {
            Some(error) if error.starts_with(FULL_REFRESH_LETTER_PREFIX) => JobKind::FullRefresh,
            _ => JobKind::Windows,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            JobKind::Windows => "windows",
            JobKind::FullRefresh => "full_refresh",
        }
    }
}

/// Opens (or counts on) `key`'s pull dead letter for a failed run of `job`, or for a run that
/// could not start (no token, an unknown time zone, an unreadable checkpoint: `Windows`), at
/// `failed_at` by the source's clock, from which a supplier's `Retry-After` counts.
pub(crate) async fn record_failure(
    store: &dyn FeedStore,
    key: &FeedKey,
    error: &RunError,
    job: JobKind,
    failed_at: chrono::DateTime<chrono::Utc>,
) {
    let (reason, body) = match error {
        RunError::Pull(pull) => (pull.reason(), pull.body()),
        RunError::Sink(_) => ("apply".to_owned(), None),
        RunError::Store(store) => (format!("store_{}", store.kind()), None),
        RunError::Checkpoint(_) => ("store_checkpoint".to_owned(), None),
        RunError::TimeZone { .. } => ("time_zone".to_owned(), None),
        RunError::ConcurrentRun { .. } => ("concurrent_run".to_owned(), None),
    };
    let supplier_hold_until = error.supplier_wait().map(|wait| failed_at + wait);
    let text = match job {
        JobKind::Windows => error.to_string(),
        JobKind::FullRefresh => format!("{FULL_REFRESH_LETTER_PREFIX}{error}"),
    };
    let failure = PullFailure { key: key.clone(), reason, error: text, body, supplier_hold_until };
    match store.record_pull_failure(&failure).await {
        Ok(dead_letter_id) => {
            tracing::error!(feed = %key, reason = %failure.reason, dead_letter_id, job = job.as_str(), error = %error, class = error.failure_class().as_str(), "feed run failed; it resumes at the next run")
        }
        Err(store) => {
            tracing::error!(feed = %key, error = %error, %store, "feed run failed, and recording the failure failed too")
        }
    }
}

impl FeedRun {
    /// Opens (or counts on) the feed's pull dead letter for a run of `job` that failed at
    /// `failed_at`.
    pub async fn record_failure(&self, error: &RunError, job: JobKind, failed_at: chrono::DateTime<chrono::Utc>) {
        record_failure(&*self.store, self.key(), error, job, failed_at).await;
    }

    /// Resolves the feed's open pull dead letter after a run that completed the jobs `pulled`,
    /// when the job whose failure it tells of is among them. Any completed run resolved it
    /// before: a snapshot answering 404 at every weekly refresh had its letter resolved by the
    /// incremental after each, and the feed's "failing since" started again every week.
    pub async fn record_success(&self, pulled: &[JobKind]) -> Result<(), RunError> {
        let letters = self.store.open_pull_dead_letters().await?;
        let Some(letter) = catalog_app::feeds::pull_dead_letter(&letters, self.key()) else { return Ok(()) };
        let failed = JobKind::of_letter(letter.error.as_deref());
        if !pulled.contains(&failed) {
            tracing::debug!(feed = %self.label, job = failed.as_str(), "the feed's dead letter stays open until the job that failed completes");
            return Ok(());
        }
        if self.store.resolve_pull_failure(self.key()).await? {
            tracing::info!(feed = %self.label, job = failed.as_str(), "feed pulls again: its dead letter is resolved");
        }
        Ok(())
    }
}
