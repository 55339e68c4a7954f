//! Journal retention as the worker runs it, on PostgreSQL: a day of journal is archived to a
//! gzip NDJSON file and its partition dropped while two callers keep applying batches, and an
//! archived event delivered again is still a duplicate. The day's publish attempts go with it
//! while a publisher records, and recording goes on.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use catalog_app::retention::{run_once, RetentionSettings};
use catalog_app::Metrics;
use catalog_core::{ClockPolicy, StockChange};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::contract::{base, batch, incoming, offer, published};
use catalog_store::prelude::*;
use catalog_store::{IncomingEvent, StoreConfig};
use catalog_testkit::TestDatabase;
use chrono::{DateTime, Days, NaiveTime, Utc};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

fn start_of_day_from_today(days: u64) -> DateTime<Utc> {
    Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc().checked_add_days(Days::new(days)).expect("in range")
}

/// Event `n` for SKU `n % skus`, received at `received_at`, at source offset `n`.
fn event(n: u64, skus: u64, received_at: DateTime<Utc>) -> IncomingEvent {
    let key = offer("canary", "acme", &format!("SKU-{}", n % skus));
    let received_second = (received_at - base()).num_seconds();
    incoming(n, &key, StockChange::Updated { quantity: (n % 97) as i64 }, n as i64, received_second)
}

/// A store over `database`.
async fn postgres(database: &TestDatabase) -> Arc<PostgresStore> {
    Arc::new(
        PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
            .await
            .expect("connect"),
    )
}

/// Retention of one day, archiving to `archive_dir`, `chunk` rows at a time.
fn a_day_s_retention(archive_dir: &std::path::Path, chunk: usize) -> RetentionSettings {
    RetentionSettings {
        retention: chrono::Duration::days(1),
        archive_dir: archive_dir.to_owned(),
        interval: Duration::from_secs(3_600),
        days_ahead: 7,
        chunk,
        clock: ClockPolicy::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_archived_and_dropped_while_batches_are_applied() {
    let database = TestDatabase::create().await;
    let store = postgres(&database).await;
    // 2,000 events received today: the journal's first partition, which ends tonight.
    let today = Utc::now();
    for chunk in (0..2_000u64).collect::<Vec<_>>().chunks(500) {
        let events = chunk.iter().map(|n| event(*n, 1_000, today)).collect();
        store.apply_batch(&batch(events)).await.expect("apply today's events");
    }
    // Today's 1,000 items published: 1,000 attempts, in today's attempts partition.
    let claim = catalog_store::OutboxClaim::immediate(10_000, Duration::from_secs(60));
    let publish_all = || async {
        let claimed = store.claim_outbox("storefront", &claim).await.expect("claim");
        let records: Vec<_> =
            claimed.iter().map(|entry| published(entry, catalog_store::PublishOutcome::Published)).collect();
        store.record_publishes(&records).await.expect("record beside retention");
        records.len()
    };
    assert_eq!(publish_all().await, 1_000);

    // Three days on, two callers apply the live stream while retention runs.
    let later = start_of_day_from_today(3) + chrono::Duration::hours(2);
    let writers: Vec<_> = (0..2u64)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..20u64 {
                    let first = 100_000 + writer * 100_000 + round * 250;
                    let events = (first..first + 250).map(|n| event(n, 5_000, later)).collect();
                    store.apply_batch(&batch(events)).await.expect("a live batch beside retention");
                }
            })
        })
        .collect();
    let archive_dir = tempfile::tempdir().expect("temp dir");
    let settings = a_day_s_retention(archive_dir.path(), 300);
    let metrics = Metrics::new();
    let before_retention = Utc::now();
    let report =
        run_once(&*store, &settings, &metrics, later, &CancellationToken::new()).await.expect("retention pass");
    for writer in writers {
        writer.await.expect("writer finished");
    }
    // The live stream's items are published today, after today's attempts were dropped ahead
    // of time: the day's partition is made again and every record lands (4,000 of the items
    // are new).
    assert!(publish_all().await >= 4_000);

    assert_eq!(report.dropped.iter().map(|segment| segment.rows).sum::<u64>(), 2_000, "{report:?}");
    assert!(report.kept.is_empty());
    // Every dropped row is in an archive, one JSON journal entry per line.
    let mut archived = 0;
    for segment in &report.dropped {
        let file = std::fs::File::open(&segment.archive).expect("archive exists");
        for line in BufReader::new(flate2::read::GzDecoder::new(file)).lines() {
            let entry: serde_json::Value = serde_json::from_str(&line.expect("line")).expect("a JSON entry");
            assert_eq!(entry["outcome"], "applied", "{entry}");
            archived += 1;
        }
    }
    assert_eq!(archived, 2_000);
    let status = store.sync_status(&offer("canary", "acme", "X").tenant).await.expect("status").expect("tenant");
    let journaled: u64 = status.events_by_outcome.values().sum();
    assert_eq!(journaled, 10_000, "every live event journaled, the archived day gone: {status:?}");
    let horizon = store.journal_horizon().await.expect("horizon").expect("retention dropped a day");
    assert!(horizon.kept_since.is_some_and(|kept_since| kept_since <= later - settings.retention), "{horizon:?}");
    assert!(report.attempt_days_dropped >= 1, "today's attempts are past a cutoff two days on: {report:?}");
    assert!(horizon.attempts_kept_since.is_some_and(|kept_since| kept_since > today), "{horizon:?}");
    let attempts = |sku: &str| {
        let item_id = offer("canary", "acme", sku).item_key().item_id();
        let store = store.clone();
        async move { store.item_trace(item_id).await.expect("trace").expect("exists").publish_attempts }
    };
    let published_today = attempts("SKU-7").await;
    assert!(
        published_today.iter().all(|attempt| attempt.attempted_at > before_retention),
        "the attempt made before retention was dropped: {published_today:?}"
    );
    assert_eq!(attempts("SKU-4321").await.len(), 1, "a new item's attempt, recorded after the drop");

    // An archived event delivered again is a duplicate: its claim outlived its row.
    let mut again = event(7, 1_000, later);
    again.source.offset = 1_000_000;
    let result = store.apply_batch(&batch(vec![again])).await.expect("apply");
    assert_eq!(result.decisions[0].outcome.as_str(), "duplicate");
    assert!(result.changed_items.is_empty());
    let metrics_text = metrics.render();
    assert!(metrics_text.contains("catalog_journal_rows_archived_total 2000"), "{metrics_text}");
    let days = format!("catalog_publish_attempt_days_dropped_total {}", report.attempt_days_dropped);
    assert!(metrics_text.contains(&days), "{metrics_text}");
}

/// Every worker runs retention: while one pass holds the store's retention lock, another does
/// nothing (no archive written, no day dropped), and runs in full once it is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_does_nothing_while_another_worker_s_pass_holds_the_retention_lock() {
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect");
    let today = Utc::now();
    store.apply_batch(&batch((0..300u64).map(|n| event(n, 100, today)).collect())).await.expect("apply");
    let archive_dir = tempfile::tempdir().expect("temp dir");
    let settings = a_day_s_retention(archive_dir.path(), 100);
    let later = start_of_day_from_today(3);

    // Another worker's pass, holding the lock on its own connection.
    let mut other = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(catalog_postgres::RETENTION_LOCK)
        .fetch_one(&mut other)
        .await
        .expect("lock");
    assert!(locked);
    let report =
        run_once(&store, &settings, &Metrics::new(), later, &CancellationToken::new()).await.expect("retention pass");
    assert!(report.another_pass_running, "{report:?}");
    assert!(report.dropped.is_empty());
    assert_eq!(std::fs::read_dir(archive_dir.path()).map_or(0, Iterator::count), 0, "nothing archived");

    other.close().await.expect("the other pass ends");
    let report =
        run_once(&store, &settings, &Metrics::new(), later, &CancellationToken::new()).await.expect("retention pass");
    assert!(!report.another_pass_running);
    assert_eq!(report.dropped.iter().map(|segment| segment.rows).sum::<u64>(), 300, "{report:?}");
}

/// Two passes archiving one day into one directory at once (two workers before the lock, or
/// a pass beside a dead one's leftovers) each write a file of their own, and neither replaces
/// the other's: both archives hold the day whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_archives_of_one_day_in_one_directory_never_share_or_replace_a_file() {
    use catalog_app::retention::NdjsonArchive;
    use catalog_store::ArchiveSink;

    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect");
    store.apply_batch(&batch((1..=40u64).map(|n| event(n, 100, Utc::now())).collect())).await.expect("apply");
    let mut entries = Vec::new();
    for n in 1..=40 {
        let item_id = offer("canary", "acme", &format!("SKU-{n}")).item_key().item_id();
        entries.extend(store.item_trace(item_id).await.expect("trace").expect("exists").events);
    }
    let directory = tempfile::tempdir().expect("temp dir");
    let (mut first, mut second) = (NdjsonArchive::new(directory.path()), NdjsonArchive::new(directory.path()));
    first.begin("events_20261201").expect("begin");
    second.begin("events_20261201").expect("begin");
    for chunk in entries.chunks(10) {
        first.write(chunk).expect("write");
        second.write(chunk).expect("write");
    }
    let archives = [first.finish().expect("finish"), second.finish().expect("finish")];
    assert_ne!(archives[0], archives[1]);
    assert!(archives[0].ends_with("events_20261201.ndjson.gz"), "{archives:?}");
    for archive in &archives {
        let file = std::fs::File::open(archive).expect("archive exists");
        let lines = BufReader::new(flate2::read::GzDecoder::new(file)).lines().count();
        assert_eq!(lines, 40, "{archive} holds the day whole");
    }
    let names: Vec<String> = std::fs::read_dir(directory.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "two archives, no partial file left: {names:?}");
}

/// A pass that fails or stops between beginning a day's archive and finishing it (a store
/// error, a shutdown) leaves no partial file: its rows are still in the journal, and the next
/// pass archives them again.
#[test]
fn an_archive_a_pass_never_finished_leaves_no_file_behind() {
    use catalog_app::retention::NdjsonArchive;
    use catalog_store::ArchiveSink;

    let directory = tempfile::tempdir().expect("temp dir");
    let mut archive = NdjsonArchive::new(directory.path());
    archive.begin("events_20261201").expect("begin");
    archive.write(&[]).expect("write");
    // A second day begun replaces the first without finishing it.
    archive.begin("events_20261202").expect("begin");
    let listed = |directory: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(directory)
            .expect("list")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(listed(directory.path()).len(), 1, "only the open day's partial: {:?}", listed(directory.path()));
    drop(archive);
    assert_eq!(listed(directory.path()), Vec::<String>::new(), "no unfinished archive is left");
}

/// Writes into a day while its archive is being finished, as a worker and a replay may: a
/// redelivery counted on one of the day's rows, and a replayed event received that day whose
/// supplier is off (held).
struct WritesWhileFinishing {
    archive: catalog_app::retention::NdjsonArchive,
    store: Arc<PostgresStore>,
    writes: Vec<IncomingEvent>,
    results: Vec<Result<String, catalog_store::StoreError>>,
}

impl catalog_store::ArchiveSink for WritesWhileFinishing {
    fn begin(&mut self, name: &str) -> std::io::Result<()> {
        self.archive.begin(name)
    }

    fn write(&mut self, entries: &[catalog_store::JournalEntry]) -> std::io::Result<()> {
        self.archive.write(entries)
    }

    fn finish(&mut self) -> std::io::Result<String> {
        let handle = tokio::runtime::Handle::current();
        for event in std::mem::take(&mut self.writes) {
            let result = tokio::task::block_in_place(|| handle.block_on(self.store.apply_batch(&batch(vec![event]))));
            self.results.push(result.map(|applied| applied.decisions[0].outcome.to_string()));
        }
        self.archive.finish()
    }
}

/// PostgreSQL's twin of SQLite's `a_redelivery_counted_while_its_day_is_archived_is_not_lost`:
/// what is written to a day while its archive is finished is in the archive or in the journal,
/// never dropped with the day. Before, the day was detached after its archive: the redelivery's
/// count was dropped with it, and the held row too while its claim stayed held, so the event's
/// next delivery found a held claim without a row and stopped the worker (`Corrupt`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_written_to_a_day_while_it_is_archived_is_not_lost() {
    use catalog_store::Provenance;

    let database = TestDatabase::create().await;
    let store = postgres(&database).await;
    let today = Utc::now();
    store.apply_batch(&batch((0..20u64).map(|n| event(n, 20, today)).collect())).await.expect("today's events");
    let held = offer("canary", "globex", "HELD-1");
    store.set_supplier_sync(&held.tenant, &held.supplier, false).await.expect("flag");
    let later = start_of_day_from_today(3) + chrono::Duration::hours(2);
    let mut redelivered = event(7, 20, later);
    redelivered.source.offset = 1_000;
    let received_today = (today - base()).num_seconds();
    let mut replayed = incoming(500, &held, StockChange::Updated { quantity: 3 }, 0, received_today);
    replayed.provenance = Provenance::Replayed;

    store.prepare_journal(later + chrono::Duration::days(7)).await.expect("days ahead");
    let archive_dir = tempfile::tempdir().expect("temp dir");
    let mut sink = WritesWhileFinishing {
        archive: catalog_app::retention::NdjsonArchive::new(archive_dir.path()),
        store: store.clone(),
        writes: vec![redelivered, replayed.clone()],
        results: Vec::new(),
    };
    let report =
        store.expire_journal(&a_day_s_retention(archive_dir.path(), 300).policy(later), &mut sink).await.expect("pass");
    assert_eq!(sink.results[0].as_deref().ok(), Some("duplicate"), "{:?}", sink.results);

    // The redelivery is counted once: on the archived row, or on a row of its own.
    let mut counted = 0;
    for segment in &report.dropped {
        let file = std::fs::File::open(&segment.archive).expect("archive exists");
        for line in BufReader::new(flate2::read::GzDecoder::new(file)).lines() {
            let entry: serde_json::Value = serde_json::from_str(&line.expect("line")).expect("a JSON entry");
            counted += entry["redelivery_count"].as_i64().unwrap_or(0);
        }
    }
    let journaled = store.sync_status(&held.tenant).await.expect("status").expect("tenant");
    counted += journaled.events_by_outcome.get("duplicate").copied().unwrap_or(0) as i64;
    assert_eq!(counted, 1, "{report:?} {journaled:?}");

    // The replayed event was journaled held (and kept), or refused: either way it is delivered
    // again without error.
    let again = store.apply_batch(&batch(vec![replayed])).await;
    assert!(again.is_ok(), "{again:?} after {:?}", sink.results);
}

/// A pass that died after detaching days (before archiving them) leaves them as tables: the
/// next pass archives and drops a day without held events, and attaches again a day that
/// holds one (written after the check before its detach), whose event its replay then applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_a_dead_pass_detached_are_archived_or_attached_again() {
    use catalog_store::Provenance;

    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect");
    let (first_day, second_day) = (start_of_day_from_today(1), start_of_day_from_today(2));
    store.apply_batch(&batch(vec![event(1, 10, first_day + chrono::Duration::hours(1))])).await.expect("apply");
    let held = offer("canary", "globex", "HELD-1");
    store.set_supplier_sync(&held.tenant, &held.supplier, false).await.expect("flag");
    let held_event = incoming(2, &held, StockChange::Updated { quantity: 3 }, 0, (second_day - base()).num_seconds());
    let result = store.apply_batch(&batch(vec![held_event.clone()])).await.expect("apply");
    assert_eq!(result.decisions[0].outcome.to_string(), "held(supplier_sync_off)");
    let mut connection = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    for day in [first_day, second_day] {
        let statement = format!("ALTER TABLE events DETACH PARTITION events_{} CONCURRENTLY", day.format("%Y%m%d"));
        sqlx::raw_sql(&statement).execute(&mut connection).await.expect("detach");
    }

    let archive_dir = tempfile::tempdir().expect("temp dir");
    // A directory that does not exist yet, two levels deep: made by the pass.
    let nested = archive_dir.path().join("journal").join("archive");
    let settings = a_day_s_retention(&nested, 300);
    let report = run_once(&store, &settings, &Metrics::new(), start_of_day_from_today(4), &CancellationToken::new())
        .await
        .expect("pass");
    assert!(report.dropped.iter().all(|segment| std::path::Path::new(&segment.archive).starts_with(&nested)));
    let first_name = format!("events_{}", first_day.format("%Y%m%d"));
    let dropped: Vec<(&str, u64)> = report
        .dropped
        .iter()
        .filter(|segment| segment.rows > 0)
        .map(|segment| (segment.name.as_str(), segment.rows))
        .collect();
    assert_eq!(dropped, [(first_name.as_str(), 1)], "{report:?}");
    let kept: Vec<(String, u64)> =
        report.kept.iter().map(|segment| (segment.name.clone(), segment.held_events)).collect();
    assert_eq!(kept, [(format!("events_{}", second_day.format("%Y%m%d")), 1)], "{report:?}");

    store.set_supplier_sync(&held.tenant, &held.supplier, true).await.expect("flag");
    let mut replayed = held_event;
    replayed.provenance = Provenance::Replayed;
    let result = store.apply_batch(&batch(vec![replayed])).await.expect("the held row is journaled again");
    assert_eq!(result.decisions[0].outcome.as_str(), "applied");
}

/// Trace coverage after retention (decision 0050): an item whose snapshots were received on
/// days retention dropped still re-derives (its offers' states make up what the archive
/// holds), however many kept rows follow them, on both stores. Before, it was named
/// `winner_not_journaled` (or `quantity_differs`) for good, and trace coverage, whose target
/// is 100 %, held the gate shut. A kept row lost is still a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_whose_snapshots_retention_dropped_are_still_traced() {
    use catalog_app::signals::{Tracer, TracerSettings};
    use catalog_store::{CatalogStore, RetentionPolicy};

    let database = TestDatabase::create().await;
    let directory = tempfile::tempdir().expect("temp dir");
    let postgres: Arc<dyn CatalogStore> = Arc::new(
        PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
            .await
            .expect("connect"),
    );
    let sqlite: Arc<dyn CatalogStore> = Arc::new(
        catalog_sqlite::SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default())
            .await
            .expect("open"),
    );
    // Snapshots received tomorrow; a hundred adjustments of one of them the day after next,
    // more than the tracer's first read; retention keeps from the day between.
    let second = |at: DateTime<Utc>| (at - base()).num_seconds();
    let (snapshots_at, adjusted_at) = (second(start_of_day_from_today(1)), second(start_of_day_from_today(3)));
    let (acme, globex) = (offer("canary", "acme", "ABC-1"), offer("canary", "globex", "ABC-1"));
    for store in [&postgres, &sqlite] {
        let mut events = vec![
            incoming(1, &acme, StockChange::Updated { quantity: 10 }, snapshots_at, snapshots_at),
            incoming(2, &globex, StockChange::Updated { quantity: 7 }, snapshots_at, snapshots_at),
        ];
        events.extend((0..100).map(|n| {
            incoming(10 + n, &acme, StockChange::Adjusted { delta: 1 }, adjusted_at + n as i64, adjusted_at + n as i64)
        }));
        store.apply_batch(&batch(events)).await.expect("apply");
        let policy = RetentionPolicy {
            journal_cutoff: start_of_day_from_today(2),
            claim_cutoff: base() - catalog_core::DEDUPE_HORIZON,
            chunk: 500,
        };
        let archive_dir = tempfile::tempdir().expect("temp dir");
        let mut archive = catalog_app::retention::NdjsonArchive::new(archive_dir.path());
        let report = store.expire_journal(&policy, &mut archive).await.expect("expire");
        assert_eq!(report.dropped.iter().map(|segment| segment.rows).sum::<u64>(), 2, "{report:?}");

        let mut tracer = Tracer::new(store.clone(), TracerSettings::default(), Metrics::new());
        let round = tracer.trace_once().await.expect("trace");
        assert_eq!((round.checked, round.gaps), (1, 0), "{:?}", store.item_trace(acme.item_key().item_id()).await);
    }

    // A kept adjustment's row lost: the quantity no longer re-derives.
    let pool = sqlx::PgPool::connect(&database.url).await.expect("pool");
    let lost_id = catalog_store::contract::event_id(50).0;
    let deleted =
        sqlx::query("DELETE FROM events WHERE event_id = $1").bind(lost_id).execute(&pool).await.expect("delete");
    assert_eq!(deleted.rows_affected(), 1);
    let mut tracer = Tracer::new(postgres.clone(), TracerSettings::default(), Metrics::new());
    assert_eq!(tracer.trace_once().await.expect("trace").gaps, 1);
}

/// Runs one tracer round while a day's archive is being written (the day detached).
struct TracesWhileWriting {
    archive: catalog_app::retention::NdjsonArchive,
    tracer: catalog_app::signals::Tracer,
    gaps: Vec<usize>,
}

impl catalog_store::ArchiveSink for TracesWhileWriting {
    fn begin(&mut self, name: &str) -> std::io::Result<()> {
        self.archive.begin(name)
    }

    fn write(&mut self, entries: &[catalog_store::JournalEntry]) -> std::io::Result<()> {
        let handle = tokio::runtime::Handle::current();
        let round = tokio::task::block_in_place(|| handle.block_on(self.tracer.trace_once())).expect("trace");
        self.gaps.push(round.gaps);
        self.archive.write(entries)
    }

    fn finish(&mut self) -> std::io::Result<String> {
        self.archive.finish()
    }
}

/// While a day is detached for its archive (minutes, for a big day), the journal's horizon
/// is already its end: the tracer makes up what it held instead of naming its items
/// untraced until the sweep comes round again, and a replayed event received that day is
/// refused as retryable. A day a dead pass left detached (the rows from before
/// partitioning too) counts the same, and the next pass archives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_detached_for_its_archive_is_past_the_horizon() {
    use catalog_app::signals::{Tracer, TracerSettings};
    use catalog_core::{Classify, FailureClass};
    use catalog_store::{Provenance, RetentionPolicy};

    let database = TestDatabase::create().await;
    let store = postgres(&database).await;
    let second = |at: DateTime<Utc>| (at - base()).num_seconds();
    let (today, tomorrow, later) =
        (second(Utc::now()), second(start_of_day_from_today(1)), second(start_of_day_from_today(3)));
    let (acme, globex) = (offer("canary", "acme", "ABC-1"), offer("canary", "globex", "ABC-1"));
    let mut events = vec![
        incoming(1, &acme, StockChange::Updated { quantity: 10 }, today, today),
        incoming(2, &globex, StockChange::Updated { quantity: 7 }, tomorrow, tomorrow),
    ];
    events.extend(
        (0..5).map(|n| incoming(10 + n, &acme, StockChange::Adjusted { delta: 1 }, later + n as i64, later + n as i64)),
    );
    store.apply_batch(&batch(events)).await.expect("apply");

    // A pass died after detaching the rows from before partitioning (today's) and tomorrow.
    let mut connection = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    let tomorrow_table = format!("events_{}", start_of_day_from_today(1).format("%Y%m%d"));
    for table in ["events_unpartitioned", tomorrow_table.as_str()] {
        let statement = format!("ALTER TABLE events DETACH PARTITION {table} CONCURRENTLY");
        sqlx::raw_sql(&statement).execute(&mut connection).await.expect("detach");
    }
    let horizon = store.journal_horizon().await.expect("horizon").expect("days detached");
    assert_eq!(horizon.kept_since, Some(start_of_day_from_today(2)), "{horizon:?}");
    let mut replayed = incoming(
        99,
        &offer("canary", "initech", "ABC-1"),
        StockChange::Updated { quantity: 1 },
        tomorrow,
        tomorrow + 60,
    );
    replayed.provenance = Provenance::Replayed;
    match store.apply_batch(&batch(vec![replayed])).await {
        Err(error) => assert_eq!(error.failure_class(), FailureClass::Retryable, "{error}"),
        Ok(result) => panic!("written into a day being archived: {result:?}"),
    }

    let archive_dir = tempfile::tempdir().expect("temp dir");
    let settings = TracerSettings { sweep_per_round: 10, ..TracerSettings::default() };
    let mut sink = TracesWhileWriting {
        archive: catalog_app::retention::NdjsonArchive::new(archive_dir.path()),
        tracer: Tracer::new(store.clone(), settings, Metrics::new()),
        gaps: Vec::new(),
    };
    let policy = RetentionPolicy {
        journal_cutoff: start_of_day_from_today(2),
        claim_cutoff: base() - catalog_core::DEDUPE_HORIZON,
        chunk: 500,
    };
    let report = store.expire_journal(&policy, &mut sink).await.expect("pass");
    let dropped: std::collections::BTreeMap<&str, u64> =
        report.dropped.iter().map(|segment| (segment.name.as_str(), segment.rows)).collect();
    assert_eq!(dropped.get("events_unpartitioned"), Some(&1), "{report:?}");
    assert_eq!(dropped.get(tomorrow_table.as_str()), Some(&1), "{report:?}");
    assert!(
        !sink.gaps.is_empty() && sink.gaps.iter().all(|gaps| *gaps == 0),
        "traced while archiving: {:?}",
        sink.gaps
    );
}

/// A replay that a retention pass overtakes stops: the pass dropped the window's first day,
/// and its claims with it, between two of the replay's batches. Going on, the replay decided
/// that day's events anew (a folded adjustment counted again); it ends before its next batch
/// instead, saying how many events it replayed (`Overtaken`), not refused as if it had done
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_overtaken_by_retention_stops_before_its_next_batch() {
    let directory = tempfile::tempdir().expect("temp dir");
    let database = directory.path().join("catalog.db");
    let store =
        Arc::new(catalog_sqlite::SqliteStore::open_path(&database, StoreConfig::default()).await.expect("open"));
    // Three pages of the window (20,000 rows each): the third page's batches are handed over
    // only once each lane took its second, so its first was applied, and counted, by then.
    // Days past: a replay's window left open ends when it starts.
    let day = start_of_day_from_today(0) - chrono::Duration::days(2) + chrono::Duration::hours(1);
    let events: Vec<IncomingEvent> = (1..=41_000u64).map(|n| event(n, 41_000, day)).collect();
    for chunk in events.chunks(5_000) {
        store.apply_batch(&batch(chunk.to_vec())).await.expect("apply");
    }
    let archive_dir = directory.path().join("archive");
    std::fs::create_dir_all(&archive_dir).expect("archive dir");
    let overtaken = std::sync::atomic::AtomicBool::new(false);
    let progress = |progress: catalog_app::replay::ReplayProgress| {
        if progress.replayed == 0 || overtaken.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // The daily pass of another process (a store of its own on the file, so none of the
        // replay's connections, which its paused lanes may hold, is waited for), on its own
        // runtime, while the replay waits between two batches.
        let (path, archive_dir) = (database.clone(), archive_dir.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let cutoff = start_of_day_from_today(0) - chrono::Duration::days(1);
            let policy = catalog_store::RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: cutoff, chunk: 1_000 };
            let mut archive = catalog_app::retention::NdjsonArchive::new(archive_dir);
            runtime.block_on(async {
                let store = catalog_sqlite::SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open");
                store.expire_journal(&policy, &mut archive).await.expect("the pass")
            });
        })
        .join()
        .expect("the pass ran");
    };
    let request = catalog_app::replay::ReplayRequest {
        tenant: catalog_core::TenantId::parse("canary").expect("tenant"),
        since: start_of_day_from_today(0) - chrono::Duration::days(2),
        until: None,
        supplier: None,
        dry_run: false,
        max_dry_run_events: catalog_app::replay::MAX_DRY_RUN_EVENTS,
        held_only: false,
    };
    let replayed = catalog_app::replay::replay(&*store, &request, &progress).await;
    assert!(overtaken.load(std::sync::atomic::Ordering::SeqCst), "the pass ran between two batches");
    // Told apart from a refusal: some batches were applied before it stopped.
    match replayed {
        Err(overtaken @ catalog_app::replay::ReplayError::Overtaken { replayed, .. }) => {
            assert!(replayed >= 5_000, "at least a batch was replayed: {overtaken}");
            let said = overtaken.to_string();
            assert!(said.contains(&format!("after {replayed} events were replayed")), "{said}");
        }
        other => panic!("{:?}", other.map(|summary| summary.outcomes)),
    }
}
