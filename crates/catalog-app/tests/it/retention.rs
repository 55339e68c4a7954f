//! Journal retention as the worker runs it, on PostgreSQL: a day of journal is archived to a
//! gzip NDJSON file and its partition dropped while two callers keep applying batches, and an
//! archived event delivered again is still a duplicate.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use catalog_app::retention::{run_once, RetentionSettings};
use catalog_app::Metrics;
use catalog_core::{ClockPolicy, StockChange};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::contract::{base, batch, incoming, offer};
use catalog_store::prelude::*;
use catalog_store::{IncomingEvent, StoreConfig};
use catalog_testkit::TestDatabase;
use chrono::{DateTime, Days, NaiveTime, Utc};

fn start_of_day_from_today(days: u64) -> DateTime<Utc> {
    Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc().checked_add_days(Days::new(days)).expect("in range")
}

/// Event `n` for SKU `n % skus`, received at `received_at`, at source offset `n`.
fn event(n: u64, skus: u64, received_at: DateTime<Utc>) -> IncomingEvent {
    let key = offer("canary", "acme", &format!("SKU-{}", n % skus));
    let received_second = (received_at - base()).num_seconds();
    incoming(n, &key, StockChange::Updated { quantity: (n % 97) as i64 }, n as i64, received_second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_archived_and_dropped_while_batches_are_applied() {
    let database = TestDatabase::create().await;
    let store = Arc::new(
        PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
            .await
            .expect("connect"),
    );
    // 2,000 events received today: the journal's first partition, which ends tonight.
    let today = Utc::now();
    for chunk in (0..2_000u64).collect::<Vec<_>>().chunks(500) {
        let events = chunk.iter().map(|n| event(*n, 1_000, today)).collect();
        store.apply_batch(&batch(events)).await.expect("apply today's events");
    }

    // Three days on, two callers apply the live stream while retention runs.
    let later = start_of_day_from_today(3) + chrono::Duration::hours(2);
    let writers: Vec<_> = (0..2u64)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..20u64 {
                    let first = 100_000 + writer * 100_000 + round * 250;
                    let events = (first..first + 250).map(|n| event(n, 5_000, later)).collect();
                    store.apply_batch(&batch(events)).await.expect("a live batch beside retention");
                }
            })
        })
        .collect();
    let archive_dir = tempfile::tempdir().expect("temp dir");
    let settings = RetentionSettings {
        retention: chrono::Duration::days(1),
        archive_dir: archive_dir.path().to_owned(),
        interval: Duration::from_secs(3_600),
        days_ahead: 7,
        chunk: 300,
        clock: ClockPolicy::default(),
    };
    let metrics = Metrics::new();
    let report = run_once(&*store, &settings, &metrics, later).await.expect("retention pass");
    for writer in writers {
        writer.await.expect("writer finished");
    }

    assert_eq!(report.dropped.iter().map(|segment| segment.rows).sum::<u64>(), 2_000, "{report:?}");
    assert!(report.kept.is_empty());
    // Every dropped row is in an archive, one JSON journal entry per line.
    let mut archived = 0;
    for segment in &report.dropped {
        let file = std::fs::File::open(&segment.archive).expect("archive exists");
        for line in BufReader::new(flate2::read::GzDecoder::new(file)).lines() {
            let entry: serde_json::Value = serde_json::from_str(&line.expect("line")).expect("a JSON entry");
            assert_eq!(entry["outcome"], "applied", "{entry}");
            archived += 1;
        }
    }
    assert_eq!(archived, 2_000);
    let status = store.sync_status(&offer("canary", "acme", "X").tenant).await.expect("status").expect("tenant");
    let journaled: u64 = status.events_by_outcome.values().sum();
    assert_eq!(journaled, 10_000, "every live event journaled, the archived day gone: {status:?}");
    let horizon = store.journal_horizon().await.expect("horizon").expect("retention dropped a day");
    assert!(horizon.kept_since <= later - settings.retention);

    // An archived event delivered again is a duplicate: its claim outlived its row.
    let mut again = event(7, 1_000, later);
    again.source.offset = 1_000_000;
    let result = store.apply_batch(&batch(vec![again])).await.expect("apply");
    assert_eq!(result.decisions[0].outcome.as_str(), "duplicate");
    assert!(result.changed_items.is_empty());
    let metrics_text = metrics.render();
    assert!(metrics_text.contains("catalog_journal_rows_archived_total 2000"), "{metrics_text}");
}
