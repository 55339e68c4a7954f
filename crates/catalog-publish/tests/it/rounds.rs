//! Every recorded round is told to the caller (for the round metrics): the item versions it
//! claimed, its claim's limit, and where its time went.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_publish::{ChannelPublisher, PublishEvents, PublishRound, StorefrontChannel};
use catalog_store::{OutboxEntry, PublishRecord, ResolvedDeadLetter, StoreError};
use tokio_util::sync::CancellationToken;

use crate::storefront::Storefront;
use crate::{channel, set, set_many, store, Flaky};

#[derive(Default, Clone)]
struct Rounds(Arc<Mutex<Vec<PublishRound>>>);

impl PublishEvents for Rounds {
    fn attempted(&self, _: &OutboxEntry, _: &PublishRecord) {}
    fn resolved(&self, _: &ResolvedDeadLetter) {}
    fn lease_ran_out(&self, _: &OutboxEntry) {}
    fn round(&self, round: &PublishRound) {
        self.0.lock().expect("rounds").push(round.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_round_is_told_with_its_claim() {
    let storefront = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["storefront"]).await;
    let skus: Vec<String> = (0..40).map(|n| format!("ROUND-{n}")).collect();
    let changes: Vec<(&str, i64)> = skus.iter().map(|sku| (sku.as_str(), 3)).collect();
    set_many(&*store, 0, &changes).await;

    // One send in flight per lane: rounds of at most 16 items, so 40 take at least three.
    let mut config = channel("storefront", &storefront);
    config.config.concurrency = 2;
    let adapter = StorefrontChannel::new(config.storefront, config.config.request_timeout, config.config.concurrency)
        .expect("HTTP client");
    let rounds = Rounds::default();
    let publisher = ChannelPublisher::new(config.config, Arc::new(adapter), store, Arc::new(rounds.clone()));
    let drained = CancellationToken::new();
    drained.cancel();
    let published = tokio::time::timeout(Duration::from_secs(30), publisher.run(CancellationToken::new(), drained))
        .await
        .expect("drained within 30 s")
        .expect("publisher run");
    assert_eq!(published, 40);

    let rounds = rounds.0.lock().expect("rounds").clone();
    assert!(rounds.len() >= 3, "40 items in rounds of at most 16: {rounds:?}");
    assert_eq!(rounds.iter().map(|round| round.n_items).sum::<usize>(), 40, "each claimed version in one round");
    for round in &rounds {
        assert_eq!(round.channel, "storefront");
        assert_eq!(round.limit, 16, "one send per lane, sixteen sends per slot");
        assert!((1..=round.limit).contains(&round.n_items), "{round:?}");
    }
    assert!(rounds.iter().any(|round| round.n_items == round.limit), "a round that found more due came back full");
    assert_eq!(storefront.requests().len(), 40);
}

/// Tells which store steps failed, by kind.
#[derive(Default)]
struct StoreFailures(std::sync::Mutex<Vec<(&'static str, &'static str)>>);

impl PublishEvents for StoreFailures {
    fn attempted(&self, _: &OutboxEntry, _: &PublishRecord) {}
    fn resolved(&self, _: &ResolvedDeadLetter) {}
    fn lease_ran_out(&self, _: &OutboxEntry) {}
    fn store_failed(&self, _channel: &str, step: &'static str, error: &StoreError) {
        self.0.lock().expect("failures").push((step, error.kind()));
    }
}

/// Draining (a replay, a finished file): a store that cannot say for a moment what waits is
/// asked again, as a failed claim is; the channel's run ends once the store says nothing
/// waits, not with the store's passing error. Each failure is told, for the store's retry
/// count: a channel whose claims kept failing sent nothing, and no metric said why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_while_draining_is_retried_not_the_end_of_the_channel() {
    let storefront = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "ABC-123", 42).await;
    let flaky = Arc::new(Flaky::new(Arc::clone(&store)));
    flaky.depth_failures.store(1, std::sync::atomic::Ordering::SeqCst);
    flaky.claim_failures.store(1, std::sync::atomic::Ordering::SeqCst);
    let failures = Arc::new(StoreFailures::default());
    let channel = channel("storefront", &storefront);
    let adapter =
        StorefrontChannel::new(channel.storefront, channel.config.request_timeout, channel.config.concurrency)
            .expect("HTTP client");
    let publisher = ChannelPublisher::new(channel.config, Arc::new(adapter), flaky.clone(), failures.clone());
    let drained = CancellationToken::new();
    drained.cancel();
    let run = tokio::time::timeout(Duration::from_secs(30), publisher.run(CancellationToken::new(), drained))
        .await
        .expect("drained within 30 s");
    assert_eq!(run.expect("the run ends well"), 1);
    assert_eq!(flaky.depth_failures.load(std::sync::atomic::Ordering::SeqCst), 0, "the failure was met");
    let mut told = failures.0.lock().expect("failures").clone();
    told.sort_unstable();
    assert_eq!(told, [("claim", "transaction_timeout"), ("drain_depth", "unavailable")]);
}
