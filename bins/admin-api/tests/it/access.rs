//! Tokens and roles: 401 everywhere but health, readiness and metrics without a valid
//! token; 403 to a role that may not; errors as JSON with a stable code; body limit; metrics.

use catalog_store::Role;
use reqwest::Method;
use serde_json::json;

use crate::Server;

/// Every `/v1` route, with a body where it takes one.
fn routes() -> Vec<(Method, &'static str, serde_json::Value)> {
    let none = serde_json::Value::Null;
    vec![
        (Method::GET, "/v1/tenants", none.clone()),
        (Method::GET, "/v1/tenants/canary/status", none.clone()),
        (Method::PUT, "/v1/tenants/canary/sync", json!({ "enabled": true })),
        (Method::PUT, "/v1/tenants/canary/suppliers/acme/sync", json!({ "enabled": true })),
        (Method::GET, "/v1/tenants/canary/items/abc-1/trace", none.clone()),
        (Method::GET, "/v1/items/00000000-0000-0000-0000-000000000000/trace", none.clone()),
        (Method::GET, "/v1/events/00000000-0000-0000-0000-000000000000", none.clone()),
        (Method::GET, "/v1/traces/0123456789abcdef0123456789abcdef", none.clone()),
        (Method::GET, "/v1/dead-letters", none.clone()),
        (Method::POST, "/v1/dead-letters/1/retry", none.clone()),
        (Method::POST, "/v1/dead-letters/1/resolve", json!({ "note": "n" })),
        (Method::GET, "/v1/audit", none.clone()),
        (Method::GET, "/v1/tokens", none.clone()),
        (Method::POST, "/v1/tokens", json!({ "name": "x", "role": "viewer" })),
        (Method::DELETE, "/v1/tokens/x", none),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_and_metrics_needs_a_live_token() {
    let server = Server::sqlite().await;
    let revoked = server.token("gone", Role::Admin).await;
    assert!(server.store.revoke_token("gone").await.expect("revoke"));
    for (method, path, body) in routes() {
        let anonymous =
            server.client.request(method.clone(), server.url(path)).json(&body).send().await.expect("request");
        assert_eq!(anonymous.status(), 401, "{method} {path} without a token");
        let error: serde_json::Value = anonymous.json().await.expect("json error");
        assert_eq!(error["code"], "unauthorized");
        for token in ["cat_wrong", revoked.as_str()] {
            let response = server.send(method.clone(), token, path, body.clone()).await;
            assert_eq!(response.status(), 401, "{method} {path} with token {token:.8}");
        }
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = server.client.get(server.url(path)).send().await.expect("request");
        assert_eq!(response.status(), 200, "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_and_may_not_write_an_operator_may_not_manage_tokens() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let operator = server.token("otto", Role::Operator).await;
    let admin = server.token("ada", Role::Admin).await;
    for (method, path, body) in routes() {
        let response = server.send(method.clone(), &viewer, path, body.clone()).await;
        if method == Method::GET && !path.starts_with("/v1/tokens") {
            assert_ne!(response.status(), 403, "a viewer reads {path}");
            assert_ne!(response.status(), 401, "a viewer reads {path}");
        } else {
            assert_eq!(response.status(), 403, "a viewer may not {method} {path}");
            let error: serde_json::Value = response.json().await.expect("json error");
            assert_eq!(error["code"], "forbidden");
        }
        if path.starts_with("/v1/tokens") {
            let response = server.send(method.clone(), &operator, path, body.clone()).await;
            assert_eq!(response.status(), 403, "an operator may not {method} {path}");
        }
    }
    assert!(server.get_json(&viewer, "/v1/audit").await.as_array().expect("list").is_empty(), "403s write nothing");

    // An admin creates a token through the API; it works at once and is audited.
    let created = server.send(Method::POST, &admin, "/v1/tokens", json!({ "name": "vic", "role": "viewer" })).await;
    assert_eq!(created.status(), 200);
    let created: serde_json::Value = created.json().await.expect("json");
    let token = created["token"].as_str().expect("token shown once");
    assert_eq!(server.get(token, "/v1/tenants").await.status(), 200);
    let listed = server.get_json(&admin, "/v1/tokens").await;
    assert!(!listed.to_string().contains(token), "a listing never shows a token");
    let audit = server.get_json(&viewer, "/v1/audit").await;
    assert_eq!(audit[0]["actor"], "ada");
    assert_eq!(audit[0]["action"], "token_add");
    assert!(!audit.to_string().contains(token), "the audit log never holds a token");
    let revoked = server.send(Method::DELETE, &admin, "/v1/tokens/vic", serde_json::Value::Null).await;
    assert_eq!(revoked.status(), 204);
    assert_eq!(server.get(token, "/v1/tenants").await.status(), 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_stable_codes_and_bodies_are_limited() {
    let server = Server::sqlite().await;
    let operator = server.token("otto", Role::Operator).await;
    let cases = [
        (Method::GET, "/v1/tenants/never-seen/status", json!(null), 404, "not_found"),
        (Method::GET, "/v1/tenants/canary/items/bad%20sku/trace", json!(null), 400, "invalid_sku"),
        (Method::GET, "/v1/items/not-a-uuid/trace", json!(null), 400, "invalid_item_id"),
        (Method::GET, "/v1/traces/xyz", json!(null), 400, "invalid_trace_id"),
        (Method::GET, "/v1/dead-letters?state=maybe", json!(null), 400, "invalid_query"),
        (Method::PUT, "/v1/tenants/canary/sync", json!({ "enabled": "yes" }), 400, "invalid_body"),
        (Method::POST, "/v1/dead-letters/12345/retry", json!(null), 404, "not_found"),
        (Method::GET, "/v1/nowhere", json!(null), 404, "not_found"),
    ];
    for (method, path, body, status, code) in cases {
        let response = server.send(method.clone(), &operator, path, body).await;
        assert_eq!(response.status(), status, "{method} {path}");
        let error: serde_json::Value = response.json().await.expect("json error");
        assert_eq!(error["code"], code, "{method} {path}");
    }
    let huge = json!({ "enabled": true, "padding": "x".repeat(64 * 1024) });
    let response = server.send(Method::PUT, &operator, "/v1/tenants/canary/sync", huge).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["connection"], "close", "an unread body ends the connection");
    let error: serde_json::Value = response.json().await.expect("json error");
    assert_eq!(error["code"], "body_too_large");

    let metrics = server.client.get(server.url("/metrics")).send().await.expect("request").text().await.expect("text");
    assert!(
        metrics.contains(
            r#"catalog_admin_requests_total{method="GET",route="/v1/tenants/{tenant_id}/status",status="404"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("catalog_admin_request_seconds_bucket"));
    server.stop().await;
}

/// Methods no standard names are counted under one label: the layer counts requests before
/// they are authenticated, and each made-up method was a series of its own, kept for good, so
/// anyone reaching the port could grow the process's memory and `/metrics` without limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_share_one_metrics_label() {
    let server = Server::sqlite().await;
    for n in 0..20 {
        let method = Method::from_bytes(format!("X{n}").as_bytes()).expect("a method token");
        let response = server.client.request(method, server.url("/healthz")).send().await.expect("request");
        assert!(!response.status().is_success(), "{}", response.status());
    }
    let metrics = server.client.get(server.url("/metrics")).send().await.expect("request").text().await.expect("text");
    // The first requests of the server: every series there is is theirs.
    let series: Vec<&str> = metrics.lines().filter(|line| line.starts_with("catalog_admin_requests_total{")).collect();
    assert_eq!(series.len(), 1, "{series:#?}");
    assert!(series[0].contains(r#"method="other""#) && series[0].ends_with(" 20"), "{series:#?}");
    server.stop().await;
}

/// A token whose audit entry cannot be written is taken back: its secret was never shown,
/// and asking again for its name is not refused as taken by a token no one holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_audit_fails_is_taken_back() {
    let options = catalog_postgres::PostgresOptions {
        lock_timeout: std::time::Duration::from_millis(300),
        ..catalog_postgres::PostgresOptions::default()
    };
    let (server, url) = Server::postgres_with(options).await;
    let admin = server.token("ada", Role::Admin).await;
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE").execute(&mut holder).await.expect("lock the audit log");
    let body = serde_json::json!({ "name": "ci-bot", "role": "viewer" });
    let failed = server.send(Method::POST, &admin, "/v1/tokens", body.clone()).await;
    assert_eq!(failed.status(), 500, "the audit entry could not be written");
    sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release");
    let again = server.send(Method::POST, &admin, "/v1/tokens", body).await;
    assert_eq!(again.status(), 200, "the name is free: {}", again.text().await.unwrap_or_default());
    server.stop().await;
}
