//! A feed's runs beside each other and beside a failing store: a run opened before another
//! run of the same feed moved its checkpoint still applies every record it pulls, and a
//! window whose apply fails ends with the failure instead of waiting for ever on its fetcher.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catalog_app::{Applier, BatchSink, Durable, Reread, SinkError, SourceBatch, SourceError};
use catalog_core::InvalidTraceParent;
use catalog_feed::{FeedClient, FeedRun, OnceScope, RunError};
use catalog_store::{Position, SourceRef};
use catalog_testkit::feed_api::{Fault, FeedApi};
use chrono::{DateTime, Duration as TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// The scheduled worker's run of `acme`, opened as the worker opens it (before any manual run).
async fn open_run(fixture: &Fixture, api: &FeedApi, sink: Arc<dyn BatchSink>) -> FeedRun {
    let feed = fixture.store.feed(&key("acme")).await.expect("read").expect("bootstrapped");
    let settings = quick_settings();
    let client = FeedClient::new(
        reqwest::Client::new(),
        &api.base_url(),
        Some(catalog_feed::FeedToken::new(TOKEN.to_owned())),
        None,
        settings.retry,
        settings.page_size,
        "canary/acme".to_owned(),
        fixture.metrics.clone(),
    );
    FeedRun::open(feed, client, sink, fixture.store.clone(), fixture.metrics.clone(), settings.overlap, 100)
        .await
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_opened_before_a_manual_run_still_applies_every_record_it_pulls() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(1_200, 3, now - TimeDelta::hours(2)), TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(4)).date_naive())]).await.expect("boot");
    let sink: Arc<dyn BatchSink> =
        Arc::new(Applier::new(fixture.store.clone(), fixture.metrics.clone(), CancellationToken::new()));
    let mut scheduled = open_run(&fixture, &api, sink).await;

    // An operator's `--once` pulls everything due meanwhile: dozens of pages, checkpointed.
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("manual run");
    assert_eq!(report.failed, [], "{report:?}");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers());

    // New records arrive; the scheduled worker's next window pulls them.
    let mut changed = records(1_200, 3, now - TimeDelta::hours(2));
    changed.extend(records(300, 1, Utc::now()).into_iter().map(|mut record| {
        record.quantity = 7;
        record
    }));
    api.set_records(changed);
    let shutdown = CancellationToken::new();
    assert!(scheduled.incremental(Utc::now() + TimeDelta::seconds(1), &shutdown).await.expect("window"));
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers(), "no page was fenced off as applied");
}

/// What happens to the batches after the first `healthy`.
#[derive(Debug, Clone, Copy)]
enum Meddling {
    /// Refused for good.
    Fail,
    /// Another run of the feed checkpoints far ahead just before each is applied.
    RunAhead,
    /// Another run of the feed, at the same page numbers, checkpoints exactly where each
    /// batch does just before it is applied: the checkpoint never moves past this run's.
    RunAlongside,
    /// The feed's checkpoint cannot be read, for good: no run can start.
    CheckpointRefused,
    /// The feed's checkpoint cannot be read, for good, once a batch was applied.
    CheckpointRefusedOnceApplied,
}

/// The applier, with something happening to every batch after the first `healthy`.
struct MeddlingSink {
    inner: Arc<dyn BatchSink>,
    healthy: usize,
    applied: AtomicUsize,
    meddling: Meddling,
}

#[async_trait]
impl BatchSink for MeddlingSink {
    async fn checkpoint(&self, source: &str, partition: i32) -> Result<Option<Position>, SinkError> {
        let applied = self.applied.load(Ordering::SeqCst) > 0;
        match self.meddling {
            Meddling::CheckpointRefused => {}
            Meddling::CheckpointRefusedOnceApplied if applied => {}
            _ => return self.inner.checkpoint(source, partition).await,
        }
        Err(SinkError::Fatal("the store cannot read the checkpoint".to_owned()))
    }

    async fn rewind_checkpoint(
        &self,
        source: &str,
        partition: i32,
        from: i64,
        to: &Position,
    ) -> Result<bool, SinkError> {
        self.inner.rewind_checkpoint(source, partition, from, to).await
    }

    async fn apply(&self, batch: SourceBatch) -> Result<Durable, SinkError> {
        if self.applied.fetch_add(1, Ordering::SeqCst) >= self.healthy {
            // Where the other run checkpoints.
            let offset = match self.meddling {
                Meddling::Fail | Meddling::CheckpointRefused | Meddling::CheckpointRefusedOnceApplied => {
                    return Err(SinkError::Fatal("the store refuses the batch".to_owned()))
                }
                Meddling::RunAhead => self.inner.checkpoint(&batch.source, 0).await?.map_or(0, |at| at.offset) + 1_000,
                Meddling::RunAlongside => batch.checkpoint.as_ref().expect("a feed batch has a position").offset,
            };
            let other_run = SourceBatch {
                source: Arc::clone(&batch.source),
                partition: 0,
                events: Vec::new(),
                checkpoint: Some(Position { offset, cursor: None }),
                last_message_at: None,
                high_watermark: None,
            };
            self.inner.apply(other_run).await?;
        }
        self.inner.apply(batch).await
    }

    fn reread(&self, partition: i32, reason: Reread) {
        self.inner.reread(partition, reason);
    }

    fn reading_starts(&self, partition: i32, next_offset: i64, high_watermark: i64) {
        self.inner.reading_starts(partition, next_offset, high_watermark);
    }

    fn source_error(&self, error: &SourceError) {
        self.inner.source_error(error);
    }

    fn offset_gap(&self, partition: i32, from: i64, to: i64) {
        self.inner.offset_gap(partition, from, to);
    }

    fn invalid_traceparent(&self, at: &SourceRef, invalid: InvalidTraceParent) {
        self.inner.invalid_traceparent(at, invalid);
    }

    fn partition_started(&self, source: &str, partition: i32) {
        self.inner.partition_started(source, partition);
    }

    fn message_waiting(&self, source: &str, partition: i32, at: DateTime<Utc>) {
        self.inner.message_waiting(source, partition, at);
    }

    fn partition_done(&self, source: &str, partition: i32) {
        self.inner.partition_done(source, partition);
    }
}

/// A feed of `n_records` over the day before `records_end`, bootstrapped, and a run of it whose
/// batches after the first meet `meddling`.
async fn meddled_run(
    n_records: usize,
    records_end: DateTime<Utc>,
    meddling: Meddling,
) -> (Fixture, FeedApi, catalog_feed::FeedSource, FeedRun) {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(n_records, 1, records_end), TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("boot");
    let inner: Arc<dyn BatchSink> =
        Arc::new(Applier::new(fixture.store.clone(), fixture.metrics.clone(), CancellationToken::new()));
    let sink = Arc::new(MeddlingSink { inner, healthy: 1, applied: AtomicUsize::new(0), meddling });
    let run = open_run(&fixture, &api, sink).await;
    (fixture, api, source, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_whose_apply_fails_ends_with_the_failure_while_pages_wait() {
    // Forty pages of 50 in one window: far more than the fetcher may hold ahead.
    let (_fixture, _api, _source, mut run) =
        meddled_run(2_000, Utc::now() - TimeDelta::minutes(5), Meddling::Fail).await;
    let now = Utc::now();
    // The bound only turns a hang into a failure; the window fails at its second batch.
    let outcome = tokio::time::timeout(Duration::from_secs(60), run.incremental(now, &CancellationToken::new()))
        .await
        .expect("the window ends instead of waiting on its fetcher for ever");
    assert!(matches!(outcome, Err(RunError::Sink(SinkError::Fatal(_)))), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_another_run_overtook_is_not_recorded_and_the_next_run_pulls_it_whole() {
    a_window_another_run_fenced_is_pulled_again(Meddling::RunAhead).await;
}

/// Two runs whose pages carry the same numbers: the checkpoint never moves past this run's,
/// yet the store took this run's records for the other run's pages (decision 0015).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_another_run_pulled_at_the_same_pages_is_not_recorded_and_the_next_run_pulls_it_whole() {
    a_window_another_run_fenced_is_pulled_again(Meddling::RunAlongside).await;
}

/// Records a day older than the overlap of the next incremental: only the window pulled again
/// whole brings the fenced ones back, not the overlap of the next.
async fn a_window_another_run_fenced_is_pulled_again(meddling: Meddling) {
    let records_end = Utc::now() - TimeDelta::hours(25);
    let (fixture, api, source, mut run) = meddled_run(1_000, records_end, meddling).await;
    let now = Utc::now();
    let outcome = run.incremental(now, &CancellationToken::new()).await;
    assert!(matches!(outcome, Err(RunError::ConcurrentRun { .. })), "{outcome:?}");
    assert_eq!(fixture.store.feed_windows(&key("acme")).await.expect("windows"), [], "not recorded as pulled");
    assert_ne!(fixture.offers(&key("acme")).await, api.expected_offers(), "pages were fenced off");

    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("next run");
    assert_eq!(report.failed, [], "{report:?}");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers());
}

/// A feed source whose store refuses every batch for good.
fn refused_source(fixture: &Fixture) -> catalog_feed::FeedSource {
    meddled_source(fixture, Meddling::Fail)
}

fn meddled_source(fixture: &Fixture, meddling: Meddling) -> catalog_feed::FeedSource {
    let inner: Arc<dyn BatchSink> =
        Arc::new(Applier::new(fixture.store.clone(), fixture.metrics.clone(), CancellationToken::new()));
    // Batches are refused for good with `Fail`; the others meddle with the checkpoint alone.
    let healthy = if matches!(meddling, Meddling::Fail) { 0 } else { usize::MAX };
    let sink = Arc::new(MeddlingSink { inner, healthy, applied: AtomicUsize::new(0), meddling });
    catalog_feed::FeedSource::new(quick_settings(), fixture.store.clone(), sink, fixture.metrics.clone(), tokens(TOKEN))
        .expect("source")
}

/// A feed of 20 records whose source meets `meddling`, scheduled over two simulated days: its API
/// and how the source's run ended.
async fn scheduled_for_two_days(
    fixture: &Fixture,
    meddling: Meddling,
) -> (FeedApi, Result<(), catalog_feed::FeedSourceError>) {
    let now = Utc::now();
    let api = FeedApi::start(records(20, 1, now - TimeDelta::minutes(5)), TOKEN).await;
    let source = meddled_source(fixture, meddling);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("boot");
    let end = CancellationToken::new();
    let clock: Arc<dyn catalog_feed::Clock> =
        catalog_feed::JumpingClock::new(now, now + TimeDelta::days(2), end.clone());
    let outcome = tokio::time::timeout(Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated days take no real time");
    (api, outcome)
}

/// A batch the store refuses for good (a fatal sink error) stops the scheduled source, and the
/// worker with it, as it stops the Kafka and file sources; it is not held and retried every
/// hold, unseen by a supervisor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_failure_stops_the_scheduled_source() {
    let fixture = sqlite().await;
    let (api, outcome) = scheduled_for_two_days(&fixture, Meddling::Fail).await;
    assert!(
        matches!(&outcome, Err(catalog_feed::FeedSourceError::Fatal { feed, error: RunError::Sink(SinkError::Fatal(_)) }) if feed == "canary/acme"),
        "{outcome:?}"
    );
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    assert_eq!(letters.len(), 1, "the failure is recorded before the worker stops: {letters:?}");
    assert_eq!(api.requests().iter().filter(|request| request.cursor.is_none()).count(), 1, "not retried");
}

/// The store refuses the first page for good while the feed throttles the second for 50 s
/// (a wait a run takes): the run stops at once, asking the supplier nothing more, instead of
/// waiting out the throttling for a page no one will apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_store_refuses_stops_the_page_in_flight() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(120, 1, now - TimeDelta::minutes(5)), TOKEN).await;
    let settings = feed_settings("acme", &api, (now - TimeDelta::days(1)).date_naive());
    let source = refused_source(&fixture);
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    api.set_page_delay(Duration::from_millis(300));
    // The first page is answered; the second meets a 429 asking for 50 s.
    api.inject([Fault::Slow(Duration::ZERO), Fault::Throttle { retry_after_secs: 50 }]);
    let shutdown = CancellationToken::new();
    let run = source.run_once(OnceScope::Due, &shutdown);
    let ran = tokio::time::timeout(Duration::from_secs(20), run).await.expect("the run stops at once");
    let said = format!("{ran:?}");
    assert!(said.contains("the store refuses the batch"), "{said}");
    assert!(api.requests().len() <= 2, "nothing asked after the 429: {:?}", api.requests());
}

/// A feed of 300 records live for 30 days, its scheduled worker's applier, and the start of
/// a three-week manual backfill.
struct Backfills {
    fixture: Fixture,
    api: FeedApi,
    sink: Arc<dyn BatchSink>,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
}

async fn backfills() -> Backfills {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(300, 20, now - TimeDelta::hours(1)), TOKEN).await;
    let go_live = (now - TimeDelta::days(30)).date_naive();
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, go_live)]).await.expect("boot");
    let sink: Arc<dyn BatchSink> =
        Arc::new(Applier::new(fixture.store.clone(), fixture.metrics.clone(), CancellationToken::new()));
    let since = go_live.and_time(chrono::NaiveTime::MIN).and_utc() + TimeDelta::days(1);
    Backfills { fixture, api, sink, now, since }
}

/// A manual backfill of three weeks from `since`, asked for at `requested_at`.
fn backfill(since: DateTime<Utc>, requested_at: DateTime<Utc>) -> catalog_store::FeedRunRequest {
    catalog_store::FeedRunRequest {
        kind: catalog_store::FeedRunKind::Backfill { since, until: since + TimeDelta::weeks(3) },
        requested_by: "otto".to_owned(),
        requested_at,
    }
}

/// A manual backfill goes on after a restart from its first chunk not pulled since it was
/// asked for: the checkpoint names only the last window pulled, which an incremental between
/// two chunks takes over, so the run after a restart started the request again from its first
/// chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_backfill_goes_on_after_a_restart_from_its_first_chunk_not_pulled() {
    let Backfills { fixture, api, sink, now, since } = backfills().await;
    let request = backfill(since, now - TimeDelta::minutes(1));
    let mut run = open_run(&fixture, &api, Arc::clone(&sink)).await;
    let rest = run.run_requested_step(&request, now, &CancellationToken::new()).await.expect("first chunk");
    assert!(rest.is_some(), "two chunks left");
    // An incremental between two chunks, then the worker restarts with the request as stored.
    run.incremental(now, &CancellationToken::new()).await.expect("incremental");
    let before = api.requests().len();
    let mut restarted = open_run(&fixture, &api, sink).await;
    restarted.run_requested_step(&request, now, &CancellationToken::new()).await.expect("next chunk");
    let asked: Vec<Option<String>> = api.requests()[before..].iter().map(|request| request.since.clone()).collect();
    let second = (since + TimeDelta::weeks(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(asked.first().cloned().flatten(), Some(second), "the second chunk, not the first again: {asked:?}");
}

/// A manual backfill pulls every chunk it was asked for, whichever clock stamped it: after a
/// restart it skips only the chunks pulled for it, not a chunk of the same bounds another run
/// completed (here an earlier backfill of the range) shortly before the request, whose
/// completion the worker's clock stamped after the admin service's clock stamped the request.
/// Told apart by comparing the two clocks, that chunk was skipped; and a chunk pulled again for
/// the request kept the first pull's stamp, so a restart pulled it a third time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_backfill_after_a_restart_skips_only_its_own_chunks_whatever_the_clocks() {
    let Backfills { fixture, api, sink, now, since } = backfills().await;
    let chunk = |weeks| Some((since + TimeDelta::weeks(weeks)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let shutdown = CancellationToken::new();
    let mut run = open_run(&fixture, &api, Arc::clone(&sink)).await;
    run.run_requested_step(&backfill(since, now - TimeDelta::hours(2)), now, &shutdown)
        .await
        .expect("an earlier backfill");

    // Asked for after that chunk completed, stamped by an admin clock a minute behind.
    let request = backfill(since, now - TimeDelta::minutes(1));
    let before = api.requests().len();
    let mut restarted = open_run(&fixture, &api, Arc::clone(&sink)).await;
    restarted.run_requested_step(&request, now, &shutdown).await.expect("first chunk");
    assert_eq!(api.requests()[before].since, chunk(0), "the first chunk is pulled for the request");

    // An incremental between two chunks takes the checkpoint over, then the worker restarts.
    restarted.incremental(now, &shutdown).await.expect("incremental");
    let before = api.requests().len();
    let mut again = open_run(&fixture, &api, sink).await;
    again.run_requested_step(&request, now, &shutdown).await.expect("next chunk");
    assert_eq!(api.requests()[before].since, chunk(1), "the second chunk, not the first again");
}

/// A checkpoint the store cannot read for good stops the scheduled source too, and its dead
/// letter says what failed (`store_checkpoint`, decision 0015). Before, the run that could not
/// start was recorded as a page that could not be applied (`apply`) and held and retried
/// every hold, unseen by a supervisor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_that_cannot_be_read_for_good_stops_the_scheduled_source() {
    let fixture = sqlite().await;
    let (api, outcome) = scheduled_for_two_days(&fixture, Meddling::CheckpointRefused).await;
    assert!(
        matches!(&outcome, Err(catalog_feed::FeedSourceError::Fatal { feed, error: RunError::Checkpoint(SinkError::Fatal(_)) }) if feed == "canary/acme"),
        "{outcome:?}"
    );
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    let reasons: Vec<&str> = letters.iter().map(|letter| letter.reason.as_str()).collect();
    assert_eq!(reasons, ["store_checkpoint"], "{letters:?}");
    assert_eq!(api.requests().len(), 0, "nothing pulled");
}

/// The same once the run has started: the checkpoint read again by a later window, or by the
/// next run, is said as the checkpoint's (`store_checkpoint`), not as a page not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_that_cannot_be_read_midway_is_said_as_such() {
    let fixture = sqlite().await;
    let (api, outcome) = scheduled_for_two_days(&fixture, Meddling::CheckpointRefusedOnceApplied).await;
    assert!(
        matches!(
            &outcome,
            Err(catalog_feed::FeedSourceError::Fatal { error: RunError::Checkpoint(SinkError::Fatal(_)), .. })
        ),
        "{outcome:?}"
    );
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    let reasons: Vec<&str> = letters.iter().map(|letter| letter.reason.as_str()).collect();
    assert_eq!(reasons, ["store_checkpoint"], "{letters:?}");
    assert!(!api.requests().is_empty(), "the run had started");
}
