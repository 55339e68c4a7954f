//! The full refresh: drift against the supplier's snapshot is recorded and corrected through
//! the rules; an offer the snapshot no longer lists goes to 0.

use catalog_core::{ItemKey, Outcome, Sku};
use catalog_feed::OnceScope;
use catalog_testkit::feed_api::{Fault, FeedApi, FeedRecord};
use chrono::{Duration as TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// The drift recorded for feed acme, one line each (`SKU stored -> supplier`), sorted.
async fn drift_lines(fixture: &Fixture) -> Vec<String> {
    let records = fixture.store.feed_drifts(&key("acme"), 100).await.expect("drifts");
    let mut lines: Vec<String> = records
        .iter()
        .map(|record| format!("{} {:?} -> {}", record.drift.sku, record.drift.stored, record.drift.supplier))
        .collect();
    lines.sort();
    lines
}

async fn a_full_refresh_records_and_corrects_each_difference(fixture: Fixture) {
    let now = Utc::now();
    let at = now - TimeDelta::hours(2);
    let record =
        |sku: &str, quantity: i64| FeedRecord { sku: sku.to_owned(), quantity, updated_at: at, sequence: None };
    let api = FeedApi::start(vec![record("A-1", 5), record("B-2", 7), record("C-3", 9), record("D-4", 0)], TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("pull");
    assert!(!fixture.store.feed(&key("acme")).await.expect("feed").expect("known").initial_sync_completed);

    // The supplier's truth drifted from what its feed said: A-1 differs, B-2 sold out (listed
    // at 0: a quantity that differs, not a SKU no longer listed), C-3 is gone, E-5 is new.
    api.set_snapshot(vec![record("A-1", 6), record("B-2", 0), record("D-4", 0), record("E-5", 3)]);
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    let offers = fixture.offers(&key("acme")).await;
    let expected: Vec<(&str, i64)> = vec![("A-1", 6), ("B-2", 0), ("C-3", 0), ("D-4", 0), ("E-5", 3)];
    assert_eq!(offers.iter().map(|(sku, q)| (sku.as_str(), *q)).collect::<Vec<_>>(), expected);
    assert_eq!(
        drift_lines(&fixture).await,
        ["A-1 Some(5) -> 6", "B-2 Some(7) -> 0", "C-3 Some(9) -> 0", "E-5 None -> 3"]
    );
    let feed = fixture.store.feed(&key("acme")).await.expect("feed").expect("known");
    assert!(feed.initial_sync_completed && feed.last_full_refresh_at.is_some());
    let metric = fixture.metric("catalog_feed_drift_total");
    for (kind, count) in [("quantity_differs", 2), ("not_listed", 1), ("not_stored", 1)] {
        assert!(metric.contains(&format!("kind=\"{kind}\"}} {count}")), "{kind}:\n{metric}");
    }
    // The corrections are journaled under the refresh's source name.
    let trace = fixture
        .store
        .item_trace(
            catalog_core::ItemKey { tenant: key("acme").tenant, sku: catalog_core::Sku::parse("A-1").expect("sku") }
                .item_id(),
        )
        .await
        .expect("trace")
        .expect("item");
    assert!(
        trace.events.iter().any(|entry| entry.source.source.starts_with("feed-refresh:canary/acme")),
        "{:?}",
        trace.events
    );

    // A second refresh of an unchanged snapshot finds nothing.
    source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(fixture.store.feed_drifts(&key("acme"), 10).await.expect("drifts").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_refresh_records_and_corrects_each_difference_on_sqlite() {
    a_full_refresh_records_and_corrects_each_difference(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_refresh_records_and_corrects_each_difference_on_postgres() {
    a_full_refresh_records_and_corrects_each_difference(postgres().await).await;
}

/// A snapshot whose paging loops stops the refresh with a dead letter, correcting nothing
/// (half a snapshot is no truth to correct against); mended, the next refresh completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_whose_cursors_loop_corrects_nothing() {
    let fixture = sqlite().await;
    let now = Utc::now();
    // Windows of one page (30 records), a snapshot of six pages (300 SKUs): only the
    // snapshot's paging can loop.
    let api = FeedApi::start(records(30, 1, now - TimeDelta::minutes(5)), TOKEN).await;
    let at = now - TimeDelta::minutes(5);
    api.set_snapshot(
        (0..300).map(|n| FeedRecord { sku: format!("S-{n}"), quantity: n, updated_at: at, sequence: None }).collect(),
    );
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("pull");
    api.set_stuck_cursor(true);
    let shutdown = CancellationToken::new();
    let refresh = source.run_once(OnceScope::WithFullRefresh, &shutdown);
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), refresh).await.expect("ends").expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("already returned"), "{report:?}");
    assert!(fixture.store.feed_drifts(&key("acme"), 10).await.expect("drifts").is_empty());
    assert!(!fixture.store.feed(&key("acme")).await.expect("feed").expect("known").initial_sync_completed);

    api.set_stuck_cursor(false);
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    assert!(fixture.store.feed(&key("acme")).await.expect("feed").expect("known").initial_sync_completed);
}

/// A record of `sku` at `quantity`, updated `at`.
fn record_at(sku: &str, quantity: i64, at: chrono::DateTime<Utc>) -> FeedRecord {
    FeedRecord { sku: sku.to_owned(), quantity, updated_at: at, sequence: None }
}

/// A feed listing A-1 at 40 and B-2 at 7, updated two hours ago, pulled once into `fixture`:
/// its API, its source, and when its records were updated.
async fn pulled_a1_and_b2(fixture: &Fixture) -> (FeedApi, catalog_feed::FeedSource, chrono::DateTime<Utc>) {
    let now = Utc::now();
    let at = now - TimeDelta::hours(2);
    let api = FeedApi::start(vec![record_at("A-1", 40, at), record_at("B-2", 7, at)], TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("pull");
    (api, source, at)
}

/// A snapshot record the rules reject says nothing true of its SKU: the refresh journals it
/// with its reason and leaves the stored offer alone, neither corrected to 0 as unlisted nor
/// counted as drift.
async fn a_rejected_snapshot_record_leaves_its_offer_alone(fixture: Fixture) {
    let (api, source, at) = pulled_a1_and_b2(&fixture).await;
    let record = |sku: &str, quantity: i64| record_at(sku, quantity, at);

    api.set_snapshot(vec![record("A-1", 1_000_000_001), record("B-2", 7)]);
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    let offers: Vec<(String, i64)> = fixture.offers(&key("acme")).await.into_iter().collect();
    assert_eq!(offers, [("A-1".to_owned(), 40), ("B-2".to_owned(), 7)]);
    assert_eq!(fixture.store.feed_drifts(&key("acme"), 10).await.expect("drifts"), []);
    assert!(fixture.store.feed(&key("acme")).await.expect("feed").expect("known").initial_sync_completed);
    let rejected = fixture.metric("catalog_feed_records_total{feed=\"canary/acme\",result=\"rejected\"}");
    assert!(rejected.ends_with(" 1"), "{rejected}");

    let item = ItemKey { tenant: key("acme").tenant, sku: Sku::parse("A-1").expect("sku") }.item_id();
    let trace = fixture.store.item_trace(item).await.expect("trace").expect("item");
    let rejection = trace
        .events
        .iter()
        .find(|entry| matches!(entry.outcome, Outcome::Rejected(_)))
        .unwrap_or_else(|| panic!("the rejected record is in the item's trace: {:?}", trace.events));
    assert!(rejection.source.source.starts_with("feed-refresh:canary/acme"), "{rejection:?}");
    assert!(rejection.detail.as_deref().unwrap_or_default().contains("1000000001"), "{rejection:?}");
}

/// A snapshot record too large to decode (its SKU padded past 64 KiB with blanks, which the
/// SKU's rules trim) is rejected before its SKU is read: its offer is still left alone, not
/// corrected to 0 as if the snapshot had not listed it.
async fn a_snapshot_record_too_large_to_read_leaves_its_offer_alone(fixture: Fixture) {
    let (api, source, at) = pulled_a1_and_b2(&fixture).await;
    let record = |sku: &str, quantity: i64| record_at(sku, quantity, at);

    api.set_snapshot(vec![record(&format!("A-1{}", " ".repeat(70_000)), 40), record("B-2", 7)]);
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    let offers: Vec<(String, i64)> = fixture.offers(&key("acme")).await.into_iter().collect();
    assert_eq!(offers, [("A-1".to_owned(), 40), ("B-2".to_owned(), 7)], "A-1 is not zeroed");
    assert_eq!(fixture.store.feed_drifts(&key("acme"), 10).await.expect("drifts"), []);
    let rejected = fixture.metric("catalog_feed_records_total{feed=\"canary/acme\",result=\"rejected\"}");
    assert!(rejected.ends_with(" 1"), "{rejected}");
}

/// A snapshot record whose SKU has a letter outside ASCII is refused (decision 0065), and
/// names, upper-cased as Unicode does, the offer an earlier version stored it under: that one
/// is left alone, and the SKUs the snapshot does not list are still corrected to 0. Named
/// nowhere, it stopped every unlisted offer of the supplier from being zeroed, every week.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_sku_with_a_letter_outside_ascii_leaves_only_its_old_offer_alone() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let at = now - TimeDelta::hours(2);
    let api = FeedApi::start(vec![record_at("SKU-I", 40, at), record_at("B-2", 7, at)], TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("pull");

    // `sku-ı` (a dotless i) was `SKU-I` once; B-2 is no longer listed.
    api.set_snapshot(vec![record_at("sku-ı", 3, at)]);
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    let offers: Vec<(String, i64)> = fixture.offers(&key("acme")).await.into_iter().collect();
    assert_eq!(offers, [("B-2".to_owned(), 0), ("SKU-I".to_owned(), 40)], "B-2 zeroed, SKU-I left alone");
}

/// A snapshot record whose SKU breaks the rules (a space, a slash, 65 characters) is refused
/// and names no stored offer, since every stored SKU is valid: the SKUs the snapshot does not
/// list are still corrected to 0. Before, it counted as a record naming no SKU, and a supplier
/// sending one every week kept every delisted offer's quantity on every channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_sku_that_breaks_the_rules_leaves_no_offer_alone() {
    let fixture = sqlite().await;
    let (api, source, at) = pulled_a1_and_b2(&fixture).await;
    let too_long = "X".repeat(65);
    api.set_snapshot(vec![
        record_at("A-1", 40, at),
        record_at("BAD SKU 1", 3, at),
        record_at("AB/12", 1, at),
        record_at(&too_long, 2, at),
    ]);
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    let offers: Vec<(String, i64)> = fixture.offers(&key("acme")).await.into_iter().collect();
    assert_eq!(offers, [("A-1".to_owned(), 40), ("B-2".to_owned(), 0)], "B-2 zeroed");
}

/// A snapshot record that is no JSON object names no SKU: it may be any SKU the snapshot
/// does not list, so the refresh corrects none to 0 as unlisted (it is journaled as rejected;
/// the SKUs it lists are still corrected). Before records that are no object were journaled
/// (the page was refused whole), such a record would have zeroed every unlisted offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_record_that_names_no_sku_zeroes_no_unlisted_offer() {
    let fixture = sqlite().await;
    let (api, source, at) = pulled_a1_and_b2(&fixture).await;
    let record = |sku: &str, quantity: i64| record_at(sku, quantity, at);

    // A-1's record is `null` in the snapshot (every page of this run carries one first).
    api.set_snapshot(vec![record("B-2", 9)]);
    api.inject((0..8).map(|_| Fault::NotAnObject(serde_json::Value::Null)));
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    assert!(api.requests().iter().any(|request| request.snapshot), "the snapshot was read");
    let offers: Vec<(String, i64)> = fixture.offers(&key("acme")).await.into_iter().collect();
    assert_eq!(offers, [("A-1".to_owned(), 40), ("B-2".to_owned(), 9)], "A-1 is not zeroed; B-2 is corrected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_record_too_large_to_read_leaves_its_offer_alone_on_sqlite() {
    a_snapshot_record_too_large_to_read_leaves_its_offer_alone(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_snapshot_record_leaves_its_offer_alone_on_sqlite() {
    a_rejected_snapshot_record_leaves_its_offer_alone(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_snapshot_record_leaves_its_offer_alone_on_postgres() {
    a_rejected_snapshot_record_leaves_its_offer_alone(postgres().await).await;
}

/// An expired cursor (410) midway through the snapshot restarts its pass from the first page,
/// as a window's would (`supplier-feed-api.md`): the refresh completes and corrects against
/// the whole snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cursor_restarts_the_snapshot_pass() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let at = now - TimeDelta::minutes(5);
    let api = FeedApi::start(records(30, 1, at), TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("pull");
    // Six pages of 50; the cursors expire at the fourth request, which carries one: queued
    // ahead, not injected by a task watching the requests, which a fast pass could outrun
    // (all six pages read before it injected, and no 410 seen).
    api.set_snapshot(
        (0..300)
            .map(|n| FeedRecord { sku: format!("S-{n}"), quantity: n + 1, updated_at: at, sequence: None })
            .collect(),
    );
    let on_time = Fault::Slow(std::time::Duration::ZERO);
    api.inject([on_time.clone(), on_time.clone(), on_time, Fault::ExpireCursors]);
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, [], "{report:?}");
    let statuses: Vec<u16> = api.requests().iter().filter(|request| request.snapshot).map(|r| r.status).collect();
    assert!(statuses.contains(&410), "a cursor expired: {statuses:?}");
    let offers = fixture.offers(&key("acme")).await;
    for n in 0..300 {
        assert_eq!(offers.get(&format!("S-{n}")), Some(&(n + 1)), "S-{n}");
    }
    assert!(fixture.store.feed(&key("acme")).await.expect("feed").expect("known").initial_sync_completed);
    assert!(fixture.metric("catalog_feed_retries_total").contains("reason=\"cursor_expired\""));
}

/// A snapshot that lists a SKU twice is read as the rules read two events of one offer: the
/// newer record (updated_at, then sequence) gives the quantity, wherever it comes in the pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sku_the_snapshot_lists_twice_takes_its_newer_record() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let at = now - TimeDelta::hours(2);
    let record = |sku: &str, quantity: i64, minutes: i64, sequence: Option<u64>| FeedRecord {
        sku: sku.to_owned(),
        quantity,
        updated_at: at + TimeDelta::minutes(minutes),
        sequence,
    };
    let api = FeedApi::start(vec![record("A-1", 5, 0, None), record("B-2", 5, 0, None)], TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("pull");

    // The newer record first, the older after it: A-1 by time, B-2 by sequence.
    api.set_snapshot(vec![
        record("A-1", 9, 30, None),
        record("B-2", 8, 10, Some(2)),
        record("A-1", 3, 10, None),
        record("B-2", 4, 10, Some(1)),
    ]);
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    let offers: Vec<(String, i64)> = fixture.offers(&key("acme")).await.into_iter().collect();
    assert_eq!(offers, [("A-1".to_owned(), 9), ("B-2".to_owned(), 8)]);
}

/// A refresh cut short after its corrections were applied (here its completion fails): the
/// drift it found is recorded all the same, where it was recorded only at the end and lost,
/// and the next refresh finds the offers mended and records nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_cut_short_after_its_corrections_keeps_their_drift() {
    let fixture = postgres().await;
    let now = Utc::now();
    let at = now - TimeDelta::hours(2);
    let record =
        |sku: &str, quantity: i64| FeedRecord { sku: sku.to_owned(), quantity, updated_at: at, sequence: None };
    let api = FeedApi::start(vec![record("A-1", 5), record("B-2", 7)], TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("pull");
    api.set_snapshot(vec![record("A-1", 6), record("B-2", 7)]);
    fixture
        .database()
        .execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
             CREATE TRIGGER refuse_completion BEFORE UPDATE OF last_full_refresh_at ON feeds
             FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
        .await;
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed.len(), 1, "the completion failed: {report:?}");
    assert_eq!(fixture.offers(&key("acme")).await.get("A-1"), Some(&6), "corrected");
    assert_eq!(drift_lines(&fixture).await, ["A-1 Some(5) -> 6"], "recorded though the refresh did not complete");

    fixture.database().execute("DROP TRIGGER refuse_completion ON feeds").await;
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    assert_eq!(drift_lines(&fixture).await, ["A-1 Some(5) -> 6"], "mended: nothing found again");
    assert!(fixture.store.feed(&key("acme")).await.expect("feed").expect("known").initial_sync_completed);
}

/// Offers whose quantity took effect after the snapshot's `as_of` (pulled since, here two
/// hours after it): the snapshot does not know those changes, so they are no drift, and an
/// offer it does not list is not zeroed. An offer older than `as_of` is still corrected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_changed_after_the_snapshot_s_as_of_are_no_drift() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let record = |sku: &str, quantity: i64, hours_ago: i64| FeedRecord {
        sku: sku.to_owned(),
        quantity,
        updated_at: now - TimeDelta::hours(hours_ago),
        sequence: None,
    };
    let api = FeedApi::start(vec![record("A-1", 5, 1), record("C-3", 9, 1), record("D-4", 2, 5)], TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("pull");
    // As of three hours ago: A-1 was 4 then, C-3 not stocked, D-4 already 3.
    api.set_snapshot(vec![record("A-1", 4, 4), record("D-4", 3, 4)]);
    api.set_as_of(now - TimeDelta::hours(3));
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    let offers = fixture.offers(&key("acme")).await;
    assert_eq!((offers.get("A-1"), offers.get("C-3"), offers.get("D-4")), (Some(&5), Some(&9), Some(&3)), "{offers:?}");
    assert_eq!(drift_lines(&fixture).await, ["D-4 Some(2) -> 3"], "only the offer older than the snapshot");
}

/// A supplier's pushed `inventory.adjusted` of `sku` by `delta`, updated `at` (event `n`).
async fn push_adjustment(fixture: &Fixture, n: u64, sku: &str, delta: i64, at: chrono::DateTime<Utc>) {
    let raw = format!(
        r#"{{"event_id":"00000000-0000-0000-0000-{n:012}","type":"inventory.adjusted","tenant_id":"canary","supplier_id":"acme","sku":"{sku}","delta":{delta},"updated_at":"{}"}}"#,
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    let source = catalog_store::SourceRef { source: "pushed".into(), partition: 0, offset: n as i64 };
    let event = catalog_store::IncomingEvent::received(raw.into_bytes(), Utc::now(), source, None);
    fixture.store.apply_batch(&catalog_store::BatchInput::new(vec![event], vec![])).await.expect("apply");
}

/// An oversold offer (2 pulled, then 5 sold by pushed adjustments) shows 0, as the supplier's
/// snapshot of 0 does: the refresh still corrects it, since its deficit of 3 differs from the
/// snapshot, and the supplier's next +10 shows 10. Before, the two zeros matched, the deficit
/// outlived the refresh meant to reset it, and the +10 showed 7.
async fn an_oversold_offer_is_reset_by_a_refresh_that_lists_it_at_zero(fixture: Fixture) {
    let now = Utc::now();
    let api = FeedApi::start(vec![record_at("A-1", 2, now - TimeDelta::hours(2))], TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("pull");
    push_adjustment(&fixture, 1, "A-1", -5, now - TimeDelta::hours(1)).await;
    assert_eq!(fixture.offers(&key("acme")).await.get("A-1"), Some(&0), "oversold");

    api.set_snapshot(vec![record_at("A-1", 0, now - TimeDelta::minutes(30))]);
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    assert_eq!(drift_lines(&fixture).await, ["A-1 Some(-3) -> 0"]);

    push_adjustment(&fixture, 2, "A-1", 10, Utc::now()).await;
    assert_eq!(fixture.offers(&key("acme")).await.get("A-1"), Some(&10), "restocked from the snapshot's 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversold_offer_is_reset_by_a_refresh_that_lists_it_at_zero_on_sqlite() {
    an_oversold_offer_is_reset_by_a_refresh_that_lists_it_at_zero(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversold_offer_is_reset_by_a_refresh_that_lists_it_at_zero_on_postgres() {
    an_oversold_offer_is_reset_by_a_refresh_that_lists_it_at_zero(postgres().await).await;
}

/// A pushed adjustment after the snapshot's `as_of` is no difference: the offer is compared
/// as of the snapshot (2 there, as the supplier says), and the correction would keep the
/// adjustment anyway. Before, the offer's quantity now (1) was compared, and a drift that was
/// none was journaled and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adjustment_after_the_snapshot_s_as_of_is_no_drift() {
    let fixture = sqlite().await;
    let now = Utc::now();
    let api = FeedApi::start(vec![record_at("A-1", 2, now - TimeDelta::hours(2))], TOKEN).await;
    let source = fixture.source(quick_settings(), TOKEN);
    source.bootstrap(&[feed_settings("acme", &api, (now - TimeDelta::days(2)).date_naive())]).await.expect("bootstrap");
    source.run_once(OnceScope::Due, &CancellationToken::new()).await.expect("pull");
    push_adjustment(&fixture, 1, "A-1", -1, now - TimeDelta::minutes(30)).await;
    api.set_snapshot(vec![record_at("A-1", 2, now - TimeDelta::hours(2))]);
    api.set_as_of(now - TimeDelta::hours(1));
    let report = source.run_once(OnceScope::WithFullRefresh, &CancellationToken::new()).await.expect("refresh");
    assert_eq!(report.failed, []);
    assert_eq!(drift_lines(&fixture).await, Vec::<String>::new());
    assert_eq!(fixture.offers(&key("acme")).await.get("A-1"), Some(&1));
}
