//! Reading eBay's answers: which refusal asks for a new access token, and the verdict of each
//! SKU of a `bulkUpdatePriceQuantity` answer, which answers its inventory item and each of its
//! offers apart. Pure, so its tables are snapshot-tested.

use catalog_core::CatalogItem;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{ACCESS_DENIED_ERROR_ID, THROTTLED_WAIT};
use crate::marketplace::{common_verdict, rejected};
use crate::response::{parse_retry_after, truncate, Verdict};

/// One SKU of a `bulkUpdatePriceQuantity` request: its seller SKU, the published offers whose
/// `availableQuantity` it set, and the item version it carried.
#[derive(Debug, Clone, Copy)]
pub struct SentSku<'a> {
    pub listing: &'a str,
    pub offer_ids: &'a [String],
    pub item: &'a CatalogItem,
}

/// The answer's body: `BulkPriceQuantityResponse`. Entries are read as JSON values, so a
/// rejected one is kept whole as its dead letter's body.
#[derive(Deserialize)]
struct BulkPriceQuantityResponse {
    responses: Vec<Value>,
}

/// Whether eBay refused the access token, of a status and body: pure, so its table is tested.
pub(super) fn access_token_refused(status: u16, body: &str) -> bool {
    match status {
        401 => true,
        403 => error_ids(body).contains(&ACCESS_DENIED_ERROR_ID),
        _ => false,
    }
}

/// Classifies eBay's answer to a `bulkUpdatePriceQuantity` request that carried `sent` (in
/// request order), received at `now`: one verdict per SKU, in order, with the status that
/// decided it (an entry's `statusCode` when eBay answered one, else the HTTP status). A 200 or
/// 207 answers an entry per inventory item (`sku`, no `offerId`) and one per offer (`offerId`),
/// matched by those: eBay does not promise to answer in request order. A SKU is published only
/// when every entry naming it (its item's, its offers') succeeded and every offer sent has
/// its entry; otherwise its worst entry decides (a dead letter before a retry before a wait).
/// eBay answers an entry "for each offer/inventory item being updated", with the `offerId`
/// whenever an offer was: an offer sent without its entry is `no_answer`, retried (and its
/// ids read again), since a buyer sees the lower of the item's quantity and the offer's, and
/// an offer left where it was caps the listing. Whether eBay answers the item apart when
/// offers are sent with it is not confirmed, so the item's entry is required only of a SKU
/// sent without offers. An offer eBay no longer knows (404) is retried as `stale_offer`: the
/// channel reads the SKU's offers again before the retry.
pub fn classify_ebay(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    sent: &[SentSku<'_>],
    now: DateTime<Utc>,
) -> Vec<(u16, Verdict)> {
    let every = |verdict: Verdict| vec![(status, verdict); sent.len()];
    if let Some(verdict) = shared_verdict(status, retry_after, body, now) {
        return every(verdict);
    }
    if !(200..=299).contains(&status) {
        // The request as a whole was refused (a malformed request): it names no SKU.
        let error = describe_errors(body).unwrap_or_else(|| format!("HTTP {status}"));
        return every(rejected(status, error, body));
    }
    let Ok(answer) = serde_json::from_str::<BulkPriceQuantityResponse>(body) else {
        // Whether the quantities were set is unknown; setting them again is harmless.
        return every(Verdict::Retry {
            reason: "unreadable_answer",
            error: format!("HTTP {status} without a responses[] array: {}", truncate(body)),
        });
    };
    let mut entries: Vec<Option<Value>> = answer.responses.into_iter().map(Some).collect();
    sent.iter()
        .map(|sku| {
            let mut verdicts = Vec::new();
            if let Some(entry) = take_entry(&mut entries, sku.listing, None) {
                verdicts.push(classify_entry(&entry, status, sku.item, now));
            }
            let mut unanswered = Vec::new();
            for offer_id in sku.offer_ids {
                match take_entry(&mut entries, sku.listing, Some(offer_id)) {
                    Some(entry) => verdicts.push(classify_offer_entry(&entry, status, sku.item, now)),
                    None => unanswered.push(offer_id.as_str()),
                }
            }
            if verdicts.is_empty() {
                return (status, no_answer(format!("eBay answered nothing for SKU {}", sku.listing)));
            }
            if !unanswered.is_empty() {
                // The entries eBay did answer may say worse (a dead letter): they decide then.
                let error = format!("eBay answered nothing for offer {} of SKU {}", unanswered.join(", "), sku.listing);
                verdicts.push((status, no_answer(error)));
            }
            worst(verdicts)
        })
        .collect()
}

/// Takes the entry of `listing`'s inventory item (`offer_id` none: an entry without one) or of
/// one of its offers.
fn take_entry(entries: &mut [Option<Value>], listing: &str, offer_id: Option<&str>) -> Option<Value> {
    let position = entries.iter().position(|entry| {
        let Some(entry) = entry else { return false };
        let entry_offer = entry.get("offerId").and_then(Value::as_str);
        match offer_id {
            // An offer's entry names its offer; its SKU, when given, must be the one sent.
            Some(offer_id) => {
                entry_offer == Some(offer_id)
                    && entry.get("sku").and_then(Value::as_str).is_none_or(|sku| sku == listing)
            }
            None => entry_offer.is_none() && entry.get("sku").and_then(Value::as_str) == Some(listing),
        }
    })?;
    entries.get_mut(position).and_then(Option::take)
}

fn no_answer(error: String) -> Verdict {
    Verdict::Retry { reason: "no_answer", error }
}

/// The first of the worst verdicts: a dead letter, else refused credentials, else a retry,
/// else a wait, else the first (the inventory item's) success.
fn worst(verdicts: Vec<(u16, Verdict)>) -> (u16, Verdict) {
    let severity = |verdict: &Verdict| match verdict {
        Verdict::Answered(_) => 0,
        Verdict::Throttled { .. } | Verdict::Unavailable { .. } => 1,
        Verdict::Retry { .. } => 2,
        Verdict::Blocked { .. } => 3,
        Verdict::DeadLetter { .. } => 4,
    };
    let mut verdicts = verdicts.into_iter();
    let first = verdicts.next().expect("a SKU has its inventory item's verdict");
    verdicts.fold(first, |worst, next| if severity(&next.1) > severity(&worst.1) { next } else { worst })
}

/// One offer's entry: as an inventory item's, but an offer eBay does not know (404) is a stale
/// id, retried once the SKU's offers are read again.
fn classify_offer_entry(entry: &Value, http_status: u16, item: &CatalogItem, now: DateTime<Utc>) -> (u16, Verdict) {
    if entry.get("statusCode").and_then(Value::as_u64) == Some(404) {
        let error = describe_error_list(entry.get("errors")).unwrap_or_else(|| "statusCode 404".to_owned());
        return (404, Verdict::Retry { reason: "stale_offer", error: format!("offer not found: {error}") });
    }
    classify_entry(entry, http_status, item, now)
}

/// One SKU's entry of a 200 or 207 (`http_status`): its `statusCode` means what an HTTP
/// status would.
fn classify_entry(entry: &Value, http_status: u16, item: &CatalogItem, now: DateTime<Utc>) -> (u16, Verdict) {
    let text = entry.to_string();
    let Some(status) = entry.get("statusCode").and_then(Value::as_u64).and_then(|code| u16::try_from(code).ok()) else {
        let error = format!("an entry without a statusCode: {}", truncate(&text));
        return (http_status, Verdict::Retry { reason: "unreadable_answer", error });
    };
    if let Some(verdict) = shared_verdict(status, None, &text, now) {
        // One SKU refused in an answer the token was accepted for is that SKU's matter, not
        // the channel's credentials: retried in its budget, never holding the channel.
        let verdict = match verdict {
            Verdict::Blocked { reason, error, .. } => Verdict::Retry { reason, error },
            verdict => verdict,
        };
        return (status, verdict);
    }
    if (200..=299).contains(&status) {
        return (status, Verdict::Answered(item.accepted()));
    }
    let error = describe_error_list(entry.get("errors")).unwrap_or_else(|| format!("statusCode {status}"));
    (status, rejected(status, error, &text))
}

/// What a status means alike for the request and for one SKU: 429 wait, 401 or 403 errorId
/// 1100 (still, after a new token) an operator's credential problem that heals once fixed,
/// 408 and 5xx retry.
pub(super) fn shared_verdict(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now: DateTime<Utc>,
) -> Option<Verdict> {
    let access_denied = || error_ids(body).contains(&ACCESS_DENIED_ERROR_ID);
    match status {
        429 => Some(Verdict::Throttled {
            retry_after: retry_after.map_or(THROTTLED_WAIT, |value| parse_retry_after(Some(value), now)),
        }),
        401 => Some(unauthorized(status, body)),
        403 if access_denied() => Some(unauthorized(status, body)),
        _ => common_verdict(status, retry_after, body, now),
    }
}

fn unauthorized(status: u16, body: &str) -> Verdict {
    let detail = describe_errors(body).unwrap_or_else(|| truncate(body).to_owned());
    Verdict::Blocked {
        reason: "unauthorized",
        error: format!("HTTP {status}: {detail}"),
        retry_after: crate::marketplace::BLOCKED_FOR,
    }
}

/// The `errorId`s of a body's `errors[]`.
fn error_ids(body: &str) -> Vec<u64> {
    let body = serde_json::from_str::<Value>(body).ok();
    error_id_list(body.as_ref().and_then(|body| body.get("errors")))
}

/// The `errorId`s of an `errors[]` list.
pub(super) fn error_id_list(errors: Option<&Value>) -> Vec<u64> {
    let errors = errors.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    errors.iter().filter_map(|error| error.get("errorId").and_then(Value::as_u64)).collect()
}

/// `errorId 25709: Invalid value for …` for each of a body's `errors[]`.
pub(super) fn describe_errors(body: &str) -> Option<String> {
    let body = serde_json::from_str::<Value>(body).ok()?;
    describe_error_list(body.get("errors"))
}

pub(super) fn describe_error_list(errors: Option<&Value>) -> Option<String> {
    let described: Vec<String> = errors?
        .as_array()?
        .iter()
        .map(|error| {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("no message");
            match error.get("errorId").and_then(Value::as_u64) {
                Some(error_id) => format!("errorId {error_id}: {message}"),
                None => message.to_owned(),
            }
        })
        .collect();
    (!described.is_empty()).then(|| described.join("; "))
}

#[cfg(test)]
mod tests {
    use catalog_core::{ItemKey, Sku, TenantId};

    use super::*;

    fn item(sku: &str) -> CatalogItem {
        let key = ItemKey { tenant: TenantId::parse("canary").expect("valid"), sku: Sku::parse(sku).expect("valid") };
        CatalogItem::new(key, 12, 3).expect("valid item")
    }

    fn render(verdict: &Verdict) -> String {
        match verdict {
            Verdict::Answered(result) if result.accepted() => "Published".to_owned(),
            other => format!("{other:?}"),
        }
    }

    /// 401 and 403 errorId 1100 ask for a new token; no other answer does.
    #[test]
    fn only_a_401_or_a_403_access_denied_asks_for_a_new_access_token() {
        let cases = [
            (
                401,
                r#"{"errors":[{"errorId":1001,"domain":"OAuth","category":"REQUEST","message":"Invalid access token"}]}"#,
            ),
            (401, ""),
            (403, r#"{"errors":[{"errorId":1100,"domain":"ACCESS","category":"REQUEST","message":"Access denied"}]}"#),
            (403, r#"{"errors":[{"errorId":1234,"message":"Forbidden"},{"errorId":1100,"message":"Access denied"}]}"#),
            (403, r#"{"errors":[{"errorId":1234,"message":"Forbidden"}]}"#),
            (403, "<html>Forbidden</html>"),
            (400, r#"{"errors":[{"errorId":1100,"message":"Access denied"}]}"#),
            (200, r#"{"responses":[]}"#),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, body)| format!("{status} {body} -> {}", access_token_refused(*status, body)))
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        401 {"errors":[{"errorId":1001,"domain":"OAuth","category":"REQUEST","message":"Invalid access token"}]} -> true
        401  -> true
        403 {"errors":[{"errorId":1100,"domain":"ACCESS","category":"REQUEST","message":"Access denied"}]} -> true
        403 {"errors":[{"errorId":1234,"message":"Forbidden"},{"errorId":1100,"message":"Access denied"}]} -> true
        403 {"errors":[{"errorId":1234,"message":"Forbidden"}]} -> false
        403 <html>Forbidden</html> -> false
        400 {"errors":[{"errorId":1100,"message":"Access denied"}]} -> false
        200 {"responses":[]} -> false
        "#);
    }

    #[test]
    fn every_documented_ebay_answer_has_its_verdicts() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let (first, second) = (item("SKU-1"), item("SKU-2"));
        let offer_ids = ["5678901234".to_owned()];
        let sent = [
            SentSku { listing: "SKU-1", offer_ids: &[], item: &first },
            SentSku { listing: "SKU-2", offer_ids: &offer_ids, item: &second },
        ];
        let invalid = r#"{"errorId":25709,"domain":"API_INVENTORY","category":"REQUEST","message":"Invalid value for shipToLocationAvailability.quantity."}"#;
        let cases = [
            (200, None, r#"{"responses":[{"statusCode":200,"sku":"SKU-1"},{"statusCode":200,"sku":"SKU-2","offerId":"5678901234"},{"statusCode":200,"sku":"SKU-2"}]}"#.to_owned()),
            (207, None, format!(r#"{{"responses":[{{"statusCode":200,"sku":"SKU-2","offerId":"5678901234"}},{{"statusCode":400,"sku":"SKU-2","errors":[{invalid}]}},{{"statusCode":200,"sku":"SKU-1"}}]}}"#)),
            (200, None, r#"{"responses":[{"statusCode":500,"sku":"SKU-1","errors":[{"errorId":25001,"message":"A system error has occurred."}]}]}"#.to_owned()),
            (200, None, r#"{"responses":[{"sku":"SKU-1"},{"statusCode":200,"sku":"SKU-2","warnings":[{"errorId":25401}]},{"statusCode":200,"sku":"SKU-2","offerId":"5678901234"}]}"#.to_owned()),
            (207, None, r#"{"responses":[{"statusCode":200,"sku":"SKU-1"},{"statusCode":200,"sku":"SKU-2"},{"statusCode":404,"sku":"SKU-2","offerId":"5678901234","errors":[{"errorId":25713,"message":"This Offer is not available."}]}]}"#.to_owned()),
            (207, None, r#"{"responses":[{"statusCode":200,"sku":"SKU-1"},{"statusCode":500,"sku":"SKU-2","errors":[{"errorId":25001,"message":"A system error has occurred."}]},{"statusCode":400,"sku":"SKU-2","offerId":"5678901234","errors":[{"errorId":25006,"message":"Invalid value for availableQuantity."}]}]}"#.to_owned()),
            // SKU-2's item answered but not the offer it set (an entry for another offer
            // instead): the offer may still cap the listing, so SKU-2 is retried, not published.
            (200, None, r#"{"responses":[{"statusCode":200,"sku":"SKU-1"},{"statusCode":200,"sku":"SKU-2"},{"statusCode":200,"sku":"SKU-2","offerId":"9999"}]}"#.to_owned()),
            (200, None, r#"{"responses":[{"statusCode":200,"sku":"SKU-1"},{"statusCode":200,"sku":"SKU-2","offerId":"5678901234"}]}"#.to_owned()),
            (200, None, "<html>".to_owned()),
            // One SKU's entry refused as access denied, in an answer the token was accepted
            // for: that SKU's retry, not the channel's credentials.
            (207, None, r#"{"responses":[{"statusCode":200,"sku":"SKU-1"},{"statusCode":403,"sku":"SKU-2","errors":[{"errorId":1100,"message":"Access denied"}]}]}"#.to_owned()),
            (400, None, format!(r#"{{"errors":[{invalid}]}}"#)),
            (401, None, r#"{"errors":[{"errorId":1001,"domain":"OAuth","category":"REQUEST","message":"Invalid access token"}]}"#.to_owned()),
            (403, None, r#"{"errors":[{"errorId":1100,"domain":"ACCESS","category":"REQUEST","message":"Access denied"}]}"#.to_owned()),
            (403, None, r#"{"errors":[{"errorId":1234,"message":"Forbidden"}]}"#.to_owned()),
            (429, None, r#"{"errors":[{"errorId":2001,"domain":"ACCESS","category":"REQUEST","message":"Too many requests."}]}"#.to_owned()),
            (429, Some("7"), String::new()),
            (429, Some("Mon, 01 Jun 2026 12:00:30 GMT"), String::new()),
            (429, Some("999999"), String::new()),
            (408, None, String::new()),
            (500, None, r#"{"errors":[{"errorId":25001,"message":"A system error has occurred."}]}"#.to_owned()),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, retry_after, body)| {
                let header = retry_after.map_or_else(String::new, |value| format!(" Retry-After: {value:?}"));
                let verdicts = classify_ebay(*status, *retry_after, body, &sent, now);
                let verdicts: Vec<String> = verdicts
                    .iter()
                    .zip(sent)
                    .map(|((status, verdict), sku)| format!("  {} {status} {}", sku.listing, render(verdict)))
                    .collect();
                format!("{status}{header}\n{}", verdicts.join("\n"))
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200
          SKU-1 200 Published
          SKU-2 200 Published
        207
          SKU-1 200 Published
          SKU-2 400 DeadLetter { reason: "rejected_400", error: "errorId 25709: Invalid value for shipToLocationAvailability.quantity.", body: Some("{\"errors\":[{\"category\":\"REQUEST\",\"domain\":\"API_INVENTORY\",\"errorId\":25709,\"message\":\"Invalid value for shipToLocationAvailability.quantity.\"}],\"sku\":\"SKU-2\",\"statusCode\":400}") }
        200
          SKU-1 500 Retry { reason: "server_error", error: "HTTP 500: {\"errors\":[{\"errorId\":25001,\"message\":\"A system error has occurred.\"}],\"sku\":\"SKU-1\",\"statusCode\":500}" }
          SKU-2 200 Retry { reason: "no_answer", error: "eBay answered nothing for SKU SKU-2" }
        200
          SKU-1 200 Retry { reason: "unreadable_answer", error: "an entry without a statusCode: {\"sku\":\"SKU-1\"}" }
          SKU-2 200 Published
        207
          SKU-1 200 Published
          SKU-2 404 Retry { reason: "stale_offer", error: "offer not found: errorId 25713: This Offer is not available." }
        207
          SKU-1 200 Published
          SKU-2 400 DeadLetter { reason: "rejected_400", error: "errorId 25006: Invalid value for availableQuantity.", body: Some("{\"errors\":[{\"errorId\":25006,\"message\":\"Invalid value for availableQuantity.\"}],\"offerId\":\"5678901234\",\"sku\":\"SKU-2\",\"statusCode\":400}") }
        200
          SKU-1 200 Published
          SKU-2 200 Retry { reason: "no_answer", error: "eBay answered nothing for offer 5678901234 of SKU SKU-2" }
        200
          SKU-1 200 Published
          SKU-2 200 Published
        200
          SKU-1 200 Retry { reason: "unreadable_answer", error: "HTTP 200 without a responses[] array: <html>" }
          SKU-2 200 Retry { reason: "unreadable_answer", error: "HTTP 200 without a responses[] array: <html>" }
        207
          SKU-1 200 Published
          SKU-2 403 Retry { reason: "unauthorized", error: "HTTP 403: errorId 1100: Access denied" }
        400
          SKU-1 400 DeadLetter { reason: "rejected_400", error: "errorId 25709: Invalid value for shipToLocationAvailability.quantity.", body: Some("{\"errors\":[{\"errorId\":25709,\"domain\":\"API_INVENTORY\",\"category\":\"REQUEST\",\"message\":\"Invalid value for shipToLocationAvailability.quantity.\"}]}") }
          SKU-2 400 DeadLetter { reason: "rejected_400", error: "errorId 25709: Invalid value for shipToLocationAvailability.quantity.", body: Some("{\"errors\":[{\"errorId\":25709,\"domain\":\"API_INVENTORY\",\"category\":\"REQUEST\",\"message\":\"Invalid value for shipToLocationAvailability.quantity.\"}]}") }
        401
          SKU-1 401 Blocked { reason: "unauthorized", error: "HTTP 401: errorId 1001: Invalid access token", retry_after: 30s }
          SKU-2 401 Blocked { reason: "unauthorized", error: "HTTP 401: errorId 1001: Invalid access token", retry_after: 30s }
        403
          SKU-1 403 Blocked { reason: "unauthorized", error: "HTTP 403: errorId 1100: Access denied", retry_after: 30s }
          SKU-2 403 Blocked { reason: "unauthorized", error: "HTTP 403: errorId 1100: Access denied", retry_after: 30s }
        403
          SKU-1 403 DeadLetter { reason: "rejected_403", error: "errorId 1234: Forbidden", body: Some("{\"errors\":[{\"errorId\":1234,\"message\":\"Forbidden\"}]}") }
          SKU-2 403 DeadLetter { reason: "rejected_403", error: "errorId 1234: Forbidden", body: Some("{\"errors\":[{\"errorId\":1234,\"message\":\"Forbidden\"}]}") }
        429
          SKU-1 429 Throttled { retry_after: 60s }
          SKU-2 429 Throttled { retry_after: 60s }
        429 Retry-After: "7"
          SKU-1 429 Throttled { retry_after: 7s }
          SKU-2 429 Throttled { retry_after: 7s }
        429 Retry-After: "Mon, 01 Jun 2026 12:00:30 GMT"
          SKU-1 429 Throttled { retry_after: 30s }
          SKU-2 429 Throttled { retry_after: 30s }
        429 Retry-After: "999999"
          SKU-1 429 Throttled { retry_after: 3600s }
          SKU-2 429 Throttled { retry_after: 3600s }
        408
          SKU-1 408 Retry { reason: "request_timeout", error: "HTTP 408: " }
          SKU-2 408 Retry { reason: "request_timeout", error: "HTTP 408: " }
        500
          SKU-1 500 Retry { reason: "server_error", error: "HTTP 500: {\"errors\":[{\"errorId\":25001,\"message\":\"A system error has occurred.\"}]}" }
          SKU-2 500 Retry { reason: "server_error", error: "HTTP 500: {\"errors\":[{\"errorId\":25001,\"message\":\"A system error has occurred.\"}]}" }
        "#);
    }
}
