//! `sync-worker`: parse options, set up logging, run until the source ends or a signal.

/// jemalloc instead of the system allocator: a batch allocates and frees tens of thousands
/// of small strings and vectors, and glibc's malloc was a large share of the worker's CPU
/// (docs/benchmarks.md, session 5).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::Write;
use std::process::ExitCode;

use catalog_cli::LogFormat;
use clap::Parser;
use sync_worker::config::WorkerArgs;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = WorkerArgs::parse();
    let format = args.log_format;
    catalog_cli::telemetry::init(format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return failed(format, &anyhow::Error::new(error).context("starting the runtime")),
    };
    let outcome = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(catalog_cli::shutdown::cancel_on_signal(shutdown.clone()));
        sync_worker::run(args, shutdown).await
    });
    // Everything read is durable once `run` returns. What may be left is a read of standard
    // input blocked in its thread, which never ends while the input stays open (a pipe whose
    // writer lives on, a terminal): dropping the runtime would wait for it, so it is left.
    runtime.shutdown_background();
    match outcome {
        Ok(summary) => {
            // The run's result, for the operator: one line on standard error after the logs,
            // whatever RUST_LOG filters (a JSON object shaped like the logs with `--log-format
            // json`). Standard error gone, it goes unsaid.
            let line = match format {
                LogFormat::Text => summary.to_string(),
                LogFormat::Json => serde_json::json!({
                    "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    "level": "INFO",
                    "message": "run finished",
                    "summary": summary.to_string(),
                    "target": "sync_worker",
                })
                .to_string(),
            };
            let _ = writeln!(std::io::stderr(), "{line}");
            ExitCode::SUCCESS
        }
        Err(error) => failed(format, &error),
    }
}

/// Says why the worker stopped, as the logs are written, and exits 1.
fn failed(format: LogFormat, error: &anyhow::Error) -> ExitCode {
    match format {
        LogFormat::Text => {
            let _ = writeln!(std::io::stderr(), "Error: {error:?}");
        }
        LogFormat::Json => tracing::error!(error = format!("{error:#}"), "worker stopped"),
    }
    ExitCode::FAILURE
}
