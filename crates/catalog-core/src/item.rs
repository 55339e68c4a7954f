//! What the storefront is told: a catalog item at a version, and the result of telling it.

use serde::{Deserialize, Serialize};

use crate::ids::{ItemId, ItemKey, Sku, TenantId};

/// One catalog item at one version: the body of a storefront publish.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CatalogItem {
    /// The item's stable id ([`ItemKey::item_id`]).
    pub id: ItemId,
    /// The item's tenant.
    pub tenant: TenantId,
    /// The SKU, normalized.
    pub sku: Sku,
    /// The sum of its offers, never below zero.
    pub quantity: i64,
    /// The version token: 1 for the first change, +1 for each change of quantity.
    pub version: u64,
}

impl CatalogItem {
    /// The tenant and SKU that name the item.
    pub fn key(&self) -> ItemKey {
        ItemKey { tenant: self.tenant.clone(), sku: self.sku.clone() }
    }

    /// The contract's `Idempotency-Key`: `{item_id}:{version}`.
    ///
    /// ```
    /// use catalog_core::{CatalogItem, ItemKey, Sku, TenantId};
    ///
    /// let key = ItemKey { tenant: TenantId::parse("canary").unwrap(), sku: Sku::parse("abc-123").unwrap() };
    /// let item = CatalogItem { id: key.item_id(), tenant: key.tenant.clone(), sku: key.sku.clone(), quantity: 42, version: 3 };
    /// assert_eq!(item.idempotency_key(), format!("{}:3", item.id));
    /// assert_eq!(item.key(), key);
    /// ```
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.id, self.version)
    }
}

/// What a sales channel answered for one item version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishResult {
    /// The item the answer is about.
    pub item_id: ItemId,
    /// The version that was sent.
    pub version: u64,
    /// `true` for 202; `false` for 409, when the channel already holds a newer version.
    pub accepted: bool,
    /// The version the channel holds, when it said (409).
    pub current_version: Option<u64>,
}

impl PublishResult {
    /// The version the channel is now known to hold: the one sent when accepted,
    /// else the newer one it reported.
    ///
    /// ```
    /// use catalog_core::{ItemKey, PublishResult, Sku, TenantId};
    ///
    /// let item_id = ItemKey { tenant: TenantId::parse("canary").unwrap(), sku: Sku::parse("A-1").unwrap() }.item_id();
    /// let accepted = PublishResult { item_id, version: 4, accepted: true, current_version: None };
    /// let superseded = PublishResult { item_id, version: 4, accepted: false, current_version: Some(6) };
    /// assert_eq!(accepted.published_version(), Some(4));
    /// assert_eq!(superseded.published_version(), Some(6));
    /// ```
    pub fn published_version(&self) -> Option<u64> {
        if self.accepted {
            Some(self.version)
        } else {
            self.current_version
        }
    }
}
