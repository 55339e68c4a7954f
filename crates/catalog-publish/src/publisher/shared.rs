//! A listing two tenants' items would share (decision 0056): a marketplace knows a seller
//! account's listings by SKU alone, so a SKU that items of several tenants the channel serves
//! hold is written for none of them. Each would overwrite the others' quantity, every round,
//! and the listing would show whichever tenant's stock was sent last.

use std::collections::BTreeMap;

use catalog_core::{Sku, TenantId};
use catalog_store::{OutboxEntry, PublishOutcome, PublishRecord};

use super::ChannelPublisher;

/// The dead letter reason of an item version whose listing several tenants' items share.
pub const LISTING_SHARED_BY_TENANTS: &str = "listing_shared_by_tenants";

impl ChannelPublisher {
    /// The SKUs of a round that items of several tenants served by this channel, or by another
    /// on its seller account, hold, with those tenants; none on a channel whose requests name
    /// the tenant. `None`: the store could not
    /// tell (logged), and nothing of the round may be sent.
    pub(super) async fn shared_skus(&self, entries: &[OutboxEntry]) -> Option<BTreeMap<Sku, Vec<TenantId>>> {
        if self.adapter.names_the_tenant() {
            return Some(BTreeMap::new());
        }
        // Only SKUs the channel lists: one it skips is sent for no tenant anyway.
        let mut skus: Vec<Sku> = entries
            .iter()
            .map(|entry| entry.item.sku())
            .filter(|sku| self.config.rules.listing_of(sku).is_some())
            .cloned()
            .collect();
        skus.sort_unstable();
        skus.dedup();
        let mut account = vec![self.config.name.clone()];
        account.extend(self.config.shares_account_with.iter().cloned());
        match self.store.skus_of_several_tenants(&account, &skus).await {
            Ok(shared) => Some(shared.into_iter().map(|shared| (shared.sku, shared.tenants)).collect()),
            Err(error) => {
                tracing::warn!(channel = %self.config.name, %error, "reading the SKUs several tenants hold failed; the round is given back");
                None
            }
        }
    }

    /// What the store keeps for an item version whose listing `tenants`' items share: not
    /// sent, dead-lettered for an operator, who gives the channel the one tenant whose seller
    /// account it is (or a channel per tenant's account).
    pub(super) fn shared_listing(&self, entry: &OutboxEntry, tenants: &[TenantId]) -> PublishRecord {
        let tenants: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
        tracing::warn!(
            channel = %self.config.name,
            sku = %entry.item.sku(),
            tenants = %tenants.join(","),
            class = "needs_operator",
            "not sent: items of several tenants hold this SKU, and the channel knows listings by SKU alone"
        );
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
