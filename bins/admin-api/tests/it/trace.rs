//! The trace answers "why does the storefront show N?": for every item of a generated
//! scenario (out-of-order events, duplicates, drifted clocks, poison), the quantity the API
//! shows is the core reference's, and each offer's winning event and adjustments add up to it.

use std::sync::Arc;

use catalog_core::ItemKey;
use catalog_store::{BatchInput, CatalogStore, IncomingEvent, Role, SourceRef};
use chrono::Utc;

use crate::Server;

/// Applies the feed of `seed` in batches of 37, as a source would.
async fn apply_feed(store: &Arc<dyn CatalogStore>, seed: u64, n_events: usize) -> Vec<catalog_testkit::TestMessage> {
    let feed = catalog_testkit::feed::feed(seed, n_events);
    let source: Arc<str> = Arc::from("file:feed");
    let events: Vec<IncomingEvent> = feed
        .messages
        .iter()
        .enumerate()
        .map(|(offset, message)| {
            let reference = SourceRef { source: source.clone(), partition: 0, offset: offset as i64 };
            let traceparent = message.traceparent.as_deref().and_then(|value| value.parse().ok());
            IncomingEvent::received(message.payload.clone().unwrap_or_default(), Utc::now(), reference, traceparent)
        })
        .collect();
    for chunk in events.chunks(37) {
        store.apply_batch(&BatchInput::new(chunk.to_vec(), Vec::new())).await.expect("apply");
    }
    feed.messages
}

/// An offer's quantity from what the trace shows of it, as support would add it up.
fn explained_quantity(offer: &serde_json::Value) -> i64 {
    let snapshot = offer["winning_event"]["quantity"].as_i64().unwrap_or(0);
    let folded = offer["folded_adjustments"]["delta"].as_i64().unwrap_or(0);
    let adjustments: i64 =
        offer["adjustments"].as_array().expect("adjustments").iter().map(|a| a["delta"].as_i64().expect("delta")).sum();
    (snapshot + folded + adjustments).max(0)
}

async fn the_trace_explains_every_item_of_a_scenario(server: Server) {
    let viewer = server.token("vera", Role::Viewer).await;
    let messages = apply_feed(&server.store, 7, 1_500).await;
    let expected = catalog_testkit::feed::expected_quantities(&messages);
    assert!(expected.len() > 20, "the scenario has items");
    for tenant in catalog_testkit::feed::TENANTS {
        let tenant_id = catalog_core::TenantId::parse(tenant).expect("valid");
        for item in server.store.items(&tenant_id).await.expect("items") {
            let key = ItemKey { tenant: item.tenant().clone(), sku: item.sku().clone() };
            let want = expected.get(&key).copied().unwrap_or(0);
            // The SKU as a person types it: lower case finds the item.
            let path = format!("/v1/tenants/{tenant}/items/{}/trace", item.sku().as_str().to_lowercase());
            let trace = server.get_json(&viewer, &path).await;
            assert_eq!(trace["quantity"], want, "{key}: the API shows the reference's quantity");
            assert_eq!(trace["item_id"], key.item_id().to_string());
            let offers = trace["offers"].as_array().expect("offers");
            let mut total = 0;
            for offer in offers {
                let quantity = offer["quantity"].as_i64().expect("quantity");
                assert_eq!(explained_quantity(offer), quantity, "{key}: the winner explains {offer}");
                if let Some(winner) = offer["winning_event"].as_object() {
                    assert_eq!(winner["outcome"], "applied");
                    assert_eq!(winner["type"], "inventory.updated");
                    assert!(winner["effective_at"].is_string() && winner.contains_key("sequence"));
                    for adjustment in offer["adjustments"].as_array().expect("adjustments") {
                        let after = (adjustment["effective_at"].as_str(), adjustment["sequence"].as_u64());
                        let snapshot = (winner["effective_at"].as_str(), winner["sequence"].as_u64());
                        assert!(after >= snapshot, "{key}: an adjustment counted is newer than the snapshot");
                    }
                }
                total += quantity;
            }
            assert_eq!(total, want, "{key}: the offers add up to the item");
            let by_id = server.get_json(&viewer, &format!("/v1/items/{}/trace?events_limit=5", key.item_id())).await;
            assert_eq!(by_id["quantity"], want);
            assert!(by_id["events"]["entries"].as_array().expect("entries").len() <= 5);
            assert_eq!(by_id["events"]["total"], trace["events"]["total"]);
        }
    }

    // Lookups: an event id and a trace id lead to the item they touched.
    let message = messages.iter().find(|message| message.traceparent.is_some()).expect("a traced message");
    let event: serde_json::Value = serde_json::from_slice(message.payload.as_deref().expect("payload")).expect("json");
    let found = server.get_json(&viewer, &format!("/v1/events/{}", event["event_id"].as_str().expect("id"))).await;
    let sku = catalog_core::Sku::parse(event["sku"].as_str().expect("sku")).expect("valid");
    let tenant = catalog_core::TenantId::parse(event["tenant_id"].as_str().expect("tenant")).expect("valid");
    let item_id = ItemKey { tenant, sku }.item_id().to_string();
    assert_eq!(found["matches"][0]["item_id"], item_id.as_str());
    let trace_id = &message.traceparent.as_deref().expect("traceparent")[3..35];
    let found = server.get_json(&viewer, &format!("/v1/traces/{trace_id}")).await;
    assert!(found["matches"].as_array().expect("matches").iter().any(|m| m["item_id"] == item_id.as_str()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_explains_every_item_of_a_scenario_on_sqlite() {
    the_trace_explains_every_item_of_a_scenario(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_explains_every_item_of_a_scenario_on_postgres() {
    the_trace_explains_every_item_of_a_scenario(Server::postgres().await).await;
}

/// An item no event was applied to yet (its supplier is switched off) answers 200 with
/// quantity 0, version 0, no offers, and its held and rejected events with their reasons; a
/// tenant and SKU nothing names is still 404. Pages of the events follow `events_offset`.
async fn an_item_with_only_held_and_rejected_events_has_a_trace(server: Server) {
    use catalog_core::StockChange;
    use catalog_store::contract::{batch, incoming, offer, raw_incoming};

    let viewer = server.token("vera", Role::Viewer).await;
    let key = offer("canary", "acme", "HELD-1");
    server.store.set_supplier_sync(&key.tenant, &key.supplier, false).await.expect("flag");
    let rejected = String::from_utf8(incoming(3, &key, StockChange::Updated { quantity: 3 }, 0, 3).raw)
        .expect("utf-8")
        .replace("\"quantity\":3", "\"quantity\":-3");
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 9 }, 0, 1),
        incoming(2, &key, StockChange::Adjusted { delta: 2 }, 1, 2),
        raw_incoming(3, rejected.into_bytes(), 3),
    ];
    server.store.apply_batch(&batch(events)).await.expect("apply");

    let trace = server.get_json(&viewer, "/v1/tenants/canary/items/held-1/trace").await;
    assert_eq!((trace["quantity"].as_i64(), trace["version"].as_u64()), (Some(0), Some(0)));
    assert_eq!(trace["item_id"], key.item_key().item_id().to_string());
    assert_eq!(trace["offers"], serde_json::json!([]));
    assert_eq!(trace["events"]["total"], 3);
    let outcomes: Vec<(&str, &str)> = trace["events"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| (entry["outcome"].as_str().expect("outcome"), entry["reason"].as_str().expect("reason")))
        .collect();
    assert_eq!(
        outcomes,
        [("rejected", "invalid_quantity"), ("held", "supplier_sync_off"), ("held", "supplier_sync_off")]
    );
    let second = server.get_json(&viewer, "/v1/tenants/canary/items/held-1/trace?events_offset=1&events_limit=1").await;
    assert_eq!(second["events"]["entries"].as_array().expect("entries").len(), 1);
    assert_eq!(second["events"]["entries"][0]["type"], "inventory.updated");
    assert_eq!((second["events"]["offset"].as_u64(), second["events"]["limit"].as_u64()), (Some(1), Some(1)));
    // The first page's `through` passed back: an event journaled since is not counted.
    let through = trace["events"]["through"].as_i64().expect("the newest row counted");
    let late = incoming(4, &key, StockChange::Updated { quantity: 1 }, -60, 4);
    server.store.apply_batch(&batch(vec![late])).await.expect("apply");
    let anchored =
        format!("/v1/tenants/canary/items/held-1/trace?events_offset=1&events_limit=1&events_through={through}");
    let anchored = server.get_json(&viewer, &anchored).await;
    assert_eq!(
        (anchored["events"]["total"].as_u64(), anchored["events"]["through"].as_i64()),
        (Some(3), Some(through))
    );
    assert_eq!(anchored["events"]["entries"], second["events"]["entries"], "the same row as before");

    let missing = server.get(&viewer, "/v1/tenants/canary/items/never-1/trace").await;
    assert_eq!(missing.status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_with_only_held_and_rejected_events_has_a_trace_on_sqlite() {
    an_item_with_only_held_and_rejected_events_has_a_trace(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_with_only_held_and_rejected_events_has_a_trace_on_postgres() {
    an_item_with_only_held_and_rejected_events_has_a_trace(Server::postgres().await).await;
}

#[tokio::test]
async fn a_trace_says_how_far_back_the_journal_reaches_once_retention_dropped_days() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let messages = apply_feed(&server.store, 3, 50).await;
    let key = catalog_testkit::feed::expected_quantities(&messages).into_keys().next().expect("an item");
    let path = format!("/v1/tenants/{}/items/{}/trace", key.tenant, key.sku);
    assert_eq!(server.get_json(&viewer, &path).await["journal_retention"], serde_json::Value::Null);
    // The item was published once: one attempt, until retention drops its day.
    let claim = catalog_store::OutboxClaim::immediate(1_000, std::time::Duration::from_secs(60));
    let claimed = server.store.claim_outbox("storefront", &claim).await.expect("claim");
    let records: Vec<_> = claimed
        .iter()
        .map(|entry| catalog_store::contract::published(entry, catalog_store::PublishOutcome::Published))
        .collect();
    server.store.record_publishes(&records).await.expect("record");
    assert_eq!(server.get_json(&viewer, &path).await["publishes"].as_array().map(Vec::len), Some(1));

    let mut archive =
        catalog_testkit::DiscardArchive("/var/lib/catalog/journal-archive/events_20261101.ndjson.gz".into());
    let cutoff = Utc::now() - chrono::Duration::days(30);
    let policy = catalog_store::RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: cutoff, chunk: 100 };
    // Nothing received that long ago: no day dropped yet, so nothing to say.
    server.store.expire_journal(&policy, &mut archive).await.expect("retention");
    assert_eq!(server.get_json(&viewer, &path).await["journal_retention"], serde_json::Value::Null);

    let policy = catalog_store::RetentionPolicy { journal_cutoff: Utc::now() + chrono::Duration::days(1), ..policy };
    server.store.expire_journal(&policy, &mut archive).await.expect("retention");
    let trace = server.get_json(&viewer, &path).await;
    let note = trace["journal_retention"]["note"].as_str().expect("a note once days were dropped");
    assert!(note.starts_with("The journal keeps events received since "), "{note}");
    assert!(note.contains("events_20261101.ndjson.gz"), "{note}");
    assert_eq!(trace["events"]["total"], 0, "every event was received before the cutoff: {trace}");
    assert!(trace["quantity"].as_i64().is_some(), "the item itself is still there");
    assert!(note.contains("Publish attempts are kept since "), "{note}");
    assert_eq!(trace["publishes"], serde_json::json!([]), "the attempt was dropped: {trace}");
    assert!(trace["journal_retention"]["attempts_kept_since"].is_string(), "{trace}");
    // Why the quantity still adds up: the offers keep what they count, archived rows included.
    let offers = trace["offers"].as_array().expect("offers");
    assert!(!offers.is_empty(), "{trace}");
    for offer in offers {
        let snapshot = offer["snapshot"]["quantity"].as_i64().unwrap_or(0);
        let counted: i64 = offer["counted_adjustments"]
            .as_array()
            .expect("counted adjustments")
            .iter()
            .map(|adjustment| adjustment["delta"].as_i64().expect("a delta"))
            .sum();
        let folded = offer["folded_adjustments"]["delta"].as_i64().unwrap_or(0);
        assert_eq!(snapshot + counted + folded, offer["quantity"].as_i64().expect("quantity"), "{offer}");
        if !offer["snapshot"].is_null() {
            assert_eq!(offer["winning_event"], serde_json::Value::Null, "its row was dropped: {offer}");
            assert_eq!(offer["snapshot"]["archived"], true, "{offer}");
        }
    }
    server.stop().await;
}

/// A trace id carried by more events than a lookup shows (a bulk upload under one trace) says
/// so, in the API and on the page: it answered the oldest 500 (100 on the page) as if they
/// were all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_by_trace_id_says_when_more_events_carry_it() {
    use catalog_store::contract::{batch, incoming, offer};
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let traceparent: catalog_core::TraceParent =
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().expect("traceparent");
    let traced = |n: u64| {
        let key = offer("canary", "acme", &format!("BULK-{n}"));
        IncomingEvent {
            traceparent: Some(traceparent.clone()),
            ..incoming(n, &key, catalog_core::StockChange::Updated { quantity: 1 }, 0, 0)
        }
    };
    server.store.apply_batch(&batch((1..=100).map(traced).collect())).await.expect("apply");
    let api = server.get_json(&viewer, "/v1/traces/0af7651916cd43dd8448eb211c80319c").await;
    assert_eq!((api["matches"].as_array().expect("matches").len(), api["more"].clone()), (100, false.into()));
    let page = crate::page::page(&server, &viewer, "/?trace_id=0af7651916cd43dd8448eb211c80319c").await;
    assert!(!page.contains("More events carry this trace id"), "{page}");

    server.store.apply_batch(&batch((101..=501).map(traced).collect())).await.expect("apply");
    let api = server.get_json(&viewer, "/v1/traces/0af7651916cd43dd8448eb211c80319c").await;
    assert_eq!((api["matches"].as_array().expect("matches").len(), api["more"].clone()), (500, true.into()));
    let page = crate::page::page(&server, &viewer, "/?trace_id=0af7651916cd43dd8448eb211c80319c").await;
    assert!(page.contains("More events carry this trace id than shown: these are its oldest 100."), "{page}");
    server.stop().await;
}
