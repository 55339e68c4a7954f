//! Plan checks of the journal statements every batch runs, and of the gate's sample: each
//! must find its rows through an index (the claims' key, a journal partition's key, the
//! tenant's receive order), never by scanning the journal or the claims, which hold weeks of
//! events.
//!
//! An update that phrased the outcome test as a `CASE` once scanned the whole journal for
//! every batch with a redelivery; with the journal partitioned by day (decision 0019) a lookup
//! that cannot name a row's key would scan every partition. These tests read the plans
//! PostgreSQL picks on a journal of realistic size spread over several partitions, both the
//! custom plan of a fresh statement and the generic plan a long-lived connection's prepared
//! statement ends up with (`plans`).

use catalog_testkit::TestDatabase;
use chrono::Utc;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use catalog_core::EventId;
use catalog_store::batch::{JournalUpdate, Redecided};

use crate::apply::{journal_update_query, LOAD_PRIOR, UPDATE_JOURNAL};
use crate::plans::{custom_plan, generic_plan};
use crate::reads::LAST_RECEIVED;
use crate::rollout::APPLIED_ITEMS;

/// Journal rows in the test table. A journal holds far more rows than one batch touches, so
/// a statement that can use the index does, and one that cannot scans: a batch looks up
/// all of its event ids (here one row in a hundred)…
const N_JOURNAL_ROWS: i64 = 160_000;
const N_LOOKED_UP: i64 = N_JOURNAL_ROWS / 100;
/// …and updates the few of them that were redeliveries or held (one in a thousand).
const N_UPDATED: i64 = N_JOURNAL_ROWS / 1_000;

async fn journal_database() -> (TestDatabase, PgConnection) {
    let database = TestDatabase::create().await;
    let mut connection = PgConnection::connect(&database.url).await.expect("connect");
    crate::MIGRATOR.run(&mut connection).await.expect("migrate");
    sqlx::query(
        "INSERT INTO events (event_id, tenant_id, supplier_id, sku, event_type, quantity, received_at, outcome,
                             fingerprint, source, source_partition, source_offset)
         SELECT md5(n::text)::uuid, 'canary', 'acme', 'SKU-' || (n % 1000), 'inventory.updated', n,
                now() + (n % 8) * interval '1 day',
                CASE WHEN n % 10 = 0 THEN 'held' ELSE 'applied' END, n, 'kafka:plans', 0, n
         FROM generate_series(1, $1) AS n",
    )
    .bind(N_JOURNAL_ROWS)
    .execute(&mut connection)
    .await
    .expect("fill the journal");
    sqlx::query(
        "INSERT INTO event_claims (event_id, journal_id, received_at, fingerprint, held)
         SELECT event_id, journal_id, received_at, fingerprint, outcome = 'held' FROM events",
    )
    .execute(&mut connection)
    .await
    .expect("claim the journal's events");
    // Claims outlive their rows (decision 0019): the claims table is the larger one.
    sqlx::query(
        "INSERT INTO event_claims (event_id, journal_id, received_at, fingerprint, held)
         SELECT md5('old' || n)::uuid, -n, now() - interval '20 days', n, false FROM generate_series(1, $1) AS n",
    )
    .bind(N_JOURNAL_ROWS * 3)
    .execute(&mut connection)
    .await
    .expect("older claims");
    sqlx::query("ANALYZE events").execute(&mut connection).await.expect("analyze");
    sqlx::query("ANALYZE event_claims").execute(&mut connection).await.expect("analyze");
    (database, connection)
}

/// Event ids of `n` journal rows, as the test journal made them.
async fn event_ids(connection: &mut PgConnection, n: i64) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT md5(n::text)::uuid FROM generate_series(1, $1) AS n")
        .bind(n)
        .fetch_all(connection)
        .await
        .expect("ids")
}

/// The keys of `n` journal rows: event id, journal id, received time.
async fn row_keys(connection: &mut PgConnection, n: i64) -> Vec<(Uuid, i64, chrono::DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT event_id, journal_id, received_at FROM event_claims WHERE journal_id > 0 ORDER BY journal_id LIMIT $1",
    )
    .bind(n)
    .fetch_all(connection)
    .await
    .expect("keys")
}

fn assert_uses(index: &str, statement: &str, mode: &str, text: &str) {
    assert!(!text.contains("Seq Scan on event"), "{statement} scans the journal or the claims ({mode} plan):\n{text}");
    assert!(text.contains(index), "{statement} does not use {index} ({mode} plan):\n{text}");
}

#[tokio::test]
async fn looking_up_prior_journal_rows_uses_the_claims_key() {
    let (_database, mut connection) = journal_database().await;
    let ids = event_ids(&mut connection, N_LOOKED_UP).await;
    let explain = format!("EXPLAIN {LOAD_PRIOR}");
    let custom = custom_plan(&mut connection, sqlx::query(&explain).bind(&ids)).await;
    let generic = generic_plan(&mut connection, LOAD_PRIOR, &["uuid[]"], &["NULL"]).await;
    for (mode, text) in [("custom", custom), ("generic", generic)] {
        assert_uses("event_claims_pkey", "LOAD_PRIOR", mode, &text);
    }
}

#[tokio::test]
async fn counting_redeliveries_and_redeciding_held_rows_uses_the_partition_keys() {
    let (_database, mut connection) = journal_database().await;
    let keys = row_keys(&mut connection, N_UPDATED).await;
    // Every tenth row is held: decide those afresh, count a redelivery on the others.
    let updates: Vec<JournalUpdate> = keys
        .iter()
        .enumerate()
        .map(|(n, (id, journal_id, received_at))| {
            let held = n % 10 == 9;
            JournalUpdate {
                event_id: EventId(*id),
                journal_id: *journal_id,
                received_at: *received_at,
                redecided: held.then(|| Redecided {
                    outcome: "applied",
                    reason: None,
                    effective_at: Utc::now(),
                    clock_drift_clamped: false,
                }),
                redeliveries_added: i64::from(!held),
                payload_differs: false,
            }
        })
        .collect();
    let explain = format!("EXPLAIN {UPDATE_JOURNAL}");
    let custom = custom_plan(&mut connection, journal_update_query(&explain, &updates)).await;
    // The receive times bound the partitions read: those of the rows updated.
    let received = keys.iter().map(|(_, _, received_at)| *received_at);
    let (earliest, latest) = (received.clone().min().expect("rows"), received.max().expect("rows"));
    let bounds =
        [format!("'{}'::timestamptz", earliest.to_rfc3339()), format!("'{}'::timestamptz", latest.to_rfc3339())];
    let mut arguments = vec!["NULL"; 9];
    arguments.extend(bounds.iter().map(String::as_str));
    let generic = generic_plan(&mut connection, UPDATE_JOURNAL, &[], &arguments).await;
    for (mode, text) in [("custom", custom), ("generic", generic)] {
        assert_uses("_pkey", "UPDATE_JOURNAL", mode, &text);
    }
}

/// The gate's sample walks the tenant's journal in receive order from one pick to the next,
/// each step stopping at its first row (an ordered append of the partitions' indexes).
#[tokio::test]
async fn the_gate_sample_walks_the_tenant_s_receive_index() {
    let (_database, mut connection) = journal_database().await;
    let since = Utc::now() - chrono::Duration::days(1);
    let explain = format!("EXPLAIN {APPLIED_ITEMS}");
    let query = sqlx::query(&explain).bind("canary").bind(since).bind(3_i64);
    let custom = custom_plan(&mut connection, query).await;
    let since = format!("'{}'::timestamptz", since.to_rfc3339());
    let generic =
        generic_plan(&mut connection, APPLIED_ITEMS, &["text", "timestamptz", "int8"], &["'canary'", &since, "3"])
            .await;
    for (mode, text) in [("custom", custom), ("generic", generic)] {
        assert_uses("tenant_received", "APPLIED_ITEMS", mode, &text);
    }
}

/// A tenant's status reads its last receipt and last applied receipt from the newest end of its
/// receive index, where a `max()` over the journal read every row the tenant has.
#[tokio::test]
async fn a_tenant_s_last_receipts_are_read_from_its_receive_index() {
    let (_database, mut connection) = journal_database().await;
    let explain = format!("EXPLAIN {LAST_RECEIVED}");
    let custom = custom_plan(&mut connection, sqlx::query(&explain).bind("canary")).await;
    let generic = generic_plan(&mut connection, LAST_RECEIVED, &["text"], &["'canary'"]).await;
    for (mode, text) in [("custom", custom), ("generic", generic)] {
        assert_uses("tenant_received", "LAST_RECEIVED", mode, &text);
    }
}

/// A replay's page of a journal window reads the tenant's receive index from its cursor and
/// stops at its limit: no scan, and no sort of the rest of the window (which would make a
/// replay's reading grow with the square of its window), held only or not.
#[tokio::test]
async fn a_journal_window_s_page_reads_from_its_cursor_and_stops_at_its_limit() {
    let (_database, mut connection) = journal_database().await;
    let (since, cursor) = (Utc::now() - chrono::Duration::days(1), Utc::now() + chrono::Duration::days(3));
    // Both indexes are on (tenant_id, received_at): the partitions' copies are named after
    // those columns, and the held rows' partial one is told by no filter on the outcome.
    for held_only in [false, true] {
        let statement = crate::reads::window_page_statement(held_only);
        let explain = format!("EXPLAIN {statement}");
        let query = sqlx::query(&explain)
            .bind("canary")
            .bind(cursor)
            .bind(None::<chrono::DateTime<Utc>>)
            .bind(None::<String>)
            .bind(80_000_i64)
            // A page far smaller than what follows its cursor, as in a replay of a long window.
            .bind(1_000_i64);
        let custom = crate::plans::custom_plan_with_conditions(&mut connection, query).await;
        let generic = generic_plan(
            &mut connection,
            &statement,
            &["text", "timestamptz", "timestamptz", "text", "int8", "int8"],
            &["'canary'", &format!("'{}'::timestamptz", since.to_rfc3339()), "NULL", "NULL", "80000", "1000"],
        )
        .await;
        for (mode, text) in [("custom", &custom), ("generic", &generic)] {
            assert_uses("tenant_id_received_at_idx", "the window page", mode, text);
            let sorts_all =
                text.lines().any(|line| line.trim_start().trim_start_matches("->  ").starts_with("Sort  ("));
            assert!(!sorts_all, "the window page sorts the rest of the window ({mode} plan):\n{text}");
        }
        assert!(custom.contains("received_at >= "), "the page's index reading starts at its cursor:\n{custom}");
        let filters_held = custom.lines().any(|line| line.contains("Filter:") && line.contains("'held'"));
        assert!(!filters_held, "held rows are read through their partial index:\n{custom}");
    }
}
