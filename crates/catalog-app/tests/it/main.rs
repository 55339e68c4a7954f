//! Integration tests of the application layer: the channels a worker publishes on, the
//! auto-heal of dead letters with its metrics, the applier's retries, and the tracer through a
//! store that fails part way through a round, on a real SQLite store.

mod alerts;
mod apply;
mod channels;
mod feed_metrics;
mod heal;
mod held;
mod reconcile_marketplaces;
mod reconcile_storefront;
mod replay;
mod retention;
mod sales_channels;
mod shared_listings;
mod trace;

/// Polls `check` until it holds, failing the test once `within` passes.
pub(crate) async fn eventually(within: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
