//! The failure budget over real HTTP: throttling spends none of it, each channel has its
//! own, a 408 is a retryable failure, and `Retry-After` is honoured as a fraction or a date.

use std::sync::Arc;
use std::time::Duration;

use catalog_core::ItemId;
use catalog_store::prelude::*;
use catalog_store::PublishAttempt;

use crate::storefront::{Behavior, Storefront};
use crate::{channel, drain, item_id, set, store};

async fn attempts_of(store: &dyn CatalogStore, sku: &str) -> Vec<PublishAttempt> {
    let item = ItemId(item_id(sku).parse().expect("uuid"));
    store.item_trace(item).await.expect("trace").expect("item").publish_attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_spends_none_of_the_failure_budget() {
    // Five 429s and a 503 against a budget of two failures: only the 503 is a failure.
    let mut script = vec![Behavior::ThrottleFor("0.05".into()); 5];
    script.push(Behavior::Status(503));
    let storefront = Storefront::start(script).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "ABC-123", 42).await;
    let mut config = channel("storefront", &storefront);
    config.config.max_attempts = 2;
    assert_eq!(drain(config, Arc::clone(&store)).await, 1, "published, not dead-lettered");
    assert_eq!(storefront.held_version(&item_id("ABC-123")), Some(1));
    let attempts: Vec<_> =
        attempts_of(&*store, "ABC-123").await.iter().map(|a| (a.attempt, a.result.clone(), a.status)).collect();
    let throttled = (1, "throttled".to_owned(), Some(429));
    assert_eq!(
        attempts,
        [
            throttled.clone(),
            throttled.clone(),
            throttled.clone(),
            throttled.clone(),
            throttled,
            (1, "retry".to_owned(), Some(503)),
            (2, "published".to_owned(), Some(202)),
        ],
        "every throttled attempt is recorded; the budget counts the one failure"
    );
    assert!(store.open_dead_letters(10).await.expect("dead letters").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_spends_its_own_failure_budget() {
    let tight = Storefront::start(vec![]).await;
    let patient = Storefront::start(vec![]).await;
    tight.set_down(true);
    patient.set_down(true);
    let (store, _dir) = store(&["tight", "patient"]).await;
    set(&*store, 1, "ABC-123", 42).await;
    let mut tight_channel = channel("tight", &tight);
    tight_channel.config.max_attempts = 2;
    let mut patient_channel = channel("patient", &patient);
    patient_channel.config.max_attempts = 5;
    let (n_tight, n_patient) =
        tokio::join!(drain(tight_channel, Arc::clone(&store)), drain(patient_channel, Arc::clone(&store)));
    assert_eq!((n_tight, n_patient), (0, 0));
    assert_eq!((tight.requests().len(), patient.requests().len()), (2, 5), "each channel's own max_attempts");
    let mut letters: Vec<_> = store
        .open_dead_letters(10)
        .await
        .expect("dead letters")
        .into_iter()
        .map(|letter| (letter.channel, letter.reason))
        .collect();
    letters.sort();
    assert_eq!(
        letters,
        [
            (Some("patient".to_owned()), "retries_exhausted".to_owned()),
            (Some("tight".to_owned()), "retries_exhausted".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_408_is_retried_and_retry_after_may_be_a_fraction_or_a_date() {
    // Both waits are longer than the default a header that does not parse gets (1 s): the
    // date is three seconds ahead, to the second, so about two or more are left of it.
    let script = vec![
        Behavior::Status(408),
        Behavior::ThrottleFor("1.5".into()),
        Behavior::ThrottleUntil(Duration::from_secs(3)),
    ];
    let storefront = Storefront::start(script).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "ABC-123", 42).await;
    assert_eq!(drain(channel("storefront", &storefront), Arc::clone(&store)).await, 1);
    let requests = storefront.requests();
    assert_eq!(requests.len(), 4);
    let after_fraction = requests[2].at.duration_since(requests[1].at);
    assert!(after_fraction >= Duration::from_millis(1_500), "Retry-After: 1.5 waited {after_fraction:?}");
    let after_date = requests[3].at.duration_since(requests[2].at);
    assert!(after_date >= Duration::from_millis(1_500), "Retry-After as a date waited {after_date:?}");
    let attempts: Vec<_> =
        attempts_of(&*store, "ABC-123").await.iter().map(|a| (a.attempt, a.result.clone(), a.status)).collect();
    assert_eq!(
        attempts,
        [
            (1, "retry".to_owned(), Some(408)),
            (2, "throttled".to_owned(), Some(429)),
            (2, "throttled".to_owned(), Some(429)),
            (2, "published".to_owned(), Some(202)),
        ]
    );
}
