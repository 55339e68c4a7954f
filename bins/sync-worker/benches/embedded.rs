//! The embedded default at full speed (issue #19): the release worker on an NDJSON file
//! into SQLite with the log publisher on, as a newcomer runs it, against a plain-SQLite
//! baseline of the same rows (`catalog_testkit::plain_sqlite_baseline`: rusqlite, batches of
//! 5,000 in one transaction each, WAL, `synchronous = FULL`) in the same invocation, with
//! the worker's peak resident memory. Then the store's claims on a channel that is down, its
//! 100,000 items in backoff: each claim runs in the store's one writer thread, ahead of the
//! batches waiting for it. Needs no service; run through `cargo xtask bench`
//! (`cargo bench -p sync-worker --bench embedded`). `CATALOG_BENCH_WORKER_ARGS` adds flags.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalog_core::encode;
use catalog_sqlite::SqliteStore;
use catalog_store::{ChannelRoute, StoreConfig};
use chrono::Utc;

mod support;

use support::peak_rss_mib;

const N_EVENTS: usize = 200_000;
const BATCH: usize = 5_000;
/// Baseline and worker runs, alternated.
const ROUNDS: usize = 3;
const THIS_WORKER: &str = env!("CARGO_BIN_EXE_sync-worker");

/// The worker's run over the file: from its start until it exited (every line applied and
/// every changed item published), its peak RSS (sampled until it exits), and its summary.
struct WorkerRun {
    elapsed: Duration,
    peak_rss_mib: Option<f64>,
    summary: String,
}

fn bench_worker(feed: &Path, directory: &Path) -> WorkerRun {
    let database = directory.join("worker.db");
    let source = format!("file:{}", feed.display());
    let url = format!("sqlite://{}", database.display());
    let started = Instant::now();
    let mut worker = Command::new(THIS_WORKER)
        .args(["--source", &source, "--database-url", &url, "--metrics-addr", "off"])
        .args(std::env::var("CATALOG_BENCH_WORKER_ARGS").unwrap_or_default().split_whitespace())
        .env("RUST_LOG", std::env::var("CATALOG_BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".to_owned()))
        // The log publisher's lines: written, as a newcomer's terminal would get them, and dropped.
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sync-worker");
    let pid = worker.id();
    let mut peak: Option<f64> = None;
    let status = loop {
        if let Some(rss) = peak_rss_mib(pid) {
            peak = Some(peak.map_or(rss, |peak: f64| peak.max(rss)));
        }
        if let Some(status) = worker.try_wait().expect("worker status") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "the worker did not finish in 15 minutes");
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let stderr = std::io::read_to_string(worker.stderr.take().expect("stderr")).expect("stderr is UTF-8");
    assert!(status.success(), "the worker failed: {stderr}");
    let summary = stderr.lines().last().unwrap_or_default().to_owned();
    for file in ["worker.db", "worker.db-wal", "worker.db-shm"] {
        let _ = std::fs::remove_file(directory.join(file));
    }
    WorkerRun { elapsed, peak_rss_mib: peak, summary }
}

async fn bench_baseline(events: &[catalog_core::SupplierEvent], directory: &Path) -> Duration {
    let path = directory.join("baseline.db");
    // The schema the worker would create, by the store's own migrations.
    let store = SqliteStore::open_path(&path, StoreConfig::default()).await.expect("create the baseline database");
    store.close().await;
    let incoming = catalog_testkit::incoming(events, "raw", Utc::now());
    let elapsed = catalog_testkit::plain_sqlite_baseline(&path, &incoming, BATCH);
    for file in ["baseline.db", "baseline.db-wal", "baseline.db-shm"] {
        let _ = std::fs::remove_file(directory.join(file));
    }
    elapsed
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|arg| arg == "--bench") {
        return;
    }
    // A name after `--` runs only that part: `file_to_sqlite` or `down_channel`.
    let runs = catalog_testkit::bench_part_chosen;
    let directory = tempfile::tempdir().expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if runs("file_to_sqlite") {
        bench_file_to_sqlite(&runtime, directory.path());
    }
    if runs("down_channel") {
        runtime.block_on(async {
            let config = StoreConfig { channels: vec![ChannelRoute::all("down")], ..StoreConfig::default() };
            let path = directory.path().join("down.db");
            let store = SqliteStore::open_path(&path, config).await.expect("open the store");
            let claims = catalog_testkit::down_channel_claims(&store, "down").await;
            println!("embedded/down_channel {claims}");
            store.close().await;
        });
    }
}

/// The worker against the plain-SQLite baseline, `ROUNDS` times alternated.
#[allow(clippy::print_stdout)] // A benchmark's report is its output.
fn bench_file_to_sqlite(runtime: &tokio::runtime::Runtime, directory: &Path) {
    let events = catalog_testkit::bench_events(N_EVENTS);
    let feed = directory.join("feed.ndjson");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&feed).expect("create the feed"));
        for event in &events {
            writeln!(file, "{}", encode(event)).expect("write the feed");
        }
        file.flush().expect("write the feed");
    }
    let rate = |elapsed: Duration| N_EVENTS as f64 / elapsed.as_secs_f64();
    let (mut rates, mut ratios, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let baseline = rate(runtime.block_on(bench_baseline(&events, directory)));
        let run = bench_worker(&feed, directory);
        let worker = rate(run.elapsed);
        println!(
            "embedded/round {round}: plain_sqlite_baseline {baseline:>7.0} events/s, file_to_sqlite {worker:>7.0} events/s (worker start to exit, log publisher on), ratio {:.2}, peak RSS {}; {}",
            worker / baseline,
            run.peak_rss_mib.map_or("unavailable".to_owned(), |rss| format!("{rss:.0} MiB")),
            run.summary,
        );
        rates.push(worker);
        ratios.push(worker / baseline);
        peaks.extend(run.peak_rss_mib);
    }
    println!(
        "embedded/file_to_sqlite {N_EVENTS} events, median of {ROUNDS}: {:.0} events/s; ratio to the plain-SQLite baseline: median {:.2}, lowest {:.2}; peak RSS highest {}",
        median(&mut rates),
        median(&mut ratios),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        peaks.iter().copied().reduce(f64::max).map_or("unavailable".to_owned(), |rss| format!("{rss:.0} MiB")),
    );
}
