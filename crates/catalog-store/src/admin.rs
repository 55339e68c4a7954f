//! What the admin service keeps and reads besides the catalog: API tokens (only their
//! hashes) and roles, the audit log of every write an operator made, dead-letter filters and
//! operator actions on them, and the lookups support starts from (event id, trace id).

use std::collections::BTreeMap;

use catalog_core::{CatalogItem, EventId, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{JournalEntry, PendingPublish, PublishAttempt, StoredOffer};

/// What a token may do; each role may do everything the ones before it may.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads: traces, flags, dead letters, status, the audit log.
    Viewer,
    /// Also switches sync flags and retries or resolves dead letters.
    Operator,
    /// Also manages tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The stable name stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role a name stands for.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SHA-256 digest of a token: the only form a token is stored in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A hash is no secret, but it is no use in a log either.
        f.write_str("TokenHash(..)")
    }
}

/// A token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    pub hash: TokenHash,
}

/// A stored token, as listed (never its hash).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A live token found by its hash, with the stored hash for a constant-time comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatch {
    pub name: String,
    pub role: Role,
    pub hash: TokenHash,
}

/// One write to record in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The token name that made the change.
    pub actor: String,
    /// What was done: `tenant_sync`, `supplier_sync`, `dead_letter_retry`, `dead_letter_resolve`, …
    pub action: String,
    /// What it was done to: `tenant/canary`, `dead_letter/17`, …
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// One entry of the audit log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub audit_id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Which rejected messages to list: received at or after `since`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionFilter {
    /// Rejections naming this tenant only (a message whose tenant could not be read names none).
    pub tenant: Option<TenantId>,
    /// Rejections from this source only (`file:…`, a Kafka topic, `feed:…`).
    pub source: Option<String>,
    pub since: DateTime<Utc>,
    /// Only rows journaled before this one (the next page).
    pub before_journal_id: Option<i64>,
    pub limit: usize,
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Publish letters of this tenant's items only.
    pub tenant: Option<TenantId>,
    pub channel: Option<String>,
    pub stage: Option<String>,
    /// `Some(true)`: open only; `Some(false)`: resolved only; `None`: both.
    pub open: Option<bool>,
    /// Only letters with an id below this one (the next page), newest first.
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// What an operator's retry of a dead letter did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum DeadLetterRetry {
    /// The item's current version waits on the letter's channel again; auto-heal has its
    /// rounds again, and the letter is out of quarantine.
    Requeued {
        version: u64,
        /// Operator retries of the letter so far, this one included.
        retries: u32,
    },
    /// Operators retried the letter `max_retries` times already (auto-heal's rounds do not
    /// count): its cause must be fixed, or the letter resolved.
    LoopGuard {
        retries: u32,
    },
    /// The letter is resolved: nothing to retry.
    AlreadyResolved,
    /// Not a publish letter of an item still in the catalog on a channel the store serves.
    NotRetryable,
    NotFound,
}

/// The newest version a channel is known to hold.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedVersion {
    pub channel: String,
    pub version: u64,
    pub published_at: DateTime<Utc>,
}

/// Rows of one channel and one key (a result, a drift kind) since a time, counted, with the
/// time of the latest: what each store's one query per table reads, and what
/// [`PublishAttemptCount`] and [`crate::DriftCount`] are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelCount {
    pub channel: String,
    pub key: String,
    pub n: u64,
    pub last_at: DateTime<Utc>,
}

impl From<ChannelCount> for PublishAttemptCount {
    fn from(count: ChannelCount) -> Self {
        Self { channel: count.channel, result: count.key, attempts: count.n, last_at: count.last_at }
    }
}

/// A channel's publish attempts of one result since a time: its recent health.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishAttemptCount {
    pub channel: String,
    /// The attempt's result: `published`, `superseded`, `retry`, `throttled`,
    /// `dead_lettered`, `skipped`.
    pub result: String,
    pub attempts: u64,
    /// The latest of them.
    pub last_at: DateTime<Utc>,
}

/// A tenant's journal rows received since a time, by outcome, and the redeliveries counted on them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    pub events_by_outcome: BTreeMap<String, u64>,
    pub redeliveries: u64,
}

/// Which of an item's journaled events a trace page holds: `limit` of them from `offset`, in
/// ordering-key order (the order `rows::sort_for_trace` gives), among those journaled up to
/// the row `through` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsPage {
    pub offset: u64,
    pub limit: u64,
    /// The newest journal row (`journal_id`) the pages count, as the first page answered
    /// (`TracePage::events_through`): an event journaled while someone pages (a late one
    /// sorts anywhere among the others) moves no row from one page to the next, so pages
    /// neither repeat a row nor skip one. `None`: every row, as of now.
    pub through: Option<i64>,
}

/// One page of an item's trace, read in one snapshot: the item, its offers with the journal
/// rows their states name, one page of its events and how many there are in all. The store
/// pages in SQL, so an item with a long journal costs no more to show than a short one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TracePage {
    /// The item row; `None` when only held or rejected events name the tenant and SKU.
    pub item: Option<CatalogItem>,
    pub offers: Vec<StoredOffer>,
    /// The applied journal rows of the events the offers' states hold in effect (each
    /// snapshot and each listed adjustment; see [`event_ids_in_effect`]), in no order.
    pub in_effect: Vec<JournalEntry>,
    /// The page of events asked for, in ordering-key order.
    pub events: Vec<JournalEntry>,
    /// Every journaled event naming the tenant and SKU, the page's or not.
    pub n_events: u64,
    /// The newest journal row counted (`through`, or the item's newest now): pass it back in
    /// `EventsPage::through` for the next pages. `None` when the item has no event.
    pub events_through: Option<i64>,
    pub pending_publishes: Vec<PendingPublish>,
    /// The newest [`MAX_TRACE_ATTEMPTS`] publish attempts of the item, oldest first.
    pub publish_attempts: Vec<PublishAttempt>,
    /// Every publish attempt the store keeps of the item, shown or not.
    pub n_publish_attempts: u64,
}

/// The publish attempts a trace page shows at most, the newest: a hot item on several
/// channels makes thousands within the retention, and support wants the latest.
pub const MAX_TRACE_ATTEMPTS: usize = 200;

/// The events the offers' states hold in effect, whose journal rows a trace page reads: each
/// snapshot and each listed adjustment (folded ones are summed in the state and not listed).
pub fn event_ids_in_effect(offers: &[StoredOffer]) -> Vec<EventId> {
    let mut event_ids: Vec<EventId> = offers
        .iter()
        .flat_map(|offer| {
            let snapshot = offer.state.snapshot().map(|snapshot| snapshot.key.event_id);
            snapshot.into_iter().chain(offer.state.adjustments().iter().map(|adjustment| adjustment.key.event_id))
        })
        .collect();
    event_ids.sort();
    event_ids.dedup();
    event_ids
}
