//! Items the reconciler corrected lately, to tell drift that comes back from drift that
//! heals: one correction per item is what healing looks like; the same item found drifting
//! again within the hour means something outside catalog-sync keeps changing it, or the
//! channel does not keep what it accepted (`catalog_drifts_recurring_total`, which
//! `CatalogDriftNotHealing` reads).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use catalog_core::ItemId;

/// How soon a drift found again on a corrected item counts as recurring.
pub(crate) const RECURRING_WITHIN: Duration = Duration::from_secs(3_600);

/// Items remembered at most: a cache reset of a million items is corrected once each and
/// needs no memory of a million; recurrence is a signal, and a sample of it is enough.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Corrected {
    at: HashMap<ItemId, Instant>,
}

impl Corrected {
    /// Notes a correction of `item` at `now`; true when it was corrected within
    /// [`RECURRING_WITHIN`] before.
    pub(crate) fn again(&mut self, item: ItemId, now: Instant) -> bool {
        let recurring = self.at.get(&item).is_some_and(|at| now.saturating_duration_since(*at) < RECURRING_WITHIN);
        if self.at.len() >= MAX_REMEMBERED {
            self.forget_old(now);
        }
        if self.at.len() < MAX_REMEMBERED || self.at.contains_key(&item) {
            self.at.insert(item, now);
        }
        recurring
    }

    /// Forgets the corrections made longer than [`RECURRING_WITHIN`] before `now`.
    pub(crate) fn forget_old(&mut self, now: Instant) {
        self.at.retain(|_, at| now.saturating_duration_since(*at) < RECURRING_WITHIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u128) -> ItemId {
        ItemId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_drift_corrected_again_within_the_hour_recurs_and_one_after_it_does_not() {
        let start = Instant::now();
        let mut corrected = Corrected::default();
        assert!(!corrected.again(item(1), start), "the first correction heals");
        assert!(!corrected.again(item(2), start + Duration::from_secs(60)), "another item");
        assert!(corrected.again(item(1), start + Duration::from_secs(120)), "the same item, two minutes on");
        assert!(!corrected.again(item(2), start + RECURRING_WITHIN + Duration::from_secs(61)), "over an hour on");
    }

    #[test]
    fn old_corrections_are_forgotten_and_memory_is_bounded() {
        let start = Instant::now();
        let mut corrected = Corrected::default();
        for n in 0..MAX_REMEMBERED as u128 + 10 {
            corrected.again(item(n), start);
        }
        assert_eq!(corrected.at.len(), MAX_REMEMBERED, "no more remembered than the bound");
        corrected.forget_old(start + RECURRING_WITHIN);
        assert!(corrected.at.is_empty());
        assert!(!corrected.again(item(1), start + RECURRING_WITHIN), "forgotten");
    }
}
