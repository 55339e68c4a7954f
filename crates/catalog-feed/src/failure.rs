//! Why a feed's run stopped (`RunError`): how each failure is classed, how long it holds
//! the feed, and the pull dead letter it opens or counts on (`record_failure`).

use catalog_app::{BatchSink, SinkError};
use catalog_core::{Classify, FailureClass};
use catalog_store::{FeedKey, FeedStore, Position, PullFailure, StoreError};

use crate::client::PullError;

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
            // token, base URL or settings it is; so is a token variable left unset.
            RunError::Pull(PullError::Refused { .. } | PullError::NoToken(_) | PullError::InvalidToken(_)) => {
                FailureClass::NeedsOperator
            }
            // The feed's paging or pages are broken, whatever the retries: its supplier must
            // mend them (docs/operations.md says so of each).
            RunError::Pull(
                PullError::CursorLoop { .. }
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

/// Opens (or counts on) `key`'s pull dead letter for a failed run, or for a run that could
/// not start (no token, an unknown time zone, an unreadable checkpoint), at `failed_at` by
/// the source's clock, from which a supplier's `Retry-After` counts.
pub(crate) async fn record_failure(
    store: &dyn FeedStore,
    key: &FeedKey,
    error: &RunError,
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
    let failure = PullFailure { key: key.clone(), reason, error: error.to_string(), body, supplier_hold_until };
    match store.record_pull_failure(&failure).await {
        Ok(dead_letter_id) => {
            tracing::error!(feed = %key, reason = %failure.reason, dead_letter_id, error = %error, class = error.failure_class().as_str(), "feed run failed; it resumes at the next run")
        }
        Err(store) => {
            tracing::error!(feed = %key, error = %error, %store, "feed run failed, and recording the failure failed too")
        }
    }
}
