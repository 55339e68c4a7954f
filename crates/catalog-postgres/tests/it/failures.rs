//! What happens when a transaction is cut off: nothing partial is ever visible.

use std::sync::Arc;

use catalog_core::{decode, Delivery, ItemKey, Sku, TenantId};
use catalog_store::prelude::*;
use catalog_store::{BatchInput, Checkpoint, IncomingEvent, Position, Provenance, SourceRef, StoreConfig};
use sqlx::{Connection, PgConnection};

use catalog_testkit::TestDatabase;

use crate::connect;

pub(crate) fn event(n: u64, quantity: i64) -> IncomingEvent {
    let raw = format!(
        r#"{{"event_id":"00000000-0000-0000-0000-{n:012}","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"ABC-1","quantity":{quantity},"updated_at":"2026-06-01T12:00:{n:02}Z"}}"#
    )
    .into_bytes();
    IncomingEvent {
        delivery: Delivery { decoded: decode(&raw), received_at: "2026-06-01T12:01:00Z".parse().expect("time") },
        payload_length: raw.len() as u64,
        raw,
        source: SourceRef { source: "test".into(), partition: 0, offset: n as i64 },
        traceparent: None,
        provenance: Provenance::Received,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cut_off_midway_leaves_nothing_visible() {
    let database = TestDatabase::create().await;
    let store = Arc::new(connect(&database, StoreConfig::default()).await);
    store
        .apply_batch(&BatchInput::new(
            vec![event(1, 5)],
            vec![Checkpoint { source: "test".into(), partition: 0, position: Position::at(2) }],
        ))
        .await
        .expect("first batch");

    // A writer that gets halfway through a batch's statements and then loses its connection.
    let mut connection = PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut connection).await.expect("begin");
    sqlx::query("UPDATE items SET quantity = 999, version = version + 1")
        .execute(&mut connection)
        .await
        .expect("update");
    sqlx::query(
        "INSERT INTO events (event_id, tenant_id, sku, received_at, outcome, source, source_partition, source_offset)
                 VALUES (gen_random_uuid(), 'canary', 'ABC-1', now(), 'applied', 'test', 0, 7)",
    )
    .execute(&mut connection)
    .await
    .expect("insert");
    sqlx::query("UPDATE source_checkpoints SET next_offset = 100").execute(&mut connection).await.expect("update");
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut connection).await.expect("pid");
    // Kill the session from outside, as a crashed worker or a network cut would.
    sqlx::query("SELECT pg_terminate_backend($1)").bind(backend).execute(store.pool()).await.expect("terminate");
    assert!(sqlx::query("COMMIT").execute(&mut connection).await.is_err(), "the cut-off session cannot commit");

    let item_id =
        ItemKey { tenant: TenantId::parse("canary").expect("valid"), sku: Sku::parse("ABC-1").expect("valid") }
            .item_id();
    let item = store.item(item_id).await.expect("item").expect("exists");
    assert_eq!((item.quantity(), item.version()), (5, 1));
    let trace = store.item_trace(item_id).await.expect("trace").expect("exists");
    assert_eq!(trace.events.len(), 1);
    assert_eq!(store.checkpoints("test").await.expect("checkpoints")[0].position, Position::at(2));

    // The store still applies the next batch normally.
    let result = store.apply_batch(&BatchInput::new(vec![event(2, 8)], vec![])).await.expect("next batch");
    assert_eq!(result.changed_items[0].item.quantity(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_retryable_error() {
    use catalog_core::Classify;
    let error = catalog_postgres::PostgresStore::connect(
        "postgres://postgres@127.0.0.1:1/none",
        StoreConfig::default(),
        catalog_postgres::PostgresOptions { acquire_timeout: std::time::Duration::from_secs(2), ..Default::default() },
    )
    .await
    .expect_err("nothing listens on port 1");
    assert!(error.failure_class().is_retryable(), "{error}");
}
