//! Stopping cleanly: SIGTERM or SIGINT cancels a token the whole process watches.

use tokio_util::sync::CancellationToken;

/// Cancels `shutdown` on SIGTERM or SIGINT: a worker stops fetching, finishes what is in
/// flight, commits, and exits 0; a server stops accepting and finishes its requests.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
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
        _ = terminate => tracing::info!("SIGTERM received, finishing what is in flight"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, finishing what is in flight"),
    }
    shutdown.cancel();
}
