//! Reading Walmart back: `GET /v3/inventory?sku=…` gives one SKU's quantity (at the
//! channel's ship node when it names one), one SKU per request; a SKU Walmart does not know
//! (404) shows nothing. `GET /v3/inventories?limit=50` lists every SKU of the seller with its
//! quantity at each ship node, 50 per page: reconciliation walks it to find differences and
//! confirms each one with the first (decision 0023).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{access_token_expired, correlation_id, error_text, throttle_wait, WalmartChannel, SERVICE_NAME};
use crate::marketplace::{exchange_list, header_pairs, percent_encode, read_with_token};
use crate::readback::{
    json_of, one_listing_at_a_time, read_error, CatalogList, CatalogPage, LookupReadBack, ReadBackError,
    ShownQuantities,
};
use crate::response::truncate;

/// At most about three reads a second. Walmart publishes no number for `GET /v3/inventory`
/// (its limits "vary by API", announced by 429 and `X-Current-Token-Count`), and the seller's
/// budget is publishing's first: reconciliation takes a small share of it.
pub const READ_INTERVAL: Duration = Duration::from_millis(300);

/// SKUs per page of `GET /v3/inventories`: the documented most.
pub const CATALOG_PAGE: usize = 50;

#[async_trait]
impl LookupReadBack for WalmartChannel {
    fn read_interval(&self) -> Duration {
        READ_INTERVAL
    }

    async fn shown_quantities(&self, listings: &[&str]) -> Result<ShownQuantities, ReadBackError> {
        one_listing_at_a_time(listings, |listing| self.inventory(listing)).await
    }

    fn catalog_list(&self) -> Option<&dyn CatalogList> {
        Some(self)
    }
}

#[async_trait]
impl CatalogList for WalmartChannel {
    /// `GET /v3/inventories?limit=50[&nextCursor=…]`.
    async fn catalog_page(&self, cursor: Option<&str>) -> Result<CatalogPage, ReadBackError> {
        let mut url = format!("{}/v3/inventories?limit={CATALOG_PAGE}", self.config.base_url.trim_end_matches('/'));
        if let Some(cursor) = cursor {
            url.push_str(&format!("&nextCursor={}", percent_encode(cursor)));
        }
        let answer = read_with_token(&self.tokens, access_token_expired, |token| {
            exchange_list(self.read_request(&url, token.expose()))
        })
        .await?;
        let headers = header_pairs(&answer.headers);
        parse_inventories(answer.status, &headers, &answer.body, Utc::now(), self.config.ship_node.as_deref())
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
            exchange_list(self.read_request(&url, token.expose()))
        })
        .await?;
        let headers = header_pairs(&answer.headers);
        parse_inventory(answer.status, &headers, &answer.body, Utc::now())
    }

    /// A read of `url` with Walmart's headers.
    fn read_request(&self, url: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .get(url)
            .header("WM_SEC.ACCESS_TOKEN", token)
            .header("WM_QOS.CORRELATION_ID", correlation_id())
            .header("WM_SVC.NAME", SERVICE_NAME)
            .header("Accept", "application/json")
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
        _ => Err(read_failure(status, headers, body, now)),
    }
}

/// What Walmart's answer to `GET /v3/inventories` says, received at `now`, for a channel
/// publishing to `ship_node` (`None`: the seller's default node): each SKU's `inputQty` (the
/// quantity a publish sets, ordered units not yet shipped included) at that node, and the
/// next page's cursor (`meta.nextCursor`; absent or empty on the last page). A SKU whose
/// quantity for the channel the page cannot tell is left out, and so looked up on its own:
/// one without that node, one on several nodes when the channel names none (which of them is
/// the default the page does not say), one without an integer `inputQty.amount`.
pub fn parse_inventories(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
    now: DateTime<Utc>,
    ship_node: Option<&str>,
) -> Result<CatalogPage, ReadBackError> {
    if status != 200 {
        return Err(read_failure(status, headers, body, now));
    }
    let page = json_of(body)?;
    let inventories = match page["elements"]["inventories"].as_array() {
        Some(inventories) => inventories.as_slice(),
        // A seller with no inventory: the page may leave the list out.
        None if page["meta"]["totalCount"].as_i64() == Some(0) => &[],
        None => {
            return Err(ReadBackError::Malformed(format!("no elements.inventories array: {}", truncate(body))));
        }
    };
    let mut shown = ShownQuantities::new();
    for inventory in inventories {
        let sku = inventory["sku"]
            .as_str()
            .ok_or_else(|| ReadBackError::Malformed(format!("an inventory without a sku: {inventory}")))?;
        let nodes = inventory["nodes"].as_array().map(Vec::as_slice).unwrap_or_default();
        let node = match ship_node {
            Some(ship_node) => nodes.iter().find(|node| node["shipNode"].as_str() == Some(ship_node)),
            None => match nodes {
                [only] => Some(only),
                _ => None,
            },
        };
        if let Some(amount) = node.and_then(|node| node["inputQty"]["amount"].as_i64()) {
            shown.insert(sku.to_owned(), amount);
        }
    }
    let next = page["meta"]["nextCursor"].as_str().filter(|cursor| !cursor.is_empty()).map(str::to_owned);
    Ok(CatalogPage { shown, next })
}

/// A read that did not succeed: 429 waits like a publish, 401 and 403 are a credential an
/// operator must fix, the rest as every platform means them.
fn read_failure(status: u16, headers: &[(&str, &str)], body: &str, now: DateTime<Utc>) -> ReadBackError {
    match status {
        429 => ReadBackError::Throttled(throttle_wait(headers, now)),
        401 | 403 => ReadBackError::Refused { status, body: error_text(status, body) },
        _ => read_error(status, None, body),
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

    #[test]
    fn every_documented_answer_to_the_list_has_its_reading() {
        let now: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let node = |name: &str, input: i64| {
            serde_json::json!({ "shipNode": name, "inputQty": { "unit": "EACH", "amount": input },
                "availToSellQty": { "unit": "EACH", "amount": input - 1 }, "reservedQty": { "unit": "EACH", "amount": 1 } })
        };
        let page = serde_json::json!({
            "meta": { "totalCount": 123, "nextCursor": "0123abcd4567efgh8901" },
            "elements": { "inventories": [
                { "sku": "ONE-NODE", "nodes": [node("NODE0001", 100)] },
                { "sku": "TWO-NODES", "nodes": [node("NODE0001", 7), node("NODE0002", 200)] },
                { "sku": "OTHER-NODE", "nodes": [node("NODE0002", 5)] },
                { "sku": "NO-NODES", "nodes": [] },
                { "sku": "NO-AMOUNT", "nodes": [{ "shipNode": "NODE0001", "inputQty": { "unit": "EACH" } }] }
            ] }
        })
        .to_string();
        let last = r#"{"meta":{"totalCount":1},"elements":{"inventories":[{"sku":"A","nodes":[{"shipNode":"N","inputQty":{"unit":"EACH","amount":3}}]}]}}"#;
        let render = |result: Result<CatalogPage, ReadBackError>| match result {
            Ok(page) => format!("{} next {:?}", crate::readback::render_shown(Ok(page.shown)), page.next),
            Err(error) => format!("{error:?}"),
        };
        /// Status, headers, body, the channel's ship node.
        type ListCase<'a> = (u16, &'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
        let cases: [ListCase; 8] = [
            (200, &[], &page, Some("NODE0001")),
            (200, &[], &page, None),
            (200, &[], last, None),
            (200, &[], r#"{"meta":{"totalCount":0},"elements":{}}"#, None),
            (200, &[], r#"{"meta":{"totalCount":3},"elements":{}}"#, None),
            (429, &[("Retry-After", "4")], "", None),
            (
                401,
                &[],
                r#"{"errors":[{"code":"UNAUTHORIZED.GMP_GATEWAY_API","description":"Unauthorized","severity":"ERROR","category":"DATA"}]}"#,
                None,
            ),
            (502, &[], "", None),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(status, headers, body, ship_node)| {
                format!(
                    "{status} {ship_node:?}: {}",
                    render(parse_inventories(*status, headers, body, now, *ship_node))
                )
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        200 Some("NODE0001"): shows [ONE-NODE=100, TWO-NODES=7] next Some("0123abcd4567efgh8901")
        200 None: shows [ONE-NODE=100, OTHER-NODE=5] next Some("0123abcd4567efgh8901")
        200 None: shows [A=3] next None
        200 None: shows [] next None
        200 None: Malformed("no elements.inventories array: {\"meta\":{\"totalCount\":3},\"elements\":{}}")
        429 None: Throttled(4s)
        401 None: Refused { status: 401, body: "UNAUTHORIZED.GMP_GATEWAY_API: Unauthorized" }
        502 None: Transient("HTTP 502")
        "#);
    }
}
