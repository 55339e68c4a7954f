//! A claim is never pruned before its journal row (decision 0019). Claims are pruned row by
//! row at the cutoff, the journal in whole days: the day holding the cutoff stays, and so must
//! its rows' claims. Without them, a replay of that day (`replay --since` the journal's first
//! kept day, which the tool allows) or any delivery with the rows' own receive time was
//! decided anew: a folded adjustment counted twice (found by review).

use catalog_core::StockChange;
use catalog_store::contract::{base, batch, event_id, incoming, offer};
use catalog_store::{ArchiveSink, JournalEntry, RetentionPolicy, StoreConfig};
use catalog_testkit::TestDatabase;
use chrono::{DateTime, Days, NaiveTime, Utc};
use sqlx::{Connection, PgConnection};

use crate::connect;

/// An archive that keeps nothing.
struct Discard;

impl ArchiveSink for Discard {
    fn begin(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &[JournalEntry]) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<String> {
        Ok("discarded".to_owned())
    }
}

/// `hour` o'clock (UTC) of the day `days` from today, in seconds from the fixtures' base: days
/// from tomorrow on have partitions of their own (made ahead), where older rows share the one
/// from before partitioning.
fn at_day_from_today(days: u64, hour: i64) -> DateTime<Utc> {
    let midnight = Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc();
    midnight.checked_add_days(Days::new(days)).expect("in range") + chrono::Duration::hours(hour)
}

fn received_second(at: DateTime<Utc>) -> i64 {
    (at - base()).num_seconds()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_kept_as_long_as_its_journal_day() {
    let database = TestDatabase::create().await;
    let store = connect(&database, StoreConfig::default()).await;
    let (key, held_key) = (offer("canary", "acme", "ABC-1"), offer("canary", "globex", "ABC-1"));
    // Day 1: an applied event and a held one (its supplier off); day 2: an applied event;
    // day 3: an applied event before the cutoff.
    catalog_store::FlagStore::set_supplier_sync(&store, &held_key.tenant, &held_key.supplier, false)
        .await
        .expect("switch globex off");
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, received_second(at_day_from_today(1, 3))),
        incoming(2, &held_key, StockChange::Updated { quantity: 7 }, 5, received_second(at_day_from_today(1, 4))),
        incoming(3, &key, StockChange::Adjusted { delta: 5 }, 10, received_second(at_day_from_today(2, 3))),
        incoming(4, &key, StockChange::Adjusted { delta: 1 }, 20, received_second(at_day_from_today(3, 3))),
    ];
    catalog_store::BatchStore::apply_batch(&store, &batch(events)).await.expect("apply");

    // The cutoff falls inside day 3, after its row: day 1 is kept for its held event, day 2
    // goes, day 3 stays (the partition from before partitioning, ending today, goes too).
    let cutoff = at_day_from_today(3, 10);
    let policy = RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: cutoff, chunk: 100 };
    catalog_store::RetentionStore::expire_journal(&store, &policy, &mut Discard).await.expect("expire");

    let mut connection = PgConnection::connect(&database.url).await.expect("connect");
    let claims: Vec<(uuid::Uuid, bool)> = sqlx::query_as(
        "SELECT c.event_id, EXISTS (SELECT 1 FROM events AS e WHERE e.event_id = c.event_id)
         FROM event_claims AS c ORDER BY c.event_id",
    )
    .fetch_all(&mut connection)
    .await
    .expect("claims");
    let kept = [(event_id(1).0, true), (event_id(2).0, true), (event_id(4).0, true)];
    assert_eq!(claims, kept, "the claims of the days still there, and only those: day 2's went with its rows");
}

/// The horizon moves before a day is dropped: a pass that fails between the two (here the
/// horizon's write waits out the lock timeout behind another session) leaves the day
/// detached, which the horizon counts, not dropped and forgotten. Dropped first, the horizon
/// went back: a trace had no retention note, and replay took a `--since` the journal no longer
/// held, until the next day's drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_that_fails_after_archiving_a_day_leaves_the_horizon_past_it() {
    let database = TestDatabase::create().await;
    let options = catalog_postgres::PostgresOptions {
        lock_timeout: std::time::Duration::from_millis(300),
        ..catalog_postgres::PostgresOptions::default()
    };
    let store = catalog_postgres::PostgresStore::connect(&database.url, StoreConfig::default(), options)
        .await
        .expect("connect");
    let key = offer("canary", "acme", "ABC-1");
    let events = vec![
        incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, received_second(at_day_from_today(1, 3))),
        incoming(2, &key, StockChange::Adjusted { delta: 1 }, 20, received_second(at_day_from_today(3, 3))),
    ];
    catalog_store::BatchStore::apply_batch(&store, &batch(events)).await.expect("apply");

    let mut holder = PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("LOCK TABLE journal_retention IN EXCLUSIVE MODE").execute(&mut holder).await.expect("lock");
    let cutoff = at_day_from_today(3, 0);
    let policy = RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: base(), chunk: 100 };
    catalog_store::RetentionStore::expire_journal(&store, &policy, &mut Discard)
        .await
        .expect_err("the horizon's write timed out");
    sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release");

    let horizon = catalog_store::RetentionStore::journal_horizon(&store).await.expect("horizon");
    // The first day the pass took (the partition from before partitioning, ending today) is
    // detached and archived, and counted gone.
    let kept_since = horizon.and_then(|horizon| horizon.kept_since);
    assert_eq!(kept_since, Some(at_day_from_today(1, 0)), "the horizon did not go back");
    // The next pass finishes the day.
    catalog_store::RetentionStore::expire_journal(&store, &policy, &mut Discard).await.expect("expire");
    let horizon = catalog_store::RetentionStore::journal_horizon(&store).await.expect("horizon").expect("recorded");
    assert!(horizon.kept_since.is_some_and(|kept_since| kept_since > at_day_from_today(1, 3)), "{horizon:?}");
}

/// A batch for a day whose detach is still pending (`DETACH … CONCURRENTLY` cut off while it
/// waited for an older snapshot) is refused as retryable, as for a day detached: the row waits
/// for the pass. It was refused as the database's error, for an operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_for_a_day_whose_detach_is_pending_is_retried() {
    let database = TestDatabase::create().await;
    let store = connect(&database, StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    let day = at_day_from_today(2, 3);
    let first = vec![incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, received_second(day))];
    catalog_store::BatchStore::apply_batch(&store, &batch(first)).await.expect("apply");

    // An older snapshot holds the detach's second step until its statement timeout.
    let mut reader = PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ").execute(&mut reader).await.expect("begin");
    sqlx::query("SELECT count(*) FROM events").execute(&mut reader).await.expect("snapshot");
    let mut detacher = PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query("SET statement_timeout = 500").execute(&mut detacher).await.expect("timeout");
    let name = format!("events_{}", day.format("%Y%m%d"));
    sqlx::raw_sql(&format!("ALTER TABLE events DETACH PARTITION {name} CONCURRENTLY"))
        .execute(&mut detacher)
        .await
        .expect_err("cut off while it waits");
    sqlx::query("ROLLBACK").execute(&mut reader).await.expect("release");
    let pending: bool = sqlx::query_scalar(
        "SELECT i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname = $1",
    )
    .bind(&name)
    .fetch_one(&mut detacher)
    .await
    .expect("pending");
    assert!(pending, "the detach is left pending");

    let second = vec![incoming(2, &key, StockChange::Updated { quantity: 11 }, 5, received_second(day))];
    let refused =
        catalog_store::BatchStore::apply_batch(&store, &batch(second.clone())).await.expect_err("the day is held");
    assert!(matches!(refused, catalog_store::StoreError::Unavailable(_)), "{refused:?}");

    // The next pass finishes the detach, archives the day and drops it; the batch then goes in.
    let cutoff = at_day_from_today(3, 0);
    let policy = RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: base(), chunk: 100 };
    let report = catalog_store::RetentionStore::expire_journal(&store, &policy, &mut Discard).await.expect("expire");
    assert!(report.dropped.iter().any(|segment| segment.name == name), "{report:?}");
    catalog_store::BatchStore::apply_batch(&store, &batch(second)).await.expect("the batch goes in once the day went");
}

/// A claim prune that fails (here refused; at scale, a statement timeout) fails the pass, but
/// only after the steps that follow it ran: resolved dead letters past the retention are still
/// deleted. Before, the failed prune ended the pass at once, every pass, and the attempts,
/// drifts and dead letters behind it grew without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_prune_that_fails_leaves_the_other_steps_done() {
    let database = TestDatabase::create().await;
    let store = connect(&database, StoreConfig::default()).await;
    let mut connection = PgConnection::connect(&database.url).await.expect("connect");
    for statement in [
        "INSERT INTO dead_letters (stage, subject, channel, reason, first_failed_at, last_failed_at, resolved_at) \
         VALUES ('publish', 'an-item', 'storefront', 'rejected_by_channel', now() - interval '40 days', \
         now() - interval '40 days', now() - interval '39 days')",
        "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no delete here'; END $$",
        "CREATE TRIGGER refuse_delete BEFORE DELETE ON event_claims FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete()",
    ] {
        sqlx::query(statement).execute(&mut connection).await.expect(statement);
    }
    // Past the days the journal has partitions for, so that claims are pruned at all.
    let cutoff = at_day_from_today(5, 0);
    let policy = RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: cutoff, chunk: 100 };
    catalog_store::RetentionStore::expire_journal(&store, &policy, &mut Discard)
        .await
        .expect_err("the claims cannot be pruned");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letters").fetch_one(&mut connection).await.expect("count");
    assert_eq!(left, 0, "the resolved dead letter past the retention is deleted all the same");
}

/// An outbox row that cannot be read (here a SKU the rules refuse, as one stored before a
/// rule changed would be) is left out of the claim, and the rows claimed with it are sent:
/// before, the claim failed after leasing them all, none was sent, and the row came first
/// in line again at the lease's end. The row stays in the outbox for an operator.
#[tokio::test]
async fn an_unreadable_outbox_row_does_not_stop_its_channel() {
    use catalog_store::contract::{an_unreadable_outbox_row_is_left_out, queue_two_items, MAKE_A_1_UNREADABLE};
    let database = TestDatabase::create().await;
    let store = connect(&database, StoreConfig::default()).await;
    queue_two_items(&store).await;
    let mut connection = PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query(MAKE_A_1_UNREADABLE).execute(&mut connection).await.expect("corrupt");
    an_unreadable_outbox_row_is_left_out(&store).await;
}
