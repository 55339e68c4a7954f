//! Contract cases of `FeedStore`: settings bootstrapped without touching state, windows
//! recorded once, pull dead letters opened, counted and resolved, and full refreshes
//! journaled with their drift.

use catalog_core::{StockChange, SupplierId, TenantId};
use chrono::{Duration, NaiveDate, NaiveTime};

use super::fixtures::*;
use crate::{
    CompletedWindow, FeedDrift, FeedKey, FeedRunKind, FeedRunRequest, FeedSettings, FullRefresh, PullFailure,
    StoreConfig, WindowKind, PULL_STAGE,
};

fn key(tenant: &str, supplier: &str) -> FeedKey {
    FeedKey {
        tenant: TenantId::parse(tenant).expect("valid tenant"),
        supplier: SupplierId::parse(supplier).expect("valid supplier"),
    }
}

pub(super) fn settings(tenant: &str, supplier: &str) -> FeedSettings {
    FeedSettings {
        key: key(tenant, supplier),
        base_url: "http://127.0.0.1:1".to_owned(),
        token_env: "ACME_FEED_TOKEN".to_owned(),
        go_live_date: NaiveDate::from_ymd_opt(2026, 5, 1).expect("date"),
        sync_frequency_hours: 6,
        timezone: "Europe/Berlin".to_owned(),
        run_times: ["00:00", "06:30"]
            .iter()
            .map(|time| NaiveTime::parse_from_str(time, "%H:%M").expect("time"))
            .collect(),
        requests_per_second: Some(5),
        sync_enabled: true,
    }
}

pub(super) async fn feed_settings_are_bootstrapped_and_state_is_kept<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = settings("canary", "acme");
    store.upsert_feed(&acme).await.expect("upsert");
    store.upsert_feed(&settings("canary", "zeta")).await.expect("upsert");
    let feeds = store.feeds().await.expect("feeds");
    assert_eq!(feeds.len(), 2);
    assert_eq!(feeds[0].settings, acme, "every setting comes back as stored");
    assert_eq!((feeds[0].last_sync_at, feeds[0].initial_sync_completed), (None, false));

    let window = CompletedWindow {
        kind: WindowKind::Backfill,
        since: base(),
        until: base() + Duration::days(7),
        completed_at: base() + Duration::days(8),
        n_records: 12,
        n_pages: 3,
        n_windows: 1,
        requested_at: None,
    };
    store.complete_window(&acme.key, &window).await.expect("complete");
    store.complete_window(&acme.key, &window).await.expect("completing again changes nothing");
    let earlier = CompletedWindow { kind: WindowKind::Incremental, completed_at: base(), ..window.clone() };
    store.complete_window(&acme.key, &earlier).await.expect("complete");
    assert_eq!(store.feed_windows(&acme.key).await.expect("windows"), [window.clone(), earlier.clone()]);
    // Pulled again for a manual run, a window takes the run's stamp and keeps the rest;
    // pulled again by scheduled work, it keeps the stamp.
    let requested_at = Some(base() + Duration::days(9));
    let again =
        CompletedWindow { completed_at: base() + Duration::days(10), n_records: 1, requested_at, ..window.clone() };
    store.complete_window(&acme.key, &again).await.expect("complete for a request");
    store.complete_window(&acme.key, &window).await.expect("complete by scheduled work");
    let stamped = CompletedWindow { requested_at, ..window.clone() };
    assert_eq!(store.feed_windows(&acme.key).await.expect("windows"), [stamped, earlier]);

    // An operator switches it off; the file's next bootstrap changes settings, not that.
    assert!(store.set_feed_sync(&acme.key, false).await.expect("switch"));
    assert!(!store.set_feed_sync(&key("canary", "nobody"), false).await.expect("switch"));
    let changed = FeedSettings { base_url: "http://127.0.0.1:2".to_owned(), ..acme.clone() };
    store.upsert_feed(&changed).await.expect("upsert");
    let stored = store.feed(&acme.key).await.expect("feed").expect("known feed");
    assert_eq!(stored.settings, FeedSettings { sync_enabled: false, ..changed });
    assert_eq!(stored.last_sync_at, Some(again.completed_at), "the newest completion, never moved back");
    assert!(store.feed(&key("canary", "nobody")).await.expect("feed").is_none());
}

pub(super) async fn a_manual_run_request_waits_until_the_worker_clears_it<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = settings("canary", "acme");
    store.upsert_feed(&acme).await.expect("upsert");
    assert_eq!(store.feed(&acme.key).await.expect("feed").expect("known").run_request, None);
    let first =
        FeedRunRequest { kind: FeedRunKind::FullRefresh, requested_by: "otto".to_owned(), requested_at: base() };
    assert!(store.request_feed_run(&acme.key, &first).await.expect("request"));
    assert!(!store.request_feed_run(&key("canary", "nobody"), &first).await.expect("request"), "an unknown feed");
    assert_eq!(store.feed(&acme.key).await.expect("feed").expect("known").run_request.as_ref(), Some(&first));

    // A newer request replaces the waiting one; clearing the one that ran leaves it.
    let range = FeedRunKind::Backfill { since: base() - Duration::days(14), until: base() - Duration::days(7) };
    let second =
        FeedRunRequest { kind: range, requested_by: "olga".to_owned(), requested_at: base() + Duration::seconds(5) };
    assert!(store.request_feed_run(&acme.key, &second).await.expect("request"));
    assert!(!store.clear_feed_run(&acme.key, first.requested_at).await.expect("clear"), "not the waiting one");
    let stored = store.feed(&acme.key).await.expect("feed").expect("known");
    assert_eq!(stored.run_request.as_ref(), Some(&second), "the range comes back as asked");
    assert!(store.clear_feed_run(&acme.key, second.requested_at).await.expect("clear"));
    assert_eq!(store.feed(&acme.key).await.expect("feed").expect("known").run_request, None);
    assert!(!store.clear_feed_run(&acme.key, second.requested_at).await.expect("clear"), "nothing waits");
    assert_eq!(store.feed(&acme.key).await.expect("feed").expect("known").settings, acme, "settings untouched");
}

pub(super) async fn a_feeds_journal_is_counted_per_day_of_reception<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = key("canary", "acme");
    let abc = offer("canary", "acme", "ABC-1");
    let from_feed = |mut event: crate::IncomingEvent| {
        event.source.source = acme.source_name().into();
        event
    };
    // Day one (base): two records, one stale behind the newer; a record with a quantity
    // below zero (rejected, naming the tenant);
    // an event of another source. Day two: the first record pulled again (a duplicate).
    let day = Duration::days(1).num_seconds();
    let events = vec![
        from_feed(incoming(1, &abc, StockChange::Updated { quantity: 5 }, 10, 0)),
        from_feed(incoming(2, &abc, StockChange::Updated { quantity: 3 }, 5, 1)),
        from_feed(raw_incoming(3, br#"{"event_id":"00000000-0000-0000-0000-000000000003","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"ABC-1","quantity":-4,"updated_at":"2026-06-01T00:00:00Z"}"#.to_vec(), 2)),
        incoming(4, &offer("canary", "acme", "XYZ-9"), StockChange::Updated { quantity: 1 }, 0, 3),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let again = vec![from_feed(incoming(1, &abc, StockChange::Updated { quantity: 5 }, 10, day + 60))];
    store.apply_batch(&batch(again)).await.expect("apply");

    let days = store.feed_journal_by_day(&acme, base() - Duration::days(1)).await.expect("days");
    let shown: Vec<String> =
        days.iter().map(|day| format!("{} {:?} redeliveries {}", day.date, day.by_outcome, day.redeliveries)).collect();
    let first = base().date_naive();
    assert_eq!(
        shown,
        [format!("{first} {{\"applied\": 1, \"rejected\": 1, \"stale\": 1}} redeliveries 1")],
        "one day of first receptions; the redelivery counts on the first row, not as a day"
    );
    assert!(store.feed_journal_by_day(&acme, base() + Duration::days(1)).await.expect("days").is_empty());
    assert!(store
        .feed_journal_by_day(&key("canary", "zeta"), base() - Duration::days(1))
        .await
        .expect("days")
        .is_empty());
}

pub(super) async fn a_pull_failure_opens_one_dead_letter_until_a_run_completes<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = settings("canary", "acme");
    store.upsert_feed(&acme).await.expect("upsert");
    let failure = PullFailure {
        key: acme.key.clone(),
        reason: "http_401".to_owned(),
        error: "the feed refused the token".to_owned(),
        body: Some("{\"error\":\"unauthorized\"}".to_owned()),
        supplier_hold_until: None,
    };
    let first = store.record_pull_failure(&failure).await.expect("record");
    let again = store.record_pull_failure(&PullFailure { body: None, ..failure.clone() }).await.expect("record");
    assert_eq!(first, again, "one open letter per feed");
    let letter = store.dead_letter(first).await.expect("read").expect("the letter");
    assert_eq!((letter.stage.as_str(), letter.subject.as_str(), letter.attempts), (PULL_STAGE, "canary/acme", 2));
    assert_eq!(letter.body, failure.body, "the same failure without a body keeps the one it had");
    // Another failure: the letter tells it, and no body of the one before stays beside it.
    let timeout = PullFailure {
        reason: "timeout".to_owned(),
        error: "the feed did not answer".to_owned(),
        body: None,
        ..failure.clone()
    };
    assert_eq!(store.record_pull_failure(&timeout).await.expect("record"), first);
    let letter = store.dead_letter(first).await.expect("read").expect("the letter");
    assert_eq!((letter.reason.as_str(), letter.body.as_deref(), letter.attempts), ("timeout", None, 3));
    let zeta = settings("canary", "zeta");
    store.upsert_feed(&zeta).await.expect("upsert");
    let zeta_letter = store.record_pull_failure(&PullFailure { key: zeta.key.clone(), ..timeout.clone() }).await;
    let open_ids = |letters: Vec<crate::DeadLetter>| -> Vec<(i64, String)> {
        letters.into_iter().map(|letter| (letter.dead_letter_id, letter.subject)).collect()
    };
    let open = open_ids(store.open_pull_dead_letters().await.expect("open letters"));
    let zeta_letter = zeta_letter.expect("record");
    assert_eq!(open, vec![(first, "canary/acme".to_owned()), (zeta_letter, "canary/zeta".to_owned())]);
    assert!(store.resolve_pull_failure(&acme.key).await.expect("resolve"));
    let open = open_ids(store.open_pull_dead_letters().await.expect("open letters"));
    assert_eq!(open, vec![(zeta_letter, "canary/zeta".to_owned())], "a resolved letter is not open");
    assert!(!store.resolve_pull_failure(&acme.key).await.expect("resolve"), "nothing left open");
    let letter = store.dead_letter(first).await.expect("read").expect("the letter");
    assert_eq!(letter.resolution.as_deref(), Some("pulled"));
    assert_ne!(store.record_pull_failure(&failure).await.expect("record"), first, "a new failure, a new letter");
    // A feed's letters are its tenant's: listed and counted under its name (they name no
    // item), and under no other's, not even one its name begins with.
    let of = |tenant: &str| crate::DeadLetterFilter {
        tenant: Some(TenantId::parse(tenant).expect("tenant")),
        stage: Some(PULL_STAGE.to_owned()),
        limit: 10,
        ..crate::DeadLetterFilter::default()
    };
    let canary = store.dead_letters(&of("canary")).await.expect("list");
    assert_eq!(canary.len(), 3, "every letter of canary's feeds: {canary:?}");
    assert_eq!(store.count_dead_letters(&of("canary")).await.expect("count"), 3);
    assert_eq!(store.dead_letters(&of("canar")).await.expect("list"), [], "another tenant's");
    assert_eq!(store.count_dead_letters(&of("other")).await.expect("count"), 0);
}

pub(super) async fn a_supplier_s_hold_is_kept_with_the_feed<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let (acme, zeta) = (settings("canary", "acme"), settings("canary", "zeta"));
    store.upsert_feed(&acme).await.expect("upsert");
    store.upsert_feed(&zeta).await.expect("upsert");
    let hold_of = |key: FeedKey| {
        let store = &store;
        async move { store.feed(&key).await.expect("read").expect("the feed").supplier_hold_until }
    };
    assert_eq!(hold_of(acme.key.clone()).await, None, "no hold until a supplier asks");
    let throttled = |until| PullFailure {
        key: acme.key.clone(),
        reason: "throttled".to_owned(),
        error: "the feed asked for an hour's wait".to_owned(),
        body: None,
        supplier_hold_until: until,
    };
    let hour = base() + Duration::hours(1);
    store.record_pull_failure(&throttled(Some(hour))).await.expect("record");
    assert_eq!(hold_of(acme.key.clone()).await, Some(hour));
    assert_eq!(hold_of(zeta.key.clone()).await, None, "another feed's");
    store.record_pull_failure(&throttled(Some(base()))).await.expect("record");
    store.record_pull_failure(&throttled(None)).await.expect("record");
    assert_eq!(hold_of(acme.key.clone()).await, Some(hour), "a shorter ask or another failure shortens nothing");
    let two_hours = base() + Duration::hours(2);
    store.record_pull_failure(&throttled(Some(two_hours))).await.expect("record");
    assert_eq!(hold_of(acme.key.clone()).await, Some(two_hours), "a longer ask lengthens it");
    store.upsert_feed(&acme).await.expect("settings again");
    assert_eq!(hold_of(acme.key.clone()).await, Some(two_hours), "settings bootstrapped again keep it");
}

pub(super) async fn a_full_refresh_journals_its_drift_and_completes_the_initial_sync<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = settings("canary", "acme");
    store.upsert_feed(&acme).await.expect("upsert");
    let events = vec![
        incoming(1, &offer("canary", "acme", "B-2"), StockChange::Updated { quantity: 4 }, 0, 0),
        incoming(2, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 7 }, 0, 1),
        incoming(3, &offer("canary", "other", "A-1"), StockChange::Updated { quantity: 1 }, 0, 2),
        // Oversold: 2, then 5 sold. It shows 0, and owes 3.
        incoming(4, &offer("canary", "acme", "D-4"), StockChange::Updated { quantity: 2 }, 0, 3),
        incoming(5, &offer("canary", "acme", "D-4"), StockChange::Adjusted { delta: -5 }, 1, 4),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let offers = store.feed_offers(&acme.key).await.expect("offers");
    let found: Vec<_> = offers
        .iter()
        .map(|offer| {
            let (unclamped, before_the_sale) =
                (offer.state.unclamped_quantity(), offer.state.unclamped_quantity_as_of(base()));
            let effective_at = offer.state.snapshot().map(|snapshot| snapshot.key.effective_at);
            (offer.sku.to_string(), offer.state.quantity(), unclamped, before_the_sale, effective_at)
        })
        .collect();
    let expected = [("A-1", 7, 7, 7), ("B-2", 4, 4, 4), ("D-4", 0, -3, 2)]
        .map(|(sku, quantity, unclamped, as_of)| (sku.to_owned(), quantity, unclamped, as_of, Some(base())));
    assert_eq!(found, expected, "the feed's own offers, by SKU, with their state and when their quantity took effect");

    let drift = |sku: &str, stored: Option<i64>, supplier: i64| FeedDrift {
        sku: catalog_core::Sku::parse(sku).expect("sku"),
        stored,
        supplier,
        as_of: base() + Duration::hours(1),
    };
    let refresh = FullRefresh {
        key: acme.key.clone(),
        as_of: base() + Duration::hours(1),
        completed_at: base() + Duration::hours(2),
    };
    let found_drift = vec![drift("A-1", Some(7), 9), drift("C-3", None, 2)];
    store.record_feed_drifts(&acme.key, &found_drift, refresh.completed_at).await.expect("drift");
    store.complete_full_refresh(&refresh).await.expect("refresh");
    let feed = store.feed(&acme.key).await.expect("feed").expect("known");
    assert!(feed.initial_sync_completed);
    assert_eq!(feed.last_full_refresh_at, Some(refresh.completed_at));
    let drifts = store.feed_drifts(&acme.key, 10).await.expect("drifts");
    let mut found: Vec<FeedDrift> = drifts.iter().map(|record| record.drift.clone()).collect();
    found.sort_by(|a, b| a.sku.cmp(&b.sku));
    assert_eq!(found, found_drift);
    assert!(drifts.iter().all(|record| record.detected_at == refresh.completed_at && record.key == acme.key));
    assert_eq!(store.feed_drifts(&acme.key, 1).await.expect("drifts").len(), 1);

    // A refresh that records its drift a chunk at a time, then completes with none of its own.
    let later = base() + Duration::hours(5);
    store.record_feed_drifts(&acme.key, &[drift("D-4", Some(1), 0)], later).await.expect("a chunk");
    store.record_feed_drifts(&acme.key, &[], later).await.expect("an empty chunk");
    store.record_feed_drifts(&acme.key, &[drift("E-5", None, 3)], later).await.expect("a chunk");
    let completed = FullRefresh { completed_at: later, ..refresh.clone() };
    store.complete_full_refresh(&completed).await.expect("refresh");
    let newest = store.feed_drifts(&acme.key, 10).await.expect("drifts");
    let recorded: Vec<&str> =
        newest.iter().filter(|record| record.detected_at == later).map(|record| record.drift.sku.as_str()).collect();
    assert_eq!(recorded.len(), 2, "{newest:?}");
    assert!(recorded.contains(&"D-4") && recorded.contains(&"E-5"), "{recorded:?}");
    assert_eq!(newest.len(), 4, "nothing recorded twice");
}
