//! `traceparent` validation per W3C Trace Context: each rule as a row of one table, and
//! properties over arbitrary bytes (nothing else than a clean version-00 value is ever held).

use std::fmt::Write as _;

use catalog_core::TraceParent;
use proptest::prelude::*;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Parses each named value and renders what is held, or why it was refused.
fn check_all(cases: &[(&str, &[u8])]) -> String {
    let mut out = String::new();
    for (name, value) in cases {
        let line = match TraceParent::parse(value) {
            Ok(held) => format!("ok {held}"),
            Err(invalid) => format!("{}: {invalid}", invalid.as_str()),
        };
        writeln!(out, "{name}: {line}").expect("write to string");
    }
    out
}

#[test]
fn every_rule_of_the_specification() {
    let with_nul = VALID.replace("-01", "-0\0");
    let with_crlf = format!("{VALID}\r\nX-Injected: 1");
    let upper = VALID.to_uppercase();
    let cases: &[(&str, &[u8])] = &[
        ("version 00", VALID.as_bytes()),
        ("unsampled", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        ("unknown flags kept", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff"),
        ("future version, exact length", b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        (
            "future version, more fields",
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
        ),
        ("future version, more without a dash", b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
        ("version 00 with more fields", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-00"),
        ("version ff", b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("upper-case hex", upper.as_bytes()),
        ("zero trace id", b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        ("zero parent id", b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
        ("short trace id", b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"),
        ("short parent id", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01"),
        ("three-digit version", b"000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("underscores", b"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"),
        ("not hex", b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"),
        ("a NUL byte", with_nul.as_bytes()),
        ("CR LF and a header after", with_crlf.as_bytes()),
        ("trailing space", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "),
        ("not UTF-8", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-\xff\xfe"),
        ("empty", b""),
    ];
    insta::assert_snapshot!(check_all(cases), @r"
    version 00: ok 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
    unsampled: ok 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00
    unknown flags kept: ok 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff
    future version, exact length: ok 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
    future version, more fields: ok 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
    future version, more without a dash: malformed: not version-traceid-parentid-flags in lowercase hex
    version 00 with more fields: malformed: not version-traceid-parentid-flags in lowercase hex
    version ff: version_ff: version ff is invalid
    upper-case hex: malformed: not version-traceid-parentid-flags in lowercase hex
    zero trace id: zero_trace_id: the trace id is all zeros
    zero parent id: zero_parent_id: the parent id is all zeros
    short trace id: malformed: not version-traceid-parentid-flags in lowercase hex
    short parent id: malformed: not version-traceid-parentid-flags in lowercase hex
    three-digit version: malformed: not version-traceid-parentid-flags in lowercase hex
    underscores: malformed: not version-traceid-parentid-flags in lowercase hex
    not hex: malformed: not version-traceid-parentid-flags in lowercase hex
    a NUL byte: malformed: not version-traceid-parentid-flags in lowercase hex
    CR LF and a header after: malformed: not version-traceid-parentid-flags in lowercase hex
    trailing space: malformed: not version-traceid-parentid-flags in lowercase hex
    not UTF-8: malformed: not version-traceid-parentid-flags in lowercase hex
    empty: malformed: not version-traceid-parentid-flags in lowercase hex
    ");
}

/// Lowercase hex digits, `n` of them.
fn hex(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(b"0123456789abcdef".to_vec()), n)
        .prop_map(|digits| digits.into_iter().map(char::from).collect())
}

proptest! {
    /// Any bytes: never a panic, and whatever is held is a clean version-00 value that parses
    /// to itself.
    #[test]
    fn anything_held_is_a_clean_version_00_value(value in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(held) = TraceParent::parse(&value) {
            let text = held.as_str();
            prop_assert_eq!(text.len(), 55);
            prop_assert!(text.starts_with("00-"));
            prop_assert!(text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f' | b'-')));
            prop_assert_eq!(TraceParent::parse(text.as_bytes()), Ok(held.clone()));
        }
    }

    /// Mutations of a valid value: exactly the valid ones are held.
    #[test]
    fn a_valid_value_is_held_as_received(trace_id in hex(32), parent_id in hex(16), flags in hex(2)) {
        let value = format!("00-{trace_id}-{parent_id}-{flags}");
        let parsed = TraceParent::parse(value.as_bytes());
        let zero = |id: &str| id.bytes().all(|digit| digit == b'0');
        if zero(&trace_id) || zero(&parent_id) {
            prop_assert!(parsed.is_err());
        } else {
            let held = parsed.expect("valid");
            prop_assert_eq!(held.as_str(), value.as_str());
            prop_assert_eq!(held.trace_id(), trace_id.as_str());
        }
    }

    /// Any single byte changed to something that is not a lowercase hex digit (or anything
    /// else where a dash belongs) makes a version-00 value invalid.
    #[test]
    fn one_foreign_byte_is_enough_to_refuse(position in 0_usize..55, byte in any::<u8>()) {
        let mut value = VALID.as_bytes().to_vec();
        let original = value[position];
        let foreign = byte != original && (original == b'-' || !matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        value[position] = byte;
        if foreign {
            prop_assert!(TraceParent::parse(&value).is_err(), "{:?}", String::from_utf8_lossy(&value));
        }
    }
}
