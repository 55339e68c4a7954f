//! The offers this process last committed or read, each with its `revision`, so a batch
//! plans against them instead of reading them again.
//!
//! Nothing here is trusted for a write: every offer write is guarded by the revision it was
//! planned from (`o.revision = expected`), so an entry that another process moved on makes
//! that batch conflict, forget its offers and plan again with locks. An entry is only ever a
//! state the offer had once committed, and an offer's state only moves forward; a batch that
//! decides `stale` or `superseded` against an older state decides the same against the
//! newer one and writes nothing (docs/decisions/0005).
//!
//! Bounded: when an insert would pass the capacity, the cache starts over empty (the next
//! batches read their offers from the database again). Capacity 0 turns it off.

use std::collections::HashMap;
use std::sync::Mutex;

use catalog_core::{OfferKey, OfferState};

/// What a batch found in the cache: the states and revisions it plans against, and the
/// keys it still has to read.
#[derive(Debug, Default)]
pub(crate) struct Lookup<'k> {
    pub(crate) offers: HashMap<OfferKey, OfferState>,
    pub(crate) revisions: HashMap<&'k OfferKey, i64>,
    pub(crate) missing: Vec<&'k OfferKey>,
}

#[derive(Debug)]
pub(crate) struct OfferCache {
    capacity: usize,
    entries: Mutex<HashMap<OfferKey, (OfferState, i64)>>,
}

impl OfferCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity, entries: Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<OfferKey, (OfferState, i64)>> {
        // A panic while holding the lock cannot leave a half-written entry: every change is
        // one insert or remove. Keep going with what is there.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Splits `keys` (sorted) into the offers known here and those to read; `missing` keeps
    /// the order of `keys`.
    pub(crate) fn lookup<'k>(&self, keys: &'k [OfferKey]) -> Lookup<'k> {
        let mut lookup = Lookup {
            offers: HashMap::with_capacity(keys.len()),
            revisions: HashMap::with_capacity(keys.len()),
            missing: Vec::new(),
        };
        if self.capacity == 0 {
            lookup.missing = keys.iter().collect();
            return lookup;
        }
        let entries = self.entries();
        for key in keys {
            match entries.get(key) {
                Some((state, revision)) => {
                    lookup.offers.insert(key.clone(), state.clone());
                    lookup.revisions.insert(key, *revision);
                }
                None => lookup.missing.push(key),
            }
        }
        lookup
    }

    /// Remembers committed states; an entry at a newer revision than the one offered stays
    /// (two batches' commits can reach here in either order).
    pub(crate) fn remember(&self, committed: Vec<(OfferKey, OfferState, i64)>) {
        if self.capacity == 0 || committed.is_empty() {
            return;
        }
        let mut entries = self.entries();
        if entries.len() + committed.len() > self.capacity {
            entries.clear();
        }
        for (key, state, revision) in committed.into_iter().take(self.capacity) {
            match entries.get_mut(&key) {
                Some(entry) if entry.1 > revision => {}
                Some(entry) => *entry = (state, revision),
                None => {
                    entries.insert(key, (state, revision));
                }
            }
        }
    }

    /// Drops what is known of `keys`: after a conflict, or a commit whose outcome is unknown.
    pub(crate) fn forget(&self, keys: &[OfferKey]) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries();
        for key in keys {
            entries.remove(key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog_core::{Sku, SupplierId, TenantId};

    fn key(sku: &str) -> OfferKey {
        OfferKey {
            tenant: TenantId::parse("canary").expect("valid"),
            supplier: SupplierId::parse("acme").expect("valid"),
            sku: Sku::parse(sku).expect("valid"),
        }
    }

    #[test]
    fn a_lookup_returns_what_was_remembered_and_lists_the_rest_in_order() {
        let cache = OfferCache::new(10);
        cache.remember(vec![(key("B"), OfferState::default(), 3)]);
        let keys = [key("A"), key("B"), key("C")];
        let lookup = cache.lookup(&keys);
        assert_eq!(lookup.revisions.get(&key("B")), Some(&3));
        assert!(lookup.offers.contains_key(&key("B")));
        assert_eq!(lookup.missing, [&key("A"), &key("C")]);
    }

    #[test]
    fn an_older_revision_never_replaces_a_newer_one() {
        let cache = OfferCache::new(10);
        cache.remember(vec![(key("A"), OfferState::default(), 5)]);
        cache.remember(vec![(key("A"), OfferState::default(), 4)]);
        assert_eq!(cache.lookup(&[key("A")]).revisions.get(&key("A")), Some(&5));
        cache.remember(vec![(key("A"), OfferState::default(), 6)]);
        assert_eq!(cache.lookup(&[key("A")]).revisions.get(&key("A")), Some(&6));
    }

    #[test]
    fn forgotten_offers_are_read_again() {
        let cache = OfferCache::new(10);
        cache.remember(vec![(key("A"), OfferState::default(), 1), (key("B"), OfferState::default(), 1)]);
        cache.forget(&[key("A")]);
        let keys = [key("A"), key("B")];
        assert_eq!(cache.lookup(&keys).missing, [&key("A")]);
    }

    #[test]
    fn it_never_holds_more_than_its_capacity_and_zero_turns_it_off() {
        let cache = OfferCache::new(3);
        cache.remember((0..2).map(|n| (key(&format!("S-{n}")), OfferState::default(), 0)).collect());
        cache.remember((2..5).map(|n| (key(&format!("S-{n}")), OfferState::default(), 0)).collect());
        assert_eq!(cache.len(), 3, "started over with the newest offers");
        cache.remember((5..9).map(|n| (key(&format!("S-{n}")), OfferState::default(), 0)).collect());
        assert_eq!(cache.len(), 3);

        let off = OfferCache::new(0);
        off.remember(vec![(key("A"), OfferState::default(), 1)]);
        assert_eq!(off.lookup(&[key("A")]).missing, [&key("A")]);
        assert_eq!(off.len(), 0);
    }
}
