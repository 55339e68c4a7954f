//! The launch gate through the API on both stores: a step is refused (409 `gate_refused`,
//! every reason) with too few signed-off traces and with a red signal; a rollback holds the
//! tenant's events and loses none, and reopening applies them. The signals routes, the
//! `gate check` command's exit codes, and the dashboard's charts.

use catalog_core::StockChange;
use catalog_store::contract::{base, batch, incoming, offer};
use catalog_store::{Role, RolloutChange, SampledValue, SignalSample};
use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::Server;

/// Seconds after the fixtures' base time that are just past now: events received after the
/// last step (the gate samples items applied since).
fn now_second() -> i64 {
    (Utc::now() - base()).num_seconds() + 1
}

/// Samples of the tenant from `hours` ago to a minute ago, green, as three workers take them
/// (each every minute, 20 s apart): more than a day of them than the signals history reads.
async fn green_for_hours(server: &Server, hours: i64) {
    let value = |value: f64| SampledValue { value, green: true };
    let now = Utc::now();
    let samples: Vec<SignalSample> = (1..=hours * 60 * 3)
        .rev()
        .map(|thirds| SignalSample {
            tenant_id: Some(catalog_core::TenantId::parse("canary").expect("tenant")),
            at: now - Duration::seconds(thirds * 20),
            green: true,
            stale_items: value(0.0),
            queue_lag: value(1.0),
            publish_errors: value(0.0),
            trace_coverage: value(1.0),
        })
        .collect();
    assert!(samples.len() > admin_api::gate::MAX_SAMPLES || hours < 24, "more than the history reads");
    server.store.record_signal_samples(&samples).await.expect("samples");
}

/// Moves the tenant's last rollout change `hours` back, as if its stage had run that long
/// (a change from the rollout to itself, at that time).
async fn backdate_stage(server: &Server, hours: i64) {
    let tenant = catalog_core::TenantId::parse("canary").expect("tenant");
    let state = server.store.rollout(&tenant).await.expect("rollout");
    let flags = server.store.tenant_flags(&tenant).await.expect("flags");
    let change = RolloutChange {
        from_sync: flags.map(|flags| flags.sync_enabled),
        tenant,
        from: state.rollout.clone(),
        from_since: state.changed_at,
        to: state.rollout,
        step: "canary".to_owned(),
        actor: "test".to_owned(),
        at: Utc::now() - Duration::hours(hours),
    };
    assert!(server.store.change_rollout(&change).await.expect("backdate").is_some(), "the rollout did not move");
}

fn refusals(body: &Value) -> Vec<String> {
    body["refusals"]
        .as_array()
        .expect("refusals")
        .iter()
        .map(|refusal| refusal["refusal"].as_str().expect("name").to_owned())
        .collect()
}

/// The ids of the items a gate view samples.
fn sampled_items(gate: &Value) -> Vec<String> {
    let samples = gate["samples"].as_array().expect("samples");
    samples.iter().map(|sample| sample["item_id"].as_str().expect("id").to_owned()).collect()
}

async fn post(server: &Server, token: &str, path: &str, body: Value) -> reqwest::Response {
    server.send(Method::POST, token, path, body).await
}

async fn outcomes(server: &Server) -> std::collections::BTreeMap<String, u64> {
    let tenant = catalog_core::TenantId::parse("canary").expect("tenant");
    server.store.outcome_counts_since(&tenant, base()).await.expect("counts").events_by_outcome
}

async fn the_gate_refuses_without_sign_offs_or_with_red_signals_and_a_rollback_loses_nothing(server: Server) {
    let operator = server.token("otto", Role::Operator).await;
    let viewer = server.token("vera", Role::Viewer).await;

    let forbidden = post(&server, &viewer, "/v1/tenants/canary/gate/canary", json!({ "supplier": "acme" })).await;
    assert_eq!(forbidden.status(), 403, "a viewer may not move the gate");
    let canary = post(&server, &operator, "/v1/tenants/canary/gate/canary", json!({ "supplier": "acme" })).await;
    assert_eq!(canary.status(), 200, "leaving closed needs nothing");
    let canary: Value = canary.json().await.expect("json");
    assert_eq!(canary["after"], json!({ "stage": "canary", "supplier": "acme" }));

    let second = now_second();
    let events = vec![
        incoming(1, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 1 }, 0, second),
        incoming(2, &offer("canary", "acme", "A-2"), StockChange::Updated { quantity: 2 }, 0, second),
        incoming(3, &offer("canary", "acme", "A-3"), StockChange::Updated { quantity: 3 }, 0, second),
        incoming(4, &offer("canary", "globex", "A-1"), StockChange::Updated { quantity: 4 }, 0, second),
    ];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    assert_eq!(outcomes(&server).await, [("applied".to_owned(), 3), ("held".to_owned(), 1)].into(), "globex held");
    green_for_hours(&server, 25).await;

    // A day of green samples, but the canary started a moment ago: it has not run a day.
    let refused = post(&server, &operator, "/v1/tenants/canary/gate/widen", json!({ "supplier": "globex" })).await;
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(refusals(&refused), ["stage_too_new", "too_few_sign_offs"], "{refused}");
    // The tenant's kill switch: the stage measures nothing while it is thrown, so it goes no
    // further until switched on, which starts its day again.
    let off = server.send(Method::PUT, &operator, "/v1/tenants/canary/sync", json!({ "enabled": false })).await;
    assert_eq!(off.status(), 200);
    let refused = post(&server, &operator, "/v1/tenants/canary/gate/widen", json!({ "supplier": "globex" })).await;
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(refusals(&refused), ["stage_too_new", "too_few_sign_offs", "switched_off"], "{refused}");
    let on = server.send(Method::PUT, &operator, "/v1/tenants/canary/sync", json!({ "enabled": true })).await;
    assert_eq!(on.status(), 200);
    backdate_stage(&server, 25).await;

    let gate = server.get_json(&viewer, "/v1/tenants/canary/gate").await;
    assert_eq!(gate["rollout"]["stage"], "canary");
    assert_eq!(gate["green_now"], true);
    let sampled = sampled_items(&gate);
    assert_eq!(sampled.len(), 3, "the API picks three applied items: {gate}");
    let widen_view = gate["steps"].as_array().expect("steps").iter().find(|s| s["step"] == "widen").expect("widen");
    assert_eq!((widen_view["supplier"].clone(), widen_view["allowed"].clone()), (json!("globex"), json!(false)));

    let refused = post(&server, &operator, "/v1/tenants/canary/gate/widen", json!({ "supplier": "globex" })).await;
    assert_eq!(refused.status(), 409);
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(refused["code"], "gate_refused");
    assert_eq!(refusals(&refused), ["too_few_sign_offs"], "green long enough, no sign-off: {refused}");

    let not_sampled = catalog_core::ItemKey {
        tenant: catalog_core::TenantId::parse("canary").expect("tenant"),
        sku: catalog_core::Sku::parse("ZZZ").expect("sku"),
    }
    .item_id();
    let wrong =
        post(&server, &operator, "/v1/tenants/canary/gate/sign-offs", json!({ "item_id": not_sampled.to_string() }))
            .await;
    assert_eq!(wrong.status(), 409);
    assert_eq!(wrong.json::<Value>().await.expect("json")["code"], "not_sampled");
    let by_viewer = post(&server, &viewer, "/v1/tenants/canary/gate/sign-offs", json!({ "item_id": sampled[0] })).await;
    assert_eq!(by_viewer.status(), 403);
    for item_id in &sampled[..2] {
        let signed =
            post(&server, &operator, "/v1/tenants/canary/gate/sign-offs", json!({ "item_id": item_id, "note": "ok" }))
                .await;
        assert_eq!(signed.status(), 200);
    }
    let refused = post(&server, &operator, "/v1/tenants/canary/gate/widen", json!({ "supplier": "globex" })).await;
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(refused["refusals"][0], json!({ "refusal": "too_few_sign_offs", "have": 2, "need": 3 }));
    let signed = post(&server, &operator, "/v1/tenants/canary/gate/sign-offs", json!({ "item_id": sampled[2] })).await;
    assert_eq!(signed.json::<Value>().await.expect("json")["signed_off_traces"], 3);

    // An operator switches acme off meanwhile (the kill switch): its next event is held.
    let off = server
        .send(Method::PUT, &operator, "/v1/tenants/canary/suppliers/acme/sync", json!({ "enabled": false }))
        .await;
    assert_eq!(off.status(), 200);
    let acme_held = incoming(7, &offer("canary", "acme", "A-4"), StockChange::Updated { quantity: 7 }, 0, now_second());
    server.store.apply_batch(&batch(vec![acme_held])).await.expect("apply");

    // A supplier no event came from is most likely a typo: refused, the stage and its day kept.
    let typo = post(&server, &operator, "/v1/tenants/canary/gate/widen", json!({ "supplier": "globexx" })).await;
    assert_eq!(typo.status(), 404, "a supplier never seen");
    assert!(typo.json::<Value>().await.expect("json")["message"]
        .as_str()
        .expect("message")
        .contains("\"create\": true"));
    let gate = server.get_json(&viewer, "/v1/tenants/canary/gate").await;
    assert_eq!(gate["rollout"], json!({ "stage": "canary", "supplier": "acme" }), "nothing moved");

    // Widening lists acme again: both suppliers' held events are applied, not globex's alone.
    let widened = post(&server, &operator, "/v1/tenants/canary/gate/widen", json!({ "supplier": "globex" })).await;
    assert_eq!(widened.status(), 200);
    let widened: Value = widened.json().await.expect("json");
    assert_eq!(widened["after"], json!({ "stage": "widening", "suppliers": ["acme", "globex"] }));
    assert_eq!(
        (widened["events_replayed"].clone(), widened["events_by_outcome"]["applied"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(outcomes(&server).await, [("applied".to_owned(), 5)].into(), "globex's and acme's held events applied");
    // Off and on again by hand, within the stage: allowed, and what it held is applied.
    let off = server
        .send(Method::PUT, &operator, "/v1/tenants/canary/suppliers/acme/sync", json!({ "enabled": false }))
        .await;
    assert_eq!(off.status(), 200);
    let acme_held = incoming(8, &offer("canary", "acme", "A-5"), StockChange::Updated { quantity: 8 }, 0, now_second());
    server.store.apply_batch(&batch(vec![acme_held])).await.expect("apply");
    let on =
        server.send(Method::PUT, &operator, "/v1/tenants/canary/suppliers/acme/sync", json!({ "enabled": true })).await;
    assert_eq!(on.status(), 200, "acme is listed by the stage");
    assert_eq!(on.json::<Value>().await.expect("json")["events_replayed"], 1);
    assert_eq!(outcomes(&server).await, [("applied".to_owned(), 6)].into());

    // Rollback: every event of the tenant is held from now on, none lost.
    let rolled = post(&server, &operator, "/v1/tenants/canary/gate/rollback", json!({})).await;
    assert_eq!(rolled.status(), 200);
    let events = vec![
        incoming(5, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 10 }, 5, now_second()),
        incoming(6, &offer("canary", "globex", "A-2"), StockChange::Updated { quantity: 20 }, 5, now_second()),
    ];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    assert_eq!(outcomes(&server).await, [("applied".to_owned(), 6), ("held".to_owned(), 2)].into());

    // The sync switch does not go round the gate: on is refused (off stays the kill switch).
    let switched = server
        .send(Method::PUT, &operator, "/v1/tenants/canary/suppliers/globex/sync", json!({ "enabled": true }))
        .await;
    assert_eq!(switched.status(), 409);
    assert_eq!(switched.json::<Value>().await.expect("json")["code"], "gate_managed");
    assert_eq!(outcomes(&server).await, [("applied".to_owned(), 6), ("held".to_owned(), 2)].into(), "still held");
    let off = server
        .send(Method::PUT, &operator, "/v1/tenants/canary/suppliers/globex/sync", json!({ "enabled": false }))
        .await;
    assert_eq!(off.status(), 200);

    // Reopening at canary applies acme's held event; globex's stays held until it is widened.
    let reopened = post(&server, &operator, "/v1/tenants/canary/gate/canary", json!({ "supplier": "acme" })).await;
    assert_eq!(reopened.status(), 200);
    assert_eq!(reopened.json::<Value>().await.expect("json")["events_by_outcome"]["applied"], 1);
    assert_eq!(outcomes(&server).await, [("applied".to_owned(), 7), ("held".to_owned(), 1)].into());
    let trace = server.get_json(&viewer, "/v1/tenants/canary/items/A-1/trace").await;
    assert_eq!(trace["quantity"], 10 + 4, "acme's 10 and globex's 4");

    // A red signal now: refused for it too, with every other reason.
    let red = SignalSample {
        tenant_id: Some(catalog_core::TenantId::parse("canary").expect("tenant")),
        at: Utc::now(),
        green: false,
        stale_items: SampledValue { value: 0.0, green: true },
        queue_lag: SampledValue { value: 240.0, green: false },
        publish_errors: SampledValue { value: 0.0, green: true },
        trace_coverage: SampledValue { value: 1.0, green: true },
    };
    server.store.record_signal_samples(&[red]).await.expect("sample");
    let refused = post(&server, &operator, "/v1/tenants/canary/gate/widen", json!({ "supplier": "globex" })).await;
    assert_eq!(refused.status(), 409);
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(
        refusals(&refused),
        ["red_signals", "not_green_long_enough", "stage_too_new", "too_few_sign_offs"],
        "{refused}"
    );
    assert_eq!(refused["refusals"][0]["red"], json!(["queue_lag"]));

    let audit = server.get_json(&operator, "/v1/audit").await;
    let actions: Vec<&str> =
        audit.as_array().expect("entries").iter().filter_map(|entry| entry["action"].as_str()).collect();
    for action in ["gate_canary", "gate_sign_off", "gate_widen", "gate_rollback"] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    let history = server.get_json(&viewer, "/v1/tenants/canary/gate").await["history"].clone();
    let steps: Vec<(&str, &str)> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|change| (change["step"].as_str().expect("step"), change["actor"].as_str().expect("actor")))
        .collect();
    assert_eq!(
        steps,
        [
            ("canary", "otto"),
            ("rollback", "otto"),
            ("restart", "otto"),
            ("widen", "otto"),
            ("canary", "test"),
            ("restart", "otto"),
            ("canary", "otto"),
        ],
        "newest first: four steps, the test's backdating, and the two switches on that restarted a stage's day"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_gate_refuses_without_sign_offs_or_with_red_signals_and_a_rollback_loses_nothing() {
    the_gate_refuses_without_sign_offs_or_with_red_signals_and_a_rollback_loses_nothing(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_gate_refuses_without_sign_offs_or_with_red_signals_and_a_rollback_loses_nothing() {
    the_gate_refuses_without_sign_offs_or_with_red_signals_and_a_rollback_loses_nothing(Server::postgres().await).await;
}

/// A tenant never put through the gate is closed by its rollout, yet its events apply while
/// its sync is on (the default): the gate says so, and a rollback holds them.
async fn a_tenant_never_gated_applies_its_events_and_a_rollback_holds_them(server: Server) {
    let operator = server.token("otto", Role::Operator).await;
    let tenant = catalog_core::TenantId::parse("canary").expect("tenant");
    let viewer = server.token("vera", Role::Viewer).await;
    let unseen = server.get_json(&operator, "/v1/tenants/canary/gate").await;
    assert_eq!(unseen["sync_enabled"], Value::Null, "not seen yet: {unseen}");
    let rollback =
        unseen["steps"].as_array().expect("steps").iter().find(|s| s["step"] == "rollback").expect("rollback");
    assert_eq!(rollback["allowed"], false, "nothing seen to roll back: {unseen}");
    let typo = post(&server, &operator, "/v1/tenants/canary/gate/rollback", json!({})).await;
    assert_eq!(typo.status(), 404, "nothing seen to roll back: most likely a typo");
    let by_viewer = post(&server, &viewer, "/v1/tenants/canary/gate/rollback", json!({})).await;
    assert_eq!(by_viewer.status(), 403, "the role is checked first");
    let first =
        vec![incoming(1, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 1 }, 0, now_second())];
    server.store.apply_batch(&batch(first)).await.expect("apply");
    assert_eq!(outcomes(&server).await, [("applied".to_owned(), 1)].into());

    let gate = server.get_json(&operator, "/v1/tenants/canary/gate").await;
    assert_eq!((gate["rollout"]["stage"].clone(), gate["sync_enabled"].clone()), (json!("closed"), json!(true)));
    let rollback = gate["steps"].as_array().expect("steps").iter().find(|s| s["step"] == "rollback").expect("rollback");
    assert_eq!(rollback["allowed"], true, "{gate}");
    let page = crate::page::page(&server, &operator, "/signals?tenant=canary").await;
    assert!(page.contains("its sync is on, so its events apply"), "{page}");

    let rolled = post(&server, &operator, "/v1/tenants/canary/gate/rollback", json!({})).await;
    assert_eq!(rolled.status(), 200, "{}", rolled.text().await.unwrap_or_default());
    let second =
        vec![incoming(2, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 2 }, 1, now_second())];
    server.store.apply_batch(&batch(second)).await.expect("apply");
    assert_eq!(outcomes(&server).await, [("applied".to_owned(), 1), ("held".to_owned(), 1)].into(), "held now");
    assert!(!server.store.tenant_flags(&tenant).await.expect("flags").expect("known").sync_enabled);
    let gate = server.get_json(&operator, "/v1/tenants/canary/gate").await;
    assert_eq!((gate["rollout"]["stage"].clone(), gate["sync_enabled"].clone()), (json!("closed"), json!(false)));
    assert_eq!(gate["changed_at"], Value::Null, "held by its sync switch alone, not put behind the gate: {gate}");
    // Its audit entry says what changed: the switch, not the stage.
    let audit = server.get_json(&operator, "/v1/audit").await;
    let entry = audit.as_array().expect("entries").iter().find(|e| e["action"] == "gate_rollback").expect("audited");
    assert_eq!((entry["before"]["stage"].clone(), entry["after"]["stage"].clone()), (json!("closed"), json!("closed")));
    assert_eq!(
        (entry["before"]["sync_enabled"].clone(), entry["after"]["sync_enabled"].clone()),
        (json!(true), json!(false))
    );

    // So switching it on by hand undoes the rollback, as for the sync switch it stands for.
    let on = server.send(Method::PUT, &operator, "/v1/tenants/canary/sync", json!({ "enabled": true })).await;
    assert_eq!(on.status(), 200, "{}", on.text().await.unwrap_or_default());
    assert_eq!(outcomes(&server).await, [("applied".to_owned(), 2)].into(), "the held event applied");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_tenant_never_gated_applies_its_events_and_a_rollback_holds_them() {
    a_tenant_never_gated_applies_its_events_and_a_rollback_holds_them(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_tenant_never_gated_applies_its_events_and_a_rollback_holds_them() {
    a_tenant_never_gated_applies_its_events_and_a_rollback_holds_them(Server::postgres().await).await;
}

/// A canary supplier that changed two SKUs all its day leaves a sample of two: the gate says
/// it is short and needs those two signed off, not three there are not. Needing three, it
/// refused every widen for the life of the stage, with nothing left for support to sign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_sample_is_said_and_each_of_its_items_is_signed_off() {
    let server = Server::sqlite().await;
    let operator = server.token("otto", Role::Operator).await;
    let viewer = server.token("vera", Role::Viewer).await;
    let canary = post(&server, &operator, "/v1/tenants/canary/gate/canary", json!({ "supplier": "acme" })).await;
    assert_eq!(canary.status(), 200);
    let second = now_second();
    let events = vec![
        incoming(1, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 1 }, 0, second),
        incoming(2, &offer("canary", "acme", "A-2"), StockChange::Updated { quantity: 2 }, 0, second),
        incoming(3, &offer("canary", "acme", "A-1"), StockChange::Adjusted { delta: 1 }, 1, second),
        incoming(4, &offer("canary", "globex", "A-1"), StockChange::Updated { quantity: 4 }, 0, second),
    ];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    green_for_hours(&server, 25).await;
    backdate_stage(&server, 25).await;

    let gate = server.get_json(&viewer, "/v1/tenants/canary/gate").await;
    assert_eq!((gate["sample_short"].clone(), gate["sign_offs_needed"].clone()), (json!(true), json!(2)), "{gate}");
    let sampled = sampled_items(&gate);
    assert_eq!(sampled.len(), 2, "{gate}");
    let page = crate::page::page(&server, &viewer, "/signals?tenant=canary").await;
    assert!(page.contains("sign-offs: 0 of 2") && page.contains("The sample is short"), "{page}");
    let refused = post(&server, &operator, "/v1/tenants/canary/gate/widen", json!({ "supplier": "globex" })).await;
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(refused["refusals"], json!([{ "refusal": "too_few_sign_offs", "have": 0, "need": 2 }]));
    for item_id in &sampled {
        let signed = post(&server, &operator, "/v1/tenants/canary/gate/sign-offs", json!({ "item_id": item_id })).await;
        assert_eq!(signed.status(), 200);
    }
    let widened = post(&server, &operator, "/v1/tenants/canary/gate/widen", json!({ "supplier": "globex" })).await;
    assert_eq!(widened.status(), 200, "{:?}", widened.text().await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signals_routes_judge_now_and_return_the_history() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let events = vec![incoming(1, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 1 }, 0, 0)];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    green_for_hours(&server, 1).await;

    let all = server.get_json(&viewer, "/v1/signals").await;
    let stale = &all["overall"]["current"]["stale_items"];
    assert_eq!((stale["target"].clone(), stale["owner"].clone()), (json!("< 0.01"), json!("storefront-integration")));
    assert_eq!(all["tenants"][0]["tenant_id"], "canary");
    for name in ["stale_items", "queue_lag", "publish_errors", "trace_coverage"] {
        assert!(["green", "red"].contains(&all["tenants"][0][name]["status"].as_str().expect("status")), "{name}");
    }
    let tenant = server.get_json(&viewer, "/v1/tenants/canary/signals").await;
    assert_eq!(tenant["history"].as_array().expect("history").len(), 180, "three workers for an hour");
    let since = (Utc::now() - Duration::seconds(630)).to_rfc3339().replace('+', "%2B");
    let recent = server.get_json(&viewer, &format!("/v1/tenants/canary/signals?since={since}")).await;
    assert_eq!(recent["history"].as_array().expect("history").len(), 31, "the last 630 s, a sample every 20 s");
    assert_eq!(server.get(&viewer, "/v1/tenants/canary/signals?since=yesterday").await.status(), 400);
    assert_eq!(server.get(&viewer, "/v1/tenants/nobody/signals").await.status(), 404);

    let html = crate::page::page(&server, &viewer, "/signals?tenant=canary").await;
    assert_eq!(html.matches("<svg").count(), 4, "one chart per signal");
    assert!(html.contains("<polyline"), "the history is drawn");
    assert!(html.contains("Sample to trace and sign off"));
    server.stop().await;
}

fn admin_api(database_url: &str, arguments: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_admin-api"))
        .args(arguments)
        .env("CATALOG_DATABASE_URL", database_url)
        .env("CATALOG_LOG_FORMAT", "json")
        .output()
        .expect("run admin-api")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_check_exits_0_when_allowed_1_when_refused_and_2_on_error() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", directory.path().join("catalog.db").display());
    let allowed = admin_api(&url, &["gate", "check", "--tenant", "canary", "--step", "canary", "--supplier", "acme"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", String::from_utf8_lossy(&allowed.stderr));
    assert!(String::from_utf8_lossy(&allowed.stdout).starts_with("allowed: canary canary: closed -> canary(acme)"));

    let refused = admin_api(&url, &["gate", "check", "--tenant", "canary", "--step", "open"]);
    assert_eq!(refused.status.code(), Some(1));
    let printed = String::from_utf8_lossy(&refused.stdout);
    assert!(printed.contains("cannot open from closed"), "{printed}");

    // Once the tenant was seen, a supplier none of its events came from is a likely typo.
    let store = catalog_sqlite::SqliteStore::connect(&url, catalog_store::StoreConfig::default()).await.expect("open");
    let first = incoming(1, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 1 }, 0, 0);
    catalog_store::BatchStore::apply_batch(&store, &batch(vec![first])).await.expect("apply");
    let typo = admin_api(&url, &["gate", "check", "--tenant", "canary", "--step", "canary", "--supplier", "acmee"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&typo.stdout).contains("supplier acmee has no event of the tenant seen yet"));
    let seen = admin_api(&url, &["gate", "check", "--tenant", "canary", "--step", "canary", "--supplier", "acme"]);
    assert_eq!(seen.status.code(), Some(0), "{}", String::from_utf8_lossy(&seen.stdout));

    let error = admin_api(&url, &["gate", "check", "--tenant", "canary", "--step", "widen"]);
    assert_eq!(error.status.code(), Some(2), "widen needs a supplier");
    let error = admin_api(&url, &["gate", "check", "--tenant", "Not A Tenant", "--step", "open"]);
    assert_eq!(error.status.code(), Some(2));
}

/// Two workers each sample every tenant every 30 s: a day is 5,760 samples. The chart of a
/// day counts every red sample of it and draws it, a red stretch 20 hours ago as one a
/// minute ago.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_chart_counts_every_red_sample_of_its_window() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let events = vec![incoming(1, &offer("t", "acme", "A-1"), StockChange::Updated { quantity: 1 }, 0, 0)];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    let now = Utc::now();
    let red_at = now - Duration::hours(20);
    let samples: Vec<SignalSample> = (1..=24 * 120)
        .flat_map(|step| [0, 15].map(move |worker_offset| now - Duration::seconds(step * 30 - worker_offset)))
        .map(|at| SignalSample {
            tenant_id: Some(catalog_core::TenantId::parse("t").expect("tenant")),
            at,
            green: at != red_at,
            stale_items: SampledValue { value: if at == red_at { 0.5 } else { 0.0 }, green: at != red_at },
            queue_lag: SampledValue { value: 1.0, green: true },
            publish_errors: SampledValue { value: 0.0, green: true },
            trace_coverage: SampledValue { value: 1.0, green: true },
        })
        .collect();
    assert_eq!(samples.iter().filter(|sample| !sample.green).count(), 1, "one red sample");
    server.store.record_signal_samples(&samples).await.expect("samples");

    let html = crate::page::page(&server, &viewer, "/signals?tenant=t").await;
    let start = html.find(r#"aria-label="stale_items over the last 24 hours"#).expect("the stale_items chart");
    let stale_chart = &html[start..start + html[start..].find("</svg>").expect("the chart's end")];
    let label = &stale_chart[..stale_chart.find("\">").expect("the label's end")];
    assert!(label.contains(", 1 red;"), "{label}");
    assert_eq!(stale_chart.matches("<circle").count(), 1, "the red sample drawn: {stale_chart}");
    let api = server.get_json(&viewer, "/v1/tenants/t/signals").await;
    assert_eq!(api["history"].as_array().expect("history").len(), admin_api::gate::MAX_SAMPLES);
    assert_eq!(api["more"], true, "the API says older samples were left out");
    server.stop().await;
}

/// A signals history asked for since a year PostgreSQL does not keep (serde takes
/// `-5000-…`) is refused 400 `invalid_since`: it reached the store, which refused to bind
/// it, a bare 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signals_history_since_a_year_out_of_range_is_refused_400_on_postgres() {
    let server = Server::postgres().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let events = vec![incoming(1, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 1 }, 0, 0)];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    for path in ["/v1/signals", "/v1/tenants/canary/signals"] {
        let refused = server.get(&viewer, &format!("{path}?since=-5000-01-01T00:00:00Z")).await;
        assert_eq!(refused.status(), 400, "{path}");
        assert_eq!(refused.json::<Value>().await.expect("json")["code"], "invalid_since", "{path}");
    }
    server.stop().await;
}

/// The gate says "green now" only of a green sample within the allowed gap, as it judges: a
/// green sample two hours old, the sampler stopped since, read "green now".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_sample_older_than_the_allowed_gap_is_not_green_now() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let value = |value: f64| SampledValue { value, green: true };
    let sample = |age: Duration| SignalSample {
        tenant_id: Some(catalog_core::TenantId::parse("canary").expect("tenant")),
        at: Utc::now() - age,
        green: true,
        stale_items: value(0.0),
        queue_lag: value(1.0),
        publish_errors: value(0.0),
        trace_coverage: value(1.0),
    };
    server.store.record_signal_samples(&[sample(Duration::hours(2))]).await.expect("samples");
    let gate = server.get_json(&viewer, "/v1/tenants/canary/gate").await;
    assert_eq!((gate["green_now"].clone(), gate["green_since"].clone()), (json!(false), json!(null)), "{gate}");
    server.store.record_signal_samples(&[sample(Duration::minutes(1))]).await.expect("samples");
    assert_eq!(server.get_json(&viewer, "/v1/tenants/canary/gate").await["green_now"], true, "sampled again");
    server.stop().await;
}
