//! `admin-api`: parse options, set up logging, serve or run a token subcommand.

use admin_api::config::AdminArgs;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Exit code 2 on an error: `gate check` answers 1 for a refused step, so pipelines tell
/// "refused" from "could not tell".
fn main() -> std::process::ExitCode {
    let args = AdminArgs::parse();
    catalog_cli::telemetry::init(args.log_format);
    let result =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from).and_then(
            |runtime| {
                runtime.block_on(async {
                    let shutdown = CancellationToken::new();
                    tokio::spawn(catalog_cli::shutdown::cancel_on_signal(shutdown.clone()));
                    admin_api::main(args, shutdown).await
                })
            },
        );
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "admin-api failed");
            std::process::ExitCode::from(2)
        }
    }
}
