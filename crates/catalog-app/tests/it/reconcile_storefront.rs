//! Reconciliation of the storefront against items that move while a sweep runs, over real
//! HTTP to a local storefront that answers the contract's list read-back. An item published
//! between the sweep's read of the store and its read of the channel is no drift: it is not
//! counted, logged or journaled as one. A channel page read before the store's next page is
//! read again after it, so an item published in between does not look behind.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use catalog_app::channels::{build_channels, http_channels_with, routes, PublishSettings, StorefrontSettings};
use catalog_app::reconcile::{reconcilers, ReconcileSettings, SweepReport};
use catalog_app::Metrics;
use catalog_core::{ItemId, ItemKey, Sku, TenantId};
use catalog_publish::WorkSignal;
use catalog_sqlite::SqliteStore;
use catalog_store::contract::published;
use catalog_store::prelude::*;
use catalog_store::{
    BatchInput, DeadLetterFilter, IncomingEvent, OutboxClaim, PublishOutcome, PublishRecord, SourceRef, StoreConfig,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// What the storefront shows: item id → (sku, quantity, version), in the contract's list order.
type Shown = BTreeMap<String, (String, i64, u64)>;

fn item_id(sku: &str) -> ItemId {
    ItemKey { tenant: TenantId::parse("canary").expect("tenant"), sku: Sku::parse(sku).expect("sku") }.item_id()
}

/// `inventory.updated` of `sku` to `quantity`, event `n`.
fn update(n: u64, sku: &str, quantity: i64) -> BatchInput {
    update_of("canary", n, sku, quantity)
}

/// `inventory.updated` of `tenant`'s `sku` to `quantity`, event `n`.
fn update_of(tenant: &str, n: u64, sku: &str, quantity: i64) -> BatchInput {
    let raw = format!(
        r#"{{"event_id":"00000000-0000-0000-0000-{n:012}","type":"inventory.updated","tenant_id":"{tenant}","supplier_id":"acme","sku":"{sku}","quantity":{quantity},"updated_at":"2026-06-01T12:{:02}:00Z"}}"#,
        n % 60
    );
    let source = SourceRef { source: "test".into(), partition: 0, offset: n as i64 };
    BatchInput::new(vec![IncomingEvent::received(raw.into_bytes(), chrono::Utc::now(), source, None)], vec![])
}

/// Publishes whatever waits on the storefront channel, as accepted, and shows it.
async fn publish_all(store: &SqliteStore, shown: &Mutex<Shown>) {
    let claimed =
        store.claim_outbox("storefront", &OutboxClaim::immediate(100, Duration::from_secs(60))).await.expect("claim");
    let records: Vec<_> = claimed.iter().map(|entry| published(entry, PublishOutcome::Published)).collect();
    store.record_publishes(&records).await.expect("record");
    let mut shown = shown.lock().expect("shown");
    for entry in &claimed {
        let item = &entry.item;
        shown.insert(item.id().to_string(), (item.key().sku.to_string(), item.quantity(), item.version()));
    }
}

/// The storefront: what it shows, and on its `move_on_call`-th list read, `moved` changed to
/// quantity 99, published and shown, before (`answer_after_move`) or after the answer is read.
#[derive(Clone)]
struct Storefront {
    shown: Arc<Mutex<Shown>>,
    store: Arc<SqliteStore>,
    calls: Arc<AtomicUsize>,
    move_on_call: usize,
    moved: String,
    answer_after_move: bool,
    /// Answers every read with no items and a `next` that never moves on.
    stuck: bool,
    /// Lists ids in the order of their lower-cased text, not of their bytes.
    fold_case: bool,
    /// A tenant whose reads are refused (403), as for a token that does not cover it.
    refused: Option<&'static str>,
    /// The channel held this long (a 429 its publisher met) just before the sweep.
    held_for: Option<Duration>,
    /// The first read is answered 429 with `Retry-After: 2`.
    throttle_first: bool,
    /// A SKU changed to quantity 77 before the sweep, that version dead-lettered (a 422)
    /// and the letter resolved: nothing is on its way to the storefront, which shows the old.
    given_up: Option<&'static str>,
    /// The channel's hold, once built; when it was extended before the sweep, when the first
    /// read came, and whether the hold stood half a second after a 429 was answered.
    hold: Arc<std::sync::OnceLock<Arc<catalog_publish::ChannelHold>>>,
    held_at: Arc<Mutex<Option<std::time::Instant>>>,
    first_read_at: Arc<Mutex<Option<std::time::Instant>>>,
    held_after_429: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: usize,
}

/// A page of the list after `query.after`, in byte order of the ids, or with `fold_case` in
/// the order of their lower-cased text (as a case-insensitive collation sorts). An item whose
/// SKU is `FOREIGN-NULL` shows its version as `null`, as another system's item might.
fn page(shown: &Shown, query: &ListQuery, fold_case: bool) -> Value {
    let key = |id: &str| if fold_case { id.to_lowercase() } else { id.to_owned() };
    let mut ordered: Vec<(&String, &(String, i64, u64))> = shown.iter().collect();
    ordered.sort_by_key(|(id, _)| key(id));
    let from = query.after.as_deref().map(key);
    let mut after: Vec<_> =
        ordered.into_iter().filter(|(id, _)| from.as_ref().is_none_or(|from| key(id) > *from)).collect();
    let more = after.len() > query.limit;
    after.truncate(query.limit);
    let items: Vec<Value> = after
        .iter()
        .map(|(id, (sku, quantity, version))| {
            let version = if sku == "FOREIGN-NULL" { Value::Null } else { json!(version) };
            json!({"item_id": id, "sku": sku, "quantity": quantity, "version": version})
        })
        .collect();
    let last = after.last().map(|(id, _)| json!(id));
    json!({"items": items, "next": if more { last.unwrap_or(Value::Null) } else { Value::Null }})
}

async fn list(
    State(storefront): State<Storefront>,
    Path(tenant): Path<String>,
    Query(query): Query<ListQuery>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let call = storefront.calls.fetch_add(1, Ordering::SeqCst) + 1;
    storefront.first_read_at.lock().expect("first read").get_or_insert_with(std::time::Instant::now);
    if storefront.throttle_first && call == 1 {
        let (hold, held) = (Arc::clone(&storefront.hold), Arc::clone(&storefront.held_after_429));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let standing = hold.get().is_some_and(|hold| hold.until().is_some());
            held.store(standing, Ordering::SeqCst);
        });
        let headers = [(axum::http::header::RETRY_AFTER, "2")];
        return (axum::http::StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response();
    }
    if storefront.refused == Some(tenant.as_str()) {
        let body = json!({"error": {"code": "forbidden", "message": "the token does not cover this tenant"}});
        return (axum::http::StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    if storefront.stuck {
        let next = query.after.clone().unwrap_or_else(|| item_id("SKU-000").to_string());
        return axum::Json(json!({"items": [], "next": next})).into_response();
    }
    let before = page(&storefront.shown.lock().expect("shown"), &query, storefront.fold_case);
    if call == storefront.move_on_call {
        storefront.store.apply_batch(&update(100, &storefront.moved, 99)).await.expect("move");
        publish_all(&storefront.store, &storefront.shown).await;
    }
    let answer = if storefront.answer_after_move {
        page(&storefront.shown.lock().expect("shown"), &query, storefront.fold_case)
    } else {
        before
    };
    axum::Json(answer).into_response()
}

/// A store with four items published and shown (and `unknown` shown besides), a storefront
/// that moves `moved` on its `move_on_call`-th read, and one sweep of `page_size` items.
async fn sweep_while_moving(
    moved: &str,
    move_on_call: usize,
    answer_after_move: bool,
    unknown: Option<&str>,
    page_size: usize,
) -> (SweepReport, Metrics, Arc<SqliteStore>, tempfile::TempDir) {
    let (report, metrics, store, directory) =
        sweep_against(Storefront::moving(moved, move_on_call, answer_after_move), unknown, page_size).await;
    (report.expect("sweep"), metrics, store, directory)
}

impl Storefront {
    fn moving(
        moved: &str,
        move_on_call: usize,
        answer_after_move: bool,
    ) -> impl FnOnce(Arc<Mutex<Shown>>, Arc<SqliteStore>) -> Storefront {
        let moved = moved.to_owned();
        move |shown, store| Storefront {
            shown,
            store,
            calls: Arc::new(AtomicUsize::new(0)),
            move_on_call,
            moved,
            answer_after_move,
            stuck: false,
            fold_case: false,
            refused: None,
            held_for: None,
            throttle_first: false,
            hold: Arc::default(),
            held_at: Arc::default(),
            first_read_at: Arc::default(),
            held_after_429: Arc::default(),
            given_up: None,
        }
    }
}

/// One sweep against the storefront `make` builds over the store's four items.
async fn sweep_against(
    make: impl FnOnce(Arc<Mutex<Shown>>, Arc<SqliteStore>) -> Storefront,
    unknown: Option<&str>,
    page_size: usize,
) -> (Result<SweepReport, catalog_app::reconcile::SweepError>, Metrics, Arc<SqliteStore>, tempfile::TempDir) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    let settings = PublishSettings {
        storefront: Some(StorefrontSettings { base_url, token: None, requests_per_second: 1_000, concurrency: 1 }),
        channels_file: None,
        lease: Duration::from_secs(30),
        settle: Duration::ZERO,
        max_wait: Duration::ZERO,
        max_attempts: 3,
    };
    let channels = http_channels_with(&settings, &|_| None).expect("channels");
    let directory = tempfile::tempdir().expect("temp dir");
    let config = StoreConfig { channels: routes(&channels), ..StoreConfig::default() };
    let store = Arc::new(SqliteStore::open_path(&directory.path().join("catalog.db"), config).await.expect("open"));
    for (n, sku) in ["SKU-000", "SKU-001", "SKU-002", "SKU-003"].iter().enumerate() {
        store.apply_batch(&update(n as u64 + 1, sku, 10 + n as i64)).await.expect("apply");
    }
    let shown = Arc::new(Mutex::new(BTreeMap::new()));
    publish_all(&store, &shown).await;
    if let Some(unknown) = unknown {
        shown.lock().expect("shown").insert(item_id(unknown).to_string(), (unknown.to_owned(), 1, 1));
    }
    let storefront = make(shown, store.clone());
    if let Some(sku) = storefront.given_up {
        give_up_on_a_new_version(&store, sku).await;
    }
    if let Some(refused) = storefront.refused {
        // A tenant swept before canary (tenants are swept in name order).
        store.apply_batch(&update_of(refused, 50, "SKU-000", 3)).await.expect("apply");
    }
    let (held_for, hold_slot, held_at) =
        (storefront.held_for, Arc::clone(&storefront.hold), Arc::clone(&storefront.held_at));
    let app = axum::Router::new().route("/v1/tenants/{tenant}/items", get(list)).with_state(storefront);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let metrics = Metrics::new();
    let built = build_channels(channels).expect("adapters");
    let reconcile = ReconcileSettings {
        interval: Duration::from_secs(3_600),
        page_size,
        requests_per_second: 1_000,
        max_attempts: 3,
    };
    let reconcilers = reconcilers(&built, store.clone(), reconcile, &metrics, &WorkSignal::new());
    hold_slot.set(Arc::clone(&built[0].hold)).expect("set once");
    if let Some(held_for) = held_for {
        built[0].hold.extend(held_for);
        *held_at.lock().expect("held at") = Some(std::time::Instant::now());
    }
    let report = tokio::time::timeout(Duration::from_secs(20), reconcilers[0].sweep()).await.expect("the sweep ends");
    (report, metrics, store, directory)
}

/// Changes `sku` to quantity 77, and dead-letters that version (a 422) and resolves the
/// letter, as an operator who gave up on it does.
async fn give_up_on_a_new_version(store: &SqliteStore, sku: &str) {
    store.apply_batch(&update(59, sku, 77)).await.expect("apply");
    let claimed =
        store.claim_outbox("storefront", &OutboxClaim::immediate(100, Duration::from_secs(60))).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let records: Vec<_> = claimed
        .iter()
        .map(|entry| PublishRecord {
            dead_letter_reason: Some("rejected_422".into()),
            status: Some(422),
            ..published(entry, PublishOutcome::DeadLettered)
        })
        .collect();
    store.record_publishes(&records).await.expect("record");
    let open = DeadLetterFilter { open: Some(true), limit: 10, ..DeadLetterFilter::default() };
    for letter in store.dead_letters(&open).await.expect("letters") {
        assert!(store.resolve_dead_letter(letter.dead_letter_id, "given up").await.expect("resolve"));
    }
}

/// The four SKUs in item id order (the contract's list order).
fn in_id_order() -> Vec<&'static str> {
    let mut skus = vec!["SKU-000", "SKU-001", "SKU-002", "SKU-003"];
    skus.sort_by_key(|sku| item_id(sku).to_string());
    skus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_published_after_the_store_was_read_is_no_drift() {
    // The sweep reads the store (the item at version 1, accepted), then the storefront, which
    // meanwhile accepted version 2: "ahead" of what the sweep read, and no drift.
    let moved = in_id_order()[0];
    let (report, metrics, store, _directory) = sweep_while_moving(moved, 1, true, None, 1_000).await;
    assert_eq!((report.drifts, report.corrected, report.moved_on), (0, 0, 1), "{report:?}");
    let text = metrics.render();
    assert!(!text.contains("catalog_drifts_detected_total{"), "nothing counted as drift: {text}");
    assert!(text.contains(r#"catalog_drift_corrections_moved_on_total{channel="storefront"} 1"#), "{text}");
    assert!(store.item_drifts(item_id(moved), 10).await.expect("drifts").is_empty(), "no drift journaled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_page_read_before_the_store_s_next_page_is_read_again() {
    // Pages of two; an item the catalog does not hold, first in id order, makes the channel's
    // pages fall one item behind the store's: the channel's second page holds the third store
    // item, which is published (version 2) right after that page was read, before the store's
    // second page is.
    let order = in_id_order();
    let unknown = (0..1_000)
        .map(|n| format!("ZZZ-{n}"))
        .find(|sku| item_id(sku).to_string() < item_id(order[0]).to_string())
        .expect("an id before the first");
    let (report, _, store, _directory) = sweep_while_moving(order[2], 2, false, Some(&unknown), 2).await;
    assert_eq!((report.drifts, report.corrected), (0, 0), "nothing behind: {report:?}");
    assert_eq!(report.unknown, 1);
    assert!(store.item_drifts(item_id(order[2]), 10).await.expect("drifts").is_empty(), "no drift journaled");
    let item = store.item(item_id(order[2])).await.expect("item").expect("exists");
    assert_eq!(item.version(), 2, "not bumped by a correction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_list_whose_next_never_moves_on_stops_the_sweep() {
    let stuck = |shown, store| Storefront { stuck: true, ..Storefront::moving("SKU-000", 0, false)(shown, store) };
    let (report, metrics, _, _directory) = sweep_against(stuck, None, 2).await;
    let error = report.expect_err("a list that never ends is no answer");
    assert!(error.to_string().contains("not past it"), "{error}");
    // Counted where the runbook of a failing reconciliation looks.
    let text = metrics.render();
    assert!(text.contains(r#"catalog_reconcile_read_errors_total{channel="storefront",kind="malformed"} 1"#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_list_that_ended_before_the_store_s_next_page_is_read_again() {
    // Pages of two; the storefront shows only the store's first page, and its list ends there.
    // Right after that read, the third store item is published (version 2) and shown: the
    // store's second page must be compared with the channel read after it, not with the end
    // of a list read before it. The fourth item is missing indeed.
    let order = in_id_order();
    let (third, fourth) = (order[2].to_owned(), order[3].to_owned());
    let make = move |shown: Arc<Mutex<Shown>>, store| {
        {
            let mut shown = shown.lock().expect("shown");
            shown.remove(&item_id(&third).to_string());
            shown.remove(&item_id(&fourth).to_string());
        }
        Storefront::moving(&third, 1, false)(shown, store)
    };
    let (report, _, store, _directory) = sweep_against(make, None, 2).await;
    let report = report.expect("sweep");
    assert_eq!((report.drifts, report.corrected), (1, 1), "only the fourth item is missing: {report:?}");
    assert!(store.item_drifts(item_id(order[2]), 10).await.expect("drifts").is_empty(), "no drift journaled");
    assert_eq!(store.item_drifts(item_id(order[3]), 10).await.expect("drifts").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_of_another_system_on_the_storefront_are_unknown_and_stop_no_healing() {
    // The storefront also shows items no catalog has (decision 0016: unknown, left alone):
    // ids that are no UUIDs, one of them last on a page and so the `next` cursor, and one a
    // UUID of another system's showing its version as `null`. Listed in byte order, and in a
    // case-insensitive collation's order, where `LEGACY-7` comes after the catalog's ids and
    // after `legacy-42`: a `next` that is before `after` in byte order, and no loop. The
    // catalog's fourth item is missing, and is healed all the same.
    let fourth = in_id_order()[3].to_owned();
    for (page_size, fold_case) in [(1_000, false), (2, false), (1_000, true), (2, true), (1, true)] {
        let missing = fourth.clone();
        let make = move |shown: Arc<Mutex<Shown>>, store| {
            {
                let mut shown = shown.lock().expect("shown");
                shown.remove(&item_id(&missing).to_string());
                for foreign in ["0-legacy", "LEGACY-7", "legacy-42", "zz-legacy"] {
                    shown.insert(foreign.to_owned(), ("LEGACY".to_owned(), 1, 1));
                }
                let theirs = item_id("ANOTHER-SYSTEM").to_string();
                shown.insert(theirs, ("FOREIGN-NULL".to_owned(), 1, 1));
            }
            Storefront { fold_case, ..Storefront::moving(&missing, 0, false)(shown, store) }
        };
        let (report, _, store, _directory) = sweep_against(make, None, page_size).await;
        let report = report.expect("sweep");
        let case = format!("pages of {page_size}, case folded {fold_case}");
        assert_eq!((report.drifts, report.corrected, report.unknown), (1, 1, 5), "{case}: {report:?}");
        assert_eq!(store.item_drifts(item_id(&fourth), 10).await.expect("drifts").len(), 1, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_the_channel_refuses_to_read_back_leaves_the_others_swept() {
    // acme-outlet, swept first, is refused; canary's fourth item is missing from the
    // storefront and is corrected all the same. The sweep fails at its end, naming the refusal.
    let fourth = in_id_order()[3].to_owned();
    let make = move |shown: Arc<Mutex<Shown>>, store| {
        shown.lock().expect("shown").remove(&item_id(&fourth).to_string());
        Storefront { refused: Some("acme-outlet"), ..Storefront::moving("SKU-000", 0, false)(shown, store) }
    };
    let (report, _, store, _directory) = sweep_against(make, None, 1_000).await;
    let error = report.expect_err("a refused tenant fails the sweep");
    assert!(error.to_string().contains("1 of 2 tenants"), "{error}");
    assert_eq!(catalog_core::Classify::failure_class(&error), catalog_core::FailureClass::NeedsOperator);
    let drifts = store.item_drifts(item_id(in_id_order()[3]), 10).await.expect("drifts");
    assert_eq!(drifts.len(), 1, "canary's missing item was corrected after the refused tenant");
}

/// The storefront's throttling holds the channel's publisher and its reconciler alike: a hold
/// the publisher met is waited out before the sweep's first read, and a 429 to a read holds
/// the channel (its sends too) for the `Retry-After` (the contract: "wait at least that long").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_either_meets_holds_the_channel_s_sends_and_reads() {
    let (first_read_at, held_at) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(None)));
    let (first, held) = (Arc::clone(&first_read_at), Arc::clone(&held_at));
    let make = move |shown, store| Storefront {
        held_for: Some(Duration::from_millis(1_500)),
        first_read_at: first,
        held_at: held,
        ..Storefront::moving("SKU-000", 0, false)(shown, store)
    };
    let (report, _, _, _directory) = sweep_against(make, None, 1_000).await;
    report.expect("sweep");
    let (first, held) =
        (first_read_at.lock().expect("first").expect("read"), held_at.lock().expect("held").expect("held"));
    assert!(
        first.duration_since(held) >= Duration::from_millis(1_400),
        "read {:?} into the hold",
        first.duration_since(held)
    );

    let held_after_429 = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::clone(&held_after_429);
    let make = move |shown, store| Storefront {
        throttle_first: true,
        held_after_429: seen,
        ..Storefront::moving("SKU-000", 0, false)(shown, store)
    };
    let (report, _, _, _directory) = sweep_against(make, None, 1_000).await;
    report.expect("the sweep reads again after the wait");
    assert!(held_after_429.load(Ordering::SeqCst), "the read's 429 held the channel");
}

/// An item whose newest version the storefront never accepted, with nothing on its way any
/// more (its dead letter resolved), while the storefront shows the version before: drift,
/// corrected with the catalog's quantity as a new version. Before, it was taken for a version
/// in flight on every sweep, and the storefront showed the old quantity until the item next
/// changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_whose_last_version_was_given_up_on_is_corrected() {
    let sku = in_id_order()[1];
    let make =
        |shown, store| Storefront { given_up: Some(sku), ..Storefront::moving("SKU-000", 0, false)(shown, store) };
    let (report, _metrics, store, _directory) = sweep_against(make, None, 1_000).await;
    let report = report.expect("sweep");
    assert_eq!((report.drifts, report.corrected), (1, 1), "{report:?}");
    let drifts = store.item_drifts(item_id(sku), 10).await.expect("drifts");
    assert_eq!(drifts.len(), 1);
    assert_eq!(
        (drifts[0].kind.as_str(), drifts[0].catalog_version, drifts[0].corrected_version),
        ("version_behind", 2, 3)
    );
    let queued =
        store.claim_outbox("storefront", &OutboxClaim::immediate(100, Duration::from_secs(60))).await.expect("claim");
    let queued: Vec<_> = queued
        .iter()
        .map(|entry| (entry.item.key().sku.to_string(), entry.item.quantity(), entry.item.version()))
        .collect();
    assert_eq!(queued, [(sku.to_owned(), 77, 3)], "the catalog's quantity, as a new version");
}

/// A storefront showing a version beyond any the catalog can issue (a corrupt record): no
/// correction can pass it, so none is made, and the sweep counts it for an operator. Before,
/// the correction was stored at the stores' largest version (below the channel's, refused as
/// older for ever), and in PostgreSQL the item's next event could not be given a version
/// above it: its partition stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_beyond_reach_is_counted_and_not_corrected() {
    let sku = in_id_order()[2];
    let make = |shown: Arc<Mutex<Shown>>, store| {
        shown.lock().expect("shown").get_mut(&item_id(sku).to_string()).expect("published").2 = u64::MAX;
        Storefront::moving("SKU-000", 0, false)(shown, store)
    };
    let (report, metrics, store, _directory) = sweep_against(make, None, 1_000).await;
    let report = report.expect("sweep");
    assert_eq!((report.drifts, report.corrected), (0, 0), "{report:?}");
    assert!(store.item_drifts(item_id(sku), 10).await.expect("drifts").is_empty());
    let item = store.item(item_id(sku)).await.expect("read").expect("the item");
    assert_eq!(item.version(), 1, "no correction");
    let text = metrics.render();
    assert!(
        text.contains(r#"catalog_drifts_detected_total{channel="storefront",kind="version_out_of_reach"} 1"#),
        "{text}"
    );
}
