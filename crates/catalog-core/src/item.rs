//! What a sales channel is told: a catalog item at a version, and the channel's answer.

use serde::Serialize;

use crate::ids::{ItemId, ItemKey, Sku, TenantId};

/// One catalog item at one version: what every channel publish carries.
///
/// Only constructible whole: its id is always its key's [`ItemKey::item_id`] and its
/// quantity is never below zero, so a channel is never told otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CatalogItem {
    id: ItemId,
    tenant: TenantId,
    sku: Sku,
    quantity: i64,
    version: u64,
}

/// Why a [`CatalogItem`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidItem {
    /// A quantity below zero: no rule of the contract produces one (decision 0001).
    #[error("an item's quantity is never below zero, got {0}")]
    NegativeQuantity(i64),
}

/// The body of the storefront contract's `invalidate` request for one item version:
/// `{"item_id": "…", "sku": "ABC-123", "quantity": 42, "version": 7}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PublishBody<'a> {
    /// The item's id.
    pub item_id: ItemId,
    /// The SKU, normalized.
    pub sku: &'a str,
    /// The quantity to show.
    pub quantity: i64,
    /// The version token.
    pub version: u64,
}

impl CatalogItem {
    /// The item `key` names, holding `quantity` at `version`.
    ///
    /// ```
    /// use catalog_core::{CatalogItem, InvalidItem, ItemKey, Sku, TenantId};
    ///
    /// let key = ItemKey { tenant: TenantId::parse("canary").unwrap(), sku: Sku::parse("abc-123").unwrap() };
    /// let item = CatalogItem::new(key.clone(), 42, 3).unwrap();
    /// assert_eq!((item.id(), item.sku().as_str(), item.quantity(), item.version()), (key.item_id(), "ABC-123", 42, 3));
    /// assert_eq!(CatalogItem::new(key, -1, 4), Err(InvalidItem::NegativeQuantity(-1)));
    /// ```
    pub fn new(key: ItemKey, quantity: i64, version: u64) -> Result<Self, InvalidItem> {
        if quantity < 0 {
            return Err(InvalidItem::NegativeQuantity(quantity));
        }
        Ok(Self { id: key.item_id(), tenant: key.tenant, sku: key.sku, quantity, version })
    }

    /// The item's stable id ([`ItemKey::item_id`]).
    pub fn id(&self) -> ItemId {
        self.id
    }

    /// The item's tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The SKU, normalized.
    pub fn sku(&self) -> &Sku {
        &self.sku
    }

    /// The sum of its offers, never below zero.
    pub fn quantity(&self) -> i64 {
        self.quantity
    }

    /// The version token: 1 for the first change, +1 for each change of quantity; 0 for an
    /// item whose quantity never changed from zero.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The tenant and SKU that name the item.
    pub fn key(&self) -> ItemKey {
        ItemKey { tenant: self.tenant.clone(), sku: self.sku.clone() }
    }

    /// The contract's `Idempotency-Key`: `{item_id}:{version}`. Every channel's request for
    /// this version carries this one key, built only here.
    ///
    /// ```
    /// use catalog_core::{CatalogItem, ItemKey, Sku, TenantId};
    ///
    /// let key = ItemKey { tenant: TenantId::parse("canary").unwrap(), sku: Sku::parse("abc-123").unwrap() };
    /// let item = CatalogItem::new(key.clone(), 42, 3).unwrap();
    /// assert_eq!(item.idempotency_key(), format!("{}:3", item.id()));
    /// assert_eq!(item.key(), key);
    /// ```
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.id, self.version)
    }

    /// The storefront contract's request body for this version.
    ///
    /// ```
    /// use catalog_core::{CatalogItem, ItemKey, Sku, TenantId};
    ///
    /// let key = ItemKey { tenant: TenantId::parse("canary").unwrap(), sku: Sku::parse("abc-123").unwrap() };
    /// let item = CatalogItem::new(key, 42, 7).unwrap();
    /// let body = serde_json::to_value(item.publish_body()).unwrap();
    /// assert_eq!(body, serde_json::json!({ "item_id": item.id().to_string(), "sku": "ABC-123", "quantity": 42, "version": 7 }));
    /// ```
    pub fn publish_body(&self) -> PublishBody<'_> {
        PublishBody { item_id: self.id, sku: self.sku.as_str(), quantity: self.quantity, version: self.version }
    }

    /// The channel accepted this version.
    pub fn accepted(&self) -> PublishResult {
        PublishResult { item_id: self.id, version: self.version, current_version: None }
    }

    /// The channel holds `current_version` (or, when it did not say, at least this one)
    /// and refused this version as older.
    ///
    /// ```
    /// use catalog_core::{CatalogItem, ItemKey, Sku, TenantId};
    ///
    /// let key = ItemKey { tenant: TenantId::parse("canary").unwrap(), sku: Sku::parse("A-1").unwrap() };
    /// let item = CatalogItem::new(key, 5, 4).unwrap();
    /// assert_eq!(item.accepted().published_version(), 4);
    /// assert_eq!(item.superseded(Some(6)).published_version(), 6);
    /// assert_eq!(item.superseded(None).published_version(), 4, "it holds this one or newer");
    /// assert_eq!(item.superseded(Some(2)).published_version(), 4, "never older than what was sent");
    /// ```
    pub fn superseded(&self, current_version: Option<u64>) -> PublishResult {
        let current = current_version.unwrap_or(self.version).max(self.version);
        PublishResult { item_id: self.id, version: self.version, current_version: Some(current) }
    }
}

/// What a sales channel answered for one item version: accepted, or superseded by the
/// newer version it already holds. Built from the [`CatalogItem`] that was sent
/// ([`CatalogItem::accepted`], [`CatalogItem::superseded`]), so it always names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PublishResult {
    item_id: ItemId,
    version: u64,
    current_version: Option<u64>,
}

impl PublishResult {
    /// The item the answer is about.
    pub fn item_id(&self) -> ItemId {
        self.item_id
    }

    /// The version that was sent.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// `true` for 202; `false` for 409, when the channel already holds a newer version.
    pub fn accepted(&self) -> bool {
        self.current_version.is_none()
    }

    /// The version the channel said it holds, when it refused this one (409).
    pub fn current_version(&self) -> Option<u64> {
        self.current_version
    }

    /// The version the channel is now known to hold: the one sent when accepted, else the
    /// newer one it holds.
    pub fn published_version(&self) -> u64 {
        self.current_version.unwrap_or(self.version)
    }
}
