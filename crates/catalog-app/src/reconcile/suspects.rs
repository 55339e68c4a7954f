//! Differences waiting to be confirmed: a platform that applies updates asynchronously may
//! show the quantity before the one it accepted for a while, so such a difference is
//! corrected only once it is seen again, on the same version, at least the platform's
//! settle time after it was first seen. A difference not seen again has healed on its own.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use catalog_core::ItemId;

/// The differences seen and not yet corrected, per item: the version they were seen at and
/// when first.
#[derive(Debug, Default)]
pub(crate) struct Suspects {
    first_seen: HashMap<ItemId, (u64, Instant)>,
    seen_this_sweep: HashSet<ItemId>,
}

impl Suspects {
    /// Whether a difference of `item` at `version`, seen at `now`, is to be corrected: at
    /// once when `settle` is zero, else once it was first seen at least `settle` earlier on
    /// the same version (a new version starts the wait again).
    pub(crate) fn confirm(&mut self, item: ItemId, version: u64, now: Instant, settle: Duration) -> bool {
        if settle.is_zero() {
            return true;
        }
        self.seen_this_sweep.insert(item);
        let first = self.first_seen.entry(item).or_insert((version, now));
        if first.0 != version {
            *first = (version, now);
        }
        if now.saturating_duration_since(first.1) >= settle {
            self.first_seen.remove(&item);
            return true;
        }
        false
    }

    /// Starts a sweep: what a sweep that failed midway saw counts for nothing (a difference it
    /// saw, not seen by this one, has healed and is forgotten at this one's end).
    pub(crate) fn start_sweep(&mut self) {
        self.seen_this_sweep.clear();
    }

    /// Ends a complete sweep: a difference it did not see again is forgotten.
    pub(crate) fn end_sweep(&mut self) {
        let seen = std::mem::take(&mut self.seen_this_sweep);
        self.first_seen.retain(|item, _| seen.contains(item));
    }

    /// Differences waiting for their confirmation.
    pub(crate) fn waiting(&self) -> usize {
        self.first_seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(60);

    fn item(n: u128) -> ItemId {
        ItemId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn without_a_settle_time_a_difference_is_corrected_at_once() {
        let mut suspects = Suspects::default();
        assert!(suspects.confirm(item(1), 3, Instant::now(), Duration::ZERO));
        assert_eq!(suspects.waiting(), 0);
    }

    #[test]
    fn a_difference_seen_only_by_a_failed_sweep_is_forgotten_by_the_next_complete_one() {
        let mut suspects = Suspects::default();
        let start = Instant::now();
        suspects.start_sweep();
        assert!(!suspects.confirm(item(1), 3, start, SETTLE), "first seen: wait");
        // That sweep failed midway (no end); the next one does not see the difference.
        suspects.start_sweep();
        suspects.end_sweep();
        assert_eq!(suspects.waiting(), 0, "healed: forgotten");
        // Seen again later on the same version: its wait starts again.
        suspects.start_sweep();
        assert!(!suspects.confirm(item(1), 3, start + SETTLE, SETTLE), "a new difference waits its settle time");
    }

    #[test]
    fn a_difference_is_corrected_once_seen_again_after_the_settle_time() {
        let mut suspects = Suspects::default();
        let start = Instant::now();
        assert!(!suspects.confirm(item(1), 3, start, SETTLE), "first seen: wait");
        suspects.end_sweep();
        assert!(!suspects.confirm(item(1), 3, start + SETTLE / 2, SETTLE), "still within the settle time");
        suspects.end_sweep();
        assert!(suspects.confirm(item(1), 3, start + SETTLE, SETTLE), "seen again a settle time later");
        assert_eq!(suspects.waiting(), 0, "a corrected difference is no longer waiting");
    }

    #[test]
    fn a_new_version_starts_the_wait_again() {
        let mut suspects = Suspects::default();
        let start = Instant::now();
        assert!(!suspects.confirm(item(1), 3, start, SETTLE));
        suspects.end_sweep();
        assert!(!suspects.confirm(item(1), 4, start + SETTLE, SETTLE), "version 4 was accepted later");
        suspects.end_sweep();
        assert!(suspects.confirm(item(1), 4, start + SETTLE * 2, SETTLE));
    }

    #[test]
    fn a_difference_not_seen_again_is_forgotten() {
        let mut suspects = Suspects::default();
        let start = Instant::now();
        assert!(!suspects.confirm(item(1), 3, start, SETTLE));
        assert!(!suspects.confirm(item(2), 5, start, SETTLE));
        suspects.end_sweep();
        // The platform caught up with item 1; item 2 still differs.
        assert!(!suspects.confirm(item(2), 5, start + SETTLE / 2, SETTLE));
        suspects.end_sweep();
        assert_eq!(suspects.waiting(), 1);
        assert!(!suspects.confirm(item(1), 3, start + SETTLE, SETTLE), "item 1 differs again: a new wait");
    }
}
