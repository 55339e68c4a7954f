//! Contract cases of dead letters that heal (decision 0007): a later accepted version
//! resolves the open letter in the same transaction, auto-heal requeues the item's current
//! version, and a letter that keeps failing is quarantined after `max_heals` rounds.

use catalog_core::{ItemId, StockChange};
use chrono::{Duration, Utc};

use super::fixtures::*;
use crate::{
    CatalogStore, DeadLetterCount, DeadLetterHeal, DeadLetterResolution, HealRound, OutboxEntry, PublishOutcome,
    PublishRecord, StoreConfig,
};

fn dead_lettered(entry: &OutboxEntry, reason: &str) -> PublishRecord {
    PublishRecord {
        status: None,
        dead_letter_reason: Some(reason.to_owned()),
        error: Some(format!("{reason} at version {}", entry.item.version())),
        ..published(entry, PublishOutcome::DeadLettered)
    }
}

fn heal(max_heals: u32, min_interval: std::time::Duration) -> DeadLetterHeal {
    DeadLetterHeal { limit: 10, max_heals, min_interval }
}

/// (item, version, heal rounds) of the letters a heal round requeued and quarantined.
type HealSummary = (Vec<(ItemId, u64, u32)>, Vec<(ItemId, u64, u32)>);

fn summary(round: &HealRound) -> HealSummary {
    let list = |letters: &[crate::HealedDeadLetter]| {
        let mut list: Vec<_> = letters.iter().map(|l| (l.item_id, l.version, l.heal_rounds)).collect();
        list.sort();
        list
    };
    (list(&round.requeued), list(&round.quarantined))
}

/// Claims everything due on the storefront, by SKU.
async fn claim_all(store: &dyn CatalogStore) -> Vec<OutboxEntry> {
    let mut claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    claimed.sort_by_key(|entry| entry.item.sku().to_string());
    claimed
}

pub(super) async fn an_accepted_later_version_resolves_the_open_dead_letter<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let (a, b) = (offer("canary", "acme", "A-1"), offer("canary", "acme", "B-1"));
    let (a_id, b_id) = (a.item_key().item_id(), b.item_key().item_id());
    let events = vec![
        incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1),
        incoming(2, &b, StockChange::Updated { quantity: 4 }, 0, 1),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let claimed = claim_all(&*store).await;
    let round = [dead_lettered(&claimed[0], "retries_exhausted"), dead_lettered(&claimed[1], "rejected_422")];
    assert!(store.record_publishes(&round).await.expect("record").is_empty(), "nothing to resolve yet");
    let letters = store.item_dead_letters(a_id).await.expect("letters");
    let open: Vec<_> =
        letters.iter().map(|l| (l.version, l.heal_rounds, l.resolved_at, l.resolution.clone())).collect();
    assert_eq!(open, [(1, 0, None, None)]);
    assert_eq!(
        store.dead_letter_counts().await.expect("counts"),
        [DeadLetterCount { channel: "storefront".into(), open: 2, quarantined: 0 }]
    );

    // Version 2 of each: A is accepted, B's channel already holds a newer one.
    let events = vec![
        incoming(3, &a, StockChange::Updated { quantity: 5 }, 1, 2),
        incoming(4, &b, StockChange::Updated { quantity: 5 }, 1, 2),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let claimed = claim_all(&*store).await;
    let round = [
        published(&claimed[0], PublishOutcome::Published),
        published(&claimed[1], PublishOutcome::Superseded { current_version: 9 }),
    ];
    let mut resolved: Vec<_> = store
        .record_publishes(&round)
        .await
        .expect("record")
        .into_iter()
        .map(|r| (r.item_id, r.channel, r.version, r.resolution, r.heal_rounds))
        .collect();
    resolved.sort();
    let mut expected = vec![
        (a_id, "storefront".to_owned(), 2, DeadLetterResolution::PublishedLater, 0),
        (b_id, "storefront".to_owned(), 9, DeadLetterResolution::SupersededLater, 0),
    ];
    expected.sort();
    assert_eq!(resolved, expected, "resolved in the transaction that recorded the accepted versions");
    assert!(store.open_dead_letters(10).await.expect("open letters").is_empty());
    assert!(store.dead_letter_counts().await.expect("counts").is_empty());
    for (item_id, resolution) in [(a_id, "published_later"), (b_id, "superseded_later")] {
        let letters = store.item_dead_letters(item_id).await.expect("letters");
        assert_eq!(letters.len(), 1);
        assert!(letters[0].resolved_at.is_some(), "{letters:?}");
        assert_eq!(letters[0].resolution.as_deref(), Some(resolution));
    }

    // A fails for good again later: a new letter opens, the resolved one stays resolved.
    store.apply_batch(&batch(vec![incoming(5, &a, StockChange::Updated { quantity: 6 }, 2, 3)])).await.expect("apply");
    let claimed = claim_all(&*store).await;
    let rejected = PublishRecord {
        body: Some(r#"{"error":"sku unknown"}"#.to_owned()),
        ..dead_lettered(&claimed[0], "rejected_422")
    };
    store.record_publish(&rejected).await.expect("record");
    let letters = store.item_dead_letters(a_id).await.expect("letters");
    let states: Vec<_> = letters.iter().map(|l| (l.version, l.resolution.clone())).collect();
    assert_eq!(states, [(1, Some("published_later".to_owned())), (3, None)]);

    // Its next version runs out of retries on 503s: the same letter tells the newest failure
    // and keeps the platform's explanation of the one before.
    store.apply_batch(&batch(vec![incoming(6, &a, StockChange::Updated { quantity: 7 }, 3, 4)])).await.expect("apply");
    let claimed = claim_all(&*store).await;
    store.record_publish(&dead_lettered(&claimed[0], "retries_exhausted")).await.expect("record");
    let letters = store.item_dead_letters(a_id).await.expect("letters");
    let open = letters.iter().find(|letter| letter.resolved_at.is_none()).expect("open");
    assert_eq!(
        (open.version, open.reason.as_str(), open.body.as_deref()),
        (4, "retries_exhausted", Some(r#"{"error":"sku unknown"}"#))
    );
}

pub(super) async fn an_older_version_accepted_late_resolves_nothing<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    let first = claim_all(&*store).await;
    store
        .record_publish(&published(&first[0], PublishOutcome::RetryAt(Utc::now() - Duration::seconds(1))))
        .await
        .expect("record");
    store.apply_batch(&batch(vec![incoming(2, &a, StockChange::Updated { quantity: 5 }, 1, 2)])).await.expect("apply");
    let second = claim_all(&*store).await;
    assert_eq!(second[0].item.version(), 2);
    store.record_publish(&dead_lettered(&second[0], "rejected_422")).await.expect("record");
    // A record of version 1 arriving this late (a round whose lease ran out) says nothing
    // about version 2.
    let resolved = store.record_publish(&published(&first[0], PublishOutcome::Published)).await.expect("record");
    assert!(resolved.is_empty(), "{resolved:?}");
    let open = store.open_dead_letters(10).await.expect("open letters");
    assert_eq!(open.iter().map(|l| (l.version, l.resolved_at)).collect::<Vec<_>>(), [(2, None)]);
    assert_eq!(store.stale_items("storefront").await.expect("stale"), 1, "the channel holds version 1 of 2");
}

pub(super) async fn auto_heal_requeues_the_current_version_and_its_publish_resolves_the_letter<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let (a, b) = (offer("canary", "acme", "A-1"), offer("canary", "acme", "B-1"));
    let (a_id, b_id) = (a.item_key().item_id(), b.item_key().item_id());
    let events = vec![
        incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1),
        incoming(2, &b, StockChange::Updated { quantity: 4 }, 0, 1),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let claimed = claim_all(&*store).await;
    let round: Vec<_> = claimed.iter().map(|entry| dead_lettered(entry, "retries_exhausted")).collect();
    store.record_publishes(&round).await.expect("record");
    // B changes meanwhile: its version 2 waits in the outbox, a publish already under way.
    store.apply_batch(&batch(vec![incoming(3, &b, StockChange::Updated { quantity: 7 }, 1, 2)])).await.expect("apply");

    let round = store.heal_dead_letters(&heal(5, std::time::Duration::ZERO)).await.expect("heal");
    assert_eq!(summary(&round), (vec![(a_id, 1, 1)], vec![]), "B is on its way already");
    assert_eq!(round.n_examined, 1);
    let again = store.heal_dead_letters(&heal(5, std::time::Duration::ZERO)).await.expect("heal");
    assert_eq!((summary(&again), again.n_examined), ((vec![], vec![]), 0), "A's requeued publish is under way");

    let claimed = claim_all(&*store).await;
    let due: Vec<_> = claimed.iter().map(|e| (e.item.id(), e.item.version(), e.attempts)).collect();
    assert_eq!(due, [(a_id, 1, 0), (b_id, 2, 0)], "the requeued version is due at once, with a fresh budget");
    let round = [published(&claimed[0], PublishOutcome::Published), dead_lettered(&claimed[1], "retries_exhausted")];
    let resolved = store.record_publishes(&round).await.expect("record");
    let resolved: Vec<_> = resolved.iter().map(|r| (r.item_id, r.version, r.resolution, r.heal_rounds)).collect();
    assert_eq!(resolved, [(a_id, 1, DeadLetterResolution::PublishedLater, 1)]);
    let letter = &store.item_dead_letters(a_id).await.expect("letters")[0];
    assert!(letter.last_healed_at.is_some() && letter.resolved_at.is_some(), "{letter:?}");
    assert_eq!((letter.heal_rounds, letter.resolution.as_deref()), (1, Some("published_later")));

    // B's letter now holds version 2, the newest that failed, and heals to B's current version.
    let round = store.heal_dead_letters(&heal(5, std::time::Duration::ZERO)).await.expect("heal");
    assert_eq!(summary(&round), (vec![(b_id, 2, 1)], vec![]));
    let b_letter = &store.item_dead_letters(b_id).await.expect("letters")[0];
    assert_eq!((b_letter.version, b_letter.attempts), (2, 2), "both failures counted on the one open letter");
    let claimed = claim_all(&*store).await;
    assert_eq!(
        claimed.iter().map(|e| (e.item.id(), e.item.version(), e.item.quantity())).collect::<Vec<_>>(),
        [(b_id, 2, 7)]
    );
}

pub(super) async fn auto_heal_quarantines_a_letter_that_keeps_failing<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    let a_id = a.item_key().item_id();
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    let claimed = claim_all(&*store).await;
    store.record_publish(&dead_lettered(&claimed[0], "rejected_422")).await.expect("record");

    for n_round in 1..=2 {
        let round = store.heal_dead_letters(&heal(2, std::time::Duration::ZERO)).await.expect("heal");
        assert_eq!(summary(&round), (vec![(a_id, 1, n_round)], vec![]), "heal round {n_round}");
        let claimed = claim_all(&*store).await;
        store.record_publish(&dead_lettered(&claimed[0], "rejected_422")).await.expect("record");
    }
    let recent = store.heal_dead_letters(&heal(2, std::time::Duration::from_secs(3_600))).await.expect("heal");
    assert_eq!((summary(&recent), recent.n_examined), ((vec![], vec![]), 0), "healed within the interval");
    let round = store.heal_dead_letters(&heal(2, std::time::Duration::ZERO)).await.expect("heal");
    assert_eq!(summary(&round), (vec![], vec![(a_id, 1, 2)]), "two heal rounds failed again: quarantined");
    let after = store.heal_dead_letters(&heal(2, std::time::Duration::ZERO)).await.expect("heal");
    assert_eq!((summary(&after), after.n_examined), ((vec![], vec![]), 0), "a quarantined letter is healed no more");
    assert!(store.claim_outbox("storefront", &immediate(10)).await.expect("claim").is_empty());

    let open = store.open_dead_letters(10).await.expect("open letters");
    assert_eq!(open.len(), 1, "still open, for an operator");
    assert!(open[0].quarantined_at.is_some());
    assert_eq!((open[0].attempts, open[0].heal_rounds), (3, 2));
    assert_eq!(
        store.dead_letter_counts().await.expect("counts"),
        [DeadLetterCount { channel: "storefront".into(), open: 1, quarantined: 1 }]
    );

    // A later version the channel accepts resolves even a quarantined letter.
    store.apply_batch(&batch(vec![incoming(2, &a, StockChange::Updated { quantity: 5 }, 1, 2)])).await.expect("apply");
    let claimed = claim_all(&*store).await;
    let resolved = store.record_publish(&published(&claimed[0], PublishOutcome::Published)).await.expect("record");
    assert_eq!(resolved.iter().map(|r| (r.item_id, r.version)).collect::<Vec<_>>(), [(a_id, 2)]);
    assert!(store.dead_letter_counts().await.expect("counts").is_empty());
}

pub(super) async fn a_dead_letter_counts_every_failed_attempt_from_the_first<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let a = offer("canary", "acme", "A-1");
    let a_id = a.item_key().item_id();
    store.apply_batch(&batch(vec![incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1)])).await.expect("apply");
    // Throttled first (no failure), then a 500 retried, then the last attempt's 500.
    let claimed = claim_all(&*store).await;
    let throttled = PublishOutcome::ThrottledUntil(Utc::now() - Duration::seconds(1));
    store.record_publish(&published(&claimed[0], throttled)).await.expect("record");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let claimed = claim_all(&*store).await;
    let retry = PublishOutcome::RetryAt(Utc::now() - Duration::seconds(1));
    store.record_publish(&PublishRecord { status: Some(500), ..published(&claimed[0], retry) }).await.expect("record");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let claimed = claim_all(&*store).await;
    assert_eq!(claimed[0].attempts, 1, "one failure so far");
    store.record_publish(&dead_lettered(&claimed[0], "retries_exhausted")).await.expect("record");

    let trace = store.item_trace(a_id).await.expect("trace").expect("item exists");
    let mut attempted: Vec<_> = trace.publish_attempts.iter().map(|a| (a.attempted_at, a.result.clone())).collect();
    attempted.sort();
    let results: Vec<&str> = attempted.iter().map(|(_, result)| result.as_str()).collect();
    assert_eq!(results, ["throttled", "retry", "dead_lettered"]);
    let letter = &store.item_dead_letters(a_id).await.expect("letters")[0];
    assert_eq!(letter.attempts, 2, "both failures counted, the throttling not: {letter:?}");
    assert_eq!(
        (letter.first_failed_at, letter.last_failed_at),
        (attempted[1].0, attempted[2].0),
        "the letter spans the failures, from the first"
    );

    // Healed and failing twice more (a retry, then its retries run out): four failures in all,
    // still from the first.
    let first_failed_at = letter.first_failed_at;
    store.heal_dead_letters(&heal(5, std::time::Duration::ZERO)).await.expect("heal");
    let claimed = claim_all(&*store).await;
    let retry = PublishOutcome::RetryAt(Utc::now() - Duration::seconds(1));
    store.record_publish(&published(&claimed[0], retry)).await.expect("record");
    let claimed = claim_all(&*store).await;
    store.record_publish(&dead_lettered(&claimed[0], "retries_exhausted")).await.expect("record");
    let letter = &store.item_dead_letters(a_id).await.expect("letters")[0];
    assert_eq!((letter.attempts, letter.first_failed_at), (4, first_failed_at), "{letter:?}");
}
