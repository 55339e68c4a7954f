//! Drift between what a channel accepted and what it shows, case by case.

use catalog_core::{detect_drift, version_out_of_reach, DriftKind, Expected, Shown, MAX_REACHABLE_VERSION};

fn expected(quantity: i64, version: u64, accepted: Option<u64>) -> Expected {
    Expected { quantity, version, accepted }
}

fn shown(quantity: i64, version: u64) -> Option<Shown> {
    Some(Shown { quantity, version })
}

/// (kind, corrected version) or "none".
fn check(expected: Expected, shown: Option<Shown>) -> String {
    match detect_drift(expected, shown) {
        Some(drift) => format!("{} -> v{}", drift.kind.as_str(), drift.corrected_version),
        None => "none".to_owned(),
    }
}

#[test]
fn every_case() {
    let cases = [
        // In sync.
        (expected(12, 7, Some(7)), shown(12, 7), "none"),
        // A manual edit on the storefront.
        (expected(12, 7, Some(7)), shown(99, 7), "quantity_differs -> v8"),
        // A cache reset: the storefront holds nothing.
        (expected(12, 7, Some(7)), None, "missing -> v8"),
        // A lost write: an older version shown than accepted.
        (expected(12, 7, Some(7)), shown(10, 5), "version_behind -> v8"),
        // The catalog restored from a backup: the storefront shows a version never issued.
        (expected(12, 7, Some(7)), shown(12, 9), "version_ahead -> v10"),
        (expected(12, 7, Some(6)), shown(3, 11), "version_ahead -> v12"),
        // A 409 said it holds version 9, and now it shows nothing.
        (expected(12, 7, Some(9)), None, "version_ahead -> v10"),
        // A 409 said 12, and it shows 9 (both never issued): beyond the 12 it said it holds,
        // or the channel refuses the correction as older.
        (expected(12, 7, Some(12)), shown(5, 9), "version_ahead -> v13"),
        // A newer version is on its way: not drift yet.
        (expected(12, 8, Some(7)), shown(10, 7), "none"),
        (expected(12, 8, None), None, "none"),
        // Never versioned: nothing to show.
        (expected(0, 0, None), None, "none"),
        // A version beyond reach, shown or said on a 409: no correction can pass it
        // (`version_out_of_reach` says so); at the limit, one still can.
        (expected(12, 7, Some(7)), shown(12, MAX_REACHABLE_VERSION + 1), "none"),
        (expected(12, 7, Some(u64::MAX)), shown(12, 7), "none"),
        (expected(12, 7, Some(7)), shown(12, MAX_REACHABLE_VERSION), "version_ahead -> v4611686018427387905"),
    ];
    for (expected, shown, want) in cases {
        assert_eq!(check(expected, shown), want, "{expected:?} shown {shown:?}");
    }
}

#[test]
fn a_correction_is_always_beyond_both_versions() {
    for catalog in 1..20u64 {
        for on_channel in 0..25u64 {
            let drift = detect_drift(expected(5, catalog, Some(catalog)), shown(6, on_channel));
            let drift = drift.expect("a different quantity or version is drift");
            assert!(drift.corrected_version > catalog && drift.corrected_version > on_channel);
            if on_channel == catalog {
                assert_eq!(drift.kind, DriftKind::QuantityDiffers);
            }
        }
    }
}

#[test]
fn a_correction_is_beyond_every_version_the_channel_showed_or_said_it_held() {
    for catalog in 1..12u64 {
        for accepted in 0..15u64 {
            for on_channel in 0..15u64 {
                let accepted = (accepted > 0).then_some(accepted);
                let Some(drift) = detect_drift(expected(5, catalog, accepted), shown(6, on_channel)) else {
                    continue;
                };
                let highest = catalog.max(on_channel).max(accepted.unwrap_or(0));
                assert!(drift.corrected_version > highest, "{catalog} {accepted:?} {on_channel}: {drift:?}");
            }
        }
    }
}

/// With nothing on its way to the channel, a version it never accepted is no longer in
/// flight: the channel is compared with the catalog's current version. A channel that never
/// accepted any version, or that a 409 said holds one beyond the catalog's, is judged as
/// before; settling is idempotent, and changes nothing for a channel that accepted the
/// current version.
#[test]
fn with_nothing_on_its_way_the_current_version_is_expected() {
    let settled = |expected: Expected, shown: Option<Shown>| check(expected.settled(), shown);
    // Version 8 dead-lettered and resolved; the channel shows 7, or nothing, or 8's quantity
    // under 7 (a marketplace shows no version: taken as the current one).
    assert_eq!(settled(expected(12, 8, Some(7)), shown(10, 7)), "version_behind -> v9");
    assert_eq!(settled(expected(12, 8, Some(7)), None), "missing -> v9");
    assert_eq!(settled(expected(12, 8, Some(7)), shown(10, 8)), "quantity_differs -> v9");
    assert_eq!(settled(expected(12, 8, Some(7)), shown(12, 8)), "none");
    // Never accepted anything (a channel added since): not drift.
    assert_eq!(settled(expected(12, 8, None), None), "none");
    // A 409 said it holds 9: beyond the catalog's, as before.
    assert_eq!(settled(expected(12, 8, Some(9)), shown(12, 9)), "version_ahead -> v10");
    for version in 0..6u64 {
        for accepted in [None, Some(0), Some(2), Some(5), Some(7)] {
            let once = expected(3, version, accepted).settled();
            assert_eq!(once.settled(), once, "idempotent: {version} {accepted:?}");
            if accepted == Some(version) || accepted.is_none_or(|accepted| accepted > version) {
                assert_eq!(once, expected(3, version, accepted), "unchanged: {version} {accepted:?}");
            }
        }
    }
}

#[test]
fn a_version_beyond_reach_is_said_and_never_corrected() {
    for beyond in [MAX_REACHABLE_VERSION + 1, i64::MAX as u64, u64::MAX] {
        for (accepted, on_channel) in [(Some(7), Some(beyond)), (Some(beyond), Some(7)), (Some(beyond), None)] {
            let expected = expected(12, 7, accepted);
            let shown = on_channel.map(|version| Shown { quantity: 3, version });
            assert_eq!(version_out_of_reach(expected, shown), Some(beyond));
            // A correction there would be stored at the stores' largest version, below the
            // channel's, and refused as older on every sweep.
            assert_eq!(detect_drift(expected, shown), None);
        }
    }
    assert_eq!(version_out_of_reach(expected(12, 7, Some(7)), shown(3, MAX_REACHABLE_VERSION)), None);
    // Every correction fits the stores' signed versions with room for the item's next ones.
    let drift = detect_drift(expected(12, 7, Some(7)), shown(3, MAX_REACHABLE_VERSION)).expect("drift");
    assert_eq!(drift.corrected_version, MAX_REACHABLE_VERSION + 1);
    assert!(i64::try_from(drift.corrected_version).is_ok(), "fits the stores' signed versions");
}
