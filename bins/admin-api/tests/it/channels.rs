//! Channel health through the API and the support page: attempts of the last hour by result,
//! throttling, what waits, dead letters, and one word for the whole; and what each attempt
//! sent, by the channel's rules, in the item trace; the drifts reconciliation corrected.

use catalog_core::{DriftKind, Shown, StockChange};
use catalog_store::contract::{batch, incoming, offer};
use catalog_store::{DriftCorrection, OutboxClaim, PublishOutcome, PublishRecord, Role, SentQuantity};
use chrono::{Duration, Utc};

use crate::Server;

async fn a_channel_s_health_follows_its_attempts(server: Server) {
    let viewer = server.token("vera", Role::Viewer).await;
    assert_eq!(server.get_json(&viewer, "/v1/channels").await, serde_json::json!([]), "no channel has published");
    let key = offer("canary", "acme", "ABC-1");
    let other = offer("canary", "acme", "XYZ-9");
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 12 }, 0, 1),
        incoming(2, &other, StockChange::Updated { quantity: 3 }, 0, 2),
    ];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    let lease = std::time::Duration::from_secs(30);
    let claimed = server.store.claim_outbox("storefront", &OutboxClaim::immediate(10, lease)).await.expect("claim");
    let (abc, xyz) =
        if claimed[0].item.sku().as_str() == "ABC-1" { (&claimed[0], &claimed[1]) } else { (&claimed[1], &claimed[0]) };
    let record = |entry: &catalog_store::OutboxEntry, outcome| PublishRecord {
        claim: entry.claim,
        item_id: entry.item.id(),
        channel: "storefront".into(),
        version: entry.item.version(),
        attempt: 1,
        outcome,
        status: Some(429),
        latency_ms: Some(3),
        error: None,
        dead_letter_reason: None,
        body: None,
        sent: Some(SentQuantity {
            listing: "ABC-1".into(),
            quantity: 5,
            rule: "catalog 12; buffer 2: 10; share 50%: 5".into(),
        }),
    };
    server
        .store
        .record_publish(&record(abc, PublishOutcome::ThrottledUntil(Utc::now() - Duration::seconds(1))))
        .await
        .expect("record");
    let skipped = PublishRecord {
        status: None,
        sent: None,
        error: Some("unmapped_sku: SKU XYZ-9 has no listing on channel storefront".into()),
        ..record(xyz, PublishOutcome::Skipped)
    };
    server.store.record_publish(&skipped).await.expect("record");

    let health = server.get_json(&viewer, "/v1/channels").await;
    assert_eq!(health[0]["channel"], "storefront");
    assert_eq!(health[0]["health"], "throttled", "{health}");
    assert_eq!(health[0]["attempts"], serde_json::json!({ "skipped": 1, "throttled": 1 }));
    assert_eq!(health[0]["pending"], 1, "the throttled item waits");
    assert!(health[0]["last_throttled_at"].is_string());

    let again = server.store.claim_outbox("storefront", &OutboxClaim::immediate(10, lease)).await.expect("claim");
    // Claimed, not yet answered: the trace says when it may go again.
    let trace = server.get_json(&viewer, "/v1/tenants/canary/items/abc-1/trace").await;
    assert_eq!(trace["pending_publishes"][0]["failed_attempts"], 0, "a throttle is not a failure: {trace}");
    assert!(trace["pending_publishes"][0]["not_before"].is_string(), "{trace}");
    let item_page = crate::page::page(&server, &viewer, "/?tenant=canary&sku=ABC-1").await;
    assert!(item_page.contains("not sent before"), "a claimed item shows its lease: {item_page}");
    let published = PublishRecord { status: Some(202), ..record(&again[0], PublishOutcome::Published) };
    server.store.record_publish(&published).await.expect("record");
    let trace = server.get_json(&viewer, "/v1/tenants/canary/items/abc-1/trace").await;
    let sent: Vec<_> = trace["publishes"]
        .as_array()
        .expect("list")
        .iter()
        .map(|attempt| attempt["sent"]["quantity"].clone())
        .collect();
    assert_eq!(sent, [serde_json::json!(5), serde_json::json!(5)], "each attempt says what it sent");
    assert_eq!(trace["publishes"][1]["sent"]["rule"], "catalog 12; buffer 2: 10; share 50%: 5");

    // Reconciliation found the storefront showing 99 of version 1, and corrected it.
    let correction = DriftCorrection {
        item_id: again[0].item.id(),
        seen_version: 1,
        kind: DriftKind::QuantityDiffers,
        shown: Some(Shown { quantity: 99, version: 1 }),
        corrected_version: 2,
    };
    assert_eq!(server.store.correct_drifts("storefront", &[correction]).await.expect("correct").len(), 1);
    let health = server.get_json(&viewer, "/v1/channels").await;
    assert_eq!(health[0]["drifts"], serde_json::json!({ "quantity_differs": 1 }), "{health}");
    assert!(health[0]["last_drift_at"].is_string());

    let page = crate::page::page(&server, &viewer, "/channels").await;
    assert!(page.contains("<td>storefront</td><td><strong>throttled</strong></td>"), "{page}");
    assert!(page.contains("<th scope=\"col\">Drift corrected</th>"), "{page}");
    assert!(page.contains("<small>1 quantity_differs</small>"), "the page shows the drift by kind: {page}");
    let item_page = crate::page::page(&server, &viewer, "/?tenant=canary&sku=ABC-1").await;
    assert!(item_page.contains("catalog 12; buffer 2: 10; share 50%: 5"), "the trace shows the rule");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_s_health_follows_its_attempts_on_sqlite() {
    a_channel_s_health_follows_its_attempts(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_s_health_follows_its_attempts_on_postgres() {
    a_channel_s_health_follows_its_attempts(Server::postgres().await).await;
}
