//! How a sqlx error is told as a `StoreError`: by what can be done about it (retried, an
//! operator's, the schema's).

use catalog_store::StoreError;

/// Classifies a database failure: unreachable and lost races are retryable, the rest is not.
/// A TLS failure (the server offers no TLS the URL's `sslmode` requires, a certificate that
/// does not verify) is a setting to fix, not an outage to wait out.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Tls(_) => StoreError::Database(format!("TLS: {error}")),
        sqlx::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            StoreError::Database(format!("TLS: {error}"))
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Database(database) => match database.code().as_deref() {
            // serialization_failure, deadlock_detected
            Some("40001" | "40P01") => StoreError::Conflict(database.to_string()),
            // query_canceled (statement_timeout), lock_not_available (lock_timeout),
            // idle_in_transaction_session_timeout
            Some("57014" | "55P03" | "25P03") => StoreError::Timeout(database.to_string()),
            // connection exceptions, admin shutdown, crash shutdown, cannot connect now
            Some(code) if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03") => {
                StoreError::Unavailable(database.to_string())
            }
            // undefined_table, undefined_column
            Some("42P01" | "42703") => StoreError::Schema(database.to_string()),
            // Two batches creating one item at once: `ON CONFLICT (item_id)` arbitrates the
            // primary key only, and the other's row, not yet committed when this insert
            // checked, violates `UNIQUE (tenant_id, sku)` instead. A race the retry wins
            // (with locks, the item there), not an operator's error.
            Some("23505") if database.constraint() == Some("items_tenant_id_sku_key") => {
                StoreError::Conflict(database.to_string())
            }
            _ => StoreError::Database(database.to_string()),
        },
        sqlx::Error::Migrate(_) => StoreError::Schema(error.to_string()),
        // A missing column means the schema is not the one this build migrated to.
        sqlx::Error::ColumnNotFound(_) | sqlx::Error::ColumnIndexOutOfBounds { .. } => {
            StoreError::Schema(error.to_string())
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::TypeNotFound { .. } => {
            StoreError::Corrupt(error.to_string())
        }
        _ => StoreError::Database(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use catalog_core::{Classify, FailureClass};

    use super::{store_error, StoreError};

    #[test]
    fn a_tls_failure_needs_an_operator_and_an_outage_is_retried() {
        // What sqlx answers when the server has no TLS and the URL's sslmode requires it.
        let no_tls = store_error(sqlx::Error::Tls("server does not support TLS".into()));
        assert_eq!(no_tls.failure_class(), FailureClass::NeedsOperator);
        assert_eq!(no_tls.to_string(), "database error: TLS: error occurred while attempting to establish a TLS connection: server does not support TLS");
        let refused = store_error(sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        assert_eq!(refused.failure_class(), FailureClass::Retryable);
    }

    /// The violation two batches creating one item at once meet (its row written by the other,
    /// under the same key, is here under another id to make it happen at will) is a conflict
    /// to retry; another unique violation is still the database's error.
    #[tokio::test]
    async fn an_item_created_by_two_batches_at_once_is_a_conflict_to_retry() {
        use sqlx::Connection as _;
        let database = catalog_testkit::TestDatabase::create().await;
        let mut connection = sqlx::PgConnection::connect(&database.url).await.expect("connect");
        crate::MIGRATOR.run(&mut connection).await.expect("migrate");
        sqlx::query(
            "INSERT INTO tenants (tenant_id, sync_enabled, new_suppliers_enabled) VALUES ('canary', true, true)",
        )
        .execute(&mut connection)
        .await
        .expect("tenant");
        let insert = "INSERT INTO items (item_id, tenant_id, sku) VALUES ($1, 'canary', 'ABC-1') ON CONFLICT (item_id) DO NOTHING";
        sqlx::query(insert).bind(uuid::Uuid::from_u128(1)).execute(&mut connection).await.expect("first");
        let raced =
            sqlx::query(insert).bind(uuid::Uuid::from_u128(2)).execute(&mut connection).await.expect_err("raced");
        assert!(matches!(store_error(raced), StoreError::Conflict(_)), "a conflict");
        let other = sqlx::query(
            "INSERT INTO tenants (tenant_id, sync_enabled, new_suppliers_enabled) VALUES ('canary', true, true)",
        )
        .execute(&mut connection)
        .await
        .expect_err("a duplicate tenant");
        assert_eq!(store_error(other).failure_class(), FailureClass::NeedsOperator);
    }
}
