//! What the storefront is told: a catalog item at a version, and the result of telling it.

use serde::{Deserialize, Serialize};

use crate::ids::{ItemId, ItemKey, Sku, TenantId};

/// One catalog item at one version: the body of a storefront publish.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CatalogItem {
    pub id: ItemId,
    pub tenant: TenantId,
    pub sku: Sku,
    pub quantity: i64,
    pub version: u64,
}

impl CatalogItem {
    pub fn key(&self) -> ItemKey {
        ItemKey { tenant: self.tenant.clone(), sku: self.sku.clone() }
    }

    /// The contract's `Idempotency-Key`: `{item_id}:{version}`.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.id, self.version)
    }
}

/// What a sales channel answered for one item version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishResult {
    pub item_id: ItemId,
    pub version: u64,
    /// `true` for 202; `false` for 409, when the channel already holds a newer version.
    pub accepted: bool,
    /// The version the channel holds, when it said (409).
    pub current_version: Option<u64>,
}

impl PublishResult {
    /// The version the channel is now known to hold: the one sent when accepted,
    /// else the newer one it reported.
    pub fn published_version(&self) -> Option<u64> {
        if self.accepted {
            Some(self.version)
        } else {
            self.current_version
        }
    }
}
