//! The contract's JSON form of a supplier event: decoding with a typed reason for every
//! rejection, and the encoder producers use.

mod loose;

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use self::loose::Loose;

use crate::event::{truncate_to_micros, EventType, StockChange, SupplierEvent, MAX_QUANTITY};
use crate::failure::{Classify, FailureClass};
use crate::ids::{EventId, OfferKey, Sku, SupplierId, TenantId};

/// The largest message the contract allows, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Why a message was rejected: one reason per rule of the contract.
///
/// The `as_str` names are stable: they are journaled, shown to support and used as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// Not UTF-8, not a JSON object, a duplicated field, or a required field missing.
    InvalidPayload,
    /// Larger than [`MAX_PAYLOAD_BYTES`].
    PayloadTooLarge,
    /// `event_id` is not a UUID string.
    InvalidEventId,
    /// `type` is neither `inventory.updated` nor `inventory.adjusted`.
    UnknownEventType,
    /// `tenant_id` is not 1–64 of `[a-z0-9_-]`.
    InvalidTenantId,
    /// `supplier_id` is not 1–64 of `[a-z0-9_-]`.
    InvalidSupplierId,
    /// `sku`, once trimmed and upper-cased, is not 1–64 of `[A-Z0-9._-]`.
    MalformedSku,
    /// `quantity` of an `inventory.updated` is not an integer in `0..=1_000_000_000`.
    InvalidQuantity,
    /// `delta` of an `inventory.adjusted` is not a non-zero integer with `abs <= 1_000_000_000`.
    InvalidDelta,
    /// `updated_at` is not an RFC 3339 timestamp.
    InvalidUpdatedAt,
    /// `sequence` is present but not an integer `>= 0`.
    InvalidSequence,
}

impl RejectReason {
    /// Every reason, in the order of the contract.
    pub const ALL: [RejectReason; 11] = [
        RejectReason::InvalidPayload,
        RejectReason::PayloadTooLarge,
        RejectReason::InvalidEventId,
        RejectReason::UnknownEventType,
        RejectReason::InvalidTenantId,
        RejectReason::InvalidSupplierId,
        RejectReason::MalformedSku,
        RejectReason::InvalidQuantity,
        RejectReason::InvalidDelta,
        RejectReason::InvalidUpdatedAt,
        RejectReason::InvalidSequence,
    ];

    /// The stable name, as journaled and counted (`malformed_sku`).
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::InvalidPayload => "invalid_payload",
            RejectReason::PayloadTooLarge => "payload_too_large",
            RejectReason::InvalidEventId => "invalid_event_id",
            RejectReason::UnknownEventType => "unknown_event_type",
            RejectReason::InvalidTenantId => "invalid_tenant_id",
            RejectReason::InvalidSupplierId => "invalid_supplier_id",
            RejectReason::MalformedSku => "malformed_sku",
            RejectReason::InvalidQuantity => "invalid_quantity",
            RejectReason::InvalidDelta => "invalid_delta",
            RejectReason::InvalidUpdatedAt => "invalid_updated_at",
            RejectReason::InvalidSequence => "invalid_sequence",
        }
    }

    /// The reason of a stable name; `None` for any other string.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == value)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected message: the reason, a human-readable detail, and whatever
/// identification could be read from it, so support can find it again. Only `decode` makes
/// one (`#[non_exhaustive]`: read its fields, never build it), and it may grow fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
#[non_exhaustive]
pub struct Rejection {
    /// Which rule the message broke.
    pub reason: RejectReason,
    /// What exactly was wrong, in words, for a human.
    pub detail: String,
    /// The `event_id`, when the message had a valid one. A rejection does not claim it.
    pub event_id: Option<EventId>,
    /// The tenant, when the message had a valid one; lets a rejection be traced per tenant.
    pub tenant: Option<TenantId>,
    /// The supplier, when the message had a valid one.
    pub supplier: Option<SupplierId>,
    /// The SKU (normalized), when the message had a valid one: with the tenant, a rejection
    /// shows in the trace of the item it names.
    pub sku: Option<Sku>,
}

impl Classify for Rejection {
    fn failure_class(&self) -> FailureClass {
        FailureClass::NeedsSupplier
    }
}

/// The message as it arrives: every contract field optional and loosely typed,
/// unknown fields ignored, so each rule below can name its own reason.
#[derive(Deserialize)]
struct WireEventIn<'a> {
    #[serde(borrow, default)]
    event_id: Option<Loose<'a>>,
    #[serde(borrow, default, rename = "type")]
    event_type: Option<Loose<'a>>,
    #[serde(borrow, default)]
    tenant_id: Option<Loose<'a>>,
    #[serde(borrow, default)]
    supplier_id: Option<Loose<'a>>,
    #[serde(borrow, default)]
    sku: Option<Loose<'a>>,
    #[serde(borrow, default)]
    quantity: Option<Loose<'a>>,
    #[serde(borrow, default)]
    delta: Option<Loose<'a>>,
    #[serde(borrow, default)]
    updated_at: Option<Loose<'a>>,
    #[serde(borrow, default)]
    sequence: Option<Loose<'a>>,
}

/// Collects what is known of a message while it is checked, so a rejection
/// carries the event id, tenant, supplier and SKU whenever they were valid.
#[derive(Default)]
struct Checker {
    event_id: Option<EventId>,
    tenant: Option<TenantId>,
    supplier: Option<SupplierId>,
    sku: Option<Sku>,
}

impl Checker {
    fn too_large(&self, length: u64) -> Rejection {
        self.reject(
            RejectReason::PayloadTooLarge,
            format!("message is {length} bytes, more than the {MAX_PAYLOAD_BYTES} allowed"),
        )
    }

    fn reject(&self, reason: RejectReason, detail: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            detail: detail.into(),
            event_id: self.event_id,
            tenant: self.tenant.clone(),
            supplier: self.supplier.clone(),
            sku: self.sku.clone(),
        }
    }

    /// A required field: missing (or null) is `invalid_payload`, as the contract says.
    fn required<'v, 'a>(&self, field: &'static str, value: &'v Option<Loose<'a>>) -> Result<&'v Loose<'a>, Rejection> {
        match value {
            None | Some(Loose::Null) => {
                Err(self.reject(RejectReason::InvalidPayload, format!("missing required field `{field}`")))
            }
            Some(value) => Ok(value),
        }
    }

    fn string<'v>(
        &self,
        field: &'static str,
        value: &'v Option<Loose<'_>>,
        reason: RejectReason,
    ) -> Result<&'v str, Rejection> {
        match self.required(field, value)? {
            Loose::Str(text) => Ok(text),
            other => Err(self.reject(reason, format!("`{field}` must be a string, found {}", other.kind()))),
        }
    }

    fn integer(&self, field: &'static str, value: &Loose<'_>, reason: RejectReason) -> Result<i128, Rejection> {
        match value {
            Loose::Int(number) => Ok(*number),
            other => Err(self.reject(reason, format!("`{field}` must be an integer, found {}", other.kind()))),
        }
    }
}

/// A UUID in its string form, 8-4-4-4-12 hex digits (either case), as the contract's `event_id`
/// is: the forms `uuid` also takes (32 digits without hyphens, in braces, `urn:uuid:`) are not
/// it, and taken they made one id of several spellings without a word (decision 0065).
/// A character outside ASCII is named first: counted in bytes, `０18f6b1e-…` (a full-width
/// zero, 36 characters) was said to be 36 characters "where a UUID is 36".
fn hyphenated_uuid(text: &str) -> Result<Uuid, String> {
    if let Some(found) = text.chars().find(|c| !c.is_ascii()) {
        return Err(format!("contains {found:?}, where a UUID is ASCII hex digits and hyphens"));
    }
    if text.len() != 36 {
        return Err(format!("{} characters, where a UUID is 36 (8-4-4-4-12 hex digits)", text.chars().count()));
    }
    Uuid::try_parse(text).map_err(|error| error.to_string())
}

/// Decodes a message of `length` bytes of which a source kept only the first ones,
/// `prefix` (a line too long to hold whole): longer than [`MAX_PAYLOAD_BYTES`], it is
/// `payload_too_large` with its whole length in the detail; otherwise `prefix` is decoded.
///
/// ```
/// use catalog_core::{decode_prefix, RejectReason, MAX_PAYLOAD_BYTES};
///
/// let prefix = vec![b' '; MAX_PAYLOAD_BYTES + 1];
/// let rejection = decode_prefix(&prefix, 2_000_000).unwrap_err();
/// assert_eq!(rejection.reason, RejectReason::PayloadTooLarge);
/// assert_eq!(rejection.detail, "message is 2000000 bytes, more than the 65536 allowed");
/// ```
pub fn decode_prefix(prefix: &[u8], length: u64) -> Result<SupplierEvent, Rejection> {
    if length > MAX_PAYLOAD_BYTES as u64 {
        return Err(Checker::default().too_large(length));
    }
    decode(prefix)
}

/// Decodes one message of the contract into a validated event.
///
/// Every rule of `supplier-events.md` is checked; the first broken one, in field order
/// `event_id, type, tenant_id, supplier_id, sku, quantity|delta, updated_at, sequence`,
/// is the reason. Never panics, whatever the bytes.
///
/// ```
/// use catalog_core::{decode, RejectReason};
///
/// let event = decode(br#"{"event_id":"018f6b1e-6a7b-7c3e-9a51-3f2f0d4c9b10","type":"inventory.adjusted",
///   "tenant_id":"canary","supplier_id":"acme","sku":"abc-123","delta":-2,
///   "updated_at":"2026-06-01T12:00:00Z"}"#).unwrap();
/// assert_eq!(event.offer().sku.as_str(), "ABC-123");
///
/// let rejection = decode(br#"{"event_id":"018f6b1e-6a7b-7c3e-9a51-3f2f0d4c9b10","type":"inventory.updated",
///   "tenant_id":"canary","supplier_id":"acme","sku":"abc 123","quantity":1,
///   "updated_at":"2026-06-01T12:00:00Z"}"#).unwrap_err();
/// assert_eq!(rejection.reason, RejectReason::MalformedSku);
/// assert_eq!(rejection.reason.as_str(), "malformed_sku");
/// ```
pub fn decode(bytes: &[u8]) -> Result<SupplierEvent, Rejection> {
    let mut checker = Checker::default();
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(checker.too_large(bytes.len() as u64));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|error| checker.reject(RejectReason::InvalidPayload, format!("message is not UTF-8: {error}")))?;
    // A derived struct also accepts a JSON array of positional fields: the contract says object.
    if !text.trim_start().starts_with('{') {
        let detail = if text.trim_start().is_empty() {
            "message is empty (a Kafka message with no value, or a line of blanks)"
        } else if text.starts_with('\u{FEFF}') {
            "message starts with a byte order mark (U+FEFF), not a JSON object"
        } else {
            "message is not a JSON object"
        };
        return Err(checker.reject(RejectReason::InvalidPayload, detail));
    }
    let wire: WireEventIn<'_> = serde_json::from_str(text).map_err(|error| {
        checker.reject(RejectReason::InvalidPayload, format!("message is not a valid JSON object: {error}"))
    })?;

    // Whatever identification is valid is kept on any rejection, whichever rule broke first,
    // so support can find a rejected message by its tenant and event id, and in its item's trace.
    if let Some(Loose::Str(text)) = &wire.event_id {
        checker.event_id = hyphenated_uuid(text).ok().map(EventId);
    }
    if let Some(Loose::Str(text)) = &wire.tenant_id {
        checker.tenant = TenantId::parse(text).ok();
    }
    if let Some(Loose::Str(text)) = &wire.supplier_id {
        checker.supplier = SupplierId::parse(text).ok();
    }
    if let Some(Loose::Str(text)) = &wire.sku {
        checker.sku = Sku::parse(text).ok();
    }

    let event_id_text = checker.string("event_id", &wire.event_id, RejectReason::InvalidEventId)?;
    let event_id = hyphenated_uuid(event_id_text).map_err(|error| {
        checker.reject(RejectReason::InvalidEventId, format!("`event_id` {event_id_text:?} is not a UUID: {error}"))
    })?;

    let type_text = checker.string("type", &wire.event_type, RejectReason::UnknownEventType)?;
    let event_type = EventType::parse(type_text).ok_or_else(|| {
        checker.reject(
            RejectReason::UnknownEventType,
            format!("`type` {type_text:?} is neither \"inventory.updated\" nor \"inventory.adjusted\""),
        )
    })?;

    let tenant_text = checker.string("tenant_id", &wire.tenant_id, RejectReason::InvalidTenantId)?;
    let tenant = TenantId::parse(tenant_text).map_err(|error| {
        checker.reject(RejectReason::InvalidTenantId, format!("`tenant_id` {tenant_text:?} {error}"))
    })?;

    let supplier_text = checker.string("supplier_id", &wire.supplier_id, RejectReason::InvalidSupplierId)?;
    let supplier = SupplierId::parse(supplier_text).map_err(|error| {
        checker.reject(RejectReason::InvalidSupplierId, format!("`supplier_id` {supplier_text:?} {error}"))
    })?;

    let sku_text = checker.string("sku", &wire.sku, RejectReason::MalformedSku)?;
    let sku = Sku::parse(sku_text).map_err(|error| {
        checker.reject(RejectReason::MalformedSku, format!("`sku` {sku_text:?} once normalized {error}"))
    })?;

    let change = match event_type {
        EventType::Updated => {
            let quantity = checker.integer(
                "quantity",
                checker.required("quantity", &wire.quantity)?,
                RejectReason::InvalidQuantity,
            )?;
            if !(0..=i128::from(MAX_QUANTITY)).contains(&quantity) {
                return Err(checker.reject(
                    RejectReason::InvalidQuantity,
                    format!("`quantity` {quantity} is outside 0..={MAX_QUANTITY}"),
                ));
            }
            StockChange::Updated { quantity: quantity as i64 }
        }
        EventType::Adjusted => {
            let delta =
                checker.integer("delta", checker.required("delta", &wire.delta)?, RejectReason::InvalidDelta)?;
            if delta == 0 || delta.abs() > i128::from(MAX_QUANTITY) {
                return Err(checker.reject(
                    RejectReason::InvalidDelta,
                    format!("`delta` {delta} must be non-zero with an absolute value of at most {MAX_QUANTITY}"),
                ));
            }
            StockChange::Adjusted { delta: delta as i64 }
        }
    };

    let updated_at_text = checker.string("updated_at", &wire.updated_at, RejectReason::InvalidUpdatedAt)?;
    let updated_at = DateTime::parse_from_rfc3339(updated_at_text).map_err(|error| {
        checker.reject(
            RejectReason::InvalidUpdatedAt,
            format!("`updated_at` {updated_at_text:?} is not an RFC 3339 timestamp: {error}"),
        )
    })?;
    let updated_at = truncate_to_micros(updated_at.with_timezone(&Utc));
    if !crate::event::writable_in_rfc3339(updated_at) {
        return Err(checker.reject(
            RejectReason::InvalidUpdatedAt,
            format!("`updated_at` {updated_at_text:?} is outside the years 0000 to 9999 in UTC"),
        ));
    }

    let sequence = match &wire.sequence {
        None | Some(Loose::Null) => None,
        Some(value) => {
            let sequence = checker.integer("sequence", value, RejectReason::InvalidSequence)?;
            let sequence = u64::try_from(sequence).map_err(|_| {
                checker.reject(
                    RejectReason::InvalidSequence,
                    format!("`sequence` {sequence} must be between 0 and 2^64-1"),
                )
            })?;
            Some(sequence)
        }
    };

    SupplierEvent::new(EventId(event_id), OfferKey { tenant, supplier, sku }, change, updated_at, sequence)
        .map_err(|error| checker.reject(RejectReason::InvalidPayload, error.to_string()))
}

#[derive(Serialize)]
struct WireEventOut<'a> {
    event_id: &'a Uuid,
    #[serde(rename = "type")]
    event_type: &'static str,
    tenant_id: &'a str,
    supplier_id: &'a str,
    sku: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<i64>,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
}

/// Encodes an event as one contract message (compact JSON, no trailing newline).
/// `decode(encode(e).as_bytes()) == Ok(e)` for every event.
///
/// ```
/// use catalog_core::{decode, encode, EventId, OfferKey, Sku, StockChange, SupplierEvent, SupplierId, TenantId};
///
/// let offer = OfferKey {
///     tenant: TenantId::parse("canary").unwrap(),
///     supplier: SupplierId::parse("acme").unwrap(),
///     sku: Sku::parse("abc-123").unwrap(),
/// };
/// let event_id = EventId(uuid::Uuid::parse_str("018f6b1e-6a7b-7c3e-9a51-3f2f0d4c9b10").unwrap());
/// let updated_at = "2026-06-01T12:00:00Z".parse().unwrap();
/// let event = SupplierEvent::new(event_id, offer, StockChange::Updated { quantity: 7 }, updated_at, Some(3)).unwrap();
/// let message = encode(&event);
/// assert_eq!(decode(message.as_bytes()), Ok(event));
/// ```
pub fn encode(event: &SupplierEvent) -> String {
    let (quantity, delta) = match event.change() {
        StockChange::Updated { quantity } => (Some(quantity), None),
        StockChange::Adjusted { delta } => (None, Some(delta)),
    };
    let wire = WireEventOut {
        event_id: &event.event_id().0,
        event_type: event.change().type_name(),
        tenant_id: event.offer().tenant.as_str(),
        supplier_id: event.offer().supplier.as_str(),
        sku: event.offer().sku.as_str(),
        quantity,
        delta,
        updated_at: event.updated_at().to_rfc3339_opts(SecondsFormat::AutoSi, true),
        sequence: event.sequence(),
    };
    serde_json::to_string(&wire).expect("a struct of strings and integers always serializes")
}
