//! `cargo xtask`: the project's automation (CI checks, benchmarks) in Rust rather than shell.

// A command-line tool talks to its operator on stderr.
#![allow(clippy::print_stderr)]

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
    /// Everything CI checks: rustfmt, clippy with -D warnings, the tidy checks, all tests.
    Ci,
    /// The tidy checks alone: file headers and lengths, and the crate layering of ARCHITECTURE.md.
    Tidy,
    /// Runs the benchmarks (release build); figures go to docs/benchmarks.md by hand.
    Bench {
        /// Criterion measurement time per benchmark, in seconds.
        #[arg(long, default_value_t = 5)]
        measurement_seconds: u32,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let root = project_root();
    match args.task {
        Task::Ci => ci(&root),
        Task::Tidy => tidy::tidy(&root),
        Task::Bench { measurement_seconds } => bench(&root, measurement_seconds),
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
    // nextest does not run doctests; the library examples are part of the contract for importers.
    run(root, "cargo", &["test", "--workspace", "--locked", "--doc"]).context("doctests failed")?;
    // Last, so its summary is the run's closing line.
    run(root, "cargo", &["nextest", "run", "--workspace", "--locked", "--no-fail-fast"]).context("tests failed")?;
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
    // Also needs a Kafka-protocol broker (CATALOG_TEST_KAFKA_BROKERS, default 127.0.0.1:9092).
    run(root, "cargo", &["bench", "--locked", "-p", "sync-worker", "--bench", "kafka_to_postgres"])
        .context("end-to-end Kafka to Postgres benchmark failed")?;
    run(root, "cargo", &["bench", "--locked", "-p", "replay", "--bench", "replay_window"])
        .context("replay benchmark failed")
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
    eprintln!("xtask: {program} {}", args.join(" "));
    let status =
        Command::new(program).args(args).current_dir(root).status().with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("{program} {} exited with {status}", args.join(" "));
    }
    Ok(())
}
