//! The `--once` mode: what is due now for every selected feed, pulled in parallel (bounded)
//! and applied, then a report; a manual run waiting goes first, and a feed not live yet is
//! left alone (decision 0054).

use std::sync::Arc;

use catalog_core::Classify;
use catalog_store::{FeedKey, StoredFeed};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::PullError;
use crate::failure::{self, JobKind, RunError};
use crate::{window, FeedSelector, FeedSource, FeedSourceError};

/// Whether `--once` also runs a full refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnceScope {
    /// Whatever is due: the unfinished window, the incremental, every backfill chunk.
    Due,
    /// That, then a full refresh of each feed.
    WithFullRefresh,
}

/// What a `--once` run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnceReport {
    pub n_feeds: usize,
    /// Feeds whose run failed, with why; each has an open pull dead letter.
    pub failed: Vec<(FeedKey, String)>,
}

impl FeedSource {
    /// Runs what is due now for every enabled feed, in parallel (bounded), and returns once
    /// it is applied: the unfinished window, the incremental window, every backfill chunk,
    /// and with `WithFullRefresh` a full refresh. A failing feed is recorded (a pull dead
    /// letter) and reported; the others go on.
    pub async fn run_once(
        &self,
        scope: OnceScope,
        shutdown: &CancellationToken,
    ) -> Result<OnceReport, FeedSourceError> {
        self.run_once_for(scope, &[], shutdown).await
    }

    /// Asks for a backfill of `[since, until)` on every enabled feed `only` selects (all when
    /// empty), as an operator would through the admin API: the next run (or this process's
    /// `run_once`) pulls the range again. Returns the feeds asked.
    pub async fn request_backfill(
        &self,
        only: &[FeedSelector],
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        requested_by: &str,
    ) -> Result<Vec<FeedKey>, FeedSourceError> {
        if since >= until {
            return Err(FeedSourceError::InvalidRange(format!("{since} is not before {until}")));
        }
        let selected: Vec<FeedKey> =
            self.selected_feeds(only).await?.into_iter().map(|feed| feed.settings.key).collect();
        let request = catalog_store::FeedRunRequest {
            kind: catalog_store::FeedRunKind::Backfill { since, until },
            requested_by: requested_by.to_owned(),
            requested_at: chrono::Utc::now(),
        };
        for key in &selected {
            self.store.request_feed_run(key, &request).await?;
        }
        tracing::info!(n_feeds = selected.len(), %since, %until, "backfill asked for");
        Ok(selected)
    }

    /// [`FeedSource::run_once`] for the enabled feeds `only` selects (all when empty): a
    /// manual run of one tenant's feeds or of one feed. A selection no enabled feed matches
    /// is an error, so a typo never passes for "nothing was due".
    pub async fn run_once_for(
        &self,
        scope: OnceScope,
        only: &[FeedSelector],
        shutdown: &CancellationToken,
    ) -> Result<OnceReport, FeedSourceError> {
        let feeds = self.selected_feeds(only).await?;
        let permits = Arc::new(Semaphore::new(self.settings.max_parallel_feeds.max(1)));
        let mut runs: JoinSet<Option<(FeedKey, String)>> = JoinSet::new();
        let n_feeds = feeds.len();
        for feed in feeds {
            let (source, permits, shutdown) = (self.clone(), Arc::clone(&permits), shutdown.clone());
            runs.spawn(async move {
                let key = feed.settings.key.clone();
                let _permit = permits.acquire_owned().await.ok()?;
                let result = source.once(feed, scope, &shutdown).await;
                match result {
                    Ok(()) => None,
                    Err(error) if error.is_shutdown() => None,
                    Err(error) => Some((key, error.to_string())),
                }
            });
        }
        let mut report = OnceReport { n_feeds, failed: Vec::new() };
        while let Some(joined) = runs.join_next().await {
            match joined {
                Ok(Some(failure)) => report.failed.push(failure),
                Ok(None) => {}
                Err(error) => report.failed.push((
                    FeedKey {
                        tenant: catalog_core::TenantId::parse("unknown").expect("a valid id"),
                        supplier: catalog_core::SupplierId::parse("unknown").expect("a valid id"),
                    },
                    format!("a feed task failed: {error}"),
                )),
            }
        }
        report.failed.sort();
        Ok(report)
    }

    async fn once(&self, feed: StoredFeed, scope: OnceScope, shutdown: &CancellationToken) -> Result<(), RunError> {
        let key = feed.settings.key.clone();
        let request = feed.run_request.clone();
        let held_until = feed.supplier_hold_until;
        let result = async {
            let mut run = match self.open(feed).await {
                Ok(run) => run,
                Err(error) => {
                    failure::record_failure(&*self.store, &key, &error, JobKind::Windows, chrono::Utc::now()).await;
                    return Err(error);
                }
            };
            if chrono::Utc::now() < run.go_live() {
                // Configured ahead: nothing of it is pulled before (decision 0054).
                tracing::info!(feed = %key, go_live = %run.go_live(), "feed not live yet: nothing is pulled before it goes live");
                return Ok(());
            }
            if let Some(until) = held_until.filter(|until| chrono::Utc::now() < *until) {
                // A 429's `Retry-After` that ended an earlier run: the contract says wait at
                // least that long, and a cron run every few minutes would ask again inside it.
                tracing::info!(feed = %key, %until, "the supplier asked not to be asked before this: nothing is pulled before");
                return Ok(());
            }
            // The job a failure comes from, for its dead letter: the windows, but for the time
            // a full refresh runs (and for a manual one that failed, once the windows ran).
            let mut failing = JobKind::Windows;
            let outcome = async {
                let resumed = run.resume(shutdown).await?;
                let now = chrono::Utc::now();
                let mut request_failed = None;
                // Whether the request pulled anything now (up to now).
                let mut request_ran_now = false;
                if let Some(request) = &request {
                    let request_job = match request.kind {
                        catalog_store::FeedRunKind::FullRefresh => JobKind::FullRefresh,
                        _ => JobKind::Windows,
                    };
                    // A window of the request left unfinished is not pulled again.
                    let ran = match window::left_of_request(request, resumed.as_ref()) {
                        Some(left) => {
                            request_ran_now = true;
                            failing = request_job;
                            run.run_requested(&left, now, shutdown).await
                        }
                        None => Ok(()),
                    };
                    match ran {
                        Ok(()) => {
                            failing = JobKind::Windows;
                            self.store.clear_feed_run(&key, request.requested_at).await?;
                        }
                        Err(error) if error.is_shutdown() => return Err(error),
                        // The supplier asked to be left alone (a 429's `Retry-After`), is down,
                        // or refuses the token: this run asks it nothing more, and the request
                        // is asked again by the next run.
                        Err(error) if leaves_the_supplier_alone(&error) => return Err(error),
                        // Asked again by the next run; it holds back none of this run's work.
                        Err(error) => {
                            failing = JobKind::Windows;
                            run.resume(shutdown).await?;
                            request_failed = Some((request_job, error));
                        }
                    }
                }
                // A manual incremental or full refresh that ran now is this run's: not run
                // twice. One whose resumed window finished it ended when it was asked for.
                let ran = |kind| {
                    request_ran_now
                        && request_failed.is_none()
                        && request.as_ref().is_some_and(|asked| asked.kind == kind)
                };
                if !ran(catalog_store::FeedRunKind::Incremental) {
                    run.incremental(now, shutdown).await?;
                }
                while run.backfill_next(now, shutdown).await? {}
                let refreshed_now = ran(catalog_store::FeedRunKind::FullRefresh);
                if scope == OnceScope::WithFullRefresh && !refreshed_now {
                    failing = JobKind::FullRefresh;
                    run.full_refresh(shutdown).await?;
                    failing = JobKind::Windows;
                }
                match request_failed {
                    Some((request_job, error)) => {
                        failing = request_job;
                        Err(error)
                    }
                    None if scope == OnceScope::WithFullRefresh || refreshed_now => {
                        run.record_success(&[JobKind::Windows, JobKind::FullRefresh]).await
                    }
                    None => run.record_success(&[JobKind::Windows]).await,
                }
            }
            .await;
            if let Err(error) = &outcome {
                if !error.is_shutdown() {
                    run.record_failure(error, failing, chrono::Utc::now()).await;
                }
            }
            outcome
        }
        .await;
        if let Err(error) = &result {
            tracing::warn!(feed = %key, %error, class = error.failure_class().as_str(), "feed run did not complete");
        }
        result
    }
}

/// Whether a failed manual run says that nothing more is to be asked of its supplier in this
/// run: a 429 longer than a run waits (the contract: wait at least that long), a supplier
/// still down after the retries, a token refused or missing, a base URL no request can be
/// made at. A failure of one endpoint or
/// page (a snapshot whose cursors loop or expire, a page that is no page, a 404) leaves the
/// feed's windows worth pulling.
fn leaves_the_supplier_alone(error: &RunError) -> bool {
    match error {
        RunError::Pull(
            PullError::HeldOff { .. }
            | PullError::NoToken(_)
            | PullError::InvalidToken(_)
            | PullError::UnusableUrl { .. },
        ) => true,
        RunError::Pull(PullError::Refused { status, .. }) => matches!(status, 401 | 403),
        RunError::Pull(PullError::Unavailable { reason, .. }) => *reason != "invalid_page",
        _ => false,
    }
}
