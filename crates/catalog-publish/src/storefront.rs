//! The storefront contract (`shared/contracts/storefront-api.md`) as a channel adapter:
//! `POST {base_url}/v1/tenants/{tenant}/items/{item}/invalidate` with the item version, its
//! `Idempotency-Key` and the winning event's `traceparent`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use catalog_core::PublishBody;
use chrono::Utc;

use crate::adapter::{Attempt, ChannelAdapter, Publish, Sent};
use crate::body::{read_body_capped, CappedBody, MAX_ANSWER_BYTES};
use crate::channel::Secret;
use crate::publisher::PublishError;
use crate::response::{classify_response, classify_transport, TransportError, MAX_BODY_BYTES};

/// Where a storefront is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorefrontConfig {
    /// `https://host[:port][/prefix]`; requests go to `{base_url}/v1/tenants/{tenant}/items/{item}/invalidate`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<Secret>,
}

impl StorefrontConfig {
    pub fn new(base_url: impl Into<String>, token: Option<Secret>) -> Self {
        Self { base_url: base_url.into().trim_end_matches('/').to_owned(), token }
    }
}

/// Whether `base_url` can be a channel's base URL: an `http` or `https` URL with a host. Checked
/// at start: the HTTP client would refuse anything else on every request, each a failure
/// retried until dead-lettered (`connection: builder error`).
pub fn check_base_url(base_url: &str) -> Result<(), String> {
    canonical_base_url(base_url).map(drop)
}

/// `base_url` checked as [`check_base_url`] does, in one spelling: scheme and host lower-cased,
/// a default port dropped, no trailing `/`. Channels compare base URLs to find the ones on one
/// seller account or rate budget, which `https://Host/` and `https://host` are.
pub fn canonical_base_url(base_url: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(base_url).map_err(|error| format!("{base_url:?} is not a URL ({error})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{base_url:?} is not an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{base_url:?} has no host"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A storefront channel over HTTP.
#[derive(Debug)]
pub struct StorefrontChannel {
    config: StorefrontConfig,
    client: reqwest::Client,
}

impl StorefrontChannel {
    /// A client that keeps up to `connections` connections open and gives up on a request
    /// after `request_timeout`.
    pub fn new(config: StorefrontConfig, request_timeout: Duration, connections: usize) -> Result<Self, PublishError> {
        let client = crate::marketplace::http_client(request_timeout, connections, None)?;
        Ok(Self { config, client })
    }

    pub(crate) fn config(&self) -> &StorefrontConfig {
        &self.config
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

#[async_trait]
impl ChannelAdapter for StorefrontChannel {
    /// A version older than the storefront's is answered 409, never applied.
    fn refuses_older_versions(&self) -> bool {
        true
    }

    /// The invalidate path and body name the tenant: one SKU of two tenants is two items.
    fn names_the_tenant(&self) -> bool {
        true
    }

    async fn send(&self, batch: &[Publish]) -> Sent {
        let mut sent = Sent::default();
        // One item per request: the contract has no batch endpoint.
        for publish in batch {
            sent.attempts.push(self.invalidate(publish).await);
        }
        sent
    }
}

impl StorefrontChannel {
    /// `POST …/invalidate` for one item version, with the quantity its channel rules give.
    async fn invalidate(&self, publish: &Publish) -> Attempt {
        let entry = &publish.entry;
        let item = &entry.item;
        let url = format!("{}/v1/tenants/{}/items/{}/invalidate", self.config.base_url, item.tenant(), item.id());
        let body = PublishBody { quantity: publish.quantity, ..item.publish_body() };
        let mut request = self.client.post(&url).header("Idempotency-Key", item.idempotency_key()).json(&body);
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(traceparent) = &entry.traceparent {
            request = request.header("traceparent", traceparent);
        }
        let started = Instant::now();
        let (verdict, status) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after =
                    response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
                // The body is read as far as the classification reads it: a 2xx's and a 409's
                // whole, up to the cap (a 202 longer than that is accepted, as one whose body
                // cannot be read: only its status is the contract's signal, decision 0067), of
                // any other only what an attempt keeps. A body that cannot be read still leaves
                // the status to decide by.
                let cap =
                    if (200..=299).contains(&status) || status == 409 { MAX_ANSWER_BYTES } else { MAX_BODY_BYTES };
                // A 2xx past the cap is judged by its status alone: a prefix that parses (a
                // `{"accepted": false}` then a megabyte of blanks) is not what it said.
                let text = match read_body_capped(response, cap).await {
                    Ok(body) if body.over_cap && (200..=299).contains(&status) => String::new(),
                    read => read.map(CappedBody::into_text).unwrap_or_default(),
                };
                let verdict = classify_response(status, retry_after.as_deref(), &text, item, Utc::now());
                (verdict, Some(status))
            }
            Err(error) => (classify_transport(&TransportError::from_reqwest(&error)), None),
        };
        Attempt { verdict, status, latency: started.elapsed() }
    }
}
