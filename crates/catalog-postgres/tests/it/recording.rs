//! A round recorded while a batch holds some of its outbox rows: the round records what it
//! can at once and never waits holding rows; the held rows take their effect once the batch
//! commits, against the version it committed.

use std::time::Duration;

use catalog_core::StockChange;
use catalog_store::contract::{batch, incoming, offer, published};
use catalog_store::{OutboxClaim, OutboxEntry, PublishOutcome, PublishRecord};
use catalog_testkit::TestDatabase;
use sqlx::{Connection, PgConnection};

use crate::connect;

/// The attempts recorded for an item on the storefront.
async fn attempts(connection: &mut PgConnection, item: uuid::Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM publish_attempts WHERE item_id = $1 AND channel = 'storefront'")
        .bind(item)
        .fetch_one(connection)
        .await
        .expect("count attempts")
}

/// Two items applied and claimed on the storefront (leased 60 s), and their records as
/// published.
async fn two_claimed_and_published(store: &dyn catalog_store::CatalogStore) -> (Vec<OutboxEntry>, Vec<PublishRecord>) {
    let events = (0..2)
        .map(|n| incoming(n, &offer("canary", "acme", &format!("SKU-{n}")), StockChange::Updated { quantity: 5 }, 0, 0))
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let claimed =
        store.claim_outbox("storefront", &OutboxClaim::immediate(10, Duration::from_secs(60))).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let records = claimed.iter().map(|entry| published(entry, PublishOutcome::Published)).collect();
    (claimed, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_records_at_once_and_releases_a_row_a_batch_holds_once_it_commits() {
    let database = TestDatabase::create().await;
    let store: std::sync::Arc<dyn catalog_store::CatalogStore> =
        std::sync::Arc::new(connect(&database, catalog_store::StoreConfig::default()).await);
    let (claimed, records) = two_claimed_and_published(&*store).await;
    let (held, free) = (records[0].item_id.0, records[1].item_id.0);

    // A batch queues a newer version of the first item and has not committed yet.
    let mut batch_connection = PgConnection::connect(&database.url).await.expect("connect");
    let mut batch_transaction = batch_connection.begin().await.expect("begin");
    sqlx::query(
        "UPDATE outbox SET version = version + 1, quantity = 4, enqueued_at = now()
         WHERE item_id = $1 AND channel = 'storefront'",
    )
    .bind(held)
    .execute(&mut *batch_transaction)
    .await
    .expect("the batch's newer version");

    let recording = {
        let store = std::sync::Arc::clone(&store);
        tokio::spawn(async move { store.record_publishes(&records).await })
    };
    // Both attempts and the free row's effect are committed while the batch still holds its row.
    let mut reader = PgConnection::connect(&database.url).await.expect("connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while attempts(&mut reader, held).await + attempts(&mut reader, free).await < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the round waited for the batch before recording anything");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let free_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE item_id = $1")
        .bind(free)
        .fetch_one(&mut reader)
        .await
        .expect("free row");
    assert_eq!(free_rows, 0, "the published row no batch held is done with");
    assert!(!recording.is_finished(), "the held row's effect waits for the batch");

    batch_transaction.commit().await.expect("the batch commits");
    recording.await.expect("task").expect("recorded");
    let (version, due_now, attempts_left): (i64, bool, i32) = sqlx::query_as(
        "SELECT version, available_at <= now(), attempts FROM outbox WHERE item_id = $1 AND channel = 'storefront'",
    )
    .bind(held)
    .fetch_one(&mut reader)
    .await
    .expect("the held row");
    assert_eq!(
        (version, due_now, attempts_left),
        (claimed[0].item.version() as i64 + 1, true, 0),
        "the version the batch queued while the round was out is due at once, not at the lease's end"
    );
}

/// The second step gives up waiting for a batch (its lock timeout): the round was recorded by
/// the first, so it is not reported failed. Reported, the publisher recorded the whole round
/// again: its attempts twice, its failures counted twice, and rows the first step had made due,
/// claimed meanwhile by another lane, made due again under that lane's claim. The held row stays
/// leased, sent again once the lease passes, as after a crash between the two steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_whose_held_row_cannot_be_released_is_recorded_once_and_leaves_the_row_leased() {
    let database = TestDatabase::create().await;
    let options = catalog_postgres::PostgresOptions {
        lock_timeout: Duration::from_millis(300),
        ..catalog_postgres::PostgresOptions::default()
    };
    let store = catalog_postgres::PostgresStore::connect(&database.url, catalog_store::StoreConfig::default(), options)
        .await
        .expect("connect");
    let store: std::sync::Arc<dyn catalog_store::CatalogStore> = std::sync::Arc::new(store);
    let (_, records) = two_claimed_and_published(&*store).await;
    let (held, free) = (records[0].item_id.0, records[1].item_id.0);

    // A batch holds the first item's row for longer than the store waits for a lock.
    let mut batch_connection = PgConnection::connect(&database.url).await.expect("connect");
    let mut batch_transaction = batch_connection.begin().await.expect("begin");
    sqlx::query("UPDATE outbox SET enqueued_at = now() WHERE item_id = $1 AND channel = 'storefront'")
        .bind(held)
        .execute(&mut *batch_transaction)
        .await
        .expect("the batch holds the row");
    let recorded = store.record_publishes(&records).await;
    batch_transaction.commit().await.expect("the batch commits");

    assert!(recorded.is_ok(), "the round was recorded by its first step: {recorded:?}");
    let mut reader = PgConnection::connect(&database.url).await.expect("connect");
    assert_eq!((attempts(&mut reader, held).await, attempts(&mut reader, free).await), (1, 1));
    let leased: bool = sqlx::query_scalar(
        "SELECT available_at > now() + interval '30 seconds' FROM outbox WHERE item_id = $1 AND channel = 'storefront'",
    )
    .bind(held)
    .fetch_one(&mut reader)
    .await
    .expect("the held row is still there");
    assert!(leased, "the held row keeps its lease");
}
