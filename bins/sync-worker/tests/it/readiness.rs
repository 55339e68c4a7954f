//! `/readyz` follows what the worker depends on: it turns 503 when the store stops answering
//! (and 200 again when it is back), and stays 503 while the broker cannot be reached.

use std::time::{Duration, Instant};

use catalog_testkit::{create_topic, server_url, unique_name, TestDatabase};
use clap::Parser;
use sqlx::{Connection, PgConnection};
use sync_worker::config::WorkerArgs;
use tokio_util::sync::CancellationToken;

use crate::hostile::{free_address, with_options};
use crate::kafka::worker_args;

/// Polls `/readyz` until it answers `status` with `body`, or fails after `limit`.
async fn wait_for_readyz(address: &str, status: u16, body: &str, limit: Duration) {
    let started = Instant::now();
    let mut last = None;
    loop {
        if let Ok(response) = reqwest::get(format!("http://{address}/readyz")).await {
            let answer = (response.status().as_u16(), response.text().await.unwrap_or_default());
            if answer.0 == status && answer.1 == body {
                return;
            }
            last = Some(answer);
        }
        assert!(started.elapsed() < limit, "/readyz never answered {status} {body:?} within {limit:?}; last {last:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Lets the database take connections, or refuses them and ends those it has.
async fn allow_connections(database: &TestDatabase, allowed: bool) {
    let mut admin = PgConnection::connect(&server_url()).await.expect("admin connection");
    sqlx::query(&format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allowed}", database.name))
        .execute(&mut admin)
        .await
        .expect("alter database");
    if !allowed {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&database.name)
            .execute(&mut admin)
            .await
            .expect("end the database's connections");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_while_the_store_does_not_answer() {
    let database = TestDatabase::create().await;
    let topic = unique_name("ready");
    let group = unique_name("group");
    create_topic(&topic, 1).await;
    let address = free_address();
    let arguments = with_options(worker_args(&database.url, &topic, &group, 50), &address, &[]);
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(sync_worker::run(WorkerArgs::parse_from(arguments), shutdown.clone()));
    wait_for_readyz(&address, 200, "ready\n", Duration::from_secs(30)).await;

    allow_connections(&database, false).await;
    wait_for_readyz(&address, 503, "not ready: store\n", Duration::from_secs(20)).await;
    allow_connections(&database, true).await;
    wait_for_readyz(&address, 200, "ready\n", Duration::from_secs(30)).await;

    shutdown.cancel();
    worker.await.expect("worker task").expect("worker run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_broker_cannot_be_reached() {
    let directory = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", directory.path().join("catalog.db").display());
    let address = free_address();
    // Nothing listens there: the store answers, the broker never does.
    let broker = free_address();
    let mut arguments = with_options(worker_args(&database_url, "unreachable", "group", 50), &address, &[]);
    let at = arguments.iter().position(|argument| argument == "--kafka-brokers").expect("brokers") + 1;
    arguments[at] = broker;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(sync_worker::run(WorkerArgs::parse_from(arguments), shutdown.clone()));
    wait_for_readyz(&address, 503, "not ready: broker\n", Duration::from_secs(20)).await;
    shutdown.cancel();
    worker.await.expect("worker task").expect("worker run");
}

/// A store that answers its ping but refuses every write (a read-only standby after a
/// failover, a full disk): the batch is retried with backoff for ever, and the worker looked
/// ready all along. Now `/readyz` names `store_writes` once no attempt has succeeded for 30 s,
/// `catalog_store_writes_failing_seconds` says for how long, and both clear once a batch is
/// durable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_while_no_batch_becomes_durable() {
    use catalog_store::prelude::*;

    let database = TestDatabase::create().await;
    let store = catalog_postgres::PostgresStore::connect(
        &database.url,
        catalog_store::StoreConfig::default(),
        catalog_postgres::PostgresOptions::default(),
    )
    .await
    .expect("store");
    store.migrate().await.expect("migrate");
    let mut connection = PgConnection::connect(&database.url).await.expect("connect");
    for statement in [
        "CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         RAISE EXCEPTION USING ERRCODE = '25006', MESSAGE = 'cannot execute INSERT in a read-only transaction'; END $$",
        "CREATE TRIGGER refuse_writes BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_writes()",
    ] {
        sqlx::query(statement).execute(&mut connection).await.expect("refuse writes");
    }
    let directory = tempfile::tempdir().expect("temp dir");
    let events = crate::start::one_event_file(directory.path());
    let address = free_address();
    let source = format!("file:{}", events.display());
    let arguments = ["sync-worker", "--source", &source, "--database-url", &database.url, "--metrics-addr", &address];
    let worker = tokio::spawn(sync_worker::run(WorkerArgs::parse_from(arguments), CancellationToken::new()));

    wait_for_readyz(&address, 503, "not ready: store_writes\n", Duration::from_secs(60)).await;
    let metrics = reqwest::get(format!("http://{address}/metrics")).await.expect("metrics").text().await.expect("text");
    let failing: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("catalog_store_writes_failing_seconds "))
        .and_then(|value| value.parse().ok())
        .expect("the gauge");
    assert!(failing >= 20.0, "failing for {failing} s: {metrics}");

    sqlx::query("DROP TRIGGER refuse_writes ON events").execute(&mut connection).await.expect("writes again");
    let summary = tokio::time::timeout(Duration::from_secs(30), worker).await.expect("the run ends").expect("task");
    assert_eq!(summary.expect("the run").totals.events_by_outcome.get("applied"), Some(&1), "applied once written");
}
