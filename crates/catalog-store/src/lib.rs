//! The catalog store port: the trait every durable store implements, the backend-independent
//! half of batch application, and the contract suite each implementation must pass.

pub mod batch;
#[cfg(feature = "contract-tests")]
pub mod contract;
mod error;
mod model;
mod port;
pub mod rows;

pub use error::StoreError;
pub use model::{
    BatchInput, BatchResult, ChangedItem, ChannelRoute, Checkpoint, DeadLetter, IncomingEvent, ItemTrace, JournalEntry,
    JournalWindow, OutboxClaim, OutboxDepth, OutboxEntry, PendingPublish, Provenance, PublishAttempt, PublishOutcome,
    PublishRecord, SourceRef, StoreConfig, StoredItem, StoredOffer, SyncStatus, TenantFlags,
};
pub use port::CatalogStore;
