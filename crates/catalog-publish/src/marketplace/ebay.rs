//! eBay's Sell Inventory API as a channel adapter (`docs/channels/ebay.md`): one
//! `bulkUpdatePriceQuantity` request sets the available quantity of up to 25 seller SKUs, on
//! each inventory item and each of its published offers (their ids read with `getOffers` and
//! kept an hour), and is answered entry by entry, with a user access token from eBay's OAuth
//! endpoint (refresh-token grant, Basic client authentication) fetched again once when eBay
//! says it expired.

mod classify;
mod offers;
mod read;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use serde::Serialize;

use super::{exchange, http_client, obtain_access_token, with_token, Answer};
use crate::adapter::{Attempt, ChannelAdapter, Publish, Sent};
use crate::channel::Secret;
use crate::oauth::{ClientAuth, Grant, TokenCache, TokenEndpoint};
use crate::publisher::PublishError;
use crate::response::Verdict;
use classify::{access_token_refused, describe_error_list, error_id_list};
use offers::OfferIds;

/// eBay's production API host (the sandbox is `https://api.sandbox.ebay.com`).
pub const DEFAULT_BASE_URL: &str = "https://api.ebay.com";
/// eBay's OAuth token endpoint (the sandbox's is on `api.sandbox.ebay.com`).
pub const DEFAULT_TOKEN_URL: &str = "https://api.ebay.com/identity/v1/oauth2/token";
/// The one scope the refresh asks for: enough to manage inventory, a subset of what the
/// seller granted.
pub const SELL_INVENTORY_SCOPE: &str = "https://api.ebay.com/oauth/api_scope/sell.inventory";
/// The most SKUs one `bulkUpdatePriceQuantity` request carries. eBay's docs disagree on
/// what the 25 counts: the `BulkPriceQuantity` type and the bulk-updates guide say "up to 25"
/// inventory items "(and the active offers associated with them)", the method's text says up
/// to 25 offers of one SKU. The type's reading (25 SKUs per request, each with its published
/// offers, mostly one) is the one used here; it was not confirmed against the sandbox. Should
/// eBay count offers, a batch whose SKUs hold more than 25 offers in all would be refused whole
/// (a 400, dead-lettered with eBay's body), and this limit must count offers instead.
pub const MAX_SKUS_PER_REQUEST: usize = 25;
/// What a 429 without `Retry-After` waits. eBay documents no throttling header, and its limits
/// are call quotas per window (mostly a day), so retrying after a second would mostly be
/// refused again; a minute keeps the refusals few and the delay after a reset short.
pub const THROTTLED_WAIT: Duration = Duration::from_secs(60);

const BULK_UPDATE_PATH: &str = "/sell/inventory/v1/bulk_update_price_quantity";
/// `403 Access denied`: seen from eBay when the access token has expired (hendt/ebay-api#148),
/// otherwise an access token without the scope the call needs. Either way a new token is
/// fetched once (`expired`).
const ACCESS_DENIED_ERROR_ID: u64 = 1100;

pub use classify::{classify_ebay, SentSku};
pub use offers::{LOOKUPS_AT_ONCE, OFFER_IDS_TTL};
pub use read::{parse_bulk_get, MAX_READS_PER_REQUEST};

/// Where eBay is and the seller's OAuth grant for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbayConfig {
    /// The API host, [`DEFAULT_BASE_URL`] in production; requests go to
    /// `{base_url}/sell/inventory/v1/bulk_update_price_quantity`.
    pub base_url: String,
    /// The OAuth token endpoint, [`DEFAULT_TOKEN_URL`] in production.
    pub token_url: String,
    /// The application's client id (App ID).
    pub client_id: String,
    /// The application's client secret (Cert ID).
    pub client_secret: Secret,
    /// The seller's refresh token; eBay does not rotate it.
    pub refresh_token: Secret,
}

/// An eBay seller's inventory as a channel: the listing of an item version is its seller SKU.
#[derive(Debug)]
pub struct EbayChannel {
    config: EbayConfig,
    client: reqwest::Client,
    tokens: TokenCache,
    offer_ids: OfferIds,
}

impl EbayChannel {
    /// A client that keeps up to `connections` connections open and gives up on a request
    /// after `request_timeout`; the token endpoint is asked through the same client.
    pub fn new(config: EbayConfig, request_timeout: Duration, connections: usize) -> Result<Self, PublishError> {
        let client = http_client(request_timeout, connections, None)?;
        let endpoint = TokenEndpoint {
            url: config.token_url.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            grant: Grant::RefreshToken(config.refresh_token.clone()),
            client_auth: ClientAuth::Basic,
            extra_form: vec![("scope".to_owned(), SELL_INVENTORY_SCOPE.to_owned())],
            extra_headers: vec![],
        };
        let tokens = TokenCache::new(endpoint, client.clone());
        Ok(Self { config, client, tokens, offer_ids: OfferIds::default() })
    }

    /// Access tokens fetched so far.
    pub async fn tokens_fetched(&self) -> u64 {
        self.tokens.n_fetched().await
    }
}

/// The request body: `BulkPriceQuantity`.
#[derive(Serialize)]
struct BulkPriceQuantity<'a> {
    requests: Vec<PriceQuantity<'a>>,
}

/// One SKU's entry: the quantity shipped to buyers, and the same quantity on each published
/// offer. eBay shows a buyer the lower of the two, so an offer left alone would cap the
/// listing at its last `availableQuantity` however far the catalog rises. A SKU without a
/// published offer sends no `offers` (eBay's `offers` does not work with unpublished ones).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PriceQuantity<'a> {
    sku: &'a str,
    ship_to_location_availability: ShipToLocationAvailability,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    offers: Vec<OfferPriceQuantity<'a>>,
}

#[derive(Serialize)]
struct ShipToLocationAvailability {
    quantity: i64,
}

/// One offer's entry: `OfferPriceQuantity` without a price, which this adapter leaves alone.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OfferPriceQuantity<'a> {
    offer_id: &'a str,
    available_quantity: i64,
}

#[async_trait]
impl ChannelAdapter for EbayChannel {
    /// The access token is fetched before the request's timeout starts.
    async fn obtain_credentials(&self) -> Result<(), Verdict> {
        obtain_access_token(&self.tokens).await
    }

    fn max_batch(&self) -> usize {
        MAX_SKUS_PER_REQUEST
    }

    async fn send(&self, batch: &[Publish]) -> Sent {
        let started = Instant::now();
        if batch.is_empty() {
            return Sent::default();
        }
        let listings: Vec<&str> = batch.iter().map(|publish| publish.listing.as_str()).collect();
        let looked_up = self.published_offers(&listings).await;
        // A SKU whose offers could not be read is not sent: its inventory item alone would
        // succeed and leave the listing capped. It is retried with its own verdict.
        let mut attempts: Vec<Option<Attempt>> = looked_up
            .iter()
            .map(|result| {
                result.as_ref().err().map(|(status, verdict)| Attempt {
                    verdict: verdict.clone(),
                    status: *status,
                    latency: started.elapsed(),
                })
            })
            .collect();
        let to_send: Vec<(usize, &Publish, &[String])> = batch
            .iter()
            .zip(&looked_up)
            .enumerate()
            .filter_map(|(index, (publish, result))| Some((index, publish, result.as_ref().ok()?.as_slice())))
            .collect();
        if !to_send.is_empty() {
            let BulkAnswer { verdicts, entry_by_entry } = self.update(&to_send).await;
            let latency = started.elapsed();
            for ((index, publish, offer_ids), (status, verdict)) in to_send.iter().zip(verdicts) {
                // An offer eBay refused may be one it no longer holds: read the SKU's offers
                // again before the next send. A request refused whole (throttled, failing,
                // unanswered) says nothing of any offer: reading them all again would spend
                // the throttled quota on lookups.
                let accepted = matches!(&verdict, Verdict::Answered(result) if result.accepted());
                if entry_by_entry && !accepted && !offer_ids.is_empty() {
                    self.offer_ids.forget(&publish.listing);
                }
                attempts[*index] = Some(Attempt { verdict, status, latency });
            }
        }
        let attempts = attempts
            .into_iter()
            .map(|attempt| attempt.expect("every SKU is either looked up in vain or sent"))
            .collect();
        // eBay's answers say nothing of the quota left (that is the Analytics API's), so no pause.
        Sent { attempts, pause: None }
    }
}

/// What eBay answered a `bulkUpdatePriceQuantity`.
struct BulkAnswer {
    /// Each SKU's verdict, in the order sent, with eBay's status when it answered.
    verdicts: Vec<(Option<u16>, Verdict)>,
    /// Whether eBay answered entry by entry (200, 207), rather than refusing the request whole
    /// (throttled, failing, unanswered), which says nothing of any SKU's offers.
    entry_by_entry: bool,
}

impl EbayChannel {
    /// One `bulkUpdatePriceQuantity` request for `to_send` (each SKU with its published offers'
    /// ids): one verdict per SKU, in order, with eBay's status when it answered.
    async fn update(&self, to_send: &[(usize, &Publish, &[String])]) -> BulkAnswer {
        let url = format!("{}{BULK_UPDATE_PATH}", self.config.base_url.trim_end_matches('/'));
        let body = BulkPriceQuantity {
            requests: to_send
                .iter()
                .map(|(_, publish, offer_ids)| PriceQuantity {
                    sku: &publish.listing,
                    ship_to_location_availability: ShipToLocationAvailability { quantity: publish.quantity },
                    offers: offer_ids
                        .iter()
                        .map(|offer_id| OfferPriceQuantity { offer_id, available_quantity: publish.quantity })
                        .collect(),
                })
                .collect(),
        };
        // One request has one parent span: the first item version that carries a trace. eBay
        // has no idempotency key for this call; setting an absolute quantity again is harmless.
        let traceparent = to_send.iter().find_map(|(_, publish, _)| publish.entry.traceparent.as_deref());
        let answer = with_token(&self.tokens, expired, |token| {
            let mut request = self.client.post(&url).bearer_auth(token.expose()).json(&body);
            if let Some(traceparent) = traceparent {
                request = request.header("traceparent", traceparent);
            }
            exchange(request)
        })
        .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(verdict) => {
                return BulkAnswer { verdicts: vec![(None, verdict); to_send.len()], entry_by_entry: false }
            }
        };
        let sent: Vec<SentSku<'_>> = to_send
            .iter()
            .map(|(_, publish, offer_ids)| SentSku { listing: &publish.listing, offer_ids, item: &publish.entry.item })
            .collect();
        let verdicts = classify_ebay(answer.status, answer.header("retry-after"), &answer.body, &sent, Utc::now());
        BulkAnswer {
            verdicts: verdicts.into_iter().map(|(status, verdict)| (Some(status), verdict)).collect(),
            entry_by_entry: matches!(answer.status, 200 | 207),
        }
    }
}

/// Whether eBay refused the access token `answer` was sent with, so that a new one is worth
/// one more try: 401 (errorId 1001, "Invalid access token"), or 403 errorId 1100 "Access
/// denied", which eBay was seen to answer for an expired token (hendt/ebay-api#148). A token
/// denied for the scope it lacks is denied again with the new one, and then `unauthorized`.
fn expired(answer: &Answer) -> bool {
    access_token_refused(answer.status, &answer.body)
}
