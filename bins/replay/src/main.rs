//! `replay`: parse options, run the replay, print the touched item ids.

/// jemalloc instead of the system allocator, as the worker: a batch allocates and frees tens
/// of thousands of small strings and vectors (docs/benchmarks.md, session 5).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = replay::ReplayArgs::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(replay::run(args))
}
