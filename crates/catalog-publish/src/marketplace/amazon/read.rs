//! Reading Amazon back: Listings Items 2021-08-01 `searchListingsItems` by up to
//! [`MAX_READS_PER_REQUEST`] seller SKUs with `includedData=fulfillmentAvailability` gives each
//! listing's merchant-fulfilled (`DEFAULT`) quantity. Amazon does not document what the search
//! answers for a SKU it does not find, so a SKU missing from its answer, or holding a comma
//! (the search's separator), is asked about alone with `getListingsItem`, whose 404 says the
//! listing is gone. A listing with no merchant-fulfilled availability shows nothing.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{access_token_refused, error_text, throttle_wait, AmazonChannel, FULFILLMENT_CHANNEL_CODE};
use crate::marketplace::{exchange_list, header_pairs, percent_encode, read_with_token};
use crate::readback::{json_of, one_listing_at_a_time, read_error, LookupReadBack, ReadBackError, ShownQuantities};
use crate::response::truncate;

/// The usage plans of `searchListingsItems` (5 requests per second, burst 5) and
/// `getListingsItem` (5, burst 10): a read every 200 ms.
pub const READ_INTERVAL: Duration = Duration::from_millis(200);
/// `searchListingsItems` takes up to 20 `identifiers` (and pages of up to 20 items).
pub const MAX_READS_PER_REQUEST: usize = 20;
/// Amazon applies a `patchListingsItem` after answering `ACCEPTED` ("accepted for
/// processing"), asynchronously; until then `getListingsItem` shows the quantity before.
/// Amazon gives no figure ("a few minutes", developers report), so a difference is corrected
/// only once it is still there ten minutes later; a channel's `read_back_settle_ms` changes
/// that (decision 0022).
pub const READ_SETTLE: Duration = Duration::from_secs(10 * 60);

#[async_trait]
impl LookupReadBack for AmazonChannel {
    fn max_lookup(&self) -> usize {
        MAX_READS_PER_REQUEST
    }

    fn read_interval(&self) -> Duration {
        READ_INTERVAL
    }

    fn settle(&self) -> Duration {
        READ_SETTLE
    }

    async fn shown_quantities(&self, listings: &[&str]) -> Result<ShownQuantities, ReadBackError> {
        let (searchable, alone): (Vec<&str>, Vec<&str>) = listings.iter().partition(|listing| !listing.contains(','));
        let mut shown = ShownQuantities::new();
        let mut unanswered = alone;
        if !searchable.is_empty() {
            let found = self.search(&searchable).await?;
            for listing in searchable {
                match found.get(listing) {
                    Some(Some(quantity)) => {
                        shown.insert(listing.to_owned(), *quantity);
                    }
                    Some(None) => {}
                    None => unanswered.push(listing),
                }
            }
        }
        // Each further request waits its turn in the usage plan, as the sweep's own pacer
        // spaces the calls of this method.
        let one_by_one = one_listing_at_a_time(&unanswered, |listing| async move {
            tokio::time::sleep(READ_INTERVAL).await;
            self.listing_quantity(listing).await
        })
        .await?;
        shown.extend(one_by_one);
        Ok(shown)
    }
}

impl AmazonChannel {
    /// `GET /listings/2021-08-01/items/{sellerId}?marketplaceIds=…&identifiers=A,B&identifiersType=SKU&includedData=fulfillmentAvailability&pageSize=20`.
    async fn search(&self, listings: &[&str]) -> Result<SearchFound, ReadBackError> {
        // The query is encoded by hand: each SKU percent-encoded (a space as `%20`, not the
        // form's `+`), joined by the literal commas the search splits on.
        let identifiers: Vec<String> = listings.iter().map(|listing| percent_encode(listing)).collect();
        let url = format!(
            "{}/listings/2021-08-01/items/{}?marketplaceIds={}&identifiers={}&identifiersType=SKU&includedData=fulfillmentAvailability&pageSize={}",
            self.config.base_url.trim_end_matches('/'),
            percent_encode(&self.config.seller_id),
            percent_encode(&self.config.marketplace_id),
            identifiers.join(","),
            listings.len()
        );
        let answer = read_with_token(&self.tokens, access_token_refused, |token| {
            let request =
                self.client.get(&url).header("x-amz-access-token", token.expose()).header("Accept", "application/json");
            exchange_list(request)
        })
        .await?;
        let headers = header_pairs(&answer.headers);
        parse_search(answer.status, &headers, &answer.body, Utc::now())
    }

    /// `GET /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=…&includedData=fulfillmentAvailability`.
    async fn listing_quantity(&self, listing: &str) -> Result<Option<i64>, ReadBackError> {
        let url = format!(
            "{}/listings/2021-08-01/items/{}/{}",
            self.config.base_url.trim_end_matches('/'),
            percent_encode(&self.config.seller_id),
            percent_encode(listing)
        );
        let answer = read_with_token(&self.tokens, access_token_refused, |token| {
            let request = self
                .client
                .get(&url)
                .query(&[
                    ("marketplaceIds", self.config.marketplace_id.as_str()),
                    ("includedData", "fulfillmentAvailability"),
                ])
                .header("x-amz-access-token", token.expose())
                .header("Accept", "application/json");
            exchange_list(request)
        })
        .await?;
        let headers = header_pairs(&answer.headers);
        parse_listing_quantity(answer.status, &headers, &answer.body, Utc::now())
    }
}

/// What a search found, by SKU: the merchant-fulfilled quantity, or `None` for a listing
/// without one. A SKU asked about and absent was not answered.
pub type SearchFound = std::collections::HashMap<String, Option<i64>>;

/// What Amazon's answer to a `searchListingsItems` says of the listings it found, received at
/// `now`; its statuses read as a `getListingsItem`'s (but a 404 is a refusal: the seller or
/// marketplace is wrong).
pub fn parse_search(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
    now: DateTime<Utc>,
) -> Result<SearchFound, ReadBackError> {
    if status != 200 {
        return Err(match status {
            429 => ReadBackError::Throttled(throttle_wait(headers, now)),
            403 | 404 => ReadBackError::Refused { status, body: error_text(status, body) },
            _ => read_error(status, None, body),
        });
    }
    let answer = json_of(body)?;
    let items = answer["items"]
        .as_array()
        .ok_or_else(|| ReadBackError::Malformed(format!("no items[] list: {}", truncate(body))))?;
    items
        .iter()
        .map(|item| {
            let sku = item["sku"]
                .as_str()
                .ok_or_else(|| ReadBackError::Malformed(format!("an item without a sku: {item}")))?;
            Ok((sku.to_owned(), merchant_quantity(item, body)?))
        })
        .collect()
}

/// A listing's merchant-fulfilled quantity: its `fulfillmentAvailability` entry of channel
/// `DEFAULT` (none, or no quantity: `None`).
fn merchant_quantity(listing: &Value, body: &str) -> Result<Option<i64>, ReadBackError> {
    let entries = listing["fulfillmentAvailability"].as_array().map(Vec::as_slice).unwrap_or_default();
    let merchant = entries.iter().find(|entry| entry["fulfillmentChannelCode"] == FULFILLMENT_CHANNEL_CODE);
    match merchant.map(|entry| &entry["quantity"]) {
        None | Some(Value::Null) => Ok(None),
        Some(quantity) => quantity.as_i64().map(Some).ok_or_else(|| {
            ReadBackError::Malformed(format!("quantity {quantity} is not an integer: {}", truncate(body)))
        }),
    }
}

/// What Amazon's answer to a `getListingsItem` says of the listing's merchant-fulfilled
/// quantity, received at `now`: 200 its `fulfillmentAvailability` entry of channel `DEFAULT`
/// (none: it shows nothing), 404 nothing, 429 wait like a publish, 403 a token or role an
/// operator must fix.
pub fn parse_listing_quantity(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, ReadBackError> {
    match status {
        200 => merchant_quantity(&json_of(body)?, body),
        404 => Ok(None),
        429 => Err(ReadBackError::Throttled(throttle_wait(headers, now))),
        403 => Err(ReadBackError::Refused { status, body: error_text(status, body) }),
        _ => Err(read_error(status, None, body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Status, headers, body.
    type Case<'a> = (u16, &'a [(&'a str, &'a str)], &'a str);

    #[test]
    fn every_documented_answer_to_the_read_has_its_reading() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let cases: [Case; 8] = [
            (
                200,
                &[],
                r#"{"sku":"SKU-1","fulfillmentAvailability":[{"fulfillmentChannelCode":"AMAZON_NA","quantity":40},{"fulfillmentChannelCode":"DEFAULT","quantity":7}]}"#,
            ),
            (
                200,
                &[],
                r#"{"sku":"SKU-1","fulfillmentAvailability":[{"fulfillmentChannelCode":"AMAZON_NA","quantity":40}]}"#,
            ),
            (
                200,
                &[],
                r#"{"sku":"SKU-1","fulfillmentAvailability":[{"fulfillmentChannelCode":"DEFAULT","quantity":"seven"}]}"#,
            ),
            (
                404,
                &[],
                r#"{"errors":[{"code":"NOT_FOUND","message":"SKU 'SKU-1' not found in marketplace ATVPDKIKX0DER"}]}"#,
            ),
            (
                429,
                &[("x-amzn-RateLimit-Limit", "5.0")],
                r#"{"errors":[{"code":"QuotaExceeded","message":"You exceeded your quota for the requested resource."}]}"#,
            ),
            (
                403,
                &[],
                r#"{"errors":[{"code":"Unauthorized","message":"Access to requested resource is denied.","details":""}]}"#,
            ),
            (503, &[], ""),
            (200, &[], "<html>"),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, headers, body)| {
                format!("{status} {:?}", parse_listing_quantity(*status, headers, body, now))
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200 Ok(Some(7))
        200 Ok(None)
        200 Err(Malformed("quantity \"seven\" is not an integer: {\"sku\":\"SKU-1\",\"fulfillmentAvailability\":[{\"fulfillmentChannelCode\":\"DEFAULT\",\"quantity\":\"seven\"}]}"))
        404 Ok(None)
        429 Err(Throttled(200ms))
        403 Err(Refused { status: 403, body: "Unauthorized: Access to requested resource is denied." })
        503 Err(Transient("HTTP 503"))
        200 Err(Malformed("expected value at line 1 column 1: <html>"))
        "#);
    }

    #[test]
    fn every_documented_answer_to_the_search_has_its_reading() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let cases: [Case; 6] = [
            (
                200,
                &[],
                r#"{"numberOfResults":2,"pagination":{},"items":[{"sku":"SKU-1","fulfillmentAvailability":[{"fulfillmentChannelCode":"DEFAULT","quantity":7}]},{"sku":"SKU-2","fulfillmentAvailability":[{"fulfillmentChannelCode":"AMAZON_NA","quantity":3}]}]}"#,
            ),
            (200, &[], r#"{"numberOfResults":0,"items":[]}"#),
            (200, &[], r#"{"numberOfResults":1}"#),
            (
                429,
                &[("x-amzn-RateLimit-Limit", "5.0")],
                r#"{"errors":[{"code":"QuotaExceeded","message":"You exceeded your quota for the requested resource."}]}"#,
            ),
            (400, &[], r#"{"errors":[{"code":"InvalidInput","message":"Invalid identifiers","details":""}]}"#),
            (404, &[], r#"{"errors":[{"code":"NOT_FOUND","message":"Seller A2SELLER not found"}]}"#),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, headers, body)| {
                let found = parse_search(*status, headers, body, now).map(|found| {
                    let mut found: Vec<(String, Option<i64>)> = found.into_iter().collect();
                    found.sort();
                    found
                });
                format!("{status} {found:?}")
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200 Ok([("SKU-1", Some(7)), ("SKU-2", None)])
        200 Ok([])
        200 Err(Malformed("no items[] list: {\"numberOfResults\":1}"))
        429 Err(Throttled(200ms))
        400 Err(Refused { status: 400, body: "{\"errors\":[{\"code\":\"InvalidInput\",\"message\":\"Invalid identifiers\",\"details\":\"\"}]}" })
        404 Err(Refused { status: 404, body: "NOT_FOUND: Seller A2SELLER not found" })
        "#);
    }
}
