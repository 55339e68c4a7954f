//! A round that outlasts the configured lease renews its claims while it sends (decision
//! 0029); once a renewal finds them lapsed, another publisher may hold the items, and the
//! round starts no more sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use catalog_publish::{
    Attempt, ChannelAdapter, ChannelConfig, ChannelPublisher, Publish, PublishEvents, Sent, Verdict,
};
use catalog_store::{OutboxEntry, PublishRecord, ResolvedDeadLetter};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{set_many, store};

/// One listing per request, each answered accepted after `delay`.
#[derive(Debug)]
struct SlowChannel {
    delay: Duration,
    sent: Mutex<Vec<String>>,
    first: Notify,
}

#[async_trait]
impl ChannelAdapter for SlowChannel {
    async fn send(&self, batch: &[Publish]) -> Sent {
        self.sent.lock().expect("sent").extend(batch.iter().map(|publish| publish.listing.clone()));
        self.first.notify_one();
        tokio::time::sleep(self.delay).await;
        let accepted = batch[0].entry.item.accepted();
        Sent::each(
            batch.len(),
            Attempt { verdict: Verdict::Answered(accepted), status: Some(200), latency: self.delay },
        )
    }
}

#[derive(Default, Clone)]
struct RanOut(Arc<Mutex<Vec<String>>>);

impl PublishEvents for RanOut {
    fn attempted(&self, _: &OutboxEntry, _: &PublishRecord) {}
    fn resolved(&self, _: &ResolvedDeadLetter) {}
    fn lease_ran_out(&self, entry: &OutboxEntry) {
        self.0.lock().expect("ran out").push(entry.item.sku().to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_whose_claims_lapsed_starts_no_more_sends() {
    let (store, _dir) = store(&["slow"]).await;
    set_many(&*store, 0, &[("LAPSE-A", 1), ("LAPSE-B", 2)]).await;
    // One lane, one send at a time, no rate limit: a send may take 4.5 s, so a round of two
    // sends is planned 9 s and its claims, taken for the configured 3 s, renewed every 1 s.
    let mut config = ChannelConfig::new("slow").with_rate(0);
    config.concurrency = 1;
    config.request_timeout = Duration::from_millis(4_500);
    config.lease = Duration::from_secs(3);
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    let channel = Arc::new(SlowChannel { delay: Duration::from_secs(4), sent: Mutex::default(), first: Notify::new() });
    let ran_out = RanOut::default();
    let publisher =
        ChannelPublisher::new(config, Arc::clone(&channel) as _, Arc::clone(&store) as _, Arc::new(ran_out.clone()));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(publisher.run(shutdown.clone(), CancellationToken::new()));
    tokio::time::timeout(Duration::from_secs(10), channel.first.notified()).await.expect("the first send starts");
    // The claims pass while the first send is in flight (as when the store was out of reach
    // for a lease): the renewal a second into the round finds none of them held.
    let first = channel.sent.lock().expect("sent")[0].clone();
    let claims: Vec<_> = ["LAPSE-A", "LAPSE-B"]
        .iter()
        .map(|sku| {
            let tenant = catalog_core::TenantId::parse("canary").expect("tenant");
            let item_id = catalog_core::ItemKey { tenant, sku: catalog_core::Sku::parse(sku).expect("sku") }.item_id();
            // Whatever claim holds them: an operator's hand, not the round's own give-back.
            catalog_store::HeldClaim { item_id, claim: None }
        })
        .collect();
    assert_eq!(store.release_claims("slow", &claims).await.expect("release"), 2);
    // The second send of the round would start 4 s in: it does not, and its item is sent
    // in a round of its own, claimed afresh.
    let sent_twice = async {
        while channel.sent.lock().expect("sent").len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), sent_twice).await.expect("the second item is sent after all");
    let second = if first == "LAPSE-A" { "LAPSE-B" } else { "LAPSE-A" };
    assert_eq!(*ran_out.0.lock().expect("ran out"), [second], "the lapsed round did not send {second}");
    shutdown.cancel();
    running.await.expect("publisher task").expect("publisher run");
}
