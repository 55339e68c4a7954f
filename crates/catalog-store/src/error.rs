//! Store failures, classified so callers know whether to retry, alert or stop.

use catalog_core::{Classify, FailureClass};

/// A store operation failed. Expected outcomes (duplicates, rejections) are never errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or dropped the connection: retry with backoff.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A serialization failure, deadlock or concurrent claim of the same event id: retry the batch.
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// A statement, a lock wait or a whole transaction took longer than allowed (a slow or
    /// black-holed database): retry with backoff.
    #[error("transaction timeout: {0}")]
    Timeout(String),
    /// Migrations failed or the schema is not what this build expects: an operator must act.
    #[error("schema problem: {0}")]
    Schema(String),
    /// The database refused an operation for a reason retrying will not fix
    /// (permissions, disk full, constraint this code should never break).
    #[error("database error: {0}")]
    Database(String),
    /// Stored data breaks an invariant this build relies on: stop rather than spread it.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The caller asked for something that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
}

impl Classify for StoreError {
    fn failure_class(&self) -> FailureClass {
        match self {
            StoreError::Unavailable(_) | StoreError::Conflict(_) | StoreError::Timeout(_) => FailureClass::Retryable,
            StoreError::Schema(_) | StoreError::Database(_) | StoreError::NotFound(_) => FailureClass::NeedsOperator,
            StoreError::Corrupt(_) => FailureClass::Fatal,
        }
    }
}

impl StoreError {
    /// A stable label for metrics: `catalog_store_errors_total{kind=...}`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Conflict(_) => "conflict",
            StoreError::Timeout(_) => "transaction_timeout",
            StoreError::Schema(_) => "schema",
            StoreError::Database(_) => "database",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::NotFound(_) => "not_found",
        }
    }
}
