//! The operator endpoints: `/metrics`, `/healthz` (the process serves), `/readyz` (the
//! source runs, the store answers, the broker connection is up and every publisher runs:
//! `ready::Readiness`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use catalog_app::Metrics;

use crate::ready::Readiness;

#[derive(Debug, Clone)]
pub struct Health {
    pub metrics: Metrics,
    pub readiness: Readiness,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(health)
}

async fn metrics(State(health): State<Health>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], health.metrics.render())
}

async fn ready(State(health): State<Health>) -> (StatusCode, String) {
    match health.readiness.check() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(not_ready) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", not_ready.join(", "))),
    }
}

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, health: Health, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(health)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
