//! The scheduler on an injected clock: a week across the spring DST change runs in
//! milliseconds, with incrementals at the tenant's local run times, backfill chunks only
//! when no incremental is due, and the weekly full refresh once backfill is done.

use std::sync::Arc;

use catalog_feed::{Clock, JumpingClock};
use catalog_testkit::feed_api::FeedApi;
use chrono::{DateTime, NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_of_schedule_runs_at_local_times_across_dst() {
    let fixture = sqlite().await;
    let record = |sku: &str, updated_at: &str| four_of(sku, at(updated_at));
    let api =
        FeedApi::start(vec![record("A-1", "2026-03-10T08:00:00Z"), record("B-2", "2026-03-28T08:00:00Z")], TOKEN).await;
    let mut settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"));
    settings.run_times = vec![chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time")];
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings]).await.expect("bootstrap");

    // Friday before the change (Berlin goes from CET to CEST on Sunday 2026-03-29) to the
    // Tuesday after.
    let end = CancellationToken::new();
    let clock = JumpingClock::new(at("2026-03-27T12:00:00Z"), at("2026-03-31T12:00:00Z"), end.clone());
    let clock: Arc<dyn Clock> = clock;
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("a simulated week takes no real time")
        .expect("run");

    let shown = pulls(&api);
    // Start (Friday 13:00 CET): the 09:00 run passed without a pull, so an incremental is due
    // at once; then backfill from go-live in 7-day chunks; then, backfill done, the first full
    // refresh. After that one incremental a day at 09:00 Berlin time (08:00 UTC in CET, 07:00
    // UTC in CEST), and the weekly refresh on Sunday at 02:00 local, which the change skips:
    // it runs when the clocks jump, 03:00 CEST (01:00 UTC), between Saturday's and Sunday's.
    insta::assert_snapshot!(shown, @r"
    window 2026-03-26T06:00:00Z .. 2026-03-27T12:00:00Z
    window 2026-02-28T23:00:00Z .. 2026-03-07T23:00:00Z
    window 2026-03-07T23:00:00Z .. 2026-03-14T23:00:00Z
    window 2026-03-14T23:00:00Z .. 2026-03-21T23:00:00Z
    window 2026-03-21T23:00:00Z .. 2026-03-26T06:00:00Z
    snapshot
    window 2026-03-26T12:00:00Z .. 2026-03-28T08:00:00Z
    snapshot
    window 2026-03-27T08:00:00Z .. 2026-03-29T07:00:00Z
    window 2026-03-28T07:00:00Z .. 2026-03-30T07:00:00Z
    window 2026-03-29T07:00:00Z .. 2026-03-31T07:00:00Z
    ");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers());
}

/// `sync_frequency_hours = 48` at 09:00 Berlin: after the backfill and the first refresh, one
/// incremental every other day, each reaching back to the end of the last (less the
/// overlap), across the spring change; not one a day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_synced_every_other_day_is_pulled_every_other_day() {
    let fixture = sqlite().await;
    let api = FeedApi::start(vec![four_of("A-1", at("2026-03-20T08:00:00Z"))], TOKEN).await;
    let mut settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 3, 20).expect("date"));
    settings.run_times = vec![chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time")];
    settings.sync_frequency_hours = 48;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings]).await.expect("bootstrap");

    let end = CancellationToken::new();
    let clock: Arc<dyn Clock> = JumpingClock::new(at("2026-03-27T12:00:00Z"), at("2026-04-03T12:00:00Z"), end.clone());
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("a simulated week takes no real time")
        .expect("run");
    // At start (Friday 13:00 CET) an incremental a period back and the overlap more, the
    // backfill before it, the first refresh and Sunday's; then 09:00 Berlin on Sunday (the
    // last run time within 48 hours and one of Friday's start), Tuesday and Thursday, never
    // on the days between.
    insta::assert_snapshot!(pulls(&api), @r"
    window 2026-03-24T12:00:00Z .. 2026-03-27T12:00:00Z
    window 2026-03-19T23:00:00Z .. 2026-03-24T12:00:00Z
    snapshot
    snapshot
    window 2026-03-26T12:00:00Z .. 2026-03-29T07:00:00Z
    window 2026-03-28T07:00:00Z .. 2026-03-31T07:00:00Z
    window 2026-03-30T07:00:00Z .. 2026-04-02T07:00:00Z
    ");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers());
}

/// What an operator does through the admin API, at a simulated instant.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    Switch(bool),
    Request(catalog_store::FeedRunKind),
    /// Breaks (or mends) the feed's paging, as its supplier's bug would.
    StuckCursor(bool),
    /// The feed's next requests meet these faults, as a supplier's bad minute would.
    Inject(Vec<catalog_testkit::feed_api::Fault>),
    /// Another run of the feed (another worker, a `--once` run) met a 429 asking for this long.
    AnotherRunHeldOff(chrono::Duration),
}

/// A jumping clock that acts on the feed through the store when simulated time passes the
/// given instants, as an operator would through the admin API.
#[derive(Debug)]
pub(crate) struct SwitchingClock {
    pub(crate) inner: Arc<JumpingClock>,
    pub(crate) store: Arc<dyn catalog_store::CatalogStore>,
    pub(crate) key: catalog_store::FeedKey,
    pub(crate) switches: std::sync::Mutex<Vec<(DateTime<Utc>, Action)>>,
    pub(crate) api: Option<FeedApi>,
}

#[async_trait::async_trait]
impl Clock for SwitchingClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    async fn sleep_until(&self, at: DateTime<Utc>, shutdown: &CancellationToken) {
        // The next switch due by `at` happens at its own time: the clock stops there first.
        let due = {
            let mut switches = self.switches.lock().expect("lock");
            match switches.first() {
                Some((when, _)) if *when <= at => Some(switches.remove(0)),
                _ => None,
            }
        };
        match due {
            Some((when, action)) => {
                self.inner.sleep_until(when, shutdown).await;
                match action {
                    Action::Switch(enabled) => {
                        assert!(self.store.set_feed_sync(&self.key, enabled).await.expect("switch"));
                    }
                    Action::Request(kind) => {
                        let request =
                            catalog_store::FeedRunRequest { kind, requested_by: "otto".to_owned(), requested_at: when };
                        assert!(self.store.request_feed_run(&self.key, &request).await.expect("request"));
                    }
                    Action::StuckCursor(stuck) => self.api.as_ref().expect("the feed's API").set_stuck_cursor(stuck),
                    Action::Inject(faults) => self.api.as_ref().expect("the feed's API").inject(faults),
                    Action::AnotherRunHeldOff(wait) => {
                        let failure = catalog_store::PullFailure {
                            key: self.key.clone(),
                            reason: "throttled".to_owned(),
                            error: "another run was asked to wait".to_owned(),
                            body: None,
                            supplier_hold_until: Some(when + wait),
                        };
                        self.store.record_pull_failure(&failure).await.expect("record");
                    }
                }
            }
            None => self.inner.sleep_until(at, shutdown).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_switched_off_while_scheduled_pulls_nothing_until_switched_on() {
    let fixture = sqlite().await;
    let api = FeedApi::start(vec![four_of("A-1", at("2026-06-01T08:00:00Z"))], TOKEN).await;
    let mut settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 6, 1).expect("date"));
    settings.run_times = vec![chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time")];
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings.clone()]).await.expect("bootstrap");

    // Monday 2026-06-01 12:00 UTC to Friday 12:00; off from Tuesday 00:00 to Thursday 00:00.
    let end = CancellationToken::new();
    let clock = Arc::new(SwitchingClock {
        inner: JumpingClock::new(at("2026-06-01T12:00:00Z"), at("2026-06-05T12:00:00Z"), end.clone()),
        store: Arc::clone(&fixture.store),
        key: settings.key.clone(),
        switches: std::sync::Mutex::new(vec![
            (at("2026-06-02T00:00:00Z"), Action::Switch(false)),
            (at("2026-06-04T00:00:00Z"), Action::Switch(true)),
        ]),
        api: None,
    });
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated days take no real time")
        .expect("run");

    let windows = pulls(&api);
    // Monday's catch-up (back to going live, midnight Berlin) and the first full refresh;
    // nothing on Tuesday or Wednesday; switched on at Thursday 00:00, the runs it missed are
    // caught up at once, reaching back over the days it was off (24 h before the end of
    // Monday's window, never before going live); then Thursday's and Friday's at 09:00
    // Berlin (07:00 UTC).
    insta::assert_snapshot!(windows, @r"
    window 2026-05-31T22:00:00Z .. 2026-06-01T12:00:00Z
    snapshot
    window 2026-05-31T22:00:00Z .. 2026-06-04T00:00:00Z
    window 2026-06-03T00:00:00Z .. 2026-06-04T07:00:00Z
    window 2026-06-03T07:00:00Z .. 2026-06-05T07:00:00Z
    ");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_runs_asked_for_while_scheduled_run_within_a_poll() {
    let fixture = sqlite().await;
    let api = FeedApi::start(vec![four_of("A-1", at("2026-05-20T08:00:00Z"))], TOKEN).await;
    let mut settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 5, 18).expect("date"));
    settings.run_times = vec![chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time")];
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings.clone()]).await.expect("bootstrap");

    // Monday 2026-06-01 12:00 UTC to Wednesday 12:00. Tuesday 10:00:30 an operator forces a
    // full refresh (the weekly one is on Sunday); at 14:00:30 a backfill of the already
    // pulled May 18-21 again.
    let end = CancellationToken::new();
    let backfill =
        catalog_store::FeedRunKind::Backfill { since: at("2026-05-18T00:00:00Z"), until: at("2026-05-21T00:00:00Z") };
    let clock = Arc::new(SwitchingClock {
        inner: JumpingClock::new(at("2026-06-01T12:00:00Z"), at("2026-06-03T12:00:00Z"), end.clone()),
        store: Arc::clone(&fixture.store),
        key: settings.key.clone(),
        switches: std::sync::Mutex::new(vec![
            (at("2026-06-02T10:00:30Z"), Action::Request(catalog_store::FeedRunKind::FullRefresh)),
            (at("2026-06-02T14:00:30Z"), Action::Request(backfill)),
        ]),
        api: None,
    });
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated days take no real time")
        .expect("run");

    let shown = pulls(&api);
    // Monday: the catch-up, the backfill since going live (two chunks), the first full
    // refresh. Tuesday 07:00 UTC the scheduled run; then the forced refresh and the backfill
    // of exactly the range asked for (pulled before, pulled again), each within a poll of
    // being asked; Wednesday's run.
    insta::assert_snapshot!(shown, @r"
    window 2026-05-31T06:00:00Z .. 2026-06-01T12:00:00Z
    window 2026-05-17T22:00:00Z .. 2026-05-24T22:00:00Z
    window 2026-05-24T22:00:00Z .. 2026-05-31T06:00:00Z
    snapshot
    window 2026-05-31T12:00:00Z .. 2026-06-02T07:00:00Z
    snapshot
    window 2026-05-18T00:00:00Z .. 2026-05-21T00:00:00Z
    window 2026-06-01T07:00:00Z .. 2026-06-03T07:00:00Z
    ");
    let feed = fixture.store.feed(&settings.key).await.expect("feed").expect("known");
    assert_eq!(feed.run_request, None, "each request is cleared once it ran");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers());
}

/// A manual run that keeps failing (a full refresh whose snapshot pages loop) is run again
/// after each failure's hold, but holds back none of the feed's scheduled incrementals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_that_keeps_failing_holds_back_no_scheduled_run() {
    let fixture = sqlite().await;
    let record = |sku: &str| four_of(sku, at("2026-05-20T08:00:00Z"));
    let api = FeedApi::start(vec![record("A-1")], TOKEN).await;
    // Three pages of snapshot (pages of 50): a stuck cursor makes its paging loop.
    api.set_snapshot((0..120).map(|n| record(&format!("S-{n}"))).collect());
    let mut settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 5, 18).expect("date"));
    settings.run_times = vec![chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time")];
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings.clone()]).await.expect("bootstrap");

    // Monday 12:00 UTC to Thursday 12:00; the paging breaks on Tuesday at 10:00, and an
    // operator forces a full refresh at 10:00:30.
    let end = CancellationToken::new();
    let clock = Arc::new(SwitchingClock {
        inner: JumpingClock::new(at("2026-06-01T12:00:00Z"), at("2026-06-04T12:00:00Z"), end.clone()),
        store: Arc::clone(&fixture.store),
        key: settings.key.clone(),
        switches: std::sync::Mutex::new(vec![
            (at("2026-06-02T10:00:00Z"), Action::StuckCursor(true)),
            (at("2026-06-02T10:00:30Z"), Action::Request(catalog_store::FeedRunKind::FullRefresh)),
        ]),
        api: Some(api.clone()),
    });
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated days take no real time")
        .expect("run");

    let shown = pulls(&api);
    // Each incremental due runs once the hold of the request's last failure has passed.
    for day in ["2026-06-03T07:0", "2026-06-04T07:0"] {
        let ran = shown.lines().any(|line| line.starts_with("window") && line.contains(&format!(".. {day}")));
        assert!(ran, "the run due at {day}0: {shown}");
    }
    let feed = fixture.store.feed(&settings.key).await.expect("feed").expect("known");
    assert!(feed.run_request.is_some(), "the failing request stays, to be run again");
}

/// A simulated clock that moves on a `tick` each time it is read, as real time passes while
/// a worker pulls; jumps when asked to sleep, like `JumpingClock`.
#[derive(Debug)]
pub(crate) struct TickingClock {
    pub(crate) now: std::sync::Mutex<DateTime<Utc>>,
    pub(crate) tick: chrono::Duration,
    pub(crate) stop_at: DateTime<Utc>,
    pub(crate) end: CancellationToken,
}

impl TickingClock {
    /// Runs `source`'s schedule on a clock that starts at `from` and moves on `tick` at each
    /// read, until the run asks to sleep past `stop_at`: simulated time, at most a minute of
    /// real time.
    pub(crate) async fn run(
        source: &catalog_feed::FeedSource,
        from: DateTime<Utc>,
        tick: chrono::Duration,
        stop_at: DateTime<Utc>,
    ) {
        let end = CancellationToken::new();
        let clock: Arc<dyn Clock> =
            Arc::new(TickingClock { now: std::sync::Mutex::new(from), tick, stop_at, end: end.clone() });
        tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
            .await
            .expect("simulated time takes no real time")
            .expect("run");
    }
}

#[async_trait::async_trait]
impl Clock for TickingClock {
    fn now(&self) -> DateTime<Utc> {
        let mut now = self.now.lock().expect("lock");
        *now += self.tick;
        *now
    }

    async fn sleep_until(&self, at: DateTime<Utc>, _shutdown: &CancellationToken) {
        if at >= self.stop_at {
            self.end.cancel();
            return;
        }
        let mut now = self.now.lock().expect("lock");
        *now = (*now).max(at);
    }
}

/// The seconds a pull takes are no gap: backfill stops at the newest completed window, so it
/// ends, and the first full refresh runs (decision 0018).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_a_pull_takes_is_no_gap_to_backfill() {
    let fixture = sqlite().await;
    let record = |sku: &str, updated_at: &str| four_of(sku, at(updated_at));
    let api = FeedApi::start(vec![record("A-1", "2026-03-10T08:00:00Z")], TOKEN).await;
    let mut settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"));
    settings.run_times = vec![chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time")];
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings]).await.expect("bootstrap");

    TickingClock::run(&source, at("2026-03-27T12:00:00Z"), chrono::Duration::seconds(1), at("2026-03-28T12:00:00Z"))
        .await;

    let shown = pulls(&api);
    let windows: Vec<&str> = shown.lines().filter(|line| line.starts_with("window")).collect();
    // The first incremental, four backfill chunks from going live, the next day's incremental.
    assert!(windows.len() <= 6, "backfill ends: {shown}");
    assert!(shown.lines().any(|line| line == "snapshot"), "the first full refresh runs once backfill is done: {shown}");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers());
}

/// A feed created while the scheduled source runs (another process's `--feeds-file`) is
/// scheduled within a poll, and a manual run asked for it runs, without a restart: the feeds
/// were read once, at start, and the run request waited for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_created_while_scheduled_is_picked_up_with_its_manual_run() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let record = |sku: &str| four_of(sku, now - chrono::TimeDelta::hours(1));
    let (first_api, later_api) =
        (FeedApi::start(vec![record("A-1")], TOKEN).await, FeedApi::start(vec![record("B-1")], TOKEN).await);
    let go_live = (now - chrono::TimeDelta::days(2)).date_naive();
    let first = feed_settings("acme", &first_api, go_live);
    let later = feed_settings("globex", &later_api, go_live);
    let mut settings = quick_settings();
    settings.switch_poll = chrono::TimeDelta::milliseconds(100);
    let source = fixture.source(settings, TOKEN);
    source.bootstrap(std::slice::from_ref(&first)).await.expect("bootstrap");

    let end = CancellationToken::new();
    let running = tokio::spawn({
        let (source, end) = (source.clone(), end.clone());
        async move { source.run(Arc::new(catalog_feed::SystemClock), end).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    source.bootstrap(std::slice::from_ref(&later)).await.expect("a feed created meanwhile");
    let request = catalog_store::FeedRunRequest {
        kind: catalog_store::FeedRunKind::FullRefresh,
        requested_by: "otto".to_owned(),
        requested_at: Utc::now(),
    };
    assert!(fixture.store.request_feed_run(&later.key, &request).await.expect("request"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let feed = fixture.store.feed(&later.key).await.expect("feed").expect("known");
        if feed.run_request.is_none() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the manual run of the later feed never ran: {feed:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    end.cancel();
    running.await.expect("the source's task").expect("run");
    assert!(pulls(&later_api).contains("snapshot"), "{}", pulls(&later_api));
    assert_eq!(fixture.offers(&key("globex")).await, later_api.expected_offers());
}

/// A manual backfill of twelve weeks runs a chunk at a time: the incremental due goes between
/// its chunks instead of after all of them (a backfill of a year, hours of pulling, held back
/// the incremental due and the feed's off switch), and every chunk is pulled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_manual_backfill_lets_the_incremental_due_go_between_its_chunks() {
    let fixture = sqlite().await;
    let api = FeedApi::start(vec![four_of("A-1", at("2026-04-01T08:00:00Z"))], TOKEN).await;
    let mut settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"));
    settings.run_times = vec![chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time")];
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    let backfill =
        catalog_store::FeedRunKind::Backfill { since: at("2026-03-02T00:00:00Z"), until: at("2026-05-25T00:00:00Z") };
    let request = catalog_store::FeedRunRequest {
        kind: backfill,
        requested_by: "otto".to_owned(),
        requested_at: at("2026-06-01T06:50:00Z"),
    };
    assert!(fixture.store.request_feed_run(&settings.key, &request).await.expect("request"));

    // Every read of the clock is ten minutes after the one before: pulling takes time.
    TickingClock::run(&source, at("2026-06-01T06:50:00Z"), chrono::Duration::minutes(10), at("2026-06-02T06:00:00Z"))
        .await;

    let shown = pulls(&api);
    let lines: Vec<&str> = shown.lines().collect();
    let chunks: Vec<String> = (0..12)
        .map(|week| {
            let since = at("2026-03-02T00:00:00Z") + chrono::Duration::weeks(week);
            let until = since + chrono::Duration::weeks(1);
            format!("window {} .. {}", since.format("%Y-%m-%dT%H:%M:%SZ"), until.format("%Y-%m-%dT%H:%M:%SZ"))
        })
        .collect();
    for chunk in &chunks {
        assert_eq!(lines.iter().filter(|line| **line == chunk.as_str()).count(), 1, "{chunk} once:\n{shown}");
    }
    let last_chunk = lines.iter().position(|line| *line == chunks[11].as_str()).expect("the last chunk");
    let incremental = lines.iter().position(|line| line.contains(" .. 2026-06-01T")).expect("the incremental");
    assert!(incremental < last_chunk, "the incremental went between the chunks:\n{shown}");
    let feed = fixture.store.feed(&settings.key).await.expect("feed").expect("known");
    assert_eq!(feed.run_request, None, "the request is cleared once its last chunk is pulled");
}
