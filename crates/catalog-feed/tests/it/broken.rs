//! Feeds broken in ways the test feed API does not play, each served by a small local server
//! of its own: a base URL no request can be made at, redirects that loop, empty pages that
//! never end, a page longer than a page may be, a failure whose body never ends or is cut off.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use catalog_core::{Classify, FailureClass};
use catalog_feed::body::{MAX_PAGE_BYTES, MIB};
use catalog_feed::paging::MAX_EMPTY_PAGES_IN_A_ROW;
use catalog_feed::{OnceReport, OnceScope, PullError, PullSettings, RunError};
use catalog_testkit::feed_api::FeedApi;
use chrono::{Duration as TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// Serves `router` on 127.0.0.1 (port 0) for as long as the runtime lives; returns its base URL.
pub(crate) async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("the server serves") });
    format!("http://{address}")
}

/// A route answering every request with `answer()`, and the count of requests it answered.
fn counted<R>(answer: impl Fn() -> R + Clone + Send + Sync + 'static) -> (MethodRouter, Arc<AtomicUsize>)
where
    R: IntoResponse + Send + 'static,
{
    let n_requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&n_requests);
    let route = get(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let answered = answer();
        async move { answered }
    });
    (route, n_requests)
}

/// The open pull dead letters' reasons, by subject.
async fn letter_reasons(fixture: &Fixture) -> Vec<(String, String)> {
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    let mut reasons: Vec<(String, String)> =
        letters.into_iter().map(|letter| (letter.subject, letter.reason)).collect();
    reasons.sort();
    reasons
}

/// One run of feed acme (gone live two days ago) asked at `base_url`, pulled with `pull` in
/// `scope`: its report, which must come within `limit`.
async fn run_once_at(
    fixture: &Fixture,
    base_url: String,
    pull: PullSettings,
    scope: OnceScope,
    limit: Duration,
) -> OnceReport {
    let api = FeedApi::start(Vec::new(), TOKEN).await;
    let mut settings = feed_settings("acme", &api, (Utc::now() - TimeDelta::days(2)).date_naive());
    settings.base_url = base_url;
    let source = fixture.source(pull, TOKEN);
    source.bootstrap(&[settings]).await.expect("bootstrap");
    let shutdown = CancellationToken::new();
    let run = source.run_once(scope, &shutdown);
    tokio::time::timeout(limit, run).await.expect("the run ends").expect("run")
}

/// A base URL no request can be made at (stored by an older feeds file, which checked only its
/// prefix) fails its feed's run at once, for an operator: it was sent as a connection error,
/// retried to the last attempt at every page, and held as the supplier's for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_url_no_request_can_be_made_at_is_the_operator_s_and_is_not_retried() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(Vec::new(), TOKEN).await;
    let go_live = (now - TimeDelta::days(2)).date_naive();
    let mut acme = feed_settings("acme", &api, go_live);
    acme.base_url = "https://feeds.acme.example:99999".to_owned();
    let mut globex = feed_settings("globex", &api, go_live);
    globex.base_url = "https://feeds globex.example".to_owned();
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[acme, globex]).await.expect("bootstrap");
    let report = source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("run");
    assert_eq!(report.failed.len(), 2, "{report:?}");
    assert!(report.failed.iter().all(|(_, error)| error.contains("cannot be asked at its base URL")), "{report:?}");
    let reasons = letter_reasons(&fixture).await;
    let expected = [("canary/acme", "invalid_url"), ("canary/globex", "invalid_url")];
    assert_eq!(reasons, expected.map(|(subject, reason)| (subject.to_owned(), reason.to_owned())));
    let retries = fixture.metric("catalog_feed_retries_total");
    assert!(!retries.contains("connection"), "nothing retried as a connection error:\n{retries}");
    let unusable = PullError::UnusableUrl { reason: "invalid_url", error: String::new() };
    assert_eq!(RunError::Pull(unusable).failure_class(), FailureClass::NeedsOperator);
}

/// A feed whose redirects loop is asked once (reqwest follows ten redirects), not at every
/// attempt: the run fails for an operator, whose base URL (or the supplier's move) it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_redirects_loop_is_the_operator_s_and_is_not_retried() {
    let fixture = sqlite().await;
    let (redirecting, n_requests) = counted(|| Redirect::temporary("/v1/inventory"));
    let base_url = serve(Router::new().route("/v1/inventory", redirecting)).await;
    let report = run_once_at(&fixture, base_url, quick_settings(), OnceScope::Due, Duration::from_secs(30)).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("too many redirects"), "{report:?}");
    assert_eq!(letter_reasons(&fixture).await, [("canary/acme".to_owned(), "too_many_redirects".to_owned())]);
    assert_eq!(n_requests.load(Ordering::SeqCst), 11, "the request and its ten redirects, once");
    let unusable = PullError::UnusableUrl { reason: "too_many_redirects", error: String::new() };
    assert_eq!(RunError::Pull(unusable).failure_class(), FailureClass::NeedsOperator);
}

/// Answers every page with no record and a new next cursor, counting them in `n_requests`.
fn endless_empty_pages(n_requests: Arc<AtomicUsize>) -> MethodRouter {
    get(move || {
        let n = n_requests.fetch_add(1, Ordering::SeqCst);
        let page =
            serde_json::json!({"records": [], "next_cursor": format!("page-{n}"), "as_of": "2026-06-01T00:00:00Z"});
        async move { Json(page) }
    })
}

/// Answers every page as the last one, with no record.
fn one_empty_page() -> MethodRouter {
    get(|| async { Json(serde_json::json!({"records": [], "next_cursor": null, "as_of": "2026-06-01T00:00:00Z"})) })
}

/// A window whose feed answers every page with no record and a new cursor (no cursor comes
/// back) stops after a bounded run of such pages, for its supplier: it was paged for ever,
/// a store transaction a page, the window never complete, and nothing said why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_empty_pages_with_new_cursors_stops_the_run_for_the_supplier() {
    let fixture = sqlite().await;
    let n_requests = Arc::new(AtomicUsize::new(0));
    let base_url = serve(
        Router::new()
            .route("/v1/inventory", endless_empty_pages(Arc::clone(&n_requests)))
            .route("/v1/inventory/snapshot", one_empty_page()),
    )
    .await;
    let report = run_once_at(&fixture, base_url, quick_settings(), OnceScope::Due, Duration::from_secs(30)).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("pages in a row with no record"), "{report:?}");
    assert_eq!(letter_reasons(&fixture).await, [("canary/acme".to_owned(), "empty_pages".to_owned())]);
    assert_eq!(n_requests.load(Ordering::SeqCst), MAX_EMPTY_PAGES_IN_A_ROW as usize, "one run of empty pages");
    let empty = PullError::EmptyPages { pages: MAX_EMPTY_PAGES_IN_A_ROW };
    assert_eq!(RunError::Pull(empty).failure_class(), FailureClass::NeedsSupplier);
}

/// The same of a full refresh's snapshot: it stops for its supplier, and corrects nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_empty_pages_with_new_cursors_stops_the_refresh_for_the_supplier() {
    let fixture = sqlite().await;
    let n_requests = Arc::new(AtomicUsize::new(0));
    let base_url = serve(
        Router::new()
            .route("/v1/inventory", one_empty_page())
            .route("/v1/inventory/snapshot", endless_empty_pages(Arc::clone(&n_requests))),
    )
    .await;
    let scope = OnceScope::WithFullRefresh;
    let report = run_once_at(&fixture, base_url, quick_settings(), scope, Duration::from_secs(30)).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(letter_reasons(&fixture).await, [("canary/acme".to_owned(), "empty_pages".to_owned())]);
    assert_eq!(n_requests.load(Ordering::SeqCst), MAX_EMPTY_PAGES_IN_A_ROW as usize, "one run of empty pages");
    let feed = fixture.store.feed(&key("acme")).await.expect("feed").expect("known");
    assert_eq!(feed.last_full_refresh_at, None, "the refresh did not complete");
}

/// A page that would be valid read whole, but whose body is a mebibyte longer than a page may
/// be: the contract's fields, then a field of `x`s, streamed 64 KiB at a time so the test
/// holds none of it.
fn page_longer_than_its_cap() -> Body {
    const CHUNK: usize = 64 * 1024;
    let head =
        Bytes::from_static(br#"{"records": [], "next_cursor": null, "as_of": "2026-06-01T00:00:00Z", "padding": ""#);
    let padding = Bytes::from(vec![b'x'; CHUNK]);
    let n_chunks = (MAX_PAGE_BYTES + MIB) / CHUNK;
    let chunks = std::iter::once(head)
        .chain(std::iter::repeat_n(padding, n_chunks))
        .chain(std::iter::once(Bytes::from_static(b"\"}")));
    Body::from_stream(futures::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>)))
}

/// A page longer than a page may be (a feed or a proxy in front of it streaming far more than
/// 1,000 records' worth, quickly) is read no further than the cap and fails as `invalid_page`,
/// for its supplier, naming the cap. Read whole, each such page was buffered, then parsed into
/// JSON values several times its size, several at once: the worker could run out of memory
/// and take every source down with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_longer_than_its_cap_fails_as_invalid_page_naming_the_cap() {
    let fixture = sqlite().await;
    let (too_long, n_requests) = counted(page_longer_than_its_cap);
    let base_url = serve(Router::new().route("/v1/inventory", too_long)).await;
    let mut pull = quick_settings();
    // Two attempts, each given time enough to read the cap in a debug build on a busy machine:
    // a timeout would fail the page as `timeout`, not as what it is.
    pull.retry.max_attempts = 2;
    pull.retry.request_timeout = Duration::from_secs(60);
    let report = run_once_at(&fixture, base_url, pull, OnceScope::Due, Duration::from_secs(240)).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("longer than the 32 MiB a page may be"), "{report:?}");
    assert_eq!(n_requests.load(Ordering::SeqCst), 2, "the page, asked at each attempt");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].reason, "invalid_page");
    let body = letters[0].body.as_deref().unwrap_or_default();
    assert!(body.starts_with(r#"{"records": [], "next_cursor": null"#) && body.len() <= 4096, "{body:.100}");
    let invalid = PullError::Unavailable { reason: "invalid_page", attempts: 2, error: String::new(), body: None };
    assert_eq!(RunError::Pull(invalid).failure_class(), FailureClass::NeedsSupplier);
}

/// A 503 whose body never ends is read only as far as the prefix a failure keeps: the page is
/// retried as `server_error` with that prefix. Read whole, the body was read until the
/// request timed out, memory growing all the while, and the failure was told as a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_whose_body_never_ends_is_read_only_as_far_as_its_prefix() {
    let fixture = sqlite().await;
    let endless = || {
        let chunks = futures::stream::repeat(Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'x'; 64 * 1024])));
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, Body::from_stream(chunks))
    };
    let base_url = serve(Router::new().route("/v1/inventory", get(move || async move { endless() }))).await;
    let mut pull = quick_settings();
    pull.retry.max_attempts = 2;
    // Read whole, the body is read until this timeout at each attempt, memory growing all the while.
    pull.retry.request_timeout = Duration::from_secs(1);
    let report = run_once_at(&fixture, base_url, pull, OnceScope::Due, Duration::from_secs(60)).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    assert_eq!((letters.len(), letters[0].reason.as_str()), (1, "server_error"), "{letters:?}");
    let body = letters[0].body.as_deref().unwrap_or_default();
    assert_eq!(body, "x".repeat(4096), "the prefix a failure keeps");
}

/// A 403 whose body is cut off (a proxy closing the connection early) is still the refusal
/// its status says, for an operator, with what came of its body: it was retried as a
/// connection failure at every attempt and held as the supplier's service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_whose_body_is_cut_off_is_still_a_refusal() {
    let fixture = sqlite().await;
    let (cut_off, n_requests) = counted(|| {
        // The status and the first bytes go out; a moment later the connection is closed.
        let cut = futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err(std::io::Error::other("the proxy closed the connection"))
        });
        let chunks =
            futures::StreamExt::chain(futures::stream::iter([Ok(Bytes::from_static(b"{\"error\": \"token rev"))]), cut);
        (axum::http::StatusCode::FORBIDDEN, Body::from_stream(chunks))
    });
    let base_url = serve(Router::new().route("/v1/inventory", cut_off)).await;
    let mut pull = quick_settings();
    pull.retry.max_attempts = 3;
    let report = run_once_at(&fixture, base_url, pull, OnceScope::Due, Duration::from_secs(60)).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(letter_reasons(&fixture).await, [("canary/acme".to_owned(), "http_403".to_owned())]);
    assert_eq!(n_requests.load(Ordering::SeqCst), 1, "a refusal is not asked again");
    let letters = fixture.store.open_dead_letters(10).await.expect("letters");
    let body = letters[0].body.as_deref().unwrap_or_default();
    assert!(body.contains("the body could not be read"), "{body}");
}
