//! Contract cases of `FlagStore`: held events, the default flag of a first sighting, and a
//! switch on guarded by the rollout it was allowed by.

use catalog_core::{Rollout, StockChange, SupplierId, TenantId};

use super::fixtures::*;
use crate::{Provenance, RolloutChange, RolloutState, StoreConfig};

pub(super) async fn held_events_are_decided_afresh_once_sync_is_on<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    store.set_supplier_sync(&key.tenant, &key.supplier, false).await.expect("flag");
    let event = incoming(1, &key, StockChange::Updated { quantity: 9 }, 0, 1);
    let held = store.apply_batch(&batch(vec![event.clone()])).await.expect("apply");
    assert_eq!(held.decisions[0].outcome.to_string(), "held(supplier_sync_off)");
    assert!(held.changed_items.is_empty());
    let flags = store.tenant_flags(&key.tenant).await.expect("flags").expect("tenant exists");
    assert!(flags.sync_enabled);
    assert_eq!(flags.suppliers.get(&key.supplier), Some(&false));

    store.set_supplier_sync(&key.tenant, &key.supplier, true).await.expect("flag");
    let mut redelivered = event;
    redelivered.provenance = Provenance::Replayed;
    let applied = store.apply_batch(&batch(vec![redelivered])).await.expect("apply");
    assert_eq!(applied.decisions[0].outcome.as_str(), "applied");
    assert_eq!(applied.changed_items.len(), 1);
    let trace = store.item_trace(key.item_key().item_id()).await.expect("trace").expect("exists");
    assert_eq!(trace.events.len(), 1, "the held row is decided in place");
    assert_eq!(trace.events[0].outcome.as_str(), "applied");
    assert_eq!(trace.events[0].redelivery_count, 0, "a replay is not a redelivery");
}

/// A held event delivered again while its supplier is still off (a redelivery, or a tenant's
/// replay that holds other suppliers' events again) stays pending: once the supplier is on,
/// its replay applies it. PostgreSQL used to release its claim when holding it again, and the
/// replay then found it claimed: `duplicate`, never applied.
pub(super) async fn a_held_event_held_again_is_applied_once_its_supplier_is_on<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    store.set_supplier_sync(&key.tenant, &key.supplier, false).await.expect("flag");
    let event = incoming(1, &key, StockChange::Updated { quantity: 9 }, 0, 1);
    let mut replayed = event.clone();
    replayed.provenance = Provenance::Replayed;
    for (delivery, what) in [(&event, "first"), (&event, "redelivered"), (&replayed, "replayed while off")] {
        let result = store.apply_batch(&batch(vec![delivery.clone()])).await.expect("apply");
        assert_eq!(result.decisions[0].outcome.to_string(), "held(supplier_sync_off)", "{what}");
    }

    store.set_supplier_sync(&key.tenant, &key.supplier, true).await.expect("flag");
    let applied = store.apply_batch(&batch(vec![replayed])).await.expect("apply");
    assert_eq!(applied.decisions[0].outcome.as_str(), "applied");
    let item = store.item(key.item_key().item_id()).await.expect("item").expect("exists");
    assert_eq!(item.quantity(), 9);
}

pub(super) async fn first_sight_uses_the_configured_default_flag<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig { default_sync_enabled: false, ..StoreConfig::default() }).await;
    let key = offer("newbie", "acme", "ABC-1");
    let result = store
        .apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 4 }, 0, 1)]))
        .await
        .expect("apply");
    assert_eq!(result.decisions[0].outcome.to_string(), "held(tenant_sync_off)");
    let flags = store.tenant_flags(&key.tenant).await.expect("flags").expect("created on first sight");
    assert!(!flags.sync_enabled);
    assert_eq!(flags.suppliers.get(&key.supplier), Some(&false));
    assert!(store.tenant_flags(&TenantId::parse("never-seen").expect("valid")).await.expect("flags").is_none());
}

pub(super) async fn a_held_event_redelivered_with_another_payload_is_decided_as_journaled<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    store.set_supplier_sync(&key.tenant, &key.supplier, false).await.expect("flag");
    let journaled = incoming(1, &key, StockChange::Updated { quantity: 9 }, 0, 1);
    let held = store.apply_batch(&batch(vec![journaled])).await.expect("apply");
    assert_eq!(held.decisions[0].outcome.to_string(), "held(supplier_sync_off)");

    store.set_supplier_sync(&key.tenant, &key.supplier, true).await.expect("flag");
    let mut other_payload = incoming(1, &key, StockChange::Updated { quantity: 55 }, 30, 2);
    other_payload.source.offset = 2;
    let decided = store.apply_batch(&batch(vec![other_payload])).await.expect("apply");
    assert_eq!(decided.decisions[0].outcome.as_str(), "applied");
    assert_eq!(decided.decisions[0].reason(), Some("payload_differs"));
    let item = store.item(key.item_key().item_id()).await.expect("item").expect("exists");
    assert_eq!(item.quantity(), 9, "the first accepted payload counts, not the redelivery's");
    let trace = store.item_trace(item.id()).await.expect("trace").expect("exists");
    assert_eq!(trace.events.len(), 1, "the held row is decided in place");
    assert_eq!(trace.events[0].change, Some(StockChange::Updated { quantity: 9 }));
    assert!(trace.events[0].payload_differs);
    assert_eq!(trace.offers[0].quantity, 9);
}

/// A switch on decided while the tenant was at canary, written after a rollback committed,
/// switches nothing: the rollback is never undone (the admin API answers 409). While the
/// rollout is still the one judged, it switches the tenant or the supplier on.
pub(super) async fn a_switch_on_decided_before_a_rollback_switches_nothing<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let tenant = TenantId::parse("canary").expect("tenant");
    let (acme, globex) = (SupplierId::parse("acme").expect("supplier"), SupplierId::parse("globex").expect("supplier"));
    let canary = Rollout::Canary { supplier: acme.clone() };
    assert!(store
        .change_rollout(&rollout_change(&*store, &tenant, &Rollout::Closed, &canary, "canary").await)
        .await
        .expect("canary"));
    store.set_supplier_sync(&tenant, &acme, false).await.expect("off by hand");
    assert!(store.switch_on_within(&tenant, Some(&acme), &canary, "otto").await.expect("switch"));
    let flags = store.tenant_flags(&tenant).await.expect("flags").expect("known");
    assert!(flags.suppliers[&acme], "on again within its stage");

    // Rolled back after the switch was judged, before it was written.
    assert!(store
        .change_rollout(&rollout_change(&*store, &tenant, &canary, &Rollout::Closed, "rollback").await)
        .await
        .expect("rollback"));
    for supplier in [None, Some(&acme), Some(&globex)] {
        assert!(!store.switch_on_within(&tenant, supplier, &canary, "otto").await.expect("switch"), "{supplier:?}");
    }
    let flags = store.tenant_flags(&tenant).await.expect("flags").expect("known");
    assert!(!flags.sync_enabled, "the rollback stands");
    assert!(!flags.suppliers.get(&globex).copied().unwrap_or(false));
}

/// Switching on what was switched off inside a canary or widening stage starts the stage's
/// day again: while it was off nothing applied, and its signals were green by measuring
/// nothing (decision 0017). Switching on what is already on, or a switch whose rollout moved,
/// leaves the stage's time alone.
pub(super) async fn a_switch_on_after_a_switch_off_starts_the_stage_s_day_again<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let tenant = TenantId::parse("canary").expect("tenant");
    let acme = SupplierId::parse("acme").expect("supplier");
    let canary = Rollout::Canary { supplier: acme.clone() };
    let change = RolloutChange {
        tenant: tenant.clone(),
        from: Rollout::Closed,
        from_since: None,
        to: canary.clone(),
        step: "canary".to_owned(),
        actor: "ops".to_owned(),
        at: chrono::Utc::now(),
    };
    assert!(store.change_rollout(&change).await.expect("canary"));
    let since = |state: RolloutState| state.changed_at.expect("changed");
    let started = since(store.rollout(&tenant).await.expect("rollout"));

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(store.switch_on_within(&tenant, None, &canary, "otto").await.expect("switch"));
    assert!(store.switch_on_within(&tenant, Some(&acme), &canary, "otto").await.expect("switch"));
    assert_eq!(since(store.rollout(&tenant).await.expect("rollout")), started, "already on: the day goes on");

    for supplier in [None, Some(&acme)] {
        let before = since(store.rollout(&tenant).await.expect("rollout"));
        match supplier {
            None => store.set_tenant_sync(&tenant, false).await.expect("the kill switch"),
            Some(supplier) => store.set_supplier_sync(&tenant, supplier, false).await.expect("off by hand"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(store.switch_on_within(&tenant, supplier, &canary, "otto").await.expect("switch"));
        let restarted = since(store.rollout(&tenant).await.expect("rollout"));
        assert!(restarted > before, "{supplier:?}: the stage's day starts again at the switch on");
        let state = store.rollout(&tenant).await.expect("rollout");
        assert_eq!(state.rollout, canary, "the stage itself stays");
        // The restart has its history row, at the stage's new start, by who switched on.
        let newest = store.rollout_history(&tenant, 1).await.expect("history").remove(0);
        assert_eq!(
            (newest.step.as_str(), newest.actor.as_str(), newest.from_stage.as_str(), newest.to_stage.as_str()),
            ("restart", "otto", "canary", "canary"),
            "{supplier:?}"
        );
        assert_eq!(Some(newest.at), state.changed_at, "{supplier:?}");
    }
    let history = store.rollout_history(&tenant, 10).await.expect("history");
    assert_eq!(history.len(), 3, "the canary and two restarts, none for a switch on of what was on");
}

/// A step is written only over the stage it was decided on, as old as it was then: a restart
/// of the stage (something switched on again within it) that lands between a widen's read and
/// its write makes the widen change nothing, as a rollout that moved on does. Decided again on
/// the restarted stage, it is written (decision 0017).
pub(super) async fn a_step_decided_before_its_stage_restarted_changes_nothing<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let tenant = TenantId::parse("canary").expect("tenant");
    let acme = SupplierId::parse("acme").expect("supplier");
    let canary = Rollout::Canary { supplier: acme.clone() };
    let widened =
        Rollout::Widening { suppliers: ["acme", "globex"].map(|s| SupplierId::parse(s).expect("supplier")).into() };
    let opened = rollout_change(&*store, &tenant, &Rollout::Closed, &canary, "canary").await;
    assert!(store.change_rollout(&opened).await.expect("canary"));

    let widen = rollout_change(&*store, &tenant, &canary, &widened, "widen").await;
    store.set_supplier_sync(&tenant, &acme, false).await.expect("off by hand");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(store.switch_on_within(&tenant, Some(&acme), &canary, "otto").await.expect("switch"));
    assert!(!store.change_rollout(&widen).await.expect("widen"), "decided on the stage's time before its restart");
    assert_eq!(store.rollout(&tenant).await.expect("rollout").rollout, canary);

    let widen = rollout_change(&*store, &tenant, &canary, &widened, "widen").await;
    assert!(store.change_rollout(&widen).await.expect("widen"), "decided on the restarted stage");
    assert_eq!(store.rollout(&tenant).await.expect("rollout").rollout, widened);
}
