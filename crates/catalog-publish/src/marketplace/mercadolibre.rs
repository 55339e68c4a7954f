//! Mercado Libre's Items API as a channel adapter (`docs/channels/mercadolibre.md`):
//! `PUT /items/{item_id}` with `{"available_quantity": N}`, or for one variation of an item
//! (listing `MLA123456789/174997747229`) `PUT /items/{item_id}/variations/{variation_id}` with
//! the same body (decision 0024), or a user product's stock at one location (`up:…`, decision
//! 0027: its version read, then written), one listing per request, with an access token from Mercado Libre's OAuth endpoint (refresh-token grant, client id and secret
//! in the form) fetched again once when Mercado Libre says it expired. Its refresh tokens are
//! single-use: each refresh answers a new one, which the token cache keeps for the next.

mod classify;
mod read;
mod stock;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use serde::Serialize;

use super::{exchange, http_client, obtain_access_token, one_at_a_time, with_token, Answer};
use crate::adapter::{Attempt, ChannelAdapter, Publish, Sent};
use crate::channel::Secret;
use crate::oauth::{ClientAuth, Grant, TokenCache, TokenEndpoint};
use crate::publisher::PublishError;
use crate::response::Verdict;

pub use classify::{classify_mercadolibre, classify_mercadolibre_item};
pub use read::{parse_multiget, MAX_READS_PER_REQUEST};
pub use stock::{UserProductListing, Warehouse, USER_PRODUCT_PREFIX};

/// Mercado Libre's API host, the same for every site (MLA, MLB, MLM, …).
pub const DEFAULT_BASE_URL: &str = "https://api.mercadolibre.com";
/// Mercado Libre's OAuth token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://api.mercadolibre.com/oauth/token";

/// Where Mercado Libre is and the seller's OAuth grant for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MercadoLibreConfig {
    /// The API host, [`DEFAULT_BASE_URL`] in production; requests go to
    /// `{base_url}/items/{item_id}`.
    pub base_url: String,
    /// The OAuth token endpoint, [`DEFAULT_TOKEN_URL`] in production.
    pub token_url: String,
    /// The application's id (`client_id`).
    pub client_id: String,
    /// The application's secret key (`client_secret`).
    pub client_secret: Secret,
    /// The seller's refresh token (`TG-…`, granted with `offline_access`). Single-use: each
    /// refresh answers with the next one.
    pub refresh_token: Secret,
    /// Where the rotated refresh token is kept across restarts (written before its access
    /// token is used; read at start in place of `refresh_token` once it exists, and before
    /// each refresh, as the workers draining the channel share it). Without it a restart uses
    /// `refresh_token` again, which the first refresh has spent.
    pub refresh_token_file: Option<std::path::PathBuf>,
}

/// A Mercado Libre seller's listings as a channel: the listing of an item version is the
/// item id the channel's listing map gives its SKU (`MLA123456789`), the item id and one
/// of its variation ids (`MLA123456789/174997747229`), or a user product's stock at the
/// selling address (`up:MLBU206642488`) or at one warehouse (`up:MLBU206642488@9876543/MXP123451`).
#[derive(Debug)]
pub struct MercadoLibreChannel {
    config: MercadoLibreConfig,
    client: reqwest::Client,
    tokens: TokenCache,
}

impl MercadoLibreChannel {
    /// A client that keeps up to `connections` connections open and gives up on a request
    /// after `request_timeout`; the token endpoint is asked through the same client.
    pub fn new(
        config: MercadoLibreConfig,
        request_timeout: Duration,
        connections: usize,
    ) -> Result<Self, PublishError> {
        let client = http_client(request_timeout, connections, None)?;
        let endpoint = TokenEndpoint {
            url: config.token_url.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            grant: Grant::RefreshToken(config.refresh_token.clone()),
            client_auth: ClientAuth::Form,
            extra_form: vec![],
            extra_headers: vec![],
        };
        let mut tokens = TokenCache::new(endpoint, client.clone());
        if let Some(path) = &config.refresh_token_file {
            tokens = tokens.keeping_refresh_token_in(path.clone()).map_err(|error| {
                PublishError::Credentials(format!("reading the refresh token file {}: {error}", path.display()))
            })?;
        }
        Ok(Self { config, client, tokens })
    }

    /// Access tokens fetched so far.
    pub async fn tokens_fetched(&self) -> u64 {
        self.tokens.n_fetched().await
    }
}

/// A listing on Mercado Libre: an item, or one variation of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MercadoLibreListing<'a> {
    /// The item id, letters and digits (`MLA123456789`).
    pub item: &'a str,
    /// The variation id, digits (`174997747229`), for an item with variations.
    pub variation: Option<&'a str>,
}

impl<'a> MercadoLibreListing<'a> {
    /// Reads `MLA123456789` or `MLA123456789/174997747229`; `None` for anything else. Both ids
    /// become path segments: anything else is a listing map mistake, and must not address
    /// another resource.
    pub fn parse(listing: &'a str) -> Option<Self> {
        let (item, variation) = match listing.split_once('/') {
            Some((item, variation)) => (item, Some(variation)),
            None => (listing, None),
        };
        let item_id = id_like(item);
        let variation_id = variation
            .is_none_or(|variation| !variation.is_empty() && variation.bytes().all(|byte| byte.is_ascii_digit()));
        (item_id && variation_id).then_some(Self { item, variation })
    }

    /// The path a quantity is written to.
    fn path(&self) -> String {
        match self.variation {
            Some(variation) => format!("/items/{}/variations/{variation}", self.item),
            None => format!("/items/{}", self.item),
        }
    }
}

/// An id that may stand in a path segment or a body field: letters and digits, at least one.
fn id_like(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

/// Mercado Libre answers 401 for an expired or invalid access token.
fn expired(answer: &Answer) -> bool {
    answer.status == 401
}

/// The request body, for an item or a variation alike.
#[derive(Serialize)]
struct AvailableQuantity {
    available_quantity: i64,
}

#[async_trait]
impl ChannelAdapter for MercadoLibreChannel {
    /// The access token is fetched before the request's timeout starts.
    async fn obtain_credentials(&self) -> Result<(), Verdict> {
        obtain_access_token(&self.tokens).await
    }

    async fn send(&self, batch: &[Publish]) -> Sent {
        // One listing per request: no batch endpoint for writes was found (the multiget
        // `GET /items?ids=` only reads).
        one_at_a_time(batch, |publish| async move { (self.set_available_quantity(publish).await, None) }).await
    }
}

impl MercadoLibreChannel {
    /// `PUT /items/{item_id}` (or `…/variations/{variation_id}`) for one item version, with
    /// the quantity its channel rules give. Mercado Libre has no idempotency key for it;
    /// setting an absolute quantity again is harmless.
    async fn set_available_quantity(&self, publish: &Publish) -> Attempt {
        let started = Instant::now();
        if let Some(listing) = UserProductListing::parse(&publish.listing) {
            return self.set_location_stock(publish, listing).await;
        }
        let Some(listing) = MercadoLibreListing::parse(&publish.listing) else {
            let verdict = Verdict::DeadLetter {
                reason: "invalid_listing".to_owned(),
                error: format!(
                    "{:?} is not a Mercado Libre item id such as MLA123456789, nor one with a variation id such as MLA123456789/174997747229, nor a user product's stock such as up:MLBU206642488 or up:MLBU206642488@9876543/MXP123451",
                    publish.listing
                ),
                body: None,
            };
            return Attempt { verdict, status: None, latency: started.elapsed() };
        };
        let url = format!("{}{}", self.config.base_url.trim_end_matches('/'), listing.path());
        let body = AvailableQuantity { available_quantity: publish.quantity };
        let traceparent = publish.entry.traceparent.as_deref();
        let answer = with_token(&self.tokens, expired, |token| {
            let mut request =
                self.client.put(&url).bearer_auth(token.expose()).header("Accept", "application/json").json(&body);
            if let Some(traceparent) = traceparent {
                request = request.header("traceparent", traceparent);
            }
            exchange(request)
        })
        .await;
        // Only an item written whole is checked for the quantity it shows: a variation's
        // answer is not documented, and a user product's stock is written elsewhere.
        let classify: fn(&Answer, &Publish) -> Verdict = match listing.variation {
            None => item_verdict_of,
            Some(_) => verdict_of,
        };
        let (verdict, status) = match answer {
            Ok(answer) => (classify(&answer, publish), Some(answer.status)),
            Err(verdict) => (verdict, None),
        };
        Attempt { verdict, status, latency: started.elapsed() }
    }
}

/// What Mercado Libre's answer to a write of `publish` says, as of now.
fn verdict_of(answer: &Answer, publish: &Publish) -> Verdict {
    classify_mercadolibre(answer.status, answer.header("retry-after"), &answer.body, &publish.entry.item, Utc::now())
}

/// What Mercado Libre's answer to `PUT /items/{item_id}` for `publish` says, as of now: also
/// whether the quantity it shows is the one sent.
fn item_verdict_of(answer: &Answer, publish: &Publish) -> Verdict {
    let retry_after = answer.header("retry-after");
    classify_mercadolibre_item(
        answer.status,
        retry_after,
        &answer.body,
        publish.quantity,
        &publish.entry.item,
        Utc::now(),
    )
}
