//! Reading Mercado Libre's answers to a write: what each status means, which 403 refuses the
//! application or the seller as a whole (the channel is held) and which refuses one listing
//! (its dead letter), and whether an item's 200 shows the quantity it was sent. Pure, so its
//! tables are snapshot-tested.

use catalog_core::CatalogItem;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::marketplace::{common_verdict, rejected, BLOCKED_FOR};
use crate::response::{truncate, Verdict};

/// Mercado Libre's error envelope: `{"message", "error", "status", "cause": [...]}`, with the
/// `code` its access refusals carry (`"FORBIDDEN"`).
#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    error: Option<String>,
    code: Option<String>,
    #[serde(default)]
    cause: Vec<Value>,
}

/// Classifies Mercado Libre's answer to a write for `item` (an item, a variation, a user
/// product's stock), received at `now`: 2xx accepted; 429 (`local_rate_limited`) waits
/// `Retry-After`, or a second (Mercado Libre documents no throttling header); 401 still, after
/// a new token, and a 403 that refuses the caller as a whole ([`forbidden_to_the_caller`])
/// are an operator's credential problem that heals once fixed, holding the channel; 408 and
/// 5xx retry; any other 4xx (`validation_error`, `item.available_quantity.not_modifiable` on
/// Full listings, an unknown item, another seller's item) is dead-lettered with Mercado
/// Libre's message and body.
pub fn classify_mercadolibre(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    item: &CatalogItem,
    now: DateTime<Utc>,
) -> Verdict {
    match status {
        200..=299 => Verdict::Answered(item.accepted()),
        // A fresh token refused too: the grant was revoked (a password changed, the app's
        // authorization removed), and the channel waits for the seller to authorize again.
        401 => Verdict::Blocked {
            reason: "unauthorized",
            error: format!("HTTP 401: {}", describe(status, body)),
            retry_after: BLOCKED_FOR,
        },
        // Every write of the channel would be refused alike: dead-lettering each would spend
        // the whole catalog's attempts on it, so the channel waits for an operator, as
        // Shopify's and Walmart's 403s do.
        403 if forbidden_to_the_caller(body) => Verdict::Blocked {
            reason: "forbidden",
            error: format!("HTTP 403: {}", describe(status, body)),
            retry_after: BLOCKED_FOR,
        },
        _ => common_verdict(status, retry_after, body, now)
            .unwrap_or_else(|| rejected(status, describe(status, body), body)),
    }
}

/// Classifies Mercado Libre's answer to `PUT /items/{item_id}` (an item written whole, not a
/// variation nor a user product's stock) that sent `sent_quantity`, as
/// [`classify_mercadolibre`] does, except a 2xx whose body shows another `available_quantity`:
/// on an account with multi-origin stock Mercado Libre ignores `available_quantity` on
/// `/items` (its multi-origin FAQ), answers 200 all the same, and the listing keeps its old
/// quantity. One answer does not prove that, though: a sale placed during the write changes
/// the quantity shown, and Mercado Libre says a change may take time to show. So it is
/// retried (`quantity_not_applied`, with the listing kind to use instead): a passing
/// difference is healed by the next send, and a listing that ignores the quantity every
/// time is dead-lettered as `retries_exhausted` once the channel's `max_attempts` are spent,
/// this error on its last attempt. A body without `available_quantity` (an empty `{}`, which
/// Mercado Libre also answers) is accepted.
pub fn classify_mercadolibre_item(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    sent_quantity: i64,
    item: &CatalogItem,
    now: DateTime<Utc>,
) -> Verdict {
    let shown = serde_json::from_str::<Value>(body).ok().and_then(|answer| answer.get("available_quantity")?.as_i64());
    match shown {
        Some(shown) if (200..=299).contains(&status) && shown != sent_quantity => Verdict::Retry {
            reason: "quantity_not_applied",
            error: format!(
                "Mercado Libre answered HTTP {status} with available_quantity {shown} for {sent_quantity} sent: an account \
                 with multi-origin stock ignores available_quantity on /items; list the item's stock as a user product \
                 location instead (up:{{user_product_id}}@{{store_id}}/{{network_node_id}} for a warehouse, \
                 up:{{user_product_id}} for the selling address; docs/channels/mercadolibre.md section 7)"
            ),
        },
        _ => classify_mercadolibre(status, retry_after, body, item, now),
    }
}

/// Whether a 403 refuses the caller whatever it writes, rather than this one listing.
/// Mercado Libre's 403 reference (developers.mercadolibre.com.ar/error-403) gives two bodies,
/// both `"code": "FORBIDDEN"`: `"error": "Invalid scopes"`, and `"error": "access_denied"`
/// ("access to the requested resource is forbidden"); the causes it lists are the
/// application's or the seller's (an application blocked or disabled, scopes missing, a user
/// inactive or suspended, an IP not allowed, data validation incomplete). A refusal naming
/// scopes or policies anywhere (PolicyAgent's "At least one policy returned UNAUTHORIZED",
/// reported by integrators) is one too. Anything else stays the listing's: another seller's
/// item is answered "caller.id does not match item owner" (`"error": "forbidden"`). Should it
/// be answered `access_denied` (the reference also names "a token not the data owner's"),
/// that one listing holds the channel, its error shown, until the listing map is fixed.
fn forbidden_to_the_caller(body: &str) -> bool {
    let Ok(answer) = serde_json::from_str::<ErrorBody>(body) else {
        return false;
    };
    answer.code.as_deref().is_some_and(|code| code.eq_ignore_ascii_case("forbidden"))
        || answer.error.as_deref() == Some("access_denied")
        || names_scopes_or_policies(&answer)
}

/// Whether an error envelope's `error`, `message`, `code` or any `cause[]` (text, or its
/// `code` and `message`) names scopes or policies.
fn names_scopes_or_policies(answer: &ErrorBody) -> bool {
    let causes = answer.cause.iter().flat_map(|cause| match cause {
        Value::String(text) => vec![text.as_str()],
        cause => ["code", "message"].iter().filter_map(|name| cause.get(name).and_then(Value::as_str)).collect(),
    });
    let mut texts =
        [&answer.error, &answer.message, &answer.code].into_iter().flatten().map(String::as_str).chain(causes);
    texts.any(|text| {
        let text = text.to_ascii_lowercase();
        text.contains("scope") || text.contains("polic")
    })
}

/// `message (error): cause code: cause message; …` from Mercado Libre's error envelope, or
/// the body itself when it is not one.
fn describe(status: u16, body: &str) -> String {
    let Ok(answer) = serde_json::from_str::<ErrorBody>(body) else {
        return format!("HTTP {status}: {}", truncate(body));
    };
    let mut described = match (answer.message, answer.error) {
        (Some(message), Some(error)) => format!("{message} ({error})"),
        (Some(text), None) | (None, Some(text)) => text,
        (None, None) => format!("HTTP {status}"),
    };
    for cause in &answer.cause {
        let text = |name: &str| cause.get(name).and_then(Value::as_str);
        match (cause.as_str(), text("code"), text("message")) {
            (Some(cause), _, _) => described.push_str(&format!("; {cause}")),
            (None, Some(code), Some(message)) => described.push_str(&format!("; {code}: {message}")),
            (None, Some(text), None) | (None, None, Some(text)) => described.push_str(&format!("; {text}")),
            (None, None, None) => {}
        }
    }
    described
}

#[cfg(test)]
mod tests {
    use catalog_core::{ItemKey, Sku, TenantId};

    use super::*;

    fn item() -> CatalogItem {
        let key = ItemKey { tenant: TenantId::parse("canary").expect("valid"), sku: Sku::parse("A-1").expect("valid") };
        CatalogItem::new(key, 12, 3).expect("valid item")
    }

    fn render(verdict: Verdict, item: &CatalogItem) -> String {
        match verdict {
            Verdict::Answered(result) if result == item.accepted() => "Published".to_owned(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn every_documented_mercadolibre_answer_has_its_verdict() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let item = item();
        let cases = [
            (200, None, r#"{"id":"MLA123456789","available_quantity":7,"status":"active"}"#),
            (
                400,
                None,
                r#"{"message":"Validation error","error":"validation_error","status":400,"cause":[{"code":"item.available_quantity.not_modifiable","type":"error","message":"available_quantity is not modifiable for this item"}]}"#,
            ),
            (
                400,
                None,
                r#"{"message":"body invalid","error":"bad_request","status":400,"cause":["available_quantity must be a number"]}"#,
            ),
            (
                403,
                None,
                r#"{"message":"caller.id does not match item owner","error":"forbidden","status":403,"cause":[]}"#,
            ),
            (404, None, r#"{"message":"Item with id MLA1 not found","error":"not_found","status":404,"cause":[]}"#),
            (404, None, "<html>not found</html>"),
            (401, None, r#"{"message":"invalid access token","error":"not_found","status":401,"cause":[]}"#),
            (
                401,
                None,
                r#"{"message":"user not authorized","error":"unauthorized_request_error","status":401,"cause":[]}"#,
            ),
            (429, None, r#"{"error":"local_rate_limited","message":"Too many requests","status":429,"cause":[]}"#),
            (429, Some("3"), r#"{"error":"too_many_requests","message":"Too many requests","status":429}"#),
            (429, Some("Mon, 01 Jun 2026 12:00:30 GMT"), ""),
            (408, None, ""),
            (500, None, r#"{"message":"Internal server error","error":"internal_error","status":500,"cause":[]}"#),
            (503, None, "busy"),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, retry_after, body)| {
                let header = retry_after.map_or_else(String::new, |value| format!(" Retry-After: {value:?}"));
                let verdict = render(classify_mercadolibre(*status, *retry_after, body, &item, now), &item);
                format!("{status}{header} -> {verdict}")
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200 -> Published
        400 -> DeadLetter { reason: "rejected_400", error: "Validation error (validation_error); item.available_quantity.not_modifiable: available_quantity is not modifiable for this item", body: Some("{\"message\":\"Validation error\",\"error\":\"validation_error\",\"status\":400,\"cause\":[{\"code\":\"item.available_quantity.not_modifiable\",\"type\":\"error\",\"message\":\"available_quantity is not modifiable for this item\"}]}") }
        400 -> DeadLetter { reason: "rejected_400", error: "body invalid (bad_request); available_quantity must be a number", body: Some("{\"message\":\"body invalid\",\"error\":\"bad_request\",\"status\":400,\"cause\":[\"available_quantity must be a number\"]}") }
        403 -> DeadLetter { reason: "rejected_403", error: "caller.id does not match item owner (forbidden)", body: Some("{\"message\":\"caller.id does not match item owner\",\"error\":\"forbidden\",\"status\":403,\"cause\":[]}") }
        404 -> DeadLetter { reason: "rejected_404", error: "Item with id MLA1 not found (not_found)", body: Some("{\"message\":\"Item with id MLA1 not found\",\"error\":\"not_found\",\"status\":404,\"cause\":[]}") }
        404 -> DeadLetter { reason: "rejected_404", error: "HTTP 404: <html>not found</html>", body: Some("<html>not found</html>") }
        401 -> Blocked { reason: "unauthorized", error: "HTTP 401: invalid access token (not_found)", retry_after: 30s }
        401 -> Blocked { reason: "unauthorized", error: "HTTP 401: user not authorized (unauthorized_request_error)", retry_after: 30s }
        429 -> Throttled { retry_after: 1s }
        429 Retry-After: "3" -> Throttled { retry_after: 3s }
        429 Retry-After: "Mon, 01 Jun 2026 12:00:30 GMT" -> Throttled { retry_after: 30s }
        408 -> Retry { reason: "request_timeout", error: "HTTP 408: " }
        500 -> Retry { reason: "server_error", error: "HTTP 500: {\"message\":\"Internal server error\",\"error\":\"internal_error\",\"status\":500,\"cause\":[]}" }
        503 -> Retry { reason: "server_error", error: "HTTP 503: busy" }
        "#);
    }

    /// Before, every 403 was the listing's dead letter: an application whose scope was
    /// removed, or a seller restricted, dead-lettered the whole catalog one item at a time,
    /// where Shopify's and Walmart's 403s hold the channel for an operator.
    #[test]
    fn a_403_refusing_the_caller_holds_the_channel_and_one_refusing_a_listing_dead_letters_it() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let item = item();
        let cases = [
            // Mercado Libre's 403 reference.
            r#"{"status":403,"error":"Invalid scopes","code":"FORBIDDEN"}"#,
            r#"{"status":403,"error":"access_denied","message":"access to the requested resource is forbidden","code":"FORBIDDEN"}"#,
            // PolicyAgent, as integrators report it.
            r#"{"code":"PA_UNAUTHORIZED_RESULT_FROM_POLICIES","blocked_by":"PolicyAgent","status":403,"message":"At least one policy returned UNAUTHORIZED."}"#,
            r#"{"message":"forbidden","error":"forbidden","status":403,"cause":[{"code":"unauthorized_scopes","message":"the app lacks the write scope"}]}"#,
            // One listing's: another seller's item, or a refusal that names no cause.
            r#"{"message":"caller.id does not match item owner","error":"forbidden","status":403,"cause":[]}"#,
            r#"{"message":"forbidden","error":"forbidden","status":403,"cause":[]}"#,
            "<html>403 Forbidden</html>",
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|body| format!("{body}\n  -> {}", render(classify_mercadolibre(403, None, body, &item, now), &item)))
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        {"status":403,"error":"Invalid scopes","code":"FORBIDDEN"}
          -> Blocked { reason: "forbidden", error: "HTTP 403: Invalid scopes", retry_after: 30s }
        {"status":403,"error":"access_denied","message":"access to the requested resource is forbidden","code":"FORBIDDEN"}
          -> Blocked { reason: "forbidden", error: "HTTP 403: access to the requested resource is forbidden (access_denied)", retry_after: 30s }
        {"code":"PA_UNAUTHORIZED_RESULT_FROM_POLICIES","blocked_by":"PolicyAgent","status":403,"message":"At least one policy returned UNAUTHORIZED."}
          -> Blocked { reason: "forbidden", error: "HTTP 403: At least one policy returned UNAUTHORIZED.", retry_after: 30s }
        {"message":"forbidden","error":"forbidden","status":403,"cause":[{"code":"unauthorized_scopes","message":"the app lacks the write scope"}]}
          -> Blocked { reason: "forbidden", error: "HTTP 403: forbidden (forbidden); unauthorized_scopes: the app lacks the write scope", retry_after: 30s }
        {"message":"caller.id does not match item owner","error":"forbidden","status":403,"cause":[]}
          -> DeadLetter { reason: "rejected_403", error: "caller.id does not match item owner (forbidden)", body: Some("{\"message\":\"caller.id does not match item owner\",\"error\":\"forbidden\",\"status\":403,\"cause\":[]}") }
        {"message":"forbidden","error":"forbidden","status":403,"cause":[]}
          -> DeadLetter { reason: "rejected_403", error: "forbidden (forbidden)", body: Some("{\"message\":\"forbidden\",\"error\":\"forbidden\",\"status\":403,\"cause\":[]}") }
        <html>403 Forbidden</html>
          -> DeadLetter { reason: "rejected_403", error: "HTTP 403: <html>403 Forbidden</html>", body: Some("<html>403 Forbidden</html>") }
        "#);
    }

    /// Before, any 200 to `PUT /items/{id}` was published: on an account with multi-origin
    /// stock Mercado Libre ignores `available_quantity` there and answers 200 with the old
    /// quantity, and the listing stayed where it was while the item showed as published. Then
    /// such a 200 was dead-lettered at once, where a sale during the write, or a change not
    /// shown yet, makes one answer show another quantity too: the next send heals that.
    #[test]
    fn an_item_s_200_showing_another_quantity_is_retried_as_not_applied() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let item = item();
        let cases = [
            (200, r#"{"id":"MLA123456789","available_quantity":7,"status":"active"}"#),
            (200, r#"{"id":"MLA123456789","available_quantity":40,"status":"active"}"#),
            (200, "{}"),
            (200, r#"{"id":"MLA123456789","available_quantity":null}"#),
            (200, ""),
            (
                400,
                r#"{"message":"Validation error","error":"validation_error","status":400,"cause":[{"code":"item.available_quantity.not_modifiable","message":"available_quantity is not modifiable for this item"}],"available_quantity":40}"#,
            ),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, body)| {
                let verdict = classify_mercadolibre_item(*status, None, body, 7, &item, now);
                let shown = if body.is_empty() { "(no body)" } else { body };
                format!("{status} {shown}\n  -> {}", render(verdict, &item))
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200 {"id":"MLA123456789","available_quantity":7,"status":"active"}
          -> Published
        200 {"id":"MLA123456789","available_quantity":40,"status":"active"}
          -> Retry { reason: "quantity_not_applied", error: "Mercado Libre answered HTTP 200 with available_quantity 40 for 7 sent: an account with multi-origin stock ignores available_quantity on /items; list the item's stock as a user product location instead (up:{user_product_id}@{store_id}/{network_node_id} for a warehouse, up:{user_product_id} for the selling address; docs/channels/mercadolibre.md section 7)" }
        200 {}
          -> Published
        200 {"id":"MLA123456789","available_quantity":null}
          -> Published
        200 (no body)
          -> Published
        400 {"message":"Validation error","error":"validation_error","status":400,"cause":[{"code":"item.available_quantity.not_modifiable","message":"available_quantity is not modifiable for this item"}],"available_quantity":40}
          -> DeadLetter { reason: "rejected_400", error: "Validation error (validation_error); item.available_quantity.not_modifiable: available_quantity is not modifiable for this item", body: Some("{\"message\":\"Validation error\",\"error\":\"validation_error\",\"status\":400,\"cause\":[{\"code\":\"item.available_quantity.not_modifiable\",\"message\":\"available_quantity is not modifiable for this item\"}],\"available_quantity\":40}") }
        "#);
    }
}
