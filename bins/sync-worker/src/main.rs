//! `sync-worker`: parse options, set up logging, run until the source ends or a signal.

/// jemalloc instead of the system allocator: a batch allocates and frees tens of thousands
/// of small strings and vectors, and glibc's malloc was a large share of the worker's CPU
/// (docs/benchmarks.md, session 5).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;
use sync_worker::config::WorkerArgs;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let args = WorkerArgs::parse();
    catalog_cli::telemetry::init(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let outcome = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(catalog_cli::shutdown::cancel_on_signal(shutdown.clone()));
        let summary = sync_worker::run(args, shutdown).await?;
        // The run's result, for the operator: one plain line on standard error, after the logs.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{summary}");
        }
        Ok(())
    });
    // Everything read is durable once `run` returns. What may be left is a read of standard
    // input blocked in its thread, which never ends while the input stays open (a pipe whose
    // writer lives on, a terminal): dropping the runtime would wait for it, so it is left.
    runtime.shutdown_background();
    outcome
}
