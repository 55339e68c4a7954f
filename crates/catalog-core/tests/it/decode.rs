//! Decoding: one rejection reason per contract rule, and the encoder's round trip.

use std::fmt::Write as _;

use catalog_core::{decode, decode_prefix, encode, RejectReason, MAX_PAYLOAD_BYTES};

use crate::scenario::message;

/// Decodes each named input and renders the normalized message or the rejection.
fn check_all(cases: &[(&str, Vec<u8>)]) -> String {
    let mut out = String::new();
    for (name, bytes) in cases {
        let line = match decode(bytes) {
            Ok(event) => format!("ok {}", encode(&event)),
            Err(rejection) => {
                let event_id = rejection.event_id.map_or("-".to_owned(), |id| id.to_string());
                let tenant = rejection.tenant.map_or("-".to_owned(), |tenant| tenant.to_string());
                format!("{} (event_id {event_id}, tenant {tenant}): {}", rejection.reason, rejection.detail)
            }
        };
        writeln!(out, "{name}: {line}").expect("write to string");
    }
    out
}

fn json(overrides: &str) -> Vec<u8> {
    message(overrides).into_bytes()
}

#[test]
fn every_rule_has_its_reason() {
    let cases = [
        ("valid, sku normalized, unknown field ignored", json(r#"{"sku": "  abc-1 ", "color": "red", "sequence": 7}"#)),
        ("adjustment with a stray quantity", json(r#"{"type": "inventory.adjusted", "delta": -2, "quantity": 9}"#)),
        ("offset timestamp", json(r#"{"updated_at": "2026-06-01T14:00:00.123456789+02:00"}"#)),
        ("null sequence is absent", json(r#"{"sequence": null}"#)),
        ("not utf-8", b"\xff\xfe".to_vec()),
        ("not json", b"quantity=4".to_vec()),
        ("json array", b"[1,2]".to_vec()),
        ("byte order mark first", [b"\xEF\xBB\xBF".as_slice(), &json("{}")].concat()),
        ("empty", Vec::new()),
        ("duplicated field", br#"{"sku":"A","sku":"B"}"#.to_vec()),
        ("missing event_id", json(r#"{"event_id": null}"#)),
        ("event_id not a uuid", json(r#"{"event_id": "42"}"#)),
        ("event_id without hyphens", json(r#"{"event_id": "00000000000000000000000000000001"}"#)),
        ("event_id in braces", json(r#"{"event_id": "{00000000-0000-0000-0000-000000000001}"}"#)),
        ("event_id as a urn", json(r#"{"event_id": "urn:uuid:00000000-0000-0000-0000-000000000001"}"#)),
        ("event_id in capitals", json(r#"{"event_id": "0000000A-0000-0000-0000-000000000001", "sku": "sku-2"}"#)),
        ("sku with a letter outside ascii", json(r#"{"sku": "straße-1"}"#)),
        ("sku too long in letters outside ascii", json(&format!(r#"{{"sku": "{}"}}"#, "Ä".repeat(33)))),
        ("event_id with a full-width digit", json(r#"{"event_id": "０0000000-0000-0000-0000-00000000001"}"#)),
        ("event_id a number", json(r#"{"event_id": 4.5}"#)),
        ("missing type", json(r#"{"type": null}"#)),
        ("unknown type", json(r#"{"type": "inventory.deleted"}"#)),
        ("missing tenant_id", json(r#"{"tenant_id": null}"#)),
        ("upper-case tenant_id", json(r#"{"tenant_id": "Canary"}"#)),
        ("supplier_id too long", json(&format!(r#"{{"supplier_id": "{}"}}"#, "s".repeat(65)))),
        ("missing sku", json(r#"{"sku": null}"#)),
        ("blank sku", json(r#"{"sku": "   "}"#)),
        ("sku with a space inside", json(r#"{"sku": "ab c"}"#)),
        ("sku not a string", json(r#"{"sku": 123}"#)),
        ("missing quantity", json(r#"{"quantity": null}"#)),
        ("negative quantity", json(r#"{"quantity": -1}"#)),
        ("quantity too large", json(r#"{"quantity": 1000000001}"#)),
        ("fractional quantity", json(r#"{"quantity": 4.5}"#)),
        ("quantity as string", json(r#"{"quantity": "4"}"#)),
        ("missing delta", json(r#"{"type": "inventory.adjusted", "quantity": null}"#)),
        ("zero delta", json(r#"{"type": "inventory.adjusted", "delta": 0}"#)),
        ("delta too large", json(r#"{"type": "inventory.adjusted", "delta": -1000000001}"#)),
        ("missing updated_at", json(r#"{"updated_at": null}"#)),
        ("updated_at without offset", json(r#"{"updated_at": "2026-06-01T12:00:00"}"#)),
        ("negative sequence", json(r#"{"sequence": -1}"#)),
        ("sequence too large", json(r#"{"sequence": 18446744073709551616}"#)),
        ("too large", json(&format!(r#"{{"padding": "{}"}}"#, "x".repeat(MAX_PAYLOAD_BYTES)))),
    ];
    let rendered = check_all(&cases);
    for reason in RejectReason::ALL {
        assert!(rendered.contains(&format!(": {reason} (")), "no case is rejected as {reason}");
    }
    insta::assert_snapshot!(rendered, @r#"
    valid, sku normalized, unknown field ignored: ok {"event_id":"00000000-0000-0000-0000-000000000001","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"ABC-1","quantity":1,"updated_at":"2026-06-01T12:00:00Z","sequence":7}
    adjustment with a stray quantity: ok {"event_id":"00000000-0000-0000-0000-000000000001","type":"inventory.adjusted","tenant_id":"canary","supplier_id":"acme","sku":"ABC-1","delta":-2,"updated_at":"2026-06-01T12:00:00Z"}
    offset timestamp: ok {"event_id":"00000000-0000-0000-0000-000000000001","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"ABC-1","quantity":1,"updated_at":"2026-06-01T12:00:00.123456Z"}
    null sequence is absent: ok {"event_id":"00000000-0000-0000-0000-000000000001","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"ABC-1","quantity":1,"updated_at":"2026-06-01T12:00:00Z"}
    not utf-8: invalid_payload (event_id -, tenant -): message is not UTF-8: invalid utf-8 sequence of 1 bytes from index 0
    not json: invalid_payload (event_id -, tenant -): message is not a JSON object
    json array: invalid_payload (event_id -, tenant -): message is not a JSON object
    byte order mark first: invalid_payload (event_id -, tenant -): message starts with a byte order mark (U+FEFF), not a JSON object
    empty: invalid_payload (event_id -, tenant -): message is empty (a Kafka message with no value, or a line of blanks)
    duplicated field: invalid_payload (event_id -, tenant -): message is not a valid JSON object: duplicate field `sku` at line 1 column 16
    missing event_id: invalid_payload (event_id -, tenant canary): missing required field `event_id`
    event_id not a uuid: invalid_event_id (event_id -, tenant canary): `event_id` "42" is not a UUID: 2 characters, where a UUID is 36 (8-4-4-4-12 hex digits)
    event_id without hyphens: invalid_event_id (event_id -, tenant canary): `event_id` "00000000000000000000000000000001" is not a UUID: 32 characters, where a UUID is 36 (8-4-4-4-12 hex digits)
    event_id in braces: invalid_event_id (event_id -, tenant canary): `event_id` "{00000000-0000-0000-0000-000000000001}" is not a UUID: 38 characters, where a UUID is 36 (8-4-4-4-12 hex digits)
    event_id as a urn: invalid_event_id (event_id -, tenant canary): `event_id` "urn:uuid:00000000-0000-0000-0000-000000000001" is not a UUID: 45 characters, where a UUID is 36 (8-4-4-4-12 hex digits)
    event_id in capitals: ok {"event_id":"0000000a-0000-0000-0000-000000000001","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"SKU-2","quantity":1,"updated_at":"2026-06-01T12:00:00Z"}
    sku with a letter outside ascii: malformed_sku (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `sku` "straße-1" once normalized contains 'ß', outside the allowed characters [A-Z0-9._-]
    sku too long in letters outside ascii: malformed_sku (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `sku` "ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ" once normalized contains 'Ä', outside the allowed characters [A-Z0-9._-]
    event_id with a full-width digit: invalid_event_id (event_id -, tenant canary): `event_id` "０0000000-0000-0000-0000-00000000001" is not a UUID: contains '０', where a UUID is ASCII hex digits and hyphens
    event_id a number: invalid_event_id (event_id -, tenant canary): `event_id` must be a string, found a number that is not a 64-bit integer
    missing type: invalid_payload (event_id 00000000-0000-0000-0000-000000000001, tenant canary): missing required field `type`
    unknown type: unknown_event_type (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `type` "inventory.deleted" is neither "inventory.updated" nor "inventory.adjusted"
    missing tenant_id: invalid_payload (event_id 00000000-0000-0000-0000-000000000001, tenant -): missing required field `tenant_id`
    upper-case tenant_id: invalid_tenant_id (event_id 00000000-0000-0000-0000-000000000001, tenant -): `tenant_id` "Canary" contains 'C', outside the allowed characters [a-z0-9_-]
    supplier_id too long: invalid_supplier_id (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `supplier_id` "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss" is 65 bytes long, more than the 64 allowed
    missing sku: invalid_payload (event_id 00000000-0000-0000-0000-000000000001, tenant canary): missing required field `sku`
    blank sku: malformed_sku (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `sku` "   " once normalized is empty
    sku with a space inside: malformed_sku (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `sku` "ab c" once normalized contains ' ', outside the allowed characters [A-Z0-9._-]
    sku not a string: malformed_sku (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `sku` must be a string, found an integer
    missing quantity: invalid_payload (event_id 00000000-0000-0000-0000-000000000001, tenant canary): missing required field `quantity`
    negative quantity: invalid_quantity (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `quantity` -1 is outside 0..=1000000000
    quantity too large: invalid_quantity (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `quantity` 1000000001 is outside 0..=1000000000
    fractional quantity: invalid_quantity (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `quantity` must be an integer, found a number that is not a 64-bit integer
    quantity as string: invalid_quantity (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `quantity` must be an integer, found a string
    missing delta: invalid_payload (event_id 00000000-0000-0000-0000-000000000001, tenant canary): missing required field `delta`
    zero delta: invalid_delta (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `delta` 0 must be non-zero with an absolute value of at most 1000000000
    delta too large: invalid_delta (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `delta` -1000000001 must be non-zero with an absolute value of at most 1000000000
    missing updated_at: invalid_payload (event_id 00000000-0000-0000-0000-000000000001, tenant canary): missing required field `updated_at`
    updated_at without offset: invalid_updated_at (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `updated_at` "2026-06-01T12:00:00" is not an RFC 3339 timestamp: premature end of input
    negative sequence: invalid_sequence (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `sequence` -1 must be between 0 and 2^64-1
    sequence too large: invalid_sequence (event_id 00000000-0000-0000-0000-000000000001, tenant canary): `sequence` must be an integer, found a number that is not a 64-bit integer
    too large: payload_too_large (event_id -, tenant -): message is 65732 bytes, more than the 65536 allowed
    "#);
}

/// A message a source held only the first bytes of is judged by its whole length.
#[test]
fn a_message_held_in_part_is_too_large_by_its_whole_length() {
    let whole = json("{}");
    assert_eq!(decode_prefix(&whole, whole.len() as u64), decode(&whole));
    let prefix = json(&format!(r#"{{"padding": "{}"}}"#, "x".repeat(MAX_PAYLOAD_BYTES)))[..=MAX_PAYLOAD_BYTES].to_vec();
    let rejection = decode_prefix(&prefix, 2_097_168).expect_err("too large");
    assert_eq!(rejection.reason, RejectReason::PayloadTooLarge);
    assert_eq!(rejection.detail, "message is 2097168 bytes, more than the 65536 allowed");
}

/// A leap second is held as the stores keep it, the next second's start: as read, it sorted
/// before that second in memory and after it once stored.
#[test]
fn a_leap_second_is_the_next_second_s_start() {
    let at = |text: &str| decode(&json(&format!(r#"{{"updated_at": "{text}"}}"#))).expect("valid").updated_at();
    let leap = at("2016-12-31T23:59:60.5Z");
    assert_eq!(leap, at("2017-01-01T00:00:00.5Z"));
    assert!(leap > at("2017-01-01T00:00:00.1Z"));
    assert_eq!(leap.timestamp_subsec_nanos(), 500_000_000);
    assert_eq!(at("2026-06-01T12:00:00.1234567Z"), at("2026-06-01T12:00:00.123456Z"), "microseconds at most");
}

#[test]
fn the_contract_example_decodes() {
    let example = br#"{
      "event_id": "018f6b1e-6a7b-7c3e-9a51-3f2f0d4c9b10",
      "type": "inventory.updated",
      "tenant_id": "canary",
      "supplier_id": "acme",
      "sku": "ABC-123",
      "quantity": 42,
      "updated_at": "2026-06-01T12:00:00Z",
      "sequence": 1042
    }"#;
    let event = decode(example).expect("the contract's own example is valid");
    insta::assert_snapshot!(encode(&event), @r#"{"event_id":"018f6b1e-6a7b-7c3e-9a51-3f2f0d4c9b10","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"ABC-123","quantity":42,"updated_at":"2026-06-01T12:00:00Z","sequence":1042}"#);
}
