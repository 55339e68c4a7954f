//! `admin-api`: parse options, set up logging, serve or run a token subcommand.

use admin_api::config::AdminArgs;
use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let args = AdminArgs::parse();
    catalog_cli::telemetry::init(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(catalog_cli::shutdown::cancel_on_signal(shutdown.clone()));
        admin_api::main(args, shutdown).await
    })
}
