//! Reading back what a channel shows, for reconciliation, in one of two ways: the storefront
//! contract's list endpoint, `GET {base_url}/v1/tenants/{tenant}/items?after={item_id}&limit={1..1000}`
//! ([`ReadBack`], every item in item id order, with its version), or a marketplace's own
//! read of the quantities of the listings it is asked about ([`LookupReadBack`], no version).
//! Same client, token, timeouts and answer classes as publishing.

use std::time::Duration;

use async_trait::async_trait;
use catalog_core::{Classify, FailureClass, ItemId, Shown, TenantId};
use chrono::Utc;
use serde::Deserialize;

use crate::body::{read_body_capped, MAX_LIST_ANSWER_BYTES, MIB};
use crate::response::{parse_retry_after, MAX_BODY_BYTES};
use crate::storefront::StorefrontChannel;

/// The most items one list request may ask for (the contract's bound).
pub const MAX_PAGE: usize = 1_000;

/// One item as the channel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownItem {
    /// Its id as the channel gave it.
    pub id: String,
    /// The catalog item id it has the form of (a hyphenated lower-case UUID); `None` for any
    /// other id, which no catalog item has (an item of another system the channel shows).
    pub item_id: Option<ItemId>,
    /// What it shows, or why that is unreadable (a quantity or version that is no number):
    /// only a catalog item's matters, since another system's may show anything.
    pub shown: Result<Shown, String>,
}

/// An item id in the form the catalog sends, which sorts as its bytes do in any collation.
pub fn catalog_item_id(id: &str) -> Option<ItemId> {
    id.parse::<uuid::Uuid>().ok().filter(|uuid| uuid.hyphenated().to_string() == id).map(ItemId)
}

/// One page of the channel's list, in item id order; `next` is the cursor of the following
/// page as the channel gave it, `None` on the last.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShownPage {
    pub items: Vec<ShownItem>,
    pub next: Option<String>,
}

/// Why a read-back request did not give a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadBackError {
    #[error("throttled: retry after {0:?}")]
    Throttled(Duration),
    #[error("transient failure: {0}")]
    Transient(String),
    #[error("refused with HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("the answer does not follow the contract: {0}")]
    Malformed(String),
    /// The platform refuses the channel until an operator acts (`Verdict::Blocked`: its
    /// credentials refused, a shop frozen or locked): every read would meet it.
    #[error("refused until an operator acts ({reason}): {error}")]
    Blocked { reason: &'static str, error: String },
}

impl ReadBackError {
    /// The stable name: metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            ReadBackError::Throttled(_) => "throttled",
            ReadBackError::Transient(_) => "transient",
            ReadBackError::Refused { .. } => "refused",
            ReadBackError::Malformed(_) => "malformed",
            ReadBackError::Blocked { .. } => "blocked",
        }
    }
}

impl Classify for ReadBackError {
    fn failure_class(&self) -> FailureClass {
        match self {
            ReadBackError::Throttled(_) | ReadBackError::Transient(_) => FailureClass::Retryable,
            // A wrong token or URL, or a storefront that broke its contract: a person must look.
            ReadBackError::Refused { .. } | ReadBackError::Malformed(_) | ReadBackError::Blocked { .. } => {
                FailureClass::NeedsOperator
            }
        }
    }
}

/// A channel whose state can be read back.
#[async_trait]
pub trait ReadBack: Send + Sync + std::fmt::Debug + 'static {
    /// Up to `limit` items of `tenant` after the item id `after`, in item id order.
    async fn list(&self, tenant: &TenantId, after: Option<&str>, limit: usize) -> Result<ShownPage, ReadBackError>;
}

/// The quantities a marketplace shows, by listing: a listing it does not hold is absent.
pub type ShownQuantities = std::collections::HashMap<String, i64>;

/// A channel that shows the quantity of the listings it is asked about, not a list in item id
/// order and no version: the marketplaces. What it shows is compared only for items whose
/// current version it accepted (decision 0022).
#[async_trait]
pub trait LookupReadBack: Send + Sync + std::fmt::Debug + 'static {
    /// The most listings one read request asks about: 1 for a platform that reads one
    /// listing per request, its documented bound for one with a batch read.
    fn max_lookup(&self) -> usize {
        1
    }

    /// The least time between two read requests: the platform's documented rate for the
    /// call, when it is lower than reconciliation's own (`--reconcile-rate`).
    fn read_interval(&self) -> Duration {
        Duration::ZERO
    }

    /// The requests one read of `listings` may make at most, against the platform's quota:
    /// reconciliation spaces its reads by as many of its requests (`--reconcile-rate`). One
    /// for a platform that answers a read with one request.
    fn requests_per_read(&self, listings: &[&str]) -> usize {
        let _ = listings;
        1
    }

    /// How long after accepting a quantity the platform may still show the one before (it
    /// applies updates asynchronously): a difference is corrected only once it is seen again
    /// at least this much later on the same version.
    fn settle(&self) -> Duration {
        Duration::ZERO
    }

    /// What the platform shows for `listings` (at most [`LookupReadBack::max_lookup`]).
    async fn shown_quantities(&self, listings: &[&str]) -> Result<ShownQuantities, ReadBackError>;

    /// The platform's list of every listing it holds, when it has one that is cheaper to walk
    /// than asking about each listing (Walmart: 50 SKUs per page against one per lookup).
    fn catalog_list(&self) -> Option<&dyn CatalogList> {
        None
    }
}

/// One page of a platform's list of every listing it holds: the quantities it shows for
/// the channel (a listing whose quantity for the channel the page cannot tell is left out),
/// and the cursor of the next page, `None` on the last.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogPage {
    pub shown: ShownQuantities,
    pub next: Option<String>,
}

/// A platform's list of every listing it holds, page by page. Reconciliation walks it once
/// per sweep to find the differences, and confirms each with
/// [`LookupReadBack::shown_quantities`] before correcting it: the list is read before the
/// store, so an update accepted meanwhile would look like drift (decision 0023).
#[async_trait]
pub trait CatalogList: Send + Sync {
    /// The page after `cursor` (`None`: the first).
    async fn catalog_page(&self, cursor: Option<&str>) -> Result<CatalogPage, ReadBackError>;
}

/// How a channel can be read back.
#[derive(Debug, Clone)]
pub enum ChannelReader {
    /// Every item in item id order, with its version (the storefront contract).
    List(std::sync::Arc<dyn ReadBack>),
    /// The quantities of the listings asked about (a marketplace).
    Lookup(std::sync::Arc<dyn LookupReadBack>),
}

/// A read answer's body as JSON, or why it is not.
pub(crate) fn json_of(body: &str) -> Result<serde_json::Value, ReadBackError> {
    serde_json::from_str(body)
        .map_err(|error| ReadBackError::Malformed(format!("{error}: {}", crate::response::truncate(body))))
}

/// Reads listings one request each (`read_one` gives a listing's quantity, `None` when the
/// platform does not hold it), in order, stopping at the first failure.
pub(crate) async fn one_listing_at_a_time<'a, F, Fut>(
    listings: &[&'a str],
    read_one: F,
) -> Result<ShownQuantities, ReadBackError>
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<Option<i64>, ReadBackError>>,
{
    let mut shown = ShownQuantities::new();
    for listing in listings {
        if let Some(quantity) = read_one(listing).await? {
            shown.insert((*listing).to_owned(), quantity);
        }
    }
    Ok(shown)
}

/// A read's outcome as one line, listings sorted: what the parsers' snapshot tests show.
#[cfg(test)]
pub(crate) fn render_shown(result: Result<ShownQuantities, ReadBackError>) -> String {
    match result {
        Ok(shown) => {
            let mut shown: Vec<String> =
                shown.iter().map(|(listing, quantity)| format!("{listing}={quantity}")).collect();
            shown.sort();
            format!("shows [{}]", shown.join(", "))
        }
        Err(error) => format!("{error:?}"),
    }
}

/// What the statuses every platform means alike say of a read that did not succeed: 429
/// wait (`Retry-After`, or a second), 408 and 5xx retry, any other a refusal an operator must
/// look at (a wrong credential, scope or URL).
pub(crate) fn read_error(status: u16, retry_after: Option<&str>, body: &str) -> ReadBackError {
    match status {
        429 => ReadBackError::Throttled(parse_retry_after(retry_after, Utc::now())),
        408 | 500..=599 => ReadBackError::Transient(format!("HTTP {status}")),
        _ => ReadBackError::Refused { status, body: body.chars().take(512).collect() },
    }
}

#[derive(Deserialize)]
struct ListBody {
    items: Vec<ListItem>,
    next: Option<String>,
}

/// An entry of the list: its other fields are read only for an item of the catalog's, so
/// another system's item that shows them otherwise stops nothing.
#[derive(Deserialize)]
struct ListItem {
    item_id: String,
    #[serde(default)]
    quantity: serde_json::Value,
    #[serde(default)]
    version: serde_json::Value,
}

impl ListItem {
    fn shown(self) -> ShownItem {
        let shown = match (self.quantity.as_i64(), self.version.as_u64()) {
            (Some(quantity), Some(version)) => Ok(Shown { quantity, version }),
            _ => Err(format!("item {} shows quantity {} and version {}", self.item_id, self.quantity, self.version)),
        };
        ShownItem { item_id: catalog_item_id(&self.item_id), id: self.item_id, shown }
    }
}

/// Parses a list answer's body. An entry's fields other than its id are not checked here: a
/// catalog item's are when the sweep compares it.
pub fn parse_list(body: &str) -> Result<ShownPage, ReadBackError> {
    let list: ListBody = serde_json::from_str(body).map_err(|error| ReadBackError::Malformed(error.to_string()))?;
    Ok(ShownPage { items: list.items.into_iter().map(ListItem::shown).collect(), next: list.next })
}

#[async_trait]
impl ReadBack for StorefrontChannel {
    async fn list(&self, tenant: &TenantId, after: Option<&str>, limit: usize) -> Result<ShownPage, ReadBackError> {
        let url = format!("{}/v1/tenants/{}/items", self.config().base_url, tenant);
        let mut query = vec![("limit", limit.clamp(1, MAX_PAGE).to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let mut request = self.client().get(&url).query(&query);
        if let Some(token) = &self.config().token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(|error| ReadBackError::Transient(error.to_string()))?;
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
        // A page is read up to its cap, any other answer only as far as a refusal keeps of it.
        let cap = if status == 200 { MAX_LIST_ANSWER_BYTES } else { MAX_BODY_BYTES };
        let body =
            read_body_capped(response, cap).await.map_err(|error| ReadBackError::Transient(error.to_string()))?;
        match status {
            200 if body.over_cap => Err(ReadBackError::Malformed(format!(
                "a list page longer than the {} MiB one may be",
                MAX_LIST_ANSWER_BYTES / MIB
            ))),
            200 => parse_list(&body.into_text()),
            _ => Err(read_error(status, retry_after.as_deref(), &body.into_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_entry_is_the_catalog_s_only_under_the_id_the_catalog_sends() {
        let ours = "0b6f1c2e-8d4a-5f3b-9c1d-2e3f4a5b6c7d";
        let body = format!(
            r#"{{"items": [
                {{"item_id": "{ours}", "sku": "A", "quantity": 4, "version": 2}},
                {{"item_id": "{upper}", "sku": "A", "quantity": 4, "version": 2}},
                {{"item_id": "legacy-42", "sku": "X", "quantity": "n/a", "version": null}},
                {{"item_id": "legacy-43"}}
            ], "next": "legacy-43"}}"#,
            upper = ours.to_uppercase()
        );
        let page = parse_list(&body).expect("a page");
        let catalog: Vec<_> =
            page.items.iter().filter_map(|item| item.item_id.map(|id| (id, item.shown.clone()))).collect();
        assert_eq!(catalog, vec![(ItemId(ours.parse().expect("uuid")), Ok(Shown { quantity: 4, version: 2 }))]);
        assert_eq!(page.items.len(), 4, "the others are kept, as no catalog item's");
        assert!(page.items[2].shown.is_err(), "another system's item may show anything");
        assert_eq!(page.next.as_deref(), Some("legacy-43"), "the cursor as given");

        let unreadable =
            format!(r#"{{"items": [{{"item_id": "{ours}", "quantity": 4, "version": -1}}], "next": null}}"#);
        let page = parse_list(&unreadable).expect("a page: whose item it is, the sweep knows");
        let error = page.items[0].shown.clone().expect_err("shown without a version");
        assert!(error.contains(ours), "{error}");
    }
}
