//! The item's trace shows reconciliation's drift corrections, as docs/support.md says ("the
//! item's trace has the details"): the channel, what it showed, when, and the version the
//! correction produced; the support page lists them too.

use catalog_core::{detect_drift, DriftKind, Expected, Shown, StockChange};
use catalog_store::contract::{batch, incoming, offer, published};
use catalog_store::{DriftCorrection, OutboxClaim, PublishOutcome, Role};

use crate::page::page;
use crate::Server;

async fn the_trace_shows_the_item_s_drift_corrections(server: Server) {
    let viewer = server.token("vera", Role::Viewer).await;
    let key = offer("canary", "acme", "ABC-1");
    let events = vec![incoming(1, &key, StockChange::Updated { quantity: 12 }, 0, 1)];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    let lease = std::time::Duration::from_secs(30);
    let claimed = server.store.claim_outbox("storefront", &OutboxClaim::immediate(10, lease)).await.expect("claim");
    server.store.record_publish(&published(&claimed[0], PublishOutcome::Published)).await.expect("record");
    let item = server.store.reconcile_page("storefront", &key.tenant, None, 10).await.expect("page").remove(0);
    // Someone set the storefront to 99 by hand.
    let expected = Expected { quantity: item.quantity, version: item.version, accepted: item.accepted };
    let drift = detect_drift(expected, Some(Shown { quantity: 99, version: 1 })).expect("drift");
    assert_eq!(drift.kind, DriftKind::QuantityDiffers);
    let correction = DriftCorrection::of(item.item_id, item.version, drift);
    server.store.correct_drifts("storefront", &[correction]).await.expect("correct");

    let trace = server.get_json(&viewer, "/v1/tenants/canary/items/abc-1/trace").await;
    let corrections = trace["drift_corrections"].as_array().expect("drift corrections in the trace");
    assert_eq!(corrections.len(), 1, "{trace}");
    let found = &corrections[0];
    assert_eq!(found["channel"], "storefront");
    assert_eq!(found["kind"], "quantity_differs");
    assert_eq!((found["shown_quantity"].as_i64(), found["shown_version"].as_u64()), (Some(99), Some(1)));
    assert_eq!((found["catalog_version"].as_u64(), found["corrected_version"].as_u64()), (Some(1), Some(2)));
    assert!(found["detected_at"].is_string(), "{found}");

    let html = page(&server, &viewer, "/?tenant=canary&sku=abc-1").await;
    assert!(html.contains("Drift corrected by reconciliation"), "{html}");
    assert!(html.contains("quantity_differs") && html.contains("showed 99 (version 1)"), "{html}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_shows_the_item_s_drift_corrections_on_sqlite() {
    the_trace_shows_the_item_s_drift_corrections(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_shows_the_item_s_drift_corrections_on_postgres() {
    the_trace_shows_the_item_s_drift_corrections(Server::postgres().await).await;
}
