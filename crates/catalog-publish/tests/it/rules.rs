//! Stock rules and listings in the drain loop, over real HTTP: each channel is sent the
//! quantity its rules give (not the catalog's), the attempt records it with the rule, and a
//! SKU a channel does not list is skipped there without a request, a failure or a dead letter.

use std::collections::BTreeMap;
use std::sync::Arc;

use catalog_core::{ChannelRules, ItemId, Listings, Sku, StockRules};

use crate::storefront::Storefront;
use crate::{channel, drain, item_id, set_many, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_gets_what_its_rules_give_and_an_unlisted_sku_is_skipped() {
    let halved = Storefront::start(vec![]).await;
    let mapped = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["halved", "mapped"]).await;
    set_many(&*store, 1, &[("ABC-1", 12), ("XYZ-9", 7)]).await;

    let mut halved_channel = channel("halved", &halved);
    halved_channel.config.rules = ChannelRules {
        listings: Listings::BySku,
        stock: StockRules::new(2, 50, Some(100), None).expect("valid rules"),
    };
    let mut mapped_channel = channel("mapped", &mapped);
    mapped_channel.config.rules = ChannelRules {
        listings: Listings::Mapped(BTreeMap::from([(Sku::parse("ABC-1").expect("sku"), "L-1".to_owned())])),
        stock: StockRules::default(),
    };
    assert_eq!(drain(halved_channel, Arc::clone(&store)).await, 2);
    assert_eq!(drain(mapped_channel, Arc::clone(&store)).await, 1, "only the listed SKU is sent");

    // (12 - 2) * 50 % = 5 and (7 - 2) * 50 % = 2, rounded down.
    assert_eq!(halved.held_quantity(&item_id("ABC-1")), Some(5));
    assert_eq!(halved.held_quantity(&item_id("XYZ-9")), Some(2));
    assert_eq!(mapped.held_quantity(&item_id("ABC-1")), Some(12));
    assert_eq!(mapped.requests().len(), 1, "no request for the unlisted SKU");

    let trace = |sku: &str| {
        let store = Arc::clone(&store);
        let item = ItemId(item_id(sku).parse().expect("uuid"));
        async move { store.item_trace(item).await.expect("trace").expect("item").publish_attempts }
    };
    let rendered: Vec<String> = [trace("ABC-1").await, trace("XYZ-9").await]
        .concat()
        .iter()
        .map(|attempt| match &attempt.sent {
            Some(sent) => {
                format!("{} {}: {} = {} ({})", attempt.channel, attempt.result, sent.listing, sent.quantity, sent.rule)
            }
            None => format!("{} {}: {}", attempt.channel, attempt.result, attempt.error.clone().unwrap_or_default()),
        })
        .collect();
    insta::assert_snapshot!(rendered.join("\n"), @r"
    halved published: ABC-1 = 5 (catalog 12; buffer 2: 10; share 50%: 5; cap 100: 5)
    mapped published: L-1 = 12 (catalog 12)
    halved published: XYZ-9 = 2 (catalog 7; buffer 2: 5; share 50%: 2; cap 100: 2)
    mapped skipped: unmapped_sku: SKU XYZ-9 has no listing on channel mapped
    ");
    assert!(store.open_dead_letters(10).await.expect("dead letters").is_empty(), "a skip is no failure");
    let depths = store.outbox_depth().await.expect("depth");
    assert_eq!(depths.iter().map(|depth| depth.pending).sum::<u64>(), 0, "nothing left waiting: {depths:?}");
}
