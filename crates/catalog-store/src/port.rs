//! The store ports, one trait per role: applying batches, the outbox and publish records,
//! sync flags, and the reads behind support and signals. A component asks for the role it
//! needs (`&dyn ReadStore` for a read-only service), and `CatalogStore` is all of them, for
//! the processes that open a whole store.

use std::time::Duration;

use async_trait::async_trait;
use catalog_core::{CatalogItem, EventId, ItemId, ItemKey, Sku, SupplierId, TenantId};
use chrono::{DateTime, Utc};

use crate::admin::{
    AuditEntry, AuditRecord, DeadLetterFilter, DeadLetterRetry, EventsPage, NewToken, OutcomeCounts,
    PublishAttemptCount, PublishedVersion, RejectionFilter, TokenHash, TokenInfo, TokenMatch, TracePage,
};

use crate::dead_letter::{DeadLetter, DeadLetterCount, DeadLetterHeal, HealRound, ResolvedDeadLetter};
use crate::error::StoreError;
use crate::journal_window::{JournalWindow, WindowPage, WindowPages};
use crate::model::{
    BatchInput, BatchResult, Checkpoint, HeldClaim, ItemTrace, JournalEntry, OutboxClaim, OutboxDepth, OutboxEntry,
    Position, PublishRecord, SyncStatus, TenantFlags,
};
use crate::route::SharedSku;

/// Rows a journal window's page holds when its reader does not say: a replay's batch.
pub const WINDOW_PAGE: usize = 5_000;

/// Applying source batches: the write path of the worker and of replay.
#[async_trait]
pub trait BatchStore: Send + Sync + std::fmt::Debug {
    /// Applies a batch in ONE transaction: journal rows, offer and item changes (decided by
    /// `catalog-core`), outbox rows and the batch's checkpoints. Re-applying a committed
    /// batch changes no state (its events are duplicates, its checkpoints do not move back).
    /// Concurrent callers with overlapping keys both succeed with the correct result.
    async fn apply_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError>;

    /// Plans and writes `batch` exactly as `apply_batch` would, returns what it would do, and
    /// rolls everything back: nothing is visible afterwards.
    async fn preview_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError>;

    /// Every stored checkpoint of a source, by partition.
    async fn checkpoints(&self, source: &str) -> Result<Vec<Checkpoint>, StoreError>;

    /// Moves a partition's stored checkpoint back from the offset `from` to `to` (its offset
    /// and cursor: the log it is of, or none), if it is still at `from`; the only way a
    /// checkpoint moves back, and the only way one moves to another log. For a source partition
    /// that now ends below its checkpoint (a Kafka topic recreated or truncated, decision
    /// 0040): what it holds below `from` was never applied. `false`: the checkpoint was not
    /// at `from` (another member moved it), and nothing changed.
    async fn rewind_checkpoint(
        &self,
        source: &str,
        partition: i32,
        from: i64,
        to: &Position,
    ) -> Result<bool, StoreError>;
}

/// The outbox and what publishers record: claims, attempts, published versions, dead letters.
#[async_trait]
pub trait OutboxStore: Send + Sync + std::fmt::Debug {
    /// Claims up to `claim.limit` publishes of `channel` that are due: for each item, only
    /// its newest waiting version (older ones are coalesced away when it is recorded), and
    /// only once it has settled (`claim.settle`) or waited long enough (`claim.max_wait`).
    /// A claimed entry is not handed to another caller until `claim.lease` has passed or it
    /// is recorded, so several publishers may drain one outbox and no item version is sent
    /// twice concurrently.
    async fn claim_outbox(&self, channel: &str, claim: &OutboxClaim) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Records a finished attempt. `Published` and `Superseded` remove the item's waiting
    /// versions up to the one the channel now holds, remember that version, and resolve the
    /// item's open dead letter on the channel if it failed at that version or an older one;
    /// `RetryAt` makes the entry due again then and counts a failure (only while the row
    /// still holds the version that failed: a newer one starts with none); `ThrottledUntil`
    /// makes it due again then and counts nothing; `DeadLettered` removes it and writes (or
    /// counts on) an open dead letter with the reason, error, body and version. Returns the
    /// dead letters the record resolved.
    async fn record_publish(&self, record: &PublishRecord) -> Result<Vec<ResolvedDeadLetter>, StoreError> {
        self.record_publishes(std::slice::from_ref(record)).await
    }

    /// Records several finished attempts in one transaction (one commit for a round of
    /// sends), returning the dead letters they resolved.
    async fn record_publishes(&self, records: &[PublishRecord]) -> Result<Vec<ResolvedDeadLetter>, StoreError>;

    /// Gives back claims of `channel` that were not recorded (a round cut short by shutdown):
    /// each row of `claims` that its claim still holds under a lease becomes due now instead
    /// of when its lease ends, so another publisher sends it at once. A row claimed since by
    /// another publisher is left alone. Returns the rows given back.
    async fn release_claims(&self, channel: &str, claims: &[HeldClaim]) -> Result<u64, StoreError>;

    /// Holds claims of `channel` that are still being sent (a round that outlasts the lease it
    /// claimed with, such as a marketplace feed waited for): each row of `claims` that its
    /// claim still holds under a lease stays leased until `lease` from now, or longer if it
    /// already was. A row whose lease has passed, or that another publisher claimed since, is
    /// not taken back. Returns the rows still held.
    async fn extend_claims(&self, channel: &str, claims: &[HeldClaim], lease: Duration) -> Result<u64, StoreError>;

    /// Queues a publish of each item's current version on every channel serving its tenant
    /// (a cache bust after a replay), returning the outbox rows queued.
    async fn republish(&self, items: &[ItemId]) -> Result<u64, StoreError>;

    /// Of `skus`, those that items of more than one tenant served by any of `channels` (the
    /// store's routes; the channels writing one seller account) hold, each with those tenants;
    /// in SKU order. A channel that knows listings by SKU alone must write none of them
    /// (decision 0056).
    async fn skus_of_several_tenants(&self, channels: &[String], skus: &[Sku]) -> Result<Vec<SharedSku>, StoreError>;

    /// Pending publishes per channel, for metrics.
    async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError>;

    /// The store's clock now: the clock the outbox's queue times are stamped by
    /// (`OutboxDepth::oldest_enqueued_at`). A finite run drains what was queued before its
    /// drain began, compared with this, never with its own clock (PostgreSQL stamps rows
    /// with the server's).
    async fn outbox_clock(&self) -> Result<DateTime<Utc>, StoreError>;

    /// Items of the tenants `channel` serves (the store's routes) whose published version
    /// there lags their catalog version: what the channel shows is stale (waiting, retrying,
    /// or dead-lettered).
    async fn stale_items(&self, channel: &str) -> Result<u64, StoreError>;

    /// Dead letters not yet resolved (quarantined ones included), newest failure first.
    async fn open_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;

    /// Every dead letter of an item, open and resolved, oldest first.
    async fn item_dead_letters(&self, item_id: ItemId) -> Result<Vec<DeadLetter>, StoreError>;

    /// One round of auto-heal, in one transaction: takes up to `heal.limit` open publish
    /// dead letters that are not quarantined, whose channel is configured and whose item
    /// waits on it no more (the last heal's publish is over), least recently healed first;
    /// quarantines those already healed `heal.max_heals` times, and requeues the item's
    /// current version on the letter's channel (as `republish` does) for the others,
    /// counting a heal round on each.
    async fn heal_dead_letters(&self, heal: &DeadLetterHeal) -> Result<HealRound, StoreError>;

    /// Open and quarantined dead letters per channel, for the gauges.
    async fn dead_letter_counts(&self) -> Result<Vec<DeadLetterCount>, StoreError>;
}

/// Sync flags: the canary and rollback levers.
#[async_trait]
pub trait FlagStore: Send + Sync + std::fmt::Debug {
    /// Switches sync on or off for a whole tenant, creating it if new.
    async fn set_tenant_sync(&self, tenant: &TenantId, enabled: bool) -> Result<(), StoreError>;

    /// Switches sync on or off for one supplier within a tenant, creating both if new.
    async fn set_supplier_sync(
        &self,
        tenant: &TenantId,
        supplier: &SupplierId,
        enabled: bool,
    ) -> Result<(), StoreError>;

    /// A tenant's flags, or `None` for a tenant never seen.
    async fn tenant_flags(&self, tenant: &TenantId) -> Result<Option<TenantFlags>, StoreError>;
}

/// Reads for support, status and signals; never writes.
#[async_trait]
pub trait ReadStore: Send + Sync + std::fmt::Debug {
    /// A catalog item as stored, or `None`.
    async fn item(&self, item_id: ItemId) -> Result<Option<CatalogItem>, StoreError>;

    /// Every item of a tenant, in SKU order.
    async fn items(&self, tenant: &TenantId) -> Result<Vec<CatalogItem>, StoreError>;

    /// Everything known about an item: offers, all their events with outcomes, publishes.
    async fn item_trace(&self, item_id: ItemId) -> Result<Option<ItemTrace>, StoreError>;

    /// One page of a tenant's journal in a received-time window (optionally one supplier), in
    /// received order (received time, then journal id): the rows after `page.after`, at most
    /// `page.limit`. Rejected events appear when their tenant could be read. A window is read
    /// page by page, each page from where the last ended, so a reader's memory and each
    /// statement's time stay those of one page however long the window.
    async fn journal_window_page(
        &self,
        window: &JournalWindow,
        page: WindowPage,
    ) -> Result<Vec<JournalEntry>, StoreError>;

    /// The whole window, read page by page: for tests and small windows; replay reads pages.
    async fn journal_window(&self, window: &JournalWindow) -> Result<Vec<JournalEntry>, StoreError> {
        let (mut entries, mut pages) = (Vec::new(), WindowPages::new(window, WINDOW_PAGE));
        while let Some(rows) = pages.next(self).await? {
            entries.extend(rows);
        }
        Ok(entries)
    }

    /// Last event, last applied, counts by outcome, for a tenant; `None` for a tenant never seen.
    async fn sync_status(&self, tenant: &TenantId) -> Result<Option<SyncStatus>, StoreError>;
}

/// What the admin service keeps and asks besides the catalog: tokens, the audit log, the
/// lookups support starts from, and operator actions on dead letters.
#[async_trait]
pub trait AdminStore: Send + Sync + std::fmt::Debug {
    /// Stores a token; `false` when a live token already has that name (a revoked one's
    /// name is taken over).
    async fn add_token(&self, token: &NewToken) -> Result<bool, StoreError>;

    /// Every token, live and revoked, by name.
    async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;

    /// Revokes the live token with this name; `false` when there is none.
    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError>;

    /// The live token with this hash, or `None`.
    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenMatch>, StoreError>;

    /// Appends to the audit log, returning the entry's id.
    async fn record_audit(&self, record: &AuditRecord) -> Result<i64, StoreError>;

    /// Audit entries newest first, below `before_id` when given, at most `limit`.
    async fn audit_log(&self, limit: usize, before_id: Option<i64>) -> Result<Vec<AuditEntry>, StoreError>;

    /// One page of the trace of the item `key` names, read in one snapshot and paged in the
    /// store (see [`TracePage`]); `None` when neither an item row nor a journal row names it.
    async fn item_trace_page(&self, key: &ItemKey, page: EventsPage) -> Result<Option<TracePage>, StoreError>;

    /// The decided journal row of an event id (applied, stale, superseded or held), then the
    /// other rows naming it (rejected, or redeliveries journaled after retention), oldest
    /// first, `max` at most: a supplier resending one bad event makes a rejected row per
    /// delivery. An event only ever rejected has only those (decision 0034).
    async fn journal_by_event_id(&self, event_id: EventId, max: usize) -> Result<Vec<JournalEntry>, StoreError>;

    /// Journal rows whose `traceparent` carries this W3C trace id (32 lowercase hex digits),
    /// oldest first, at most `limit`.
    async fn journal_by_trace_id(&self, trace_id: &str, limit: usize) -> Result<Vec<JournalEntry>, StoreError>;

    /// The journal's rejected rows `filter` picks, newest first (by journal id): messages the
    /// rules refused, most with no event id or tenant to be found by otherwise.
    async fn rejections(&self, filter: &RejectionFilter) -> Result<Vec<JournalEntry>, StoreError>;

    /// Every tenant ever seen, in id order.
    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError>;

    /// The newest version each channel is known to hold of an item.
    async fn published_versions(&self, item_id: ItemId) -> Result<Vec<PublishedVersion>, StoreError>;

    /// Publish attempts since `since` per channel and result, in that order.
    async fn publish_attempt_counts(&self, since: DateTime<Utc>) -> Result<Vec<PublishAttemptCount>, StoreError>;

    /// Dead letters matching `filter`, newest first.
    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError>;

    /// How many dead letters match `filter` (its `limit` aside), counted in the database.
    async fn count_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError>;

    /// One dead letter by id.
    async fn dead_letter(&self, dead_letter_id: i64) -> Result<Option<DeadLetter>, StoreError>;

    /// An operator's retry: requeues the item's current version on the letter's channel (as
    /// auto-heal does) and counts a round on the letter, unless it was retried `max_retries`
    /// times already.
    async fn retry_dead_letter(&self, dead_letter_id: i64, max_retries: u32) -> Result<DeadLetterRetry, StoreError>;

    /// An operator resolves an open letter with a note (resolution `operator`); `false` when
    /// there is no open letter with that id.
    async fn resolve_dead_letter(&self, dead_letter_id: i64, note: &str) -> Result<bool, StoreError>;

    /// A tenant's journal rows received at or after `since`, by outcome.
    async fn outcome_counts_since(&self, tenant: &TenantId, since: DateTime<Utc>) -> Result<OutcomeCounts, StoreError>;
}

/// A whole catalog store, every role: implemented by `catalog-postgres` and `catalog-sqlite`,
/// both held to the same contract suite (`catalog_store::contract`).
#[async_trait]
pub trait CatalogStore:
    BatchStore
    + OutboxStore
    + FlagStore
    + ReadStore
    + AdminStore
    + crate::reconcile::ReconcileStore
    + crate::signals::SignalStore
    + crate::rollout::RolloutStore
    + crate::feed::FeedStore
    + crate::retention::RetentionStore
{
    /// Applies pending schema migrations. Idempotent.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Whether the store answers: the cheapest round trip it has (readiness checks).
    async fn ping(&self) -> Result<(), StoreError>;
}
