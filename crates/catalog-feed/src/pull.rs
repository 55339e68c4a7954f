//! One feed's pulls: windows pulled page by page, each page applied as one batch through the
//! sink with the window's cursor as its checkpoint (committed in the batch's transaction),
//! the next page fetched while the last one is applied. A run picks up where the last one
//! stopped: an unfinished window resumes at its last committed page, a finished one is
//! recorded as completed if the crash came before that.

use std::sync::Arc;

use catalog_app::{BatchSink, Metrics, SourceBatch};
use catalog_store::{
    CompletedWindow, FeedKey, FeedRunKind, FeedRunRequest, FeedStore, IncomingEvent, Position, SourceRef, StoredFeed,
    WindowKind,
};
use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

use crate::cadence::Cadence;
use crate::client::{FeedClient, PageRequest, PullError};
use crate::failure::{checkpoint, RunError};
use crate::paging::PassPaging;
use crate::record::{record_event, Page};
use crate::window::{backfill_window, go_live_at, incremental_window, same_request, Window, WindowCursor};

/// Pages fetched ahead of the applier at most: what arrives while a batch is applied waits
/// here, and is applied next as one batch.
const PAGES_AHEAD: usize = 8;

/// How often one pass of a window (or of the snapshot) may be restarted by expired cursors
/// before the run gives up on it (and pulls it again at the next run).
pub(crate) const MAX_PASS_RESTARTS: u32 = 3;

/// `at` without its fraction of a second: window bounds are stored to the microsecond and
/// sent to the feed to the second, so a bound finer than both would leave slivers of gaps.
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(0).unwrap_or(at)
}

/// The name a feed's checkpoint and journal rows are kept under.
pub fn source_name(key: &FeedKey) -> String {
    key.source_name()
}

/// The name a feed's full-refresh corrections are journaled under.
pub fn refresh_source_name(key: &FeedKey) -> String {
    format!("feed-refresh:{key}")
}

/// What one feed's pulls share: its settings, client, sink and store, and the checkpoint
/// offset its next page is stored at.
pub struct FeedRun {
    pub(crate) feed: StoredFeed,
    pub(crate) timezone: Tz,
    pub(crate) go_live: DateTime<Utc>,
    pub(crate) client: FeedClient,
    pub(crate) sink: Arc<dyn BatchSink>,
    pub(crate) store: Arc<dyn FeedStore>,
    pub(crate) metrics: Metrics,
    pub(crate) source: Arc<str>,
    /// `tenant/supplier`: the metric label.
    pub(crate) label: String,
    pub(crate) overlap: Duration,
    /// Records per applied batch at most (pages merged), and a full refresh's corrections
    /// per batch.
    pub(crate) batch_size: usize,
    next_offset: i64,
    /// The `requested_at` of the manual run being run, stamped on its windows' checkpoints.
    pulling_for: Option<DateTime<Utc>>,
    /// The snapshot pass its supplier cut short, for the next full refresh to go on with.
    pub(crate) paused_pass: Option<crate::refresh::PausedPass>,
}

impl std::fmt::Debug for FeedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedRun")
            .field("feed", &self.label)
            .field("next_offset", &self.next_offset)
            .finish_non_exhaustive()
    }
}

impl FeedRun {
    /// Prepares a run of `feed`, reading where its checkpoint stands.
    pub async fn open(
        feed: StoredFeed,
        client: FeedClient,
        sink: Arc<dyn BatchSink>,
        store: Arc<dyn FeedStore>,
        metrics: Metrics,
        overlap: Duration,
        batch_size: usize,
    ) -> Result<FeedRun, RunError> {
        let key = feed.settings.key.clone();
        let timezone: Tz = feed
            .settings
            .timezone
            .parse()
            .map_err(|_| RunError::TimeZone { feed: key.clone(), timezone: feed.settings.timezone.clone() })?;
        let go_live = go_live_at(feed.settings.go_live_date, timezone);
        let source: Arc<str> = source_name(&key).into();
        let stored = checkpoint(&*sink, &source).await?;
        Ok(FeedRun {
            feed,
            timezone,
            go_live,
            client,
            sink,
            store,
            metrics,
            source,
            label: key.to_string(),
            overlap,
            batch_size: batch_size.max(1),
            next_offset: stored.map_or(0, |position| position.offset),
            pulling_for: None,
            paused_pass: None,
        })
    }

    pub fn key(&self) -> &FeedKey {
        &self.feed.settings.key
    }

    /// When the feed's incrementals run.
    pub fn cadence(&self) -> Cadence<'_> {
        Cadence {
            run_times: &self.feed.settings.run_times,
            timezone: self.timezone,
            frequency: Duration::hours(i64::from(self.feed.settings.sync_frequency_hours)),
        }
    }

    /// When the feed goes live: local midnight of its `go_live_date`. Nothing is pulled
    /// before (decision 0054).
    pub fn go_live(&self) -> DateTime<Utc> {
        self.go_live
    }

    /// Finishes what the last run left: an unfinished window is pulled on from its last
    /// committed page; a finished one not yet recorded (a crash between its last batch and
    /// the record) is recorded. Returns the checkpoint's window, pulled to its end now, so
    /// that what follows does not pull it again (`None`: no checkpoint this build reads).
    pub async fn resume(&mut self, shutdown: &CancellationToken) -> Result<Option<WindowCursor>, RunError> {
        let Some(stored) = checkpoint(&*self.sink, &self.source).await? else { return Ok(None) };
        let Some(cursor) = stored.cursor.as_deref().and_then(WindowCursor::parse) else { return Ok(None) };
        match &cursor.next {
            Some(next) => {
                tracing::info!(feed = %self.label, kind = cursor.window.kind.as_str(), since = %cursor.window.since, until = %cursor.window.until, "resuming a window at its last committed page");
                self.pulling_for = cursor.request;
                let pulled = self
                    .pull_window(cursor.window, Some(next.clone()), cursor.n_pages, cursor.n_records, shutdown)
                    .await;
                self.pulling_for = None;
                pulled?;
            }
            None => {
                let completed = self.store.feed_windows(self.key()).await?;
                let row = completed.iter().find(|w| {
                    (w.kind, w.since, w.until) == (cursor.window.kind, cursor.window.since, cursor.window.until)
                });
                // Recorded already (pulled before, by another run) without the stamp of the
                // manual run it was pulled for, it is recorded again: only its row's stamp
                // changes, which a backfill resumed after a later restart skips it by.
                let unstamped = row.is_some_and(|row| !same_request(row.requested_at, cursor.request));
                if row.is_none() || (cursor.request.is_some() && unstamped) {
                    self.pulling_for = cursor.request;
                    let recorded = self.record_completed(cursor.window, cursor.n_pages, cursor.n_records).await;
                    self.pulling_for = None;
                    recorded?;
                }
            }
        }
        Ok(Some(cursor))
    }

    /// Pulls the incremental window due at `now`, if any.
    pub async fn incremental(&mut self, now: DateTime<Utc>, shutdown: &CancellationToken) -> Result<bool, RunError> {
        let now = whole_second(now);
        let completed = self.store.feed_windows(self.key()).await?;
        let frequency = Duration::hours(i64::from(self.feed.settings.sync_frequency_hours));
        let Some(window) = incremental_window(self.go_live, frequency, self.overlap, &completed, now) else {
            return Ok(false);
        };
        self.pull_window(window, None, 0, 0, shutdown).await?;
        Ok(true)
    }

    /// Pulls `[since, until)` again in backfill chunks, completed before or not (a manual
    /// backfill: records pulled again are duplicates); never before going live nor after
    /// `now`.
    pub async fn backfill_range(
        &mut self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Result<(), RunError> {
        let mut from = whole_second(since.max(self.go_live));
        let until = whole_second(until.min(now));
        while from < until {
            let end = (from + crate::window::BACKFILL_CHUNK).min(until);
            self.pull_window(Window { kind: WindowKind::Backfill, since: from, until: end }, None, 0, 0, shutdown)
                .await?;
            from = end;
        }
        Ok(())
    }

    /// Runs the manual run an operator asked for, at `now`; its windows' checkpoints name it,
    /// so that a run resuming one of them goes on with it (`window::left_of_request`).
    pub async fn run_requested(
        &mut self,
        request: &FeedRunRequest,
        now: DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Result<(), RunError> {
        tracing::info!(feed = %self.label, kind = request.kind.as_str(), "running the manual run an operator asked for");
        self.pulling_for = Some(request.requested_at);
        let ran = match request.kind {
            FeedRunKind::Incremental => self.incremental(now, shutdown).await.map(drop),
            FeedRunKind::FullRefresh => self.full_refresh(shutdown).await.map(drop),
            FeedRunKind::Backfill { since, until } => self.backfill_range(since, until, now, shutdown).await,
        };
        self.pulling_for = None;
        ran
    }

    /// Runs the next step of the manual run `request` at `now`: the whole of an incremental or
    /// a full refresh, one chunk of a backfill. Returns what is left of it (the backfill's
    /// later chunks), `None` once it is done, so that the scheduled loop looks at the feed's
    /// switch and its schedule between chunks: a backfill of a year is 52 of them, hours of
    /// pulling, which held back the incremental due and an operator's off switch.
    pub async fn run_requested_step(
        &mut self,
        request: &FeedRunRequest,
        now: DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Result<Option<FeedRunRequest>, RunError> {
        let FeedRunKind::Backfill { since, until } = request.kind else {
            return self.run_requested(request, now, shutdown).await.map(|()| None);
        };
        let mut from = whole_second(since.max(self.go_live));
        let until = whole_second(until.min(now));
        // This request's chunks pulled since it was asked for are not pulled again: a restart
        // knows of its progress only the window on the checkpoint, which an incremental
        // between two chunks has taken over. Its chunks are told by their bounds (from its
        // `since`, a chunk each), and by the request's stamp on them (as stored, to the
        // microsecond): never by comparing the stamp with their completion, the admin
        // service's clock with the worker's.
        let completed = self.store.feed_windows(self.key()).await?;
        while let Some(done) = completed.iter().find(|window| {
            window.kind == WindowKind::Backfill
                && window.since == from
                && window.until == (from + crate::window::BACKFILL_CHUNK).min(until)
                && same_request(window.requested_at, Some(request.requested_at))
        }) {
            from = done.until;
        }
        if from >= until {
            return Ok(None);
        }
        let end = (from + crate::window::BACKFILL_CHUNK).min(until);
        let chunk = FeedRunRequest { kind: FeedRunKind::Backfill { since: from, until: end }, ..request.clone() };
        self.run_requested(&chunk, now, shutdown).await?;
        Ok((end < until)
            .then(|| FeedRunRequest { kind: FeedRunKind::Backfill { since: end, until }, ..request.clone() }))
    }

    /// Pulls the next backfill chunk of the oldest gap before `until`; `false` when there is
    /// no gap.
    pub async fn backfill_next(
        &mut self,
        until: DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Result<bool, RunError> {
        let until = whole_second(until);
        let completed = self.store.feed_windows(self.key()).await?;
        let Some(window) = backfill_window(self.go_live, &completed, until) else { return Ok(false) };
        self.pull_window(window, None, 0, 0, shutdown).await?;
        Ok(true)
    }

    /// Pulls `window` to its end, from `cursor` (its start when `None`), with the counts of
    /// the pass so far.
    async fn pull_window(
        &mut self,
        window: Window,
        cursor: Option<String>,
        n_pages: u64,
        n_records: u64,
        shutdown: &CancellationToken,
    ) -> Result<CompletedWindow, RunError> {
        // Pages are fetched one after another (each needs the cursor of the one before) while
        // batches are made durable: whatever arrived while a batch was applied is applied
        // next as one batch, up to `batch_size` records, checkpointed at its last page.
        // Pages are numbered on from the stored checkpoint as it stands now, not as it stood
        // when this run opened: another run of the feed (a manual `--once` beside the
        // scheduled worker) may have moved it since, and a page numbered below it would be
        // fenced off as applied already (decision 0028): lost.
        if let Some(stored) = checkpoint(&*self.sink, &self.source).await? {
            self.next_offset = self.next_offset.max(stored.offset);
        }
        let (pages, arrived) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let fetching = self.fetch_pages(window, cursor, (n_pages, n_records), self.next_offset, pages, shutdown);
        let applying = async {
            // Owned here, so that a failed apply drops it and the fetcher, blocked on a full
            // channel, is told the applier is gone instead of waiting for ever.
            let mut arrived = arrived;
            let mut applied: Option<WindowCursor> = None;
            while let Some(first) = arrived.recv().await {
                let (mut batch, mut position): (SourceBatch, WindowCursor) = first?;
                let mut failed = None;
                while batch.events.len() < self.batch_size {
                    match arrived.try_recv() {
                        Ok(Ok((more, more_position))) => {
                            batch.events.extend(more.events);
                            batch.checkpoint = more.checkpoint;
                            position = more_position;
                        }
                        Ok(Err(error)) => {
                            failed = Some(error);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // What arrived before a failure is made durable before the failure is told.
                let ours = batch.checkpoint.clone().unwrap_or(Position::at(0));
                let durable = self.sink.apply(batch).await?;
                // Records the store took for applied were numbered as another run's pages
                // (the checkpoint had passed them): that run's records, not necessarily these.
                if durable.applied_elsewhere > 0 {
                    let stored = self.forget_fenced_cursor(&ours).await?;
                    let (ours, n_records) = (ours.offset, durable.applied_elsewhere);
                    return Err(RunError::ConcurrentRun { ours, stored, n_records });
                }
                applied = Some(position);
                if let Some(error) = failed {
                    return Err(error);
                }
            }
            Ok::<_, RunError>(applied)
        };
        let (next_offset, applied) = tokio::join!(fetching, applying);
        self.next_offset = self.next_offset.max(next_offset);
        let last = applied?.expect("the fetcher sends at least one page or its error");
        self.record_completed(window, last.n_pages, last.n_records).await
    }

    /// After a batch whose pages the store took for another run's: takes this run's cursor
    /// off the checkpoint, if the batch left it there (its checkpoint at or past the other
    /// run's), and returns where the checkpoint stands. A resume would otherwise pull the
    /// window on from after the pages fenced off and record it as pulled, their records
    /// never applied; without a cursor the window, not recorded, is pulled again whole at the
    /// next run (decision 0015). Taking a cursor off is always safe: whatever window it named
    /// is pulled again.
    async fn forget_fenced_cursor(&self, ours: &Position) -> Result<i64, RunError> {
        let Some(stored) = checkpoint(&*self.sink, &self.source).await? else { return Ok(ours.offset) };
        if ours.cursor.is_some() && stored.cursor == ours.cursor {
            let bare = Position::at(stored.offset);
            if self.sink.rewind_checkpoint(&self.source, 0, stored.offset, &bare).await? {
                tracing::warn!(feed = %self.label, checkpoint = stored.offset, "another run of the feed applied pages this run numbered alike: this run's cursor is taken off the checkpoint, and its window is pulled again whole at the next run");
            }
        }
        Ok(stored.offset)
    }

    /// Fetches the window's pages from `cursor` on into `pages`, each as a batch checkpointed
    /// at the offset after `first_offset`'s; an expired cursor restarts the window (its
    /// counts with it). Ends after the last page or the first error (sent too), or when the
    /// applier is gone; returns the offset the next page would take.
    async fn fetch_pages(
        &self,
        window: Window,
        cursor: Option<String>,
        (mut n_pages, mut n_records): (u64, u64),
        first_offset: i64,
        pages: tokio::sync::mpsc::Sender<Result<(SourceBatch, WindowCursor), RunError>>,
        shutdown: &CancellationToken,
    ) -> i64 {
        fn request<'a>(window: &Window, cursor: Option<&'a str>) -> PageRequest<'a> {
            PageRequest::Window { since: window.since, until: window.until, cursor }
        }
        let mut offset = first_offset;
        let mut restarts = 0;
        let mut cursor = cursor;
        let mut paging = PassPaging::default();
        loop {
            // The applier gone (it failed) ends the request in flight too: a page asked for
            // could wait out 429s or a 5xx backoff for many minutes, for nothing.
            let asked = tokio::select! {
                asked = self.client.page(request(&window, cursor.as_deref()), shutdown) => asked,
                () = pages.closed() => return offset,
            };
            let page = match asked {
                Ok(page) => page,
                Err(PullError::CursorExpired) if restarts < MAX_PASS_RESTARTS => {
                    restarts += 1;
                    self.metrics.feed_retries.with_label_values(&["cursor_expired"]).inc();
                    tracing::warn!(feed = %self.label, since = %window.since, until = %window.until, "cursor expired: pulling the window again from its start");
                    (n_pages, n_records, cursor, paging) = (0, 0, None, PassPaging::default());
                    continue;
                }
                Err(error) => {
                    // The applier may be gone already (it failed): nothing is left to tell.
                    let _ = pages.send(Err(error.into())).await;
                    return offset;
                }
            };
            if let Err(error) = paging.next(&page) {
                // This page's records come again when the run resumes at its cursor.
                let _ = pages.send(Err(error.into())).await;
                return offset;
            }
            let next = page.next_cursor.clone();
            n_pages += 1;
            n_records += page.records.len() as u64;
            let position = WindowCursor { window, next: next.clone(), n_pages, n_records, request: self.pulling_for };
            let batch = self.batch(page, &position, offset);
            offset += 1;
            if pages.send(Ok((batch, position))).await.is_err() {
                return offset;
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return offset,
            }
        }
    }

    /// One page as a batch: its records as events at `offset`, the window's cursor as its
    /// checkpoint at the offset after it.
    fn batch(&self, page: Page, position: &WindowCursor, offset: i64) -> SourceBatch {
        let received_at = Utc::now();
        let key = self.key().clone();
        let mut n_rejected = 0_u64;
        let events: Vec<IncomingEvent> = page
            .records
            .into_iter()
            .map(|record| {
                let at = SourceRef { source: Arc::clone(&self.source), partition: 0, offset };
                let event = IncomingEvent::received(record_event(&key, record), received_at, at, None);
                n_rejected += u64::from(event.delivery.decoded.is_err());
                event
            })
            .collect();
        let n_valid = events.len() as u64 - n_rejected;
        self.metrics.feed_records.with_label_values(&[&self.label, "valid"]).inc_by(n_valid);
        if n_rejected > 0 {
            self.metrics.feed_records.with_label_values(&[&self.label, "rejected"]).inc_by(n_rejected);
        }
        SourceBatch {
            source: Arc::clone(&self.source),
            partition: 0,
            events,
            checkpoint: Some(Position { offset: offset + 1, cursor: Some(position.render()) }),
            last_message_at: None,
            high_watermark: None,
        }
    }

    async fn record_completed(
        &self,
        window: Window,
        n_pages: u64,
        n_records: u64,
    ) -> Result<CompletedWindow, RunError> {
        let completed_at = Utc::now();
        let completed = CompletedWindow {
            kind: window.kind,
            since: window.since,
            until: window.until,
            completed_at,
            n_records,
            n_pages,
            n_windows: 1,
            requested_at: self.pulling_for,
        };
        self.store.complete_window(self.key(), &completed).await?;
        if window.kind == catalog_store::WindowKind::Incremental {
            // A backfill window ends in the past by design: the lag is the incremental's.
            let lag = (completed_at - window.until).num_seconds().max(0);
            self.metrics.feed_window_lag_seconds.with_label_values(&[&self.label]).set(lag);
        }
        tracing::info!(feed = %self.label, kind = window.kind.as_str(), since = %window.since, until = %window.until, n_pages, n_records, "window pulled");
        Ok(completed)
    }
}
