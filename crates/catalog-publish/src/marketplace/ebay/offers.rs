//! The published offers of a seller SKU, read with `getOffers`: eBay shows a buyer the lower
//! of an inventory item's quantity and each published offer's `availableQuantity`, so
//! `bulkUpdatePriceQuantity` must set both, and addresses an offer only by its id (kept for
//! [`OFFER_IDS_TTL`]); and reading a listing back must read both.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Deserialize;

use super::classify::{describe_errors, shared_verdict};
use super::{expired, EbayChannel};
use crate::marketplace::{exchange, percent_encode, rejected, with_token};
use crate::response::{truncate, Verdict};

/// How long a SKU's offer ids are kept. An offer published meanwhile is set only once they
/// are read again; an offer eBay no longer knows is dropped at once (`forget`).
pub const OFFER_IDS_TTL: Duration = Duration::from_secs(3600);
/// The pages of offers read for one SKU at most: eBay lists a SKU's offers (one per
/// marketplace and format, a handful) 25 to a page.
const MAX_OFFER_PAGES: usize = 8;

/// How many SKUs' offers one send reads at once. A send of 25 SKUs none of which is cached
/// (after a start, and as the ids expire each hour) read them one after another: at 0.3 s a
/// lookup, longer than the request timeout, so the whole send was recorded `timeout`, and
/// each SKU waited a lease (a timeout may have reached eBay) though nothing had been sent.
pub const LOOKUPS_AT_ONCE: usize = 8;
const OFFERS_PATH: &str = "/sell/inventory/v1/offer";

/// A SKU's lookup that failed: the status eBay answered, if any, and the SKU's verdict.
pub(super) type LookupFailure = (Option<u16>, Verdict);

/// The published offers' ids of each SKU read so far, and when.
#[derive(Debug, Default)]
pub(super) struct OfferIds {
    known: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

impl OfferIds {
    fn cached(&self, sku: &str, now: Instant) -> Option<Vec<String>> {
        let known = self.known.lock().expect("the offer ids lock is never poisoned: no panic holds it");
        known.get(sku).filter(|(read_at, _)| now.duration_since(*read_at) < OFFER_IDS_TTL).map(|(_, ids)| ids.clone())
    }

    fn remember(&self, sku: &str, offer_ids: Vec<String>, now: Instant) {
        let mut known = self.known.lock().expect("the offer ids lock is never poisoned: no panic holds it");
        known.retain(|_, (read_at, _)| now.duration_since(*read_at) < OFFER_IDS_TTL);
        known.insert(sku.to_owned(), (now, offer_ids));
    }

    /// The next send reads `sku`'s offers again.
    pub(super) fn forget(&self, sku: &str) {
        self.known.lock().expect("the offer ids lock is never poisoned: no panic holds it").remove(sku);
    }
}

/// `getOffers`' answer: one page of the SKU's offers.
#[derive(Deserialize)]
struct Offers {
    #[serde(default)]
    offers: Vec<OfferSummary>,
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OfferSummary {
    offer_id: String,
    #[serde(default)]
    status: String,
    available_quantity: Option<i64>,
}

/// A published offer: its id, and the quantity it caps its listing at, when it sets one (an
/// offer without `availableQuantity` shows the inventory item's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PublishedOffer {
    pub(super) offer_id: String,
    pub(super) available_quantity: Option<i64>,
}

impl EbayChannel {
    /// The published offers' ids of each of `listings`, from the cache or `getOffers`, in
    /// order, [`LOOKUPS_AT_ONCE`] read at a time. A lookup that fails fails its SKU alone,
    /// unless it says the whole channel must wait or lacks a token (429, a refused token or
    /// credentials): then every SKU whose lookup has not started fails alike, without asking
    /// eBay.
    pub(super) async fn published_offers(&self, listings: &[&str]) -> Vec<Result<Vec<String>, LookupFailure>> {
        use futures::StreamExt as _;
        let channel_failure: Mutex<Option<LookupFailure>> = Mutex::new(None);
        // Collected first: a stream over a closure's futures is not `Send` for the compiler here.
        let lookups: Vec<_> =
            listings.iter().map(|listing| self.published_offer_ids(listing, &channel_failure)).collect();
        futures::stream::iter(lookups).buffered(LOOKUPS_AT_ONCE).collect().await
    }

    /// One SKU's lookup for `published_offers`: from the cache, or failed alike once a lookup
    /// failed the channel (`channel_failure`), or read.
    async fn published_offer_ids(
        &self,
        listing: &str,
        channel_failure: &Mutex<Option<LookupFailure>>,
    ) -> Result<Vec<String>, LookupFailure> {
        let failed = || channel_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(offer_ids) = self.offer_ids.cached(listing, Instant::now()) {
            return Ok(offer_ids);
        }
        if let Some(failure) = failed().clone() {
            return Err(failure);
        }
        let result = self.read_published_offers(listing).await.map(|offers| offer_ids_of(&offers));
        if let Err(failure) = &result {
            if fails_the_channel(&failure.1) {
                failed().get_or_insert_with(|| failure.clone());
            }
        }
        result
    }

    /// The lowest `availableQuantity` of `listing`'s published offers, read now (not from the
    /// cache: an offer changed on eBay is what reading back looks for), or `None` when no
    /// published offer sets one. The ids read are kept for the next send.
    pub(super) async fn offer_cap(&self, listing: &str) -> Result<Option<i64>, LookupFailure> {
        let offers = self.read_published_offers(listing).await?;
        Ok(offers.iter().filter_map(|offer| offer.available_quantity).min())
    }

    /// `getOffers` for `listing`, page after page: its `PUBLISHED` offers, whose ids are kept.
    /// A 404 is a SKU without offers.
    async fn read_published_offers(&self, listing: &str) -> Result<Vec<PublishedOffer>, LookupFailure> {
        let offers = self.read_offer_pages(listing).await?;
        self.offer_ids.remember(listing, offer_ids_of(&offers), Instant::now());
        Ok(offers)
    }

    async fn read_offer_pages(&self, listing: &str) -> Result<Vec<PublishedOffer>, LookupFailure> {
        let base_url = self.config.base_url.trim_end_matches('/');
        let mut url = format!("{base_url}{OFFERS_PATH}?sku={}", percent_encode(listing));
        let mut published = Vec::new();
        for _ in 0..MAX_OFFER_PAGES {
            let answer =
                with_token(&self.tokens, expired, |token| exchange(self.client.get(&url).bearer_auth(token.expose())))
                    .await
                    .map_err(|verdict| (None, verdict))?;
            let status = answer.status;
            if status == 404 {
                return Ok(published);
            }
            if !(200..=299).contains(&status) {
                let verdict = shared_verdict(status, answer.header("retry-after"), &answer.body, Utc::now())
                    .unwrap_or_else(|| {
                        let error = describe_errors(&answer.body).unwrap_or_else(|| format!("HTTP {status}"));
                        rejected(status, format!("reading the offers of SKU {listing}: {error}"), &answer.body)
                    });
                return Err((Some(status), verdict));
            }
            let Ok(page) = serde_json::from_str::<Offers>(&answer.body) else {
                let error = format!("getOffers answered without an offers[] page: {}", truncate(&answer.body));
                return Err((Some(status), Verdict::Retry { reason: "unreadable_answer", error }));
            };
            published.extend(page.offers.into_iter().filter(|offer| offer.status == "PUBLISHED").map(|offer| {
                PublishedOffer { offer_id: offer.offer_id, available_quantity: offer.available_quantity }
            }));
            // The access token goes with the next page's request: only to eBay's own host,
            // whatever the answer names.
            match page.next {
                Some(next) if next.starts_with(&format!("{base_url}/")) => url = next,
                Some(next) if next.starts_with('/') => url = format!("{base_url}{next}"),
                Some(next) => {
                    let error = format!("getOffers named a next page off {base_url}: {}", truncate(&next));
                    return Err((Some(status), Verdict::Retry { reason: "unexpected_answer", error }));
                }
                None => return Ok(published),
            }
        }
        tracing::warn!(sku = listing, pages = MAX_OFFER_PAGES, "more pages of offers than read, the rest left alone");
        Ok(published)
    }
}

fn offer_ids_of(offers: &[PublishedOffer]) -> Vec<String> {
    offers.iter().map(|offer| offer.offer_id.clone()).collect()
}

/// A lookup's failure that every other lookup would meet alike.
fn fails_the_channel(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Throttled { .. } | Verdict::Unavailable { .. } | Verdict::Blocked { .. })
}
