//! A window of one tenant's journal, and the pages it is read in (decision 0058).

use catalog_core::{SupplierId, TenantId};
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::model::JournalEntry;
use crate::port::ReadStore;

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

/// A window read a page after another, each from where the last ended, until a page comes
/// back short: what every reader of a window (replay, `ReadStore::journal_window`) walks.
#[derive(Debug, Clone)]
pub struct WindowPages<'w> {
    window: &'w JournalWindow,
    limit: usize,
    after: Option<WindowCursor>,
    done: bool,
}

impl<'w> WindowPages<'w> {
    /// `window` in pages of `limit` rows, from its start.
    pub fn new(window: &'w JournalWindow, limit: usize) -> Self {
        Self { window, limit, after: None, done: false }
    }

    /// The next page, or `None` once the window is read to its end.
    pub async fn next<S: ReadStore + ?Sized>(&mut self, store: &S) -> Result<Option<Vec<JournalEntry>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let rows = store.journal_window_page(self.window, WindowPage { after: self.after, limit: self.limit }).await?;
        self.done = rows.len() < self.limit;
        self.after = rows.last().map(WindowCursor::of).or(self.after);
        Ok((!rows.is_empty()).then_some(rows))
    }

    /// The received time of the last row read, if any.
    pub fn read_through(&self) -> Option<DateTime<Utc>> {
        self.after.map(|cursor| cursor.received_at)
    }
}
