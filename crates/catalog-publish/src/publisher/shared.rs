//! A listing two tenants' items would share (decision 0056): a marketplace knows a seller
//! account's listings by SKU alone, so a SKU that items of several tenants the channel serves
//! hold is written for none of them. Each would overwrite the others' quantity, every round,
//! and the listing would show whichever tenant's stock was sent last.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use catalog_core::{ItemId, Sku, TenantId};
use catalog_store::{OutboxEntry, PublishOutcome, PublishRecord};

use super::ChannelPublisher;

/// The dead letter reason of an item version whose listing several tenants' items share.
pub const LISTING_SHARED_BY_TENANTS: &str = "listing_shared_by_tenants";

/// How long an item found alone on its SKU is trusted to be: a second tenant's item for the
/// SKU is found at its own first publish (its item is new here), and from then on no item of
/// the SKU is trusted here; another process's publisher of the channel may still send the
/// first tenant's versions of that minute, to the listing that was its own until then.
pub(super) const SINGLE_TENANT_FOR: Duration = Duration::from_secs(60);

/// The most items remembered alone on their SKU per channel (a minute of a large catalog's
/// changes), and the most SKUs remembered found shared; past it, all are forgotten and asked
/// about again.
const MOST_REMEMBERED: usize = 200_000;

/// Items of a channel found alone on their SKU, and when: a busy channel asks the store about
/// an item once a minute, not once per version sent. And the SKUs found shared, and when: an
/// item found alone before its SKU was found shared is trusted no more.
#[derive(Debug, Default)]
pub(super) struct SingleTenant(Mutex<Remembered>);

#[derive(Debug, Default)]
struct Remembered {
    alone: HashMap<ItemId, Instant>,
    shared: HashMap<Sku, Instant>,
}

impl SingleTenant {
    fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // A poisoned map only means a lane panicked holding it; its entries are still times.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `item` was found alone on `sku` within the last minute, and `sku` not found shared since.
    fn holds(&self, item: ItemId, sku: &Sku, now: Instant) -> bool {
        let remembered = self.remembered();
        let Some(found) = remembered.alone.get(&item) else { return false };
        now.saturating_duration_since(*found) < SINGLE_TENANT_FOR
            && remembered.shared.get(sku).is_none_or(|shared| shared < found)
    }

    fn remember(&self, items: impl Iterator<Item = ItemId>, now: Instant) {
        let mut remembered = self.remembered();
        for item in items {
            if remembered.alone.len() >= MOST_REMEMBERED {
                remembered.alone.clear();
            }
            remembered.alone.insert(item, now);
        }
    }

    /// `skus` are found shared now: no item found alone on one before is trusted any more.
    fn found_shared<'a>(&self, skus: impl Iterator<Item = &'a Sku>, now: Instant) {
        let mut remembered = self.remembered();
        // A SKU found shared over a minute ago outlives every item trusted before it.
        remembered.shared.retain(|_, shared| now.saturating_duration_since(*shared) < SINGLE_TENANT_FOR);
        for sku in skus {
            if remembered.shared.len() >= MOST_REMEMBERED {
                // Forgetting a shared SKU must not trust its items again: forget those too.
                remembered.shared.clear();
                remembered.alone.clear();
            }
            remembered.shared.insert(sku.clone(), now);
        }
    }
}

impl ChannelPublisher {
    /// The SKUs of a round that items of several tenants served by this channel, or by another
    /// on its seller account, hold, with those tenants; none on a channel whose requests name
    /// the tenant. An item found alone on its SKU is not asked about again for
    /// [`SINGLE_TENANT_FOR`]. `None`: the store could not tell (logged), and nothing of the
    /// round may be sent.
    pub(super) async fn shared_skus(&self, entries: &[OutboxEntry]) -> Option<BTreeMap<Sku, Vec<TenantId>>> {
        if self.adapter.names_the_tenant() {
            return Some(BTreeMap::new());
        }
        // Only SKUs the channel lists: one it skips is sent for no tenant anyway.
        let now = Instant::now();
        let asked: Vec<&OutboxEntry> = entries
            .iter()
            .filter(|entry| self.config.rules.listing_of(entry.item.sku()).is_some())
            .filter(|entry| !self.single_tenant.holds(entry.item.id(), entry.item.sku(), now))
            .collect();
        if asked.is_empty() {
            return Some(BTreeMap::new());
        }
        // Each SKU is asked about over this channel and the others on its seller account that
        // list it (at the same listing: the accounts' maps agree, `channels::accounts`).
        let mut by_channels: BTreeMap<Vec<String>, Vec<Sku>> = BTreeMap::new();
        for entry in &asked {
            let sku = entry.item.sku();
            let mut channels = vec![self.config.name.clone()];
            let listing_it =
                self.config.shares_account_with.iter().filter(|other| other.listings.listing_of(sku).is_some());
            channels.extend(listing_it.map(|other| other.name.clone()));
            by_channels.entry(channels).or_default().push(sku.clone());
        }
        let mut found = Vec::new();
        for (channels, mut skus) in by_channels {
            skus.sort_unstable();
            skus.dedup();
            match self.store.skus_of_several_tenants(&channels, &skus).await {
                Ok(shared) => found.extend(shared),
                Err(error) => {
                    self.events.store_failed(&self.config.name, "shared_skus", &error);
                    tracing::warn!(channel = %self.config.name, %error, "reading the SKUs several tenants hold failed; the round is given back");
                    return None;
                }
            }
        }
        let shared: BTreeMap<Sku, Vec<TenantId>> =
            found.into_iter().map(|shared| (shared.sku, shared.tenants)).collect();
        // Every item trusted alone on a SKU found shared now, of this round or not, is trusted
        // no more: the first tenant's next version is asked about and written for none.
        let asked: std::collections::HashSet<ItemId> = asked.iter().map(|entry| entry.item.id()).collect();
        let found_alone = entries
            .iter()
            .filter(|entry| asked.contains(&entry.item.id()) && !shared.contains_key(entry.item.sku()))
            .map(|entry| entry.item.id());
        self.single_tenant.remember(found_alone, now);
        // Stamped as the answer came, not as the round began: a lane that asked before this
        // answer and heard "alone" has an earlier stamp, and is trusted no more either.
        self.single_tenant.found_shared(shared.keys(), Instant::now());
        Some(shared)
    }

    /// What the store keeps for an item version whose listing `tenants`' items share: not
    /// sent, dead-lettered for an operator, who gives the channel the one tenant whose seller
    /// account it is (or a channel per tenant's account). Logged with every dead letter.
    pub(super) fn shared_listing(&self, entry: &OutboxEntry, tenants: &[TenantId]) -> PublishRecord {
        let tenants: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
        let error = format!(
            "SKU {} is held by items of tenants {} on channel {}, which knows listings by SKU alone: each tenant's \
             quantity would overwrite the others', so none is sent. Give the channel the one tenant whose seller \
             account it is (`tenants` in the channels file), and a channel of its own to each other tenant's \
             account",
            entry.item.sku(),
            tenants.join(", "),
            self.config.name
        );
        let reason = Some(LISTING_SHARED_BY_TENANTS);
        self.not_sent(entry, entry.attempts + 1, PublishOutcome::DeadLettered, error, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_trusted_alone_for_a_minute_and_until_its_sku_is_found_shared() {
        let single = SingleTenant::default();
        let (a, b) = (ItemId(uuid::Uuid::from_u128(1)), ItemId(uuid::Uuid::from_u128(2)));
        let (sku_a, sku_b) = (Sku::parse("SKU-A").expect("sku"), Sku::parse("SKU-B").expect("sku"));
        let found = Instant::now();
        single.remember([a, b].into_iter(), found);
        assert!(single.holds(a, &sku_a, found + Duration::from_secs(59)));
        assert!(!single.holds(a, &sku_a, found + SINGLE_TENANT_FOR), "asked again after a minute");
        single.found_shared(std::iter::once(&sku_b), found + Duration::from_secs(1));
        assert!(!single.holds(b, &sku_b, found + Duration::from_secs(2)), "its SKU found shared since");
        assert!(single.holds(a, &sku_a, found + Duration::from_secs(2)), "another SKU's item is still trusted");
        assert!(!single.holds(ItemId(uuid::Uuid::from_u128(3)), &sku_a, found), "never asked");
        // Found alone again after the SKU was found shared (the other tenant's item gone).
        single.remember(std::iter::once(b), found + Duration::from_secs(3));
        assert!(single.holds(b, &sku_b, found + Duration::from_secs(4)), "found alone since");
    }
}
