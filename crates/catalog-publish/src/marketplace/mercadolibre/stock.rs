//! Mercado Libre's User Products stock (decision 0027, `docs/channels/mercadolibre.md` §1 and
//! §7): a listing `up:MLBU206642488` keeps its quantity at the seller's `selling_address`, a
//! listing `up:MLBU206642488@9876543/MXP123451` at one `seller_warehouse` (store id and
//! network node id) of a multi-warehouse seller. Each write reads the stock's `x-version`
//! first (`GET /user-products/{id}/stock`) and sends it with the new quantity
//! (`PUT /user-products/{id}/stock/type/{location type}`); a version that went stale between
//! the two (409) is read again, a few times, before the attempt is retried later.

use std::time::Instant;

use serde_json::{json, Value};

use super::{expired, id_like, verdict_of, MercadoLibreChannel};
use crate::adapter::{Attempt, Publish};
use crate::marketplace::{exchange, read_refusal, read_with_token, with_token, Answer};
use crate::readback::{json_of, ReadBackError};
use crate::response::Verdict;

/// What starts a User Products listing.
pub const USER_PRODUCT_PREFIX: &str = "up:";

/// Reads of a stale version before the attempt is left to the next round.
const VERSION_READS: usize = 3;

/// A listing whose stock is a user product's, at one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserProductListing<'a> {
    /// The user product id, letters and digits (`MLBU206642488`).
    pub id: &'a str,
    /// The seller's warehouse, for a multi-warehouse seller; `None` for the selling address.
    pub warehouse: Option<Warehouse<'a>>,
}

/// One of a multi-warehouse seller's locations, as `GET /users/{id}/stores/search` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warehouse<'a> {
    pub store_id: &'a str,
    pub network_node_id: &'a str,
}

impl<'a> UserProductListing<'a> {
    /// Reads `up:{user product}` or `up:{user product}@{store id}/{network node id}`, each
    /// part letters and digits (they become path segments and body fields); `None` for
    /// anything else.
    pub fn parse(listing: &'a str) -> Option<Self> {
        let rest = listing.strip_prefix(USER_PRODUCT_PREFIX)?;
        let (id, warehouse) = match rest.split_once('@') {
            Some((id, location)) => {
                let (store_id, network_node_id) = location.split_once('/')?;
                (id, Some(Warehouse { store_id, network_node_id }))
            }
            None => (rest, None),
        };
        let valid =
            id_like(id) && warehouse.is_none_or(|place| id_like(place.store_id) && id_like(place.network_node_id));
        valid.then_some(Self { id, warehouse })
    }

    /// The location type the quantity is written to.
    pub fn location_type(&self) -> &'static str {
        match self.warehouse {
            Some(_) => "seller_warehouse",
            None => "selling_address",
        }
    }

    /// The body of the write: the quantity, in a list of one location for a warehouse.
    pub fn body(&self, quantity: i64) -> Value {
        match self.warehouse {
            Some(place) => json!({"locations": [{
                "store_id": place.store_id, "network_node_id": place.network_node_id, "quantity": quantity
            }]}),
            None => json!({ "quantity": quantity }),
        }
    }

    /// The quantity the stock (`GET /user-products/{id}/stock`) shows at this listing's
    /// location; `None` when it lists no such location.
    pub fn shown_in(&self, stock: &Value) -> Result<Option<i64>, ReadBackError> {
        let locations = stock["locations"]
            .as_array()
            .ok_or_else(|| ReadBackError::Malformed(format!("stock of {} without locations", self.id)))?;
        let text = |value: &Value| match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        let here = locations.iter().find(|location| {
            location["type"].as_str() == Some(self.location_type())
                && self.warehouse.is_none_or(|place| {
                    text(&location["store_id"]).as_deref() == Some(place.store_id)
                        && text(&location["network_node_id"]).is_none_or(|node| node == place.network_node_id)
                })
        });
        match here {
            None => Ok(None),
            Some(location) => location["quantity"].as_i64().map(Some).ok_or_else(|| {
                ReadBackError::Malformed(format!("a location of {} without an integer quantity", self.id))
            }),
        }
    }
}

impl MercadoLibreChannel {
    fn stock_url(&self, listing: &UserProductListing) -> String {
        format!("{}/user-products/{}/stock", self.config.base_url.trim_end_matches('/'), listing.id)
    }

    /// `GET …/stock`, then `PUT …/stock/type/{type}` with the `x-version` read, for one item
    /// version; read again when the version went stale (409) in between.
    pub(super) async fn set_location_stock(&self, publish: &Publish, listing: UserProductListing<'_>) -> Attempt {
        let started = Instant::now();
        let done = |verdict: Verdict, status: Option<u16>| Attempt { verdict, status, latency: started.elapsed() };
        let stock_url = self.stock_url(&listing);
        let write_url = format!("{stock_url}/type/{}", listing.location_type());
        let body = listing.body(publish.quantity);
        let traceparent = publish.entry.traceparent.as_deref();
        let classify = |answer: &Answer| done(verdict_of(answer, publish), Some(answer.status));
        for _ in 0..VERSION_READS {
            let read = with_token(&self.tokens, expired, |token| {
                exchange(self.client.get(&stock_url).bearer_auth(token.expose()).header("Accept", "application/json"))
            })
            .await;
            let version = match read {
                Err(verdict) => return done(verdict, None),
                Ok(answer) if !(200..300).contains(&answer.status) => return classify(&answer),
                Ok(answer) => match answer.header("x-version") {
                    Some(version) => version.to_owned(),
                    None => {
                        let error = format!("GET {stock_url} answered {} without x-version", answer.status);
                        return done(Verdict::Retry { reason: "no_stock_version", error }, Some(answer.status));
                    }
                },
            };
            let written = with_token(&self.tokens, expired, |token| {
                let mut request = self
                    .client
                    .put(&write_url)
                    .bearer_auth(token.expose())
                    .header("Accept", "application/json")
                    .header("x-version", &version)
                    .json(&body);
                if let Some(traceparent) = traceparent {
                    request = request.header("traceparent", traceparent);
                }
                exchange(request)
            })
            .await;
            match written {
                Err(verdict) => return done(verdict, None),
                // Someone wrote the stock since it was read: read its version again.
                Ok(answer) if answer.status == 409 => continue,
                Ok(answer) => return classify(&answer),
            }
        }
        let error = format!("PUT {write_url}: the stock's version changed before each of {VERSION_READS} writes (409)");
        done(Verdict::Retry { reason: "stock_version_conflict", error }, Some(409))
    }

    /// What one user product's stock shows at the listing's location (`None`: no such
    /// location, or no such user product).
    pub(super) async fn read_location_stock(
        &self,
        listing: UserProductListing<'_>,
    ) -> Result<Option<i64>, ReadBackError> {
        let url = self.stock_url(&listing);
        let answer = read_with_token(&self.tokens, expired, |token| {
            exchange(self.client.get(&url).bearer_auth(token.expose()).header("Accept", "application/json"))
        })
        .await?;
        match answer.status {
            200 => listing.shown_in(&json_of(&answer.body)?),
            404 => Ok(None),
            _ => Err(read_refusal(&answer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_product_listings_read_as_a_location_or_not_at_all() {
        let cases = [
            "up:MLBU206642488",
            "up:MLBU206642488@9876543/MXP123451",
            "up:",
            "up:MLBU2066/42488",
            "up:MLBU206642488@9876543",
            "up:MLBU206642488@/MXP1",
            "up:MLBU206642488@98 76/MXP1",
            "MLBU206642488",
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|listing| match UserProductListing::parse(listing) {
                Some(parsed) => format!("{listing} -> {} {}", parsed.location_type(), parsed.body(7)),
                None => format!("{listing} -> not a user product listing"),
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        up:MLBU206642488 -> selling_address {"quantity":7}
        up:MLBU206642488@9876543/MXP123451 -> seller_warehouse {"locations":[{"network_node_id":"MXP123451","quantity":7,"store_id":"9876543"}]}
        up: -> not a user product listing
        up:MLBU2066/42488 -> not a user product listing
        up:MLBU206642488@9876543 -> not a user product listing
        up:MLBU206642488@/MXP1 -> not a user product listing
        up:MLBU206642488@98 76/MXP1 -> not a user product listing
        MLBU206642488 -> not a user product listing
        "#);
    }

    #[test]
    fn a_stock_shows_the_quantity_of_the_listing_s_location_only() {
        let stock: Value = serde_json::from_str(
            r#"{"locations":[{"type":"selling_address","quantity":5},{"type":"meli_facility","quantity":40},
                {"type":"seller_warehouse","store_id":"9876543","network_node_id":"MXP123451","quantity":10},
                {"type":"seller_warehouse","store_id":9876544,"network_node_id":"MXP123452","quantity":3}],
               "user_id":1234,"id":"MLBU206642488"}"#,
        )
        .expect("JSON");
        let cases = [
            "up:MLBU206642488",
            "up:MLBU206642488@9876543/MXP123451",
            "up:MLBU206642488@9876544/MXP123452",
            "up:MLBU206642488@9876543/MXP999",
            "up:MLBU206642488@1/MXP123451",
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|listing| {
                let parsed = UserProductListing::parse(listing).expect("a listing");
                format!("{listing} -> {:?}", parsed.shown_in(&stock))
            })
            .collect();
        let no_locations = UserProductListing::parse("up:MLBU1").expect("a listing").shown_in(&json!({"id": "MLBU1"}));
        insta::assert_snapshot!(format!("{}\n{no_locations:?}", rendered.join("\n")), @r#"
        up:MLBU206642488 -> Ok(Some(5))
        up:MLBU206642488@9876543/MXP123451 -> Ok(Some(10))
        up:MLBU206642488@9876544/MXP123452 -> Ok(Some(3))
        up:MLBU206642488@9876543/MXP999 -> Ok(None)
        up:MLBU206642488@1/MXP123451 -> Ok(None)
        Err(Malformed("stock of MLBU1 without locations"))
        "#);
    }
}
