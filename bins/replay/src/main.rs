//! `replay`: parse options, run the replay, print the touched item ids.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = replay::ReplayArgs::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(replay::run(args))
}
