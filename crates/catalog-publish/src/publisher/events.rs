//! What a channel's publisher tells its caller (`PublishEvents`, `PublishRound`) and why it
//! stops (`PublishError`).

use std::time::Duration;

use catalog_store::{OutboxEntry, PublishRecord, ResolvedDeadLetter, StoreError};

use crate::holding::Renewal;

/// Told about every finished attempt and what recording it did, for metrics and logs kept
/// by the caller.
pub trait PublishEvents: Send + Sync + 'static {
    /// An attempt, once recorded.
    fn attempted(&self, entry: &OutboxEntry, record: &PublishRecord);
    /// A dead letter that a recorded round resolved: the channel took a version at least as
    /// new as the one that failed.
    fn resolved(&self, letter: &ResolvedDeadLetter);
    /// A claimed item version that was not sent because its lease had less than a request
    /// timeout left (the rate limit held it too long); it is claimed again once the lease
    /// has passed.
    fn lease_ran_out(&self, entry: &OutboxEntry);
    /// A round, once recorded: how full its claim came back and where its time went.
    fn round(&self, _round: &PublishRound) {}
    /// A renewal of the claims of a round that outlasts the configured lease.
    fn lease_renewed(&self, _channel: &str, _renewal: Renewal) {}
    /// Recording a round failed; the lane retries it until it is recorded.
    fn record_failed(&self, _channel: &str, _error: &StoreError) {}
    /// Another store step of the lane failed (`step`: claiming a round, reading the SKUs
    /// several tenants hold, giving claims back, the drain's look at the outbox); the lane
    /// goes idle and tries again, so a store that keeps failing sends nothing until counted.
    fn store_failed(&self, _channel: &str, _step: &'static str, _error: &StoreError) {}
    /// A send the channel refused until an operator acts (`Verdict::Blocked`: credentials
    /// refused, a Shopify shop frozen or locked): the channel is held, its items wait unspent.
    /// Told once per send, not per item.
    fn blocked(&self, _channel: &str, _reason: &str, _error: &str) {}
}

/// One recorded round of a channel's lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRound {
    pub channel: String,
    /// Item versions claimed…
    pub n_items: usize,
    /// …of at most this many: a claim that comes back full says more were due than a round
    /// holds, so the channel is behind (at capacity, or catching up).
    pub limit: usize,
    /// Claiming from the outbox.
    pub claim: Duration,
    /// Sending (rate limit waits included) until the last answer.
    pub send: Duration,
    /// Recording every attempt in the store.
    pub record: Duration,
}

/// Why a channel's publisher stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("building the HTTP client: {0}")]
    Client(String),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A drain (a file or `--once` run) found the platform refusing the channel until an
    /// operator acts (decision 0059: credentials refused, a shop frozen or locked): what waits
    /// stays queued, neither sent nor dead-lettered, for a run after that.
    #[error("channel {channel} takes no write until an operator acts ({reason}: {error}); what waits for it stays queued for the next run")]
    Blocked { channel: String, reason: &'static str, error: String },
}
