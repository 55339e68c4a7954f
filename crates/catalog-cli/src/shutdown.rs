//! Stopping cleanly: SIGTERM or SIGINT cancels a token the whole process watches; a second
//! one ends the process at once.

use tokio_util::sync::CancellationToken;

/// The exit status of a process ended by a second signal: 128 + SIGINT's number, as a shell
/// reports a process an interrupt ended.
pub const EXIT_ON_SECOND_SIGNAL: i32 = 130;

/// Cancels `shutdown` on SIGTERM or SIGINT: a worker stops fetching, finishes what is in
/// flight, commits, and exits 0; a server stops accepting and finishes its requests. A second
/// signal while it does ends the process at once with [`EXIT_ON_SECOND_SIGNAL`]: an operator
/// who will not wait for requests in flight (a storefront that does not answer) is not left
/// with SIGKILL. Nothing is lost: nothing is acknowledged, committed or checkpointed before it
/// is durable, so what was in flight is read, applied or sent again at the next start.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let name = next_signal().await;
    tracing::info!("{name} received, finishing what is in flight (a second signal ends the process at once)");
    shutdown.cancel();
    let name = next_signal().await;
    tracing::warn!("second signal ({name}): ending the process now; what was in flight is read, applied or sent again at the next start");
    std::process::exit(EXIT_ON_SECOND_SIGNAL);
}

/// Waits for SIGTERM or SIGINT; its name.
async fn next_signal() -> &'static str {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
