//! Dead letters heal over real HTTP: a storefront down long enough to exhaust every
//! item's attempts leaves nothing stale once it is back, whether the item changes again
//! (its new version resolves the letter) or not (a heal round requeues it).

use std::sync::Arc;

use catalog_core::ItemId;
use catalog_store::DeadLetterHeal;

use crate::storefront::Storefront;
use crate::{channel, drain, item_id, set, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storefront_outage_heals_once_it_is_back() {
    let storefront = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["storefront"]).await;
    let skus = ["SKU-0", "SKU-1", "SKU-2", "SKU-3", "SKU-4"];
    for (n, sku) in (1..).zip(skus) {
        set(&*store, n, sku, n as i64).await;
    }

    // Down for every attempt of every item: all dead-lettered.
    storefront.set_down(true);
    let mut down = channel("storefront", &storefront);
    down.config.max_attempts = 3;
    assert_eq!(drain(down, Arc::clone(&store)).await, 0);
    assert_eq!(storefront.requests().len(), 15, "three attempts per item");
    assert_eq!(store.open_dead_letters(10).await.expect("letters").len(), 5);
    assert_eq!(store.stale_items("storefront").await.expect("stale"), 5);

    // Back up. One item changes again; the others do not, and would stay stale without a heal.
    storefront.set_down(false);
    set(&*store, 10, "SKU-0", 100).await;
    let heal = DeadLetterHeal { limit: 100, max_heals: 5, min_interval: std::time::Duration::ZERO };
    let round = store.heal_dead_letters(&heal).await.expect("heal round");
    let mut requeued: Vec<_> = round.requeued.iter().map(|letter| letter.item_id.to_string()).collect();
    requeued.sort();
    let mut expected: Vec<_> = skus[1..].iter().map(|sku| item_id(sku)).collect();
    expected.sort();
    assert_eq!(requeued, expected, "SKU-0's new version is on its way already");
    assert_eq!(drain(channel("storefront", &storefront), Arc::clone(&store)).await, 5);

    assert_eq!(store.stale_items("storefront").await.expect("stale"), 0);
    assert!(store.open_dead_letters(10).await.expect("letters").is_empty());
    assert_eq!(storefront.held_quantity(&item_id("SKU-0")), Some(100));
    for (n, sku) in (1..).zip(skus).skip(1) {
        assert_eq!(storefront.held_quantity(&item_id(sku)), Some(n), "{sku}");
    }
    for (sku, heal_rounds) in [("SKU-0", 0), ("SKU-3", 1)] {
        let letters = store.item_dead_letters(ItemId(item_id(sku).parse().expect("uuid"))).await.expect("letters");
        let states: Vec<_> = letters.iter().map(|l| (l.resolution.as_deref(), l.heal_rounds)).collect();
        assert_eq!(states, [(Some("published_later"), heal_rounds)], "{sku}");
    }
}
