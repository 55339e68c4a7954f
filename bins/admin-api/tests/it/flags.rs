//! Flags, the canary and rollback levers: switching a supplier on applies its held events
//! through replay's rules, says how many, and is audited; a second switch applies nothing.

use catalog_core::StockChange;
use catalog_store::contract::{batch, incoming, offer};
use catalog_store::Role;
use reqwest::Method;
use serde_json::json;

use crate::Server;

async fn switching_a_supplier_on_applies_its_held_events(server: Server) {
    let operator = server.token("otto", Role::Operator).await;
    let viewer = server.token("vera", Role::Viewer).await;
    let key = offer("canary", "acme", "ABC-1");
    // Nothing of the tenant or the supplier seen yet: most likely a typo, refused.
    for path in ["/v1/tenants/canary/sync", "/v1/tenants/canary/suppliers/acme/sync"] {
        let typo = server.send(Method::PUT, &operator, path, json!({ "enabled": false })).await;
        assert_eq!(typo.status(), 404, "{path}");
        let typo: serde_json::Value = typo.json().await.expect("json");
        assert!(typo["message"].as_str().expect("message").contains("\"create\": true"), "{typo}");
    }
    assert!(server.get_json(&viewer, "/v1/tenants").await.as_array().expect("list").is_empty(), "nothing made");
    // Held from its first event, on purpose.
    let off = server
        .send(
            Method::PUT,
            &operator,
            "/v1/tenants/canary/suppliers/acme/sync",
            json!({ "enabled": false, "create": true }),
        )
        .await;
    assert_eq!(off.status(), 200);
    let off: serde_json::Value = off.json().await.expect("json");
    assert_eq!(
        (off["before"].clone(), off["after"].clone(), off["events_replayed"].clone()),
        (json!(null), json!(false), json!(0))
    );
    // Held for long: the first event came 40 days ago (held segments outlive the journal's
    // retention, so that switching on applies them however old).
    let now_second = (chrono::Utc::now() - catalog_store::contract::base()).num_seconds();
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 9 }, 0, now_second - 40 * 86_400),
        incoming(2, &key, StockChange::Adjusted { delta: 3 }, 1, now_second),
    ];
    let result = server.store.apply_batch(&batch(events)).await.expect("apply");
    assert!(result.decisions.iter().all(|decision| decision.outcome.as_str() == "held"));
    // No item yet (nothing was applied): support finds the held events by their ids.
    let held = server.get_json(&viewer, &format!("/v1/events/{}", catalog_store::contract::event_id(2))).await;
    assert_eq!(held["matches"][0]["event"]["outcome"], "held");
    assert_eq!(held["matches"][0]["event"]["reason"], "supplier_sync_off");
    assert_eq!(held["matches"][0]["item_id"], key.item_key().item_id().to_string());

    let on =
        server.send(Method::PUT, &operator, "/v1/tenants/canary/suppliers/acme/sync", json!({ "enabled": true })).await;
    assert_eq!(on.status(), 200);
    let on: serde_json::Value = on.json().await.expect("json");
    assert_eq!(on["before"], false);
    assert_eq!(on["events_replayed"], 2);
    assert_eq!(on["events_by_outcome"]["applied"], 2);
    assert_eq!(on["items_changed"], 1);
    let trace = server.get_json(&viewer, "/v1/tenants/canary/items/ABC-1/trace").await;
    assert_eq!(trace["quantity"], 12);
    assert_eq!(trace["pending_publishes"][0]["channel"], "storefront");
    let outcomes: Vec<&str> = trace["events"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes, ["applied", "applied"], "the held rows were decided in place");

    let again =
        server.send(Method::PUT, &operator, "/v1/tenants/canary/suppliers/acme/sync", json!({ "enabled": true })).await;
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(again["events_replayed"], 0, "idempotent: nothing is held any more");

    let tenants = server.get_json(&viewer, "/v1/tenants").await;
    assert_eq!(
        tenants,
        json!([{ "tenant_id": "canary", "sync_enabled": true, "suppliers": [{ "supplier_id": "acme", "sync_enabled": true }] }])
    );
    let audit = server.get_json(&viewer, "/v1/audit").await;
    let audit = audit.as_array().expect("list");
    assert_eq!(audit.len(), 3, "every switch is audited");
    assert_eq!(audit[1]["actor"], "otto");
    assert_eq!(audit[1]["action"], "supplier_sync");
    assert_eq!(audit[1]["target"], "tenant/canary/supplier/acme");
    assert_eq!(
        (audit[1]["before"].clone(), audit[1]["after"].clone()),
        (json!({ "enabled": false }), json!({ "enabled": true }))
    );

    let status = server.get_json(&viewer, "/v1/tenants/canary/status").await;
    assert_eq!(status["today"]["applied"], 1, "the other was received 40 days ago");
    assert_eq!(status["items"], 1);
    assert_eq!(status["items_waiting_to_publish"], 1);
    assert_eq!(status["state"], "current");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_a_supplier_on_applies_its_held_events_on_sqlite() {
    switching_a_supplier_on_applies_its_held_events(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_a_supplier_on_applies_its_held_events_on_postgres() {
    switching_a_supplier_on_applies_its_held_events(Server::postgres().await).await;
}

#[test]
fn sync_state_follows_the_thresholds() {
    use admin_api::api::sync_state;
    let settings = admin_api::Settings::default();
    let now = catalog_store::contract::base();
    let ago = |seconds: i64| Some(now - chrono::Duration::seconds(seconds));
    assert_eq!(sync_state(now, None, None, &settings), "stale");
    assert_eq!(sync_state(now, ago(3_601), ago(3_601), &settings), "stale");
    assert_eq!(sync_state(now, ago(10), ago(20), &settings), "current");
    assert_eq!(sync_state(now, ago(10), ago(400), &settings), "behind");
    assert_eq!(sync_state(now, ago(10), None, &settings), "behind");
}

/// A server on PostgreSQL whose supplier acme of tenant canary is switched off and holds two
/// events of one item: the server, an operator's token and a connection to its database.
async fn two_events_held_on_postgres() -> (Server, String, sqlx::PgConnection) {
    let (server, url) = Server::postgres_with(catalog_postgres::PostgresOptions::default()).await;
    let operator = server.token("otto", Role::Operator).await;
    let key = offer("canary", "acme", "ABC-1");
    let off = json!({ "enabled": false, "create": true });
    let off = server.send(Method::PUT, &operator, "/v1/tenants/canary/suppliers/acme/sync", off).await;
    assert_eq!(off.status(), 200);
    let now_second = (chrono::Utc::now() - catalog_store::contract::base()).num_seconds();
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 9 }, 0, now_second),
        incoming(2, &key, StockChange::Adjusted { delta: 3 }, 1, now_second),
    ];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    let admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.expect("connect");
    (server, operator, admin)
}

/// A switch on whose audit entry cannot be written still applies the held events it lets
/// through, then answers the failure: the switch is committed, and a held event left held
/// under a switch that reads on is never applied (switching on again changes nothing the
/// page offers). It answered 500 before applying them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_on_whose_audit_fails_still_applies_the_held_events() {
    let (server, operator, mut admin) = two_events_held_on_postgres().await;
    for statement in [
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit log full'; END $$",
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
    ] {
        sqlx::query(statement).execute(&mut admin).await.expect("refuse audit entries");
    }
    let on = json!({ "enabled": true });
    let on = server.send(Method::PUT, &operator, "/v1/tenants/canary/suppliers/acme/sync", on).await;
    assert_eq!(on.status(), 500, "the audit entry could not be written");
    let tenant = catalog_core::TenantId::parse("canary").expect("tenant");
    let counts = server.store.outcome_counts_since(&tenant, catalog_store::contract::base()).await.expect("counts");
    assert_eq!(counts.events_by_outcome, [("applied".to_owned(), 2)].into(), "the held events were applied");
    server.stop().await;
}

/// A switch on whose caller gives up (a proxy's or client's timeout) runs to its end: its
/// held events are applied. Run in the request, it was dropped with the connection between
/// the committed switch and the replay, the flag reading on and its events held for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_on_whose_caller_gives_up_still_applies_the_held_events() {
    let (server, operator, mut admin) = two_events_held_on_postgres().await;
    // The audit entry, written after the switch commits and before the replay, takes a
    // second: longer than the caller waits.
    for statement in [
        "CREATE FUNCTION slow_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$",
        "CREATE TRIGGER slow_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION slow_audit()",
    ] {
        sqlx::query(statement).execute(&mut admin).await.expect("slow audit entries");
    }
    let gave_up = server
        .client
        .put(server.url("/v1/tenants/canary/suppliers/acme/sync"))
        .bearer_auth(&operator)
        .json(&json!({ "enabled": true }))
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.as_ref().is_err_and(reqwest::Error::is_timeout), "the caller gave up: {gave_up:?}");

    let tenant = catalog_core::TenantId::parse("canary").expect("tenant");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let counts = server.store.outcome_counts_since(&tenant, catalog_store::contract::base()).await.expect("counts");
        if counts.events_by_outcome == [("applied".to_owned(), 2)].into() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the held events were never applied: {counts:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let audit: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log ORDER BY audit_id")
        .fetch_all(&mut admin)
        .await
        .expect("audit");
    assert_eq!(audit, ["supplier_sync", "supplier_sync"], "both switches audited");
    server.stop().await;
}
