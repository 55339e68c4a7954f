//! Reading Mercado Libre back: the multiget `GET /items?ids=…&attributes=id,available_quantity`
//! reads up to [`MAX_READS_PER_REQUEST`] items, answered item by item (`code` and `body`); an
//! item Mercado Libre does not know (`code` 404) shows nothing. When a listing names a
//! variation, `variations` is asked for too, and each variation shows its own
//! `available_quantity` as listing `{item}/{variation}`.

use async_trait::async_trait;

use super::{expired, MercadoLibreChannel, MercadoLibreListing, UserProductListing};
use crate::marketplace::{exchange_list, read_refusal, read_with_token};
use crate::readback::{json_of, LookupReadBack, ReadBackError, ShownQuantities};
use crate::response::truncate;

/// The multiget reads up to 20 items per request.
pub const MAX_READS_PER_REQUEST: usize = 20;

#[async_trait]
impl LookupReadBack for MercadoLibreChannel {
    fn max_lookup(&self) -> usize {
        MAX_READS_PER_REQUEST
    }

    /// The items' multiget, and one stock read per user product listed (`up:`).
    fn requests_per_read(&self, listings: &[&str]) -> usize {
        1 + listings.iter().filter(|listing| UserProductListing::parse(listing).is_some()).count()
    }

    async fn shown_quantities(&self, listings: &[&str]) -> Result<ShownQuantities, ReadBackError> {
        let mut shown = ShownQuantities::new();
        // A user product's stock is read on its own, one request each.
        for listing in listings {
            if let Some(user_product) = UserProductListing::parse(listing) {
                if let Some(quantity) = self.read_location_stock(user_product).await? {
                    shown.insert((*listing).to_owned(), quantity);
                }
            }
        }
        // Only listings that are item ids (letters and digits), or item and variation ids, are
        // asked about: anything else would change the list the query names, and is never
        // published either. Variations of one item are one id.
        let parsed: Vec<MercadoLibreListing> =
            listings.iter().filter_map(|listing| MercadoLibreListing::parse(listing)).collect();
        let mut ids: Vec<&str> = Vec::with_capacity(parsed.len());
        for listing in &parsed {
            if !ids.contains(&listing.item) {
                ids.push(listing.item);
            }
        }
        if ids.is_empty() {
            return Ok(shown);
        }
        let attributes = match parsed.iter().any(|listing| listing.variation.is_some()) {
            true => "id,available_quantity,variations",
            false => "id,available_quantity",
        };
        let url = format!("{}/items", self.config.base_url.trim_end_matches('/'));
        let ids = ids.join(",");
        let answer = read_with_token(&self.tokens, expired, |token| {
            let request = self
                .client
                .get(&url)
                .query(&[("ids", ids.as_str()), ("attributes", attributes)])
                .bearer_auth(token.expose())
                .header("Accept", "application/json");
            exchange_list(request)
        })
        .await?;
        if answer.status != 200 {
            return Err(read_refusal(&answer));
        }
        shown.extend(parse_multiget(&answer.body)?);
        Ok(shown)
    }
}

/// Reads a 200 answer to the multiget: each entry with `code` 200 shows its
/// `body.available_quantity`, and each of its `body.variations` its own as
/// `{item}/{variation}`; 404 nothing; any other entry fails the read.
pub fn parse_multiget(body: &str) -> Result<ShownQuantities, ReadBackError> {
    let answer = json_of(body)?;
    let entries =
        answer.as_array().ok_or_else(|| ReadBackError::Malformed(format!("not a list: {}", truncate(body))))?;
    let mut shown = ShownQuantities::new();
    for entry in entries {
        match entry["code"].as_u64() {
            Some(200) => {
                let item = &entry["body"];
                let id = item["id"]
                    .as_str()
                    .ok_or_else(|| ReadBackError::Malformed(format!("an item without an id: {entry}")))?;
                let quantity = item["available_quantity"].as_i64().ok_or_else(|| {
                    ReadBackError::Malformed(format!("item {id} without an integer available_quantity"))
                })?;
                shown.insert(id.to_owned(), quantity);
                for variation in item["variations"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    let (Some(variation_id), Some(quantity)) =
                        (variation["id"].as_u64(), variation["available_quantity"].as_i64())
                    else {
                        let error = format!("item {id} has a variation without an integer id and available_quantity");
                        return Err(ReadBackError::Malformed(format!("{error}: {}", truncate(&variation.to_string()))));
                    };
                    shown.insert(format!("{id}/{variation_id}"), quantity);
                }
            }
            Some(404) => {}
            Some(code @ (429 | 500..=599)) => {
                return Err(ReadBackError::Transient(format!("code {code}: {}", truncate(&entry.to_string()))));
            }
            code => {
                let status = code.and_then(|code| u16::try_from(code).ok()).unwrap_or(200);
                return Err(ReadBackError::Refused { status, body: truncate(&entry.to_string()).to_owned() });
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
    fn every_documented_answer_to_the_read_has_its_reading() {
        let cases = [
            r#"[{"code":200,"body":{"id":"MLA1","available_quantity":7}},{"code":404,"body":{"message":"Item with id MLA2 not found","error":"not_found","status":404,"cause":[]}}]"#,
            r#"[{"code":403,"body":{"message":"Invalid caller.id","error":"forbidden","status":403,"cause":[]}}]"#,
            r#"[{"code":500,"body":{"message":"Internal server error","error":"internal_error","status":500,"cause":[]}}]"#,
            r#"[{"code":200,"body":{"id":"MLA1"}}]"#,
            r#"[{"code":200,"body":{"id":"MLA3","available_quantity":9,"variations":[{"id":174997747229,"available_quantity":4,"attribute_combinations":[]},{"id":174997747230,"available_quantity":5}]}}]"#,
            r#"[{"code":200,"body":{"id":"MLA3","available_quantity":9,"variations":[{"id":"x","available_quantity":4}]}}]"#,
            r#"{"message":"invalid ids","error":"bad_request","status":400}"#,
        ];
        let rendered: Vec<String> = cases.iter().map(|body| render_shown(parse_multiget(body))).collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        shows [MLA1=7]
        Refused { status: 403, body: "{\"body\":{\"cause\":[],\"error\":\"forbidden\",\"message\":\"Invalid caller.id\",\"status\":403},\"code\":403}" }
        Transient("code 500: {\"body\":{\"cause\":[],\"error\":\"internal_error\",\"message\":\"Internal server error\",\"status\":500},\"code\":500}")
        Malformed("item MLA1 without an integer available_quantity")
        shows [MLA3/174997747229=4, MLA3/174997747230=5, MLA3=9]
        Malformed("item MLA3 has a variation without an integer id and available_quantity: {\"available_quantity\":4,\"id\":\"x\"}")
        Malformed("not a list: {\"message\":\"invalid ids\",\"error\":\"bad_request\",\"status\":400}")
        "#);
    }
}
