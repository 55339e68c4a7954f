//! The named cases of the supplier-events contract, each a scenario with its expected decisions.

use crate::scenario::check;

#[test]
fn newer_snapshot_applies() {
    check!(r#"
        12:00:01 {"event_id": 1, "quantity": 10, "updated_at": "12:00:00"}
        12:00:02 {"event_id": 2, "quantity": 7, "updated_at": "12:00:01"}
    "#, @"
    #1 e1 -> applied
    #2 e2 -> applied
      item canary/ABC-1 quantity 0 -> 7 version 1
    final:
      offer canary/acme/ABC-1 quantity 7 winner e2
      item canary/ABC-1 quantity 7 version 1
    ");
}

#[test]
fn stale_after_newer() {
    check!(r#"
        12:00:05 {"event_id": 2, "quantity": 7, "updated_at": "12:00:01"}
        12:00:06 {"event_id": 1, "quantity": 10, "updated_at": "12:00:00"}
    "#, @"
    #1 e2 -> applied
    #2 e1 -> stale
      item canary/ABC-1 quantity 0 -> 7 version 1
    final:
      offer canary/acme/ABC-1 quantity 7 winner e2
      item canary/ABC-1 quantity 7 version 1
    ");
}

#[test]
fn equal_timestamps_are_ordered_by_sequence_then_event_id() {
    check!(r#"
        12:00:05 {"event_id": 1, "quantity": 5, "sequence": 9}
        12:00:05 {"event_id": 2, "quantity": 6, "sequence": 8}
        12:00:05 {"event_id": 3, "quantity": 7}
        12:00:05 {"event_id": 4, "quantity": 8, "sequence": 9}
    "#, @"
    #1 e1 -> applied
    #2 e2 -> stale
    #3 e3 -> stale
    #4 e4 -> applied
      item canary/ABC-1 quantity 0 -> 8 version 1
    final:
      offer canary/acme/ABC-1 quantity 8 winner e4
      item canary/ABC-1 quantity 8 version 1
    ");
}

#[test]
fn adjustment_newer_than_snapshot_adds_and_older_is_superseded() {
    check!(r#"
        12:00:05 {"event_id": 1, "quantity": 10, "updated_at": "12:00:02"}
        12:00:05 {"event_id": 2, "type": "inventory.adjusted", "delta": -3, "updated_at": "12:00:03"}
        12:00:05 {"event_id": 3, "type": "inventory.adjusted", "delta": 5, "updated_at": "12:00:01"}
    "#, @"
    #1 e1 -> applied
    #2 e2 -> applied
    #3 e3 -> superseded
      item canary/ABC-1 quantity 0 -> 7 version 1
    final:
      offer canary/acme/ABC-1 quantity 7 winner e2
      item canary/ABC-1 quantity 7 version 1
    ");
}

#[test]
fn adjustment_before_its_snapshot_arrives_counts_once() {
    check!(r#"
        12:00:05 {"event_id": 2, "type": "inventory.adjusted", "delta": 4, "updated_at": "12:00:03"}
        12:00:05 {"event_id": 3, "type": "inventory.adjusted", "delta": 2, "updated_at": "12:00:01"}
        ---
        12:00:06 {"event_id": 1, "quantity": 10, "updated_at": "12:00:02"}
    "#, @"
    #1 e2 -> applied
    #2 e3 -> applied
      item canary/ABC-1 quantity 0 -> 6 version 1
    #3 e1 -> applied
      item canary/ABC-1 quantity 6 -> 14 version 2
    final:
      offer canary/acme/ABC-1 quantity 14 winner e2
      item canary/ABC-1 quantity 14 version 2
    ");
}

#[test]
fn offer_never_goes_below_zero_and_does_not_eat_another_suppliers_stock() {
    check!(r#"
        12:00:05 {"event_id": 1, "quantity": 2, "updated_at": "12:00:01"}
        12:00:05 {"event_id": 2, "type": "inventory.adjusted", "delta": -5, "updated_at": "12:00:02"}
        12:00:05 {"event_id": 3, "supplier_id": "globex", "quantity": 10, "updated_at": "12:00:01"}
    "#, @"
    #1 e1 -> applied
    #2 e2 -> applied
    #3 e3 -> applied
      item canary/ABC-1 quantity 0 -> 10 version 1
    final:
      offer canary/acme/ABC-1 quantity 0 winner e2
      offer canary/globex/ABC-1 quantity 10 winner e3
      item canary/ABC-1 quantity 10 version 1
    ");
}

#[test]
fn supplier_clock_ahead_is_clamped() {
    check!(r#"
        12:00:00 {"event_id": 1, "quantity": 99, "updated_at": "13:00:00"}
        12:10:00 {"event_id": 2, "quantity": 5, "updated_at": "12:09:59"}
        12:10:00 {"event_id": 3, "quantity": 6, "updated_at": "12:04:00"}
    "#, @"
    #1 e1 -> applied [clock_drift_clamped, effective_at=12:05:00]
    #2 e2 -> applied
    #3 e3 -> stale
      item canary/ABC-1 quantity 0 -> 5 version 1
    final:
      offer canary/acme/ABC-1 quantity 5 winner e2
      item canary/ABC-1 quantity 5 version 1
    ");
}

#[test]
fn duplicates_count_on_the_original_and_different_payload_is_flagged() {
    check!(r#"
        12:00:01 {"event_id": 1, "quantity": 10}
        12:00:02 {"event_id": 1, "quantity": 10}
        ---
        12:00:03 {"event_id": 1, "quantity": 10}
        12:00:04 {"event_id": 1, "quantity": 55}
    "#, @"
    #1 e1 -> applied
    #2 e1 -> duplicate
      item canary/ABC-1 quantity 0 -> 10 version 1
    #3 e1 -> duplicate
    #4 e1 -> duplicate [payload_differs]
    final:
      offer canary/acme/ABC-1 quantity 10 winner e1
      item canary/ABC-1 quantity 10 version 1
    ");
}

#[test]
fn rejected_event_does_not_claim_its_id() {
    check!(r#"
        12:00:01 {"event_id": 1, "sku": "bad sku!"}
        12:00:02 {"event_id": 1, "sku": "abc-1", "quantity": 3}
    "#, @r#"
    #1 e1 -> rejected [malformed_sku, `sku` "bad sku!" once normalized contains ' ', outside the allowed characters [A-Z0-9._-]]
    #2 e1 -> applied
      item canary/ABC-1 quantity 0 -> 3 version 1
    final:
      offer canary/acme/ABC-1 quantity 3 winner e1
      item canary/ABC-1 quantity 3 version 1
    "#);
}

#[test]
fn held_while_sync_is_off_then_decided_afresh() {
    check!(r#"
        off supplier canary/acme
        12:00:01 {"event_id": 1, "quantity": 10}
        12:00:01 {"event_id": 2, "supplier_id": "globex", "quantity": 4}
        off tenant canary
        12:00:02 {"event_id": 3, "supplier_id": "globex", "quantity": 6, "updated_at": "12:00:01"}
        12:00:02 {"event_id": 1, "quantity": 10}
        on tenant canary
        on supplier canary/acme
        12:00:09 {"event_id": 1, "quantity": 10}
        12:00:09 {"event_id": 3, "supplier_id": "globex", "quantity": 6, "updated_at": "12:00:01"}
    "#, @"
    sync off for supplier canary/acme
    #1 e1 -> held [supplier_sync_off]
    #2 e2 -> applied
      item canary/ABC-1 quantity 0 -> 4 version 1
    sync off for tenant canary
    #3 e3 -> held [tenant_sync_off]
    #4 e1 -> held [tenant_sync_off]
    sync on for tenant canary
    sync on for supplier canary/acme
    #5 e1 -> applied
    #6 e3 -> applied
      item canary/ABC-1 quantity 4 -> 16 version 2
    final:
      offer canary/acme/ABC-1 quantity 10 winner e1
      offer canary/globex/ABC-1 quantity 6 winner e3
      item canary/ABC-1 quantity 16 version 2
    ");
}

#[test]
fn item_version_moves_only_when_quantity_changes() {
    check!(r#"
        12:00:01 {"event_id": 1, "quantity": 10, "updated_at": "12:00:00"}
        ---
        12:00:02 {"event_id": 2, "quantity": 10, "updated_at": "12:00:01"}
        ---
        12:00:03 {"event_id": 3, "quantity": 0, "updated_at": "12:00:02"}
        12:00:03 {"event_id": 4, "supplier_id": "globex", "quantity": 0}
        ---
        12:00:04 {"event_id": 5, "quantity": 3, "updated_at": "12:00:03"}
        12:00:04 {"event_id": 6, "quantity": 8, "updated_at": "12:00:04"}
    "#, @"
    #1 e1 -> applied
      item canary/ABC-1 quantity 0 -> 10 version 1
    #2 e2 -> applied
    #3 e3 -> applied
    #4 e4 -> applied
      item canary/ABC-1 quantity 10 -> 0 version 2
    #5 e5 -> applied
    #6 e6 -> applied
      item canary/ABC-1 quantity 0 -> 8 version 3
    final:
      offer canary/acme/ABC-1 quantity 8 winner e6
      offer canary/globex/ABC-1 quantity 0 winner e4
      item canary/ABC-1 quantity 8 version 3
    ");
}

#[test]
fn each_rejection_reason_is_journaled() {
    check!(r#"
        12:00:01 raw not json
        12:00:01 raw {"event_id": "00000000-0000-0000-0000-000000000001", "type": "inventory.updated"}
        12:00:01 {"event_id": "nope"}
        12:00:01 {"event_id": 2, "type": "inventory.deleted"}
        12:00:01 {"event_id": 3, "tenant_id": "Canary"}
        12:00:01 {"event_id": 4, "supplier_id": ""}
        12:00:01 {"event_id": 5, "sku": "ABC 1"}
        12:00:01 {"event_id": 6, "quantity": -1}
        12:00:01 {"event_id": 7, "type": "inventory.adjusted", "delta": 0}
        12:00:01 {"event_id": 8, "updated_at": "yesterday"}
        12:00:01 {"event_id": 9, "sequence": -4}
    "#, @r#"
    #1 e? -> rejected [invalid_payload, message is not a JSON object]
    #2 e1 -> rejected [invalid_payload, missing required field `tenant_id`]
    #3 e? -> rejected [invalid_event_id, `event_id` "nope" is not a UUID: 4 characters, where a UUID is 36 (8-4-4-4-12 hex digits)]
    #4 e2 -> rejected [unknown_event_type, `type` "inventory.deleted" is neither "inventory.updated" nor "inventory.adjusted"]
    #5 e3 -> rejected [invalid_tenant_id, `tenant_id` "Canary" contains 'C', outside the allowed characters [a-z0-9_-]]
    #6 e4 -> rejected [invalid_supplier_id, `supplier_id` "" is empty]
    #7 e5 -> rejected [malformed_sku, `sku` "ABC 1" once normalized contains ' ', outside the allowed characters [A-Z0-9._-]]
    #8 e6 -> rejected [invalid_quantity, `quantity` -1 is outside 0..=1000000000]
    #9 e7 -> rejected [invalid_delta, `delta` 0 must be non-zero with an absolute value of at most 1000000000]
    #10 e8 -> rejected [invalid_updated_at, `updated_at` "yesterday" is not an RFC 3339 timestamp: premature end of input]
    #11 e9 -> rejected [invalid_sequence, `sequence` -4 must be between 0 and 2^64-1]
    final:
    "#);
}

/// A full refresh's correction is an `inventory.updated` at the snapshot's `as_of` with no
/// sequence: what orders after it by key (an adjustment at `as_of` with a sequence, a
/// snapshot or fold there or later) survives it or makes it stale, and the comparison as of
/// the snapshot says so the same way.
#[test]
fn a_correction_s_ordering_key_decides_what_a_refresh_compares() {
    use catalog_core::{Adjustment, EventId, FoldedAdjustments, OfferState, OrderingKey, Snapshot};
    let as_of: chrono::DateTime<chrono::Utc> = "2026-06-01T12:00:00Z".parse().expect("time");
    let key = |seconds: i64, sequence: u64, id: u128| OrderingKey {
        effective_at: as_of + chrono::Duration::seconds(seconds),
        sequence,
        event_id: EventId(uuid::Uuid::from_u128(id)),
    };
    let snapshot = Some(Snapshot { key: key(-3_600, 0, 1), quantity: 10 });
    let adjustments = vec![
        Adjustment { key: key(-60, 0, 2), delta: -1 },
        // At `as_of` itself, with a sequence: after the correction, which keeps it.
        Adjustment { key: key(0, 5, 3), delta: -3 },
        Adjustment { key: key(60, 0, 4), delta: -2 },
    ];
    let state = OfferState::from_parts(snapshot, None, adjustments).expect("state");
    assert_eq!((state.unclamped_quantity(), state.unclamped_quantity_as_of(as_of)), (4, 9));
    assert!(!state.set_after(as_of));

    let at_as_of_with_a_sequence =
        OfferState::from_parts(Some(Snapshot { key: key(0, 3, 5), quantity: 1 }), None, vec![]);
    assert!(at_as_of_with_a_sequence.expect("state").set_after(as_of), "a snapshot the correction would not pass");
    let folded = FoldedAdjustments { through: key(30, 0, 6), delta: -4, count: 2 };
    let folded_after =
        OfferState::from_parts(snapshot, Some(folded), vec![Adjustment { key: key(40, 0, 7), delta: 1 }]);
    assert!(folded_after.expect("state").set_after(as_of), "a fold the correction would not pass");
}
