//! Journal retention as an operator runs it: the worker binary, with its retention flags, on
//! a SQLite journal holding days past the retention, archives them to gzip NDJSON and drops
//! them before it exits.

use std::io::{BufRead, BufReader};
use std::process::Command;

use catalog_sqlite::SqliteStore;
use catalog_store::prelude::*;
use catalog_store::{BatchInput, StoreConfig};
use chrono::{Duration, Utc};

async fn journaled(store: &SqliteStore, tenant: &catalog_core::TenantId) -> u64 {
    store.sync_status(tenant).await.expect("status").map_or(0, |status| status.events_by_outcome.values().sum())
}

#[tokio::test]
async fn the_worker_archives_and_drops_journal_days_past_its_retention() {
    let directory = tempfile::tempdir().expect("temp dir");
    let events = catalog_testkit::bench_events(300);
    let tenant = events[0].offer().tenant.clone();
    let received = Utc::now() - Duration::days(3);
    {
        let store =
            SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("store");
        let old = catalog_testkit::incoming(&events, "file:old", received);
        store.apply_batch(&BatchInput::new(old, Vec::new())).await.expect("apply");
        assert_eq!(journaled(&store, &tenant).await, 297, "300 events, 3 exact redeliveries");
    }
    std::fs::write(directory.path().join("empty.ndjson"), "").expect("an empty feed");

    let output = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "file:empty.ndjson", "--database-url", "sqlite://catalog.db", "--metrics-addr", "off"])
        .args(["--journal-retention-days", "1", "--journal-archive-dir", "archive"])
        .current_dir(directory.path())
        .env("RUST_LOG", "info")
        .output()
        .expect("run sync-worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("journal day archived and deleted"), "{stderr}");

    let archives: Vec<_> = std::fs::read_dir(directory.path().join("archive"))
        .expect("the archive directory was made")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(archives.len(), 1, "one day, one file: {archives:?}");
    let name = archives[0].file_name().expect("name").to_string_lossy().into_owned();
    let day = received.format("%Y%m%d");
    assert_eq!(name, format!("events_{day}.ndjson.gz"));
    let lines = BufReader::new(flate2::read::GzDecoder::new(std::fs::File::open(&archives[0]).expect("open")))
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(&line.expect("line")).expect("one JSON row per line"))
        .collect::<Vec<_>>();
    assert_eq!(lines.len(), 297);
    assert!(lines.iter().all(|row| row["outcome"] == "applied" && row["tenant_id"] == tenant.as_str()));

    let store =
        SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("store");
    assert_eq!(journaled(&store, &tenant).await, 0, "the archived day is gone from the journal");
    let horizon = store.journal_horizon().await.expect("horizon").expect("recorded");
    assert!(horizon.archive.is_some_and(|archive| archive.ends_with(&name)));
}
