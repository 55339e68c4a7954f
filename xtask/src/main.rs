//! `cargo xtask`: the project's automation (CI checks, benchmarks) in Rust rather than shell.

// A command-line tool talks to its operator on stderr.
#![allow(clippy::print_stderr)]

mod api_check;
mod charts;
mod fuzz;
mod semver;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "catalog-sync automation")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Everything CI checks: rustfmt, the tidy checks, clippy with -D warnings, cargo deny,
    /// catalog-core's semver check, doctests, a short fuzz and chaos run, the schema-driven
    /// API test, and all tests.
    Ci,
    /// The tidy checks alone: file headers and lengths, and the crate layering of ARCHITECTURE.md.
    Tidy,
    /// Runs the benchmarks (release build); figures go to docs/benchmarks.md by hand.
    Bench {
        /// Criterion measurement time per benchmark, in seconds.
        #[arg(long, default_value_t = 5)]
        measurement_seconds: u32,
    },
    /// SVG charts of the benchmark results in docs/bench-data/*.json, written to docs/charts/;
    /// a missing result file skips its charts, a malformed one is an error.
    Charts,
    /// The chaos runs (release build): a broker, PostgreSQL and a flaky storefront of their
    /// own, workers killed at random, PostgreSQL restarted; first with the broker in memory
    /// (100,000 messages, 20 kills), then with it on disk and restarted too (20,000 messages,
    /// 10 kills). Fails on any lost or doubled message. Arguments after `--` run one chaos run
    /// with them instead (`-- --events 20000 --kills 8`).
    Chaos {
        /// The shorter pair CI runs: 20,000 and 5,000 messages.
        #[arg(long)]
        short: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        arguments: Vec<String>,
    },
    /// Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of each target in fuzz/, from its
    /// corpus in the repository; reports executions and fails on any finding.
    Fuzz {
        /// How long each target runs, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
    },
    /// Licenses, banned crates and sources of every dependency (cargo-deny, deny.toml).
    Deny,
    /// The schema-driven API test: admin-api over a seeded SQLite file, probed by
    /// schemathesis (pinned; from PATH or CATALOG_SCHEMATHESIS) from its /openapi.json; fails
    /// on any 5xx or response outside the schema.
    ApiCheck,
    /// catalog-core's public API against its last release (cargo-semver-checks; the release
    /// is the newest version in crates/catalog-core/CHANGELOG.md).
    Semver,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let root = project_root();
    match args.task {
        Task::Ci => ci(&root),
        Task::Tidy => tidy::tidy(&root),
        Task::Bench { measurement_seconds } => bench(&root, measurement_seconds),
        Task::Charts => charts::draw_all(&root).map(drop),
        Task::Chaos { short, arguments } => chaos(&root, short, &arguments),
        Task::Fuzz { seconds } => fuzz::fuzz(&root, seconds),
        Task::Deny => deny(&root),
        Task::ApiCheck => api_check::api_check(&root),
        Task::Semver => semver::semver(&root),
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives one level below the root").to_path_buf()
}

fn ci(root: &Path) -> Result<()> {
    run(root, "cargo", &["fmt", "--all", "--", "--check"]).context("rustfmt check failed: run `cargo fmt --all`")?;
    tidy::tidy(root)?;
    run(root, "cargo", &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])
        .context("clippy found problems")?;
    deny(root)?;
    semver::semver(root)?;
    // nextest does not run doctests; the library examples are part of the contract for importers.
    run(root, "cargo", &["test", "--workspace", "--locked", "--doc"]).context("doctests failed")?;
    // The short forms of the proofs that no input crashes the decoder and no message is lost.
    fuzz::fuzz(root, 30)?;
    chaos(root, true, &[])?;
    api_check::api_check(root)?;
    // Last, so its summary is the run's closing line.
    run(root, "cargo", &["nextest", "run", "--workspace", "--locked", "--no-fail-fast"]).context("tests failed")?;
    Ok(())
}

/// Checks licenses, bans and sources. Advisories need the RustSec database from GitHub,
/// which this project's machines cannot reach (docs/decisions/0010).
fn deny(root: &Path) -> Result<()> {
    run(root, "cargo", &["deny", "--locked", "check", "licenses", "bans", "sources"])
        .context("cargo deny found problems")
}

/// Runs the chaos bench target: once with `arguments`, or the standard pair (short for CI).
fn chaos(root: &Path, short: bool, arguments: &[String]) -> Result<()> {
    let standard: [&[&str]; 2] = if short {
        [
            &[
                "--broker-storage",
                "memory",
                "--events",
                "20000",
                "--kills",
                "8",
                "--rate",
                "2000",
                "--worker-batch-size",
                "10",
            ],
            &["--broker-storage", "sqlite", "--events", "5000", "--kills", "4", "--rate", "500"],
        ]
    } else {
        [
            &[
                "--broker-storage",
                "memory",
                "--events",
                "100000",
                "--kills",
                "20",
                "--rate",
                "2000",
                "--worker-batch-size",
                "10",
            ],
            &["--broker-storage", "sqlite", "--events", "20000", "--kills", "10", "--rate", "500"],
        ]
    };
    let given: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let runs: Vec<&[&str]> = if given.is_empty() { standard.to_vec() } else { vec![given.as_slice()] };
    for run_arguments in runs {
        let mut command = vec!["bench", "--locked", "-p", "sync-worker", "--bench", "chaos", "--"];
        command.extend_from_slice(run_arguments);
        run(root, "cargo", &command).context("the chaos run failed")?;
    }
    Ok(())
}

fn bench(root: &Path, measurement_seconds: u32) -> Result<()> {
    let seconds = measurement_seconds.to_string();
    run(
        root,
        "cargo",
        &["bench", "--locked", "-p", "catalog-core", "--bench", "decode_decide", "--", "--measurement-time", &seconds],
    )
    .context("catalog-core benchmark failed")?;
    // Needs PostgreSQL on 127.0.0.1:5432 (or CATALOG_TEST_DATABASE_URL); creates and drops its own databases.
    run(root, "cargo", &["bench", "--locked", "-p", "catalog-postgres", "--bench", "apply_batch"])
        .context("Postgres apply_batch benchmark failed")?;
    run(root, "cargo", &["bench", "--locked", "-p", "catalog-postgres", "--bench", "publish_cycle"])
        .context("Postgres publish cycle benchmark failed")?;
    // Also needs a Kafka-protocol broker (CATALOG_TEST_KAFKA_BROKERS, default 127.0.0.1:9092).
    run(root, "cargo", &["bench", "--locked", "-p", "sync-worker", "--bench", "kafka_to_postgres"])
        .context("end-to-end Kafka to Postgres benchmark failed")?;
    // The embedded default (file → SQLite, log publisher on) against plain SQLite; no service.
    run(root, "cargo", &["bench", "--locked", "-p", "sync-worker", "--bench", "embedded"])
        .context("embedded file to SQLite benchmark failed")?;
    run(root, "cargo", &["bench", "--locked", "-p", "replay", "--bench", "replay_window"])
        .context("replay benchmark failed")?;
    // 5,000 events/s fanned out to five local marketplaces (issue #18; needs PostgreSQL and Kafka).
    run(root, "cargo", &["bench", "--locked", "-p", "sync-worker", "--bench", "fanout"])
        .context("fan-out benchmark failed")?;
    // The same with Amazon and Walmart in feeds (decision 0029), as a seller at that rate runs them.
    let fanout = ["bench", "--locked", "-p", "sync-worker", "--bench", "fanout"];
    run_with(root, "cargo", &fanout, &[("CATALOG_BENCH_FANOUT_FEEDS", "1")])
        .context("fan-out benchmark with feeds failed")?;
    // Drift healed on a 100,000-item storefront limited to 200 requests/s (needs PostgreSQL).
    run(root, "cargo", &["bench", "--locked", "-p", "sync-worker", "--bench", "reconcile"])
        .context("reconciliation benchmark failed")?;
    // The trace of an item with 10,000 journaled events through admin-api (needs PostgreSQL).
    run(root, "cargo", &["bench", "--locked", "-p", "admin-api", "--bench", "trace_10k"])
        .context("admin-api trace benchmark failed")?;
    // 1,000,000 records pulled from a local supplier feed into PostgreSQL.
    run(root, "cargo", &["bench", "--locked", "-p", "catalog-feed", "--bench", "pull_to_postgres"])
        .context("pull benchmark failed")?;
    // 20 million events end to end, as the journal grows (CATALOG_SOAK_EVENTS for fewer).
    run(root, "cargo", &["bench", "--locked", "-p", "sync-worker", "--bench", "soak"])
        .context("soak benchmark failed")?;
    // The results above as SVG charts in docs/charts.
    charts::draw_all(root).map(drop)
}

pub(crate) fn visit(directory: &Path, on_file: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()> {
    if !directory.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(directory).with_context(|| format!("listing {}", directory.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == "target") {
                continue;
            }
            visit(&path, on_file)?;
        } else {
            on_file(&path)?;
        }
    }
    Ok(())
}

pub(crate) fn run(root: &Path, program: &str, args: &[&str]) -> Result<()> {
    run_with(root, program, args, &[])
}

/// [`run`] with environment variables set for the command.
pub(crate) fn run_with(root: &Path, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let shown: Vec<String> = envs.iter().map(|(name, value)| format!("{name}={value} ")).collect();
    eprintln!("xtask: {}{program} {}", shown.concat(), args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root)
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("{program} {} exited with {status}", args.join(" "));
    }
    Ok(())
}
