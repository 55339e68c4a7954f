//! Reading eBay back: one `bulkGetInventoryItem` request reads up to
//! [`MAX_READS_PER_REQUEST`] seller SKUs' inventory items, answered SKU by SKU, and one
//! `getOffers` per SKU whose item offers any reads its published offers. A buyer sees the
//! lower of the item's `availability.shipToLocationAvailability.quantity` and each published
//! offer's `availableQuantity`, so that is what the SKU shows: an offer changed on eBay's
//! side is drift too. A SKU eBay does not know (its entry's `statusCode` 404) shows nothing.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::offers::LookupFailure;
use super::{describe_error_list, error_id_list, expired, EbayChannel};
use crate::marketplace::{exchange_list, read_refusal, read_with_token};
use crate::readback::{json_of, LookupReadBack, ReadBackError, ShownQuantities};
use crate::response::{truncate, Verdict};

/// `bulkGetInventoryItem` reads up to 25 SKUs per request.
pub const MAX_READS_PER_REQUEST: usize = 25;

const BULK_GET_PATH: &str = "/sell/inventory/v1/bulk_get_inventory_item";
/// The errorIds eBay gives a SKU it does not hold: 25702 ("SKU … is not available in the
/// system") and 25710 ("We didn't find the entity you are requesting").
const NOT_FOUND_ERROR_IDS: [u64; 2] = [25702, 25710];

#[async_trait]
impl LookupReadBack for EbayChannel {
    fn max_lookup(&self) -> usize {
        MAX_READS_PER_REQUEST
    }

    /// The `bulkGetInventoryItem`, and at most one `getOffers` per listing.
    fn requests_per_read(&self, listings: &[&str]) -> usize {
        1 + listings.len()
    }

    async fn shown_quantities(&self, listings: &[&str]) -> Result<ShownQuantities, ReadBackError> {
        let url = format!("{}{BULK_GET_PATH}", self.config.base_url.trim_end_matches('/'));
        let requests: Vec<Value> = listings.iter().map(|sku| json!({ "sku": sku })).collect();
        let body = json!({ "requests": requests });
        let answer = read_with_token(&self.tokens, expired, |token| {
            exchange_list(self.client.post(&url).bearer_auth(token.expose()).json(&body))
        })
        .await?;
        if !(200..=299).contains(&answer.status) {
            return Err(match answer.status {
                429 if answer.header("retry-after").is_none() => ReadBackError::Throttled(super::THROTTLED_WAIT),
                _ => read_refusal(&answer),
            });
        }
        let mut shown = parse_bulk_get(&answer.body)?;
        // An item that offers nothing shows nothing whatever its offers say: no need to ask.
        for listing in listings {
            let Some(quantity) = shown.get_mut(*listing).filter(|quantity| **quantity > 0) else { continue };
            if let Some(cap) = self.offer_cap(listing).await.map_err(offers_failure)? {
                *quantity = (*quantity).min(cap);
            }
        }
        Ok(shown)
    }
}

/// A `getOffers` that failed, as the read's failure: the same classes as publishing's. One
/// without an answer from eBay (no token to be had, the connection) is transient, as the
/// items' read takes it (`read_with_token`).
fn offers_failure((status, verdict): LookupFailure) -> ReadBackError {
    match (status, verdict) {
        (_, Verdict::Throttled { retry_after } | Verdict::Unavailable { retry_after, .. }) => {
            ReadBackError::Throttled(retry_after)
        }
        (_, Verdict::Blocked { reason, error, .. }) => ReadBackError::Blocked { reason, error },
        (_, Verdict::Retry { error, .. }) | (None, Verdict::DeadLetter { error, .. }) => {
            ReadBackError::Transient(error)
        }
        (Some(status), Verdict::DeadLetter { error, .. }) => ReadBackError::Refused { status, body: error },
        (_, Verdict::Answered(result)) => ReadBackError::Malformed(format!("getOffers answered a publish: {result:?}")),
    }
}

/// Reads a 200 or 207 answer to `bulkGetInventoryItem`: each entry with `statusCode` 200 shows
/// its quantity; a SKU eBay does not know shows nothing (404, or 400 with errorId 25702 "SKU
/// is not available" or 25710 "We didn't find the entity": eBay's reference does not say which
/// a bulk entry carries); any other entry fails the read (`errors` say why).
pub fn parse_bulk_get(body: &str) -> Result<ShownQuantities, ReadBackError> {
    let answer = json_of(body)?;
    let entries = answer["responses"]
        .as_array()
        .ok_or_else(|| ReadBackError::Malformed(format!("no responses[] array: {}", truncate(body))))?;
    let mut shown = ShownQuantities::new();
    for entry in entries {
        let sku = entry["sku"]
            .as_str()
            .ok_or_else(|| ReadBackError::Malformed(format!("an entry without a sku: {entry}")))?;
        match entry["statusCode"].as_u64() {
            Some(200) => {
                let quantity = &entry["inventoryItem"]["availability"]["shipToLocationAvailability"]["quantity"];
                // An inventory item without a ship-to-home quantity offers none.
                shown.insert(sku.to_owned(), quantity.as_i64().unwrap_or(0));
            }
            Some(404) => {}
            Some(400) if error_id_list(entry.get("errors")).iter().any(|id| NOT_FOUND_ERROR_IDS.contains(id)) => {}
            Some(status @ (429 | 500..=599)) => {
                return Err(ReadBackError::Transient(format!("SKU {sku}: statusCode {status}")));
            }
            status => {
                let error =
                    describe_error_list(entry.get("errors")).unwrap_or_else(|| truncate(&entry.to_string()).to_owned());
                let status = status.and_then(|status| u16::try_from(status).ok()).unwrap_or(200);
                return Err(ReadBackError::Refused { status, body: format!("SKU {sku}: {error}") });
            }
        }
    }
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readback::render_shown;

    #[test]
    fn a_failed_offers_read_is_refused_only_when_ebay_refused_it() {
        let dead =
            |error: &str| Verdict::DeadLetter { reason: "token_refused".into(), error: error.into(), body: None };
        assert_eq!(offers_failure((None, dead("no token"))), ReadBackError::Transient("no token".into()));
        assert_eq!(
            offers_failure((Some(403), dead("denied"))),
            ReadBackError::Refused { status: 403, body: "denied".into() }
        );
    }

    #[test]
    fn every_documented_answer_to_the_read_has_its_reading() {
        let cases = [
            r#"{"responses":[{"statusCode":200,"sku":"SKU-1","inventoryItem":{"sku":"SKU-1","availability":{"shipToLocationAvailability":{"quantity":7}}}},{"statusCode":404,"sku":"SKU-2","errors":[{"errorId":25702,"message":"The SKU could not be found."}]},{"statusCode":200,"sku":"SKU-3","inventoryItem":{"sku":"SKU-3","condition":"NEW"}}]}"#,
            r#"{"responses":[{"statusCode":400,"sku":"SKU-1","errors":[{"errorId":25707,"message":"This is an invalid value for a SKU."}]}]}"#,
            r#"{"responses":[{"statusCode":400,"sku":"SKU-1","errors":[{"errorId":25702,"message":"SKU SKU-1 is not available in the system"}]},{"statusCode":404,"sku":"SKU-2","errors":[{"errorId":25710,"message":"We didn't find the entity you are requesting."}]}]}"#,
            r#"{"responses":[{"statusCode":500,"sku":"SKU-1","errors":[{"errorId":25001,"message":"A system error has occurred."}]}]}"#,
            r#"{"responses":[{"statusCode":200}]}"#,
            "<html>",
        ];
        let rendered: Vec<String> = cases.iter().map(|body| render_shown(parse_bulk_get(body))).collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        shows [SKU-1=7, SKU-3=0]
        Refused { status: 400, body: "SKU SKU-1: errorId 25707: This is an invalid value for a SKU." }
        shows []
        Transient("SKU SKU-1: statusCode 500")
        Malformed("an entry without a sku: {\"statusCode\":200}")
        Malformed("expected value at line 1 column 1: <html>")
        "#);
    }
}
