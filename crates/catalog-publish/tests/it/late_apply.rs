//! A request the drain loop gave up on at its timeout may still be applied by the platform. On
//! a platform that takes the last write (every marketplace), the older quantity would then land
//! over a newer version sent after the backoff: the item waits a lease before it is sent again
//! (decision 0043). (Found by review; this test failed with the channel showing version 1.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_publish::{Attempt, ChannelAdapter, ChannelConfig, ChannelPublisher, Publish, Sent, Verdict};
use catalog_store::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::{item_id, set, store, Quiet};

/// A platform that takes the last write: its first request is applied 700 ms after it
/// arrived, whether or not the client still waits (it answers after 10 s, or a gateway in
/// front of it answers for it at once with `gateway`'s reason, as the adapters classify a 502
/// or 504); the others are applied and answered at once.
#[derive(Debug, Default)]
struct LastWriteWins {
    shown: Arc<Mutex<Option<i64>>>,
    calls: AtomicUsize,
    gateway: Option<&'static str>,
}

#[async_trait::async_trait]
impl ChannelAdapter for LastWriteWins {
    async fn send(&self, batch: &[Publish]) -> Sent {
        let publish = &batch[0];
        let quantity = publish.quantity;
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let shown = Arc::clone(&self.shown);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(700)).await;
                *shown.lock().expect("platform state") = Some(quantity);
            });
            if let Some(reason) = self.gateway {
                let error = "HTTP 504: upstream timed out".to_owned();
                let attempt =
                    Attempt { verdict: Verdict::Retry { reason, error }, status: Some(504), latency: Duration::ZERO };
                return Sent::each(batch.len(), attempt);
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        *self.shown.lock().expect("platform state") = Some(quantity);
        Sent::each(
            batch.len(),
            Attempt {
                verdict: Verdict::Answered(publish.entry.item.accepted()),
                status: Some(200),
                latency: Duration::ZERO,
            },
        )
    }
}

/// What a run of `shopify` (lease 2 s, requests bounded at 300 ms) over [`LastWriteWins`]
/// leaves: the quantity the platform shows once its late write is past, each publish
/// attempt's version and result, and how many requests the platform got. Version 1 is queued,
/// and with `newer` version 2 too while version 1's request is out.
async fn late_applied(max_attempts: u32, newer: bool) -> (Option<i64>, Vec<(u64, String)>, usize) {
    late_applied_behind(None, max_attempts, newer).await
}

/// [`late_applied`], the first request answered by a gateway with `gateway`'s reason, if any.
async fn late_applied_behind(
    gateway: Option<&'static str>,
    max_attempts: u32,
    newer: bool,
) -> (Option<i64>, Vec<(u64, String)>, usize) {
    let (store, _dir) = store(&["shopify"]).await;
    set(&*store, 1, "ABC-123", 10).await;
    let mut config = ChannelConfig::new("shopify");
    config.request_timeout = Duration::from_millis(300);
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    config.lease = Duration::from_secs(2);
    config.max_attempts = max_attempts;
    let adapter = Arc::new(LastWriteWins { gateway, ..LastWriteWins::default() });
    let shown = Arc::clone(&adapter.shown);
    let publisher =
        ChannelPublisher::new(config, adapter.clone(), Arc::clone(&store) as Arc<dyn OutboxStore>, Arc::new(Quiet));
    let (shutdown, drained) = (CancellationToken::new(), CancellationToken::new());
    let running = tokio::spawn(publisher.run(shutdown.clone(), drained.clone()));
    if newer {
        // Version 2 (quantity 20) is queued while version 1's request is out.
        tokio::time::sleep(Duration::from_millis(100)).await;
        set(&*store, 2, "ABC-123", 20).await;
    }
    drained.cancel();
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("drained").expect("task").expect("run");
    // Past the platform's late write of version 1.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let id = catalog_core::ItemId(item_id("ABC-123").parse().expect("uuid"));
    let trace = store.item_trace(id).await.expect("trace").expect("item");
    let attempts = trace.publish_attempts.iter().map(|attempt| (attempt.version, attempt.result.clone())).collect();
    let shown = *shown.lock().expect("platform state");
    (shown, attempts, adapter.calls.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_request_is_not_overtaken_on_a_platform_that_takes_the_last_write() {
    let (shown, attempts, _) = late_applied(8, true).await;
    assert_eq!(shown, Some(20), "the platform shows the newest version; {attempts:?}");
    assert_eq!(attempts, [(1, "retry".to_owned()), (2, "published".to_owned())]);
}

/// A gateway's 504 or 502 in front of the platform says the platform did not answer, not that
/// it did not take the request: the item waits the lease as for the worker's own timeout.
/// Retried after the backoff, version 2 went out and was accepted, and version 1 landed over
/// it (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_s_answer_for_the_platform_is_not_overtaken_either() {
    for reason in ["gateway_timeout", "bad_gateway"] {
        let (shown, attempts, _) = late_applied_behind(Some(reason), 8, true).await;
        assert_eq!(shown, Some(20), "{reason}: the platform shows the newest version; {attempts:?}");
        assert_eq!(attempts, [(1, "retry".to_owned()), (2, "published".to_owned())], "{reason}");
    }
}

/// The last attempt a version's budget allows, unanswered, waits the lease too: dead-lettered
/// at once, it let the newer version queued behind it go out before the platform applied it.
/// (Found by review: the platform showed version 1.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_last_attempt_is_not_overtaken_either() {
    let (shown, attempts, calls) = late_applied(1, true).await;
    assert_eq!(shown, Some(20), "the platform shows the newest version; {attempts:?}");
    assert_eq!(attempts, [(1, "retry".to_owned()), (2, "published".to_owned())]);
    assert_eq!(calls, 2, "one request a version");
}

/// A version whose last attempt went unanswered, with nothing newer behind it, is
/// dead-lettered once the lease is out, without another request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_last_attempt_is_dead_lettered_after_the_lease_without_a_request() {
    let (shown, attempts, calls) = late_applied(1, false).await;
    assert_eq!(attempts, [(1, "retry".to_owned()), (1, "dead_lettered".to_owned())]);
    assert_eq!(calls, 1, "the budget of one request was spent");
    assert_eq!(shown, Some(10), "the platform applied it late, as it may");
}
