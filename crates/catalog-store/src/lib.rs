//! The catalog store ports: one trait per role (batches, outbox, flags, reads) every durable
//! store implements, the backend-independent half of batch application, and the contract
//! suite each implementation must pass.

mod admin;
pub mod batch;
#[cfg(feature = "contract-tests")]
pub mod contract;
mod dead_letter;
mod error;
mod model;
mod port;
mod reconcile;
pub mod rows;

pub use admin::{
    event_ids_in_effect, AuditEntry, AuditRecord, DeadLetterFilter, DeadLetterRetry, EventsPage, NewToken,
    OutcomeCounts, PublishedVersion, Role, TokenHash, TokenInfo, TokenMatch, TracePage,
};
pub use dead_letter::{
    DeadLetter, DeadLetterCount, DeadLetterHeal, DeadLetterResolution, HealRound, HealedDeadLetter, ResolvedDeadLetter,
};
pub use error::StoreError;
pub use model::{
    BatchInput, BatchResult, ChangedItem, ChannelRoute, Checkpoint, IncomingEvent, ItemTrace, JournalEntry,
    JournalWindow, OutboxClaim, OutboxDepth, OutboxEntry, PendingPublish, Position, Provenance, PublishAttempt,
    PublishOutcome, PublishRecord, SourceRef, StoreConfig, StoredItem, StoredOffer, SyncStatus, TenantFlags,
    RAW_PAYLOAD_PREFIX_BYTES,
};
pub use port::{AdminStore, BatchStore, CatalogStore, FlagStore, OutboxStore, ReadStore};
pub use reconcile::{ChannelItem, DriftCorrection, DriftRecord, ReconcileStore};

/// Every store role in one import, for code that calls a whole store:
/// `use catalog_store::prelude::*;`.
pub mod prelude {
    pub use crate::port::{AdminStore, BatchStore, CatalogStore, FlagStore, OutboxStore, ReadStore};
    pub use crate::reconcile::ReconcileStore;
}
