//! The OpenAPI 3.1 description at `/openapi.json`: every `/v1` route the router serves, with
//! the bearer scheme, the error schema, every status the tests see it answer, and no
//! reference to a schema it does not define.

use std::sync::OnceLock;

use crate::Server;

/// Every `/v1` route of the router, as (method, path template).
const ROUTES: [(&str, &str); 29] = [
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{tenant_id}/status"),
    ("put", "/v1/tenants/{tenant_id}/sync"),
    ("put", "/v1/tenants/{tenant_id}/suppliers/{supplier_id}/sync"),
    ("get", "/v1/tenants/{tenant_id}/items/{sku}/trace"),
    ("get", "/v1/rejections"),
    ("get", "/v1/items/{item_id}/trace"),
    ("get", "/v1/events/{event_id}"),
    ("get", "/v1/traces/{trace_id}"),
    ("get", "/v1/channels"),
    ("get", "/v1/dead-letters"),
    ("post", "/v1/dead-letters/{dead_letter_id}/retry"),
    ("post", "/v1/dead-letters/{dead_letter_id}/resolve"),
    ("get", "/v1/audit"),
    ("get", "/v1/tokens"),
    ("post", "/v1/tokens"),
    ("delete", "/v1/tokens/{name}"),
    ("get", "/v1/signals"),
    ("get", "/v1/tenants/{tenant_id}/signals"),
    ("get", "/v1/tenants/{tenant_id}/gate"),
    ("post", "/v1/tenants/{tenant_id}/gate/sign-offs"),
    ("post", "/v1/tenants/{tenant_id}/gate/canary"),
    ("post", "/v1/tenants/{tenant_id}/gate/widen"),
    ("post", "/v1/tenants/{tenant_id}/gate/open"),
    ("post", "/v1/tenants/{tenant_id}/gate/rollback"),
    ("get", "/v1/feeds"),
    ("get", "/v1/tenants/{tenant_id}/feeds/{supplier_id}"),
    ("put", "/v1/tenants/{tenant_id}/feeds/{supplier_id}/sync"),
    ("post", "/v1/tenants/{tenant_id}/feeds/{supplier_id}/runs"),
];

/// The description `/openapi.json` serves, as JSON.
fn description() -> &'static serde_json::Value {
    static DESCRIPTION: OnceLock<serde_json::Value> = OnceLock::new();
    DESCRIPTION.get_or_init(|| {
        serde_json::to_value(<admin_api::api::ApiDoc as utoipa::OpenApi>::openapi()).expect("the description as JSON")
    })
}

/// Fails when a `/v1` route answered `status` to `method` on `path` and its description lists
/// no such response. Every request a test sends through `Server` is checked, so a status a
/// handler gives and its annotation leaves out (the sync switches' 409s) fails the first test
/// that sees it. A path no described route matches (the page, a fallback 404) is not checked.
pub(crate) fn assert_described(method: &reqwest::Method, path: &str, status: reqwest::StatusCode) {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let Some(paths) = description()["paths"].as_object() else { return };
    let matches = |template: &&String| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(part, segment)| part.starts_with('{') || part == segment)
    };
    // The most literal template wins, as the router picks `/gate/canary` over a parameter.
    let literal_parts = |template: &&String| template.split('/').filter(|part| !part.starts_with('{')).count();
    let Some(template) = paths.keys().filter(matches).max_by_key(literal_parts) else { return };
    let operation = &paths[template][method.as_str().to_lowercase()];
    if operation.is_object() {
        assert!(
            operation["responses"][status.as_str()].is_object(),
            "{method} {path} answered {status}, which the description of {template} does not list"
        );
    }
}

/// The sync switches answer 409 when the gate manages the tenant (`gate_managed`), when its
/// rollout changed meanwhile (`rollout_changed`) or the store lost a race (`conflict`); the
/// description listed no 409 for them.
#[test]
fn the_sync_switches_describe_their_conflicts() {
    for path in ["/v1/tenants/{tenant_id}/sync", "/v1/tenants/{tenant_id}/suppliers/{supplier_id}/sync"] {
        let conflict = &description()["paths"][path]["put"]["responses"]["409"];
        let text = conflict["description"].as_str().unwrap_or_default();
        for code in ["gate_managed", "rollout_changed", "conflict"] {
            assert!(text.contains(code), "PUT {path}: its 409 names {code}: {conflict}");
        }
    }
}

fn references(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value.as_str()) {
                    ("$ref", Some(reference)) => found.push(reference.to_owned()),
                    _ => references(value, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_covers_every_route() {
    let server = Server::sqlite().await;
    let response = server.client.get(server.url("/openapi.json")).send().await.expect("request");
    assert_eq!(response.status(), 200, "open like the probes");
    let spec: serde_json::Value = response.json().await.expect("json");
    assert!(spec["openapi"].as_str().expect("version").starts_with("3.1"), "{}", spec["openapi"]);
    let paths = spec["paths"].as_object().expect("paths");
    let described: usize = paths.values().map(|operations| operations.as_object().expect("operations").len()).sum();
    assert_eq!(described, ROUTES.len(), "no route the router lacks");
    for (method, path) in ROUTES {
        let operation = &spec["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is described");
        assert_eq!(
            operation["security"][0]["bearer"],
            serde_json::json!([]),
            "{method} {path} names the bearer scheme"
        );
        assert!(operation["responses"]["401"].is_object(), "{method} {path} describes 401");
        // The route answers 401 without a token, as described.
        let anonymous = server
            .client
            .request(method.to_uppercase().parse().expect("method"), server.url(&path.replace(['{', '}'], "")))
            .send()
            .await
            .expect("request");
        assert_eq!(anonymous.status(), 401, "{method} {path}");
    }
    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    for name in
        ["ErrorBody", "TraceView", "OfferView", "EventView", "DeadLetter", "StatusView", "SwitchResult", "FeedView"]
    {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    let mut found = Vec::new();
    references(&spec, &mut found);
    for reference in found {
        let name = reference.strip_prefix("#/components/schemas/").expect("a schema reference");
        assert!(schemas.contains_key(name), "{reference} is defined");
    }
    server.stop().await;
}
