//! Replay speed against the worker's apply speed, on Postgres, in one invocation: 100k events
//! applied through `apply_batch` in batches of 5,000, then the same window replayed (all
//! already applied) and replayed again after switching a supplier's held events on. The peak
//! resident memory of each replay is reported too (Linux: the high-water mark reset before
//! it): a replay reads its window a page at a time (decision 0058).

use std::time::{Duration, Instant};

use catalog_app::replay::{replay, ReplayRequest};
use catalog_core::{SupplierId, TenantId};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::prelude::*;
use catalog_store::{BatchInput, StoreConfig};
use catalog_testkit::{bench_events, incoming, TestDatabase};
use chrono::Utc;

const N_EVENTS: usize = 100_000;
const BATCH: usize = 5_000;

/// Resets the process's resident-memory high-water mark (Linux `clear_refs` 5); `false` where
/// it cannot be.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The resident-memory high-water mark since the last reset, in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn peak(reset: bool) -> String {
    match (reset, peak_rss_mib()) {
        (true, Some(mib)) => format!(", peak RSS {mib:.0} MiB"),
        _ => String::new(),
    }
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let database = TestDatabase::create_with_server_defaults().await;
        let store = PostgresStore::connect(&database.url, StoreConfig::default(), PostgresOptions::default())
            .await
            .expect("connect");
        let started_at = Utc::now() - chrono::Duration::seconds(1);
        // One supplier of three is off: a third of the events are held, for the replay to apply.
        let tenant = TenantId::parse("canary").expect("valid");
        let held_supplier = SupplierId::parse("supplier-2").expect("valid");
        store.set_supplier_sync(&tenant, &held_supplier, false).await.expect("flag");
        let events = incoming(&bench_events(N_EVENTS), "kafka:bench:replay", Utc::now());
        let started = Instant::now();
        for chunk in events.chunks(BATCH) {
            store.apply_batch(&BatchInput::new(chunk.to_vec(), vec![])).await.expect("apply");
        }
        let apply = started.elapsed();
        store.set_supplier_sync(&tenant, &held_supplier, true).await.expect("flag");

        let request = ReplayRequest {
            tenant,
            since: started_at,
            until: None,
            supplier: None,
            dry_run: false,
            max_dry_run_events: catalog_app::replay::MAX_DRY_RUN_EVENTS,
            held_only: false,
        };
        drop(events);
        let reset = reset_peak_rss();
        let started = Instant::now();
        let first = replay(&store, &request, &|_| {}).await.expect("replay");
        let replay_held = started.elapsed();
        let first_peak = peak(reset);
        let reset = reset_peak_rss();
        let started = Instant::now();
        let second = replay(&store, &request, &|_| {}).await.expect("replay");
        let replay_applied = started.elapsed();
        let second_peak = peak(reset);
        println!("replay/apply_batch            {N_EVENTS} events: {:>9.0} events/s", rate(N_EVENTS, apply));
        println!(
            "replay/window_with_held      {} events: {:>9.0} events/s ({} items touched{first_peak})",
            first.n_replayed,
            rate(first.n_replayed, replay_held),
            first.touched.len()
        );
        println!(
            "replay/window_already_applied {} events: {:>9.0} events/s{second_peak}",
            second.n_replayed,
            rate(second.n_replayed, replay_applied)
        );
        store.pool().close().await;
    });
}
