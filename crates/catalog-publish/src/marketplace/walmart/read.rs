//! Reading Walmart back: `GET /v3/inventory?sku=…` gives one SKU's quantity (at the
//! channel's ship node when it names one), one SKU per request. A SKU Walmart does not know
//! (404) shows nothing.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{access_token_expired, correlation_id, error_text, throttle_wait, WalmartChannel, SERVICE_NAME};
use crate::marketplace::{exchange, header_pairs, percent_encode, read_with_token};
use crate::readback::{json_of, one_listing_at_a_time, read_error, LookupReadBack, ReadBackError, ShownQuantities};
use crate::response::truncate;

/// At most about three reads a second. Walmart publishes no number for `GET /v3/inventory`
/// (its limits "vary by API", announced by 429 and `X-Current-Token-Count`), and the seller's
/// budget is publishing's first: reconciliation takes a small share of it.
pub const READ_INTERVAL: Duration = Duration::from_millis(300);

#[async_trait]
impl LookupReadBack for WalmartChannel {
    fn read_interval(&self) -> Duration {
        READ_INTERVAL
    }

    async fn shown_quantities(&self, listings: &[&str]) -> Result<ShownQuantities, ReadBackError> {
        one_listing_at_a_time(listings, |listing| self.inventory(listing)).await
    }
}

impl WalmartChannel {
    /// `GET /v3/inventory?sku=…[&shipNode=…]`.
    async fn inventory(&self, listing: &str) -> Result<Option<i64>, ReadBackError> {
        let mut url =
            format!("{}/v3/inventory?sku={}", self.config.base_url.trim_end_matches('/'), percent_encode(listing));
        if let Some(ship_node) = &self.config.ship_node {
            url.push_str(&format!("&shipNode={}", percent_encode(ship_node)));
        }
        let answer = read_with_token(&self.tokens, access_token_expired, |token| {
            let request = self
                .client
                .get(&url)
                .header("WM_SEC.ACCESS_TOKEN", token.expose())
                .header("WM_QOS.CORRELATION_ID", correlation_id())
                .header("WM_SVC.NAME", SERVICE_NAME)
                .header("Accept", "application/json");
            exchange(request)
        })
        .await?;
        let headers = header_pairs(&answer.headers);
        parse_inventory(answer.status, &headers, &answer.body, Utc::now())
    }
}

/// What Walmart's answer to `GET /v3/inventory` says of the SKU's quantity, received at
/// `now`: 200 its `quantity.amount`, 404 nothing, 429 wait like a publish, 401 a credential
/// an operator must fix.
pub fn parse_inventory(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, ReadBackError> {
    match status {
        200 => {
            let inventory = json_of(body)?;
            let amount = &inventory["quantity"]["amount"];
            amount
                .as_i64()
                .map(Some)
                .ok_or_else(|| ReadBackError::Malformed(format!("no integer quantity.amount: {}", truncate(body))))
        }
        404 => Ok(None),
        429 => Err(ReadBackError::Throttled(throttle_wait(headers, now))),
        401 | 403 => Err(ReadBackError::Refused { status, body: error_text(status, body) }),
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
        let cases: [Case; 7] = [
            (200, &[], r#"{"sku":"SKU-1","quantity":{"unit":"EACH","amount":7}}"#),
            (200, &[], r#"{"sku":"SKU-1","quantity":{"unit":"EACH"}}"#),
            (
                404,
                &[],
                r#"{"errors":[{"code":"CONTENT_NOT_FOUND.GMP_INVENTORY_API","description":"Item not found","severity":"ERROR","category":"APPLICATION"}]}"#,
            ),
            (429, &[("Retry-After", "4")], ""),
            (
                401,
                &[],
                r#"{"errors":[{"code":"UNAUTHORIZED.GMP_GATEWAY_API","description":"Unauthorized","severity":"ERROR","category":"DATA"}]}"#,
            ),
            (500, &[], ""),
            (200, &[], "<html>"),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, headers, body)| format!("{status} {:?}", parse_inventory(*status, headers, body, now)))
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200 Ok(Some(7))
        200 Err(Malformed("no integer quantity.amount: {\"sku\":\"SKU-1\",\"quantity\":{\"unit\":\"EACH\"}}"))
        404 Ok(None)
        429 Err(Throttled(4s))
        401 Err(Refused { status: 401, body: "UNAUTHORIZED.GMP_GATEWAY_API: Unauthorized" })
        500 Err(Transient("HTTP 500"))
        200 Err(Malformed("expected value at line 1 column 1: <html>"))
        "#);
    }
}
