//! Pulling windows: from go-live to now through every failure the contract lists, resumed,
//! repeated (duplicates only), refused (a dead letter), and one slow feed beside a fast one.

use std::time::{Duration, Instant};

use catalog_core::{Classify, FailureClass};
use catalog_feed::{FeedSelector, FeedSourceError, OnceScope, PullError, RunError};
use catalog_store::PULL_STAGE;
use catalog_testkit::feed_api::{Fault, FeedApi};
use chrono::{Duration as TimeDelta, Timelike, Utc};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// After one `--once` run from go-live through throttling, 5xx, garbage, an expired cursor
/// and a slow answer, the feed's offers are exactly the server's data.
async fn a_once_run_from_go_live_ends_with_the_server_s_data(fixture: Fixture) {
    let now = Utc::now();
    let api = FeedApi::start(records(3_000, 30, now - TimeDelta::minutes(10)), TOKEN).await;
    let go_live = (now - TimeDelta::days(31)).date_naive();
    api.inject([
        Fault::Throttle { retry_after_secs: 1 },
        Fault::Status(503),
        Fault::Garbage,
        Fault::Status(500),
        Fault::Slow(Duration::from_secs(2)),
    ]);
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, go_live)]).await.expect("bootstrap");
    // A cursor expires part way: the window starts again, its records come back as duplicates.
    let expiring = api.clone();
    let expire = tokio::spawn(async move {
        while expiring.requests().len() < 12 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        expiring.inject([Fault::ExpireCursors]);
    });
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    expire.abort();
    assert_eq!(report.failed, [], "{report:?}");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers(), "the offers are the server's data");

    let statuses: Vec<u16> = api.requests().iter().map(|request| request.status).collect();
    for status in [429, 503, 500, 410] {
        assert!(statuses.contains(&status), "{status} was answered: {statuses:?}");
    }
    let retries = fixture.metric("catalog_feed_retries_total");
    for reason in ["throttled", "server_error", "invalid_page", "timeout", "cursor_expired"] {
        assert!(retries.contains(&format!("reason=\"{reason}\"")), "{reason} retried:\n{retries}");
    }
    let rejected = fixture.metric("catalog_feed_records_total{feed=\"canary/acme\",result=\"rejected\"}");
    assert!(!rejected.is_empty() && !rejected.ends_with(" 0"), "rule-breaking records are counted: {rejected}");
    let windows = fixture.store.feed_windows(&key("acme")).await.expect("windows");
    assert!(windows.len() >= 5, "an incremental window and 7-day backfill chunks: {windows:?}");
    assert!(windows.iter().all(|window| window.until - window.since <= TimeDelta::days(7) + TimeDelta::hours(31)));
    assert!(fixture.store.open_dead_letters(10).await.expect("letters").is_empty(), "no run failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_run_from_go_live_ends_with_the_server_s_data_on_sqlite() {
    a_once_run_from_go_live_ends_with_the_server_s_data(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_run_from_go_live_ends_with_the_server_s_data_on_postgres() {
    a_once_run_from_go_live_ends_with_the_server_s_data(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulling_again_finds_only_duplicates() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(600, 10, now - TimeDelta::minutes(5)), TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source
        .bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(11)).date_naive())])
        .await
        .expect("bootstrap");
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("first run");
    assert_eq!(report.failed, []);
    let first = fixture.store.sync_status(&key("acme").tenant).await.expect("status").expect("seen");
    // The next run's incremental window overlaps the last by a day: those records are
    // duplicates, counted as redeliveries, and change nothing.
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("second run");
    assert_eq!(report.failed, []);
    let second = fixture.store.sync_status(&key("acme").tenant).await.expect("status").expect("seen");
    let decided = |status: &catalog_store::SyncStatus| {
        let mut outcomes = status.events_by_outcome.clone();
        // A rejected record claims no id: each delivery of one is journaled again.
        outcomes.remove("rejected");
        outcomes
    };
    assert_eq!(decided(&first), decided(&second), "no record decided twice");
    assert!(second.redeliveries > first.redeliveries, "the overlap came back as duplicates");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_stops_the_feed_with_a_dead_letter_and_the_next_run_catches_up() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(300, 5, now - TimeDelta::minutes(5)), TOKEN).await;
    let settings = feed_settings("acme", &api, (now - TimeDelta::days(6)).date_naive());
    let wrong = fixture.source(quick_settings(), "wrong-token");
    wrong.bootstrap(&[settings]).await.expect("bootstrap");
    let report = wrong.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("401"), "{report:?}");
    assert_eq!(api.requests().len(), 1, "a 401 is not retried");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].stage.as_str(), letters[0].subject.as_str()), (PULL_STAGE, "canary/acme"));
    assert_eq!(letters[0].reason, "http_401");
    assert!(letters[0].body.as_deref().unwrap_or_default().contains("unauthorized"), "{letters:?}");
    assert!(fixture.offers(&key("acme")).await.is_empty());

    let right = fixture.source(quick_settings(), TOKEN);
    let report = right.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed, []);
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers(), "nothing of the window was lost");
    assert!(fixture.store.open_dead_letters(10).await.expect("letters").is_empty(), "resolved by the run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_token_is_missing_gets_a_dead_letter_and_asks_nothing() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(100, 2, now - TimeDelta::minutes(5)), TOKEN).await;
    let source = fixture.source_with_tokens(quick_settings(), std::sync::Arc::new(|_| None));
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(3)).date_naive())]).await.expect("boot");
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("TEST_FEED_TOKEN"), "names the variable: {report:?}");
    assert_eq!(api.requests().len(), 0, "nothing asked without a token");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    assert_eq!(letters.len(), 1, "the failure is on the dead letter page: {letters:?}");
    assert_eq!((letters[0].subject.as_str(), letters[0].reason.as_str()), ("canary/acme", "token_missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_feed_delays_no_other() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let slow = FeedApi::start(records(200, 3, now - TimeDelta::minutes(5)), TOKEN).await;
    let fast = FeedApi::start(records(200, 3, now - TimeDelta::minutes(5)), TOKEN).await;
    slow.set_page_delay(Duration::from_millis(500));
    let go_live = (now - TimeDelta::days(4)).date_naive();
    let mut settings = quick_settings();
    settings.retry.request_timeout = Duration::from_secs(5);
    let source = fixture.source(settings, TOKEN);
    source
        .bootstrap(&[feed_settings("slow", &slow, go_live), feed_settings("fast", &fast, go_live)])
        .await
        .expect("bootstrap");
    let started = Instant::now();
    let running = {
        let source = source.clone();
        tokio::spawn(async move { source.run_once(OnceScope::Due, &CancellationToken::new()).await })
    };
    while fixture.offers(&key("fast")).await != fast.expected_offers() {
        assert!(started.elapsed() < Duration::from_secs(20), "the fast feed finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fast_done = started.elapsed();
    assert_ne!(fixture.offers(&key("slow")).await, slow.expected_offers(), "the slow feed is still being pulled");
    let report = running.await.expect("task").expect("run");
    assert_eq!(report.failed, []);
    assert_eq!(fixture.offers(&key("slow")).await, slow.expected_offers());
    assert!(started.elapsed() > fast_done * 2, "fast {fast_done:?}, all {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_pulls_only_the_feeds_it_names() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let acme = FeedApi::start(records(30, 2, now - TimeDelta::minutes(5)), TOKEN).await;
    let zeta = FeedApi::start(records(30, 2, now - TimeDelta::minutes(5)), TOKEN).await;
    let go_live = (now - TimeDelta::days(2)).date_naive();
    let source = fixture.source(quick_settings(), TOKEN);
    source
        .bootstrap(&[feed_settings("acme", &acme, go_live), feed_settings("zeta", &zeta, go_live)])
        .await
        .expect("bootstrap");
    let only: Vec<FeedSelector> = vec!["canary/acme".parse().expect("selector")];
    let report = source.run_once_for(OnceScope::Due, &only, &CancellationToken::new()).await.expect("run");
    assert_eq!((report.n_feeds, report.failed.len()), (1, 0));
    assert_eq!(fixture.offers(&key("acme")).await, acme.expected_offers());
    assert!(zeta.requests().is_empty(), "the feed not named is not asked");

    let typo: Vec<FeedSelector> =
        vec!["canary/acme".parse().expect("selector"), "canary/acmee".parse().expect("selector")];
    let refused = source.run_once_for(OnceScope::Due, &typo, &CancellationToken::new()).await;
    assert!(matches!(&refused, Err(FeedSourceError::NoSuchFeed(name)) if name == "canary/acmee"), "{refused:?}");
    let tenant: Vec<FeedSelector> = vec!["canary".parse().expect("selector")];
    let report = source.run_once_for(OnceScope::Due, &tenant, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.n_feeds, 2, "a tenant selects all its feeds");
    assert_eq!(fixture.offers(&key("zeta")).await, zeta.expected_offers());
    assert!("canary/not valid".parse::<FeedSelector>().is_err());

    // A backfill of a range already pulled, from the command line: asked, then run once.
    let since = (now - TimeDelta::days(1)).with_nanosecond(0).expect("valid");
    let until = since + TimeDelta::hours(6);
    let before = acme.requests().len();
    let asked = source.request_backfill(&only, since, until, "cli").await.expect("asked");
    assert_eq!(asked, [key("acme")]);
    assert!(matches!(source.request_backfill(&only, until, since, "cli").await, Err(FeedSourceError::InvalidRange(_))));
    source.run_once_for(OnceScope::Due, &only, &CancellationToken::new()).await.expect("run");
    let windows: Vec<(String, String)> = acme.requests()[before..]
        .iter()
        .filter(|request| request.cursor.is_none())
        .filter_map(|request| Some((request.since.clone()?, request.until.clone()?)))
        .collect();
    assert!(
        windows.contains(&(
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        "{windows:?}"
    );
    let stored = fixture.store.feed(&key("acme")).await.expect("feed").expect("known");
    assert_eq!(stored.run_request, None, "cleared once it ran");
    assert_eq!(fixture.offers(&key("acme")).await, acme.expected_offers(), "pulled again: nothing counted twice");
}

/// A feed whose paging loops (every page names its own cursor as the next) stops the run with
/// a dead letter that says so, instead of paging for ever; once the feed is mended, the next
/// run brings every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_cursors_loop_stops_the_run_with_a_dead_letter() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(3_000, 5, now - TimeDelta::minutes(5)), TOKEN).await;
    api.set_stuck_cursor(true);
    let settings = feed_settings("acme", &api, (now - TimeDelta::days(6)).date_naive());
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings]).await.expect("bootstrap");
    let shutdown = CancellationToken::new();
    let run = source.run_once(OnceScope::Due, &shutdown);
    let report = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the run ends").expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("already returned"), "{report:?}");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    assert_eq!((letters.len(), letters[0].reason.as_str()), (1, "cursor_loop"), "{letters:?}");

    api.set_stuck_cursor(false);
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed, []);
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers(), "nothing of the window was lost");
    assert!(fixture.store.open_dead_letters(10).await.expect("letters").is_empty(), "resolved by the run");
}

/// A 429 asking for an hour is not waited out inside the run, holding its slot (and a
/// `--once` run) that long: the run ends with a dead letter that says so. A run inside the
/// hour asks nothing; the first after it brings every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_asking_for_an_hour_s_wait_ends_the_run_instead_of_holding_it() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(300, 5, now - TimeDelta::minutes(5)), TOKEN).await;
    api.inject([Fault::Throttle { retry_after_secs: 3_600 }]);
    let settings = feed_settings("acme", &api, (now - TimeDelta::days(6)).date_naive());
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings]).await.expect("bootstrap");
    let shutdown = CancellationToken::new();
    let run = source.run_once(OnceScope::Due, &shutdown);
    let report = tokio::time::timeout(Duration::from_secs(20), run).await.expect("the run ends").expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("3600 s"), "says how long the feed asked for: {report:?}");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    assert_eq!((letters.len(), letters[0].reason.as_str()), (1, "throttled"), "{letters:?}");

    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!((report.failed, api.requests().len()), (vec![], 1), "inside the hour: nothing asked, nothing failed");

    // An hour and a minute later (the scheduler, its clock set ahead).
    let end = CancellationToken::new();
    let later = now + TimeDelta::minutes(61);
    let clock: std::sync::Arc<dyn catalog_feed::Clock> =
        catalog_feed::JumpingClock::new(later, later + TimeDelta::minutes(1), end.clone());
    tokio::time::timeout(Duration::from_secs(20), source.run(clock, end)).await.expect("the run ends").expect("run");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers(), "nothing of the window was lost");
    assert!(fixture.store.open_dead_letters(10).await.expect("letters").is_empty(), "resolved by the run");
}

/// A `--once` run whose manual run keeps failing (a full refresh whose snapshot pages loop)
/// still pulls the windows due: the request stays for the next run, and the run fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_manual_run_holds_back_no_window_of_a_once_run() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(40, 5, now - TimeDelta::minutes(5)), TOKEN).await;
    api.set_snapshot(records(120, 1, now - TimeDelta::minutes(5)));
    api.set_stuck_cursor(true);
    let settings = feed_settings("acme", &api, (now - TimeDelta::days(6)).date_naive());
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    let request = catalog_store::FeedRunRequest {
        kind: catalog_store::FeedRunKind::FullRefresh,
        requested_by: "otto".to_owned(),
        requested_at: now,
    };
    assert!(fixture.store.request_feed_run(&settings.key, &request).await.expect("request"));
    let shutdown = CancellationToken::new();
    let run = source.run_once(OnceScope::Due, &shutdown);
    let report = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the run ends").expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("already returned"), "{report:?}");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers(), "the windows were pulled");
    let feed = fixture.store.feed(&settings.key).await.expect("feed").expect("known");
    assert!(feed.run_request.is_some(), "the request stays for the next run");
}

#[test]
fn a_refused_request_or_a_missing_token_needs_an_operator_and_a_cursor_loop_the_supplier() {
    for status in [400, 401, 403, 404] {
        let refused = RunError::Pull(PullError::Refused { status, body: String::new() });
        assert_eq!(refused.failure_class(), FailureClass::NeedsOperator, "{status}");
    }
    assert_eq!(RunError::Pull(PullError::NoToken("ACME_TOKEN".into())).failure_class(), FailureClass::NeedsOperator);
    assert_eq!(RunError::Pull(PullError::CursorLoop { pages: 3 }).failure_class(), FailureClass::NeedsSupplier);
}

#[test]
fn a_feed_is_held_for_the_failure_hold_or_as_long_as_it_asked_if_longer() {
    let hold = chrono::Duration::minutes(5);
    let held_off = |secs| RunError::Pull(PullError::HeldOff { wait: std::time::Duration::from_secs(secs) });
    assert_eq!(held_off(3_600).hold(hold), chrono::Duration::hours(1));
    assert_eq!(held_off(90).hold(hold), hold);
    assert_eq!(RunError::Pull(PullError::CursorLoop { pages: 3 }).hold(hold), hold);
}

/// Garbage pages, then a timeout: the dead letter is the garbage's (`invalid_page`, which
/// needs the supplier), with the body of the last garbage page (decision 0015), not the
/// timeout's (`timeout`, retryable, with no body), which the last attempt alone said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_was_garbage_and_then_timed_out_is_the_garbage_s_dead_letter() {
    let letters = one_failed_page([vec![Fault::Garbage; 5], vec![Fault::Slow(Duration::from_secs(2))]]).await;
    assert!(letters[0].error.as_deref().unwrap_or_default().contains("the last attempt"), "{letters:?}");
}

/// One garbage page, then 503s to the last attempt: still the garbage's dead letter, with its
/// body, not the 503's, so a broken page keeps one class whatever its last attempt met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_was_garbage_once_and_then_failed_with_5xx_is_the_garbage_s_dead_letter() {
    one_failed_page([vec![Fault::Garbage], vec![Fault::Status(503); 5]]).await;
}

/// One garbage page, then 429s until the run gives up on them: still the garbage's dead
/// letter. It was dead-lettered `throttled` (retryable, no body), and the same broken page
/// changed class with what its last attempts met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_was_garbage_once_and_then_throttled_too_often_is_the_garbage_s_dead_letter() {
    let letters = one_failed_page([vec![Fault::Garbage], vec![Fault::Throttle { retry_after_secs: 0 }; 11]]).await;
    assert!(letters[0].error.as_deref().unwrap_or_default().contains("throttled too often"), "{letters:?}");
}

/// One run of a feed whose page meets `faults` at its attempts, in turn: its one dead letter,
/// the garbage page's (`invalid_page`, with the garbage's body).
async fn one_failed_page(faults: [Vec<Fault>; 2]) -> Vec<catalog_store::DeadLetter> {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(30, 5, now - TimeDelta::minutes(5)), TOKEN).await;
    for faults in faults {
        api.inject(faults);
    }
    let settings = feed_settings("acme", &api, (now - TimeDelta::days(6)).date_naive());
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings]).await.expect("bootstrap");
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    assert_eq!((letters.len(), letters[0].reason.as_str()), (1, "invalid_page"), "{letters:?}");
    assert!(letters[0].body.as_deref().unwrap_or_default().contains("upstream proxy error"), "{letters:?}");
    letters
}

#[test]
fn broken_paging_or_pages_need_the_supplier_and_a_token_no_header_carries_an_operator() {
    assert_eq!(RunError::Pull(PullError::CursorExpired).failure_class(), FailureClass::NeedsSupplier);
    let garbage = PullError::Unavailable { reason: "invalid_page", attempts: 6, error: String::new(), body: None };
    assert_eq!(RunError::Pull(garbage).failure_class(), FailureClass::NeedsSupplier);
    let down = PullError::Unavailable { reason: "server_error", attempts: 6, error: String::new(), body: None };
    assert_eq!(RunError::Pull(down).failure_class(), FailureClass::Retryable);
    assert_eq!(
        RunError::Pull(PullError::InvalidToken("ACME_TOKEN".into())).failure_class(),
        FailureClass::NeedsOperator
    );
}

/// A token variable made from a file keeps its last line break: the blanks around it are
/// trimmed, and the feed is pulled; one with a line break inside it is refused at once as the
/// operator's, with no request made (reqwest refused the header, which was counted as a
/// connection failure and retried six times).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_trimmed_and_one_no_header_can_carry_is_the_operator_s() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(10, 2, now - TimeDelta::minutes(5)), TOKEN).await;
    let settings = feed_settings("acme", &api, (now - TimeDelta::days(6)).date_naive());
    let source = fixture.source(quick_settings(), "feed-token\n");
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed, [], "the trailing line break is trimmed");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers());

    let n_requests = api.requests().len();
    let broken = fixture.source(quick_settings(), "feed-token\nX-Extra: 1");
    let report = broken.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("no Authorization header can carry"), "{report:?}");
    assert_eq!(api.requests().len(), n_requests, "nothing asked of the supplier");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    assert_eq!(letters.iter().map(|letter| letter.reason.as_str()).collect::<Vec<_>>(), ["token_invalid"]);
}

/// A record that is no JSON object (`null`, a number) breaks the contract's rules as one
/// record, not as a page: it is journaled as rejected (`invalid_payload`) and counted, and the
/// window goes on ("a record that breaks the rules is journaled as rejected … and the window
/// goes on"). Before, its page was taken for garbage and retried; the run failed there, and so
/// did every later one while the supplier served that page, its later records never applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_no_object_is_rejected_and_the_window_goes_on() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let valid: Vec<catalog_testkit::feed_api::FeedRecord> = (0..40)
        .map(|i| catalog_testkit::feed_api::FeedRecord {
            sku: format!("sku-{i:03}"),
            quantity: i,
            updated_at: now - TimeDelta::minutes(5) - TimeDelta::seconds(i),
            sequence: None,
        })
        .collect();
    let api = FeedApi::start(valid, TOKEN).await;
    api.inject([Fault::NotAnObject(serde_json::Value::Null), Fault::NotAnObject(serde_json::json!(42))]);
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed, [], "{report:?}");
    assert_eq!(fixture.offers(&key("acme")).await, api.expected_offers(), "every record after them applied");
    assert_eq!(fixture.offers(&key("acme")).await.len(), 40);
    let rejected = fixture.metric("catalog_feed_records_total{feed=\"canary/acme\",result=\"rejected\"}");
    assert!(rejected.ends_with(" 2"), "both counted as rejected records: {rejected}");
    assert!(fixture.store.open_dead_letters(10).await.expect("letters").is_empty(), "no run failed");
    let retries = fixture.metric("catalog_feed_retries_total");
    assert!(!retries.contains("invalid_page"), "no page taken for garbage:\n{retries}");
}
