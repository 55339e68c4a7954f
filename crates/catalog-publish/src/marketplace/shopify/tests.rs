//! Shopify's answers, each documented one with the verdicts it gives.

use super::*;

const COST: &str = r#""extensions":{"cost":{"requestedQueryCost":10,"actualQueryCost":10,"throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":1990,"restoreRate":100.0}}}"#;
const GROUP: &str = r#"{"createdAt":"2026-05-01T10:00:00Z","reason":"correction","changes":[]}"#;
const BAD_ITEM: &str = r#"{"code":"INVALID_INVENTORY_ITEM","field":["input","quantities","1","inventoryItemId"],"message":"The specified inventory item could not be found."}"#;
const BAD_REASON: &str =
    r#"{"code":"INVALID_REASON","field":["input","reason"],"message":"The specified reason is invalid."}"#;
const KEY_IN_USE: &str = r#"{"code":"IDEMPOTENCY_CONCURRENT_REQUEST","field":null,"message":"This request is currently in progress, please try again."}"#;
const THROTTLED: &str = r#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}]}"#;
const SYNTAX: &str = r#"{"errors":[{"message":"Parse error on \"}\"","locations":[{"line":1,"column":9}]}]}"#;
const INTERNAL: &str = r#"{"errors":[{"message":"Internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#;
/// The app's scopes lack `write_inventory` (Shopify's access-scopes reference).
const NO_SCOPE: &str = r#"{"errors":[{"message":"Access denied for inventorySetQuantities field. Required access: `write_inventory` access scope.","locations":[{"line":2,"column":3}],"extensions":{"code":"ACCESS_DENIED","documentation":"https://shopify.dev/api/usage/access-scopes","requiredAccess":"`write_inventory` access scope."}}],"data":{"inventorySetQuantities":null}}"#;
const BAD_TOKEN: &str = r#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#;

fn result(group: &str, user_errors: &str) -> String {
    format!(
        r#"{{"data":{{"inventorySetQuantities":{{"inventoryAdjustmentGroup":{group},"userErrors":[{user_errors}]}}}},{COST}}}"#
    )
}

fn throttled(requested: u32, available: u32) -> String {
    let cost = format!(r#""requestedQueryCost":{requested},"actualQueryCost":null"#);
    let status = format!(r#""maximumAvailable":1000.0,"currentlyAvailable":{available},"restoreRate":50.0"#);
    THROTTLED.replace("}]}", &format!(r#"}}],"extensions":{{"cost":{{{cost},"throttleStatus":{{{status}}}}}}}}}"#))
}

/// The verdicts for items versions 1 and 2, in order; a dead letter keeps the whole answer.
fn render(reading: ShopifyReading, body: &str) -> String {
    let verdicts: Vec<String> = (reading.verdicts.into_iter().zip(1..))
        .map(|(verdict, version)| match verdict {
            Verdict::Answered(result) if result.version() == version => "Published".to_owned(),
            Verdict::DeadLetter { reason, error, body: Some(kept) } if kept == body => format!("{reason}({error})"),
            other => format!("{other:?}"),
        })
        .collect();
    let pause = reading.pause.map_or_else(String::new, |pause| format!(" pause {pause:?}"));
    match verdicts.as_slice() {
        [first, second] if first == second => format!("both {first}{pause}"),
        _ => format!("[{}]{pause}", verdicts.join(", ")),
    }
}

#[test]
fn every_documented_shopify_answer_has_its_verdicts() {
    let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
    let cases: [(&str, u16, String); 21] = [
        ("set", 200, result(GROUP, "")),
        ("set, bucket low", 200, result(GROUP, "").replace("1990", "4")),
        ("set, nothing changed", 200, result("null", "")),
        ("quantity 1 refused", 200, result("null", BAD_ITEM)),
        ("quantity 1 refused, rest set", 200, result(GROUP, BAD_ITEM)),
        ("reason refused", 200, result("null", BAD_REASON)),
        ("key in use", 200, result("null", KEY_IN_USE)),
        ("throttled", 200, throttled(752, 666)),
        ("throttled, far", 200, throttled(1_000_000, 0)),
        ("throttled, no cost", 200, THROTTLED.into()),
        ("syntax", 200, SYNTAX.into()),
        ("internal", 200, INTERNAL.into()),
        ("no scope, GraphQL", 200, NO_SCOPE.into()),
        ("not json", 200, "<html>".into()),
        ("bad token", 401, BAD_TOKEN.into()),
        ("no scope", 403, "".into()),
        ("shop frozen", 402, r#"{"errors":"Unavailable Shop"}"#.into()),
        ("shop locked", 423, r#"{"errors":"Locked"}"#.into()),
        ("too many, Retry-After: 2", 429, "".into()),
        ("timeout", 408, "".into()),
        ("down", 503, "busy".into()),
    ];
    let items = [item(1), item(2)];
    let rendered: Vec<String> = (cases.iter())
        .map(|(label, status, body)| {
            let retry_after = (*status == 429).then_some("2");
            let reading = classify_shopify(*status, retry_after, body, &[&items[0], &items[1]], now);
            format!("{label}: {status} -> {}", render(reading, body))
        })
        .collect();
    insta::assert_snapshot!(rendered.join("\n"), @r#"
    set: 200 -> both Published
    set, bucket low: 200 -> both Published pause 60ms
    set, nothing changed: 200 -> both Published
    quantity 1 refused: 200 -> [Retry { reason: "request_rejected", error: "not set: Shopify refused another quantity of the same request" }, rejected_user_error(INVALID_INVENTORY_ITEM: The specified inventory item could not be found.)]
    quantity 1 refused, rest set: 200 -> [Published, rejected_user_error(INVALID_INVENTORY_ITEM: The specified inventory item could not be found.)]
    reason refused: 200 -> both rejected_user_error(INVALID_REASON: The specified reason is invalid.)
    key in use: 200 -> both Retry { reason: "idempotency_key", error: "IDEMPOTENCY_CONCURRENT_REQUEST: This request is currently in progress, please try again." }
    throttled: 200 -> both Throttled { retry_after: 1.72s }
    throttled, far: 200 -> both Throttled { retry_after: 3600s }
    throttled, no cost: 200 -> both Throttled { retry_after: 1s }
    syntax: 200 -> both rejected_graphql(Parse error on "}")
    internal: 200 -> both Retry { reason: "server_error", error: "Internal error" }
    no scope, GraphQL: 200 -> both Blocked { reason: "access_denied", error: "Access denied for inventorySetQuantities field. Required access: `write_inventory` access scope.", retry_after: 30s }
    not json: 200 -> both Retry { reason: "malformed_answer", error: "no inventorySetQuantities result: <html>" }
    bad token: 401 -> both Blocked { reason: "unauthorized", error: "HTTP 401: [API] Invalid API key or access token (unrecognized login or wrong password)", retry_after: 30s }
    no scope: 403 -> both Blocked { reason: "forbidden", error: "HTTP 403", retry_after: 30s }
    shop frozen: 402 -> both Blocked { reason: "shop_frozen", error: "HTTP 402: Unavailable Shop", retry_after: 30s }
    shop locked: 423 -> both Blocked { reason: "shop_locked", error: "HTTP 423: Locked", retry_after: 30s }
    too many, Retry-After: 2: 429 -> both Throttled { retry_after: 2s }
    timeout: 408 -> both Retry { reason: "request_timeout", error: "HTTP 408: " }
    down: 503 -> both Retry { reason: "server_error", error: "HTTP 503: busy" }
    "#);
}

fn item(version: u64) -> CatalogItem {
    let sku = catalog_core::Sku::parse(&format!("A-{version}")).expect("valid");
    let key = catalog_core::ItemKey { tenant: catalog_core::TenantId::parse("canary").expect("valid"), sku };
    CatalogItem::new(key, 3, version).expect("valid item")
}
