//! Contract cases of claims that outlive their round's plan: given back by a round cut short
//! (`release_claims`), held by a round still sending (`extend_claims`).

use catalog_core::{ItemId, StockChange};

use super::fixtures::*;
use crate::{CatalogStore, HeldClaim, OutboxEntry, StoreConfig};

/// The claim of `item` among `claimed`, as its round names it.
fn held(claimed: &[OutboxEntry], item: ItemId) -> HeldClaim {
    claimed.iter().find(|entry| entry.item.id() == item).map(OutboxEntry::held_claim).expect("claimed")
}

/// Items A-1 and B-1 of tenant canary, each waiting on the storefront channel.
async fn two_items(store: &dyn CatalogStore) -> (ItemId, ItemId) {
    let (a, b) = (offer("canary", "acme", "A-1"), offer("canary", "acme", "B-1"));
    let changes = vec![
        incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1),
        incoming(2, &b, StockChange::Updated { quantity: 5 }, 0, 2),
    ];
    store.apply_batch(&batch(changes)).await.expect("apply");
    (a.item_key().item_id(), b.item_key().item_id())
}

pub(super) async fn a_released_claim_is_due_at_once_and_only_the_items_named<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let (a_id, _) = two_items(&*store).await;
    // Leased for an hour: a round cut short by shutdown gives A back, keeps B.
    let long = crate::OutboxClaim { lease: std::time::Duration::from_secs(3_600), ..immediate(10) };
    let claimed = store.claim_outbox("storefront", &long).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty(), "both leased");
    let a_held = held(&claimed, a_id);
    assert_eq!(store.release_claims("other-channel", &[a_held]).await.expect("release"), 0, "another channel's row");
    assert_eq!(store.release_claims("storefront", &[a_held]).await.expect("release"), 1);
    let again = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(again.iter().map(|entry| entry.item.id()).collect::<Vec<_>>(), [a_id], "A at once, B still leased");
    assert_eq!(again[0].attempts, 0, "giving a claim back spends no attempt");
    assert_eq!(store.release_claims("storefront", &[]).await.expect("release"), 0);
}

/// A claim given back keeps its place in line: A, queued before B and given back after B
/// fell due, is claimed before B (decision 0057: claims take the rows due longest first, and
/// a row given back is due since it was queued, not since it was given back).
pub(super) async fn a_released_claim_keeps_its_place_in_line<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let (a, b) = (offer("canary", "acme", "A-1"), offer("canary", "acme", "B-1"));
    for (n, key) in [(1, &a), (2, &b)] {
        let change = incoming(n, key, StockChange::Updated { quantity: 4 }, 0, 1);
        store.apply_batch(&batch(vec![change])).await.expect("apply");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (a_id, b_id) = (a.item_key().item_id(), b.item_key().item_id());
    let first = store.claim_outbox("storefront", &immediate(1)).await.expect("claim");
    assert_eq!(first.iter().map(|entry| entry.item.id()).collect::<Vec<_>>(), [a_id], "queued first");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(store.release_claims("storefront", &[held(&first, a_id)]).await.expect("release"), 1);
    let next = store.claim_outbox("storefront", &immediate(1)).await.expect("claim");
    assert_eq!(next.iter().map(|entry| entry.item.id()).collect::<Vec<_>>(), [a_id], "A before B ({b_id})");
}

pub(super) async fn an_extended_claim_stays_leased_and_a_lapsed_one_is_not_taken_back<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let (a_id, b_id) = two_items(&*store).await;
    // Both leased briefly; A is held for an hour while it is still being sent, B is not.
    let brief = crate::OutboxClaim { lease: std::time::Duration::from_millis(200), ..immediate(10) };
    let claimed = store.claim_outbox("storefront", &brief).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let a_held = held(&claimed, a_id);
    let hour = std::time::Duration::from_secs(3_600);
    assert_eq!(
        store.extend_claims("other-channel", &[a_held], hour).await.expect("extend"),
        0,
        "another channel's row"
    );
    assert_eq!(store.extend_claims("storefront", &[a_held], hour).await.expect("extend"), 1);
    // A shorter extension never shortens the lease.
    assert_eq!(store.extend_claims("storefront", &[a_held], std::time::Duration::ZERO).await.expect("extend"), 1);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let again = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(again.iter().map(|entry| entry.item.id()).collect::<Vec<_>>(), [b_id], "B's lease passed, A is held");
    // A claim given back (or lapsed) is not taken back by a late extension.
    assert_eq!(store.release_claims("storefront", &[a_held]).await.expect("release"), 1);
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    assert_eq!(store.extend_claims("storefront", &[a_held], hour).await.expect("extend"), 0, "A is due, not leased");
    let due = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(due.iter().map(|entry| entry.item.id()).collect::<Vec<_>>(), [a_id]);
    assert_eq!(store.extend_claims("storefront", &[], hour).await.expect("extend"), 0);
}

/// A round whose lease passed gives back or holds only its own claims: once another publisher
/// claimed the row, a late give-back would make that claim's row due at once (a second send of
/// the version while the first is out) and a late renewal would hold it past that claim's
/// lease (decision 0043).
pub(super) async fn a_late_give_back_or_renewal_leaves_another_claim_s_row_alone<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let (a_id, _) = two_items(&*store).await;
    let brief = crate::OutboxClaim { lease: std::time::Duration::from_millis(1), ..immediate(10) };
    let first = store.claim_outbox("storefront", &brief).await.expect("claim");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let hour = std::time::Duration::from_secs(3_600);
    let long = crate::OutboxClaim { lease: hour, ..immediate(10) };
    let second = store.claim_outbox("storefront", &long).await.expect("claim again");
    assert_eq!(second.len(), 2, "the first lease passed");
    let (late, current) = (held(&first, a_id), held(&second, a_id));
    assert_ne!(late.claim, current.claim, "each claim has its own token");

    assert_eq!(store.release_claims("storefront", &[late]).await.expect("release"), 0, "the late round's give-back");
    assert!(store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty(), "A stays leased");
    assert_eq!(store.extend_claims("storefront", &[late], hour).await.expect("extend"), 0, "the late round's renewal");
    // The claim that holds the row gives it back and renews it as before.
    assert_eq!(store.extend_claims("storefront", &[current], hour).await.expect("extend"), 1);
    assert_eq!(store.release_claims("storefront", &[current]).await.expect("release"), 1);
    let again = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(again.iter().map(|entry| entry.item.id()).collect::<Vec<_>>(), [a_id]);
}
