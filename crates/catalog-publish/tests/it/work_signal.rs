//! A lane woken by the work signal claims what the signal announced: versions that become
//! due only once they have settled. A lane waiting for work is woken when draining begins.

use std::sync::Arc;
use std::time::Duration;

use catalog_publish::WorkSignal;
use tokio_util::sync::CancellationToken;

use crate::storefront::Storefront;
use crate::{channel, item_id, publisher, set, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signalled_version_is_published_once_it_has_settled() {
    let storefront = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["storefront"]).await;
    // No poll to fall back on: only the signal can wake the lanes.
    let mut config = channel("storefront", &storefront);
    config.config.settle = Duration::from_millis(300);
    config.config.max_wait = Duration::from_secs(30);
    config.config.idle_poll = Duration::from_secs(3_600);
    let work = WorkSignal::new();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(
        publisher(config, Arc::clone(&store)).woken_by(work.clone()).run(shutdown.clone(), CancellationToken::new()),
    );
    // The lanes have found the outbox empty and wait.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A batch queues a version and says so, as the applier does after its commit. Claimed at
    // the signal, the version had not settled: the lanes found nothing and waited for a
    // signal that never came.
    set(&*store, 1, "ABC-123", 7).await;
    work.notify();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while storefront.held_quantity(&item_id("ABC-123")).is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the signalled version was not published within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(storefront.held_quantity(&item_id("ABC-123")), Some(7));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("stopped").expect("task").expect("run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_lane_returns_when_draining_begins_not_at_its_next_poll() {
    let storefront = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["storefront"]).await;
    let mut config = channel("storefront", &storefront);
    config.config.idle_poll = Duration::from_secs(3_600);
    let drained = CancellationToken::new();
    let running = tokio::spawn(publisher(config, Arc::clone(&store)).run(CancellationToken::new(), drained.clone()));
    // The lanes have found the outbox empty and wait for an hour's poll.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!running.is_finished());

    // The source finished: the lanes find nothing waiting and return.
    drained.cancel();
    let published = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("returned once draining began, not after the hour's poll")
        .expect("task")
        .expect("run");
    assert_eq!(published, 0);
}
