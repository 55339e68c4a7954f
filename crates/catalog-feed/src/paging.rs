//! What a pass over a window or a snapshot was paged through (`PassPaging`), to stop one
//! that would never end: a cursor that comes back, or empty pages with new cursors in a row.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use crate::client::PullError;
use crate::record::Page;

/// Empty pages in a row, each naming a next cursor, after which a pass stops. A feed that
/// hands out a new cursor with every empty page pages for ever (each page a store
/// transaction, the window never complete), and no cursor comes back for [`PassPaging`] to
/// see. A supplier that filters records after paging may send a few empty pages; a hundred
/// in a row, what a hundred thousand records would fill at the largest page, is no window.
pub const MAX_EMPTY_PAGES_IN_A_ROW: u32 = 100;

/// What a pass over a window or a snapshot was paged through, to stop one that would never
/// end: at the first cursor that comes back, or after [`MAX_EMPTY_PAGES_IN_A_ROW`] empty
/// pages that each named a next cursor.
#[derive(Debug, Default)]
pub(crate) struct PassPaging {
    /// A hash of each cursor given, not the cursor: a pass may run to many pages, and a
    /// supplier's cursors may be long. The key is drawn for each pass, so that the rare
    /// collision of two cursors (taken for a loop) does not come back at the next run.
    cursor_hashes: HashSet<u64>,
    hash_key: RandomState,
    n_empty_pages_in_a_row: u32,
}

impl PassPaging {
    /// Takes in `page`; `Err` when its next cursor came before, or when it is the last of
    /// [`MAX_EMPTY_PAGES_IN_A_ROW`] empty pages in a row that named one. Every page before it
    /// named a new cursor, so the pages of the pass are those cursors and it.
    pub(crate) fn next(&mut self, page: &Page) -> Result<(), PullError> {
        let Some(next) = page.next_cursor.as_deref() else { return Ok(()) };
        if !self.cursor_hashes.insert(self.hash_key.hash_one(next)) {
            return Err(PullError::CursorLoop { pages: self.cursor_hashes.len() as u64 + 1 });
        }
        self.n_empty_pages_in_a_row = if page.records.is_empty() { self.n_empty_pages_in_a_row + 1 } else { 0 };
        if self.n_empty_pages_in_a_row >= MAX_EMPTY_PAGES_IN_A_ROW {
            return Err(PullError::EmptyPages { pages: self.n_empty_pages_in_a_row });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n_records: usize, next_cursor: Option<&str>) -> Page {
        Page {
            records: vec![serde_json::json!({}); n_records],
            next_cursor: next_cursor.map(str::to_owned),
            as_of: None,
        }
    }

    /// A cursor that comes back stops the pass, told by its hash; the last page, with none,
    /// ends it.
    #[test]
    fn a_cursor_that_comes_back_stops_the_pass() {
        let mut paging = PassPaging::default();
        assert!(paging.next(&page(1, Some("a"))).is_ok());
        assert!(paging.next(&page(1, Some("b"))).is_ok());
        assert!(matches!(paging.next(&page(1, Some("a"))), Err(PullError::CursorLoop { pages: 3 })));
        assert!(PassPaging::default().next(&page(0, None)).is_ok());
    }

    /// Empty pages with new cursors stop the pass at the bound, unless a page with records
    /// comes between.
    #[test]
    fn empty_pages_in_a_row_stop_the_pass_at_the_bound() {
        let mut paging = PassPaging::default();
        for n in 1..MAX_EMPTY_PAGES_IN_A_ROW {
            assert!(paging.next(&page(0, Some(&format!("empty-{n}")))).is_ok(), "page {n}");
        }
        assert!(paging.next(&page(3, Some("records"))).is_ok(), "a page with records starts the count again");
        for n in 1..MAX_EMPTY_PAGES_IN_A_ROW {
            assert!(paging.next(&page(0, Some(&format!("again-{n}")))).is_ok(), "page {n}");
        }
        let last = paging.next(&page(0, Some("the last")));
        assert!(matches!(last, Err(PullError::EmptyPages { pages: MAX_EMPTY_PAGES_IN_A_ROW })), "{last:?}");
    }
}
