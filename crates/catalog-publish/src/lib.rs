//! Publishing changed items to the storefront and sales channels, per
//! `shared/contracts/storefront-api.md`: the outbox written by `apply_batch` is drained per
//! channel, bursts coalesce into the newest version, throttling and failures are retried,
//! and what cannot succeed is dead-lettered with the answer that said so.

mod channel;
mod publisher;
mod response;

pub use channel::{ChannelConfig, Secret};
pub use publisher::{ChannelPublisher, PublishError, PublishEvents};
pub use response::{
    classify_response, classify_transport, TransportError, Verdict, DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER,
};
