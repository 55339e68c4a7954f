//! Migrations that reshape existing rows, checked on rows written under the schema before them.

use std::borrow::Cow;

use catalog_postgres::MIGRATOR;
use catalog_testkit::TestDatabase;

/// The embedded migrations up to and including `last`.
fn migrator_up_to(last: i64) -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator {
        migrations: Cow::Owned(MIGRATOR.migrations.iter().filter(|m| m.version <= last).cloned().collect()),
        ..sqlx::migrate::Migrator::DEFAULT
    }
}

/// A database of its own with the embedded migrations up to and including `last`.
async fn migrated_up_to(last: i64) -> (TestDatabase, sqlx::PgPool) {
    let database = TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    migrator_up_to(last).run(&pool).await.unwrap_or_else(|error| panic!("migrations up to {last}: {error}"));
    (database, pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_versions_merge_into_one_outbox_row_per_item_and_channel() {
    let (_database, pool) = migrated_up_to(2).await;
    // Item A: versions 1-3 waiting on the storefront (version 1 leased), version 2 on shopify;
    // item B: one version.
    sqlx::query(
        "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel, enqueued_at, available_at, attempts)
         VALUES ('00000000-0000-0000-0000-00000000000a', 'canary', 'A-1', 1, 1, 'storefront',
                 '2026-01-01T00:00:01Z', '2026-01-01T01:00:00Z', 2),
                ('00000000-0000-0000-0000-00000000000a', 'canary', 'A-1', 2, 2, 'storefront',
                 '2026-01-01T00:00:02Z', '2026-01-01T00:00:02Z', 0),
                ('00000000-0000-0000-0000-00000000000a', 'canary', 'A-1', 3, 3, 'storefront',
                 '2026-01-01T00:00:03Z', '2026-01-01T00:00:03Z', 0),
                ('00000000-0000-0000-0000-00000000000a', 'canary', 'A-1', 2, 2, 'shopify',
                 '2026-01-01T00:00:02Z', '2026-01-01T00:00:02Z', 0),
                ('00000000-0000-0000-0000-00000000000b', 'canary', 'B-1', 7, 1, 'storefront',
                 '2026-01-01T00:00:05Z', '2026-01-01T00:00:05Z', 1)",
    )
    .execute(&pool)
    .await
    .expect("rows under the old schema");

    MIGRATOR.run(&pool).await.expect("the remaining migrations");

    // One line per row: SKU, channel, version, quantity, attempts, enqueued, first enqueued, available.
    let merged: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', sku, channel, version, quantity, attempts,
                          to_char(enqueued_at AT TIME ZONE 'UTC', 'HH24:MI:SS'),
                          to_char(first_enqueued_at AT TIME ZONE 'UTC', 'HH24:MI:SS'),
                          to_char(available_at AT TIME ZONE 'UTC', 'HH24:MI:SS'))
         FROM outbox ORDER BY sku, channel",
    )
    .fetch_all(&pool)
    .await
    .expect("outbox");
    assert_eq!(
        merged,
        [
            "A-1 shopify 2 2 0 00:00:02 00:00:02 00:00:02",
            // The newest version, waiting since the oldest, still leased as version 1 was.
            "A-1 storefront 3 3 0 00:00:03 00:00:01 01:00:00",
            "B-1 storefront 1 7 1 00:00:05 00:00:05 00:00:05",
        ]
    );
    let duplicate = sqlx::query(
        "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel)
         VALUES ('00000000-0000-0000-0000-00000000000b', 'canary', 'B-1', 8, 2, 'storefront')",
    )
    .execute(&pool)
    .await;
    assert!(duplicate.is_err(), "a second row for one item and channel is refused");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_written_before_versions_were_kept_name_their_item_and_version_0() {
    let (_database, pool) = migrated_up_to(5).await;
    sqlx::query(
        "INSERT INTO dead_letters (stage, subject, channel, reason)
         VALUES ('publish', '00000000-0000-0000-0000-00000000000a', 'storefront', 'retries_exhausted'),
                ('decode', 'not an item', NULL, 'invalid_payload')",
    )
    .execute(&pool)
    .await
    .expect("letters under the old schema");

    MIGRATOR.run(&pool).await.expect("the remaining migrations");

    let letters: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', stage, coalesce(item_id::text, '-'), version, heal_rounds,
                          quarantined_at IS NULL, resolved_at IS NULL, coalesce(resolution, '-'))
         FROM dead_letters ORDER BY dead_letter_id",
    )
    .fetch_all(&pool)
    .await
    .expect("dead letters");
    assert_eq!(
        letters,
        ["publish 00000000-0000-0000-0000-00000000000a 0 0 t t -", "decode - 0 0 t t -"],
        "a publish letter names its item; version 0: any version accepted later resolves it"
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_recorded_before_partitioning_stay_until_their_partition_passes_the_retention() {
    let (database, pool) = migrated_up_to(17).await;
    sqlx::query(
        "INSERT INTO publish_attempts (item_id, version, channel, attempt, status, result, attempted_at)
         VALUES ('00000000-0000-0000-0000-00000000000a', 1, 'storefront', 1, 202, 'published', '2026-01-01T00:00:01Z'),
                ('00000000-0000-0000-0000-00000000000a', 2, 'storefront', 1, 202, 'published', now())",
    )
    .execute(&pool)
    .await
    .expect("attempts under the old schema");

    MIGRATOR.run(&pool).await.expect("the remaining migrations");
    // Recorded since, today: into the old rows' partition, which reaches to the end of the
    // migration's day (the day partitions start tomorrow).
    sqlx::query(
        "INSERT INTO publish_attempts (item_id, version, channel, attempt, status, result)
         VALUES ('00000000-0000-0000-0000-00000000000a', 3, 'storefront', 1, 202, 'published')",
    )
    .execute(&pool)
    .await
    .expect("an attempt after the migration");
    let listed = || async {
        let listed: Vec<String> = sqlx::query_scalar(
            "SELECT concat_ws(' ', tableoid::regclass, version, attempt_id)
             FROM publish_attempts WHERE item_id = '00000000-0000-0000-0000-00000000000a'
             ORDER BY attempted_at, attempt_id",
        )
        .fetch_all(&pool)
        .await
        .expect("attempts");
        listed
    };
    assert_eq!(
        listed().await,
        [
            "publish_attempts_unpartitioned 1 1",
            "publish_attempts_unpartitioned 2 2",
            "publish_attempts_unpartitioned 3 3",
        ],
        "old rows kept with their ids; the sequence goes on"
    );

    // A retention whose cutoff is past the migration's day drops the old rows' partition.
    let store = catalog_postgres::PostgresStore::connect(&database.url, Default::default(), Default::default())
        .await
        .expect("store");
    let tomorrow =
        chrono::Utc::now().date_naive().succ_opt().expect("a day").and_time(chrono::NaiveTime::MIN).and_utc();
    let policy = catalog_store::RetentionPolicy { journal_cutoff: tomorrow, claim_cutoff: tomorrow, chunk: 100 };
    let report = catalog_store::RetentionStore::expire_journal(
        &store,
        &policy,
        &mut catalog_testkit::DiscardArchive("nowhere".into()),
    )
    .await
    .expect("retention");
    assert_eq!(report.attempt_days_dropped, 1, "{report:?}");
    assert_eq!(listed().await, Vec::<String>::new());
    pool.close().await;
}

/// Migration 0026 gives the clamped events decided before 0025 what `apply` records for new
/// ones since 0025: their claim kept from their own time, and their offer's latest clamped
/// time. Checked against what `apply` itself writes: the columns are cleared as a database
/// from before 0025 has them, and the migration runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamped_events_decided_before_0025_get_the_claim_time_and_offer_time_apply_gives() {
    use catalog_core::StockChange;
    use catalog_store::contract::{batch, incoming, offer};
    use catalog_store::prelude::*;

    let database = TestDatabase::create().await;
    let store = catalog_postgres::PostgresStore::connect(&database.url, Default::default(), Default::default())
        .await
        .expect("store");
    let (clamped, plain) = (offer("canary", "acme", "ABC-1"), offer("canary", "acme", "ABC-2"));
    let ten_days_ahead = 10 * 24 * 3600;
    store
        .apply_batch(&batch(vec![
            incoming(1, &clamped, StockChange::Updated { quantity: 10 }, 0, 1),
            incoming(2, &clamped, StockChange::Adjusted { delta: 5 }, ten_days_ahead, 2),
            incoming(3, &clamped, StockChange::Adjusted { delta: 1 }, ten_days_ahead - 60, 3),
            incoming(4, &plain, StockChange::Updated { quantity: 3 }, 0, 4),
        ]))
        .await
        .expect("apply");
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let recorded = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT 'offer ' || sku || ' ' || coalesce(to_char(clamped_until AT TIME ZONE 'UTC', 'MM-DD HH24:MI'), '-')
             FROM offers
             UNION ALL
             SELECT 'claim ' || journal_id || ' ' || coalesce(to_char(kept_from AT TIME ZONE 'UTC', 'MM-DD HH24:MI'), '-')
             FROM event_claims
             ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .expect("recorded times")
    };
    let written = recorded().await;
    assert_eq!(
        written,
        [
            "claim 1 -",
            "claim 2 06-11 12:00",
            "claim 3 06-11 11:59",
            "claim 4 -",
            "offer ABC-1 06-11 12:00",
            "offer ABC-2 -"
        ],
        "as apply writes them"
    );

    for statement in [
        "UPDATE event_claims SET kept_from = NULL",
        "UPDATE offers SET clamped_until = NULL",
        "DELETE FROM _sqlx_migrations WHERE version = 26",
    ] {
        sqlx::query(statement).execute(&pool).await.expect(statement);
    }
    catalog_postgres::MIGRATOR.run(&pool).await.expect("migration 0026 again");
    assert_eq!(recorded().await, written, "the backfill gives what apply gave");
    pool.close().await;
}

/// Migration 0028 holds again the claims of held rows that a redelivery released while their
/// supplier was still off: the replay that follows the switch then applies them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_held_rows_released_by_a_redelivery_are_held_again() {
    use catalog_core::StockChange;
    use catalog_store::contract::{batch, incoming, offer};
    use catalog_store::prelude::*;
    use catalog_store::Provenance;

    let database = TestDatabase::create().await;
    let store = catalog_postgres::PostgresStore::connect(&database.url, Default::default(), Default::default())
        .await
        .expect("store");
    let (released, kept) = (offer("canary", "acme", "ABC-1"), offer("canary", "acme", "ABC-2"));
    store.set_supplier_sync(&released.tenant, &released.supplier, false).await.expect("flag");
    let events = [
        incoming(1, &released, StockChange::Updated { quantity: 9 }, 0, 1),
        incoming(2, &kept, StockChange::Updated { quantity: 4 }, 0, 2),
    ];
    store.apply_batch(&batch(events.to_vec())).await.expect("held");
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    // What a redelivery did to the first event's claim before the fix.
    for statement in
        ["UPDATE event_claims SET held = false WHERE journal_id = 1", "DELETE FROM _sqlx_migrations WHERE version = 28"]
    {
        sqlx::query(statement).execute(&pool).await.expect(statement);
    }
    catalog_postgres::MIGRATOR.run(&pool).await.expect("migration 0028 again");
    let held: Vec<bool> =
        sqlx::query_scalar("SELECT held FROM event_claims ORDER BY journal_id").fetch_all(&pool).await.expect("claims");
    assert_eq!(held, [true, true]);

    store.set_supplier_sync(&released.tenant, &released.supplier, true).await.expect("flag");
    let replayed: Vec<_> = events
        .into_iter()
        .map(|mut event| {
            event.provenance = Provenance::Replayed;
            event
        })
        .collect();
    let result = store.apply_batch(&batch(replayed)).await.expect("replay");
    let outcomes: Vec<&str> = result.decisions.iter().map(|decision| decision.outcome.as_str()).collect();
    assert_eq!(outcomes, ["applied", "applied"]);
    pool.close().await;
}

/// Rows put off when migration 0031 runs (a failure's backoff; a throttle or a newer version
/// coalesced into a row in backoff, neither counted in `attempts`; a lease, due at its end) are
/// put apart at once (`retry_at`), and a claim walks them by retry time; a due row stays with
/// the fresh rows (decision 0057).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_in_backoff_when_retries_were_put_apart_are_put_apart() {
    let (_database, pool) = migrated_up_to(30).await;
    sqlx::query(
        "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel, available_at, attempts)
         VALUES ('00000000-0000-0000-0000-00000000000a', 'canary', 'A-1', 1, 1, 'ebay', now() + interval '1 hour', 2),
                ('00000000-0000-0000-0000-00000000000b', 'canary', 'B-1', 1, 1, 'ebay', now() + interval '1 minute', 0),
                ('00000000-0000-0000-0000-00000000000c', 'canary', 'C-1', 1, 1, 'ebay', now() - interval '1 second', 3)",
    )
    .execute(&pool)
    .await
    .expect("rows under the old schema");
    MIGRATOR.run(&pool).await.expect("the remaining migrations");
    let apart: Vec<(String, bool)> = sqlx::query_as("SELECT sku, retry_at IS NOT NULL FROM outbox ORDER BY sku")
        .fetch_all(&pool)
        .await
        .expect("rows");
    let expected = [("A-1", true), ("B-1", true), ("C-1", false)].map(|(sku, apart)| (sku.to_owned(), apart));
    assert_eq!(apart, expected, "the rows put off are apart, however they were; a due one is not");
    pool.close().await;
}
