//! Publishing changed items to the storefront and sales channels, per
//! `shared/contracts/storefront-api.md`: the outbox written by `apply_batch` is drained per
//! channel by one loop (`ChannelPublisher`), bursts coalesce into the newest version,
//! throttling and failures are retried, and what cannot succeed is dead-lettered with the
//! answer that said so. Each channel's stock rules (`catalog_core::ChannelRules`) give every
//! item version its listing and quantity there. What each channel speaks is its
//! `ChannelAdapter`: the storefront contract over HTTP (`StorefrontChannel`), a
//! marketplace's API (`marketplace`), or JSON lines on standard output (`LogChannel`).

mod adapter;
pub mod body;
mod channel;
mod holding;
mod log;
pub mod marketplace;
mod oauth;
mod publisher;
mod readback;
mod response;
mod round;
mod storefront;
mod work;

pub use adapter::{Attempt, ChannelAdapter, Publish, Sent};
pub use channel::{AccountChannel, ChannelConfig, Rate, Secret};
pub use holding::Renewal;
pub use log::LogChannel;
pub use oauth::{ClientAuth, Grant, TokenCache, TokenEndpoint, TokenError};
pub use publisher::{ChannelPublisher, PublishError, PublishEvents, PublishRound, LISTING_SHARED_BY_TENANTS};
pub use readback::{
    catalog_item_id, parse_list, CatalogList, CatalogPage, ChannelReader, LookupReadBack, ReadBack, ReadBackError,
    ShownItem, ShownPage, ShownQuantities, MAX_PAGE,
};
pub use response::{
    classify_response, classify_transport, TransportError, Verdict, DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER,
};
pub use round::{ChannelHold, Refused};
pub use storefront::{canonical_base_url, check_base_url, StorefrontChannel, StorefrontConfig};
pub use work::{WorkSignal, WorkWaiter};
