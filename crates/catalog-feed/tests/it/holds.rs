//! The failure hold of the scheduled source (decision 0018): a failed run holds its feed for
//! `failure_hold`, or for as long as its supplier's `Retry-After` asked if longer, counted
//! from the failure; a manual run an operator asks for after the failure runs at once, but
//! never inside a `Retry-After` still in force.

use std::sync::Arc;

use catalog_feed::{Clock, JumpingClock};
use catalog_store::FeedRunKind;
use catalog_testkit::feed_api::{Fault, FeedApi};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::harness::*;
use crate::schedule::{Action, SwitchingClock, TickingClock};

/// Each window's first request as `until status`: an incremental window ends when it was
/// pulled.
fn window_requests(api: &FeedApi) -> Vec<String> {
    api.requests()
        .iter()
        .filter(|request| request.cursor.is_none() && !request.snapshot)
        .map(|request| format!("{} {}", request.until.as_deref().unwrap_or("-"), request.status))
        .collect()
}

/// A feed pulled daily at 09:00 Berlin time, gone live two days before.
async fn feed(fixture: &Fixture) -> (FeedApi, catalog_feed::FeedSource, catalog_store::FeedKey) {
    let api = FeedApi::start(vec![four_of("A-1", at("2026-05-31T08:00:00Z"))], TOKEN).await;
    let mut settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 5, 30).expect("date"));
    settings.run_times = vec![NaiveTime::from_hms_opt(9, 0, 0).expect("time")];
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    (api, source, settings.key)
}

/// The windows asked for when the feed's first request (its catch-up incremental, Monday
/// 2026-06-01 at 12:00 UTC) meets `fault` and an operator asks for an incremental run at
/// 12:00:30.
async fn manual_run_asked_after(fault: Fault) -> Vec<String> {
    let fixture = sqlite().await;
    let (api, source, key) = feed(&fixture).await;
    api.inject([fault]);
    let end = CancellationToken::new();
    let clock = Arc::new(SwitchingClock {
        inner: JumpingClock::new(at("2026-06-01T12:00:00Z"), at("2026-06-01T14:00:00Z"), end.clone()),
        store: Arc::clone(&fixture.store),
        key: key.clone(),
        switches: std::sync::Mutex::new(vec![(at("2026-06-01T12:00:30Z"), Action::Request(FeedRunKind::Incremental))]),
        api: None,
    });
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated hours take no real time")
        .expect("run");
    let feed = fixture.store.feed(&key).await.expect("feed").expect("known");
    assert_eq!(feed.run_request, None, "the manual run ran");
    window_requests(&api)
}

/// A refusal (a token the supplier revoked, then restored): the operator's run asked for
/// after it runs at once, not when the 5-minute hold ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_asked_after_a_failure_runs_at_once() {
    let windows = manual_run_asked_after(Fault::Status(401)).await;
    assert_eq!(windows[..2], ["2026-06-01T12:00:00Z 401", "2026-06-01T12:00:30Z 200"], "{windows:?}");
}

/// A 429 whose `Retry-After` (2 minutes) ended the run: the operator's run waits for it,
/// and only for it, not for the rest of the 5-minute hold; one of an hour is waited out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_asked_after_a_failure_waits_only_for_the_supplier_s_retry_after() {
    let windows = manual_run_asked_after(Fault::Throttle { retry_after_secs: 120 }).await;
    assert_eq!(windows[..2], ["2026-06-01T12:00:00Z 429", "2026-06-01T12:02:00Z 200"], "{windows:?}");
    let windows = manual_run_asked_after(Fault::Throttle { retry_after_secs: 3_600 }).await;
    assert_eq!(windows[..2], ["2026-06-01T12:00:00Z 429", "2026-06-01T13:00:00Z 200"], "{windows:?}");
}

/// A run takes time: here every read of the clock is ten minutes after the one before, so
/// the run that met the 429 ended ten minutes after it began (its window ends where it
/// began). The supplier's hour counts from its answer: the feed is asked again no sooner
/// than an hour after the run ended, not an hour after it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hold_counts_from_the_failure_not_from_the_start_of_the_run() {
    let fixture = sqlite().await;
    let (api, source, _key) = feed(&fixture).await;
    api.inject([Fault::Throttle { retry_after_secs: 3_600 }]);
    TickingClock::run(&source, at("2026-06-01T12:00:00Z"), chrono::Duration::minutes(10), at("2026-06-01T16:00:00Z"))
        .await;
    let windows = window_requests(&api);
    let until = |line: &str| at(line.split(' ').next().expect("until"));
    assert!(windows.len() >= 2 && windows[0].ends_with(" 429"), "{windows:?}");
    let (began, next) = (until(&windows[0]), until(&windows[1]));
    assert!(
        next >= began + chrono::Duration::minutes(70),
        "asked again at {next}, the run began at {began}: {windows:?}"
    );
}

/// The admin service's clock is ten seconds ahead of the worker's: the manual run asked for
/// (stamped 12:00:10) meets a revoked token at 12:00, its own failure. It waits out the hold
/// like any run that failed, instead of being taken, for ten seconds of the worker's clock,
/// for a request made after its failure and run again at once, again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_that_failed_waits_for_the_hold_whatever_the_admin_service_s_clock() {
    let fixture = sqlite().await;
    let (api, _source, key) = feed(&fixture).await;
    let source = fixture.source(quick_settings(), "revoked");
    let request = catalog_store::FeedRunRequest {
        kind: FeedRunKind::Incremental,
        requested_by: "otto".to_owned(),
        requested_at: at("2026-06-01T12:00:10Z"),
    };
    assert!(fixture.store.request_feed_run(&key, &request).await.expect("request"));
    // Every read of the worker's clock is a second after the one before.
    TickingClock::run(&source, at("2026-06-01T12:00:00Z"), chrono::Duration::seconds(1), at("2026-06-01T12:04:00Z"))
        .await;
    let windows = window_requests(&api);
    assert_eq!(windows.len(), 1, "asked once before the hold ends: {windows:?}");
}

/// A switching clock whose sleeps last until the time asked: an operator's action at its
/// instant does not wake the sleeper, as it does not in production.
#[derive(Debug)]
struct ThroughClock(SwitchingClock, CancellationToken);

#[async_trait::async_trait]
impl Clock for ThroughClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }

    async fn sleep_until(&self, at: DateTime<Utc>, shutdown: &CancellationToken) {
        while self.0.now() < at && !shutdown.is_cancelled() && !self.1.is_cancelled() {
            self.0.sleep_until(at, shutdown).await;
        }
    }
}

/// A feed whose run cannot start (its token variable unset) at 12:00, with these operator
/// actions afterwards; the source's token lookup finds the token from its second call on
/// when `token_set_after_the_failure`. Returns the windows asked and the letter's attempts.
async fn a_feed_without_its_token(
    actions: Vec<(DateTime<Utc>, Action)>,
    token_set_after_the_failure: bool,
) -> (Vec<String>, Vec<u32>) {
    let fixture = sqlite().await;
    let (api, _source, key) = feed(&fixture).await;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let lookup: catalog_feed::TokenLookup = Arc::new(move |name| {
        let call = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (name == TOKEN_ENV && token_set_after_the_failure && call > 0).then(|| TOKEN.to_owned())
    });
    let source = fixture.source_with_tokens(quick_settings(), lookup);
    let end = CancellationToken::new();
    let clock = Arc::new(ThroughClock(
        SwitchingClock {
            inner: JumpingClock::new(at("2026-06-01T12:00:00Z"), at("2026-06-01T13:00:00Z"), end.clone()),
            store: Arc::clone(&fixture.store),
            key,
            switches: std::sync::Mutex::new(actions),
            api: None,
        },
        end.clone(),
    ));
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated minutes take no real time")
        .expect("run");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    (window_requests(&api), letters.iter().map(|letter| letter.attempts).collect())
}

/// The operator sets the missing token and asks for a run at 12:01: it runs then, within a
/// poll, not when the 5-minute hold of the failure ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_could_not_start_runs_a_manual_run_asked_after_at_once() {
    let actions = vec![(at("2026-06-01T12:01:00Z"), Action::Request(FeedRunKind::Incremental))];
    let (windows, letters) = a_feed_without_its_token(actions, true).await;
    assert_eq!(windows.first().map(String::as_str), Some("2026-06-01T12:01:00Z 200"), "{windows:?}");
    assert_eq!(letters, Vec::<u32>::new(), "the run completed: the letter is resolved");
}

/// Switched off at 12:02 while its token is missing: no failure is recorded after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_could_not_start_stops_failing_once_switched_off() {
    let actions = vec![(at("2026-06-01T12:02:00Z"), Action::Switch(false))];
    let (windows, letters) = a_feed_without_its_token(actions, false).await;
    assert_eq!(windows, Vec::<String>::new());
    assert_eq!(letters, [1], "one failure, at 12:00, none while switched off");
}

/// A run of `--once` whose manual run the supplier throttled for 10 minutes asks the
/// supplier nothing more: not the rest of the window, not the incremental, not a backfill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_run_whose_manual_run_was_throttled_asks_nothing_more() {
    let fixture = sqlite().await;
    let (api, source, key) = feed(&fixture).await;
    let request = catalog_store::FeedRunRequest {
        kind: FeedRunKind::Incremental,
        requested_by: "otto".to_owned(),
        requested_at: Utc::now(),
    };
    assert!(fixture.store.request_feed_run(&key, &request).await.expect("request"));
    api.inject([Fault::Throttle { retry_after_secs: 600 }]);
    let report = source.run_once(catalog_feed::OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let statuses: Vec<u16> = api.requests().iter().map(|request| request.status).collect();
    assert_eq!(statuses, [429], "asked once, then left alone");
    let feed = fixture.store.feed(&key).await.expect("feed").expect("known");
    assert!(feed.run_request.is_some(), "the manual run is asked again by the next run");
}

/// The supplier asked for an hour (a 429 that ended the run at 12:00), and the worker was
/// restarted five minutes later: the new scheduler waits for the hour too, where it kept the
/// hold in memory only and asked again at once, inside the `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_s_retry_after_outlives_a_restart() {
    let fixture = sqlite().await;
    let (api, source, key) = feed(&fixture).await;
    api.inject([Fault::Throttle { retry_after_secs: 3_600 }]);
    for (from, to) in
        [("2026-06-01T12:00:00Z", "2026-06-01T12:05:00Z"), ("2026-06-01T12:05:00Z", "2026-06-01T14:00:00Z")]
    {
        let end = CancellationToken::new();
        let clock: Arc<dyn Clock> = JumpingClock::new(at(from), at(to), end.clone());
        tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
            .await
            .expect("simulated hours take no real time")
            .expect("run");
    }
    let windows = window_requests(&api);
    assert_eq!(windows[..2], ["2026-06-01T12:00:00Z 429", "2026-06-01T13:00:00Z 200"], "{windows:?}");
    let feed = fixture.store.feed(&key).await.expect("feed").expect("known");
    assert_eq!(feed.supplier_hold_until, Some(at("2026-06-01T13:00:00Z")), "kept with the feed");
}

/// `--once` from cron every few minutes: a run that met an hour's `Retry-After` ends, and the
/// next one asks the supplier nothing (it did, inside the hour), and fails nothing either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_run_inside_a_supplier_s_retry_after_asks_nothing() {
    let fixture = sqlite().await;
    let (api, source, _key) = feed(&fixture).await;
    api.inject([Fault::Throttle { retry_after_secs: 3_600 }]);
    let report = source.run_once(catalog_feed::OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let report = source.run_once(catalog_feed::OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed, [], "a held feed is not due: nothing failed");
    let statuses: Vec<u16> = api.requests().iter().map(|request| request.status).collect();
    assert_eq!(statuses, [429], "asked once, then left alone for the hour");
}

/// A `--once` run beside the scheduler (or a second worker) meets an hour's `Retry-After` at
/// 12:30: the running scheduler, which had pulled at 12:00, asks nothing inside that hour
/// either, though its own next work comes due, and the operator's run asked for at 12:40
/// waits for it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_another_run_met_holds_a_running_scheduler() {
    let fixture = sqlite().await;
    let (api, source, key) = feed(&fixture).await;
    let end = CancellationToken::new();
    let clock = Arc::new(SwitchingClock {
        inner: JumpingClock::new(at("2026-06-01T12:00:00Z"), at("2026-06-01T14:00:00Z"), end.clone()),
        store: Arc::clone(&fixture.store),
        key: key.clone(),
        switches: std::sync::Mutex::new(vec![
            (at("2026-06-01T12:30:00Z"), Action::AnotherRunHeldOff(chrono::Duration::hours(1))),
            (at("2026-06-01T12:40:00Z"), Action::Request(FeedRunKind::Incremental)),
        ]),
        api: None,
    });
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated hours take no real time")
        .expect("run");
    // The windows pulled now (backfill's end before the feed's first run).
    let windows = window_requests(&api);
    let now: Vec<&String> = windows.iter().filter(|line| line.as_str() >= "2026-06-01T12:00:00Z").collect();
    assert_eq!(now[..2], ["2026-06-01T12:00:00Z 200", "2026-06-01T13:30:00Z 200"], "{windows:?}");
}

/// The supplier lets a few snapshot pages through, then asks for an hour (as a rate limit of
/// so many requests an hour does): the full refresh goes on after the hour at the page it did
/// not get, where it read the snapshot again from its first page each time, met the limit
/// at the same page, and never completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_refresh_the_supplier_holds_off_goes_on_at_the_page_it_did_not_get() {
    let snapshot = refresh_cut_short_at_its_third_page(Fault::Throttle { retry_after_secs: 3_600 }, 1).await;
    assert_eq!(
        snapshot[..4],
        ["first 200", "next 200", "next 429", "next 200"],
        "the same page asked again: {snapshot:?}"
    );
}

/// The supplier fails the third page until the retries run out (503s): the run fails, and
/// the refresh after its hold goes on at that page too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_refresh_whose_supplier_fails_goes_on_at_the_page_it_did_not_get() {
    let attempts = quick_settings().retry.max_attempts as usize;
    let snapshot = refresh_cut_short_at_its_third_page(Fault::Status(503), attempts).await;
    let failed: Vec<&str> = std::iter::repeat_n("next 503", attempts).collect();
    assert_eq!(snapshot[2..2 + attempts], failed[..], "{snapshot:?}");
    assert_eq!(snapshot[2 + attempts], "next 200", "the same page asked again: {snapshot:?}");
}

/// A full refresh of six pages whose third page meets `fault` `times` times, run by the
/// scheduler over four simulated hours: the snapshot requests (`first` or `next` page, and
/// status), once the refresh completed with every SKU and read page 1 once.
async fn refresh_cut_short_at_its_third_page(fault: Fault, times: usize) -> Vec<String> {
    let fixture = sqlite().await;
    let (api, source, key) = feed(&fixture).await;
    // Six pages of 50.
    let listed: Vec<catalog_testkit::feed_api::FeedRecord> = (0..300)
        .map(|n| catalog_testkit::feed_api::FeedRecord {
            sku: format!("S-{n}"),
            quantity: n + 1,
            updated_at: at("2026-05-31T08:00:00Z"),
            sequence: None,
        })
        .collect();
    api.set_snapshot(listed);
    let on_time = Fault::Slow(std::time::Duration::ZERO);
    api.inject_into_snapshot([on_time.clone(), on_time].into_iter().chain(std::iter::repeat_n(fault, times)));
    let end = CancellationToken::new();
    let clock: Arc<dyn Clock> = JumpingClock::new(at("2026-06-01T12:00:00Z"), at("2026-06-01T16:00:00Z"), end.clone());
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated hours take no real time")
        .expect("run");
    let snapshot: Vec<String> = api
        .requests()
        .iter()
        .filter(|request| request.snapshot)
        .map(|request| format!("{} {}", if request.cursor.is_some() { "next" } else { "first" }, request.status))
        .collect();
    assert_eq!(snapshot.iter().filter(|line| line.starts_with("first")).count(), 1, "page 1 read once: {snapshot:?}");
    let feed = fixture.store.feed(&key).await.expect("feed").expect("known");
    assert!(feed.initial_sync_completed && feed.last_full_refresh_at.is_some(), "the refresh completed");
    let offers = fixture.offers(&key).await;
    for n in 0..300 {
        assert_eq!(offers.get(&format!("S-{n}")), Some(&(n + 1)), "S-{n}");
    }
    snapshot
}
