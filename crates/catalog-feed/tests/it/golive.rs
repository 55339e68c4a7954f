//! A feed configured ahead of its `go_live_date` (decision 0054): nothing of it is pulled
//! before it goes live, not a window, not a snapshot, not a manual run, in scheduled and
//! `--once` runs; its status says it is not live; from going live on it is pulled as a
//! feed that has just gone live.

use std::sync::Arc;

use catalog_feed::{Clock, JumpingClock, OnceScope};
use catalog_store::{FeedRunKind, FeedRunRequest};
use catalog_testkit::feed_api::FeedApi;
use chrono::{DateTime, Duration as TimeDelta, NaiveDate, NaiveTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

async fn run_scheduled(source: &catalog_feed::FeedSource, start: DateTime<Utc>, stop_at: DateTime<Utc>) {
    let end = CancellationToken::new();
    let clock: Arc<dyn Clock> = JumpingClock::new(start, stop_at, end.clone());
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("simulated days take no real time")
        .expect("run");
}

/// Configured on Monday 2026-06-01 to go live on Thursday (Berlin: Wednesday 22:00 UTC), with
/// a manual run waiting from Tuesday: nothing is asked of the supplier until then. From going
/// live: the manual run, the first full refresh, the runs at 09:00 Berlin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_configured_ahead_is_pulled_from_its_go_live_on() {
    let fixture = sqlite().await;
    let record = |sku: &str, updated_at: &str| four_of(sku, at(updated_at));
    let api =
        FeedApi::start(vec![record("A-1", "2026-06-01T08:00:00Z"), record("B-2", "2026-06-04T05:00:00Z")], TOKEN).await;
    let mut settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 6, 4).expect("date"));
    settings.run_times = vec![NaiveTime::from_hms_opt(9, 0, 0).expect("time")];
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    let request = FeedRunRequest {
        kind: FeedRunKind::Incremental,
        requested_by: "otto".to_owned(),
        requested_at: at("2026-06-02T10:00:00Z"),
    };
    assert!(fixture.store.request_feed_run(&settings.key, &request).await.expect("request"));

    run_scheduled(&source, at("2026-06-01T12:00:00Z"), at("2026-06-03T21:59:00Z")).await;
    assert_eq!(pulls(&api), "", "nothing asked before going live");
    let feed = fixture.store.feed(&settings.key).await.expect("feed").expect("known");
    assert!(feed.run_request.is_some() && !feed.initial_sync_completed && feed.last_sync_at.is_none(), "{feed:?}");
    assert!(fixture.offers(&settings.key).await.is_empty());
    let status = catalog_app::feeds::feed_status(&*fixture.store, &settings.key, at("2026-06-03T21:59:00Z"))
        .await
        .expect("status")
        .expect("known");
    assert_eq!((status.state.as_str(), status.gaps.len(), status.days_behind), ("not_live", 0, 0));

    run_scheduled(&source, at("2026-06-03T21:59:00Z"), at("2026-06-05T12:00:00Z")).await;
    // At going live the manual incremental (empty: nothing has happened since going live),
    // the first full refresh (no gap to backfill first), then the runs at 09:00 Berlin (07:00
    // UTC), reaching back to going live.
    insta::assert_snapshot!(pulls(&api), @r"
    snapshot
    window 2026-06-03T22:00:00Z .. 2026-06-04T07:00:00Z
    window 2026-06-03T22:00:00Z .. 2026-06-05T07:00:00Z
    ");
    assert_eq!(fixture.offers(&settings.key).await, api.expected_offers());
    let feed = fixture.store.feed(&settings.key).await.expect("feed").expect("known");
    assert_eq!(feed.run_request, None, "the manual run ran once live");
    let status = catalog_app::feeds::feed_status(&*fixture.store, &settings.key, at("2026-06-05T12:00:00Z"))
        .await
        .expect("status")
        .expect("known");
    assert_eq!(status.state.as_str(), "current");
}

/// A `--once` run, with a full refresh and a manual run asked for, pulls nothing of a feed
/// that goes live tomorrow, and does not fail for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_run_pulls_nothing_of_a_feed_not_live_yet() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(100, 2, now - TimeDelta::minutes(5)), TOKEN).await;
    let settings = feed_settings("acme", &api, (now + TimeDelta::days(2)).date_naive());
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(std::slice::from_ref(&settings)).await.expect("bootstrap");
    let request = FeedRunRequest { kind: FeedRunKind::Incremental, requested_by: "otto".to_owned(), requested_at: now };
    assert!(fixture.store.request_feed_run(&settings.key, &request).await.expect("request"));
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("run");
    assert_eq!((report.n_feeds, report.failed.len()), (1, 0), "{report:?}");
    assert_eq!(pulls(&api), "", "nothing asked before going live");
    assert!(fixture.offers(&settings.key).await.is_empty());
    let feed = fixture.store.feed(&settings.key).await.expect("feed").expect("known");
    assert!(feed.run_request.is_some(), "the manual run waits for going live");
    assert!(!feed.initial_sync_completed);
}
