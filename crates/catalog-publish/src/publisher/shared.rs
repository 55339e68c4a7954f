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
/// SKU is found at its own first publish (its item is new here), so only the first tenant's
/// versions of that minute are still sent, to the listing that was its own until then.
pub(super) const SINGLE_TENANT_FOR: Duration = Duration::from_secs(60);

/// The most items remembered alone on their SKU per channel (a minute of a large catalog's
/// changes); past it, all are forgotten and asked about again.
const MOST_REMEMBERED: usize = 200_000;

/// Items of a channel found alone on their SKU, and when: a busy channel asks the store about
/// an item once a minute, not once per version sent.
#[derive(Debug, Default)]
pub(super) struct SingleTenant(Mutex<HashMap<ItemId, Instant>>);

impl SingleTenant {
    fn items(&self) -> std::sync::MutexGuard<'_, HashMap<ItemId, Instant>> {
        // A poisoned map only means a lane panicked holding it; its entries are still times.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn holds(&self, item: ItemId, now: Instant) -> bool {
        self.items().get(&item).is_some_and(|found| now.saturating_duration_since(*found) < SINGLE_TENANT_FOR)
    }

    fn remember(&self, items: impl Iterator<Item = ItemId>, now: Instant) {
        let mut remembered = self.items();
        for item in items {
            if remembered.len() >= MOST_REMEMBERED {
                remembered.clear();
            }
            remembered.insert(item, now);
        }
    }

    fn forget(&self, items: impl Iterator<Item = ItemId>) {
        let mut remembered = self.items();
        for item in items {
            remembered.remove(&item);
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
            .filter(|entry| !self.single_tenant.holds(entry.item.id(), now))
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
                    tracing::warn!(channel = %self.config.name, %error, "reading the SKUs several tenants hold failed; the round is given back");
                    return None;
                }
            }
        }
        let shared: BTreeMap<Sku, Vec<TenantId>> =
            found.into_iter().map(|shared| (shared.sku, shared.tenants)).collect();
        // An item of the round trusted alone on a SKU found shared now is trusted no more.
        let asked: std::collections::HashSet<ItemId> = asked.iter().map(|entry| entry.item.id()).collect();
        let (alone, not_alone): (Vec<&OutboxEntry>, Vec<&OutboxEntry>) =
            entries.iter().partition(|entry| !shared.contains_key(entry.item.sku()));
        let found_alone = alone.iter().map(|entry| entry.item.id()).filter(|item| asked.contains(item));
        self.single_tenant.remember(found_alone, now);
        self.single_tenant.forget(not_alone.iter().map(|entry| entry.item.id()));
        Some(shared)
    }

    /// What the store keeps for an item version whose listing `tenants`' items share: not
    /// sent, dead-lettered for an operator, who gives the channel the one tenant whose seller
    /// account it is (or a channel per tenant's account). Logged with every dead letter.
    pub(super) fn shared_listing(&self, entry: &OutboxEntry, tenants: &[TenantId]) -> PublishRecord {
        let tenants: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
        PublishRecord {
            item_id: entry.item.id(),
            channel: self.config.name.clone(),
            version: entry.item.version(),
            attempt: entry.attempts + 1,
            outcome: PublishOutcome::DeadLettered,
            status: None,
            latency_ms: None,
            error: Some(format!(
                "SKU {} is held by items of tenants {} on channel {}, which knows listings by SKU alone: each \
                 tenant's quantity would overwrite the others', so none is sent. Give the channel the one tenant \
                 whose seller account it is (`tenants` in the channels file), and a channel of its own to each \
                 other tenant's account",
                entry.item.sku(),
                tenants.join(", "),
                self.config.name
            )),
            dead_letter_reason: Some(LISTING_SHARED_BY_TENANTS.to_owned()),
            body: None,
            sent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_trusted_alone_for_a_minute_and_until_forgotten() {
        let single = SingleTenant::default();
        let (a, b) = (ItemId(uuid::Uuid::from_u128(1)), ItemId(uuid::Uuid::from_u128(2)));
        let found = Instant::now();
        single.remember([a, b].into_iter(), found);
        assert!(single.holds(a, found + Duration::from_secs(59)));
        assert!(!single.holds(a, found + SINGLE_TENANT_FOR), "asked again after a minute");
        single.forget(std::iter::once(b));
        assert!(!single.holds(b, found), "found shared since");
        assert!(!single.holds(ItemId(uuid::Uuid::from_u128(3)), found), "never asked");
    }
}
