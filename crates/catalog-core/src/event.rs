//! The validated supplier event, the domain form of one contract message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{EventId, OfferKey};

/// The largest absolute quantity or delta the contract allows.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// What an event says about an offer's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StockChange {
    /// `inventory.updated`: the absolute on-hand quantity, `0..=MAX_QUANTITY`.
    Updated {
        /// The on-hand quantity.
        quantity: i64,
    },
    /// `inventory.adjusted`: a signed, non-zero change, `abs <= MAX_QUANTITY`.
    Adjusted {
        /// The change, positive or negative.
        delta: i64,
    },
}

impl StockChange {
    /// The contract's name for this kind of event.
    pub fn type_name(&self) -> &'static str {
        match self {
            StockChange::Updated { .. } => EventType::Updated.as_str(),
            StockChange::Adjusted { .. } => EventType::Adjusted.as_str(),
        }
    }
}

/// The two event types of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `inventory.updated`: an absolute quantity.
    Updated,
    /// `inventory.adjusted`: a signed delta.
    Adjusted,
}

impl EventType {
    /// The contract name: `inventory.updated` or `inventory.adjusted`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Updated => "inventory.updated",
            EventType::Adjusted => "inventory.adjusted",
        }
    }

    /// The type of a contract name; `None` for any other string.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "inventory.updated" => Some(EventType::Updated),
            "inventory.adjusted" => Some(EventType::Adjusted),
            _ => None,
        }
    }
}

/// A supplier event that passed every rule of the contract.
///
/// Built only by [`crate::wire::decode`] or by a producer through [`SupplierEvent::new`],
/// so holding one means its fields are valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SupplierEvent {
    event_id: EventId,
    offer: OfferKey,
    change: StockChange,
    updated_at: DateTime<Utc>,
    sequence: Option<u64>,
}

/// Why a producer could not build an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NewEventError {
    #[error("quantity {0} is outside 0..={MAX_QUANTITY}")]
    /// The quantity of an `inventory.updated` is out of range.
    Quantity(i64),
    #[error("delta {0} is zero or its absolute value exceeds {MAX_QUANTITY}")]
    /// The delta of an `inventory.adjusted` is zero or out of range.
    Delta(i64),
    #[error("updated_at {0} is outside the years 0000 to 9999, which RFC 3339 can write")]
    /// `updated_at` is outside the years an RFC 3339 timestamp can write (`encode` could not
    /// write it so that `decode` reads it back).
    UpdatedAt(DateTime<Utc>),
}

impl SupplierEvent {
    /// Builds an event for producers (feeds, bridges, tests), checking the value rules;
    /// the ids are already valid by their types.
    pub fn new(
        event_id: EventId,
        offer: OfferKey,
        change: StockChange,
        updated_at: DateTime<Utc>,
        sequence: Option<u64>,
    ) -> Result<Self, NewEventError> {
        match change {
            StockChange::Updated { quantity } if !(0..=MAX_QUANTITY).contains(&quantity) => {
                return Err(NewEventError::Quantity(quantity))
            }
            StockChange::Adjusted { delta } if delta == 0 || delta.unsigned_abs() > MAX_QUANTITY as u64 => {
                return Err(NewEventError::Delta(delta))
            }
            _ => {}
        }
        if !writable_in_rfc3339(updated_at) {
            return Err(NewEventError::UpdatedAt(updated_at));
        }
        // The wire format carries microseconds at most; truncating here keeps
        // encode/decode a lossless round trip.
        let updated_at = truncate_to_micros(updated_at);
        Ok(Self { event_id, offer, change, updated_at, sequence })
    }

    /// The event's id (`event_id`).
    pub fn event_id(&self) -> EventId {
        self.event_id
    }

    /// The offer it changes: tenant, supplier and normalized SKU.
    pub fn offer(&self) -> &OfferKey {
        &self.offer
    }

    /// What it does to the offer: set a quantity or add a delta.
    pub fn change(&self) -> StockChange {
        self.change
    }

    /// The supplier's clock at the change (`updated_at`).
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    /// The supplier's own sequence number, when it sends one.
    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// A stable 64-bit fingerprint of the event's content, used to flag a redelivery
    /// of the same `event_id` with a different payload. Field order, formatting and
    /// unknown fields of the original JSON do not affect it; it never changes between
    /// releases, since journaled fingerprints are compared with new ones.
    pub fn fingerprint(&self) -> u64 {
        let (kind, value) = match self.change {
            StockChange::Updated { quantity } => (1u8, quantity),
            StockChange::Adjusted { delta } => (2u8, delta),
        };
        let mut hash = Fnv1a64::default();
        hash.write(self.event_id.0.as_bytes());
        hash.write(&[kind]);
        // Lengths separate the variable-length fields, so ("ab", "c") and ("a", "bc") differ.
        for text in [self.offer.tenant.as_str(), self.offer.supplier.as_str(), self.offer.sku.as_str()] {
            hash.write(&(text.len() as u64).to_le_bytes());
            hash.write(text.as_bytes());
        }
        hash.write(&value.to_le_bytes());
        hash.write(&self.updated_at.timestamp_micros().to_le_bytes());
        match self.sequence {
            Some(sequence) => {
                hash.write(&[1]);
                hash.write(&sequence.to_le_bytes());
            }
            None => hash.write(&[0]),
        }
        hash.0
    }
}

/// `at` as the stores keep it: whole microseconds since the epoch. A leap second (`23:59:60`,
/// which RFC 3339 allows and chrono holds as a second 59 of more than a billion nanoseconds)
/// becomes the next second's start, where the stores put it: held as read, it sorted before
/// that second in memory and after it once stored, so arrival order decided between them.
pub(crate) fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// FNV-1a, 64 bit: tiny, stable across releases and platforms, good enough to tell payloads apart.
struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a64 {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Whether an instant falls in the years an RFC 3339 timestamp writes in UTC (four digits).
pub(crate) fn writable_in_rfc3339(at: DateTime<Utc>) -> bool {
    (0..=9999).contains(&chrono::Datelike::year(&at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Sku, SupplierId, TenantId};

    #[test]
    fn fingerprint_is_stable_across_releases() {
        let offer = OfferKey {
            tenant: TenantId::parse("canary").expect("valid"),
            supplier: SupplierId::parse("acme").expect("valid"),
            sku: Sku::parse("ABC-123").expect("valid"),
        };
        let event = SupplierEvent::new(
            EventId(uuid::Uuid::from_u128(7)),
            offer,
            StockChange::Updated { quantity: 42 },
            "2026-06-01T12:00:00Z".parse().expect("valid time"),
            Some(1042),
        )
        .expect("valid event");
        // Journaled fingerprints are compared with new ones: this value must never change.
        insta::assert_snapshot!(format!("{:016x}", event.fingerprint()), @"2d56bc2e7050b9ec");
    }
}
