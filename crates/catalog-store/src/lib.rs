//! The catalog store ports: one trait per role (batches, outbox, flags, reads) every durable
//! store implements, the backend-independent half of batch application, and the contract
//! suite each implementation must pass.

mod admin;
pub mod batch;
mod checkpoint;
#[cfg(feature = "contract-tests")]
pub mod contract;
mod dead_letter;
mod error;
mod feed;
pub mod fence;
mod journal_window;
mod model;
mod port;
mod reconcile;
mod retention;
mod rollout;
mod route;
pub mod rows;
mod signals;
mod windows;

pub use admin::{
    event_ids_in_effect, AuditEntry, AuditRecord, ChannelCount, DeadLetterFilter, DeadLetterRetry, EventsPage,
    NewToken, OutcomeCounts, PublishAttemptCount, PublishedVersion, RejectionFilter, Role, TokenHash, TokenInfo,
    TokenMatch, TracePage, MAX_TRACE_ATTEMPTS,
};
pub use checkpoint::{another_log, log_id_of, Checkpoint, Position};
pub use dead_letter::{
    DeadLetter, DeadLetterCount, DeadLetterHeal, DeadLetterResolution, HealRound, HealedDeadLetter, ResolvedDeadLetter,
};
pub use error::StoreError;
pub use feed::{
    parse_run_times, render_run_times, CompletedWindow, FeedDrift, FeedDriftRecord, FeedJournalDay, FeedKey, FeedOffer,
    FeedRunKind, FeedRunRequest, FeedSettings, FeedStore, FullRefresh, PullFailure, StoredFeed, WindowKind, PULL_STAGE,
};
pub use journal_window::{JournalWindow, WindowCursor, WindowPage, WindowPages};
pub use model::{
    BatchInput, BatchResult, ChangedItem, HeldClaim, IncomingEvent, ItemTrace, JournalEntry, OutboxClaim, OutboxDepth,
    OutboxEntry, PendingPublish, Provenance, PublishAttempt, PublishOutcome, PublishRecord, SentQuantity, SourceRef,
    StoreConfig, StoredOffer, SyncStatus, TenantFlags, RAW_PAYLOAD_PREFIX_BYTES,
};
pub use port::{AdminStore, BatchStore, CatalogStore, FlagStore, OutboxStore, ReadStore, WINDOW_PAGE};
pub use reconcile::{ChannelItem, DriftCorrection, DriftCount, DriftRecord, ReconcileStore};
pub use retention::{
    ArchiveSink, DroppedSegment, JournalHorizon, KeptSegment, RetentionPolicy, RetentionReport, RetentionStore,
};
pub use rollout::{
    restarts_stage, rollout_suppliers, stored_rollout, switch_as_decided, AppliedItem, RolloutChange,
    RolloutChangeRecord, RolloutState, RolloutStore, SignOff, SignOffRecord,
};
pub use route::{ChannelRoute, SharedSku};
pub use signals::{
    assemble_facts, count, gate_sample, gate_samples_of_span, offer_traces, winners_beyond, FactsQuery, FactsReport,
    JournalTail, SampledValue, SignalSample, SignalStore, StoredGap, TenantCounts, TraceCheck, UntracedRow,
};
pub use windows::{compact_windows, gaps, gaps_at, WindowMerge};

/// Every store role in one import, for code that calls a whole store:
/// `use catalog_store::prelude::*;`.
pub mod prelude {
    pub use crate::feed::FeedStore;
    pub use crate::port::{AdminStore, BatchStore, CatalogStore, FlagStore, OutboxStore, ReadStore};
    pub use crate::reconcile::ReconcileStore;
    pub use crate::retention::RetentionStore;
    pub use crate::rollout::RolloutStore;
    pub use crate::signals::SignalStore;
}
