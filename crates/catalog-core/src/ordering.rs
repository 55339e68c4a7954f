//! The total order of events within an offer, and the clamp on supplier clocks that run ahead.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::event::SupplierEvent;
use crate::ids::EventId;

/// The default allowance for a supplier clock ahead of ours: five minutes.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// `(effective_at, sequence or 0, event_id)`: the greatest wins.
///
/// Field order matters: the derived `Ord` compares them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderingKey {
    /// The supplier's clock, clamped to receive time + the clock allowance.
    pub effective_at: DateTime<Utc>,
    /// The supplier's sequence, or 0 when it sent none.
    pub sequence: u64,
    /// The event id: the last tie-breaker, so every two events are ordered.
    pub event_id: EventId,
}

impl fmt::Display for OrderingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {}, {})", self.effective_at.to_rfc3339(), self.sequence, self.event_id)
    }
}

/// When an event takes effect, and whether the supplier's clock had to be clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Effective {
    /// Where the event sorts among its offer's events.
    pub key: OrderingKey,
    /// `updated_at` was more than the allowed skew ahead of received time, so
    /// `effective_at` is received time + skew (`clock_drift_clamped`).
    pub clock_drift_clamped: bool,
}

/// How far ahead of our clock a supplier's clock may be before its timestamps are clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockPolicy {
    /// How far ahead of receive time a supplier's clock may be before it is clamped.
    pub max_skew: Duration,
}

impl Default for ClockPolicy {
    fn default() -> Self {
        Self { max_skew: DEFAULT_MAX_CLOCK_SKEW }
    }
}

impl ClockPolicy {
    /// The ordering key of `event` received at `received_at`.
    ///
    /// `received_at` must be the time the event was *first* received (the journal keeps it),
    /// so that a redelivery or a replay computes the same key.
    ///
    /// ```
    /// use catalog_core::{decode, ClockPolicy};
    ///
    /// // The supplier's clock says 12:30; the event arrived at 12:00.
    /// let event = decode(br#"{"event_id":"018f6b1e-6a7b-7c3e-9a51-3f2f0d4c9b10","type":"inventory.updated",
    ///   "tenant_id":"canary","supplier_id":"acme","sku":"A-1","quantity":5,
    ///   "updated_at":"2026-06-01T12:30:00Z"}"#).unwrap();
    /// let effective = ClockPolicy::default().effective(&event, "2026-06-01T12:00:00Z".parse().unwrap());
    /// assert!(effective.clock_drift_clamped);
    /// assert_eq!(effective.key.effective_at.to_rfc3339(), "2026-06-01T12:05:00+00:00");
    /// ```
    pub fn effective(&self, event: &SupplierEvent, received_at: DateTime<Utc>) -> Effective {
        let limit = received_at + self.max_skew;
        let (effective_at, clock_drift_clamped) =
            if event.updated_at() > limit { (limit, true) } else { (event.updated_at(), false) };
        Effective {
            key: OrderingKey {
                effective_at: crate::event::truncate_to_micros(effective_at),
                sequence: event.sequence().unwrap_or(0),
                event_id: event.event_id(),
            },
            clock_drift_clamped,
        }
    }
}
