//! Per-channel stock rules: how much of an item's quantity one sales channel is offered, and
//! under which of its listings. A seller holds units back from a marketplace (a safety
//! buffer), offers it a share of the rest, never more than a cap, and nothing at all once
//! stock runs low; and each marketplace knows the SKU by its own listing id.
//!
//! Pure: the publisher applies [`ChannelRules::quantity_for`] to each item version before it
//! is sent, and records the quantity and the [`ChannelQuantity`] rule text with the attempt,
//! so the item trace says why a channel shows what it shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::ids::Sku;
use crate::item::CatalogItem;

/// What one channel is offered of a catalog quantity, in this order:
///
/// 1. **zero below**: when the catalog holds fewer than `zero_below` units, the channel is
///    offered none (the last units stay for the channels that sell them best);
/// 2. **buffer**: `buffer` units are held back;
/// 3. **share**: `share_percent` of what is left is allocated to this channel, rounded down;
/// 4. **cap**: never more than `cap`.
///
/// The result is never negative and never above the catalog quantity, and it never falls
/// when the catalog quantity rises (property tests in `tests/it/stock_rules.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "StockRulesParts", into = "StockRulesParts")]
pub struct StockRules {
    buffer: i64,
    share_percent: u8,
    cap: Option<i64>,
    zero_below: Option<i64>,
}

/// The rules as a channels file writes them, checked by [`StockRules::new`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StockRulesParts {
    #[serde(default)]
    buffer: i64,
    #[serde(default = "all", skip_serializing_if = "is_all")]
    share_percent: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cap: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zero_below: Option<i64>,
}

fn all() -> u8 {
    100
}

fn is_all(share_percent: &u8) -> bool {
    *share_percent == 100
}

impl TryFrom<StockRulesParts> for StockRules {
    type Error = InvalidStockRule;

    fn try_from(parts: StockRulesParts) -> Result<Self, Self::Error> {
        StockRules::new(parts.buffer, parts.share_percent, parts.cap, parts.zero_below)
    }
}

impl From<StockRules> for StockRulesParts {
    fn from(rules: StockRules) -> Self {
        Self { buffer: rules.buffer, share_percent: rules.share_percent, cap: rules.cap, zero_below: rules.zero_below }
    }
}

/// A stock rule that cannot be applied, said plainly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidStockRule {
    /// A negative buffer would offer more than the catalog holds.
    #[error("buffer must be 0 or more, not {0}")]
    NegativeBuffer(i64),
    /// A share is a percentage of the stock.
    #[error("share_percent must be 0 to 100, not {0}")]
    Share(u8),
    /// A negative cap would offer nothing, which `share_percent: 0` says plainly.
    #[error("cap must be 0 or more, not {0}")]
    NegativeCap(i64),
    /// A threshold below zero never applies.
    #[error("zero_below must be 1 or more, not {0}")]
    Threshold(i64),
}

impl Default for StockRules {
    /// No rule: the channel is offered the catalog quantity as it is.
    fn default() -> Self {
        Self { buffer: 0, share_percent: 100, cap: None, zero_below: None }
    }
}

impl StockRules {
    /// Rules, checked: a buffer and a cap of 0 or more, a share of 0 to 100 %, a threshold of
    /// 1 or more.
    ///
    /// ```
    /// use catalog_core::{InvalidStockRule, StockRules};
    ///
    /// let rules = StockRules::new(2, 50, Some(100), Some(5)).unwrap();
    /// assert_eq!(rules.apply(12), (5, "catalog 12; zero below 5: 12; buffer 2: 10; share 50%: 5; cap 100: 5".to_owned()));
    /// assert_eq!(rules.apply(4).0, 0);
    /// assert_eq!(StockRules::new(0, 150, None, None), Err(InvalidStockRule::Share(150)));
    /// ```
    pub fn new(
        buffer: i64,
        share_percent: u8,
        cap: Option<i64>,
        zero_below: Option<i64>,
    ) -> Result<Self, InvalidStockRule> {
        if buffer < 0 {
            return Err(InvalidStockRule::NegativeBuffer(buffer));
        }
        if share_percent > 100 {
            return Err(InvalidStockRule::Share(share_percent));
        }
        if let Some(cap) = cap.filter(|cap| *cap < 0) {
            return Err(InvalidStockRule::NegativeCap(cap));
        }
        if let Some(threshold) = zero_below.filter(|threshold| *threshold < 1) {
            return Err(InvalidStockRule::Threshold(threshold));
        }
        Ok(Self { buffer, share_percent, cap, zero_below })
    }

    /// Units held back from the channel.
    pub fn buffer(&self) -> i64 {
        self.buffer
    }

    /// Percent of the stock after the buffer allocated to the channel.
    pub fn share_percent(&self) -> u8 {
        self.share_percent
    }

    /// The most the channel is offered.
    pub fn cap(&self) -> Option<i64> {
        self.cap
    }

    /// Below this many units in the catalog, the channel is offered none.
    pub fn zero_below(&self) -> Option<i64> {
        self.zero_below
    }

    /// Whether the rules change nothing: the channel gets the catalog quantity.
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }

    /// The quantity offered for `catalog_quantity`, and how it was reached: each configured
    /// rule and the quantity after it, e.g. `catalog 12; buffer 2: 10; share 50%: 5`.
    pub fn apply(&self, catalog_quantity: i64) -> (i64, String) {
        let mut quantity = catalog_quantity.max(0);
        let mut rule = format!("catalog {quantity}");
        let mut step = |name: std::fmt::Arguments<'_>, after: i64| {
            // Writing to a String cannot fail.
            let _ = write!(rule, "; {name}: {after}");
        };
        if let Some(threshold) = self.zero_below {
            if quantity < threshold {
                step(format_args!("zero below {threshold}"), 0);
                return (0, rule);
            }
            step(format_args!("zero below {threshold}"), quantity);
        }
        if self.buffer > 0 {
            quantity = (quantity - self.buffer).max(0);
            step(format_args!("buffer {}", self.buffer), quantity);
        }
        if self.share_percent < 100 {
            // i128: a quantity up to i64::MAX times 100 does not overflow.
            quantity = (i128::from(quantity) * i128::from(self.share_percent) / 100) as i64;
            step(format_args!("share {}%", self.share_percent), quantity);
        }
        if let Some(cap) = self.cap {
            quantity = quantity.min(cap);
            step(format_args!("cap {cap}"), quantity);
        }
        (quantity, rule)
    }
}

/// How a channel names the items it lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Listings {
    /// The channel lists items by the catalog's SKU (Amazon's, Walmart's and eBay's seller
    /// SKU, the storefront's item).
    #[default]
    BySku,
    /// The channel has its own listing ids; a SKU missing from the map is not listed there
    /// and is skipped, not sent.
    Mapped(BTreeMap<Sku, String>),
}

impl Listings {
    /// The channel's id of the listing of `sku`: the SKU itself, or what the listing map says;
    /// `None` when the SKU is not listed there.
    pub fn listing_of<'a>(&'a self, sku: &'a Sku) -> Option<&'a str> {
        match self {
            Listings::BySku => Some(sku.as_str()),
            Listings::Mapped(map) => map.get(sku).map(String::as_str),
        }
    }
}

/// A channel's rules: its listings and its stock rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelRules {
    /// Which listing each SKU is.
    pub listings: Listings,
    /// How much of the catalog quantity the channel is offered.
    pub stock: StockRules,
}

/// What a channel is sent for one item version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelQuantity {
    /// Send `quantity` for `listing`; `rule` says how the quantity was reached.
    Send {
        /// The channel's id of the listing.
        listing: String,
        /// The quantity the channel is offered.
        quantity: i64,
        /// The rules applied, e.g. `catalog 12; buffer 2: 10`.
        rule: String,
    },
    /// The SKU is not mapped to a listing on this channel: nothing is sent, and the publish
    /// is recorded as skipped with reason [`ChannelQuantity::UNMAPPED`].
    Unmapped,
}

impl ChannelQuantity {
    /// The recorded reason of a publish skipped for an unmapped SKU.
    pub const UNMAPPED: &'static str = "unmapped_sku";
}

impl ChannelRules {
    /// The channel's id of the listing of `sku` ([`Listings::listing_of`]); `None` when the
    /// SKU is not listed there.
    pub fn listing_of<'a>(&'a self, sku: &'a Sku) -> Option<&'a str> {
        self.listings.listing_of(sku)
    }

    /// What the channel is sent for `item`: its listing and quantity by these rules, or
    /// nothing when the SKU has no listing there.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use catalog_core::{CatalogItem, ChannelQuantity, ChannelRules, ItemKey, Listings, Sku, StockRules, TenantId};
    ///
    /// let sku = Sku::parse("ABC-1").unwrap();
    /// let rules = ChannelRules {
    ///     listings: Listings::Mapped(BTreeMap::from([(sku.clone(), "MLA123".to_owned())])),
    ///     stock: StockRules::new(1, 100, None, None).unwrap(),
    /// };
    /// let item = CatalogItem::new(ItemKey { tenant: TenantId::parse("canary").unwrap(), sku }, 12, 3).unwrap();
    /// assert_eq!(rules.quantity_for(&item), ChannelQuantity::Send { listing: "MLA123".into(), quantity: 11, rule: "catalog 12; buffer 1: 11".into() });
    /// let other = CatalogItem::new(ItemKey { tenant: TenantId::parse("canary").unwrap(), sku: Sku::parse("X-9").unwrap() }, 5, 1).unwrap();
    /// assert_eq!(rules.quantity_for(&other), ChannelQuantity::Unmapped);
    /// ```
    pub fn quantity_for(&self, item: &CatalogItem) -> ChannelQuantity {
        let Some(listing) = self.listing_of(item.sku()) else {
            return ChannelQuantity::Unmapped;
        };
        let listing = listing.to_owned();
        let (quantity, rule) = self.stock.apply(item.quantity());
        ChannelQuantity::Send { listing, quantity, rule }
    }
}
