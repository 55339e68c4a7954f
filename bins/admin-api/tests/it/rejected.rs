//! A rejected message as support sees it without SQL: `GET /v1/events/{event_id}` and the
//! page's event search give the rejection's detail, the message's first 4 KiB and its whole
//! length, as docs/operations.md says.

use base64::Engine;
use catalog_core::StockChange;
use catalog_store::contract::{batch, event_id, incoming, offer, raw_incoming};
use catalog_store::Role;
use serde_json::Value;

use crate::page::page;
use crate::Server;

/// A message of 5,000 bytes or so whose SKU breaks the contract (padded by a field the
/// contract ignores), so only its first 4 KiB are kept.
fn long_message_with_a_malformed_sku() -> Vec<u8> {
    let key = offer("canary", "acme", "ABC-1");
    let valid = String::from_utf8(incoming(7, &key, StockChange::Updated { quantity: 3 }, 0, 7).raw).expect("utf-8");
    let padded = valid.replacen('{', &format!("{{\"note\":\"{}\",", "x".repeat(5_000)), 1);
    padded.replace("\"ABC-1\"", "\"ABC 1!\"").into_bytes()
}

async fn a_rejected_message_shows_its_detail_and_bytes(server: Server) {
    let viewer = server.token("vera", Role::Viewer).await;
    let raw = long_message_with_a_malformed_sku();
    server.store.apply_batch(&batch(vec![raw_incoming(7, raw.clone(), 7)])).await.expect("apply");

    let found = server.get_json(&viewer, &format!("/v1/events/{}", event_id(7))).await;
    let event = &found["matches"][0]["event"];
    assert_eq!((event["outcome"].as_str(), event["reason"].as_str()), (Some("rejected"), Some("malformed_sku")));
    assert!(event["detail"].as_str().is_some_and(|detail| !detail.is_empty()), "{event}");
    assert_eq!(event["raw_payload_length"].as_u64(), Some(raw.len() as u64), "{event}");
    let kept = base64::engine::general_purpose::STANDARD
        .decode(event["raw_payload_base64"].as_str().expect("the kept bytes"))
        .expect("base64");
    assert_eq!(kept, raw[..4_096], "the first 4 KiB, exactly");
    assert_eq!(event["raw_payload"].as_str(), Some(std::str::from_utf8(&raw[..4_096]).expect("utf-8")));

    let html = page(&server, &viewer, &format!("/?event_id={}", event_id(7))).await;
    let detail = event["detail"].as_str().expect("detail");
    assert!(html.contains(&maud::html! { (detail) }.into_string()), "the detail is shown: {html}");
    assert!(html.contains(&format!("{} bytes", raw.len())) && html.contains("first 4096 shown"), "{html}");
    assert!(html.contains("&quot;ABC 1!&quot;"), "the message's bytes are shown: {html}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_message_shows_its_detail_and_bytes_on_sqlite() {
    a_rejected_message_shows_its_detail_and_bytes(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_message_shows_its_detail_and_bytes_on_postgres() {
    a_rejected_message_shows_its_detail_and_bytes(Server::postgres().await).await;
}

/// A message with no event id or tenant to look it up by (a line that is not JSON) is found
/// in the list of rejected messages, API and page, with its bytes; filters narrow the list,
/// and a page that is full links to the next.
async fn rejected_messages_are_listed_without_an_id_to_find_them_by(server: Server) {
    let viewer = server.token("vera", Role::Viewer).await;
    let key = offer("canary", "acme", "ABC-1");
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 3 }, 0, 1),
        raw_incoming(2, b"this line is not JSON".to_vec(), 2),
        raw_incoming(3, long_message_with_a_malformed_sku(), 3),
    ];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    let since = catalog_store::contract::base().to_rfc3339().replace('+', "%2B");

    let listed = server.get_json(&viewer, &format!("/v1/rejections?since={since}")).await;
    let rejections = listed["rejections"].as_array().expect("rejections");
    let offsets: Vec<u64> = rejections.iter().map(|row| row["offset"].as_u64().expect("offset")).collect();
    assert_eq!(offsets, [3, 2], "newest first, the applied event left out: {listed}");
    assert_eq!(rejections[1]["raw_payload"], "this line is not JSON");
    assert_eq!(
        (rejections[1]["tenant_id"].clone(), rejections[1]["reason"].clone()),
        (Value::Null, "invalid_payload".into())
    );
    assert_eq!(
        (rejections[0]["tenant_id"].as_str(), rejections[0]["reason"].as_str()),
        (Some("canary"), Some("malformed_sku"))
    );
    assert_eq!(listed["next_before"], Value::Null);

    let first = server.get_json(&viewer, &format!("/v1/rejections?since={since}&limit=1")).await;
    let next = first["next_before"].as_i64().expect("a full page links to the next");
    let second = server.get_json(&viewer, &format!("/v1/rejections?since={since}&limit=1&before={next}")).await;
    assert_eq!(second["rejections"][0]["offset"], 2);
    let canary = server.get_json(&viewer, &format!("/v1/rejections?since={since}&tenant=canary")).await;
    assert_eq!(canary["rejections"].as_array().expect("rejections").len(), 1);
    let by_default = server.get_json(&viewer, "/v1/rejections").await;
    assert!(by_default["rejections"].as_array().expect("rejections").is_empty(), "the last 24 hours by default");
    let refused = server.get(&viewer, "/v1/rejections?since=yesterday").await;
    assert_eq!(refused.status(), 400);

    let html = page(&server, &viewer, &format!("/rejections?since={since}&tenant=")).await;
    assert!(html.contains("this line is not JSON") && html.contains("invalid_payload"), "{html}");
    assert!(html.contains("Rejected messages (2)"), "{html}");
    let html = page(&server, &viewer, "/rejections?before=abc").await;
    assert!(html.contains("the filters could not be read"), "the page's own error line: {html}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_messages_are_listed_without_an_id_to_find_them_by_on_sqlite() {
    rejected_messages_are_listed_without_an_id_to_find_them_by(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_messages_are_listed_without_an_id_to_find_them_by_on_postgres() {
    rejected_messages_are_listed_without_an_id_to_find_them_by(Server::postgres().await).await;
}

/// A supplier resending one bad event builds a rejected row per delivery: the lookup of its
/// id, API and page, shows the oldest 500 and says more rows name it.
async fn an_event_lookup_is_bounded_and_says_when_more_rows_name_it(server: Server) {
    let viewer = server.token("vera", Role::Viewer).await;
    let key = offer("canary", "acme", "ABC-1");
    let valid = String::from_utf8(incoming(7, &key, StockChange::Updated { quantity: 3 }, 0, 7).raw).expect("utf-8");
    let malformed = valid.replace("\"ABC-1\"", "\"ABC 1!\"").into_bytes();
    let deliveries = (0..600).map(|offset| raw_incoming(offset, malformed.clone(), 7)).collect();
    server.store.apply_batch(&batch(deliveries)).await.expect("apply");

    let found = server.get_json(&viewer, &format!("/v1/events/{}", event_id(7))).await;
    let matches = found["matches"].as_array().expect("matches");
    assert_eq!(matches.len(), 500, "the oldest 500");
    assert!(matches.iter().all(|found| found["event"]["outcome"] == "rejected"), "{found}");
    assert_eq!(found["more"], true, "more rows name the event id");

    let html = page(&server, &viewer, &format!("/?event_id={}", event_id(7))).await;
    assert!(html.contains("More journal rows name this event id than shown"), "{html}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_lookup_is_bounded_and_says_when_more_rows_name_it_on_sqlite() {
    an_event_lookup_is_bounded_and_says_when_more_rows_name_it(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_lookup_is_bounded_and_says_when_more_rows_name_it_on_postgres() {
    an_event_lookup_is_bounded_and_says_when_more_rows_name_it(Server::postgres().await).await;
}
