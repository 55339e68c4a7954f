//! A window a run left unfinished is pulled once: resumed at its last committed page, and
//! not pulled again by the work that follows, whether that is the incremental it was or the
//! manual run it was part of (decision 0015); nor is a manual incremental or full refresh
//! pulled again by the scheduled one due at the same time (decision 0018).

use std::sync::Arc;

use catalog_feed::{Clock, FeedSource, JumpingClock, OnceScope};
use catalog_store::{FeedKey, FeedRunKind, FeedRunRequest, FeedSettings};
use catalog_testkit::feed_api::{Fault, FeedApi, LoggedRequest};
use chrono::{DateTime, Duration as TimeDelta, DurationRound, NaiveDate, NaiveTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The requests for pages of the window starting at `since`.
fn pages_of(api: &FeedApi, since: DateTime<Utc>) -> Vec<LoggedRequest> {
    api.requests().into_iter().filter(|request| request.since.as_deref() == Some(rfc3339(since).as_str())).collect()
}

/// Its first page asked for, with the answer: a window is pulled from its start once per line.
fn starts_of(api: &FeedApi, since: DateTime<Utc>) -> Vec<u16> {
    pages_of(api, since).iter().filter(|request| request.cursor.is_none()).map(|request| request.status).collect()
}

/// The feed's scheduled source run on a jumping clock from `start` until `stop_at`.
async fn run_scheduled(source: &FeedSource, start: DateTime<Utc>, stop_at: DateTime<Utc>) {
    let end = CancellationToken::new();
    let clock: Arc<dyn Clock> = JumpingClock::new(start, stop_at, end.clone());
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated hours take no real time")
        .expect("run");
}

/// The third page of the next window is refused: the window is left with two pages
/// committed, as a crash would leave it.
fn refuse_the_third_page(api: &FeedApi) {
    api.inject([Fault::Slow(std::time::Duration::ZERO), Fault::Slow(std::time::Duration::ZERO), Fault::Status(400)]);
}

/// The scheduled source, started again after its incremental broke off (Monday 12:00 UTC):
/// the window resumed is the incremental that was due, and it is not pulled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_resumed_is_not_pulled_again_by_the_scheduled_source() {
    let fixture = sqlite().await;
    let start = at("2026-06-01T12:00:00Z");
    // Six pages of 50 in the first incremental window (from 2026-05-31T06:00Z).
    let api = FeedApi::start(records(300, 1, at("2026-06-01T11:00:00Z")), TOKEN).await;
    let mut settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 5, 31).expect("date"));
    settings.run_times = vec![NaiveTime::from_hms_opt(9, 0, 0).expect("time")];
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings]).await.expect("bootstrap");
    refuse_the_third_page(&api);
    run_scheduled(&source, start, start + TimeDelta::minutes(1)).await;

    // Started again ten minutes later, until the evening (the next run is Tuesday 07:00 UTC).
    run_scheduled(&source, start + TimeDelta::minutes(10), start + TimeDelta::hours(6)).await;
    let window = at("2026-05-31T06:00:00Z");
    assert_eq!(starts_of(&api, window), [200], "the window is pulled from its start once");
    let statuses: Vec<u16> = pages_of(&api, window).iter().map(|request| request.status).collect();
    assert_eq!(statuses, [200, 200, 400, 200, 200, 200, 200], "each page once, the refused one again");
    let incrementals: Vec<String> = api
        .requests()
        .iter()
        .filter(|request| request.cursor.is_none() && request.until.as_deref() >= Some("2026-06-01"))
        .map(|request| {
            format!("{} .. {}", request.since.as_deref().unwrap_or("-"), request.until.as_deref().unwrap_or("-"))
        })
        .collect();
    assert_eq!(incrementals, ["2026-05-31T06:00:00Z .. 2026-06-01T12:00:00Z"], "no second incremental");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers());
}

/// One scheduled run a day, half a day from `now`: none falls inside the hours a test built
/// on the wall clock runs the schedule for. (At the four run times of `feed_settings`, a test
/// run in the half hour before one of them pulled that run's window too, and failed.)
fn run_half_a_day_from(settings: &mut FeedSettings, now: DateTime<Utc>) {
    settings.timezone = "UTC".to_owned();
    settings.run_times = vec![(now + TimeDelta::hours(12)).time()];
}

/// A feed whose manual backfill of two 7-day chunks broke off in the middle of the first
/// (the scheduled source ended there, as a crash would end it), with the request waiting.
async fn a_backfill_broken_off_mid_chunk() -> (Fixture, FeedApi, FeedSource, FeedKey, DateTime<Utc>) {
    let fixture = sqlite().await;
    let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).expect("whole seconds");
    let api = FeedApi::start(records(600, 20, now - TimeDelta::minutes(5)), TOKEN).await;
    let mut settings = feed_settings("acme", &api, (now - TimeDelta::days(30)).date_naive());
    run_half_a_day_from(&mut settings, now);
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    let since = now - TimeDelta::days(20);
    let request = FeedRunRequest {
        kind: FeedRunKind::Backfill { since, until: now - TimeDelta::days(6) },
        requested_by: "otto".to_owned(),
        requested_at: now - TimeDelta::minutes(1),
    };
    assert!(fixture.store.request_feed_run(&settings.key, &request).await.expect("request"));
    refuse_the_third_page(&api);
    run_scheduled(&source, now, now + TimeDelta::minutes(1)).await;
    assert_eq!(starts_of(&api, since), [200], "the request ran first");
    assert!(fixture.store.feed(&settings.key).await.expect("feed").expect("known").run_request.is_some());
    (fixture, api, source, settings.key, since)
}

/// What the run after the break did with the request: its first chunk finished from its
/// last committed page, its second pulled, neither from its start twice; cleared.
async fn the_request_was_finished_once(fixture: &Fixture, api: &FeedApi, key: &FeedKey, since: DateTime<Utc>) {
    assert_eq!(starts_of(api, since), [200], "the first chunk is pulled from its start once");
    let refused = pages_of(api, since).iter().filter(|request| request.status == 400).count();
    let pulled = pages_of(api, since).iter().filter(|request| request.status == 200).count();
    assert_eq!((refused, pulled), (1, 5), "each of its five pages once");
    assert_eq!(starts_of(api, since + TimeDelta::days(7)), [200], "the second chunk once");
    assert_eq!(fixture.store.feed(key).await.expect("feed").expect("known").run_request, None, "cleared");
    assert_eq!(fixture.offers(key).await, api.expected_offers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_backfill_resumed_goes_on_from_its_chunk_in_the_scheduled_source() {
    let (fixture, api, source, key, since) = a_backfill_broken_off_mid_chunk().await;
    let now = Utc::now();
    run_scheduled(&source, now, now + TimeDelta::hours(2)).await;
    the_request_was_finished_once(&fixture, &api, &key, since).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_backfill_resumed_goes_on_from_its_chunk_in_a_once_run() {
    let (fixture, api, source, key, since) = a_backfill_broken_off_mid_chunk().await;
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed, [], "{report:?}");
    the_request_was_finished_once(&fixture, &api, &key, since).await;
}
/// A feed live for two days with one record an hour old, never pulled, and a manual run of
/// `kind` asked for a minute before now (whole seconds).
async fn asked_a_minute_ago(kind: FeedRunKind) -> (Fixture, FeedApi, FeedSource, FeedSettings, DateTime<Utc>) {
    let fixture = sqlite().await;
    let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).expect("whole seconds");
    let api = FeedApi::start(vec![four_of("A-1", now - TimeDelta::hours(1))], TOKEN).await;
    let mut settings = feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive());
    run_half_a_day_from(&mut settings, now);
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    let request = FeedRunRequest { kind, requested_by: "otto".to_owned(), requested_at: now - TimeDelta::minutes(1) };
    assert!(fixture.store.request_feed_run(&settings.key, &request).await.expect("request"));
    (fixture, api, source, settings, now)
}

/// A manual incremental asked for while the scheduled one is due (or in a `--once` run,
/// which pulls the incremental due too) is that incremental: the window is pulled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_incremental_is_the_incremental_due() {
    for once in [false, true] {
        let (fixture, api, source, settings, now) = asked_a_minute_ago(FeedRunKind::Incremental).await;
        if once {
            source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
        } else {
            run_scheduled(&source, now, now + TimeDelta::minutes(30)).await;
        }
        let ends: Vec<String> = api
            .requests()
            .iter()
            .filter(|request| request.cursor.is_none() && !request.snapshot)
            .filter_map(|request| request.until.clone())
            .filter(|until| at(until) >= now)
            .collect();
        assert_eq!(ends.len(), 1, "once: {once}: one window up to now, not two: {ends:?}");
        assert_eq!(fixture.store.feed(&settings.key).await.expect("feed").expect("known").run_request, None);
    }
}

/// A manual full refresh asked for while the weekly one is due (here the first, never run),
/// or in a `--once --full` run, is that refresh: the snapshot is read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_full_refresh_is_the_full_refresh_due() {
    for once in [false, true] {
        let (fixture, api, source, settings, now) = asked_a_minute_ago(FeedRunKind::FullRefresh).await;
        if once {
            source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("run");
        } else {
            run_scheduled(&source, now, now + TimeDelta::minutes(30)).await;
        }
        let snapshots = api.requests().iter().filter(|request| request.snapshot && request.cursor.is_none()).count();
        assert_eq!(snapshots, 1, "once: {once}: one full refresh, not two");
        let feed = fixture.store.feed(&settings.key).await.expect("feed").expect("known");
        assert!(feed.run_request.is_none() && feed.initial_sync_completed, "{feed:?}");
    }
}

/// A steady feed (run times 00/06/12/18 Berlin, gone live at Monday's start) whose 06:00
/// incremental (04:00 UTC) is refused on its third page: five minutes later, after the
/// hold, the loop resumes the window and finishes it. That run completed, so it resolves the
/// pull dead letter then, not when the next run time (12:00) comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_finished_by_its_resume_resolves_the_dead_letter_at_once() {
    let fixture = sqlite().await;
    let api = FeedApi::start(records(1_200, 1, at("2026-06-01T03:50:00Z")), TOKEN).await;
    let settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 6, 1).expect("date"));
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    let end = CancellationToken::new();
    let clock = Arc::new(crate::schedule::SwitchingClock {
        inner: JumpingClock::new(at("2026-06-01T03:00:00Z"), at("2026-06-01T09:00:00Z"), end.clone()),
        store: Arc::clone(&fixture.store),
        key: settings.key.clone(),
        switches: std::sync::Mutex::new(vec![(
            at("2026-06-01T03:30:00Z"),
            crate::schedule::Action::Inject(vec![
                Fault::Slow(std::time::Duration::ZERO),
                Fault::Slow(std::time::Duration::ZERO),
                Fault::Status(400),
            ]),
        )]),
        api: Some(api.clone()),
    });
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated hours take no real time")
        .expect("run");
    let window = at("2026-05-31T22:00:00Z");
    let statuses: Vec<u16> = pages_of(&api, window)
        .iter()
        .filter(|request| request.until.as_deref() == Some("2026-06-01T04:00:00Z"))
        .map(|request| request.status)
        .collect();
    assert_eq!(statuses[..4], [200, 200, 400, 200], "the 06:00 run broke off, then was resumed: {statuses:?}");
    assert_eq!(starts_of(&api, window).len(), 2, "the 00:00 and 06:00 runs, each from its start once");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    assert_eq!(letters.len(), 0, "the resume completed the window: the letter is resolved before 12:00");
    assert_eq!(fixture.offers(&settings.key).await, api.expected_offers());
}

/// A feed (run times 00/06/12/18 Berlin) whose manual incremental, asked for a minute before
/// `broke_at`, broke off in its window there (its third page refused, the worker stopped).
async fn a_manual_incremental_broken_off_at(broke_at: DateTime<Utc>) -> (Fixture, FeedApi, FeedSource, FeedKey) {
    let fixture = sqlite().await;
    let api = FeedApi::start(records(400, 1, broke_at - TimeDelta::minutes(5)), TOKEN).await;
    let settings = feed_settings("acme", &api, (broke_at - TimeDelta::days(1)).date_naive());
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    let request = FeedRunRequest {
        kind: FeedRunKind::Incremental,
        requested_by: "otto".to_owned(),
        requested_at: broke_at - TimeDelta::minutes(1),
    };
    assert!(fixture.store.request_feed_run(&settings.key, &request).await.expect("request"));
    refuse_the_third_page(&api);
    run_scheduled(&source, broke_at, broke_at + TimeDelta::minutes(1)).await;
    let broken: Vec<u16> = api
        .requests()
        .iter()
        .filter(|page| page.until.as_deref() == Some(rfc3339(broke_at).as_str()))
        .map(|page| page.status)
        .collect();
    assert_eq!(broken, [200, 200, 400], "the manual incremental broke off on its third page");
    (fixture, api, source, settings.key)
}

/// The ends of the windows pulled from their start that end after `after`.
fn windows_ending_after(api: &FeedApi, after: DateTime<Utc>) -> Vec<String> {
    api.requests()
        .iter()
        .filter(|request| request.cursor.is_none() && !request.snapshot)
        .filter_map(|request| request.until.clone())
        .filter(|until| at(until) > after)
        .collect()
}

/// The manual incremental asked for at 11:50 Berlin (09:50 UTC) broke off; the worker,
/// started again at 12:30 Berlin, finishes its window (which ends at 11:50) by resuming it:
/// the request pulls nothing more, and is not the 12:00 incremental, which runs then (up to
/// 12:30), not at 18:00.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_incremental_finished_by_its_resume_is_not_the_incremental_due_in_the_scheduled_source() {
    let broke_at = at("2026-06-01T09:50:00Z");
    let (fixture, api, source, key) = a_manual_incremental_broken_off_at(broke_at).await;
    let restart = at("2026-06-01T10:30:00Z");
    run_scheduled(&source, restart, at("2026-06-01T15:00:00Z")).await;
    assert_eq!(windows_ending_after(&api, broke_at), [rfc3339(restart)], "the 12:00 run, at the restart");
    assert_eq!(fixture.store.feed(&key).await.expect("feed").expect("known").run_request, None, "cleared");
    assert_eq!(fixture.offers(&key).await, api.expected_offers());
}

/// The same in a `--once` run forty minutes after the break: it resumes the request's
/// window, then pulls the incremental due now, which the request, finished, did not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_incremental_finished_by_its_resume_is_not_the_incremental_due_in_a_once_run() {
    let broke_at = Utc::now().duration_trunc(TimeDelta::seconds(1)).expect("whole seconds") - TimeDelta::minutes(40);
    let (fixture, api, source, key) = a_manual_incremental_broken_off_at(broke_at).await;
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed, [], "{report:?}");
    let ends = windows_ending_after(&api, broke_at);
    assert_eq!(ends.len(), 1, "one incremental up to now: {ends:?}");
    assert_eq!(fixture.store.feed(&key).await.expect("feed").expect("known").run_request, None, "cleared");
}
