//! Contract cases of `AdminStore`: tokens kept as hashes and revoked, the audit log, journal
//! lookups by event id and trace id, and operator actions on dead letters.

use catalog_core::{StockChange, TenantId};

use super::fixtures::*;
use crate::{
    AuditRecord, DeadLetterFilter, DeadLetterRetry, NewToken, PublishOutcome, PublishRecord, Role, StoreConfig,
    TokenHash,
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
    let found = store.journal_by_event_id(event_id(2)).await.expect("lookup");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].event_id, Some(event_id(2)));
    assert_eq!(found[0].outcome.as_str(), "applied");
    assert!(store.journal_by_event_id(event_id(3)).await.expect("lookup").is_empty());

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
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    let records: Vec<PublishRecord> = claimed
        .iter()
        .map(|entry| PublishRecord {
            dead_letter_reason: Some("rejected_422".into()),
            status: Some(422),
            ..published(entry, PublishOutcome::DeadLettered)
        })
        .collect();
    store.record_publishes(&records).await.expect("record");

    let all = store.dead_letters(&DeadLetterFilter { limit: 10, ..DeadLetterFilter::default() }).await.expect("list");
    assert_eq!(all.len(), 2);
    let canary = DeadLetterFilter { tenant: Some(a.tenant.clone()), limit: 10, ..DeadLetterFilter::default() };
    let letters = store.dead_letters(&canary).await.expect("list");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].subject, a.item_key().item_id().to_string());
    let letter = letters[0].dead_letter_id;
    let other_channel =
        DeadLetterFilter { channel: Some("marketplace".into()), limit: 10, ..DeadLetterFilter::default() };
    assert!(store.dead_letters(&other_channel).await.expect("list").is_empty());

    assert_eq!(
        store.retry_dead_letter(letter, 2).await.expect("retry"),
        DeadLetterRetry::Requeued { version: 1, heal_rounds: 1 }
    );
    let waiting = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(waiting.iter().map(|entry| entry.item_id).collect::<Vec<_>>(), [a.item_key().item_id()]);
    store
        .record_publish(&PublishRecord { status: Some(503), ..published(&waiting[0], PublishOutcome::RetryAt(base())) })
        .await
        .expect("record");
    assert_eq!(
        store.retry_dead_letter(letter, 2).await.expect("retry"),
        DeadLetterRetry::Requeued { version: 1, heal_rounds: 2 }
    );
    assert_eq!(store.retry_dead_letter(letter, 2).await.expect("retry"), DeadLetterRetry::LoopGuard { heal_rounds: 2 });
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
    let published = store.published_versions(a.item_key().item_id()).await.expect("versions");
    assert!(published.is_empty(), "nothing was accepted");
}
