//! What SQLite's transactions and file must guarantee: a failed or uncommitted transaction
//! leaves nothing visible, and committed data survives closing and reopening the file.

use catalog_core::StockChange;
use catalog_sqlite::SqliteStore;
use catalog_store::prelude::*;
use catalog_store::{JournalWindow, StoreConfig, StoreError};
use chrono::Duration;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use crate::{base, batch, database_path, event_id, incoming, offer, SOURCE};

async fn raw_connection(directory: &tempfile::TempDir) -> SqliteConnection {
    let options = SqliteConnectOptions::new().filename(database_path(directory.path()));
    SqliteConnection::connect_with(&options).await.expect("raw connection")
}

fn whole_journal(tenant: &str) -> JournalWindow {
    JournalWindow {
        tenant: catalog_core::TenantId::parse(tenant).expect("valid tenant"),
        since: base() - Duration::days(1),
        until: None,
        supplier: None,
        held_only: false,
    }
}

#[tokio::test]
async fn a_batch_that_fails_midway_leaves_nothing_visible() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open_path(&database_path(directory.path()), StoreConfig::default()).await.expect("open");
    let canary = offer("canary", "acme", "ABC-1");
    store
        .apply_batch(&batch(vec![incoming(1, &canary, StockChange::Updated { quantity: 5 }, 1)]))
        .await
        .expect("apply");

    // Make the outbox refuse rows: the batch below fails after its tenants, journal rows,
    // offers and items were written inside the transaction, and before its checkpoint.
    let mut connection = raw_connection(&directory).await;
    sqlx::query("CREATE TRIGGER outbox_refuses BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'injected'); END")
        .execute(&mut connection)
        .await
        .expect("create trigger");
    let newcomer = offer("newcomer", "globex", "XYZ-9");
    let failing = batch(vec![
        incoming(2, &canary, StockChange::Updated { quantity: 9 }, 2),
        incoming(3, &newcomer, StockChange::Updated { quantity: 4 }, 3),
    ]);
    let error = store.apply_batch(&failing).await.expect_err("the outbox refuses the batch");
    assert!(matches!(error, StoreError::Database(_)), "{error:?}");

    let item = store.item(canary.item_key().item_id()).await.expect("item").expect("exists");
    assert_eq!((item.quantity(), item.version()), (5, 1));
    let journal = store.journal_window(&whole_journal("canary")).await.expect("journal");
    assert_eq!(journal.iter().map(|entry| entry.event_id).collect::<Vec<_>>(), [Some(event_id(1))]);
    assert!(store.tenant_flags(&newcomer.tenant).await.expect("flags").is_none(), "the tenant insert rolled back");
    assert!(store.item(newcomer.item_key().item_id()).await.expect("item").is_none());
    let checkpoints = store.checkpoints(SOURCE).await.expect("checkpoints");
    assert_eq!(checkpoints.iter().map(|checkpoint| checkpoint.position.offset).collect::<Vec<_>>(), [2]);

    // Nothing of the failed attempt claimed its event ids: the retry applies them.
    sqlx::query("DROP TRIGGER outbox_refuses").execute(&mut connection).await.expect("drop trigger");
    connection.close().await.expect("close raw connection");
    let retried = store.apply_batch(&failing).await.expect("retry");
    let outcomes: Vec<_> = retried.decisions.iter().map(|decision| decision.outcome.as_str()).collect();
    assert_eq!(outcomes, ["applied", "applied"]);
    let item = store.item(canary.item_key().item_id()).await.expect("item").expect("exists");
    assert_eq!((item.quantity(), item.version()), (9, 2));
}

#[tokio::test]
async fn an_uncommitted_transaction_is_never_visible() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open_path(&database_path(directory.path()), StoreConfig::default()).await.expect("open");
    let canary = offer("canary", "acme", "ABC-1");
    store
        .apply_batch(&batch(vec![incoming(1, &canary, StockChange::Updated { quantity: 5 }, 1)]))
        .await
        .expect("apply");

    let mut connection = raw_connection(&directory).await;
    let mut transaction = connection.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO events (event_id, tenant_id, supplier_id, sku, event_type, quantity, received_at, outcome, \
         fingerprint, source, source_partition, source_offset) \
         VALUES (?1, 'canary', 'acme', 'ABC-1', 'inventory.updated', 77, ?2, 'applied', 0, ?3, 0, 99)",
    )
    .bind(event_id(2).0.as_bytes().as_slice())
    .bind((base() + Duration::seconds(2)).timestamp_micros())
    .bind(SOURCE)
    .execute(&mut *transaction)
    .await
    .expect("insert journal row");
    sqlx::query("UPDATE items SET quantity = 77, version = 2").execute(&mut *transaction).await.expect("update item");

    // Not visible while open, and not after the transaction is dropped without a commit.
    let journal = store.journal_window(&whole_journal("canary")).await.expect("journal");
    assert_eq!(journal.len(), 1);
    drop(transaction);
    connection.close().await.expect("close raw connection");

    let journal = store.journal_window(&whole_journal("canary")).await.expect("journal");
    assert_eq!(journal.iter().map(|entry| entry.event_id).collect::<Vec<_>>(), [Some(event_id(1))]);
    let item = store.item(canary.item_key().item_id()).await.expect("item").expect("exists");
    assert_eq!((item.quantity(), item.version()), (5, 1));
    let applied = store
        .apply_batch(&batch(vec![incoming(2, &canary, StockChange::Updated { quantity: 6 }, 2)]))
        .await
        .expect("apply");
    assert_eq!(applied.decisions[0].outcome.as_str(), "applied", "the rolled-back row claimed nothing");
}

#[tokio::test]
async fn committed_data_survives_reopening_the_file() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = database_path(directory.path());
    let canary = offer("canary", "acme", "ABC-1");
    let held = offer("canary", "initech", "ABC-1");
    {
        let store = SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open");
        store.set_supplier_sync(&held.tenant, &held.supplier, false).await.expect("flag");
        store
            .apply_batch(&batch(vec![
                incoming(1, &canary, StockChange::Updated { quantity: 5 }, 1),
                incoming(2, &canary, StockChange::Adjusted { delta: 2 }, 2),
                incoming(3, &held, StockChange::Updated { quantity: 50 }, 3),
            ]))
            .await
            .expect("apply");
        store.close().await;
    }

    let store = SqliteStore::open_path(&path, StoreConfig::default()).await.expect("reopen");
    store.migrate().await.expect("migrations stay idempotent on a reopened file");
    let trace = store.item_trace(canary.item_key().item_id()).await.expect("trace").expect("exists");
    assert_eq!((trace.item.quantity(), trace.item.version()), (7, 1));
    assert_eq!(trace.events.len(), 3);
    assert_eq!(trace.offers.len(), 1, "the held supplier's offer was never written");
    assert_eq!(trace.pending_publishes.len(), 1);
    let flags = store.tenant_flags(&canary.tenant).await.expect("flags").expect("exists");
    assert_eq!(flags.suppliers.get(&held.supplier), Some(&false));
    let checkpoints = store.checkpoints(SOURCE).await.expect("checkpoints");
    assert_eq!(checkpoints.iter().map(|checkpoint| checkpoint.position.offset).collect::<Vec<_>>(), [4]);

    // The reopened journal still claims the ids: a redelivery is a duplicate.
    let again = store
        .apply_batch(&batch(vec![incoming(1, &canary, StockChange::Updated { quantity: 5 }, 1)]))
        .await
        .expect("apply");
    assert_eq!(again.decisions[0].outcome.as_str(), "duplicate");
}

/// Another process (here another store on the same file, as `admin-api tokens revoke` is
/// beside a running `admin-api`) commits between two reads: every read sees every commit
/// made before it, even on a connection whose last read took one row only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_sees_what_another_process_committed_before_it() {
    use catalog_store::{AdminStore, AuditRecord, NewToken, Role, TokenHash};
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = database_path(directory.path());
    let reader = SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open reader");
    let writer = SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open writer");
    for round in 0..20_u8 {
        let hash = TokenHash([round; 32]);
        let token = NewToken { name: format!("token-{round}"), role: Role::Viewer, hash };
        assert!(writer.add_token(&token).await.expect("add"));
        // A one-row read: it once left its statement open, pinning the connection's snapshot.
        assert!(reader.token_by_hash(&hash).await.expect("lookup").is_some(), "round {round}");
        let record = AuditRecord {
            actor: "cli".to_owned(),
            action: format!("round_{round}"),
            target: format!("token/token-{round}"),
            before: None,
            after: None,
        };
        writer.record_audit(&record).await.expect("audit");
        let log = reader.audit_log(100, None).await.expect("audit log");
        assert_eq!(log.len(), usize::from(round) + 1, "round {round}: the reader sees every committed audit row");
    }
    reader.close().await;
    writer.close().await;
}

/// Migration 0026 gives the offers of clamped events decided before 0025 the latest clamped
/// time `apply` records since 0025. Checked against what `apply` itself writes: the column
/// is cleared as a file from before 0025 has it, and the migration runs again.
#[tokio::test]
async fn clamped_events_decided_before_0025_get_the_offer_time_apply_gives() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = database_path(directory.path());
    let store = SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open");
    let (clamped, plain) = (offer("canary", "acme", "ABC-1"), offer("canary", "acme", "ABC-2"));
    let ten_days_ahead = 10 * 24 * 3600;
    let at = catalog_store::contract::incoming;
    store
        .apply_batch(&batch(vec![
            at(1, &clamped, StockChange::Updated { quantity: 10 }, 0, 1),
            at(2, &clamped, StockChange::Adjusted { delta: 5 }, ten_days_ahead, 2),
            at(3, &clamped, StockChange::Adjusted { delta: 1 }, ten_days_ahead - 60, 3),
            at(4, &plain, StockChange::Updated { quantity: 3 }, 0, 4),
        ]))
        .await
        .expect("apply");
    let mut connection =
        SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path)).await.expect("connect");
    let recorded = async |connection: &mut SqliteConnection| -> Vec<(String, Option<i64>)> {
        sqlx::query_as("SELECT sku, clamped_until FROM offers ORDER BY sku")
            .fetch_all(&mut *connection)
            .await
            .expect("offers")
    };
    let written = recorded(&mut connection).await;
    let ahead = (base() + Duration::seconds(ten_days_ahead)).timestamp_micros();
    assert_eq!(written, [("ABC-1".to_owned(), Some(ahead)), ("ABC-2".to_owned(), None)], "as apply writes them");

    for statement in ["UPDATE offers SET clamped_until = NULL", "DELETE FROM _sqlx_migrations WHERE version = 26"] {
        sqlx::query(statement).execute(&mut connection).await.expect(statement);
    }
    store.migrate().await.expect("migration 0026 again");
    assert_eq!(recorded(&mut connection).await, written, "the backfill gives what apply gave");
    store.close().await;
}

/// An outbox row that cannot be read (here a SKU the rules refuse, as one stored before a
/// rule changed would be) is left out of the claim, and the rows after it are claimed:
/// before, the claim failed whole, the row stayed first in line, and the channel sent
/// nothing again. The row stays in the outbox for an operator.
#[tokio::test]
async fn an_unreadable_outbox_row_does_not_stop_its_channel() {
    use catalog_store::contract::{an_unreadable_outbox_row_is_left_out, queue_two_items, MAKE_A_1_UNREADABLE};
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open_path(&database_path(directory.path()), StoreConfig::default()).await.expect("open");
    queue_two_items(&store).await;
    let mut connection = raw_connection(&directory).await;
    sqlx::query(MAKE_A_1_UNREADABLE).execute(&mut connection).await.expect("corrupt");
    an_unreadable_outbox_row_is_left_out(&store).await;
}
