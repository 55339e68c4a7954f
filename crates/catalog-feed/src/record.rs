//! The feed API's wire format (`supplier-feed-api.md`) and how a record becomes an
//! `inventory.updated` event: parsed here, at the edge, and handed on as the contract's JSON,
//! so the same `decode` and rules decide it as a pushed event.

use std::sync::LazyLock;

use catalog_store::FeedKey;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The namespace of feed records' event ids: `uuid_v5(NAMESPACE_URL, "urn:catalog-sync:feed-record")`.
pub static FEED_RECORD_NAMESPACE: LazyLock<Uuid> =
    LazyLock::new(|| Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:catalog-sync:feed-record"));

/// A page as the feed sent it, checked for the contract's shape (not yet for its rules).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Each record as sent: an object's fields are judged by the rules, as an event's, and
    /// anything else is rejected as an event that is no JSON object is (`invalid_payload`),
    /// the window going on, as the contract says of a record that breaks the rules.
    pub records: Vec<Value>,
    /// `None` ends the window (or the snapshot).
    pub next_cursor: Option<String>,
    /// The snapshot's `as_of`, as sent; `None` on a window's page.
    pub as_of: Option<String>,
}

/// Why a 200 answer is not a page of the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPage {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not an object with a `records` array and a `next_cursor` string or null")]
    NotAPage,
    #[error("a snapshot page without an RFC 3339 `as_of`")]
    NoAsOf,
}

/// Parses a page's body. A window's page needs `records` and `next_cursor` (present, a
/// string or null: a missing one would end the window silently); a snapshot's also `as_of`.
pub fn parse_page(body: &[u8], snapshot: bool) -> Result<Page, InvalidPage> {
    let value: Value = serde_json::from_slice(body).map_err(|error| InvalidPage::NotJson(error.to_string()))?;
    let Value::Object(mut object) = value else { return Err(InvalidPage::NotAPage) };
    let next_cursor = match object.remove("next_cursor") {
        Some(Value::String(cursor)) => Some(cursor),
        Some(Value::Null) => None,
        _ => return Err(InvalidPage::NotAPage),
    };
    // A record that is no object is one record breaking the rules, not a page that is none.
    let Some(Value::Array(records)) = object.remove("records") else { return Err(InvalidPage::NotAPage) };
    let as_of = match object.remove("as_of") {
        Some(Value::String(as_of)) if chrono::DateTime::parse_from_rfc3339(&as_of).is_ok() => Some(as_of),
        _ if snapshot => return Err(InvalidPage::NoAsOf),
        _ => None,
    };
    Ok(Page { records, next_cursor, as_of })
}

/// The SKU as the event id names it: normalized like `Sku::parse` (trimmed, upper-cased),
/// whether or not it is valid (an invalid one is rejected, and claims no id); one with a
/// letter outside ASCII upper-cased as Unicode does, as before decision 0065.
pub(crate) fn normalized_sku(sku: &str) -> String {
    catalog_core::Sku::parse(sku).map_or_else(|_| sku.trim().to_uppercase(), |sku| sku.as_str().to_owned())
}

/// The number's text as sent (`42`), or the value's JSON for anything else.
fn as_sent(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(value) => value.to_string(),
        None => String::new(),
    }
}

/// The record's event id: UUID v5 of `"{tenant}/{supplier}/{sku}/{updated_at}/{sequence or
/// 0}/{quantity}"` (SKU normalized, `updated_at` exactly as sent) under
/// [`FEED_RECORD_NAMESPACE`], so the same record pulled again is a duplicate.
pub fn record_event_id(key: &FeedKey, record: &Map<String, Value>) -> Uuid {
    let sku = record.get("sku").and_then(Value::as_str).map(normalized_sku).unwrap_or_default();
    let sequence = match record.get("sequence") {
        None | Some(Value::Null) => "0".to_owned(),
        sequence => as_sent(sequence),
    };
    let name = format!(
        "{}/{}/{sku}/{}/{sequence}/{}",
        key.tenant,
        key.supplier,
        as_sent(record.get("updated_at")),
        as_sent(record.get("quantity"))
    );
    Uuid::new_v5(&FEED_RECORD_NAMESPACE, name.as_bytes())
}

/// The fields of a record the contract knows; the others are ignored.
const RECORD_FIELDS: [&str; 4] = ["sku", "quantity", "updated_at", "sequence"];

/// The contract's event for a record: the record's fields the contract knows, with the event
/// id, type, tenant and supplier the feed gives it. Unknown fields are ignored, as the feed
/// contract says: carried along, a large one made a valid record `too_large` for the event
/// contract's 64 KiB, rejected with no SKU (which a full refresh then took for not listed).
/// An adjustment's `delta` has no meaning in a feed record either: no record decodes as
/// anything but an absolute quantity.
/// A record that is no object is handed on as sent, for `decode` to reject as it rejects such
/// an event (`invalid_payload`).
pub fn record_event(key: &FeedKey, record: Value) -> Vec<u8> {
    let Value::Object(mut record) = record else {
        return serde_json::to_vec(&record).expect("a JSON value always serializes");
    };
    let event_id = record_event_id(key, &record);
    record.retain(|name, _| RECORD_FIELDS.contains(&name.as_str()));
    record.insert("event_id".to_owned(), Value::String(event_id.to_string()));
    record.insert("type".to_owned(), Value::String("inventory.updated".to_owned()));
    record.insert("tenant_id".to_owned(), Value::String(key.tenant.to_string()));
    record.insert("supplier_id".to_owned(), Value::String(key.supplier.to_string()));
    serde_json::to_vec(&Value::Object(record)).expect("a JSON object always serializes")
}

/// The event a full refresh corrects an offer with: the snapshot's quantity as of its
/// `as_of` (0 for an offer it no longer lists), id by the same formula as a record's.
pub fn correction_event(key: &FeedKey, sku: &str, quantity: i64, as_of: &str) -> Vec<u8> {
    let mut record = Map::new();
    record.insert("sku".to_owned(), Value::String(sku.to_owned()));
    record.insert("quantity".to_owned(), Value::from(quantity));
    record.insert("updated_at".to_owned(), Value::String(as_of.to_owned()));
    record_event(key, Value::Object(record))
}

#[cfg(test)]
mod tests {
    use catalog_core::{decode, StockChange, SupplierId, TenantId};

    use super::*;

    fn key() -> FeedKey {
        FeedKey {
            tenant: TenantId::parse("canary").expect("tenant"),
            supplier: SupplierId::parse("acme").expect("supplier"),
        }
    }

    fn record(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json).expect("json") {
            Value::Object(record) => record,
            other => panic!("not an object: {other}"),
        }
    }

    /// A record as a page holds it.
    fn sent(json: &str) -> Value {
        Value::Object(record(json))
    }

    #[test]
    fn the_event_id_follows_the_contract_formula() {
        let id = record_event_id(
            &key(),
            &record(r#"{"sku": " abc-123 ", "quantity": 42, "updated_at": "2026-06-01T12:00:00Z", "sequence": 17}"#),
        );
        let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:catalog-sync:feed-record");
        let expected = Uuid::new_v5(&namespace, b"canary/acme/ABC-123/2026-06-01T12:00:00Z/17/42");
        assert_eq!(id, expected);
        let without_sequence = record_event_id(
            &key(),
            &record(r#"{"sku": "ABC-123", "quantity": 42, "updated_at": "2026-06-01T12:00:00Z"}"#),
        );
        assert_eq!(without_sequence, Uuid::new_v5(&namespace, b"canary/acme/ABC-123/2026-06-01T12:00:00Z/0/42"));
        let other_offset = record_event_id(
            &key(),
            &record(r#"{"sku": "ABC-123", "quantity": 42, "updated_at": "2026-06-01T14:00:00+02:00"}"#),
        );
        assert_ne!(other_offset, without_sequence, "updated_at exactly as sent");
    }

    #[test]
    fn a_record_decodes_as_the_contract_event_and_a_bad_one_is_rejected() {
        let payload = record_event(
            &key(),
            sent(r#"{"sku": "abc-1", "quantity": 5, "updated_at": "2026-06-01T12:00:00Z", "extra": [1], "delta": 3}"#),
        );
        let event = decode(&payload).expect("a valid event");
        assert_eq!(event.change(), StockChange::Updated { quantity: 5 });
        assert_eq!(event.offer().sku.as_str(), "ABC-1");
        let rejected = decode(&record_event(&key(), sent(r#"{"sku": "BAD SKU", "quantity": -1, "updated_at": "x"}"#)))
            .expect_err("rules apply to records");
        assert_eq!(rejected.tenant.as_ref().map(TenantId::as_str), Some("canary"));
        // No object: rejected as an event that is none, not taken for a page that is none.
        for other in ["null", "42", r#""ABC-1""#, "[1]"] {
            let payload = record_event(&key(), serde_json::from_str(other).expect("json"));
            let rejected = decode(&payload).expect_err("no object is an event");
            assert_eq!(rejected.reason.as_str(), "invalid_payload", "{other}");
        }
    }

    #[test]
    fn a_large_unknown_field_does_not_make_a_record_too_large() {
        let mut large =
            record(r#"{"sku": "abc-1", "quantity": 5, "updated_at": "2026-06-01T12:00:00Z", "sequence": 3}"#);
        large.insert("notes".to_owned(), Value::String("x".repeat(70_000)));
        let payload = record_event(&key(), Value::Object(large.clone()));
        let event = decode(&payload).expect("a valid event, its unknown field ignored");
        assert_eq!(event.change(), StockChange::Updated { quantity: 5 });
        assert_eq!(event.event_id().0, record_event_id(&key(), &large), "the id is the contract's formula");
        assert!(payload.len() < 1_000, "{} bytes", payload.len());
    }

    #[test]
    fn pages_are_checked_for_the_contract_shape() {
        let page = parse_page(br#"{"records": [{"sku": "A"}], "next_cursor": "c1", "more": 1}"#, false).expect("page");
        assert_eq!((page.records.len(), page.next_cursor.as_deref()), (1, Some("c1")));
        // A record that is no object is a record breaking the rules: the page is one.
        let page = parse_page(br#"{"records": [null, {"sku": "A"}, 7], "next_cursor": null}"#, false).expect("page");
        assert_eq!(page.records.len(), 3);
        assert_eq!(parse_page(br#"{"records": [], "next_cursor": null}"#, false).expect("page").next_cursor, None);
        for (body, snapshot, expected) in [
            (&b"<html>oops</html>"[..], false, "not JSON"),
            (br#"{"records": []}"#, false, "not an object with"),
            (br#"{"records": {}, "next_cursor": null}"#, false, "not an object with"),
            (br#"[]"#, false, "not an object with"),
            (br#"{"records": [], "next_cursor": null}"#, true, "without an RFC 3339"),
            (br#"{"records": [], "next_cursor": null, "as_of": "yesterday"}"#, true, "without an RFC 3339"),
        ] {
            let error = parse_page(body, snapshot).expect_err("not a page");
            assert!(error.to_string().contains(expected), "{error} for {}", String::from_utf8_lossy(body));
        }
    }
}
