//! `--source pull` as a separate process: killed with SIGKILL in the middle of a window and
//! run again, it loses nothing and decides nothing twice; a `--once` run with a failing feed
//! publishes what the others pulled.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalog_testkit::feed_api::{FeedApi, FeedRecord};
use catalog_testkit::TestDatabase;
use chrono::{Duration as TimeDelta, Utc};
use sqlx::{Connection, PgConnection, Row};

const TOKEN_ENV: &str = "CATALOG_TEST_PULL_TOKEN";

fn feeds_file(directory: &std::path::Path, api: &FeedApi, go_live: chrono::NaiveDate) -> std::path::PathBuf {
    let path = directory.join("FEEDS.toml");
    let text = format!(
        "[[feed]]\ntenant = \"canary\"\nsupplier = \"acme\"\nbase_url = \"{}\"\ntoken_env = \"{TOKEN_ENV}\"\ngo_live_date = \"{go_live}\"\ntimezone = \"Europe/Berlin\"\n",
        api.base_url()
    );
    std::fs::write(&path, text).expect("write the feeds file");
    path
}

fn worker(database_url: &str, feeds: &std::path::Path, log: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sync-worker"));
    command
        .args(["--source", "pull", "--once", "--metrics-addr", "off", "--publish", "off", "--feed-page-size", "40"])
        .arg("--database-url")
        .arg(database_url)
        .arg("--feeds-file")
        .arg(feeds)
        .env(TOKEN_ENV, "pull-token")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    command
}

/// The feed's stored page count; 0 before the worker has created the schema.
async fn checkpoint(connection: &mut PgConnection) -> i64 {
    sqlx::query("SELECT next_offset FROM source_checkpoints WHERE source = 'feed:canary/acme'")
        .fetch_optional(connection)
        .await
        .ok()
        .flatten()
        .map_or(0, |row| row.get::<i64, _>("next_offset"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_window_and_run_again_the_feed_loses_nothing_and_decides_nothing_twice() {
    let database = TestDatabase::create().await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let now = Utc::now();
    let span = TimeDelta::days(20).num_seconds();
    let records: Vec<FeedRecord> = (0..2_400_i64)
        .map(|i| FeedRecord {
            sku: format!("SKU-{:03}", i % 300),
            quantity: (i * 37) % 1_000,
            updated_at: now - TimeDelta::minutes(5) - TimeDelta::seconds(span) + TimeDelta::seconds((i * 7_919) % span),
            sequence: (i % 2 == 0).then_some(i as u64),
        })
        .collect();
    let api = FeedApi::start(records.clone(), "pull-token").await;
    api.set_page_delay(Duration::from_millis(40));
    let feeds = feeds_file(directory.path(), &api, (now - TimeDelta::days(21)).date_naive());

    let first_log = directory.path().join("first.log");
    let mut first = worker(&database.url, &feeds, &first_log).spawn().expect("start the worker");
    let mut connection = PgConnection::connect(&database.url).await.expect("connect");
    let started = Instant::now();
    // Some pages of the first windows are committed: kill it in the middle of one.
    loop {
        assert!(matches!(first.try_wait(), Ok(None)), "the worker ended before it was killed");
        assert!(started.elapsed() < Duration::from_secs(60), "no page was committed in time");
        if checkpoint(&mut connection).await >= 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reap");
    let killed_at = checkpoint(&mut connection).await;

    let second_log = directory.path().join("second.log");
    let status = tokio::task::spawn_blocking({
        let mut command = worker(&database.url, &feeds, &second_log);
        move || command.status()
    })
    .await
    .expect("join")
    .expect("run the worker again");
    assert!(status.success(), "{}", std::fs::read_to_string(&second_log).unwrap_or_default());
    let log = std::fs::read_to_string(&second_log).unwrap_or_default();
    assert!(log.contains("resuming a window at its last committed page"), "{log}");
    assert!(checkpoint(&mut connection).await > killed_at);

    let offers: std::collections::BTreeMap<String, i64> =
        sqlx::query("SELECT sku, quantity FROM offers WHERE tenant_id = 'canary' AND supplier_id = 'acme'")
            .fetch_all(&mut connection)
            .await
            .expect("offers")
            .iter()
            .map(|row| (row.get("sku"), row.get("quantity")))
            .collect();
    assert_eq!(offers, api.expected_offers(), "nothing lost");
    // Every record decided exactly once: one decided journal row per record, and none
    // counted as a redelivery but those of the incremental window's overlap.
    let decided: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE outcome IN ('applied', 'stale', 'superseded', 'held') AND source = 'feed:canary/acme'",
    )
    .fetch_one(&mut connection)
    .await
    .expect("count");
    assert_eq!(decided, records.len() as i64, "each record decided once");
    let rejected: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE outcome = 'rejected'")
        .fetch_one(&mut connection)
        .await
        .expect("count");
    assert_eq!(rejected, 0);
}

/// A `--once` run whose one feed fails (its token variable unset) still publishes what the
/// other pulled before it exits non-zero, naming the failed feed: the failure stopped the
/// publishers at once, leaving the healthy feed's changes (here, settling for 1.5 s) queued
/// until the next cron run, and every run after while the feed kept failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_run_with_a_failed_feed_still_publishes_the_others() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let now = Utc::now();
    let records: Vec<FeedRecord> = (0..3)
        .map(|i| FeedRecord {
            sku: format!("SKU-{i}"),
            quantity: 10 + i,
            updated_at: now - TimeDelta::minutes(5),
            sequence: None,
        })
        .collect();
    let api = FeedApi::start(records, "pull-token").await;
    let feeds = feeds_file(directory.path(), &api, (now - TimeDelta::days(1)).date_naive());
    let mut text = std::fs::read_to_string(&feeds).expect("feeds file");
    text.push_str(&format!(
        "\n[[feed]]\ntenant = \"canary\"\nsupplier = \"globex\"\nbase_url = \"{}\"\ntoken_env = \"CATALOG_TEST_PULL_UNSET\"\ngo_live_date = \"{}\"\n",
        api.base_url(),
        (now - TimeDelta::days(1)).date_naive()
    ));
    std::fs::write(&feeds, text).expect("write the feeds file");
    let (storefront, received) = crate::file_source::accepting_storefront().await;
    let output = tokio::task::spawn_blocking({
        let mut command = Command::new(env!("CARGO_BIN_EXE_sync-worker"));
        command
            .args(["--source", "pull", "--once", "--metrics-addr", "off"])
            .args(["--publish-settle-ms", "1500", "--publish-max-wait-ms", "1500"])
            .args(["--database-url", "sqlite://catalog.db", "--storefront-url", &storefront])
            .arg("--feeds-file")
            .arg(&feeds)
            .current_dir(directory.path())
            .env(TOKEN_ENV, "pull-token")
            .env_remove("CATALOG_TEST_PULL_UNSET")
            .env_remove("CATALOG_STOREFRONT_URL")
            .env("RUST_LOG", "warn");
        move || command.output()
    })
    .await
    .expect("join")
    .expect("run the worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a feed failed: {stderr}");
    assert!(stderr.contains("1 of 2 feeds failed") && stderr.contains("canary/globex"), "{stderr}");
    let published: std::collections::BTreeSet<String> =
        (received.lock().expect("storefront state").iter()).map(|body| body["sku"].to_string()).collect();
    assert_eq!(published.len(), 3, "acme's three SKUs published: {published:?}\n{stderr}");
}
