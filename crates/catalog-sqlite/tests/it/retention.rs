//! SQLite retention deletes only what it archived (decision 0019): a held event decided
//! while its day is being archived is neither deleted nor lost. (Postgres keeps a partition
//! that holds a held event whole, so the race cannot arise there.) The journal's and the
//! publish attempts' horizons move before the chunks they explain are deleted.

use std::sync::Arc;

use catalog_core::{StockChange, DEDUPE_HORIZON};
use catalog_sqlite::SqliteStore;
use catalog_store::contract::{base, batch, event_id, incoming, offer, published};
use catalog_store::prelude::*;
use catalog_store::{
    ArchiveSink, IncomingEvent, JournalEntry, OutboxClaim, Provenance, PublishOutcome, RetentionPolicy, StoreConfig,
};
use sqlx::Connection;

/// An archive during whose finishing the held event's supplier is switched on and the event
/// replayed, as an operator may do while a worker's retention pass runs.
struct SwitchedOnWhileArchiving {
    store: Arc<SqliteStore>,
    replay: Option<IncomingEvent>,
    kept: Kept,
}

impl ArchiveSink for SwitchedOnWhileArchiving {
    fn begin(&mut self, name: &str) -> std::io::Result<()> {
        self.kept.begin(name)
    }

    fn write(&mut self, entries: &[JournalEntry]) -> std::io::Result<()> {
        self.kept.write(entries)
    }

    fn finish(&mut self) -> std::io::Result<String> {
        if let Some(event) = self.replay.take() {
            let store = self.store.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async {
                    let key = event.delivery.decoded.as_ref().expect("valid").offer().clone();
                    store.set_supplier_sync(&key.tenant, &key.supplier, true).await.expect("switch on");
                    store.apply_batch(&batch(vec![event])).await.expect("replay")
                })
            })
            .join()
            .expect("the replay finished");
        }
        self.kept.finish()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_event_decided_while_its_day_is_archived_is_kept() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = Arc::new(
        SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("open"),
    );
    let (key, held_key) = (offer("canary", "acme", "ABC-1"), offer("canary", "globex", "ABC-1"));
    store.set_supplier_sync(&held_key.tenant, &held_key.supplier, false).await.expect("switch off");
    let held = incoming(2, &held_key, StockChange::Updated { quantity: 7 }, 0, 2);
    // The held row lies between two rows of its day, inside the ids the day's drop deletes.
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, 1),
        held.clone(),
        incoming(3, &key, StockChange::Adjusted { delta: 1 }, 3, 3),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");

    let mut replay = held;
    replay.provenance = Provenance::Replayed;
    let mut sink = SwitchedOnWhileArchiving { store: store.clone(), replay: Some(replay), kept: Kept::default() };
    let policy = RetentionPolicy {
        journal_cutoff: base() + chrono::Duration::days(1),
        claim_cutoff: base() - DEDUPE_HORIZON,
        chunk: 10,
    };
    store.expire_journal(&policy, &mut sink).await.expect("retention pass");
    let archived: Vec<_> = sink.kept.archived.iter().map(|entry| entry.event_id).collect();
    assert_eq!(
        archived,
        [Some(event_id(1)), Some(event_id(3))],
        "the held row was not archived: it was held when read"
    );

    let item_id = held_key.item_key().item_id();
    let trace = store.item_trace(item_id).await.expect("trace").expect("the item exists");
    let row = trace.events.iter().find(|entry| entry.event_id == Some(event_id(2)));
    assert_eq!(row.map(|entry| entry.outcome.as_str()), Some("applied"), "its decided row is kept: {:?}", trace.events);

    // The next pass archives it, under a name of its own.
    let mut next = SwitchedOnWhileArchiving { store: store.clone(), replay: None, kept: Kept::default() };
    store.expire_journal(&policy, &mut next).await.expect("retention pass");
    let archived: Vec<_> = next.kept.archived.iter().map(|entry| (entry.event_id, entry.outcome.as_str())).collect();
    assert_eq!(archived, [(Some(event_id(2)), "applied")]);
}

/// A redelivery counted on a row after the pass read it, while its archive is finished: the
/// row is not deleted with the count the archive lacks, but kept, and archived again by the
/// next pass. Whichever way, the delivery is on record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_counted_while_its_day_is_archived_is_not_lost() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = Arc::new(
        SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("open"),
    );
    let key = offer("canary", "acme", "ABC-1");
    let first = incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, 1);
    let events = vec![first.clone(), incoming(3, &key, StockChange::Adjusted { delta: 1 }, 3, 3)];
    store.apply_batch(&batch(events)).await.expect("apply");

    // The same event delivered again while the archive is finished: a duplicate, counted.
    let mut sink = SwitchedOnWhileArchiving { store: store.clone(), replay: Some(first), kept: Kept::default() };
    let policy = RetentionPolicy {
        journal_cutoff: base() + chrono::Duration::days(1),
        claim_cutoff: base() - DEDUPE_HORIZON,
        chunk: 10,
    };
    store.expire_journal(&policy, &mut sink).await.expect("retention pass");
    let archived =
        sink.kept.archived.iter().find(|entry| entry.event_id == Some(event_id(1))).map(|e| e.redelivery_count);
    let trace = store.item_trace(key.item_key().item_id()).await.expect("trace").expect("the item exists");
    let kept = trace.events.iter().find(|entry| entry.event_id == Some(event_id(1))).map(|e| e.redelivery_count);
    assert!(
        archived == Some(1) || kept == Some(1),
        "the redelivery is neither archived ({archived:?}) nor in the journal ({kept:?})"
    );
}

/// An archive that keeps what it is given.
#[derive(Default)]
struct Kept {
    archived: Vec<JournalEntry>,
}

impl ArchiveSink for Kept {
    fn begin(&mut self, _name: &str) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&mut self, entries: &[JournalEntry]) -> std::io::Result<()> {
        self.archived.extend_from_slice(entries);
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<String> {
        Ok("memory:day".to_owned())
    }
}

/// A pass that starts while a batch deciding held events is being written: the batch takes
/// its time before the pass does, but commits after the pass has begun reading. Whatever
/// the pass deletes, it archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_started_during_a_batch_deletes_nothing_it_did_not_archive() {
    a_pass_started_during_a_replay_deletes_nothing_it_did_not_archive(false).await;
}

/// The same, with the replay run by another process on the same file (the admin API switching
/// a supplier on, or `replay`): its batch takes its time in its own transaction, which the
/// pass's start waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_started_during_another_process_s_batch_deletes_nothing_it_did_not_archive() {
    a_pass_started_during_a_replay_deletes_nothing_it_did_not_archive(true).await;
}

async fn a_pass_started_during_a_replay_deletes_nothing_it_did_not_archive(other_process: bool) {
    const HELD: u64 = 3_000;
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("catalog.db");
    let store = Arc::new(SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open"));
    let replayer = match other_process {
        true => Arc::new(SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open again")),
        false => store.clone(),
    };
    let (key, held_supplier) = (offer("canary", "acme", "ABC-1"), offer("canary", "globex", "ABC-1"));
    store.set_supplier_sync(&held_supplier.tenant, &held_supplier.supplier, false).await.expect("switch off");
    let held_key = |n: u64| offer("canary", "globex", &format!("HELD-{n}"));
    let held: Vec<_> =
        (2..HELD + 2).map(|n| incoming(n, &held_key(n), StockChange::Updated { quantity: 7 }, 0, 2)).collect();
    let mut events = vec![incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, 1)];
    events.extend(held.iter().cloned());
    events.push(incoming(HELD + 2, &key, StockChange::Adjusted { delta: 1 }, 3, 3));
    store.apply_batch(&batch(events)).await.expect("apply");

    store.set_supplier_sync(&held_supplier.tenant, &held_supplier.supplier, true).await.expect("switch on");
    let replay: Vec<_> = held
        .into_iter()
        .map(|mut event| {
            event.provenance = Provenance::Replayed;
            event
        })
        .collect();
    let replaying = tokio::spawn({
        let store = replayer.clone();
        async move { store.apply_batch(&batch(replay)).await.expect("replay") }
    });
    // The replay's writer job has taken its time and is writing (about half a second for
    // this batch in a debug build): the pass starts and reads while it writes.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let policy = RetentionPolicy {
        journal_cutoff: base() + chrono::Duration::days(1),
        claim_cutoff: base() - DEDUPE_HORIZON,
        chunk: 10,
    };
    let mut sink = Kept::default();
    store.expire_journal(&policy, &mut sink).await.expect("retention pass");
    replaying.await.expect("the replay finished");

    let archived: std::collections::HashSet<_> = sink.archived.iter().filter_map(|entry| entry.event_id).collect();
    let mut lost = Vec::new();
    for n in 2..HELD + 2 {
        let trace = store.item_trace(held_key(n).item_key().item_id()).await.expect("trace").expect("the item exists");
        let kept = trace.events.iter().any(|entry| entry.event_id == Some(event_id(n)));
        if !kept && !archived.contains(&event_id(n)) {
            lost.push(n);
        }
    }
    assert!(lost.is_empty(), "{} journal rows deleted unarchived, first {:?}", lost.len(), lost.first());
}

/// The journal's horizon moves past a day before its rows are deleted, chunk by chunk: a
/// reader (the tracer) that sees the day partly deleted sees the horizon past it already, and
/// makes up what the gone rows held instead of naming their items untraced. Before, the
/// horizon moved after the last chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_partly_deleted_is_already_past_the_horizon() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = Arc::new(
        SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("open"),
    );
    let key = offer("canary", "acme", "ABC-1");
    let events: Vec<_> =
        (0..2_000u64).map(|n| incoming(n + 1, &key, StockChange::Adjusted { delta: 1 }, n as i64, n as i64)).collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let policy = RetentionPolicy {
        journal_cutoff: base() + chrono::Duration::days(1),
        claim_cutoff: base() - DEDUPE_HORIZON,
        chunk: 1,
    };
    let watcher = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..100_000 {
                let rows =
                    store.item_trace(key.item_key().item_id()).await.expect("trace").map_or(0, |t| t.events.len());
                let horizon = store.journal_horizon().await.expect("horizon").and_then(|h| h.kept_since);
                seen.push((rows, horizon.is_some()));
                if rows == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    store.expire_journal(&policy, &mut Kept::default()).await.expect("retention pass");
    let seen = watcher.await.expect("watcher");
    let partly: Vec<_> = seen.iter().filter(|(rows, _)| (1..2_000).contains(rows)).collect();
    assert!(!partly.is_empty(), "the day was seen partly deleted: {seen:?}");
    assert!(partly.iter().all(|(_, past)| *past), "partly deleted before the horizon moved: {partly:?}");
}

/// The publish attempts' horizon moves past a day before its attempts are deleted, chunk by
/// chunk: a pass that fails after a chunk was deleted (here, a trigger refusing the second
/// one) leaves no attempt gone that the horizon does not count. Before, the horizon moved
/// after the last chunk, and a trace read then showed attempts gone with no "kept since".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_deleted_by_a_pass_that_failed_are_already_past_the_horizon() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("catalog.db");
    let store = SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open");
    let (a, b) = (offer("canary", "acme", "A-1"), offer("canary", "acme", "B-1"));
    let events = vec![
        incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1),
        incoming(2, &b, StockChange::Updated { quantity: 5 }, 0, 1),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let claim = OutboxClaim::immediate(10, std::time::Duration::from_secs(30));
    let claimed = store.claim_outbox("storefront", &claim).await.expect("claim");
    let records: Vec<_> = claimed.iter().map(|entry| published(entry, PublishOutcome::Published)).collect();
    store.record_publishes(&records).await.expect("record");

    // Both attempts made on the fixtures' day; the second delete of the pass is refused (the
    // counting table's row of a refused delete rolls back with it).
    let attempted_at = base() + chrono::Duration::hours(1);
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await.expect("raw connection");
    sqlx::query("UPDATE publish_attempts SET attempted_at = ?1")
        .bind(attempted_at.timestamp_micros())
        .execute(&mut connection)
        .await
        .expect("backdate");
    for statement in [
        "CREATE TABLE attempts_deleted (attempt_id INTEGER)",
        "CREATE TRIGGER second_delete_refused BEFORE DELETE ON publish_attempts BEGIN \
         SELECT RAISE(ABORT, 'injected') WHERE (SELECT count(*) FROM attempts_deleted) >= 1; \
         INSERT INTO attempts_deleted VALUES (old.attempt_id); END",
    ] {
        sqlx::query(statement).execute(&mut connection).await.expect(statement);
    }

    let policy = RetentionPolicy {
        journal_cutoff: base() + chrono::Duration::days(1),
        claim_cutoff: base() - DEDUPE_HORIZON,
        chunk: 1,
    };
    store.expire_journal(&policy, &mut Kept::default()).await.expect_err("the second delete is refused");
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM publish_attempts").fetch_one(&mut connection).await.expect("count");
    assert_eq!(kept, 1, "the first chunk was deleted, the second refused");
    let horizon = store.journal_horizon().await.expect("horizon").and_then(|horizon| horizon.attempts_kept_since);
    assert!(
        horizon.is_some_and(|kept_since| kept_since > attempted_at),
        "an attempt is gone, but the horizon ({horizon:?}) does not count it"
    );
}

/// An archive during whose finishing a second store on the same file (another worker, or a
/// deploy's new one beside the old) runs its own pass.
struct PassBeside {
    beside: Option<Arc<SqliteStore>>,
    report: Option<catalog_store::RetentionReport>,
    beside_archived: Vec<JournalEntry>,
    kept: Kept,
}

impl ArchiveSink for PassBeside {
    fn begin(&mut self, name: &str) -> std::io::Result<()> {
        self.kept.begin(name)
    }

    fn write(&mut self, entries: &[JournalEntry]) -> std::io::Result<()> {
        self.kept.write(entries)
    }

    fn finish(&mut self) -> std::io::Result<String> {
        if let Some(store) = self.beside.take() {
            let (report, archived) = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async {
                    let mut sink = Kept::default();
                    let report = store.expire_journal(&one_day_policy(), &mut sink).await.expect("the pass beside");
                    (report, sink.archived)
                })
            })
            .join()
            .expect("the pass beside ended");
            self.report = Some(report);
            self.beside_archived = archived;
        }
        self.kept.finish()
    }
}

fn one_day_policy() -> RetentionPolicy {
    RetentionPolicy {
        journal_cutoff: base() + chrono::Duration::days(1),
        claim_cutoff: base() - DEDUPE_HORIZON,
        chunk: 10,
    }
}

/// Two stores on one file run retention at once: one archives and drops, the other does
/// nothing and says so, as on PostgreSQL (its advisory lock). Both archived the same day
/// before, and the horizon named whichever archive was finished last, possibly the copy of a
/// pass that read the day while the other deleted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_beside_another_on_the_same_file_does_nothing_and_says_so() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("catalog.db");
    let store = Arc::new(SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open"));
    let key = offer("canary", "acme", "ABC-1");
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, 1),
        incoming(2, &key, StockChange::Adjusted { delta: 1 }, 2, 2),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    let beside = Arc::new(SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open beside"));
    let mut sink =
        PassBeside { beside: Some(beside), report: None, beside_archived: Vec::new(), kept: Kept::default() };
    let report = store.expire_journal(&one_day_policy(), &mut sink).await.expect("retention pass");
    assert!(!report.another_pass_running);
    assert_eq!(sink.kept.archived.len(), 2, "the first pass archived the day");
    let beside = sink.report.expect("the pass beside ran");
    assert!(beside.another_pass_running, "{beside:?}");
    assert!(sink.beside_archived.is_empty() && beside.dropped.is_empty(), "the pass beside archived nothing");

    // Once the first pass ended, the next one runs.
    let again = store.expire_journal(&one_day_policy(), &mut Kept::default()).await.expect("next pass");
    assert!(!again.another_pass_running);
}

/// An archive that keeps the names it was begun under.
#[derive(Default)]
struct Named {
    names: Vec<String>,
    kept: Kept,
}

impl ArchiveSink for Named {
    fn begin(&mut self, name: &str) -> std::io::Result<()> {
        self.names.push(name.to_owned());
        self.kept.begin(name)
    }

    fn write(&mut self, entries: &[JournalEntry]) -> std::io::Result<()> {
        self.kept.write(entries)
    }

    fn finish(&mut self) -> std::io::Result<String> {
        self.kept.finish()
    }
}

/// A batch whose events were received either side of midnight (one partition's messages a
/// second before it, another's a second after) journals its rows with the two days mixed: the
/// pass archives them in one file per day begun, the few rows of the day before that come
/// after the next day's first in the first's file. It began a new file at every change of
/// day, back and forth: thousands of files a midnight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_either_side_of_midnight_in_one_batch_are_archived_in_a_file_per_day() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (store, _, policy) = either_side_of_midnight(&directory, "acme", 40, 7).await;
    let mut sink = Named::default();
    let report = store.expire_journal(&policy, &mut sink).await.expect("retention pass");
    assert_eq!(sink.kept.archived.len(), 40, "every row archived once");
    assert!(sink.names.len() <= 2, "a file per day at most: {:?}", sink.names);
    assert_eq!(report.dropped.iter().map(|segment| segment.rows).sum::<u64>(), 40, "every row deleted once");
}

/// A store in `directory` with `n` events of `supplier` (switched off when `globex`) applied
/// in one batch, received alternately a second before and after the midnight after the
/// fixtures' base; that midnight, and a pass's policy past the next one in chunks of `chunk`.
async fn either_side_of_midnight(
    directory: &tempfile::TempDir,
    supplier: &str,
    n: u64,
    chunk: usize,
) -> (SqliteStore, chrono::DateTime<chrono::Utc>, RetentionPolicy) {
    let store =
        SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("open");
    let midnight = base().date_naive().succ_opt().expect("a next day").and_time(chrono::NaiveTime::MIN).and_utc();
    let second = |offset: i64| (midnight - base()).num_seconds() + offset;
    if supplier == "globex" {
        let switched_off = offer("canary", supplier, "SKU-0");
        store.set_supplier_sync(&switched_off.tenant, &switched_off.supplier, false).await.expect("flag");
    }
    let events: Vec<IncomingEvent> = (1..=n)
        .map(|n| {
            let key = offer("canary", supplier, &format!("SKU-{n}"));
            incoming(n, &key, StockChange::Updated { quantity: 1 }, 0, second(if n % 2 == 0 { 1 } else { -1 }))
        })
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let journal_cutoff = midnight + chrono::Duration::days(1);
    (store, midnight, RetentionPolicy { journal_cutoff, claim_cutoff: base() - DEDUPE_HORIZON, chunk })
}

/// Held rows either side of midnight in one batch alternate between two dates in journal
/// order; the pass reports each day once, with all of its held rows. Before, it reported a
/// segment per change of date: tens of entries of one name, each warned about every hour, and
/// `catalog_journal_segments_kept_past_retention` counting them.
#[tokio::test]
async fn held_rows_either_side_of_midnight_are_reported_a_day_each() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (store, midnight, policy) = either_side_of_midnight(&directory, "globex", 10, 3).await;
    let report = store.expire_journal(&policy, &mut Named::default()).await.expect("retention pass");
    let kept: Vec<(&str, u64)> =
        report.kept.iter().map(|segment| (segment.name.as_str(), segment.held_events)).collect();
    let name = |date: chrono::NaiveDate| format!("events_{}", date.format("%Y%m%d"));
    let (before, after) = (name(base().date_naive()), name(midnight.date_naive()));
    assert_eq!(kept, [(before.as_str(), 5), (after.as_str(), 5)]);
}

/// A claim prune that fails fails the pass, but only after the steps that follow it ran:
/// resolved dead letters past the retention are still deleted (as on PostgreSQL). Before, the
/// failed prune ended the pass at once, every pass, and the tables behind it grew.
#[tokio::test]
async fn a_claim_prune_that_fails_leaves_the_other_steps_done() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("catalog.db");
    let store = SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await.expect("raw connection");
    let long_ago = (base() - chrono::Duration::days(40)).timestamp_micros();
    for statement in [
        format!("INSERT INTO event_claims (event_id, fingerprint, received_at) VALUES (x'00112233445566778899aabbccddeeff', 1, {long_ago})"),
        format!(
            "INSERT INTO dead_letters (stage, subject, channel, reason, first_failed_at, last_failed_at, resolved_at) \
             VALUES ('publish', 'an-item', 'storefront', 'rejected_by_channel', {long_ago}, {long_ago}, {long_ago})"
        ),
        "CREATE TRIGGER claims_refused BEFORE DELETE ON event_claims BEGIN SELECT RAISE(ABORT, 'injected'); END".to_owned(),
    ] {
        sqlx::query(&statement).execute(&mut connection).await.expect(&statement);
    }
    let cutoff = base() - chrono::Duration::days(1);
    let policy = RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: cutoff, chunk: 100 };
    store.expire_journal(&policy, &mut Named::default()).await.expect_err("the claims cannot be pruned");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letters").fetch_one(&mut connection).await.expect("count");
    assert_eq!(left, 0, "the resolved dead letter past the retention is deleted all the same");
}
