//! PostgreSQL implementation of the catalog store: each batch is one transaction of about
//! ten statements over arrays and one binary `COPY` (never one round trip per event),
//! optimistic first and locking on a retry, with rows locked in one global order so
//! concurrent workers neither deadlock nor lose an update.

mod admin;
mod apply;
mod columns;
mod copy;
mod dead_letters;
mod deadline;
mod error;
pub(crate) use error::store_error;
mod feed_windows;
mod feeds;
mod flags;
#[cfg(test)]
mod journal_plans;
mod listings;
mod offer_cache;
mod outbox;
#[cfg(test)]
mod outbox_plans;
#[cfg(test)]
mod plans;
mod reads;
mod reconcile;
mod recording;
mod retention;
mod rollout;
mod signals;

pub use retention::RETENTION_LOCK;

pub(crate) use deadline::with_deadline;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catalog_core::{CatalogItem, EventId, ItemId, ItemKey, Sku, SupplierId, TenantId};
use catalog_store::{
    AdminStore, AuditEntry, AuditRecord, DeadLetterFilter, DeadLetterRetry, EventsPage, NewToken, OutcomeCounts,
    PublishAttemptCount, PublishedVersion, RejectionFilter, TokenHash, TokenInfo, TokenMatch, TracePage,
};
use catalog_store::{
    BatchInput, BatchResult, BatchStore, CatalogStore, Checkpoint, DeadLetter, DeadLetterCount, DeadLetterHeal,
    FlagStore, HealRound, HeldClaim, ItemTrace, JournalEntry, JournalWindow, OutboxClaim, OutboxDepth, OutboxEntry,
    OutboxStore, Position, PublishRecord, ReadStore, ResolvedDeadLetter, SharedSku, StoreConfig, StoreError,
    SyncStatus, TenantFlags, WindowPage,
};
use catalog_store::{
    CompletedWindow, FeedDrift, FeedDriftRecord, FeedJournalDay, FeedKey, FeedOffer, FeedRunRequest, FeedSettings,
    FeedStore, FullRefresh, PullFailure, StoredFeed,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The embedded migrations of `migrations/postgres`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connection settings for [`PostgresStore::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    pub max_connections: u32,
    /// How long an operation waits for a free connection (or a new one) before failing.
    pub acquire_timeout: Duration,
    /// How many offers (state and revision, about 0.5 KB each) a store remembers
    /// between batches instead of reading them again; 0 reads every batch's offers.
    pub offer_cache_capacity: usize,
    /// The server cancels a statement running longer (`statement_timeout`).
    pub statement_timeout: Duration,
    /// The server gives up waiting for a row or table lock after this long (`lock_timeout`).
    pub lock_timeout: Duration,
    /// The client gives up on a whole operation (a batch's transaction, a claim, a read) after
    /// this long, whatever the server does: the one bound that holds when the connection's
    /// packets vanish. The server also ends a session left idle inside a transaction this long.
    pub transaction_timeout: Duration,
}

/// The default [`PostgresOptions::offer_cache_capacity`]: about 50 MB when full.
pub const DEFAULT_OFFER_CACHE_CAPACITY: usize = 100_000;

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            offer_cache_capacity: DEFAULT_OFFER_CACHE_CAPACITY,
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// The production catalog store. Clones share one pool and one offer cache.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    config: StoreConfig,
    offers: Arc<offer_cache::OfferCache>,
    /// [`PostgresOptions::transaction_timeout`]: the client-side deadline of every operation.
    deadline: Duration,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) and applies pending migrations.
    pub async fn connect(url: &str, config: StoreConfig, options: PostgresOptions) -> Result<Self, StoreError> {
        let connect_options: PgConnectOptions = url.parse().map_err(|error: sqlx::Error| {
            StoreError::Schema(format!("invalid database url: {}", error.to_string().replace(url, "<url>")))
        })?;
        let milliseconds = |duration: Duration| format!("{}ms", duration.as_millis());
        let connect_options = connect_options.options([
            ("statement_timeout", milliseconds(options.statement_timeout)),
            ("lock_timeout", milliseconds(options.lock_timeout)),
            ("idle_in_transaction_session_timeout", milliseconds(options.transaction_timeout)),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options)
            .await
            .map_err(store_error)?;
        let offers = Arc::new(offer_cache::OfferCache::new(options.offer_cache_capacity));
        let store = Self { pool, config, offers, deadline: options.transaction_timeout };
        store.migrate().await?;
        Ok(store)
    }

    /// Wraps an existing pool, with an offer cache of the default capacity; migrations are
    /// not run.
    pub fn from_pool(pool: PgPool, config: StoreConfig) -> Self {
        Self {
            pool,
            config,
            offers: Arc::new(offer_cache::OfferCache::new(DEFAULT_OFFER_CACHE_CAPACITY)),
            deadline: PostgresOptions::default().transaction_timeout,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl CatalogStore for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|error| StoreError::Schema(error.to_string()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(store_error)
    }
}

#[async_trait]
impl BatchStore for PostgresStore {
    async fn apply_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        with_deadline(self.deadline, "apply_batch", apply::apply_batch(&self.pool, &self.config, &self.offers, batch))
            .await
    }

    async fn preview_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        with_deadline(self.deadline, "preview_batch", apply::preview_batch(&self.pool, &self.config, batch)).await
    }

    async fn checkpoints(&self, source: &str) -> Result<Vec<Checkpoint>, StoreError> {
        with_deadline(self.deadline, "checkpoints", reads::checkpoints(&self.pool, source)).await
    }

    async fn rewind_checkpoint(
        &self,
        source: &str,
        partition: i32,
        from: i64,
        to: &Position,
    ) -> Result<bool, StoreError> {
        let rewind = apply::rewind_checkpoint(&self.pool, source, partition, from, to);
        with_deadline(self.deadline, "rewind_checkpoint", rewind).await
    }
}

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn claim_outbox(&self, channel: &str, claim: &OutboxClaim) -> Result<Vec<OutboxEntry>, StoreError> {
        with_deadline(self.deadline, "claim_outbox", outbox::claim_outbox(&self.pool, channel, claim)).await
    }

    async fn record_publishes(&self, records: &[PublishRecord]) -> Result<Vec<ResolvedDeadLetter>, StoreError> {
        // Each step under the deadline of its own: the first failing is the round's failure,
        // the second is not (`recording::record_publishes`).
        recording::record_publishes(&self.pool, records, self.deadline).await
    }

    async fn release_claims(&self, channel: &str, claims: &[HeldClaim]) -> Result<u64, StoreError> {
        with_deadline(self.deadline, "release_claims", outbox::release_claims(&self.pool, channel, claims)).await
    }

    async fn extend_claims(&self, channel: &str, claims: &[HeldClaim], lease: Duration) -> Result<u64, StoreError> {
        with_deadline(self.deadline, "extend_claims", outbox::extend_claims(&self.pool, channel, claims, lease)).await
    }

    async fn republish(&self, items: &[ItemId]) -> Result<u64, StoreError> {
        with_deadline(self.deadline, "republish", outbox::republish(&self.pool, &self.config, items)).await
    }

    async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError> {
        with_deadline(self.deadline, "outbox_depth", outbox::outbox_depth(&self.pool)).await
    }

    async fn outbox_clock(&self) -> Result<DateTime<Utc>, StoreError> {
        let now = sqlx::query_scalar("SELECT now()").fetch_one(&self.pool);
        with_deadline(self.deadline, "outbox_clock", async { now.await.map_err(store_error) }).await
    }

    async fn stale_items(&self, channel: &str) -> Result<u64, StoreError> {
        with_deadline(self.deadline, "stale_items", outbox::stale_items(&self.pool, &self.config, channel)).await
    }

    async fn skus_of_several_tenants(&self, channels: &[String], skus: &[Sku]) -> Result<Vec<SharedSku>, StoreError> {
        let shared = listings::skus_of_several_tenants(&self.pool, &self.config, channels, skus);
        with_deadline(self.deadline, "skus_of_several_tenants", shared).await
    }

    async fn open_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        with_deadline(self.deadline, "open_dead_letters", dead_letters::open_dead_letters(&self.pool, limit)).await
    }

    async fn item_dead_letters(&self, item_id: ItemId) -> Result<Vec<DeadLetter>, StoreError> {
        with_deadline(self.deadline, "item_dead_letters", dead_letters::item_dead_letters(&self.pool, item_id)).await
    }

    async fn heal_dead_letters(&self, heal: &DeadLetterHeal) -> Result<HealRound, StoreError> {
        with_deadline(self.deadline, "heal_dead_letters", dead_letters::heal(&self.pool, &self.config, heal)).await
    }

    async fn dead_letter_counts(&self) -> Result<Vec<DeadLetterCount>, StoreError> {
        with_deadline(self.deadline, "dead_letter_counts", dead_letters::dead_letter_counts(&self.pool)).await
    }
}

#[async_trait]
impl FlagStore for PostgresStore {
    async fn set_tenant_sync(&self, tenant: &TenantId, enabled: bool) -> Result<(), StoreError> {
        with_deadline(self.deadline, "set_tenant_sync", flags::set_tenant_sync(&self.pool, tenant, enabled)).await
    }

    async fn set_supplier_sync(
        &self,
        tenant: &TenantId,
        supplier: &SupplierId,
        enabled: bool,
    ) -> Result<(), StoreError> {
        with_deadline(
            self.deadline,
            "set_supplier_sync",
            flags::set_supplier_sync(&self.pool, tenant, supplier, enabled, self.config.default_sync_enabled),
        )
        .await
    }

    async fn tenant_flags(&self, tenant: &TenantId) -> Result<Option<TenantFlags>, StoreError> {
        with_deadline(self.deadline, "tenant_flags", flags::tenant_flags(&self.pool, tenant)).await
    }
}

#[async_trait]
impl ReadStore for PostgresStore {
    async fn item(&self, item_id: ItemId) -> Result<Option<CatalogItem>, StoreError> {
        with_deadline(self.deadline, "item", reads::item(&self.pool, item_id)).await
    }

    async fn items(&self, tenant: &TenantId) -> Result<Vec<CatalogItem>, StoreError> {
        with_deadline(self.deadline, "items", reads::items(&self.pool, tenant)).await
    }

    async fn item_trace(&self, item_id: ItemId) -> Result<Option<ItemTrace>, StoreError> {
        with_deadline(self.deadline, "item_trace", reads::item_trace(&self.pool, item_id)).await
    }

    async fn journal_window_page(
        &self,
        window: &JournalWindow,
        page: WindowPage,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        with_deadline(self.deadline, "journal_window_page", reads::journal_window_page(&self.pool, window, page)).await
    }

    async fn sync_status(&self, tenant: &TenantId) -> Result<Option<SyncStatus>, StoreError> {
        with_deadline(self.deadline, "sync_status", reads::sync_status(&self.pool, tenant)).await
    }
}

#[async_trait]
impl FeedStore for PostgresStore {
    async fn upsert_feed(&self, settings: &FeedSettings) -> Result<(), StoreError> {
        with_deadline(self.deadline, "upsert_feed", feeds::upsert_feed(&self.pool, settings)).await
    }

    async fn feeds(&self) -> Result<Vec<StoredFeed>, StoreError> {
        with_deadline(self.deadline, "feeds", feeds::feeds(&self.pool)).await
    }

    async fn feed(&self, key: &FeedKey) -> Result<Option<StoredFeed>, StoreError> {
        with_deadline(self.deadline, "feed", feeds::feed(&self.pool, key)).await
    }

    async fn set_feed_sync(&self, key: &FeedKey, enabled: bool) -> Result<bool, StoreError> {
        with_deadline(self.deadline, "set_feed_sync", feeds::set_feed_sync(&self.pool, key, enabled)).await
    }

    async fn complete_window(&self, key: &FeedKey, window: &CompletedWindow) -> Result<(), StoreError> {
        with_deadline(self.deadline, "complete_window", feed_windows::complete_window(&self.pool, key, window)).await
    }

    async fn feed_windows(&self, key: &FeedKey) -> Result<Vec<CompletedWindow>, StoreError> {
        with_deadline(self.deadline, "feed_windows", feed_windows::feed_windows(&self.pool, key)).await
    }

    async fn record_pull_failure(&self, failure: &PullFailure) -> Result<i64, StoreError> {
        with_deadline(self.deadline, "record_pull_failure", feeds::record_pull_failure(&self.pool, failure)).await
    }

    async fn resolve_pull_failure(&self, key: &FeedKey) -> Result<bool, StoreError> {
        with_deadline(self.deadline, "resolve_pull_failure", feeds::resolve_pull_failure(&self.pool, key)).await
    }

    async fn open_pull_dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        with_deadline(self.deadline, "open_pull_dead_letters", dead_letters::open_pull_dead_letters(&self.pool)).await
    }

    async fn feed_offers(&self, key: &FeedKey) -> Result<Vec<FeedOffer>, StoreError> {
        with_deadline(self.deadline, "feed_offers", feeds::feed_offers(&self.pool, key)).await
    }

    async fn record_feed_drifts(
        &self,
        key: &FeedKey,
        drifts: &[FeedDrift],
        detected_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let recorded = feeds::record_feed_drifts(&self.pool, key, drifts, detected_at);
        with_deadline(self.deadline, "record_feed_drifts", recorded).await
    }

    async fn complete_full_refresh(&self, refresh: &FullRefresh) -> Result<(), StoreError> {
        with_deadline(self.deadline, "complete_full_refresh", feeds::complete_full_refresh(&self.pool, refresh)).await
    }

    async fn feed_drifts(&self, key: &FeedKey, limit: usize) -> Result<Vec<FeedDriftRecord>, StoreError> {
        with_deadline(self.deadline, "feed_drifts", feeds::feed_drifts(&self.pool, key, limit)).await
    }

    async fn feed_journal_by_day(
        &self,
        key: &FeedKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<FeedJournalDay>, StoreError> {
        with_deadline(self.deadline, "feed_journal_by_day", feeds::feed_journal_by_day(&self.pool, key, since)).await
    }

    async fn request_feed_run(&self, key: &FeedKey, request: &FeedRunRequest) -> Result<bool, StoreError> {
        with_deadline(self.deadline, "request_feed_run", feeds::request_feed_run(&self.pool, key, request)).await
    }

    async fn clear_feed_run(&self, key: &FeedKey, requested_at: DateTime<Utc>) -> Result<bool, StoreError> {
        with_deadline(self.deadline, "clear_feed_run", feeds::clear_feed_run(&self.pool, key, requested_at)).await
    }
}

#[async_trait]
impl AdminStore for PostgresStore {
    async fn item_trace_page(&self, key: &ItemKey, page: EventsPage) -> Result<Option<TracePage>, StoreError> {
        with_deadline(self.deadline, "item_trace_page", reads::item_trace_page(&self.pool, key, page)).await
    }

    async fn add_token(&self, token: &NewToken) -> Result<bool, StoreError> {
        with_deadline(self.deadline, "add_token", admin::add_token(&self.pool, token)).await
    }

    async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        with_deadline(self.deadline, "tokens", admin::tokens(&self.pool)).await
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        with_deadline(self.deadline, "revoke_token", admin::revoke_token(&self.pool, name)).await
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenMatch>, StoreError> {
        with_deadline(self.deadline, "token_by_hash", admin::token_by_hash(&self.pool, hash)).await
    }

    async fn record_audit(&self, record: &AuditRecord) -> Result<i64, StoreError> {
        with_deadline(self.deadline, "record_audit", admin::record_audit(&self.pool, record)).await
    }

    async fn audit_log(&self, limit: usize, before_id: Option<i64>) -> Result<Vec<AuditEntry>, StoreError> {
        with_deadline(self.deadline, "audit_log", admin::audit_log(&self.pool, limit, before_id)).await
    }

    async fn journal_by_event_id(&self, event_id: EventId, max: usize) -> Result<Vec<JournalEntry>, StoreError> {
        with_deadline(self.deadline, "journal_by_event_id", admin::journal_by_event_id(&self.pool, event_id, max)).await
    }

    async fn journal_by_trace_id(&self, trace_id: &str, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        with_deadline(self.deadline, "journal_by_trace_id", admin::journal_by_trace_id(&self.pool, trace_id, limit))
            .await
    }

    async fn rejections(&self, filter: &RejectionFilter) -> Result<Vec<JournalEntry>, StoreError> {
        with_deadline(self.deadline, "rejections", admin::rejections(&self.pool, filter)).await
    }

    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        with_deadline(self.deadline, "tenant_ids", admin::tenant_ids(&self.pool)).await
    }

    async fn published_versions(&self, item_id: ItemId) -> Result<Vec<PublishedVersion>, StoreError> {
        with_deadline(self.deadline, "published_versions", admin::published_versions(&self.pool, item_id)).await
    }

    async fn publish_attempt_counts(&self, since: DateTime<Utc>) -> Result<Vec<PublishAttemptCount>, StoreError> {
        with_deadline(self.deadline, "publish_attempt_counts", admin::publish_attempt_counts(&self.pool, since)).await
    }

    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        with_deadline(self.deadline, "dead_letters", admin::dead_letters(&self.pool, filter)).await
    }

    async fn count_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        with_deadline(self.deadline, "count_dead_letters", admin::count_dead_letters(&self.pool, filter)).await
    }

    async fn dead_letter(&self, dead_letter_id: i64) -> Result<Option<DeadLetter>, StoreError> {
        with_deadline(self.deadline, "dead_letter", admin::dead_letter(&self.pool, dead_letter_id)).await
    }

    async fn retry_dead_letter(&self, dead_letter_id: i64, max_retries: u32) -> Result<DeadLetterRetry, StoreError> {
        with_deadline(
            self.deadline,
            "retry_dead_letter",
            admin::retry_dead_letter(&self.pool, &self.config, dead_letter_id, max_retries),
        )
        .await
    }

    async fn resolve_dead_letter(&self, dead_letter_id: i64, note: &str) -> Result<bool, StoreError> {
        with_deadline(
            self.deadline,
            "resolve_dead_letter",
            admin::resolve_dead_letter(&self.pool, dead_letter_id, note),
        )
        .await
    }

    async fn outcome_counts_since(&self, tenant: &TenantId, since: DateTime<Utc>) -> Result<OutcomeCounts, StoreError> {
        with_deadline(self.deadline, "outcome_counts_since", admin::outcome_counts_since(&self.pool, tenant, since))
            .await
    }
}
