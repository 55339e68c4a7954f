//! The channel adapter interface: what a channel speaks. The drain loop (`ChannelPublisher`)
//! claims, paces, retries and records; an adapter only turns one item version into the
//! platform's request and its answer into a [`Verdict`].

use std::time::Duration;

use async_trait::async_trait;
use catalog_store::OutboxEntry;

use crate::response::Verdict;

/// How one send ended, before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub verdict: Verdict,
    /// The platform's status code, when it answered.
    pub status: Option<u16>,
    pub latency: Duration,
}

/// One channel's protocol.
#[async_trait]
pub trait ChannelAdapter: Send + Sync + std::fmt::Debug + 'static {
    /// Sends one item version and classifies the answer. Never fails: a transport failure
    /// is a `Verdict::Retry` like a 5xx. The drain loop bounds the call by the channel's
    /// request timeout.
    async fn send(&self, entry: &OutboxEntry) -> Attempt;
}
