//! What the marketplace adapters' tests share: an item version as a channel is sent it, the
//! verdict of an accepted one, and reading what a test server received (headers, form bodies).

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use catalog_core::{CatalogItem, ItemKey, Sku, TenantId};
use catalog_publish::{Publish, Verdict};
use catalog_store::OutboxEntry;

/// A request a local platform received, its body as it came.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Received {
    pub(crate) fn new(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Self {
        Self { method, path: uri.path().to_owned(), query: uri.query().map(str::to_owned), headers, body }
    }
}

/// Item `sku` of tenant `canary` at catalog quantity 12, version 3, claimed for `channel` and
/// offered `quantity` on `listing` by the channel's rules.
pub(crate) fn publish_on(channel: &str, sku: &str, listing: &str, quantity: i64, traceparent: Option<&str>) -> Publish {
    let key = ItemKey { tenant: TenantId::parse("canary").expect("valid"), sku: Sku::parse(sku).expect("valid") };
    let item = CatalogItem::new(key, 12, 3).expect("valid item");
    let entry = OutboxEntry {
        item,
        channel: channel.into(),
        traceparent: traceparent.map(str::to_owned),
        attempts: 0,
        enqueued_at: chrono::Utc::now(),
        claim: None,
    };
    let rule =
        if quantity < 12 { format!("catalog 12; buffer {}: {quantity}", 12 - quantity) } else { "catalog 12".into() };
    Publish { entry, listing: listing.to_owned(), quantity, rule }
}

/// The verdict of a version the channel took.
pub(crate) fn accepted(publish: &Publish) -> Verdict {
    Verdict::Answered(publish.entry.item.accepted())
}

/// A request header's value as text.
pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

/// A form body's fields, percent-decoded, in order.
pub(crate) fn form_fields(body: &str) -> Vec<(String, String)> {
    let decode = |text: &str| {
        let bytes = text.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut index = 0;
        while index < bytes.len() {
            match bytes[index] {
                b'+' => decoded.push(b' '),
                b'%' => {
                    decoded.push(u8::from_str_radix(&text[index + 1..index + 3], 16).expect("a percent escape"));
                    index += 2;
                }
                byte => decoded.push(byte),
            }
            index += 1;
        }
        String::from_utf8(decoded).expect("UTF-8 form")
    };
    body.split('&')
        .filter(|field| !field.is_empty())
        .map(|field| {
            let (name, value) = field.split_once('=').expect("name=value");
            (decode(name), decode(value))
        })
        .collect()
}
