//! No older version after a newer one (issue 13, item 10): a round that outlives its lease
//! must not send what another lane has since claimed again at a newer version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::storefront::Storefront;
use crate::{channel, item_id, publisher, set_many, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_round_never_sends_an_older_version_after_a_newer_one() {
    let storefront = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["storefront"]).await;
    let hot: Vec<String> = (0..16).map(|n| format!("HOT-{n}")).collect();
    let cold: Vec<String> = (0..8).map(|n| format!("COLD-{n}")).collect();
    // The hot items wait longest, so a claim of everything sends them first.
    let first: Vec<(&str, i64)> = hot.iter().map(|sku| (sku.as_str(), 1)).collect();
    set_many(&*store, 0, &first).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let then: Vec<(&str, i64)> = cold.iter().map(|sku| (sku.as_str(), 1)).collect();
    set_many(&*store, 100, &then).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    // A low rate limit and a lease far shorter than a round of every item at that rate;
    // two lanes. Before the fix, the first lane claimed all 24 items and sent them over
    // six seconds, hot ones first; once its lease ran out the idle lane claimed the cold
    // items again, at their new (settled) versions, and sent them ahead of the first lane's
    // old ones.
    let mut config = channel("storefront", &storefront);
    config.config = config.config.with_rate(4);
    config.config.concurrency = 16;
    config.config.request_timeout = Duration::from_millis(250);
    config.config.lease = Duration::from_millis(500);
    config.config.settle = Duration::from_millis(300);
    config.config.max_wait = Duration::from_secs(10);
    let shutdown = CancellationToken::new();
    let drained = CancellationToken::new();
    let running = tokio::spawn(publisher(config, Arc::clone(&store)).run(shutdown.clone(), drained.clone()));

    // Versions arrive during the round: the cold items change once, the hot ones every
    // 100 ms (so they never settle while this goes on).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cold_changes: Vec<(&str, i64)> = cold.iter().map(|sku| (sku.as_str(), 2)).collect();
    set_many(&*store, 200, &cold_changes).await;
    for round in 0..20_u64 {
        let quantity = round as i64 + 2;
        let hot_changes: Vec<(&str, i64)> = hot.iter().map(|sku| (sku.as_str(), quantity)).collect();
        set_many(&*store, 1_000 + round * 100, &hot_changes).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drained.cancel();
    tokio::time::timeout(Duration::from_secs(60), running).await.expect("drained").expect("task").expect("run");

    let mut received: HashMap<String, Vec<u64>> = HashMap::new();
    for request in storefront.requests() {
        let item = request.body["item_id"].as_str().expect("item id").to_owned();
        received.entry(item).or_default().push(request.body["version"].as_u64().expect("version"));
    }
    for sku in hot.iter().chain(&cold) {
        let versions = &received[&item_id(sku)];
        assert!(
            versions.windows(2).all(|pair| pair[0] <= pair[1]),
            "{sku}: the storefront received versions {versions:?}, an older one after a newer one"
        );
    }
    for sku in &hot {
        assert_eq!(storefront.held_quantity(&item_id(sku)), Some(21), "{sku} ends at its final version");
    }
    for sku in &cold {
        assert_eq!(storefront.held_quantity(&item_id(sku)), Some(2), "{sku} ends at its final version");
    }
}
