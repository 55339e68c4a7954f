//! Reading Amazon back: Listings Items 2021-08-01 `getListingsItem` with
//! `includedData=fulfillmentAvailability`, one seller SKU per request, gives the listing's
//! merchant-fulfilled (`DEFAULT`) quantity. A SKU Amazon does not know (404), or one with no
//! merchant-fulfilled availability, shows nothing.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{access_token_refused, error_text, throttle_wait, AmazonChannel, FULFILLMENT_CHANNEL_CODE};
use crate::marketplace::{exchange, header_pairs, percent_encode, read_with_token};
use crate::readback::{json_of, one_listing_at_a_time, read_error, LookupReadBack, ReadBackError, ShownQuantities};
use crate::response::truncate;

/// `getListingsItem`'s documented usage plan: 5 requests per second (burst 10).
pub const READ_INTERVAL: Duration = Duration::from_millis(200);
/// Amazon applies a `patchListingsItem` after answering `ACCEPTED` ("accepted for
/// processing"), asynchronously; until then `getListingsItem` shows the quantity before.
/// Amazon gives no figure ("a few minutes", developers report), so a difference is corrected
/// only once it is still there ten minutes later; a channel's `read_back_settle_ms` changes
/// that (decision 0022).
pub const READ_SETTLE: Duration = Duration::from_secs(10 * 60);

#[async_trait]
impl LookupReadBack for AmazonChannel {
    fn read_interval(&self) -> Duration {
        READ_INTERVAL
    }

    fn settle(&self) -> Duration {
        READ_SETTLE
    }

    async fn shown_quantities(&self, listings: &[&str]) -> Result<ShownQuantities, ReadBackError> {
        one_listing_at_a_time(listings, |listing| self.listing_quantity(listing)).await
    }
}

impl AmazonChannel {
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
            exchange(request)
        })
        .await?;
        let headers = header_pairs(&answer.headers);
        parse_listing_quantity(answer.status, &headers, &answer.body, Utc::now())
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
        200 => {
            let listing = json_of(body)?;
            let entries = listing["fulfillmentAvailability"].as_array().map(Vec::as_slice).unwrap_or_default();
            let merchant = entries.iter().find(|entry| entry["fulfillmentChannelCode"] == FULFILLMENT_CHANNEL_CODE);
            match merchant.map(|entry| &entry["quantity"]) {
                None | Some(Value::Null) => Ok(None),
                Some(quantity) => quantity.as_i64().map(Some).ok_or_else(|| {
                    ReadBackError::Malformed(format!("quantity {quantity} is not an integer: {}", truncate(body)))
                }),
            }
        }
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
}
