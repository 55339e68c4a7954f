//! Plan checks of the journal statements every batch runs: each must find its rows through
//! the claim index, never by scanning the journal, which only grows.
//!
//! A statement on `events` that looks rows up by event id can use `events_event_id_decided`
//! only when its `WHERE` clause implies the index's predicate; an update that phrased the
//! outcome test as a `CASE` once scanned the whole journal for every batch with a
//! redelivery. These tests read the plans PostgreSQL picks on a journal of realistic size,
//! both the custom plan of a fresh statement and the generic plan a long-lived connection's
//! prepared statement ends up with.

use catalog_testkit::TestDatabase;
use chrono::Utc;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use catalog_core::EventId;
use catalog_store::batch::{JournalUpdate, Redecided};

use crate::apply::{journal_update_query, LOAD_PRIOR, UPDATE_JOURNAL};

/// Journal rows in the test table. A journal holds far more rows than one batch touches, so
/// a statement that can use the index does, and one that cannot scans: a batch looks up
/// all of its event ids (here one row in a hundred)…
const N_JOURNAL_ROWS: i64 = 50_000;
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
         SELECT md5(n::text)::uuid, 'canary', 'acme', 'SKU-' || (n % 1000), 'inventory.updated', n, now(),
                CASE WHEN n % 10 = 0 THEN 'held' ELSE 'applied' END, n, 'kafka:plans', 0, n
         FROM generate_series(1, $1) AS n",
    )
    .bind(N_JOURNAL_ROWS)
    .execute(&mut connection)
    .await
    .expect("fill the journal");
    sqlx::query("ANALYZE events").execute(&mut connection).await.expect("analyze");
    (database, connection)
}

/// Event ids of `n` journal rows, as the test journal made them.
async fn journal_ids(connection: &mut PgConnection, n: i64) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT md5(n::text)::uuid FROM generate_series(1, $1) AS n")
        .bind(n)
        .fetch_all(connection)
        .await
        .expect("ids")
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// The plan lines of an `EXPLAIN` query.
async fn plan(connection: &mut PgConnection, explain: Query<'_>) -> Vec<String> {
    explain
        .fetch_all(&mut *connection)
        .await
        .expect("explain")
        .iter()
        .map(|row| sqlx::Row::get::<String, _>(row, 0))
        .collect()
}

fn assert_uses_the_claim_index(statement: &str, mode: &str, lines: &[String]) {
    // The plan's nodes (each carries its cost), without their long condition lines.
    let text = lines.iter().filter(|line| line.contains("(cost=")).cloned().collect::<Vec<_>>().join("\n");
    assert!(!text.contains("Seq Scan on events"), "{statement} scans the journal ({mode} plan):\n{text}");
    assert!(
        text.contains("events_event_id_decided"),
        "{statement} does not use the claim index ({mode} plan):\n{text}"
    );
}

/// Both plans a statement can get: custom (the first executions) and generic (later ones).
const PLAN_MODES: [&str; 2] = ["force_custom_plan", "force_generic_plan"];

#[tokio::test]
async fn looking_up_prior_journal_rows_uses_the_claim_index() {
    let (_database, mut connection) = journal_database().await;
    let ids = journal_ids(&mut connection, N_LOOKED_UP).await;
    let explain = format!("EXPLAIN {LOAD_PRIOR}");
    for mode in PLAN_MODES {
        sqlx::query(&format!("SET plan_cache_mode = {mode}")).execute(&mut connection).await.expect("set mode");
        let lines = plan(&mut connection, sqlx::query(&explain).bind(&ids)).await;
        assert_uses_the_claim_index("LOAD_PRIOR", mode, &lines);
    }
}

#[tokio::test]
async fn counting_redeliveries_and_redeciding_held_rows_uses_the_claim_index() {
    let (_database, mut connection) = journal_database().await;
    let ids = journal_ids(&mut connection, N_UPDATED).await;
    // Every tenth row is held: decide those afresh, count a redelivery on the others.
    let updates: Vec<JournalUpdate> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let held = n % 10 == 9;
            JournalUpdate {
                event_id: EventId(*id),
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
    for mode in PLAN_MODES {
        sqlx::query(&format!("SET plan_cache_mode = {mode}")).execute(&mut connection).await.expect("set mode");
        let lines = plan(&mut connection, journal_update_query(&explain, &updates)).await;
        assert_uses_the_claim_index("UPDATE_JOURNAL", mode, &lines);
    }
}
