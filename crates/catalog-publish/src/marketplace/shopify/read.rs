//! Reading Shopify back: one Admin GraphQL query reads the `available` quantity at the
//! channel's location of up to [`MAX_READS_PER_REQUEST`] inventory items (`nodes(ids:)`). An
//! inventory item Shopify does not know (`null` node), or one not stocked at the location
//! (`inventoryLevel: null`), shows nothing.

use async_trait::async_trait;
use serde_json::json;

use super::{is_inventory_item_gid, message, Budget, ShopifyChannel};
use crate::marketplace::{exchange_list, read_refusal};
use crate::readback::{json_of, LookupReadBack, ReadBackError, ShownQuantities};
use crate::response::{truncate, DEFAULT_RETRY_AFTER};

/// Inventory items per read. `nodes` takes up to 250 ids; each item costs about three points
/// (the node, its level, its quantities), so 100 keep a read near 300 of the 1,000 points a
/// single query may cost, and of a standard shop's 100-point-per-second restore.
pub const MAX_READS_PER_REQUEST: usize = 100;

const AVAILABLE_AT: &str = "query AvailableAt($ids: [ID!]!, $locationId: ID!) { \
nodes(ids: $ids) { ... on InventoryItem { id inventoryLevel(locationId: $locationId) { \
quantities(names: [\"available\"]) { name quantity } } } } }";

#[async_trait]
impl LookupReadBack for ShopifyChannel {
    fn max_lookup(&self) -> usize {
        MAX_READS_PER_REQUEST
    }

    async fn shown_quantities(&self, listings: &[&str]) -> Result<ShownQuantities, ReadBackError> {
        // A listing that is no inventory item GID would fail the whole query; it shows nothing.
        let ids: Vec<&str> = listings.iter().copied().filter(|listing| is_inventory_item_gid(listing)).collect();
        if ids.is_empty() {
            return Ok(ShownQuantities::new());
        }
        let body = json!({ "query": AVAILABLE_AT, "variables": { "ids": ids, "locationId": self.config.location_id } });
        let request =
            self.client.post(&self.url).header("X-Shopify-Access-Token", self.config.access_token.expose()).json(&body);
        let answer = exchange_list(request).await?;
        if !(200..=299).contains(&answer.status) {
            return Err(read_refusal(&answer));
        }
        let shown = parse_available(&answer.body)?;
        // Reads pace themselves by the shop's query budget, not only its answers' THROTTLED:
        // a sweep of a large catalog read at reconciliation's rate emptied the bucket the
        // channel's writes draw on, and every publish waited for its refill.
        if let Some(pause) = read_pause(&answer.body) {
            tokio::time::sleep(pause).await;
        }
        Ok(shown)
    }
}

/// The share of the shop's query budget reads leave to the channel's writes.
const LEFT_TO_WRITES: f64 = 0.5;

/// How long a read waits after an answer whose `extensions.cost` shows the bucket below
/// [`LEFT_TO_WRITES`] of its size plus the read's cost: until it holds that again.
pub(super) fn read_pause(body: &str) -> Option<std::time::Duration> {
    let answer = json_of(body).ok()?;
    Budget::read(&answer)?.wait_to_leave(LEFT_TO_WRITES)
}

/// Reads the answer to the `AvailableAt` query: each inventory item's `available` quantity
/// at the location, by its GID. `THROTTLED` waits until the bucket holds the query's cost.
pub fn parse_available(body: &str) -> Result<ShownQuantities, ReadBackError> {
    let answer = json_of(body)?;
    if let Some(errors) = answer.get("errors").filter(|errors| !errors.is_null()) {
        let throttled = errors
            .as_array()
            .is_some_and(|errors| errors.iter().any(|error| error["extensions"]["code"].as_str() == Some("THROTTLED")));
        if throttled {
            let wait = Budget::read(&answer).and_then(|budget| budget.wait()).unwrap_or(DEFAULT_RETRY_AFTER);
            return Err(ReadBackError::Throttled(wait));
        }
        return Err(ReadBackError::Refused { status: 200, body: message(&answer, body) });
    }
    let nodes = answer["data"]["nodes"]
        .as_array()
        .ok_or_else(|| ReadBackError::Malformed(format!("no data.nodes list: {}", truncate(body))))?;
    let mut shown = ShownQuantities::new();
    for node in nodes.iter().filter(|node| !node.is_null()) {
        let id =
            node["id"].as_str().ok_or_else(|| ReadBackError::Malformed(format!("a node without an id: {node}")))?;
        let Some(quantities) = node["inventoryLevel"]["quantities"].as_array() else { continue };
        let available = quantities.iter().find(|quantity| quantity["name"] == "available");
        if let Some(quantity) = available.and_then(|quantity| quantity["quantity"].as_i64()) {
            shown.insert(id.to_owned(), quantity);
        }
    }
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readback::render_shown;

    #[test]
    fn every_documented_answer_to_the_read_has_its_reading() {
        let cost = r#""extensions":{"cost":{"requestedQueryCost":7,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":2,"restoreRate":50.0}}}"#;
        let cases = [
            r#"{"data":{"nodes":[{"id":"gid://shopify/InventoryItem/1","inventoryLevel":{"quantities":[{"name":"available","quantity":10}]}},{"id":"gid://shopify/InventoryItem/2","inventoryLevel":null},null]}}"#.to_owned(),
            format!(r#"{{"errors":[{{"message":"Throttled","extensions":{{"code":"THROTTLED"}}}}],{cost}}}"#),
            r#"{"errors":[{"message":"Access denied for nodes field.","extensions":{"code":"ACCESS_DENIED"}}]}"#.to_owned(),
            r#"{"data":null}"#.to_owned(),
            "<html>".to_owned(),
        ];
        let rendered: Vec<String> = cases.iter().map(|body| render_shown(parse_available(body))).collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        shows [gid://shopify/InventoryItem/1=10]
        Throttled(100ms)
        Refused { status: 200, body: "Access denied for nodes field." }
        Malformed("no data.nodes list: {\"data\":null}")
        Malformed("expected value at line 1 column 1: <html>")
        "#);
    }

    /// A read leaves half the bucket to the channel's writes: it waits, after an answer that
    /// shows less than that plus its own cost, until the bucket holds it again.
    #[test]
    fn a_read_waits_until_half_the_bucket_is_left_to_writes() {
        let answer = |available: f64, maximum: Option<f64>| {
            let maximum = maximum.map_or(String::new(), |maximum| format!(r#""maximumAvailable":{maximum},"#));
            format!(
                r#"{{"data":{{"nodes":[]}},"extensions":{{"cost":{{"requestedQueryCost":302,"actualQueryCost":290,"throttleStatus":{{{maximum}"currentlyAvailable":{available},"restoreRate":100.0}}}}}}}}"#
            )
        };
        assert_eq!(read_pause(&answer(1_500.0, Some(2_000.0))), None, "1,000 left besides the next read's 302");
        let pause = read_pause(&answer(400.0, Some(2_000.0))).expect("a pause");
        assert_eq!(pause.as_millis(), 9_020, "(1,000 + 302 − 400) / 100 per second");
        assert_eq!(read_pause(&answer(400.0, None)), None, "no size, no share of it");
        assert_eq!(read_pause(r#"{"data":{"nodes":[]}}"#), None, "no cost given");
    }
}
