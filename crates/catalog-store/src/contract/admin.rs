//! Contract cases of `AdminStore`: tokens kept as hashes and revoked, the audit log, journal
//! lookups by event id and trace id, rejected messages listed, and operator actions on dead
//! letters.

use catalog_core::{encode, ItemKey, Sku, StockChange, SupplierEvent, TenantId};
use chrono::Duration;

use super::fixtures::*;
use crate::{
    AuditRecord, DeadLetterFilter, DeadLetterRetry, EventsPage, NewToken, PublishOutcome, PublishRecord,
    RejectionFilter, Role, StoreConfig, TokenHash,
};

pub(super) async fn tokens_are_found_by_hash_until_revoked<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let alice = NewToken { name: "alice".into(), role: Role::Operator, hash: TokenHash([1; 32]) };
    assert!(store.add_token(&alice).await.expect("add"));
    let taken = NewToken { name: "alice".into(), role: Role::Admin, hash: TokenHash([2; 32]) };
    assert!(!store.add_token(&taken).await.expect("add"), "a live token keeps its name");
    let found = store.token_by_hash(&TokenHash([1; 32])).await.expect("find").expect("live");
    assert_eq!((found.name.as_str(), found.role, found.hash), ("alice", Role::Operator, TokenHash([1; 32])));
    assert!(store.token_by_hash(&TokenHash([2; 32])).await.expect("find").is_none());

    assert!(store.revoke_token("alice").await.expect("revoke"));
    assert!(!store.revoke_token("alice").await.expect("revoke"), "revoked once");
    assert!(store.token_by_hash(&TokenHash([1; 32])).await.expect("find").is_none(), "a revoked token is gone");
    let listed = store.tokens().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at.is_some());

    assert!(store.add_token(&taken).await.expect("add"), "a revoked token's name is free again");
    let found = store.token_by_hash(&TokenHash([2; 32])).await.expect("find").expect("live");
    assert_eq!(found.role, Role::Admin);
    assert!(store.tokens().await.expect("list")[0].revoked_at.is_none());
}

pub(super) async fn the_audit_log_pages_newest_first<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    for n in 0..5 {
        let record = AuditRecord {
            actor: "alice".into(),
            action: "tenant_sync".into(),
            target: format!("tenant/t{n}"),
            before: Some(serde_json::json!({ "enabled": false })),
            after: (n % 2 == 0).then(|| serde_json::json!({ "enabled": true })),
        };
        store.record_audit(&record).await.expect("audit");
    }
    let first = store.audit_log(3, None).await.expect("page");
    let targets: Vec<&str> = first.iter().map(|entry| entry.target.as_str()).collect();
    assert_eq!(targets, ["tenant/t4", "tenant/t3", "tenant/t2"]);
    assert_eq!(first[0].after, Some(serde_json::json!({ "enabled": true })));
    assert_eq!(first[1].after, None);
    let next = store.audit_log(3, Some(first[2].audit_id)).await.expect("page");
    let targets: Vec<&str> = next.iter().map(|entry| entry.target.as_str()).collect();
    assert_eq!(targets, ["tenant/t1", "tenant/t0"]);
}

pub(super) async fn journal_rows_are_found_by_event_id_and_trace_id<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 4 }, 0, 1),
        incoming(2, &key, StockChange::Adjusted { delta: -1 }, 1, 1),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let found = store.journal_by_event_id(event_id(2), 10).await.expect("lookup");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].event_id, Some(event_id(2)));
    assert_eq!(found[0].outcome.as_str(), "applied");
    assert!(store.journal_by_event_id(event_id(3), 10).await.expect("lookup").is_empty());
    // An event only ever rejected (a valid id, an invalid quantity) is found by its id too;
    // one applied, then delivered again invalid, is found with its rejection after it.
    let invalid = |n: u64, offset: u64| {
        let valid = incoming(n, &key, StockChange::Updated { quantity: 4 }, 2, 2);
        let text = String::from_utf8(valid.raw).expect("utf-8").replace(r#""quantity":4"#, r#""quantity":-4"#);
        raw_incoming(offset, text.into_bytes(), 2)
    };
    store.apply_batch(&batch(vec![invalid(4, 4), invalid(2, 5)])).await.expect("apply");
    let outcomes = |found: Vec<crate::JournalEntry>| {
        found.iter().map(|entry| (entry.event_id, entry.outcome.as_str().to_owned())).collect::<Vec<_>>()
    };
    let found = store.journal_by_event_id(event_id(4), 10).await.expect("lookup");
    assert_eq!(outcomes(found), [(Some(event_id(4)), "rejected".to_owned())]);
    let found = store.journal_by_event_id(event_id(2), 10).await.expect("lookup");
    assert_eq!(
        outcomes(found),
        [(Some(event_id(2)), "applied".to_owned()), (Some(event_id(2)), "rejected".to_owned())]
    );

    // The fixtures give the event at offset n the trace id n + 1.
    let trace_id = format!("{:032x}", 2);
    let found = store.journal_by_trace_id(&trace_id, 10).await.expect("lookup");
    assert_eq!(found.iter().map(|entry| entry.event_id).collect::<Vec<_>>(), [Some(event_id(1))]);
    assert!(store.journal_by_trace_id(&format!("{:032x}", 99), 10).await.expect("lookup").is_empty());
    let tenants = store.tenant_ids().await.expect("tenants");
    assert_eq!(tenants, [TenantId::parse("canary").expect("valid")]);
    let counts = store.outcome_counts_since(&tenants[0], base()).await.expect("counts");
    assert_eq!(counts.events_by_outcome.get("applied"), Some(&2));
    let later = store.outcome_counts_since(&tenants[0], base() + chrono::Duration::seconds(5)).await.expect("counts");
    assert!(later.events_by_outcome.is_empty());
}

pub(super) async fn an_operator_retries_and_resolves_dead_letters<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let (a, b) = (offer("canary", "acme", "A-1"), offer("wide", "acme", "B-1"));
    let events = vec![
        incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1),
        incoming(2, &b, StockChange::Updated { quantity: 4 }, 0, 1),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    dead_letter_every_due(&*store).await;

    let all = store.dead_letters(&DeadLetterFilter { limit: 10, ..DeadLetterFilter::default() }).await.expect("list");
    assert_eq!(all.len(), 2);
    let count = |filter: DeadLetterFilter| {
        let store = &store;
        async move { store.count_dead_letters(&filter).await.expect("count") }
    };
    // Counted whatever the page size: a count is not a page.
    assert_eq!(count(DeadLetterFilter { limit: 1, ..DeadLetterFilter::default() }).await, 2);
    let canary = DeadLetterFilter { tenant: Some(a.tenant.clone()), limit: 10, ..DeadLetterFilter::default() };
    let letters = store.dead_letters(&canary).await.expect("list");
    assert_eq!(letters.len(), 1);
    assert_eq!(count(canary.clone()).await, 1);
    assert_eq!(letters[0].subject, a.item_key().item_id().to_string());
    let letter = letters[0].dead_letter_id;
    let other_channel =
        DeadLetterFilter { channel: Some("marketplace".into()), limit: 10, ..DeadLetterFilter::default() };
    assert!(store.dead_letters(&other_channel).await.expect("list").is_empty());
    assert_eq!(count(other_channel).await, 0);

    // Auto-heal gives up on it: two rounds, then quarantine.
    let heal = crate::DeadLetterHeal { limit: 10, max_heals: 2, min_interval: std::time::Duration::ZERO };
    for _ in 0..3 {
        store.heal_dead_letters(&heal).await.expect("heal");
        dead_letter_every_due(&*store).await;
    }
    let quarantined = store.dead_letter(letter).await.expect("read").expect("exists");
    assert!(quarantined.quarantined_at.is_some(), "{quarantined:?}");
    // An operator who fixed the cause retries it anyway: auto-heal's rounds are not the
    // operator's, and the letter is out of quarantine with its rounds to go again.
    assert_eq!(
        store.retry_dead_letter(letter, 2).await.expect("retry"),
        DeadLetterRetry::Requeued { version: 1, retries: 1 }
    );
    let retried = store.dead_letter(letter).await.expect("read").expect("exists");
    assert_eq!((retried.quarantined_at, retried.heal_rounds), (None, 0));
    let waiting = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(waiting.iter().map(|entry| entry.item.id()).collect::<Vec<_>>(), [a.item_key().item_id()]);
    store
        .record_publish(&PublishRecord { status: Some(503), ..published(&waiting[0], PublishOutcome::RetryAt(base())) })
        .await
        .expect("record");
    assert_eq!(
        store.retry_dead_letter(letter, 2).await.expect("retry"),
        DeadLetterRetry::Requeued { version: 1, retries: 2 }
    );
    assert_eq!(store.retry_dead_letter(letter, 2).await.expect("retry"), DeadLetterRetry::LoopGuard { retries: 2 });
    assert_eq!(store.retry_dead_letter(999_999, 2).await.expect("retry"), DeadLetterRetry::NotFound);

    assert!(store.resolve_dead_letter(letter, "fixed by hand").await.expect("resolve"));
    assert!(!store.resolve_dead_letter(letter, "again").await.expect("resolve"), "resolved once");
    let resolved = store.dead_letter(letter).await.expect("read").expect("exists");
    assert_eq!(resolved.resolution.as_deref(), Some("operator"));
    assert_eq!(resolved.note.as_deref(), Some("fixed by hand"));
    assert!(resolved.resolved_at.is_some());
    assert_eq!(store.retry_dead_letter(letter, 9).await.expect("retry"), DeadLetterRetry::AlreadyResolved);
    let open = DeadLetterFilter { open: Some(true), limit: 10, ..DeadLetterFilter::default() };
    assert_eq!(store.dead_letters(&open).await.expect("list").len(), 1);
    let closed = DeadLetterFilter { open: Some(false), limit: 10, ..DeadLetterFilter::default() };
    assert_eq!(store.dead_letters(&closed).await.expect("list")[0].dead_letter_id, letter);
    assert_eq!((count(open).await, count(closed).await), (1, 1));
    let published = store.published_versions(a.item_key().item_id()).await.expect("versions");
    assert!(published.is_empty(), "nothing was accepted");
}

/// Every page the store reads is the slice of the whole trace (`item_trace`, sorted in Rust)
/// at its offset: ordering keys with drifted clocks, equal times, huge sequences (stored
/// negative), duplicates, stale and rejected rows, on two suppliers; and the journal rows in
/// effect are each offer's snapshot and listed adjustments.
pub(super) async fn a_trace_page_is_a_slice_of_the_whole_trace<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = offer("canary", "acme", "ABC-1");
    let globex = offer("canary", "globex", "abc-1");
    let mut rng = Lcg(14);
    let mut events = Vec::new();
    for n in 1..=120_u64 {
        let key = if rng.next(3) == 0 { &globex } else { &acme };
        let change = if rng.next(3) == 0 {
            StockChange::Adjusted { delta: rng.next(5) as i64 + 1 }
        } else {
            StockChange::Updated { quantity: rng.next(40) as i64 }
        };
        // Few distinct times, so the sequence and the event id decide many orders.
        let updated_second = rng.next(6) as i64;
        let sequence = match rng.next(4) {
            0 => None,
            1 => Some(u64::MAX - rng.next(3)),
            _ => Some(rng.next(3)),
        };
        let event =
            SupplierEvent::new(event_id(n), key.clone(), change, base() + Duration::seconds(updated_second), sequence)
                .expect("valid event");
        let mut raw = encode(&event);
        if n % 17 == 0 {
            // A quantity out of range: rejected, naming the tenant and SKU.
            raw = encode(
                &SupplierEvent::new(event_id(n), key.clone(), StockChange::Updated { quantity: 1 }, base(), None)
                    .expect("valid"),
            )
            .replace("\"quantity\":1", "\"quantity\":-1");
        }
        events.push(raw_incoming(n, raw.into_bytes(), n as i64));
        if n % 11 == 0 {
            let mut repeat = events[rng.next(events.len() as u64) as usize].clone();
            repeat.source.offset = n as i64 + 1_000;
            events.push(repeat);
        }
    }
    for chunk in events.chunks(40) {
        store.apply_batch(&batch(chunk.to_vec())).await.expect("apply");
    }
    let item_key = acme.item_key();
    let whole = store.item_trace(item_key.item_id()).await.expect("trace").expect("exists");
    assert!(whole.events.iter().any(|entry| entry.outcome.as_str() == "rejected"), "the scenario rejects some");
    assert!(whole.events.iter().any(|entry| entry.outcome.as_str() == "stale"), "the scenario has stale events");
    let n_events = whole.events.len() as u64;
    for (offset, limit) in [(0, 10), (0, 1_000), (7, 13), (100, 50), (n_events - 1, 10), (n_events, 10)] {
        let page = store
            .item_trace_page(&item_key, EventsPage { offset, limit, through: None })
            .await
            .expect("page")
            .expect("the item exists");
        let expected: Vec<_> = whole.events.iter().skip(offset as usize).take(limit as usize).collect();
        let found: Vec<_> = page.events.iter().collect();
        assert_eq!(found, expected, "the page at offset {offset}, limit {limit}");
        assert_eq!(page.n_events, n_events);
        assert_eq!(page.item.as_ref(), Some(&whole.item));
        assert_eq!(page.offers, whole.offers);
        assert_eq!(page.pending_publishes, whole.pending_publishes);
        assert_eq!(page.publish_attempts, whole.publish_attempts);
    }
    let page = store
        .item_trace_page(&item_key, EventsPage { offset: 0, limit: 1, through: None })
        .await
        .expect("page")
        .expect("exists");
    let mut in_effect: Vec<_> = page.in_effect.iter().filter_map(|entry| entry.event_id).collect();
    in_effect.sort();
    assert_eq!(in_effect, crate::event_ids_in_effect(&whole.offers));
    assert!(!in_effect.is_empty());
    assert!(page.in_effect.iter().all(|entry| entry.outcome.as_str() == "applied"));
    let none = ItemKey { tenant: acme.tenant.clone(), sku: Sku::parse("NONE").expect("valid") };
    assert!(store
        .item_trace_page(&none, EventsPage { offset: 0, limit: 10, through: None })
        .await
        .expect("page")
        .is_none());

    // Someone pages while a late event (an hour before the others, so first in the order) is
    // journaled: pages asked with the first page's `events_through` count and show the rows
    // they did; without it, every row moves one page on.
    let first = EventsPage { offset: 0, limit: 10, through: None };
    let through = store.item_trace_page(&item_key, first).await.expect("page").expect("exists").events_through;
    assert!(through.is_some(), "the newest row counted");
    let late = incoming(500, &acme, StockChange::Updated { quantity: 3 }, -3_600, 500);
    store.apply_batch(&batch(vec![late])).await.expect("apply");
    let second = EventsPage { offset: 10, limit: 10, through };
    let page = store.item_trace_page(&item_key, second).await.expect("page").expect("exists");
    assert_eq!((page.n_events, page.events_through), (n_events, through));
    let expected: Vec<_> = whole.events.iter().skip(10).take(10).collect();
    assert_eq!(page.events.iter().collect::<Vec<_>>(), expected, "the rows the second page held");
    let unanchored =
        store.item_trace_page(&item_key, EventsPage { through: None, ..second }).await.expect("page").expect("exists");
    assert_eq!(unanchored.n_events, n_events + 1);
    assert_eq!(unanchored.events.first(), whole.events.get(9), "without it, the tenth row again");
}

/// A tenant and SKU that only held and rejected events name has a trace page with no item,
/// no offers, and those events with their outcomes and reasons.
pub(super) async fn a_trace_page_of_only_held_and_rejected_events_has_no_item<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "HELD-1");
    store.set_supplier_sync(&key.tenant, &key.supplier, false).await.expect("flag");
    let held = incoming(1, &key, StockChange::Updated { quantity: 9 }, 0, 1);
    let rejected = String::from_utf8(incoming(2, &key, StockChange::Updated { quantity: 3 }, 0, 2).raw)
        .expect("utf-8")
        .replace("\"quantity\":3", "\"quantity\":-3");
    let rejected = raw_incoming(2, rejected.into_bytes(), 2);
    store.apply_batch(&batch(vec![held, rejected])).await.expect("apply");
    let page = store
        .item_trace_page(&key.item_key(), EventsPage { offset: 0, limit: 10, through: None })
        .await
        .expect("page")
        .expect("journal rows name the item");
    assert_eq!(page.item, None);
    assert!(page.offers.is_empty());
    assert!(page.in_effect.is_empty());
    assert_eq!(page.n_events, 2);
    let events: Vec<_> = page.events.iter().map(|entry| (entry.outcome.as_str(), entry.reason.as_deref())).collect();
    // A rejection has no ordering key: it sorts before every decided event.
    assert_eq!(events, [("rejected", Some("invalid_quantity")), ("held", Some("supplier_sync_off"))]);
    assert!(page.events.iter().all(|entry| entry.sku.as_deref() == Some("HELD-1")), "both name the SKU");
}

/// Rejected messages are listed newest first, with their bytes and detail, by tenant (one
/// whose tenant could not be read names none), source and reception time, page by page; the
/// messages that were decided are not listed.
pub(super) async fn rejected_messages_are_listed_newest_first<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "A-1");
    let negative = |n: u64, key: &catalog_core::OfferKey, second: i64| {
        let text = String::from_utf8(incoming(n, key, StockChange::Updated { quantity: 3 }, 0, second).raw)
            .expect("utf-8")
            .replace("\"quantity\":3", "\"quantity\":-3");
        raw_incoming(n, text.into_bytes(), second)
    };
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 5 }, 0, 1),
        raw_incoming(2, b"this line is not JSON".to_vec(), 2),
        negative(3, &key, 3),
        negative(4, &offer("t2", "acme", "B-1"), 10),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let listed = |filter: RejectionFilter| {
        let store = &store;
        async move {
            let rows = store.rejections(&filter).await.expect("rejections");
            assert!(rows.iter().all(|row| row.outcome.as_str() == "rejected" && row.detail.is_some()), "{rows:?}");
            rows.iter().map(|row| (row.source.offset, row.journal_id)).collect::<Vec<_>>()
        }
    };
    let all = RejectionFilter { tenant: None, source: None, since: base(), before_journal_id: None, limit: 10 };
    let offsets = |rows: &[(i64, i64)]| rows.iter().map(|(offset, _)| *offset).collect::<Vec<_>>();
    let every = listed(all.clone()).await;
    assert_eq!(offsets(&every), [4, 3, 2], "newest first, the applied one left out");
    let rows = store.rejections(&all).await.expect("rejections");
    assert_eq!(rows[2].raw_payload.as_deref(), Some(&b"this line is not JSON"[..]));
    assert_eq!((rows[2].tenant.as_deref(), rows[2].raw_payload_length), (None, Some(21)));
    let canary = RejectionFilter { tenant: Some(key.tenant.clone()), ..all.clone() };
    assert_eq!(offsets(&listed(canary).await), [3]);
    let later = RejectionFilter { since: base() + Duration::seconds(5), ..all.clone() };
    assert_eq!(offsets(&listed(later).await), [4]);
    let first_page = listed(RejectionFilter { limit: 2, ..all.clone() }).await;
    assert_eq!(offsets(&first_page), [4, 3]);
    let next = RejectionFilter { before_journal_id: Some(first_page[1].1), ..all.clone() };
    assert_eq!(offsets(&listed(next).await), [2]);
    let elsewhere = RejectionFilter { source: Some("file:/elsewhere.ndjson".to_owned()), ..all.clone() };
    assert!(listed(elsewhere).await.is_empty());
    assert_eq!(offsets(&listed(RejectionFilter { source: Some(SOURCE.to_owned()), ..all }).await), [4, 3, 2]);
}

/// A trace page shows the newest `MAX_TRACE_ATTEMPTS` publish attempts, oldest first, and
/// counts them all: a hot item makes thousands within the retention, and support wants the
/// latest, not a page of megabytes with it at the bottom.
pub(super) async fn a_trace_page_shows_the_newest_publish_attempts_and_counts_them_all<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = offer("canary", "acme", "ABC-1");
    store
        .apply_batch(&batch(vec![incoming(1, &acme, StockChange::Updated { quantity: 4 }, 0, 1)]))
        .await
        .expect("apply");
    let entry = store.claim_outbox("storefront", &immediate(10)).await.expect("claim").remove(0);
    let n_attempts = crate::MAX_TRACE_ATTEMPTS as u32 + 5;
    let records: Vec<PublishRecord> = (1..=n_attempts)
        .map(|attempt| PublishRecord {
            attempt,
            status: Some(503),
            ..published(&entry, PublishOutcome::ThrottledUntil(chrono::Utc::now()))
        })
        .collect();
    store.record_publishes(&records).await.expect("record");

    let page = store
        .item_trace_page(&acme.item_key(), EventsPage { offset: 0, limit: 10, through: None })
        .await
        .expect("page");
    let page = page.expect("the item");
    assert_eq!(page.n_publish_attempts, u64::from(n_attempts));
    let shown: Vec<u32> = page.publish_attempts.iter().map(|attempt| attempt.attempt).collect();
    assert_eq!(shown, (6..=n_attempts).collect::<Vec<_>>(), "the newest, oldest first");
    let whole = store.item_trace(acme.item_key().item_id()).await.expect("trace").expect("the item");
    assert_eq!(whole.publish_attempts.len(), n_attempts as usize, "the whole trace keeps every attempt");
}
