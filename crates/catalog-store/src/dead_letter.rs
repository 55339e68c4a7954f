//! Dead letters and how they heal (decision 0007): what an operator sees of a publish that
//! failed for good, how a later accepted version resolves it, and what one round of
//! auto-heal asks of the store and gets back.

use catalog_core::ItemId;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Something that failed for good at some stage, kept for an operator.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub dead_letter_id: i64,
    /// `publish` for now; later stages add theirs.
    pub stage: String,
    /// What failed: an item id for publishes.
    pub subject: String,
    pub channel: Option<String>,
    /// Of the newest failure, as is `error`.
    pub reason: String,
    pub error: Option<String>,
    /// The newest answer body any failure on this letter came with: a later failure without
    /// one (retries run out on 503s, a dropped connection) keeps it, so the platform's own
    /// explanation (`{"error":"sku unknown"}`) is not lost to a later outage.
    pub body: Option<String>,
    /// Failures counted on this letter: the first, and every one after it while it was open.
    pub attempts: u32,
    /// The newest item version that failed (0 for a letter written before versions were kept).
    pub version: u64,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
    /// Rounds of auto-heal that requeued the item; a letter still open after
    /// `max_heals` of them is quarantined.
    pub heal_rounds: u32,
    /// Operators' retries (`admin-api`): each takes the letter out of quarantine and gives
    /// auto-heal its rounds again; the loop guard counts these.
    pub operator_retries: u32,
    pub last_healed_at: Option<DateTime<Utc>>,
    /// When auto-heal gave up on it: it stays open, for an operator, and is healed no more.
    pub quarantined_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// How it was resolved (`DeadLetterResolution::as_str`, or `operator`), once it was.
    pub resolution: Option<String>,
    /// What the operator who resolved it wrote.
    pub note: Option<String>,
}

/// Why a dead letter no longer needs anyone: the channel took the item at the letter's
/// version or a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum DeadLetterResolution {
    /// The channel accepted (202) a version at least as new as the one that failed.
    PublishedLater,
    /// The channel answered that it already holds a version at least as new (409).
    SupersededLater,
}

impl DeadLetterResolution {
    /// The stable name stored on the letter and used as a metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeadLetterResolution::PublishedLater => "published_later",
            DeadLetterResolution::SupersededLater => "superseded_later",
        }
    }

    /// The resolution a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [DeadLetterResolution::PublishedLater, DeadLetterResolution::SupersededLater]
            .into_iter()
            .find(|resolution| resolution.as_str() == name)
    }
}

/// A dead letter that a round of publish records resolved, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedDeadLetter {
    pub dead_letter_id: i64,
    pub item_id: ItemId,
    pub channel: String,
    /// The version the channel now holds, at least the letter's.
    pub version: u64,
    pub resolution: DeadLetterResolution,
    /// Auto-heal rounds it had taken (0: a newer version healed it on its own).
    pub heal_rounds: u32,
}

/// What one round of auto-heal asks of `OutboxStore::heal_dead_letters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterHeal {
    /// At most this many letters are taken up, least recently healed first.
    pub limit: usize,
    /// A letter still open after this many heal rounds is quarantined instead of requeued.
    pub max_heals: u32,
    /// A letter is taken up at most once in this long, so consecutive rounds of one pass
    /// move on to other letters.
    pub min_interval: std::time::Duration,
}

/// A dead letter one heal round acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealedDeadLetter {
    pub dead_letter_id: i64,
    pub item_id: ItemId,
    pub channel: String,
    pub reason: String,
    /// Requeued: the item's current version, now waiting in the outbox. Quarantined: the
    /// newest version that failed.
    pub version: u64,
    /// Heal rounds after this one.
    pub heal_rounds: u32,
}

/// What one round of auto-heal did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HealRound {
    /// Letters whose item's current version was queued on the letter's channel again.
    pub requeued: Vec<HealedDeadLetter>,
    /// Letters that had been healed `max_heals` times and failed again: no longer healed.
    pub quarantined: Vec<HealedDeadLetter>,
    /// Letters the round took up, acted on or not (a channel that no longer serves the
    /// item's tenant, a letter another process healed meanwhile): when it is below the
    /// limit, nothing more is due.
    pub n_examined: usize,
}

/// Open dead letters of one channel, for the gauges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterCount {
    pub channel: String,
    /// Not resolved, quarantined ones included.
    pub open: u64,
    /// Open and quarantined: auto-heal gave up, an operator must look.
    pub quarantined: u64,
}
