//! A rejected message as support sees it without SQL: `GET /v1/events/{event_id}` and the
//! page's event search give the rejection's detail, the message's first 4 KiB and its whole
//! length, as docs/operations.md says.

use base64::Engine;
use catalog_core::StockChange;
use catalog_store::contract::{batch, event_id, incoming, offer, raw_incoming};
use catalog_store::Role;

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
