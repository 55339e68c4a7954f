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

/// Event 1 of canary/acme/ABC-1 (quantity 9) held with its supplier switched off, then the
/// supplier switched on: the offer's key.
async fn held_then_switched_on(store: &dyn crate::CatalogStore) -> catalog_core::OfferKey {
    let key = offer("canary", "acme", "ABC-1");
    store.set_supplier_sync(&key.tenant, &key.supplier, false).await.expect("flag");
    let journaled = incoming(1, &key, StockChange::Updated { quantity: 9 }, 0, 1);
    let held = store.apply_batch(&batch(vec![journaled])).await.expect("apply");
    assert_eq!(held.decisions[0].outcome.to_string(), "held(supplier_sync_off)");
    store.set_supplier_sync(&key.tenant, &key.supplier, true).await.expect("flag");
    key
}

pub(super) async fn a_held_event_redelivered_with_another_payload_is_decided_as_journaled<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = held_then_switched_on(&*store).await;
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

/// A held event's copy naming another offer cannot decide it; a copy naming its offer after
/// it in the same batch does, and its journaled row says so: applied, as in a batch of its
/// own. The row used to keep `held` while the stock was applied (support, retention and the
/// next replay took it for held, and a replay decided it again).
pub(super) async fn a_held_event_decided_after_a_copy_naming_another_offer_is_journaled_as_decided<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = held_then_switched_on(&*store).await;
    let mut elsewhere = incoming(1, &offer("canary", "acme", "XYZ-9"), StockChange::Updated { quantity: 9 }, 0, 2);
    elsewhere.source.offset = 2;
    let mut again = incoming(1, &key, StockChange::Updated { quantity: 9 }, 0, 2);
    again.source.offset = 3;
    let decided = store.apply_batch(&batch(vec![elsewhere, again])).await.expect("apply");
    let outcomes: Vec<&str> = decided.decisions.iter().map(|decision| decision.outcome.as_str()).collect();
    assert_eq!(outcomes, ["duplicate", "applied"]);
    let item = store.item(key.item_key().item_id()).await.expect("item").expect("exists");
    assert_eq!(item.quantity(), 9);
    let trace = store.item_trace(item.id()).await.expect("trace").expect("exists");
    assert_eq!(trace.events.len(), 1, "the held row is decided in place");
    assert_eq!(trace.events[0].outcome.as_str(), "applied", "{:?}", trace.events[0]);
}

/// A switch on decided while the tenant was at canary, written after a rollback committed,
/// switches nothing: the rollback is never undone (the admin API answers 409). While the
/// rollout is still the one judged, it switches the tenant or the supplier on. A switch judged
/// on a tenant the gate had never moved is written only while that is still so: not on over a
/// canary and a rollback committed meanwhile (the gate manages it now), nor off, for a
/// rollback of the never gated, over a canary.
pub(super) async fn a_switch_on_decided_before_a_rollback_switches_nothing<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let tenant = TenantId::parse("canary").expect("tenant");
    let (acme, globex) = (SupplierId::parse("acme").expect("supplier"), SupplierId::parse("globex").expect("supplier"));
    let canary = Rollout::Canary { supplier: acme.clone() };
    let step = rollout_change(&*store, &tenant, &Rollout::Closed, &canary, "canary").await;
    assert!(store.change_rollout(&step).await.expect("canary").is_some());
    store.set_supplier_sync(&tenant, &acme, false).await.expect("off by hand");
    let judged = store.rollout(&tenant).await.expect("rollout");
    assert!(store.switch_within(&tenant, Some(&acme), &judged, true, "otto").await.expect("switch"));
    let flags = store.tenant_flags(&tenant).await.expect("flags").expect("known");
    assert!(flags.suppliers[&acme], "on again within its stage");

    // Rolled back after the switch was judged, before it was written.
    let judged = store.rollout(&tenant).await.expect("rollout");
    let rollback = rollout_change(&*store, &tenant, &canary, &Rollout::Closed, "rollback").await;
    assert!(store.change_rollout(&rollback).await.expect("rollback").is_some());
    for supplier in [None, Some(&acme), Some(&globex)] {
        assert!(!store.switch_within(&tenant, supplier, &judged, true, "otto").await.expect("switch"), "{supplier:?}");
    }
    let flags = store.tenant_flags(&tenant).await.expect("flags").expect("known");
    assert!(!flags.sync_enabled, "the rollback stands");
    assert!(!flags.suppliers.get(&globex).copied().unwrap_or(false));

    // Never gated when judged; a canary and a rollback committed before the switch on.
    let fresh = TenantId::parse("fresh").expect("tenant");
    let never_gated = store.rollout(&fresh).await.expect("rollout");
    assert_eq!(never_gated, RolloutState { rollout: Rollout::Closed, changed_at: None });
    let step = rollout_change(&*store, &fresh, &Rollout::Closed, &canary, "canary").await;
    assert!(store.change_rollout(&step).await.expect("canary").is_some());
    let rollback = rollout_change(&*store, &fresh, &canary, &Rollout::Closed, "rollback").await;
    assert!(store.change_rollout(&rollback).await.expect("rollback").is_some());
    assert!(!store.switch_within(&fresh, None, &never_gated, true, "otto").await.expect("switch"));
    assert!(!store.tenant_flags(&fresh).await.expect("flags").expect("known").sync_enabled, "behind the gate");

    // Never gated when a rollback (a switch off) was judged; a canary committed before it.
    let quiet = TenantId::parse("quiet").expect("tenant");
    let never_gated = store.rollout(&quiet).await.expect("rollout");
    let step = rollout_change(&*store, &quiet, &Rollout::Closed, &canary, "canary").await;
    assert!(store.change_rollout(&step).await.expect("canary").is_some());
    assert!(!store.switch_within(&quiet, None, &never_gated, false, "ops").await.expect("switch"));
    assert!(store.tenant_flags(&quiet).await.expect("flags").expect("known").sync_enabled, "the canary stands");
    assert_eq!(store.rollout(&quiet).await.expect("rollout").rollout, canary);
    let now_gated = store.rollout(&quiet).await.expect("rollout");
    assert!(store.switch_within(&quiet, None, &now_gated, false, "ops").await.expect("switch"), "judged anew");
    assert!(!store.tenant_flags(&quiet).await.expect("flags").expect("known").sync_enabled);
}

/// A step decided while the tenant's sync switch was on, written after an operator threw the
/// kill switch, changes nothing: a canary, a widen or an open turns the tenant on, and would
/// have thrown the switch back unseen; a rollback is written all the same. A step is written
/// over the flags it returns, read under its lock: a supplier switched off between the
/// decision and the write is off in them, so the caller applies its held events once the step
/// lets it through.
pub(super) async fn a_step_decided_before_the_kill_switch_changes_nothing<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let (tenant, acme, canary, widened) = canary_then_widened();
    let step = rollout_change(&*store, &tenant, &Rollout::Closed, &canary, "canary").await;
    let before = store.change_rollout(&step).await.expect("canary").expect("written");
    assert!(before.sync_enabled && before.suppliers.is_empty(), "a tenant first made by the step: {before:?}");

    let widen = rollout_change(&*store, &tenant, &canary, &widened, "widen").await;
    store.set_tenant_sync(&tenant, false).await.expect("the kill switch");
    assert!(store.change_rollout(&widen).await.expect("widen").is_none(), "decided with the tenant on");
    assert!(!store.tenant_flags(&tenant).await.expect("flags").expect("known").sync_enabled, "the switch stands");
    assert_eq!(store.rollout(&tenant).await.expect("rollout").rollout, canary);

    // A rollback decided with the tenant on, the kill switch thrown before its write: written
    // all the same (it switches the tenant off anyway; the emergency path answers no 409).
    store.set_tenant_sync(&tenant, true).await.expect("on again");
    let rollback = rollout_change(&*store, &tenant, &canary, &Rollout::Closed, "rollback").await;
    store.set_tenant_sync(&tenant, false).await.expect("the kill switch");
    assert!(store.change_rollout(&rollback).await.expect("rollback").is_some(), "a rollback is not refused");
    assert_eq!(store.rollout(&tenant).await.expect("rollout").rollout, Rollout::Closed);
    let canary_again = rollout_change(&*store, &tenant, &Rollout::Closed, &canary, "canary").await;
    assert!(store.change_rollout(&canary_again).await.expect("canary").is_some());

    // Decided again, on, with a supplier switched off before the write: written, over it.
    store.set_tenant_sync(&tenant, true).await.expect("on again");
    let widen = rollout_change(&*store, &tenant, &canary, &widened, "widen").await;
    store.set_supplier_sync(&tenant, &acme, false).await.expect("off by hand");
    let before = store.change_rollout(&widen).await.expect("widen").expect("written");
    assert_eq!((before.sync_enabled, before.suppliers.get(&acme)), (true, Some(&false)), "{before:?}");
    assert_eq!(store.rollout(&tenant).await.expect("rollout").rollout, widened);

    // A tenant with no flags yet, decided on as the default (on); switched off first.
    let fresh = TenantId::parse("fresh").expect("tenant");
    let step = rollout_change(&*store, &fresh, &Rollout::Closed, &canary, "canary").await;
    assert_eq!(step.from_sync, None);
    store.set_tenant_sync(&fresh, false).await.expect("the kill switch");
    assert!(store.change_rollout(&step).await.expect("canary").is_none());
    assert!(!store.tenant_flags(&fresh).await.expect("flags").expect("known").sync_enabled);
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
        from_sync: None,
        to: canary.clone(),
        step: "canary".to_owned(),
        actor: "ops".to_owned(),
        at: chrono::Utc::now(),
    };
    assert!(store.change_rollout(&change).await.expect("canary").is_some());
    let since = |state: RolloutState| state.changed_at.expect("changed");
    let judged = store.rollout(&tenant).await.expect("rollout");
    let started = since(judged.clone());

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(store.switch_within(&tenant, None, &judged, true, "otto").await.expect("switch"));
    assert!(store.switch_within(&tenant, Some(&acme), &judged, true, "otto").await.expect("switch"));
    assert_eq!(since(store.rollout(&tenant).await.expect("rollout")), started, "already on: the day goes on");

    for supplier in [None, Some(&acme)] {
        let before = since(store.rollout(&tenant).await.expect("rollout"));
        match supplier {
            None => store.set_tenant_sync(&tenant, false).await.expect("the kill switch"),
            Some(supplier) => store.set_supplier_sync(&tenant, supplier, false).await.expect("off by hand"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let judged = store.rollout(&tenant).await.expect("rollout");
        assert!(store.switch_within(&tenant, supplier, &judged, true, "otto").await.expect("switch"));
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
    let (tenant, acme, canary, widened) = canary_then_widened();
    let opened = rollout_change(&*store, &tenant, &Rollout::Closed, &canary, "canary").await;
    assert!(store.change_rollout(&opened).await.expect("canary").is_some());

    let widen = rollout_change(&*store, &tenant, &canary, &widened, "widen").await;
    store.set_supplier_sync(&tenant, &acme, false).await.expect("off by hand");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let judged = store.rollout(&tenant).await.expect("rollout");
    assert!(store.switch_within(&tenant, Some(&acme), &judged, true, "otto").await.expect("switch"));
    assert!(
        store.change_rollout(&widen).await.expect("widen").is_none(),
        "decided on the stage's time before its restart"
    );
    assert_eq!(store.rollout(&tenant).await.expect("rollout").rollout, canary);

    let widen = rollout_change(&*store, &tenant, &canary, &widened, "widen").await;
    assert!(store.change_rollout(&widen).await.expect("widen").is_some(), "decided on the restarted stage");
    assert_eq!(store.rollout(&tenant).await.expect("rollout").rollout, widened);
}

/// Tenant `canary`, supplier `acme`, its canary, and the widening to `acme` and `globex`.
fn canary_then_widened() -> (TenantId, SupplierId, Rollout, Rollout) {
    let acme = SupplierId::parse("acme").expect("supplier");
    let canary = Rollout::Canary { supplier: acme.clone() };
    let widened =
        Rollout::Widening { suppliers: ["acme", "globex"].map(|s| SupplierId::parse(s).expect("supplier")).into() };
    (TenantId::parse("canary").expect("tenant"), acme, canary, widened)
}
