//! Identifiers that carry their invariants: tenants, suppliers, SKUs, events, offers and items.

use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The longest tenant id, supplier id or SKU the contract allows, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Namespace under which [`ItemId`]s are derived with UUID v5.
///
/// Fixed forever: changing it would give every catalog item a new id.
/// It is itself `Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:catalog-sync:item")`,
/// so anyone can recompute it.
pub const ITEM_ID_NAMESPACE: Uuid = Uuid::from_u128(0x041d_6cea_8ba0_510e_9792_8206_e53f_ffc4);

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The value is empty (or only whitespace, for a SKU).
    #[error("is empty")]
    Empty,
    /// The value is longer than [`MAX_ID_LEN`] bytes.
    #[error("is {len} bytes long, more than the {MAX_ID_LEN} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The value holds a character outside its set.
    #[error("contains {found:?}, outside the allowed characters {allowed}")]
    BadCharacter {
        /// The first character outside the set.
        found: char,
        /// The allowed set, e.g. `[a-z0-9_-]`.
        allowed: &'static str,
    },
}

fn validate(value: &str, allowed: &'static str, is_allowed: impl Fn(u8) -> bool) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty);
    }
    // The character first: a value too long because its characters take several bytes each
    // (33 `Ä`, 66 bytes) was refused for its length, not named for the character (decision
    // 0065 promises the character).
    if let Some(found) = value.chars().find(|c| !c.is_ascii() || !is_allowed(*c as u8)) {
        return Err(IdError::BadCharacter { found, allowed });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: value.len() });
    }
    Ok(())
}

/// The text of a tenant id, supplier id or SKU: the size of a `String`, but held inline
/// (no allocation) up to 24 bytes, which nearly every id is. These ids are copied into keys,
/// maps and rows several times for every event, and an inline copy is a memcpy where a
/// `String` would be an allocation.
type IdText = CompactString;

fn id_text(validated: &str) -> IdText {
    CompactString::new(validated)
}

fn is_lower_id_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

macro_rules! lower_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(IdText);

        impl $name {
            /// Validates `value` as 1–64 of `[a-z0-9_-]`; nothing is normalized.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                validate(value, "[a-z0-9_-]", is_lower_id_byte)?;
                Ok(Self(id_text(value)))
            }

            /// The id as given.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }
    };
}

lower_id!(
    /// A tenant: one storefront's catalog. 1–64 of `[a-z0-9_-]`.
    TenantId
);
lower_id!(
    /// A supplier within a tenant. 1–64 of `[a-z0-9_-]`.
    SupplierId
);

/// A stock-keeping unit, normalized by trimming and upper-casing, then 1–64 of `[A-Z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(IdText);

fn is_sku_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
}

impl Sku {
    /// Normalizes (trim, upper-case) and validates a supplier's SKU. Upper-casing is ASCII's:
    /// the allowed characters are ASCII, and Unicode's would turn other SKUs into them (`ß` to
    /// `SS`, the dotless `ı` to `I`, `ﬁ` to `FI`), merging `straße-1` into another supplier's
    /// `STRASSE-1`; a letter outside ASCII is refused, whatever its case (decision 0065).
    ///
    /// ```
    /// use catalog_core::{IdError, Sku};
    ///
    /// assert_eq!(Sku::parse(" abc-123 ").unwrap().as_str(), "ABC-123");
    /// assert!(matches!(Sku::parse("abc 123"), Err(IdError::BadCharacter { found: ' ', .. })));
    /// assert_eq!(Sku::parse("   "), Err(IdError::Empty));
    /// ```
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        // Upper-cased in place (inline when short, no allocation); bytes outside ASCII are left
        // as they are, for `validate` to refuse.
        let mut normalized = id_text(raw.trim());
        normalized.make_ascii_uppercase();
        validate(&normalized, "[A-Z0-9._-]", is_sku_byte)?;
        Ok(Self(normalized))
    }

    /// The normalized SKU: trimmed, upper-cased.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Sku {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Sku::parse(&value)
    }
}

impl From<Sku> for String {
    fn from(value: Sku) -> String {
        value.as_str().to_owned()
    }
}

/// The supplier's idempotency key for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One supplier's stock of one SKU for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OfferKey {
    /// The offer's tenant.
    pub tenant: TenantId,
    /// The supplier whose stock it is.
    pub supplier: SupplierId,
    /// The SKU, normalized.
    pub sku: Sku,
}

impl OfferKey {
    /// The item this offer is a part of (same tenant and SKU, every supplier).
    pub fn item_key(&self) -> ItemKey {
        ItemKey { tenant: self.tenant.clone(), sku: self.sku.clone() }
    }
}

impl fmt::Display for OfferKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.tenant, self.supplier, self.sku)
    }
}

/// One SKU for one tenant: what the storefront shows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemKey {
    /// The item's tenant.
    pub tenant: TenantId,
    /// The SKU, normalized.
    pub sku: Sku,
}

impl ItemKey {
    /// The stable id of this item: UUID v5 of `"{tenant}/{sku}"` under [`ITEM_ID_NAMESPACE`].
    ///
    /// ```
    /// use catalog_core::{ItemKey, Sku, TenantId, ITEM_ID_NAMESPACE};
    ///
    /// let key = ItemKey { tenant: TenantId::parse("canary").unwrap(), sku: Sku::parse("abc-123").unwrap() };
    /// let expected = uuid::Uuid::new_v5(&ITEM_ID_NAMESPACE, b"canary/ABC-123");
    /// assert_eq!(key.item_id().to_string(), expected.to_string());
    /// ```
    pub fn item_id(&self) -> ItemId {
        // "{tenant}/{sku}", built on the stack: both are at most MAX_ID_LEN bytes.
        let (tenant, sku) = (self.tenant.as_str().as_bytes(), self.sku.as_str().as_bytes());
        let mut name = [0_u8; 2 * MAX_ID_LEN + 1];
        name[..tenant.len()].copy_from_slice(tenant);
        name[tenant.len()] = b'/';
        name[tenant.len() + 1..][..sku.len()].copy_from_slice(sku);
        ItemId(Uuid::new_v5(&ITEM_ID_NAMESPACE, &name[..tenant.len() + 1 + sku.len()]))
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.sku)
    }
}

/// The stable id of a catalog item, derived from its [`ItemKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub Uuid);

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_id_namespace_is_the_documented_derivation() {
        assert_eq!(ITEM_ID_NAMESPACE, Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:catalog-sync:item"));
    }

    #[test]
    fn item_id_is_stable() {
        let key = ItemKey { tenant: TenantId::parse("canary").unwrap(), sku: Sku::parse(" abc-123 ").unwrap() };
        insta::assert_snapshot!(key.item_id(), @"c84f079f-9b92-5061-895c-693add06105f");
    }

    #[test]
    fn sku_is_trimmed_and_upper_cased() {
        assert_eq!(Sku::parse("  ab.c_1-2\t").unwrap().as_str(), "AB.C_1-2");
        assert_eq!(Sku::parse("   "), Err(IdError::Empty));
        assert_eq!(Sku::parse("a b"), Err(IdError::BadCharacter { found: ' ', allowed: "[A-Z0-9._-]" }));
        assert_eq!(Sku::parse(&"A".repeat(65)), Err(IdError::TooLong { len: 65 }));
        assert!(Sku::parse(&"a".repeat(64)).is_ok());
        assert!(Sku::parse("ümlaut").is_err());
    }

    /// Unicode's upper-casing turns letters outside ASCII into ASCII ones: accepted, such a SKU
    /// became another (a supplier's `straße-1` was `STRASSE-1`, its stock summed with that
    /// item's). Refused, with the letter named.
    #[test]
    fn a_sku_is_upper_cased_as_ascii_and_other_letters_are_refused() {
        for (raw, found) in [("straße-1", 'ß'), ("ıtem-1", 'ı'), ("ſku", 'ſ'), ("ﬁx", 'ﬁ'), ("ÀB", 'À')] {
            assert_eq!(Sku::parse(raw), Err(IdError::BadCharacter { found, allowed: "[A-Z0-9._-]" }), "{raw}");
        }
        assert_eq!(Sku::parse("\u{a0}abc-1\u{2003}").unwrap().as_str(), "ABC-1", "Unicode spaces are trimmed");
    }

    #[test]
    fn tenant_ids_are_not_normalized() {
        assert!(TenantId::parse("canary_01-x").is_ok());
        assert!(TenantId::parse("Canary").is_err());
        assert!(TenantId::parse(" canary").is_err());
        assert!(TenantId::parse("").is_err());
    }
}
