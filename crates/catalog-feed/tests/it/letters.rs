//! Which completed run resolves a feed's pull dead letter: the windows and the snapshot are
//! endpoints of their own, and a letter one of them opened is resolved by that one alone.

use std::sync::Arc;

use catalog_feed::{Clock, JumpingClock, OnceScope};
use catalog_store::{DeadLetter, DeadLetterFilter, PULL_STAGE};
use catalog_testkit::feed_api::{Fault, FeedApi};
use chrono::{Duration as TimeDelta, NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// Every pull dead letter, open or resolved, newest first.
async fn pull_letters(fixture: &Fixture) -> Vec<DeadLetter> {
    let filter = DeadLetterFilter { stage: Some(PULL_STAGE.to_owned()), limit: 100, ..DeadLetterFilter::default() };
    fixture.store.dead_letters(&filter).await.expect("letters")
}

/// A full refresh whose snapshot answers 404 opens a letter that says it was the refresh; a
/// `--once` run that pulls the windows alone leaves it open (it resolved it, and the feed's
/// "failing since" started again at the next refresh), and the next full refresh that
/// completes resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_refresh_s_dead_letter_is_resolved_by_a_full_refresh_not_by_windows() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(records(40, 5, now - TimeDelta::minutes(5)), TOKEN).await;
    api.inject_into_snapshot([Fault::Status(404)]);
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(6)).date_naive())]).await.expect("bootstrap");

    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let letters = pull_letters(&fixture).await;
    assert_eq!((letters.len(), letters[0].reason.as_str()), (1, "http_404"), "{letters:?}");
    assert!(letters[0].error.as_deref().unwrap_or_default().starts_with("full refresh: "), "{letters:?}");

    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed, [], "the windows were pulled");
    let letters = pull_letters(&fixture).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].resolved_at, None, "the windows pulled leave the refresh's letter open");

    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed, [], "the snapshot answers again");
    let letters = pull_letters(&fixture).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].resolved_at.is_some(), "resolved by the refresh that completed: {letters:?}");
}

/// The scheduled loop: a snapshot that answers 404 at every try of the first full refresh
/// (tried again after each failure hold) keeps one open letter, counted on, while the 18:00
/// incremental is pulled between two tries; that incremental resolved it, and the next try
/// opened another, "failing since" starting again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_failing_at_every_try_keeps_one_letter_while_the_windows_are_pulled() {
    let fixture = sqlite().await;
    let api = FeedApi::start(vec![four_of("A-1", at("2026-06-01T08:00:00Z"))], TOKEN).await;
    api.inject_into_snapshot(vec![Fault::Status(404); 500]);
    let settings = feed_settings("acme", &api, NaiveDate::from_ymd_opt(2026, 5, 25).expect("date"));
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[settings]).await.expect("bootstrap");

    // 14:30 to 20:30 in Berlin: the start's incremental and backfill, the first refresh and its
    // tries every 5 minutes, and the 18:00 incremental between them.
    let end = CancellationToken::new();
    let clock: Arc<dyn Clock> = JumpingClock::new(at("2026-06-01T12:30:00Z"), at("2026-06-01T18:30:00Z"), end.clone());
    tokio::time::timeout(std::time::Duration::from_secs(60), source.run(clock, end))
        .await
        .expect("six simulated hours take no real time")
        .expect("run");

    let shown = pulls(&api);
    assert!(shown.contains(".. 2026-06-01T16:00:00Z"), "the 18:00 incremental was pulled:\n{shown}");
    let letters = pull_letters(&fixture).await;
    assert_eq!(letters.len(), 1, "one letter, never resolved: {letters:?}");
    assert_eq!((letters[0].resolved_at, letters[0].reason.as_str()), (None, "http_404"), "{letters:?}");
    assert!(letters[0].attempts > 2, "every try counted on it: {letters:?}");
}
