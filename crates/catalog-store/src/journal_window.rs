//! A window of one tenant's journal, and the pages it is read in (decision 0058).

use catalog_core::{SupplierId, TenantId};
use chrono::{DateTime, Utc};

use crate::model::JournalEntry;

/// A time window of one tenant's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalWindow {
    pub tenant: TenantId,
    /// Inclusive lower bound on received time.
    pub since: DateTime<Utc>,
    /// Exclusive upper bound on received time; open when `None`.
    pub until: Option<DateTime<Utc>>,
    pub supplier: Option<SupplierId>,
    /// Only the rows journaled `held` (read through their own index: switching sync on reads
    /// these, not the tenant's whole window).
    pub held_only: bool,
}

/// Where a window's rows stand in its order, received time then journal id: the last row of
/// a page, after which the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WindowCursor {
    pub received_at: DateTime<Utc>,
    pub journal_id: i64,
}

impl WindowCursor {
    /// The place of `entry` in its window.
    pub fn of(entry: &JournalEntry) -> Self {
        Self { received_at: entry.received_at, journal_id: entry.journal_id }
    }

    /// The lower bound on received time a page after this cursor reads from: rows received
    /// before the cursor are behind it, so a page's reading starts at the cursor, never at the
    /// window's start again.
    pub fn reads_from(cursor: Option<Self>, since: DateTime<Utc>) -> DateTime<Utc> {
        cursor.map_or(since, |cursor| cursor.received_at.max(since))
    }
}

/// One page of a [`JournalWindow`]: at most `limit` rows after `after` (from the window's
/// start when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPage {
    pub after: Option<WindowCursor>,
    pub limit: usize,
}
