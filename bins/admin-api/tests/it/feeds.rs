//! Supplier feeds through the admin API: status with gaps, pulls per day and the last full
//! refresh's drift; the switch for operators only, audited, and what the worker then reads.

use catalog_core::{Sku, SupplierId, TenantId};
use catalog_store::{CompletedWindow, FeedDrift, FeedKey, FeedSettings, FullRefresh, Role, WindowKind};
use chrono::{Duration, NaiveTime, Utc};
use reqwest::Method;
use serde_json::json;

use crate::page::page;
use crate::Server;

fn key() -> FeedKey {
    FeedKey { tenant: TenantId::parse("canary").expect("valid"), supplier: SupplierId::parse("acme").expect("valid") }
}

/// Feed `acme` of `canary` going live on `go_live_date`, pulled every 6 hours at midnight UTC.
fn midnight_feed(go_live_date: chrono::NaiveDate) -> FeedSettings {
    FeedSettings {
        key: key(),
        base_url: "http://127.0.0.1:1".to_owned(),
        token_env: "ACME_FEED_TOKEN".to_owned(),
        go_live_date,
        sync_frequency_hours: 6,
        timezone: "UTC".to_owned(),
        run_times: vec![NaiveTime::from_hms_opt(0, 0, 0).expect("valid")],
        requests_per_second: None,
        sync_enabled: true,
    }
}

async fn feeds_show_their_status_and_operators_switch_them(server: Server) {
    let viewer = server.token("vera", Role::Viewer).await;
    let operator = server.token("otto", Role::Operator).await;
    let now = Utc::now();
    let go_live_date = (now - Duration::days(20)).date_naive();
    let settings = FeedSettings {
        run_times: vec![
            NaiveTime::from_hms_opt(0, 0, 0).expect("valid"),
            NaiveTime::from_hms_opt(12, 0, 0).expect("valid"),
        ],
        ..midnight_feed(go_live_date)
    };
    server.store.upsert_feed(&settings).await.expect("feed");
    let never = server.get_json(&viewer, "/v1/tenants/canary/feeds/acme").await;
    assert_eq!((never["state"].clone(), never["gaps"].as_array().map(Vec::len)), (json!("stale"), Some(1)));
    assert_eq!(never["days_behind"], 20);

    // The first week backfilled, the last two days pulled incrementally: one gap between.
    let go_live = go_live_date.and_hms_opt(0, 0, 0).expect("valid").and_utc();
    let windows = [
        (WindowKind::Backfill, go_live, go_live + Duration::days(7), 1_200),
        (WindowKind::Incremental, now - Duration::days(2), now - Duration::hours(1), 300),
    ];
    for (kind, since, until, n_records) in windows {
        let window = CompletedWindow {
            kind,
            since,
            until,
            completed_at: until,
            n_records,
            n_pages: 2,
            n_windows: 1,
            requested_at: None,
        };
        server.store.complete_window(&key(), &window).await.expect("window");
    }
    let refresh =
        FullRefresh { key: key(), as_of: now - Duration::minutes(30), completed_at: now - Duration::minutes(30) };
    let drift =
        FeedDrift { sku: Sku::parse("ABC-1").expect("valid"), stored: Some(12), supplier: 7, as_of: refresh.as_of };
    server.store.record_feed_drifts(&key(), &[drift], refresh.completed_at).await.expect("drift");
    server.store.complete_full_refresh(&refresh).await.expect("refresh");

    let feed = server.get_json(&viewer, "/v1/tenants/canary/feeds/acme").await;
    assert_eq!(feed["state"], "current");
    assert_eq!(feed["token_env"], "ACME_FEED_TOKEN");
    assert_eq!(feed["run_times"], json!(["00:00", "12:00"]));
    assert_eq!(feed["windows_completed"], 2);
    let gaps = feed["gaps"].as_array().expect("gaps");
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["days_behind"], 13);
    assert_eq!(feed["initial_sync_completed"], true);
    assert_eq!(feed["last_refresh_drift"][0]["sku"], "ABC-1");
    assert_eq!(
        (feed["last_refresh_drift"][0]["stored"].clone(), feed["last_refresh_drift"][0]["supplier"].clone()),
        (json!(12), json!(7))
    );
    let records: u64 =
        feed["pulled_by_day"].as_array().expect("days").iter().map(|day| day["records"].as_u64().expect("valid")).sum();
    assert_eq!(records, 1_500);
    assert_eq!(server.get_json(&viewer, "/v1/feeds").await.as_array().map(Vec::len), Some(1));
    assert_eq!(feed["failing"], json!(null), "no run failed");

    // A run fails after the window above: the feed is still `current` by its windows, and
    // says it is failing, with why, until a run completes.
    let failure = catalog_store::PullFailure {
        key: key(),
        reason: "http_401".to_owned(),
        error: "the feed refused the token".to_owned(),
        body: Some("{\"error\":\"unauthorized\"}".to_owned()),
        supplier_hold_until: None,
    };
    let letter = server.store.record_pull_failure(&failure).await.expect("record");
    server.store.record_pull_failure(&failure).await.expect("record");
    let feed = server.get_json(&viewer, "/v1/tenants/canary/feeds/acme").await;
    assert_eq!(feed["state"], "current");
    assert_eq!(
        (
            feed["failing"]["dead_letter_id"].clone(),
            feed["failing"]["reason"].clone(),
            feed["failing"]["attempts"].clone()
        ),
        (json!(letter), json!("http_401"), json!(2))
    );
    assert_eq!(server.get_json(&viewer, "/v1/feeds").await[0]["failing"]["reason"], "http_401");
    let html = page(&server, &viewer, "/feeds").await;
    assert!(html.contains("Failing: 2 runs failed since"), "the page says the feed fails: {html}");
    assert!(html.contains("unauthorized"), "with the feed's answer");
    assert_eq!(feed["supplier_hold_until"], json!(null), "a refusal asks for no wait");
    // The supplier then asks for an hour: the feed says until when nothing is asked of it.
    let until = chrono::Utc::now() + chrono::Duration::hours(1);
    let throttled = catalog_store::PullFailure {
        reason: "throttled".to_owned(),
        supplier_hold_until: Some(until),
        ..failure.clone()
    };
    server.store.record_pull_failure(&throttled).await.expect("record");
    let feed = server.get_json(&viewer, "/v1/tenants/canary/feeds/acme").await;
    let shown: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(feed["supplier_hold_until"].clone()).expect("the supplier's hold");
    assert!((shown - until).num_milliseconds().abs() < 1, "{shown} against {until}");
    let html = page(&server, &viewer, "/feeds").await;
    assert!(html.contains("The supplier asked not to be asked before"), "the page says so: {html}");
    // The dead letters' list names the feed, and an operator's retry of it is a run of the feed.
    let html = page(&server, &operator, "/dead-letters").await;
    assert!(html.contains(r#"href="/feeds#feed-canary-acme""#), "the letter links to its feed: {html}");
    assert!(html.contains("Pull now for feed acme of canary"), "its retry is a run of the feed: {html}");
    assert!(!html.contains(&format!("Retry dead letter {letter}")), "no item to requeue: {html}");
    let retry = server.send(Method::POST, &operator, &format!("/v1/dead-letters/{letter}/retry"), json!({})).await;
    assert_eq!(retry.status(), 409);
    let refusal: serde_json::Value = retry.json().await.expect("json");
    assert!(
        refusal["message"].as_str().is_some_and(|message| message.contains("failed run of feed canary/acme")),
        "{refusal}"
    );
    assert!(server.store.resolve_pull_failure(&key()).await.expect("resolve"));
    let feed = server.get_json(&viewer, "/v1/tenants/canary/feeds/acme").await;
    assert_eq!(feed["failing"], json!(null), "a run that completes resolves it");
    assert_eq!(server.get(&viewer, "/v1/tenants/canary/feeds/zeta").await.status(), 404);
    assert_eq!(server.get(&viewer, "/v1/tenants/canary/feeds/not%20valid").await.status(), 400);

    let switch = json!({ "enabled": false });
    let refused = server.send(Method::PUT, &viewer, "/v1/tenants/canary/feeds/acme/sync", switch.clone()).await;
    assert_eq!(refused.status(), 403, "a viewer may not switch a feed");
    let missing = server.send(Method::PUT, &operator, "/v1/tenants/canary/feeds/zeta/sync", switch.clone()).await;
    assert_eq!(missing.status(), 404);
    let off = server.send(Method::PUT, &operator, "/v1/tenants/canary/feeds/acme/sync", switch).await;
    assert_eq!(off.status(), 200);
    assert_eq!(off.json::<serde_json::Value>().await.expect("json"), json!({ "before": true, "after": false }));
    let stored = server.store.feed(&key()).await.expect("read").expect("feed");
    assert!(!stored.settings.sync_enabled, "the worker reads the switch from the store");
    let audit = server.get_json(&viewer, "/v1/audit").await;
    assert_eq!(audit[0]["action"], "feed.sync");
    assert_eq!(audit[0]["target"], "feed/canary/acme");
    assert_eq!(
        (audit[0]["before"].clone(), audit[0]["after"].clone()),
        (json!({ "sync_enabled": true }), json!({ "sync_enabled": false }))
    );
    // Switched off, it runs nothing: a run asked for is refused, not promised, and the page
    // offers none.
    let runs = "/v1/tenants/canary/feeds/acme/runs";
    let refused = server.send(Method::POST, &operator, runs, json!({ "kind": "incremental" })).await;
    assert_eq!(refused.status(), 409);
    let refused: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(refused["code"], "feed_off", "{refused}");
    assert_eq!(server.store.feed(&key()).await.expect("read").expect("feed").run_request, None, "nothing asked");
    let html = page(&server, &operator, "/feeds").await;
    assert!(html.contains("Switched off: the worker runs nothing of it"), "{html}");
    assert!(!html.contains(r#"action="/page/feeds/runs""#), "no run an operator would be refused: {html}");
    // Nor does its dead letter's row.
    server.store.record_pull_failure(&failure).await.expect("record");
    let html = page(&server, &operator, "/dead-letters").await;
    assert!(html.contains("Switched off: switch it on on the"), "{html}");
    assert!(!html.contains("Pull now for feed acme of canary"), "{html}");
    assert!(server.store.resolve_pull_failure(&key()).await.expect("resolve"));
    let on =
        server.send(Method::PUT, &operator, "/v1/tenants/canary/feeds/acme/sync", json!({ "enabled": true })).await;
    assert_eq!(on.status(), 200);

    // Manual runs: operators only, checked, the newest replaces one waiting, audited.
    let full = json!({ "kind": "full_refresh" });
    assert_eq!(server.send(Method::POST, &viewer, runs, full.clone()).await.status(), 403);
    let unknown = server.send(Method::POST, &operator, "/v1/tenants/canary/feeds/zeta/runs", full.clone()).await;
    assert_eq!(unknown.status(), 404);
    for (bad, why) in [
        (json!({ "kind": "backfill" }), "a backfill without a range"),
        (
            json!({ "kind": "backfill", "since": "2026-05-10T00:00:00Z", "until": "2026-05-01T00:00:00Z" }),
            "a range backwards",
        ),
        (
            json!({ "kind": "backfill", "since": "2026-05-10T00:00:00Z", "until": "2999-01-01T00:00:00Z" }),
            "a range into the future",
        ),
        (json!({ "kind": "incremental", "since": "2026-05-10T00:00:00Z" }), "a range on an incremental"),
        (json!({ "kind": "everything" }), "an unknown kind"),
    ] {
        let answer = server.send(Method::POST, &operator, runs, bad).await;
        assert_eq!(answer.status(), 400, "{why}");
        assert_eq!(answer.json::<serde_json::Value>().await.expect("json")["code"], "invalid_run", "{why}");
    }
    let asked = server.send(Method::POST, &operator, runs, full).await;
    assert_eq!(asked.status(), 202);
    let asked: serde_json::Value = asked.json().await.expect("json");
    assert_eq!((asked["request"]["kind"].clone(), asked["replaced"].clone()), (json!("full_refresh"), json!(null)));
    let range = json!({ "kind": "backfill", "since": "2026-05-01T00:00:00Z", "until": "2026-05-08T00:00:00Z" });
    let replaced: serde_json::Value =
        server.send(Method::POST, &operator, runs, range).await.json().await.expect("json");
    assert_eq!(replaced["replaced"]["kind"], "full_refresh", "the waiting request is replaced, and says so");
    let feed = server.get_json(&viewer, "/v1/tenants/canary/feeds/acme").await;
    assert_eq!(feed["run_request"]["kind"], "backfill");
    assert_eq!(feed["run_request"]["since"], "2026-05-01T00:00:00Z");
    assert_eq!(feed["run_request"]["requested_by"], "otto");
    let stored = server.store.feed(&key()).await.expect("read").expect("feed").run_request.expect("waiting");
    assert!(matches!(stored.kind, catalog_store::FeedRunKind::Backfill { .. }), "the worker reads it from the store");
    let audit = server.get_json(&viewer, "/v1/audit").await;
    assert_eq!(
        (audit[0]["action"].clone(), audit[0]["target"].clone()),
        (json!("feed.run"), json!("feed/canary/acme"))
    );

    let html = page(&server, &viewer, "/feeds").await;
    assert!(html.contains("Feed acme of canary") && html.contains("ABC-1"), "the page shows the feed and its drift");
    assert!(!html.contains("Switch pulling"), "a viewer sees no switch");
    assert!(html.contains("not yet run: backfill"), "the waiting request shows");
    assert!(!html.contains("/page/feeds/runs"), "a viewer asks for no run");
    assert!(page(&server, &operator, "/feeds").await.contains("Switch pulling off for feed acme of canary"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_show_their_status_and_operators_switch_them_on_sqlite() {
    feeds_show_their_status_and_operators_switch_them(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_show_their_status_and_operators_switch_them_on_postgres() {
    feeds_show_their_status_and_operators_switch_them(Server::postgres().await).await;
}

/// A feed configured ahead of its go-live date (decision 0054) is `not_live`, with no gap, on
/// the API and the page; a manual run asked for it is refused, 409 `not_live`, since the
/// worker pulls nothing of it before it goes live.
async fn a_feed_not_live_yet_says_so_and_refuses_a_manual_run(server: Server) {
    let viewer = server.token("vera", Role::Viewer).await;
    let operator = server.token("otto", Role::Operator).await;
    let settings = midnight_feed((Utc::now() + Duration::days(3)).date_naive());
    server.store.upsert_feed(&settings).await.expect("feed");
    let feed = server.get_json(&viewer, "/v1/tenants/canary/feeds/acme").await;
    assert_eq!((feed["state"].clone(), feed["gaps"].as_array().map(Vec::len)), (json!("not_live"), Some(0)));
    let runs = "/v1/tenants/canary/feeds/acme/runs";
    let refused = server.send(Method::POST, &operator, runs, json!({ "kind": "full_refresh" })).await;
    assert_eq!(refused.status(), 409);
    let refused: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(refused["code"], "not_live", "{refused}");
    assert!(refused["message"].as_str().expect("message").contains("goes live"), "{refused}");
    assert_eq!(server.store.feed(&key()).await.expect("read").expect("feed").run_request, None, "nothing asked");
    let html = page(&server, &viewer, "/feeds").await;
    assert!(html.contains("<td><strong>not_live</strong></td>"), "the state cell says so: {html}");
    let go_live = settings.go_live_date;
    assert!(html.contains(&format!("not live until {go_live}.")), "and the feed's section: {html}");
    let html = page(&server, &operator, "/feeds").await;
    assert!(html.contains("Switch pulling off for feed acme of canary"), "the switch stays: {html}");
    assert!(!html.contains("/page/feeds/runs"), "no run an operator would be refused: {html}");
    assert!(!html.contains("No gaps: every window since going live"), "nothing claimed pulled: {html}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_not_live_yet_says_so_and_refuses_a_manual_run_on_sqlite() {
    a_feed_not_live_yet_says_so_and_refuses_a_manual_run(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_not_live_yet_says_so_and_refuses_a_manual_run_on_postgres() {
    a_feed_not_live_yet_says_so_and_refuses_a_manual_run(Server::postgres().await).await;
}

/// The page's backfill form names days, both included: through today reaches up to now, a
/// single day is that day, and a range it cannot run is said on the page, not answered as
/// JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_s_backfill_takes_days_both_included() {
    let server = Server::sqlite().await;
    let operator = server.token("otto", Role::Operator).await;
    let settings = midnight_feed((Utc::now() - Duration::days(20)).date_naive());
    server.store.upsert_feed(&settings).await.expect("feed");
    let client = crate::not_following();
    let ask = |since: String, until: String| {
        let form = [
            ("tenant", "canary".to_owned()),
            ("supplier", "acme".to_owned()),
            ("kind", "backfill".to_owned()),
            ("since", since),
            ("until", until),
        ];
        client
            .post(server.url("/page/feeds/runs"))
            .header("cookie", format!("admin_token={operator}"))
            .form(&form)
            .send()
    };
    let today = chrono::Utc::now().date_naive();
    let asked = ask((today - chrono::Days::new(1)).to_string(), today.to_string()).await.expect("request");
    assert_eq!(asked.status(), 303);
    let request = server.store.feed(&key()).await.expect("read").expect("feed").run_request.expect("waiting");
    let catalog_store::FeedRunKind::Backfill { since, until } = request.kind else { panic!("{request:?}") };
    assert_eq!(since, (today - chrono::Days::new(1)).and_time(chrono::NaiveTime::MIN).and_utc());
    assert!(until > today.and_time(chrono::NaiveTime::MIN).and_utc(), "today is in: {until}");
    assert!(until <= chrono::Utc::now(), "not in the future: {until}");

    let day = today - chrono::Days::new(3);
    ask(day.to_string(), day.to_string()).await.expect("request");
    let request = server.store.feed(&key()).await.expect("read").expect("feed").run_request.expect("waiting");
    let one_day = catalog_store::FeedRunKind::Backfill {
        since: day.and_time(chrono::NaiveTime::MIN).and_utc(),
        until: (day + chrono::Days::new(1)).and_time(chrono::NaiveTime::MIN).and_utc(),
    };
    assert_eq!(request.kind, one_day, "the one day asked for");

    // Another run asked for gives the waiting backfill up: the confirmation and the notice
    // say so, where "Asked for a incremental run" said nothing of a colleague's backfill.
    let html = page(&server, &operator, "/feeds").await;
    assert!(
        html.contains("Pull now for feed acme of canary? It replaces a backfill run otto asked for, not yet done."),
        "{html}"
    );
    let pulled = client
        .post(server.url("/page/feeds/runs"))
        .header("cookie", format!("admin_token={operator}"))
        .form(&[("tenant", "canary"), ("supplier", "acme"), ("kind", "incremental")])
        .send()
        .await
        .expect("request");
    let location = pulled.headers()["location"].to_str().expect("ascii").to_owned();
    let html = page(&server, &operator, &location).await;
    assert!(html.contains("Asked for an incremental run of feed canary/acme"), "{html}");
    assert!(html.contains("It replaces a backfill run otto asked for at "), "{html}");
    ask(day.to_string(), day.to_string()).await.expect("request");

    let backwards = ask(today.to_string(), day.to_string()).await.expect("request");
    assert_eq!(backwards.status(), 303, "said on the page");
    let location = backwards.headers()["location"].to_str().expect("ascii").to_owned();
    let html = page(&server, &operator, &location).await;
    assert!(html.contains("No run asked for: a backfill needs since before until"), "{html}");
}

/// A manual run of a feed not live yet is refused on the page, as a notice, not answered as
/// JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_a_feed_not_live_is_refused_on_the_page() {
    let server = Server::sqlite().await;
    let operator = server.token("otto", Role::Operator).await;
    let settings = midnight_feed((Utc::now() + Duration::days(3)).date_naive());
    server.store.upsert_feed(&settings).await.expect("feed");
    let client = crate::not_following();
    let refused = client
        .post(server.url("/page/feeds/runs"))
        .header("cookie", format!("admin_token={operator}"))
        .form(&[("tenant", "canary"), ("supplier", "acme"), ("kind", "incremental")])
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 303, "a page, not JSON");
    let location = refused.headers()["location"].to_str().expect("ascii").to_owned();
    let html = page(&server, &operator, &location).await;
    assert!(html.contains("No run asked for: feed canary/acme goes live at"), "{html}");
    assert_eq!(server.store.feed(&key()).await.expect("read").expect("feed").run_request, None, "none asked for");
}

/// A backfill through the last day chrono knows (`+262142-12-31`) is refused on the page as
/// a notice: the day after it was added unchecked, and the handler panicked. A year of more
/// than four digits is refused too, as the API refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_s_backfill_refuses_a_date_out_of_range_without_panicking() {
    let server = Server::sqlite().await;
    let operator = server.token("otto", Role::Operator).await;
    server.store.upsert_feed(&midnight_feed((Utc::now() - Duration::days(20)).date_naive())).await.expect("feed");
    let client = crate::not_following();
    let today = Utc::now().date_naive().to_string();
    for (since, until, told) in [
        ("2026-01-01", "+262142-12-31", "No run asked for: until is not a date (YYYY-MM-DD)."),
        ("-5000-01-01", today.as_str(), "No run asked for: since and until are RFC 3339 times of a four-digit year."),
    ] {
        let form =
            [("tenant", "canary"), ("supplier", "acme"), ("kind", "backfill"), ("since", since), ("until", until)];
        let refused = client
            .post(server.url("/page/feeds/runs"))
            .header("cookie", format!("admin_token={operator}"))
            .form(&form)
            .send()
            .await
            .expect("an answer, not a dropped connection");
        assert_eq!(refused.status(), 303, "{since}..{until}: a page, not JSON");
        let location = refused.headers()["location"].to_str().expect("ascii").to_owned();
        let html = page(&server, &operator, &location).await;
        assert!(html.contains(told), "{since}..{until}: {html}");
    }
    assert_eq!(server.store.feed(&key()).await.expect("read").expect("feed").run_request, None, "none asked for");
}

/// A backfill asked for over a year PostgreSQL does not keep (serde takes `-5000-…`) is
/// refused 400 `invalid_run`: it reached the store, which refused to bind it, a bare 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_a_year_out_of_range_is_refused_400_on_postgres() {
    let server = Server::postgres().await;
    let operator = server.token("otto", Role::Operator).await;
    server.store.upsert_feed(&midnight_feed((Utc::now() - Duration::days(20)).date_naive())).await.expect("feed");
    let runs = "/v1/tenants/canary/feeds/acme/runs";
    let range = json!({ "kind": "backfill", "since": "-5000-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z" });
    let refused = server.send(Method::POST, &operator, runs, range).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.json::<serde_json::Value>().await.expect("json")["code"], "invalid_run");
    assert_eq!(server.store.feed(&key()).await.expect("read").expect("feed").run_request, None, "none asked for");
    server.stop().await;
}
