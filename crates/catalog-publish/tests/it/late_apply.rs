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
/// arrived, whether or not the client still waits (it answers after 10 s); the others are
/// applied and answered at once.
#[derive(Debug, Default)]
struct LastWriteWins {
    shown: Arc<Mutex<Option<i64>>>,
    calls: AtomicUsize,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_request_is_not_overtaken_on_a_platform_that_takes_the_last_write() {
    let (store, _dir) = store(&["shopify"]).await;
    set(&*store, 1, "ABC-123", 10).await;
    let mut config = ChannelConfig::new("shopify");
    config.request_timeout = Duration::from_millis(300);
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    config.lease = Duration::from_secs(2);
    let adapter = Arc::new(LastWriteWins::default());
    let shown = Arc::clone(&adapter.shown);
    let publisher = ChannelPublisher::new(config, adapter, Arc::clone(&store) as Arc<dyn OutboxStore>, Arc::new(Quiet));
    let (shutdown, drained) = (CancellationToken::new(), CancellationToken::new());
    let running = tokio::spawn(publisher.run(shutdown.clone(), drained.clone()));
    // Version 2 (quantity 20) is queued while version 1's request is out.
    tokio::time::sleep(Duration::from_millis(100)).await;
    set(&*store, 2, "ABC-123", 20).await;
    drained.cancel();
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("drained").expect("task").expect("run");
    // Past the platform's late write of version 1.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let id = catalog_core::ItemId(item_id("ABC-123").parse().expect("uuid"));
    let trace = store.item_trace(id).await.expect("trace").expect("item");
    let attempts: Vec<(u64, String)> =
        trace.publish_attempts.iter().map(|attempt| (attempt.version, attempt.result.clone())).collect();
    assert_eq!(*shown.lock().expect("platform state"), Some(20), "the platform shows the newest version; {attempts:?}");
    assert_eq!(attempts, [(1, "retry".to_owned()), (2, "published".to_owned())]);
}
