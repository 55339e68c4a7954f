//! The W3C Trace Context `traceparent` header, validated: only a well-formed value is carried
//! into logs, the journal and publish calls. A value from a supplier is untrusted bytes; a NUL
//! byte cannot be stored in PostgreSQL text, and CR or LF cannot go into an HTTP header.

use std::fmt;

/// The length of a version-`00` value: `00-{32 hex}-{16 hex}-{2 hex}`.
const VERSION_00_LEN: usize = 55;

/// A valid `traceparent` (W3C Trace Context, version-format `00`): lowercase hex fields of
/// 2, 32, 16 and 2 digits, the trace id and parent id not all zeros. A value of a later
/// version is parsed as the specification asks (its first four fields, followed by the end
/// or a `-`) and held as version `00`, the highest this implementation knows; version `ff`
/// is invalid. The value is therefore always 55 ASCII characters of `[0-9a-f-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceParent(String);

/// Why a `traceparent` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidTraceParent {
    /// Not the `version-traceid-parentid-flags` shape: wrong length, a missing `-`, or a
    /// character that is not a lowercase hex digit (upper case, a control byte, non-ASCII).
    #[error("not version-traceid-parentid-flags in lowercase hex")]
    Malformed,
    /// Version `ff`, which the specification declares invalid.
    #[error("version ff is invalid")]
    ForbiddenVersion,
    /// A trace id of all zeros.
    #[error("the trace id is all zeros")]
    ZeroTraceId,
    /// A parent id of all zeros.
    #[error("the parent id is all zeros")]
    ZeroParentId,
}

impl InvalidTraceParent {
    /// A stable name, used as a metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            InvalidTraceParent::Malformed => "malformed",
            InvalidTraceParent::ForbiddenVersion => "version_ff",
            InvalidTraceParent::ZeroTraceId => "zero_trace_id",
            InvalidTraceParent::ZeroParentId => "zero_parent_id",
        }
    }
}

impl TraceParent {
    /// Validates a header value as received, bytes and all.
    ///
    /// ```
    /// use catalog_core::{InvalidTraceParent, TraceParent};
    ///
    /// let header = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!(header.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert_eq!(
    ///     TraceParent::parse(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
    ///     Err(InvalidTraceParent::ZeroTraceId)
    /// );
    /// ```
    pub fn parse(value: &[u8]) -> Result<Self, InvalidTraceParent> {
        // Every version has at least the four fields of version 00.
        if value.len() < VERSION_00_LEN {
            return Err(InvalidTraceParent::Malformed);
        }
        let version = &value[0..2];
        let trace_id = &value[3..35];
        let parent_id = &value[36..52];
        let flags = &value[53..55];
        let separated = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
        if !separated || ![version, trace_id, parent_id, flags].iter().all(|field| is_lower_hex(field)) {
            return Err(InvalidTraceParent::Malformed);
        }
        if version == b"ff" {
            return Err(InvalidTraceParent::ForbiddenVersion);
        }
        // Version 00 is exactly its four fields; a later version may add fields after a `-`.
        let rest = &value[VERSION_00_LEN..];
        let rest_allowed = if version == b"00" { rest.is_empty() } else { rest.is_empty() || rest[0] == b'-' };
        if !rest_allowed {
            return Err(InvalidTraceParent::Malformed);
        }
        if trace_id.iter().all(|digit| *digit == b'0') {
            return Err(InvalidTraceParent::ZeroTraceId);
        }
        if parent_id.iter().all(|digit| *digit == b'0') {
            return Err(InvalidTraceParent::ZeroParentId);
        }
        let mut held = String::with_capacity(VERSION_00_LEN);
        held.push_str("00");
        // Checked above: every byte from here to VERSION_00_LEN is ASCII.
        held.extend(value[2..VERSION_00_LEN].iter().map(|byte| char::from(*byte)));
        Ok(Self(held))
    }

    /// The value as it is stored and sent: 55 characters of `[0-9a-f-]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trace id: 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }
}

fn is_lower_hex(field: &[u8]) -> bool {
    field.iter().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({})", self.0)
    }
}

impl std::str::FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value.as_bytes())
    }
}

impl AsRef<str> for TraceParent {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
