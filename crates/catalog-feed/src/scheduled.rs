//! The scheduled mode's loop of one feed: it waits while the feed is switched off, runs a
//! manual run an operator asked for before scheduled work, then the schedule's work
//! (`Plan::next_work`), each taking one of the source's slots, and holds the feed after a
//! failure (decision 0018).

use std::sync::Arc;

use catalog_core::{Classify, FailureClass};
use catalog_store::{FeedKey, FeedRunKind, FeedRunRequest, StoredFeed, WindowKind};
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::failure::{JobKind, RunError};
use crate::schedule::{self, Clock, Hold, Plan, Work};
use crate::window::{left_of_request, WindowCursor};
use crate::FeedSource;

/// What a feed's loop does next: the window the last run left unfinished (before anything
/// else, at start and after a failure), the manual run an operator asked for, or scheduled
/// work.
#[derive(Debug)]
enum Job {
    Resume,
    Requested(FeedRunRequest),
    Scheduled(Work),
}

impl FeedSource {
    /// Whether the feed is switched on now, as the store says: `None` once `shutdown` came
    /// while waiting for it to be. A feed off (or unreadable) is looked at again every
    /// `switch_poll`.
    async fn wait_until_enabled(
        &self,
        key: &FeedKey,
        clock: &Arc<dyn Clock>,
        shutdown: &CancellationToken,
    ) -> Option<StoredFeed> {
        let mut said_off = false;
        while !shutdown.is_cancelled() {
            match self.store.feed(key).await {
                Ok(Some(feed)) if feed.settings.sync_enabled => {
                    if said_off {
                        tracing::info!(feed = %key, "feed switched on: pulling it again");
                    }
                    return Some(feed);
                }
                Ok(_) if !said_off => {
                    tracing::info!(feed = %key, "feed switched off: no pulls until it is switched on");
                    said_off = true;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(feed = %key, %error, "reading the feed's switch failed; trying again"),
            }
            clock.sleep_until(clock.now() + self.settings.switch_poll, shutdown).await;
        }
        None
    }

    /// The failure hold of a feed whose run could not start (its token unset, an unknown time
    /// zone): the feed to try again with once the hold passed, at once if a manual run is
    /// asked for meanwhile (an operator who set the token), and only once switched on again
    /// if switched off meanwhile; `None` once `shutdown` came. Woken every `switch_poll`,
    /// like the loop itself, so a switched-off feed stops failing (decision 0018).
    async fn hold_unstarted(
        &self,
        key: &FeedKey,
        clock: &Arc<dyn Clock>,
        shutdown: &CancellationToken,
    ) -> Option<StoredFeed> {
        let hold = clock.now() + self.settings.failure_hold;
        let stamp = |feed: &StoredFeed| feed.run_request.as_ref().map(|request| request.requested_at);
        // The manual run waiting at the failure waits out the hold, as in `Plan::manual_run_from`.
        let request_waiting = self.store.feed(key).await.ok().flatten().and_then(|feed| stamp(&feed));
        loop {
            clock.sleep_until(hold.min(clock.now() + self.settings.switch_poll), shutdown).await;
            if shutdown.is_cancelled() {
                return None;
            }
            match self.store.feed(key).await {
                Ok(Some(feed)) if feed.settings.sync_enabled => {
                    let asked_since = stamp(&feed).is_some_and(|at| Some(at) != request_waiting);
                    if asked_since || clock.now() >= hold {
                        return Some(feed);
                    }
                }
                // Switched off: no tries, and no failures recorded, until switched on.
                Ok(_) => return self.wait_until_enabled(key, clock, shutdown).await,
                Err(_) if clock.now() >= hold => return self.wait_until_enabled(key, clock, shutdown).await,
                Err(_) => {}
            }
        }
    }

    /// One feed's schedule, until `shutdown`.
    pub(crate) async fn feed_loop(
        &self,
        feed: StoredFeed,
        clock: Arc<dyn Clock>,
        permits: Arc<Semaphore>,
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        let key = feed.settings.key.clone();
        let Some(mut feed) = self.wait_until_enabled(&key, &clock, &shutdown).await else { return Ok(()) };
        let mut run = loop {
            match self.open(feed.clone()).await {
                Ok(run) => break run,
                Err(error) => {
                    crate::failure::record_failure(&*self.store, &key, &error, JobKind::Windows, clock.now()).await;
                    // As a run that fails for good does (below): held, it would fail again
                    // every hold, unseen by a supervisor.
                    if error.failure_class() == FailureClass::Fatal {
                        return Err(error);
                    }
                    let Some(current) = self.hold_unstarted(&key, &clock, &shutdown).await else { return Ok(()) };
                    feed = current;
                }
            }
        };
        let windows = self.store.feed_windows(&key).await.unwrap_or_default();
        let refresh_time = self.settings.full_refresh_time;
        let started = clock.now();
        let last_incremental_until = crate::window::last_incremental_until(&windows, started);
        if let Some(ahead) = windows.iter().map(|window| window.until).filter(|until| *until > started).max() {
            tracing::warn!(feed = %key, now = %started, window_until = %ahead, "a completed window ends after now: it was pulled while the clock ran ahead, or the clock went back; the next incremental starts at the last window before it");
        }
        let mut plan = Plan::start(
            run.cadence(),
            refresh_time,
            last_incremental_until,
            feed.last_full_refresh_at,
            run.go_live(),
            started,
        );
        if started < plan.live_at {
            tracing::info!(feed = %key, go_live = %plan.live_at, "feed not live yet: nothing is pulled before it goes live");
        }
        // A supplier's `Retry-After` that ended a run before this start (a restart, another
        // worker, a `--once` run) holds the feed as if this loop had met it.
        if let Some(until) = feed.supplier_hold_until.filter(|until| plan.hold_for_the_supplier(*until, started)) {
            tracing::info!(feed = %key, %until, "the supplier asked not to be asked before this: nothing is pulled before");
        }
        let mut resumed = false;
        // The window the last resume found on the checkpoint: a manual run it was part of
        // goes on after it instead of pulling it again.
        let mut resumed_window: Option<WindowCursor> = None;
        // When the manual run asked for at this time failed: it is run again after the hold,
        // but no longer before scheduled work that is due, which it would hold back for as
        // long as it keeps failing.
        let mut failed_request: Option<DateTime<Utc>> = None;
        // What is left of the manual run under way, between its steps (a backfill's chunks):
        // the incremental due goes between them, and the switch is looked at before each.
        let mut request_left: Option<FeedRunRequest> = None;
        while !shutdown.is_cancelled() {
            let now = clock.now();
            let current = self.store.feed(&key).await;
            let switched_off = match &current {
                Ok(current) => current.as_ref().is_none_or(|current| !current.settings.sync_enabled),
                // Unreadable: the work itself reads the store too, and fails and is held.
                Err(_) => false,
            };
            if switched_off {
                // Switched off since: wait (holding no slot) until it is on again.
                if self.wait_until_enabled(&key, &clock, &shutdown).await.is_none() {
                    return Ok(());
                }
                continue;
            }
            // A supplier's `Retry-After` another run met meanwhile (a second worker, a `--once`
            // run beside this one) holds this loop too.
            let asked = current.as_ref().ok().and_then(Option::as_ref).and_then(|current| current.supplier_hold_until);
            if let Some(until) = asked.filter(|until| plan.hold_for_the_supplier(*until, now)) {
                tracing::info!(feed = %key, %until, "the supplier asked another run not to be asked before this: nothing is pulled before");
            }
            // A manual run an operator asked for goes first, and once it failed, after the
            // scheduled work due. After a failed run it waits out the hold like any work,
            // unless it was asked for after the failure (another request than the one
            // waiting then): then only a supplier's Retry-After still in force holds it
            // (decision 0018). Nothing runs before going live.
            let requested = current.ok().flatten().and_then(|current| current.run_request);
            let request_from = requested.as_ref().map(|request| plan.manual_run_from(request.requested_at));
            let requested = requested.filter(|_| request_from.is_none_or(|from| from <= now));
            let job = match (requested, plan.next_work(now)) {
                (Some(request), Some(work)) if failed_request == Some(request.requested_at) => Job::Scheduled(work),
                // A manual run under way lets the incremental due go between its steps.
                (Some(request), Some(Work::Incremental))
                    if request_left.as_ref().is_some_and(|left| left.requested_at == request.requested_at) =>
                {
                    Job::Scheduled(Work::Incremental)
                }
                (Some(request), _) => Job::Requested(request),
                (None, Some(work)) => Job::Scheduled(work),
                (None, None) => {
                    // Woken at least every `switch_poll`, so a switch or a manual run asked
                    // for is seen within that long, and when a waiting manual run may run.
                    let wake = plan.wake_at().min(now + self.settings.switch_poll);
                    clock.sleep_until(request_from.map_or(wake, |from| wake.min(from)), &shutdown).await;
                    continue;
                }
            };
            // Something is due: first what the last run left unfinished, then (the loop
            // choosing again) the work, which then does not pull that window a second time.
            let job = if resumed { job } else { Job::Resume };
            let Ok(_permit) = permits.acquire().await else { return Ok(()) };
            // Whether the manual run pulled anything now: one its resumed window finished
            // pulled nothing up to now, so it is not the incremental due.
            let mut request_ran_now = false;
            let result = async {
                match &job {
                    Job::Resume => run.resume(&shutdown).await.map(|window| resumed_window = window),
                    Job::Requested(request) => {
                        // What is left: after the window a resume found of it (its chunks are
                        // pulled in order), else after its last step, else all of it.
                        let resumed = resumed_window.take();
                        let resumed_its_own =
                            resumed.as_ref().is_some_and(|cursor| cursor.request == Some(request.requested_at));
                        let left = match request_left.take().filter(|left| left.requested_at == request.requested_at) {
                            Some(left) if !resumed_its_own => Some(left),
                            _ => left_of_request(request, resumed.as_ref()),
                        };
                        match left {
                            Some(left) => {
                                // Kept if the step fails: the next attempt goes on from here.
                                request_left = Some(left.clone());
                                let rest = run.run_requested_step(&left, now, &shutdown).await?;
                                request_ran_now = true;
                                request_left = rest;
                                if request_left.is_some() {
                                    return Ok(());
                                }
                            }
                            None => tracing::info!(feed = %key, "the manual run was finished by resuming its window"),
                        }
                        // Only this request: one asked for meanwhile waits its turn.
                        self.store.clear_feed_run(&key, request.requested_at).await.map(drop).map_err(RunError::from)
                    }
                    Job::Scheduled(Work::Incremental) => run.incremental(now, &shutdown).await.map(drop),
                    Job::Scheduled(Work::FullRefresh) => run.full_refresh(&shutdown).await.map(drop),
                    Job::Scheduled(Work::Backfill) => {
                        run.backfill_next(now, &shutdown).await.map(|pulled| plan.backfill_pending = pulled)
                    }
                }
            }
            .await;
            // A full refresh's dead letter is resolved by a full refresh alone, the windows'
            // by windows alone: they are endpoints of their own, which fail apart.
            let job_kind = match &job {
                Job::Scheduled(Work::FullRefresh)
                | Job::Requested(FeedRunRequest { kind: FeedRunKind::FullRefresh, .. }) => JobKind::FullRefresh,
                Job::Resume | Job::Requested(_) | Job::Scheduled(_) => JobKind::Windows,
            };
            // A failed refresh lets the next backfill go first; that backfill, or a refresh that
            // completes, ends it (`Plan::refresh_failed`).
            match &job {
                Job::Scheduled(Work::FullRefresh) => plan.refresh_failed = result.is_err(),
                Job::Scheduled(Work::Backfill) => plan.refresh_failed = false,
                _ => {}
            }
            match result {
                Ok(()) if matches!(job, Job::Resume) => {
                    resumed = true;
                    // A window the resume pulled to its end is a run that completed: it ends
                    // the hold and resolves the dead letter now, not at the next run time.
                    if resumed_window.as_ref().is_some_and(|cursor| cursor.next.is_some()) {
                        plan.hold = None;
                        if let Err(error) = run.record_success(&[JobKind::Windows]).await {
                            tracing::warn!(feed = %key, %error, "resolving the feed's dead letter failed");
                        }
                    }
                    // The incremental due may be the window just resumed.
                    let incremental =
                        resumed_window.as_ref().filter(|cursor| cursor.window.kind == WindowKind::Incremental);
                    if let Some(cursor) = incremental {
                        let due = run.cadence().next_incremental_at(Some(cursor.window.until), now);
                        plan.next_incremental = plan.next_incremental.max(due);
                    }
                }
                Ok(()) => {
                    plan.hold = None;
                    match job {
                        // A manual incremental that pulled up to now is the incremental due, if
                        // one is; one its resume finished ended when it was asked for, and the
                        // resume planned the incremental from that end.
                        Job::Scheduled(Work::Incremental) => {
                            plan.next_incremental = run.cadence().next_incremental_at(Some(now), now)
                        }
                        Job::Requested(FeedRunRequest { kind: FeedRunKind::Incremental, .. }) if request_ran_now => {
                            plan.next_incremental = run.cadence().next_incremental_at(Some(now), now)
                        }
                        // A manual full refresh is the full refresh due, if one is.
                        Job::Scheduled(Work::FullRefresh)
                        | Job::Requested(FeedRunRequest { kind: FeedRunKind::FullRefresh, .. }) => {
                            plan.refreshed_before = true;
                            plan.next_full_refresh =
                                schedule::next_full_refresh_at(run.cadence().timezone, refresh_time, now);
                        }
                        Job::Scheduled(Work::Backfill) | Job::Requested(_) | Job::Resume => {}
                    }
                    if let Err(error) = run.record_success(&[job_kind]).await {
                        tracing::warn!(feed = %key, %error, "resolving the feed's dead letter failed");
                    }
                }
                Err(error) if error.is_shutdown() => return Ok(()),
                Err(error) => {
                    // Anything not durable is pulled again from the checkpoint: resume first.
                    // A manual run's request stays, and is run again once the hold has passed.
                    if let Job::Requested(request) = &job {
                        failed_request = Some(request.requested_at);
                    }
                    // Counted from the failure, not from the start of the run that failed: a
                    // supplier's Retry-After counts from its answer.
                    let failed_at = clock.now();
                    run.record_failure(&error, job_kind, failed_at).await;
                    // A failure no retry mends (the store refuses for good) stops the worker,
                    // as it stops the Kafka and file sources: held and retried, it would only
                    // fail again every hold, unseen by a supervisor.
                    if error.failure_class() == FailureClass::Fatal {
                        return Err(error);
                    }
                    resumed = false;
                    // The manual run waiting now waits out the hold: only one asked for after
                    // this (another stamp) is let through at once (decision 0018).
                    let request_waiting = match &job {
                        Job::Requested(request) => Some(request.requested_at),
                        _ => self
                            .store
                            .feed(&key)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|feed| feed.run_request)
                            .map(|request| request.requested_at),
                    };
                    plan.hold = Some(Hold {
                        failed_at,
                        until: failed_at + error.hold(self.settings.failure_hold),
                        supplier_until: error.supplier_wait().map(|wait| failed_at + wait),
                        request_waiting,
                    });
                }
            }
        }
        Ok(())
    }
}
