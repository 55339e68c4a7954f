//! Migrations that reshape existing rows, checked on rows written under the schema before them.

use std::borrow::Cow;

use sqlx::migrate::Migrator;
use sqlx::Row;

use crate::MIGRATOR;

/// The embedded migrations up to and including `last`.
fn migrator_up_to(last: i64) -> Migrator {
    Migrator {
        migrations: Cow::Owned(MIGRATOR.migrations.iter().filter(|m| m.version <= last).cloned().collect()),
        ..Migrator::DEFAULT
    }
}

/// An in-memory database with the embedded migrations up to and including `last`.
async fn migrated_up_to(last: i64) -> sqlx::SqlitePool {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory database");
    migrator_up_to(last).run(&pool).await.unwrap_or_else(|error| panic!("migrations up to {last}: {error}"));
    pool
}

#[tokio::test]
async fn waiting_versions_merge_into_one_outbox_row_per_item_and_channel() {
    let pool = migrated_up_to(2).await;
    // Item A: versions 1-3 waiting on the storefront (version 1 leased until 3600), version
    // 2 on shopify; item B: one version. Times are microseconds.
    sqlx::query(
        "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel, enqueued_at, available_at, attempts)
         VALUES (x'0a', 'canary', 'A-1', 1, 1, 'storefront', 1, 3600, 2),
                (x'0a', 'canary', 'A-1', 2, 2, 'storefront', 2, 2, 0),
                (x'0a', 'canary', 'A-1', 3, 3, 'storefront', 3, 3, 0),
                (x'0a', 'canary', 'A-1', 2, 2, 'shopify', 2, 2, 0),
                (x'0b', 'canary', 'B-1', 7, 1, 'storefront', 5, 5, 1)",
    )
    .execute(&pool)
    .await
    .expect("rows under the old schema");

    MIGRATOR.run(&pool).await.expect("the remaining migrations");

    let rows = sqlx::query(
        "SELECT sku, channel, version, quantity, attempts, enqueued_at, first_enqueued_at, available_at
         FROM outbox ORDER BY sku, channel",
    )
    .fetch_all(&pool)
    .await
    .expect("outbox");
    let merged: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut columns = vec![row.get::<String, _>(0), row.get::<String, _>(1)];
            columns.extend((2..8).map(|index| row.get::<i64, _>(index).to_string()));
            columns
        })
        .collect();
    assert_eq!(
        merged,
        [
            ["A-1", "shopify", "2", "2", "0", "2", "2", "2"],
            // The newest version, waiting since the oldest, still leased as version 1 was.
            ["A-1", "storefront", "3", "3", "0", "3", "1", "3600"],
            ["B-1", "storefront", "1", "7", "1", "5", "5", "5"],
        ]
    );
    let duplicate = sqlx::query(
        "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel)
         VALUES (x'0b', 'canary', 'B-1', 8, 2, 'storefront')",
    )
    .execute(&pool)
    .await;
    assert!(duplicate.is_err(), "a second row for one item and channel is refused");
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox' ORDER BY name")
            .fetch_all(&pool)
            .await
            .expect("indexes");
    // Claims' index: by first enqueue time since migration 3, by due time since 31.
    assert!(indexes.iter().any(|name| name == "outbox_channel_due"), "{indexes:?}");
    assert!(indexes.iter().any(|name| name == "outbox_tenant"), "{indexes:?}");
}

#[tokio::test]
async fn dead_letters_written_before_versions_were_kept_name_their_item_and_version_0() {
    let pool = migrated_up_to(5).await;
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
        "SELECT stage || ' ' || CASE WHEN item_id IS NULL THEN '-' ELSE hex(item_id) END || ' ' || version || ' ' || heal_rounds || ' '
                || (quarantined_at IS NULL) || ' ' || (resolved_at IS NULL) || ' ' || coalesce(resolution, '-')
         FROM dead_letters ORDER BY dead_letter_id",
    )
    .fetch_all(&pool)
    .await
    .expect("dead letters");
    assert_eq!(
        letters,
        ["publish 0000000000000000000000000000000A 0 0 1 1 -", "decode - 0 0 1 1 -"],
        "a publish letter names its item; version 0: any version accepted later resolves it"
    );
}

/// A claim walks the channel's rows in due order from its first to the first not yet due,
/// and sorts nothing: a channel that is down, its rows in backoff, costs a claim no walk past
/// them (decision 0057; before it, the walk by first enqueue time passed every one, 17 ms a
/// claim behind 100,000 such rows, in the one writer thread).
#[tokio::test]
async fn a_claim_walks_only_the_rows_due() {
    let pool = migrated_up_to(i64::MAX).await;
    let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", crate::publish::CLAIM))
        .fetch_all(&pool)
        .await
        .expect("the claim's plan")
        .iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect();
    assert_eq!(
        plan,
        ["SEARCH outbox USING INDEX outbox_channel_due (channel=? AND available_at<?)"],
        "a range of the due rows, in the order claimed"
    );
}
