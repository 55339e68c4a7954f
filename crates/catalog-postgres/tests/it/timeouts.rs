//! A slow or silent database never hangs a store operation: a lock held too long, a
//! statement running too long and a connection whose packets vanish all end as a retryable
//! `transaction_timeout`, and the store works again once the database does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_core::{Classify, FailureClass};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::prelude::*;
use catalog_store::{BatchInput, StoreConfig, StoreError};
use catalog_testkit::TestDatabase;
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::failures::event;

fn batch(n: u64, quantity: i64) -> BatchInput {
    BatchInput::new(vec![event(n, quantity)], vec![])
}

fn assert_timeout(result: Result<catalog_store::BatchResult, StoreError>) {
    match result {
        Err(error @ StoreError::Timeout(_)) => {
            assert_eq!(error.failure_class(), FailureClass::Retryable);
            assert_eq!(error.kind(), "transaction_timeout");
        }
        other => panic!("expected a transaction timeout, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_too_long_is_a_retryable_timeout() {
    let database = TestDatabase::create().await;
    let options = PostgresOptions { lock_timeout: Duration::from_millis(300), ..PostgresOptions::default() };
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), options).await.expect("connect");
    store.apply_batch(&batch(1, 5)).await.expect("first batch");

    // Another session holds the offer's row.
    let mut holder = PgConnection::connect(&database.url).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("SELECT 1 FROM offers FOR UPDATE").execute(&mut holder).await.expect("lock");

    let started = Instant::now();
    assert_timeout(store.apply_batch(&batch(2, 6)).await);
    assert!(started.elapsed() < Duration::from_secs(10), "gave up after the lock timeout, not later");

    sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release");
    store.apply_batch(&batch(2, 6)).await.expect("the retry succeeds once the lock is free");
}

/// Forwards connections to PostgreSQL until told to black-hole them: from then on it
/// keeps every socket open and passes no byte either way, as a network that drops packets.
struct BlackHoleProxy {
    address: std::net::SocketAddr,
    black_hole: Arc<AtomicBool>,
}

impl BlackHoleProxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let black_hole = Arc::new(AtomicBool::new(false));
        let holes = Arc::clone(&black_hole);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, Arc::clone(&holes)));
                tokio::spawn(pipe(server_read, client_write, Arc::clone(&holes)));
            }
        });
        Self { address, black_hole }
    }

    fn vanish(&self) {
        self.black_hole.store(true, Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    black_hole: Arc<AtomicBool>,
) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else { return };
        if n == 0 {
            return;
        }
        if black_hole.load(Ordering::SeqCst) {
            // Swallow everything from now on, and never close: the peer waits forever.
            loop {
                if from.read(&mut buffer).await.map_or(true, |n| n == 0) {
                    std::future::pending::<()>().await;
                }
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_connection_is_a_retryable_timeout_not_a_hang() {
    let database = TestDatabase::create().await;
    // postgres://user@host:port/name: the proxy stands in for host:port.
    let (scheme_and_user, rest) = database.url.split_once('@').expect("the test url names a user");
    let (server, name) = rest.split_once('/').expect("the test url names a database");
    let proxy = BlackHoleProxy::start(server.to_owned()).await;
    let through_proxy = format!("{scheme_and_user}@{}/{name}", proxy.address);
    let options = PostgresOptions { transaction_timeout: Duration::from_secs(2), ..PostgresOptions::default() };
    let store = PostgresStore::connect(&through_proxy, StoreConfig::default(), options).await.expect("connect");
    store.apply_batch(&batch(1, 5)).await.expect("first batch");
    let claim = catalog_store::OutboxClaim {
        limit: 10,
        lease: Duration::from_secs(60),
        settle: Duration::ZERO,
        max_wait: Duration::ZERO,
    };
    let claimed = store.claim_outbox("storefront", &claim).await.expect("claim");
    let held: Vec<_> = claimed.iter().map(catalog_store::OutboxEntry::held_claim).collect();
    assert_eq!(held.len(), 1);

    proxy.vanish();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), store.apply_batch(&batch(2, 6)))
        .await
        .expect("the store gives up by itself; it must never hang");
    assert_timeout(result);
    assert!(started.elapsed() < Duration::from_secs(5), "gave up at the transaction timeout");
    let result = tokio::time::timeout(Duration::from_secs(30), store.checkpoints("test"))
        .await
        .expect("reads give up by themselves too");
    assert!(
        matches!(result, Err(ref error) if error.failure_class() == FailureClass::Retryable),
        "a read is retryable too: {result:?}"
    );
    // Giving claims back (a 429 mid-round, a shutdown) gives up at the deadline too. It had
    // none: here it waited for the pool's 10 s to open a connection, and on a connection the
    // pool handed out whose packets vanish, for the kernel's TCP timeout (a frozen lane, and
    // a shutdown hanging with it).
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), store.release_claims("storefront", &held))
        .await
        .expect("giving claims back gives up by itself");
    assert!(matches!(result, Err(StoreError::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "gave up at the transaction timeout");
}

/// Days are made ahead without waiting on a reader of the journal or the attempts (a trace, a
/// replay's window): a new day is attached, which no reader or writer blocks, where `CREATE
/// TABLE … PARTITION OF` waited behind them for the whole table, every batch queued behind
/// it, and failed at the lock timeout. Two processes making the same days at once both succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_are_made_ahead_beside_a_reader_and_by_two_processes_at_once() {
    use catalog_store::RetentionStore;

    let database = TestDatabase::create().await;
    let options = PostgresOptions { lock_timeout: Duration::from_millis(300), ..PostgresOptions::default() };
    let store = PostgresStore::connect(&database.url, StoreConfig::default(), options.clone()).await.expect("connect");
    let other = PostgresStore::connect(&database.url, StoreConfig::default(), options).await.expect("connect");
    let mut reader = PgConnection::connect(&database.url).await.expect("connect");
    sqlx::raw_sql("BEGIN; SELECT 1 FROM events LIMIT 1; SELECT 1 FROM publish_attempts LIMIT 1")
        .execute(&mut reader)
        .await
        .expect("a reader's open transaction");

    let created = store.prepare_journal(chrono::Utc::now() + chrono::Duration::days(9)).await.expect("beside a reader");
    assert!(created >= 2, "the journal's and the attempts' day nine at least: {created}");
    store.apply_batch(&batch(1, 5)).await.expect("a batch beside the reader");

    let until = chrono::Utc::now() + chrono::Duration::days(30);
    let (first, second) = tokio::join!(store.prepare_journal(until), other.prepare_journal(until));
    let (first, second) = (first.expect("first maker"), second.expect("second maker"));
    assert_eq!(first + second, 2 * 21, "each of the 21 new days of both tables made once: {first} + {second}");
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.expect("commit");
}
