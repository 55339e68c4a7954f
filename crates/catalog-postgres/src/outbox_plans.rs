//! Plan checks of the outbox statements every publish round runs: each must find its rows
//! through an index, never by scanning the outbox. The outbox holds one live row per item
//! and channel, but every batch and every round rewrites rows, so between vacuums it holds
//! many more row versions than live rows, and a scan reads them all.
//!
//! The claim once joined the rows it picked back to the outbox through a CTE; PostgreSQL
//! hashed the picked ids and scanned the whole table for every claim, the publishers' main
//! cost under load (issue #18's fan-out benchmark). These tests read the plans PostgreSQL
//! picks, custom and generic, on an outbox of realistic size.

use catalog_testkit::TestDatabase;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use catalog_core::ItemId;
use catalog_store::{PublishOutcome, PublishRecord};

use crate::outbox::{CLAIM, EXTEND, RELEASE};
use crate::plans::{custom_plan, custom_plan_with_conditions, generic_plan};
use crate::recording::{Fence, RoundArrays, Step, RECORD_ROUND};

const CHANNELS: [&str; 5] = ["storefront", "shopify", "amazon", "walmart", "ebay"];
/// Items with a row waiting on every channel.
const N_ITEMS: i64 = 4_000;
/// Items one round claims and records.
const ROUND: i64 = 64;

async fn outbox_database() -> (TestDatabase, PgConnection) {
    let database = TestDatabase::create().await;
    let mut connection = PgConnection::connect(&database.url).await.expect("connect");
    crate::MIGRATOR.run(&mut connection).await.expect("migrate");
    sqlx::query(
        "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel, enqueued_at, first_enqueued_at)
         SELECT md5(n::text)::uuid, 'canary', 'SKU-' || n, n, 1, c,
                now() - (n % 100) * interval '10 ms', now() - (n % 100) * interval '20 ms'
         FROM generate_series(1, $1) AS n, unnest($2::text[]) AS c",
    )
    .bind(N_ITEMS)
    .bind(&CHANNELS[..])
    .execute(&mut connection)
    .await
    .expect("fill the outbox");
    sqlx::query("ANALYZE outbox").execute(&mut connection).await.expect("analyze");
    (database, connection)
}

/// Neither the custom nor the generic plan of `what` holds `scan`, and both use every one of
/// `indexes`.
fn assert_finds_by_index(what: &str, [custom, generic]: [String; 2], scan: &str, indexes: &[&str]) {
    for (mode, text) in [("custom", custom), ("generic", generic)] {
        assert!(!text.contains(scan), "{what} scans the outbox ({mode} plan):\n{text}");
        for index in indexes {
            assert!(text.contains(index), "{what} does not use {index} ({mode} plan):\n{text}");
        }
    }
}

#[tokio::test]
async fn claiming_walks_the_channel_index_and_updates_by_key() {
    let (_database, mut connection) = outbox_database().await;
    let explain = format!("EXPLAIN {CLAIM}");
    let query = sqlx::query(&explain).bind("amazon").bind(ROUND).bind(60.0_f64).bind(0.05_f64).bind(0.25_f64);
    let custom = custom_plan(&mut connection, query).await;
    let generic = generic_plan(&mut connection, CLAIM, &[], &["NULL"; 5]).await;
    assert_finds_by_index(
        "the claim",
        [custom, generic],
        "Seq Scan",
        &["outbox_channel_fresh", "outbox_channel_retry", "outbox_pkey"],
    );
}

/// A channel that is down: most of its rows wait out a backoff, apart from the rows on their
/// first run. The claim's walk of them is bounded by the retry time in the index (`Index
/// Cond`), not a filter over every row it passes (decision 0057: 29 ms a claim behind 100,000
/// rows in backoff before).
#[tokio::test]
async fn claiming_on_a_channel_in_backoff_walks_only_the_due_rows() {
    let (_database, mut connection) = outbox_database().await;
    sqlx::query(
        "UPDATE outbox SET available_at = now() + interval '1 hour', retry_at = now() + interval '1 hour',
                attempts = 1
         WHERE channel = 'amazon'",
    )
    .execute(&mut connection)
    .await
    .expect("amazon is down");
    sqlx::query("ANALYZE outbox").execute(&mut connection).await.expect("analyze");
    let explain = format!("EXPLAIN {CLAIM}");
    let query = sqlx::query(&explain).bind("amazon").bind(ROUND).bind(60.0_f64).bind(0.05_f64).bind(0.25_f64);
    let plan = custom_plan_with_conditions(&mut connection, query).await;
    let bounded = plan.lines().any(|line| line.contains("Index Cond") && line.contains("retry_at <= now()"));
    assert!(bounded, "the walk of the rows put off is not bounded by their retry time:\n{plan}");
    assert!(plan.contains("outbox_channel_fresh"), "the rows on their first run are not walked apart:\n{plan}");
    assert!(!plan.contains("Seq Scan"), "the claim scans the outbox:\n{plan}");
}

/// The item ids of a round.
async fn round_ids(connection: &mut PgConnection) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT md5(n::text)::uuid FROM generate_series(1, $1) AS n")
        .bind(ROUND)
        .fetch_all(connection)
        .await
        .expect("ids")
}

#[tokio::test]
async fn locking_a_round_finds_each_row_by_key() {
    let (_database, mut connection) = outbox_database().await;
    let ids = round_ids(&mut connection).await;
    let channels = vec!["walmart"; ids.len()];
    let claims: Vec<Option<uuid::Uuid>> = ids.iter().map(|id| Some(*id)).collect();
    let fences = [Fence::Claims, Fence::None, Fence::Mixed];
    for statement in fences.into_iter().flat_map(|fence| [fence.lock(Step::Record), fence.lock(Step::Release)]) {
        let explain = format!("EXPLAIN {statement}");
        let custom = custom_plan(&mut connection, sqlx::query(&explain).bind(&ids).bind(&channels).bind(&claims)).await;
        let generic = generic_plan(&mut connection, statement, &[], &["NULL"; 3]).await;
        assert_finds_by_index("locking a round", [custom, generic], "Seq Scan", &["outbox_item_id_channel_key"]);
    }
}

#[tokio::test]
async fn giving_back_or_renewing_a_round_s_claims_finds_each_row_by_key() {
    let (_database, mut connection) = outbox_database().await;
    let ids = round_ids(&mut connection).await;
    let (tokens, unfenced): (Vec<Uuid>, Vec<Uuid>) = (ids.clone(), Vec::new());
    for (what, statement, n_parameters) in [("giving back", RELEASE, 4), ("renewing", EXTEND, 5)] {
        let explain = format!("EXPLAIN {statement}");
        let query = sqlx::query(&explain).bind("walmart").bind(&ids).bind(&tokens).bind(&unfenced);
        let query = if n_parameters == 5 { query.bind(30.0_f64) } else { query };
        let custom = custom_plan(&mut connection, query).await;
        let generic = generic_plan(&mut connection, statement, &[], &vec!["NULL"; n_parameters]).await;
        assert_finds_by_index(what, [custom, generic], "Seq Scan", &["outbox_item_id_channel_key"]);
    }
}

#[tokio::test]
async fn recording_a_round_finds_each_row_by_key() {
    let (_database, mut connection) = outbox_database().await;
    let ids = round_ids(&mut connection).await;
    // Every kind of outcome, so every part of the statement has rows to find.
    let outcomes = [
        PublishOutcome::Published,
        PublishOutcome::Superseded { current_version: 2 },
        PublishOutcome::RetryAt(chrono::Utc::now()),
        PublishOutcome::ThrottledUntil(chrono::Utc::now()),
        PublishOutcome::DeadLettered,
        PublishOutcome::Skipped,
    ];
    let records: Vec<PublishRecord> = ids
        .iter()
        .zip(outcomes.iter().cycle())
        .map(|(id, outcome)| PublishRecord {
            claim: None,
            item_id: ItemId(*id),
            channel: "walmart".to_owned(),
            version: 1,
            attempt: 1,
            outcome: *outcome,
            status: Some(200),
            latency_ms: Some(3),
            error: None,
            dead_letter_reason: None,
            body: None,
            sent: None,
        })
        .collect();
    let round: Vec<&PublishRecord> = records.iter().collect();
    let arrays = RoundArrays::new(&round, crate::recording::Step::Record);
    let explain = format!("EXPLAIN {RECORD_ROUND}");
    let custom = custom_plan(&mut connection, arrays.bind(sqlx::query(&explain))).await;
    let generic = generic_plan(&mut connection, RECORD_ROUND, &[], &["NULL"; 18]).await;
    assert_finds_by_index(
        "recording a round",
        [custom, generic],
        "Seq Scan on outbox",
        &["outbox_item_id_channel_key"],
    );
}
