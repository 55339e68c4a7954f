//! The channel adapter interface: what a channel speaks. The drain loop (`ChannelPublisher`)
//! claims, applies the channel's stock rules, paces, batches, retries and records; an adapter
//! only turns item versions into the platform's request and its answer into one [`Verdict`]
//! per item version.

use std::time::Duration;

use async_trait::async_trait;
use catalog_store::OutboxEntry;

use crate::response::Verdict;

/// One item version as its channel is sent it: the outbox entry, and the listing and
/// quantity the channel's rules give (`catalog_core::ChannelRules::quantity_for`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub entry: OutboxEntry,
    /// The channel's id of the listing: the SKU, or what the channel's listing map says.
    pub listing: String,
    /// The quantity the channel is offered: what the adapter sends.
    pub quantity: i64,
    /// How the rules reached it, recorded with the attempt (`catalog 12; buffer 2: 10`).
    pub rule: String,
}

/// How one send ended, before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub verdict: Verdict,
    /// The platform's status code, when it answered.
    pub status: Option<u16>,
    pub latency: Duration,
}

/// What one request told about the channel's budget besides its answers: a platform that
/// reports its remaining budget (a cost bucket, a token count) asks the channel to wait
/// before the next request, although this one went through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sent {
    /// One attempt per item version sent, in the order given.
    pub attempts: Vec<Attempt>,
    /// Hold the whole channel this long before its next request (a budget running low).
    pub pause: Option<Duration>,
}

impl Sent {
    /// Every item version of a request ended the same way (one answer for the request).
    pub fn each(n_publishes: usize, attempt: Attempt) -> Self {
        Self { attempts: vec![attempt; n_publishes], pause: None }
    }
}

/// One channel's protocol.
#[async_trait]
pub trait ChannelAdapter: Send + Sync + std::fmt::Debug + 'static {
    /// The most item versions one request may carry: 1 for a platform that sets one
    /// listing per request, its documented bound for one with a batch endpoint.
    fn max_batch(&self) -> usize {
        1
    }

    /// Whether the platform refuses a version older than the one it holds (the storefront
    /// contract's 409). A platform that takes the last write may still apply a request the
    /// worker gave up on after a newer one: an item whose request went unanswered waits a
    /// lease before it is sent again (decision 0043).
    fn refuses_older_versions(&self) -> bool {
        false
    }

    /// Whether a request names the item's tenant beside its listing (the storefront contract's
    /// `tenant_id`). A marketplace knows a seller account's listings by SKU alone: a SKU that
    /// items of several tenants the channel serves hold is written for none of them, since each
    /// would overwrite the others' quantity (decision 0056).
    fn names_the_tenant(&self) -> bool {
        false
    }

    /// Gets what the channel's requests go out with (an OAuth access token) before the drain
    /// loop starts a request's timeout: a token endpoint that is slow or never answers spends
    /// the channel's time, not the items' attempts. Fetched under that timeout, the timeout
    /// fired first, and every item version of the request was recorded as a `timeout`
    /// though no request went out. A failure is the verdict of every item version of the
    /// request, `Verdict::Unavailable` or `Verdict::Blocked`: the channel is held, and no
    /// attempt is spent. The drain loop bounds the call by the request timeout too, and takes
    /// one that outlasts it for `token_unavailable`. Nothing to get, by default.
    async fn obtain_credentials(&self) -> Result<(), Verdict> {
        Ok(())
    }

    /// Sends up to [`ChannelAdapter::max_batch`] item versions (of distinct items) in one
    /// request, or as few as the platform allows, and classifies the answer for each. Never
    /// fails: a transport failure is a `Verdict::Retry` like a 5xx. The drain loop bounds
    /// the call by the channel's request timeout and takes one rate-limit permit for it.
    async fn send(&self, batch: &[Publish]) -> Sent;
}
