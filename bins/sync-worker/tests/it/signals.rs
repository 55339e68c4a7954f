//! The launch signals in the worker's parts against real PostgreSQL: a worker that stops
//! reporting turns queue lag red; an item whose winning journal row goes missing lowers trace
//! coverage and is named; the gauges and the samples follow, a tenant named `all` apart from the
//! overall ones; the tracer reads each item back only as far as its offers' latest snapshots; a
//! worker with `--signals off` still reports its source's progress.

use std::sync::Arc;

use catalog_app::signals::{judge_all, Sampler, SamplerSettings, Tracer, TracerSettings};
use catalog_app::{Applier, BatchSink, Metrics};
use catalog_core::{EventId, OfferKey, SignalSettings, Sku, Status, StockChange, SupplierEvent, SupplierId, TenantId};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::prelude::*;
use catalog_store::{BatchInput, FactsQuery, StoreConfig};
use catalog_testkit::{bench_events, incoming, TestDatabase};
use chrono::{Duration, Utc};
use tokio_util::sync::CancellationToken;

async fn store(database: &TestDatabase) -> Arc<dyn CatalogStore> {
    Arc::new(
        PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default()).await.expect("store"),
    )
}

/// The gauge line of `metric` for `tenant` and `signal` in the exposition text.
fn gauge(metrics: &Metrics, metric: &str, tenant: &str, signal: &str) -> Option<f64> {
    let prefix = format!("{metric}{{signal=\"{signal}\",tenant=\"{tenant}\"}} ");
    metrics.render().lines().find_map(|line| line.strip_prefix(&prefix).and_then(|value| value.parse().ok()))
}

/// When a report last read what its gauges show, in seconds since the epoch (0: reset here).
fn succeeded_at(metrics: &Metrics, report: &str) -> Option<i64> {
    let prefix = format!("catalog_report_last_success_timestamp_seconds{{report=\"{report}\"}} ");
    metrics.render().lines().find_map(|line| line.strip_prefix(&prefix).and_then(|value| value.parse().ok()))
}

/// A round that fails leaves the signal gauges as the last round set them (taken off, a red
/// signal's alert resolved at every failed round) and says how old they are: the last
/// success's time stands still until a round succeeds (`CatalogReportsStale`). Before, a
/// failed round was logged and nothing said the gauges had stopped moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sampling_round_keeps_the_gauges_and_says_how_old_they_are() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let metrics = Metrics::new();
    let settings = SamplerSettings { signals: SignalSettings::default(), ..SamplerSettings::default() };
    let sampler = Sampler::new(store.clone(), settings, metrics.clone());
    sampler.round(Utc::now()).await.expect("a round");
    assert_eq!(gauge(&metrics, "catalog_signal_green", "all", "queue_lag"), Some(1.0));
    assert!(succeeded_at(&metrics, "signals").is_some_and(|at| at > 0));

    metrics.report_succeeded_at.with_label_values(&["signals"]).set(0);
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    sqlx::query("ALTER TABLE signal_samples RENAME TO signal_samples_away").execute(&pool).await.expect("rename");
    sampler.round(Utc::now()).await.expect_err("the samples cannot be kept");
    assert_eq!(gauge(&metrics, "catalog_signal_green", "all", "queue_lag"), Some(1.0), "as last set");
    assert_eq!(succeeded_at(&metrics, "signals"), Some(0), "no success since");

    sqlx::query("ALTER TABLE signal_samples_away RENAME TO signal_samples").execute(&pool).await.expect("rename");
    sampler.round(Utc::now()).await.expect("a round again");
    assert!(succeeded_at(&metrics, "signals").is_some_and(|at| at > 0), "a success now");
}

/// A round whose samples are kept but whose old samples cannot be dropped still succeeds: its
/// gauges are this round's, and the report says so. Before, the failed drop failed the round,
/// which said the fresh gauges were stale and in ten minutes fired `CatalogReportsStale`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_whose_old_samples_cannot_be_dropped_still_reports() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let metrics = Metrics::new();
    let settings = SamplerSettings { signals: SignalSettings::default(), ..SamplerSettings::default() };
    let sampler = Sampler::new(store.clone(), settings, metrics.clone());
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    for statement in [
        "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no delete here'; END $$",
        "CREATE TRIGGER refuse_delete BEFORE DELETE ON signal_samples FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete()",
    ] {
        sqlx::query(statement).execute(&pool).await.expect(statement);
    }
    metrics.report_succeeded_at.with_label_values(&["signals"]).set(0);
    sampler.round(Utc::now()).await.expect("the round succeeds: its samples are kept");
    assert!(succeeded_at(&metrics, "signals").is_some_and(|at| at > 0), "a success");
    assert_eq!(gauge(&metrics, "catalog_signal_green", "all", "queue_lag"), Some(1.0));
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM signal_samples").fetch_one(&pool).await.expect("count");
    assert!(kept > 0, "the round's samples are kept");
    assert_eq!(metrics.retention.signal_samples_prune_failures.get(), 1, "the failed drop is counted");
}

/// The outbox's gauges too: a read that fails leaves them, and the last success's time
/// stands still until a read succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_outbox_read_keeps_its_gauges_and_says_how_old_they_are() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let reporter = tokio::spawn(catalog_app::publishing::report_outbox(
        store.clone(),
        vec!["storefront".to_owned()],
        metrics.clone(),
        shutdown.clone(),
    ));
    let until = |wanted: fn(Option<i64>) -> bool| {
        let metrics = metrics.clone();
        async move {
            for _ in 0..300 {
                if wanted(succeeded_at(&metrics, "outbox")) {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            false
        }
    };
    assert!(until(|at| at.is_some_and(|at| at > 0)).await, "reported");
    // The reporter says it started before its first read ends: the gauges are there once
    // that read has set them (the table renamed before it, none ever was).
    let pending =
        || metrics.render().lines().any(|line| line.starts_with("catalog_outbox_pending{channel=\"storefront\"}"));
    for _ in 0..300 {
        if pending() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(pending(), "the first read set the gauges");
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    sqlx::query("ALTER TABLE outbox RENAME TO outbox_away").execute(&pool).await.expect("rename");
    // A read the rename waited for may record its success just after it: one of the
    // reporter's 5 s rounds goes by before the last success is cleared.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    metrics.report_succeeded_at.with_label_values(&["outbox"]).set(0);
    // Two of the reporter's 5 s rounds, both failing.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    assert_eq!(succeeded_at(&metrics, "outbox"), Some(0), "no success while the outbox cannot be read");
    assert!(pending(), "the gauges as last read");
    sqlx::query("ALTER TABLE outbox_away RENAME TO outbox").execute(&pool).await.expect("rename");
    assert!(until(|at| at.is_some_and(|at| at > 0)).await, "a success again");
    shutdown.cancel();
    reporter.await.expect("the reporter ends");
}

/// A report whose reads fail from its start has a last success all the same: its start, so
/// `CatalogReportsStale` fires ten minutes on. Before, its series never appeared (a gauge has
/// none until it is set), and an alert on its age never fired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_failing_from_its_start_ages_from_its_start() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    sqlx::query("ALTER TABLE outbox RENAME TO outbox_away").execute(&pool).await.expect("rename");
    sqlx::query("ALTER TABLE signal_samples RENAME TO signal_samples_away").execute(&pool).await.expect("rename");
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let started = Utc::now().timestamp();
    let reporter = tokio::spawn(catalog_app::publishing::report_outbox(
        store.clone(),
        vec!["storefront".to_owned()],
        metrics.clone(),
        shutdown.clone(),
    ));
    let settings = SamplerSettings { signals: SignalSettings::default(), ..SamplerSettings::default() };
    let sampler = tokio::spawn(Sampler::new(store.clone(), settings, metrics.clone()).run(shutdown.clone()));
    // The outbox reporter's first read and the sampler's first round, both failing.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for report in ["outbox", "signals"] {
        let at = succeeded_at(&metrics, report).unwrap_or_else(|| panic!("{report}: no series"));
        assert!((started..=started + 1).contains(&at), "{report}: its start, {at} (started {started})");
    }
    shutdown.cancel();
    reporter.await.expect("the reporter ends");
    sampler.await.expect("the sampler ends");
}

/// A tenant named `all` has gauges of its own, `tenant="tenant:all"`, beside the overall
/// ones (`tenant="all"`, which alerts and dashboards read): here the tenant is traced and green
/// while another tenant's untraced items turn the catalog red. Before, the tenant's gauges
/// shared the overall label, and, set after the overall ones, read green for the catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_named_all_does_not_overwrite_the_overall_signals() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let event = |n: u64, tenant: &str| {
        let offer = OfferKey {
            tenant: TenantId::parse(tenant).expect("tenant"),
            supplier: SupplierId::parse("acme").expect("supplier"),
            sku: Sku::parse(&format!("SKU-{n}")).expect("sku"),
        };
        let id = EventId(uuid::Uuid::from_u128(u128::from(n) + 1));
        let change = StockChange::Updated { quantity: 5 };
        SupplierEvent::new(id, offer, change, Utc::now(), Some(n)).expect("valid event")
    };
    let apply = |events: Vec<SupplierEvent>| {
        let store = store.clone();
        async move {
            let batch = BatchInput::new(incoming(&events, "test:signals", Utc::now()), Vec::new());
            store.apply_batch(&batch).await.expect("apply");
        }
    };
    // The tenant `all`'s items, every one traced; then canary's, none traced.
    apply((0..3).map(|n| event(n, "all")).collect()).await;
    let mut tracer = Tracer::new(store.clone(), TracerSettings::default(), Metrics::new());
    assert_eq!(tracer.trace_once().await.expect("trace").checked, 3);
    apply((3..5).map(|n| event(n, "canary")).collect()).await;

    let metrics = Metrics::new();
    let settings = SamplerSettings { signals: SignalSettings::default(), ..SamplerSettings::default() };
    let sampler = Sampler::new(store.clone(), settings, metrics.clone());
    let judged = sampler.sample_once(Utc::now() + Duration::minutes(10)).await.expect("sample");
    let status = |tenant: Option<&str>| {
        let signals = judged.iter().find(|signals| signals.tenant_id.as_ref().map(TenantId::as_str) == tenant);
        signals.expect("judged").trace_coverage.status
    };
    assert_eq!((status(None), status(Some("all")), status(Some("canary"))), (Status::Red, Status::Green, Status::Red));
    assert_eq!(gauge(&metrics, "catalog_signal_green", "all", "trace_coverage"), Some(0.0), "the catalog, red");
    assert_eq!(gauge(&metrics, "catalog_signal_green", "tenant:all", "trace_coverage"), Some(1.0), "the tenant all");
    assert_eq!(gauge(&metrics, "catalog_signal_green", "canary", "trace_coverage"), Some(0.0));
    assert_eq!(gauge(&metrics, "catalog_signal_value", "tenant:all", "trace_coverage"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_reporting_turns_queue_lag_red() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let metrics = Metrics::new();
    let applier = Applier::new(store.clone(), metrics.clone(), CancellationToken::new());
    let started = Utc::now();
    applier.partition_started("kafka:g:supplier-events", 3);
    applier.message_waiting("kafka:g:supplier-events", 3, started - Duration::seconds(5));
    store.report_progress(&applier.take_progress(started).partitions).await.expect("report");

    let settings = SamplerSettings { signals: SignalSettings::default(), ..SamplerSettings::default() };
    let sampler = Sampler::new(store.clone(), settings, metrics.clone());
    let judged = sampler.sample_once(started + Duration::seconds(10)).await.expect("sample");
    assert_eq!(judged[0].queue_lag.status, Status::Green, "15 s waiting, reported 10 s ago");
    assert_eq!(gauge(&metrics, "catalog_signal_value", "all", "queue_lag"), Some(15.0));
    assert_eq!(gauge(&metrics, "catalog_signal_green", "all", "queue_lag"), Some(1.0));

    // The worker stalls: no report for two minutes. Its last report said 5 s of lag; the
    // silence counts.
    let judged = sampler.sample_once(started + Duration::minutes(2)).await.expect("sample");
    assert_eq!(judged[0].queue_lag.status, Status::Red, "{:?}", judged[0].queue_lag);
    assert!(judged[0].queue_lag.value >= 120.0);
    assert_eq!(gauge(&metrics, "catalog_signal_green", "all", "queue_lag"), Some(0.0));

    let samples = store.signal_samples(None, started, 10).await.expect("samples");
    let greens: Vec<bool> = samples.iter().map(|sample| sample.queue_lag.green).collect();
    assert_eq!(greens, [true, false], "both judgements kept");

    // A partition read to its end is forgotten: its silence is no lag.
    applier.partition_done("kafka:g:supplier-events", 3);
    for (source, partition) in applier.take_progress(Utc::now()).done {
        store.forget_progress(&source, &partition).await.expect("forget");
    }
    let judged = sampler.sample_once(started + Duration::minutes(3)).await.expect("sample");
    assert_eq!(judged[0].queue_lag.status, Status::Green);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_missing_its_winning_journal_row_lowers_trace_coverage_and_is_named() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let events = bench_events(300);
    store
        .apply_batch(&BatchInput::new(incoming(&events, "test:signals", Utc::now()), Vec::new()))
        .await
        .expect("apply");
    let metrics = Metrics::new();
    let settings = TracerSettings { changed_per_round: 50, sweep_per_round: 40, ..TracerSettings::default() };
    let mut tracer = Tracer::new(store.clone(), settings, metrics.clone());
    let mut checked = 0;
    for _ in 0..5 {
        let round = tracer.trace_once().await.expect("trace");
        assert_eq!(round.gaps, 0, "every item re-derives from its journal");
        checked += round.checked;
    }
    assert!(checked >= 100, "{checked}");
    let signals = SignalSettings::default();
    let later = Utc::now() + Duration::minutes(10);
    let judged = judge_all(&*store, &signals, later).await.expect("judge");
    assert_eq!(judged[0].trace_coverage.status, Status::Green, "{:?}", judged[0].trace_coverage);

    // Someone deletes the winning journal row of one offer.
    let item = store.items(&TenantId::parse("canary").expect("tenant")).await.expect("items").remove(0);
    let trace = store.item_trace(item.id()).await.expect("trace").expect("exists");
    let winner = trace.offers.iter().find_map(|offer| offer.winner).expect("a winner");
    let pool = sqlx::PgPool::connect(&database.url).await.expect("pool");
    let deleted = sqlx::query("DELETE FROM events WHERE event_id = $1 AND outcome = 'applied'")
        .bind(winner.0)
        .execute(&pool)
        .await
        .expect("delete");
    assert_eq!(deleted.rows_affected(), 1);

    // The rolling sweep finds it, though the item did not change.
    let mut found = false;
    for _ in 0..10 {
        found |= tracer.trace_once().await.expect("trace").gaps > 0;
    }
    assert!(found, "the sweep re-checks every item");
    let rendered = metrics.render();
    assert!(rendered.contains("catalog_trace_checks_total{result=\"winner_not_journaled\"}"), "{rendered}");
    let judged = judge_all(&*store, &signals, later).await.expect("judge");
    let canary = judged.iter().find(|signals| signals.tenant_id.is_some()).expect("the tenant");
    for signals in [&judged[0], canary] {
        assert_eq!(signals.trace_coverage.status, Status::Red);
        assert_eq!(signals.untraced_count, 1);
        assert_eq!(&signals.untraced[0].sku, item.sku(), "named");
        assert_eq!(signals.untraced[0].gap.as_str(), "winner_not_journaled");
    }
}

/// The tracer reads an item's newest journal rows, not its history: an item whose suppliers
/// all sent a snapshot lately costs one short read however many events it has; one whose
/// oldest offer last sent a snapshot long ago is read back that far, and is still traced; a
/// stored quantity its journal does not explain is still a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracer_reads_back_only_as_far_as_each_offers_latest_snapshot() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let start = Utc::now() - Duration::hours(1);
    let event = |n: u64, supplier: &str, sku: &str, quantity: i64| {
        let offer = OfferKey {
            tenant: TenantId::parse("canary").expect("tenant"),
            supplier: SupplierId::parse(supplier).expect("supplier"),
            sku: Sku::parse(sku).expect("sku"),
        };
        let id = EventId(uuid::Uuid::from_u128(u128::from(n) + 1));
        let change = StockChange::Updated { quantity };
        SupplierEvent::new(id, offer, change, start + Duration::seconds(n as i64), Some(n)).expect("valid event")
    };
    // BUSY-1: acme and beta take turns, 1,000 snapshots. OLD-1: acme's one snapshot, then
    // 1,000 of beta's.
    let mut events: Vec<SupplierEvent> =
        (0..1000).map(|n| event(n, if n % 2 == 0 { "acme" } else { "beta" }, "BUSY-1", n as i64 % 40)).collect();
    events.push(event(1000, "acme", "OLD-1", 7));
    events.extend((1001..2001).map(|n| event(n, "beta", "OLD-1", n as i64 % 50)));
    store
        .apply_batch(&BatchInput::new(incoming(&events, "test:signals", Utc::now()), Vec::new()))
        .await
        .expect("apply");
    let metrics = Metrics::new();
    let mut tracer = Tracer::new(store.clone(), TracerSettings::default(), metrics.clone());
    let round = tracer.trace_once().await.expect("trace");
    assert_eq!((round.checked, round.gaps), (2, 0), "both re-derive from their journals");
    let rows_read = || {
        metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix("catalog_trace_rows_read_total ")?.parse::<u64>().ok())
    };
    // BUSY-1: its newest 64 rows hold a snapshot of each offer. OLD-1: 64 rows and acme's
    // winner found by id, 512 and the winner again, then 4,096 asked, its whole 1,001 found.
    assert_eq!(rows_read(), Some(64 + (64 + 1) + (512 + 1) + 1001));

    let pool = sqlx::PgPool::connect(&database.url).await.expect("pool");
    sqlx::query("UPDATE items SET quantity = quantity + 1 WHERE sku = 'BUSY-1'").execute(&pool).await.expect("corrupt");
    let round = tracer.trace_once().await.expect("trace");
    assert_eq!(round.gaps, 1, "a quantity the newest rows do not explain is a gap");
    assert!(metrics.render().contains("catalog_trace_checks_total{result=\"quantity_differs\"} 1"));
}

/// An item whose journal cannot be read is counted and left untraced; the round checks and
/// records the others (failing the round left every item unchecked, and coverage red for
/// every tenant, for as long as one item could not be read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_that_cannot_be_read_leaves_the_others_traced() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let events = bench_events(40);
    store
        .apply_batch(&BatchInput::new(incoming(&events, "test:signals", Utc::now()), Vec::new()))
        .await
        .expect("apply");
    let n_items = store.items(&TenantId::parse("canary").expect("tenant")).await.expect("items").len();
    let metrics = Metrics::new();
    let mut tracer = Tracer::new(store.clone(), TracerSettings::default(), metrics.clone());
    // Every item checked clean first.
    assert_eq!(tracer.trace_once().await.expect("a clean round").checked, n_items);
    let pool = sqlx::PgPool::connect(&database.url).await.expect("pool");
    // One item's SKU no longer matches its id: reading it is refused as corrupt.
    let corrupted = sqlx::query(
        "UPDATE items SET sku = sku || '-X' WHERE item_id = (SELECT item_id FROM items ORDER BY item_id LIMIT 1)",
    )
    .execute(&pool)
    .await
    .expect("corrupt");
    assert_eq!(corrupted.rows_affected(), 1);

    let round = tracer.trace_once().await.expect("the round goes on");
    assert_eq!((round.checked, round.gaps, round.unreadable), (n_items - 1, 0, 1));
    assert!(metrics.render().contains("catalog_trace_checks_total{result=\"unreadable\"} 1"));
    // Its clean check from before no longer counts: coverage names it.
    let later = Utc::now() + Duration::minutes(10);
    let judged = judge_all(&*store, &SignalSettings::default(), later).await.expect("judge");
    assert_eq!(judged[0].trace_coverage.status, Status::Red, "{:?}", judged[0].trace_coverage);
    assert_eq!(judged[0].untraced_count, 1);
    assert_eq!(judged[0].untraced[0].gap.as_str(), "not_checked");
}

/// A worker that only applies (`--signals off`, as the option's help recommends) still reports
/// its source's progress, or queue lag could not see the partitions it reads: while standard
/// input stays open, its partition is in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_signals_off_still_reports_its_source_progress() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let directory = tempfile::tempdir().expect("temp dir");
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "-", "--metrics-addr", "off", "--signals", "off", "--progress-interval-secs", "1"])
        .args(["--batch-max-wait-ms", "20"])
        .env("RUST_LOG", "warn")
        .current_dir(directory.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start sync-worker");
    let mut stdin = worker.stdin.take().expect("stdin");
    let line = r#"{"event_id":"00000000-0000-0000-0000-000000000001","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"SKU-1","quantity":4,"updated_at":"2026-06-01T12:00:00Z"}"#;
    stdin.write_all(format!("{line}\n").as_bytes()).await.expect("write");
    stdin.flush().await.expect("flush");
    // The log channel prints the item once it is applied: the store is migrated, the source
    // is reading.
    let mut published = tokio::io::BufReader::new(worker.stdout.take().expect("stdout")).lines();
    tokio::time::timeout(std::time::Duration::from_secs(30), published.next_line())
        .await
        .expect("the event is applied and published")
        .expect("read stdout")
        .expect("a published line");

    let path = directory.path().join("catalog.db");
    let store = catalog_sqlite::SqliteStore::open_path(&path, StoreConfig::default()).await.expect("store");
    let query = FactsQuery {
        now: Utc::now(),
        stale_grace: Duration::seconds(60),
        publish_window: Duration::minutes(15),
        trace_grace: Duration::minutes(5),
        max_named: 10,
    };
    // Reports go out every second: ten seconds is plenty.
    let mut partitions = Vec::new();
    for _ in 0..100 {
        partitions = store.signal_facts(&query).await.expect("facts").overall.partitions;
        if !partitions.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let reported: Vec<&str> = partitions.iter().map(|partition| partition.partition.as_str()).collect();
    assert_eq!(reported, ["0"], "standard input's one partition is reported");

    drop(stdin);
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), worker.wait_with_output())
        .await
        .expect("the worker ends with its input")
        .expect("wait for sync-worker");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
