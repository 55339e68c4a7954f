//! The support page driven in headless Chromium (issue 14, item 9): an operator signs in,
//! looks an item up by tenant and SKU, reads the winner per offer, switches a held supplier
//! on through the confirmation and sees its held events applied; a viewer finds no write
//! control anywhere. With `CATALOG_SCREENSHOTS_DIR` set, each page is saved there as a PNG
//! (docs/screenshots/ holds the committed ones).

use std::path::PathBuf;

use catalog_core::StockChange;
use catalog_store::contract::{base, batch, event_id, incoming, offer, raw_incoming};
use catalog_store::{
    CompletedWindow, FeedDrift, FeedKey, FeedSettings, FullRefresh, OutboxClaim, PublishOutcome, PublishRecord, Role,
    SentQuantity, WindowKind,
};

use crate::webdriver::{Driver, Session};
use crate::Server;

/// Seeds the scenario: acme's snapshot of 7 wins over an older 5; globex is switched off,
/// so its snapshot of 4 and adjustment of +1 are held; acme's winning event is redelivered
/// with another quantity (a duplicate whose payload differs); another item's publish was
/// refused for good (an open dead letter) and the first item's was accepted; and a line that
/// is not an event was rejected.
async fn seed(server: &Server) {
    let (acme, globex) = (offer("canary", "acme", "ABC-1"), offer("canary", "globex", "ABC-1"));
    let other = offer("canary", "acme", "XYZ-9");
    server.store.set_supplier_sync(&globex.tenant, &globex.supplier, false).await.expect("flag");
    // Received now, as a live scenario is.
    let now_second = (chrono::Utc::now() - base()).num_seconds();
    let events = vec![
        incoming(1, &acme, StockChange::Updated { quantity: 7 }, now_second - 60, now_second),
        incoming(2, &acme, StockChange::Updated { quantity: 5 }, now_second - 120, now_second),
        incoming(3, &globex, StockChange::Updated { quantity: 4 }, now_second - 90, now_second),
        incoming(4, &globex, StockChange::Adjusted { delta: 1 }, now_second - 30, now_second),
        incoming(5, &other, StockChange::Updated { quantity: 2 }, now_second - 60, now_second),
    ];
    server.store.apply_batch(&batch(events)).await.expect("apply");
    let changed = catalog_core::SupplierEvent::new(
        event_id(1),
        acme.clone(),
        StockChange::Updated { quantity: 70 },
        base() + chrono::Duration::seconds(now_second - 60),
        Some(1),
    )
    .expect("valid event");
    let redelivery = raw_incoming(6, catalog_core::encode(&changed).into_bytes(), now_second);
    // A supplier's line that is not an event at all: rejected, with no id or tenant to find it by.
    let garbage = raw_incoming(7, br#"{"event_id": "ABC-1", "quantity": "twelve"#.to_vec(), now_second);
    server.store.apply_batch(&batch(vec![redelivery, garbage])).await.expect("apply");
    let lease = std::time::Duration::from_secs(1);
    for entry in server.store.claim_outbox("storefront", &OutboxClaim::immediate(10, lease)).await.expect("claim") {
        let refused = entry.item.sku().as_str() == "XYZ-9";
        let record = PublishRecord {
            claim: entry.claim,
            item_id: entry.item.id(),
            channel: "storefront".into(),
            version: entry.item.version(),
            attempt: 1,
            outcome: if refused { PublishOutcome::DeadLettered } else { PublishOutcome::Published },
            status: Some(if refused { 422 } else { 202 }),
            latency_ms: Some(4),
            error: refused.then(|| "unprocessable: unknown sku".into()),
            dead_letter_reason: refused.then(|| "rejected_4xx".into()),
            body: None,
            sent: Some(SentQuantity {
                listing: entry.item.sku().to_string(),
                quantity: entry.item.quantity(),
                rule: format!("catalog {}", entry.item.quantity()),
            }),
        };
        server.store.record_publish(&record).await.expect("record");
    }
    // A pulled feed: the last day pulled, a gap before it, and a full refresh that found the
    // catalog's ABC-1 at 7 where the supplier says 9.
    let now = chrono::Utc::now();
    let feed = FeedSettings {
        key: FeedKey { tenant: acme.tenant.clone(), supplier: acme.supplier.clone() },
        base_url: "https://feeds.acme.example".into(),
        token_env: "ACME_FEED_TOKEN".into(),
        go_live_date: (now - chrono::Duration::days(10)).date_naive(),
        sync_frequency_hours: 6,
        timezone: "Europe/Berlin".into(),
        run_times: ["00:00", "06:00", "12:00", "18:00"]
            .iter()
            .map(|time| chrono::NaiveTime::parse_from_str(time, "%H:%M").expect("time"))
            .collect(),
        requests_per_second: Some(5),
        sync_enabled: true,
    };
    server.store.upsert_feed(&feed).await.expect("feed");
    let window = CompletedWindow {
        kind: WindowKind::Incremental,
        since: now - chrono::Duration::days(1),
        until: now - chrono::Duration::hours(2),
        completed_at: now - chrono::Duration::hours(2),
        n_records: 1_840,
        n_pages: 2,
        n_windows: 1,
        requested_at: None,
    };
    server.store.complete_window(&feed.key, &window).await.expect("window");
    let drift =
        FeedDrift { sku: acme.sku.clone(), stored: Some(7), supplier: 9, as_of: now - chrono::Duration::hours(1) };
    let refresh = FullRefresh { key: feed.key.clone(), as_of: drift.as_of, completed_at: drift.as_of };
    server.store.record_feed_drifts(&feed.key, &[drift], refresh.completed_at).await.expect("drift");
    server.store.complete_full_refresh(&refresh).await.expect("refresh");
}

/// Whether the page is wider than the window: a laptop user would scroll sideways.
async fn overflows(session: &Session) -> bool {
    session.execute("return document.documentElement.scrollWidth > window.innerWidth").await == serde_json::json!(true)
}

async fn sign_in(session: &Session, server: &Server, token: &str) {
    session.goto(&server.url("/")).await;
    let field = session.find("#token").await;
    session.type_into(&field, token).await;
    session.submit(&session.find(r#"form[action="/session"] button[type="submit"]"#).await).await;
}

async fn look_up(session: &Session, tenant: &str, sku: &str) {
    session.type_into(&session.find("#tenant").await, tenant).await;
    session.type_into(&session.find("#sku").await, sku).await;
    session.submit(&session.find("#tenant ~ button[type=submit]").await).await;
}

/// The cells of the offers table's winning rows, as text.
async fn winners(session: &Session) -> Vec<String> {
    let mut rows = Vec::new();
    for row in session.find_all("#offers tr.win").await {
        rows.push(session.text(&row).await);
    }
    rows
}

async fn timeline_outcomes(session: &Session) -> Vec<String> {
    timeline_column(session, 7).await
}

/// The text of one column of the timeline, row by row.
async fn timeline_column(session: &Session, column: usize) -> Vec<String> {
    let mut cells = Vec::new();
    for cell in session.find_all(&format!("#timeline tbody tr td:nth-child({column})")).await {
        cells.push(session.text(&cell).await);
    }
    cells
}

/// Every form that writes (POST), but signing out.
async fn write_controls(session: &Session) -> usize {
    session.find_all(r#"form[method="post"]:not([action="/signout"])"#).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_and_a_viewer_use_the_support_page_in_chromium() {
    let screenshots = std::env::var_os("CATALOG_SCREENSHOTS_DIR").map(PathBuf::from);
    let screenshots = screenshots.as_deref();
    let driver = Driver::start().await;
    let server = Server::sqlite().await;
    let operator = server.token("otto", Role::Operator).await;
    let viewer = server.token("vera", Role::Viewer).await;
    seed(&server).await;
    let session = driver.session().await;

    session.goto(&server.url("/")).await;
    session.screenshot(screenshots, "sign-in").await;
    sign_in(&session, &server, "cat_not_a_token").await;
    assert!(session.page_text().await.contains("That token is not valid."));
    sign_in(&session, &server, &operator).await;
    assert!(session.page_text().await.contains("Signed in as otto (operator)."));

    // The lookup normalizes the SKU like the contract: abc-1 finds ABC-1.
    look_up(&session, "canary", "abc-1").await;
    let text = session.page_text().await;
    assert!(text.contains("Item canary / ABC-1"), "{text}");
    assert!(text.contains("Quantity 7, version 1"), "{text}");
    let winners_before = winners(&session).await;
    assert_eq!(winners_before.len(), 1, "only acme's offer has a winner: {winners_before:?}");
    assert!(
        winners_before[0].starts_with(&format!("acme 7 {} inventory.updated 7", catalog_store::contract::event_id(1))),
        "acme's snapshot of 7 wins: {winners_before:?}"
    );
    assert_eq!(timeline_outcomes(&session).await, ["stale", "held", "applied", "held"]);
    // The redelivery of acme's winner carried 70, not 7: the page says so, not only "1".
    let redeliveries = timeline_column(&session, 9).await;
    assert_eq!(redeliveries[0..2], ["0", "0"], "{redeliveries:?}");
    assert!(
        redeliveries[2].starts_with("1") && redeliveries[2].contains("another payload"),
        "the applied event's redelivery differs: {redeliveries:?}"
    );
    assert!(!overflows(&session).await, "the trace fits a laptop's width; a wide timeline scrolls in its box");
    session.screenshot(screenshots, "item-trace").await;

    // Switching globex on asks first, then applies its two held events: 7 + 4 + 1 = 12.
    let switch = session.find(r#"button[aria-label="Switch sync on for supplier globex of canary"]"#).await;
    assert_eq!(session.submit_confirmed(&switch).await, "Switch sync on for supplier globex of canary?");
    let text = session.page_text().await;
    assert!(text.contains("Sync switched on: 2 held events decided again (2 applied), 1 items changed."), "{text}");
    session.screenshot(screenshots, "operator-controls").await;
    look_up(&session, "canary", "ABC-1").await;
    let text = session.page_text().await;
    assert!(text.contains("Quantity 12, version 2"), "{text}");
    assert_eq!(timeline_outcomes(&session).await, ["stale", "applied", "applied", "applied"]);
    let winners_after = winners(&session).await;
    assert!(winners_after.iter().any(|row| row.starts_with("globex 5 ")), "{winners_after:?}");
    assert!(write_controls(&session).await > 0, "an operator has write controls");

    session.goto(&server.url("/dead-letters")).await;
    let text = session.page_text().await;
    assert!(text.contains("Open dead letters (1)") && text.contains("rejected_4xx"), "{text}");
    assert_eq!(session.find_all(r#"button[aria-label^="Retry dead letter"]"#).await.len(), 1);
    session.screenshot(screenshots, "dead-letters").await;
    session.goto(&server.url("/rejections")).await;
    let text = session.page_text().await;
    assert!(text.contains("Rejected messages (1)") && text.contains("invalid_payload"), "{text}");
    assert!(!overflows(&session).await, "the rejected messages fit a laptop's width");
    session.screenshot(screenshots, "rejections").await;
    session.goto(&server.url("/status")).await;
    let text = session.page_text().await;
    assert!(text.contains("Sync status per tenant") && text.contains("canary current on"), "{text}");
    session.screenshot(screenshots, "status").await;
    session.goto(&server.url("/channels")).await;
    let text = session.page_text().await;
    assert!(text.contains("Sales channels") && text.contains("storefront failing"), "{text}");
    assert!(!overflows(&session).await, "the channels page fits a laptop's width");
    session.screenshot(screenshots, "channels").await;
    session.goto(&server.url("/feeds")).await;
    let text = session.page_text().await;
    assert!(text.contains("Supplier feeds (1)") && text.contains("Feed acme of canary"), "{text}");
    // Going live is local midnight in Berlin: 10 or 11 whole days ago, by the time of day.
    let key = catalog_store::FeedKey {
        tenant: catalog_core::TenantId::parse("canary").expect("tenant"),
        supplier: catalog_core::SupplierId::parse("acme").expect("supplier"),
    };
    let status = catalog_app::feeds::feed_status(&*server.store, &key, chrono::Utc::now())
        .await
        .expect("status")
        .expect("the feed");
    let days = status.gaps[0].days_behind;
    assert!((10..=11).contains(&days), "{status:?}");
    assert!(
        text.contains(&format!("1 ({days} days behind)")) || text.contains(&format!("1 ({} days behind)", days - 1)),
        "the gap since going live: {text}"
    );
    assert_eq!(session.find_all(r#"button[aria-label="Switch pulling off for feed acme of canary"]"#).await.len(), 1);
    assert!(!overflows(&session).await, "the feeds page fits a laptop's width");
    session.screenshot(screenshots, "feeds").await;

    // A viewer: the same pages, no form that writes anywhere.
    session.submit(&session.find(r#"form[action="/signout"] button"#).await).await;
    assert!(session.page_text().await.contains("Sign in"));
    sign_in(&session, &server, &viewer).await;
    look_up(&session, "canary", "abc-1").await;
    let text = session.page_text().await;
    assert!(text.contains("Signed in as vera (viewer).") && text.contains("Quantity 12"), "{text}");
    assert_eq!(write_controls(&session).await, 0, "a viewer sees no write control on the trace");
    session.screenshot(screenshots, "viewer-view").await;
    for path in ["/dead-letters", "/status", "/channels", "/feeds"] {
        session.goto(&server.url(path)).await;
        assert_eq!(write_controls(&session).await, 0, "a viewer sees no write control on {path}");
    }
    let focusable =
        session.execute("return document.querySelectorAll('input:not([type=hidden]):not([id])').length").await;
    assert_eq!(focusable, 0, "every visible input has an id its label points at");

    session.close().await;
    server.stop().await;
}
