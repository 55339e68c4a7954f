//! A deadline on every store operation, which no server-side timeout gives.

use std::time::Duration;

use catalog_store::StoreError;

/// Runs a store operation with a deadline: past `limit` it is abandoned and reported as a
/// retryable [`StoreError::Timeout`] naming `operation`. This bounds what no server-side
/// timeout can: a connection whose packets vanish never answers, and without a deadline the
/// caller would wait for it forever. The server rolls an abandoned transaction back when its
/// session ends or sits idle in it past `idle_in_transaction_session_timeout`.
pub(crate) async fn with_deadline<T>(
    limit: Duration,
    operation: &'static str,
    future: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Timeout(format!("{operation} took longer than {} ms", limit.as_millis()))),
    }
}
