//! Drift: a sales channel showing something other than what it accepted (a cache reset, a
//! manual edit, a lost write on its side, a version the catalog never issued). The storefront
//! contract's read-back endpoints show what it holds; this says whether that is drift and
//! what the correction is.
//!
//! A correction is a new version of the item, with the catalog's quantity, published the
//! normal way: re-sending an `Idempotency-Key` may be deduplicated by the channel.

use serde::Serialize;

/// What the catalog knows of one item on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The item's current quantity and version.
    pub quantity: i64,
    /// The version that quantity belongs to.
    pub version: u64,
    /// The newest version the channel accepted (202, or said it held on a 409).
    pub accepted: Option<u64>,
}

impl Expected {
    /// What a channel is expected to hold when no version of the item is on its way to it
    /// (none queued, no dead letter open): the catalog's current version, whatever the
    /// channel last accepted. A version it never accepted and nothing is sending any more
    /// was given up on (its dead letter resolved): without this, [`detect`] takes it for in
    /// flight for ever, and the channel shows the older quantity until the item next changes.
    /// A channel that never accepted a version of the item (one added since) is left as it
    /// is, and so is one a 409 said holds a version beyond the catalog's.
    ///
    /// ```
    /// use catalog_core::{detect_drift, DriftKind, Expected, Shown};
    ///
    /// // Version 8 was dead-lettered and resolved; the channel still shows version 7.
    /// let expected = Expected { quantity: 4, version: 8, accepted: Some(7) };
    /// let shown = Some(Shown { quantity: 10, version: 7 });
    /// assert_eq!(detect_drift(expected, shown), None, "taken for in flight");
    /// let drift = detect_drift(expected.settled(), shown).unwrap();
    /// assert_eq!((drift.kind, drift.corrected_version), (DriftKind::VersionBehind, 9));
    /// ```
    pub fn settled(self) -> Self {
        match self.accepted {
            Some(accepted) if accepted < self.version => Self { accepted: Some(self.version), ..self },
            _ => self,
        }
    }
}

/// What the channel shows for the item: `None` when it holds nothing (404, or absent from
/// its list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// The quantity the channel shows.
    pub quantity: i64,
    /// The version the channel says it shows.
    pub version: u64,
}

/// How a channel's view differs from the catalog's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DriftKind {
    /// It accepted a version and now holds nothing.
    Missing,
    /// It shows the accepted version with another quantity (a manual edit).
    QuantityDiffers,
    /// It shows an older version than it accepted (a lost write, a cache reset), or, with
    /// nothing on its way to it, than the catalog's ([`Expected::settled`]).
    VersionBehind,
    /// It shows a version the catalog never issued (the catalog was restored from a backup).
    VersionAhead,
}

impl DriftKind {
    /// The stable name: metric label and journal column.
    pub fn as_str(&self) -> &'static str {
        match self {
            DriftKind::Missing => "missing",
            DriftKind::QuantityDiffers => "quantity_differs",
            DriftKind::VersionBehind => "version_behind",
            DriftKind::VersionAhead => "version_ahead",
        }
    }

    /// The kind a stable name names.
    pub fn parse(name: &str) -> Option<Self> {
        [DriftKind::Missing, DriftKind::QuantityDiffers, DriftKind::VersionBehind, DriftKind::VersionAhead]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// A drift found, and the version its correction is published as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// How it differs.
    pub kind: DriftKind,
    /// What the channel showed; `None` when it does not list the item.
    pub shown: Option<Shown>,
    /// Greater than both the catalog's version and any version the channel shows, so the
    /// channel accepts it and nothing deduplicates it.
    pub corrected_version: u64,
}

/// The highest version a channel may show, or say it holds, for the catalog to move an item
/// past it. A correction is a version above the channel's, the stores keep versions as
/// signed 64-bit integers, and the item's versions after a correction need room too: half
/// the signed range leaves it. No channel counting an item's changes gets near it; a
/// version beyond it is a channel's fault (a corrupt record, a timestamp sent as a version).
pub const MAX_REACHABLE_VERSION: u64 = 1 << 62;

/// The version beyond [`MAX_REACHABLE_VERSION`] that the channel shows or said it holds (a
/// 409), if any. That is drift no correction can reach: no version the catalog can issue
/// is newer, so [`detect`] finds none in it (a correction at the stores' largest version
/// would be refused as older, for ever). An operator clears the item's version on the
/// channel.
///
/// ```
/// use catalog_core::{detect_drift, version_out_of_reach, Expected, Shown, MAX_REACHABLE_VERSION};
///
/// let expected = Expected { quantity: 12, version: 5, accepted: Some(5) };
/// let shown = Some(Shown { quantity: 12, version: u64::MAX });
/// assert_eq!(version_out_of_reach(expected, shown), Some(u64::MAX));
/// assert_eq!(detect_drift(expected, shown), None);
/// let shown = Some(Shown { quantity: 12, version: MAX_REACHABLE_VERSION });
/// assert_eq!(version_out_of_reach(expected, shown), None);
/// ```
pub fn out_of_reach(expected: Expected, shown: Option<Shown>) -> Option<u64> {
    let highest = shown.map_or(0, |shown| shown.version).max(expected.accepted.unwrap_or(0));
    (highest > MAX_REACHABLE_VERSION).then_some(highest)
}

/// Whether `shown` is drift from `expected`, and its correction. A version beyond reach is
/// none ([`out_of_reach`]).
///
/// Only what the channel already accepted is compared: an item with a newer version still
/// on its way (or never accepted) is not drift, unless the channel shows a version beyond
/// anything the catalog issued. An item the catalog never versioned (quantity always 0) has
/// nothing to show.
///
/// ```
/// use catalog_core::{detect_drift, DriftKind, Expected, Shown};
///
/// let expected = Expected { quantity: 12, version: 5, accepted: Some(5) };
/// assert_eq!(detect_drift(expected, Some(Shown { quantity: 12, version: 5 })), None);
///
/// let drift = detect_drift(expected, Some(Shown { quantity: 9, version: 5 })).unwrap();
/// assert_eq!(drift.kind, DriftKind::QuantityDiffers);
/// assert!(drift.corrected_version > 5);
/// ```
pub fn detect(expected: Expected, shown: Option<Shown>) -> Option<Drift> {
    if out_of_reach(expected, shown).is_some() {
        return None;
    }
    let corrected = |shown_version: u64| expected.version.max(shown_version).saturating_add(1);
    if let Some(shown) = shown.filter(|shown| shown.version > expected.version) {
        // Beyond what a 409 said it holds too, or the channel refuses the correction as older.
        let highest = shown.version.max(expected.accepted.unwrap_or(0));
        return Some(Drift {
            kind: DriftKind::VersionAhead,
            shown: Some(shown),
            corrected_version: corrected(highest),
        });
    }
    // A 409 said the channel holds a version the catalog never issued: drift, whatever it
    // shows now.
    if let Some(accepted) = expected.accepted.filter(|accepted| *accepted > expected.version) {
        let highest = accepted.max(shown.map_or(0, |shown| shown.version));
        return Some(Drift { kind: DriftKind::VersionAhead, shown, corrected_version: corrected(highest) });
    }
    // In flight or never accepted: the publisher is still on it.
    if expected.version == 0 || expected.accepted != Some(expected.version) {
        return None;
    }
    let kind = match shown {
        None => DriftKind::Missing,
        Some(shown) if shown.version < expected.version => DriftKind::VersionBehind,
        Some(shown) if shown.quantity != expected.quantity => DriftKind::QuantityDiffers,
        Some(_) => return None,
    };
    Some(Drift { kind, shown, corrected_version: corrected(shown.map_or(0, |shown| shown.version)) })
}
