//! The one place a `sqlx` or `rusqlite` failure becomes a classified `StoreError`.

use catalog_store::StoreError;

/// SQLite's primary result code for "another connection holds the lock" (`SQLITE_BUSY`).
const SQLITE_BUSY: i64 = 5;
/// SQLite's primary result code for "a lock inside this process conflicts" (`SQLITE_LOCKED`).
const SQLITE_LOCKED: i64 = 6;

/// Classifies a `sqlx` failure so callers know whether to retry, alert or stop.
///
/// Busy and locked results (including their extended codes, whose low byte is the primary
/// code) mean another writer held the database for longer than the busy timeout: the batch
/// is safe to retry. Decode failures mean stored bytes break what this build expects, which
/// no retry fixes.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Database(database_error) if busy_code(&*database_error) => {
            StoreError::Conflict(database_error.to_string())
        }
        sqlx::Error::Database(database_error) => StoreError::Database(database_error.to_string()),
        sqlx::Error::Migrate(migrate_error) => StoreError::Schema(migrate_error.to_string()),
        // A missing column means the schema is not the one this build migrated to.
        sqlx::Error::ColumnNotFound(_) | sqlx::Error::ColumnIndexOutOfBounds { .. } => {
            StoreError::Schema(error.to_string())
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::TypeNotFound { .. } => {
            StoreError::Corrupt(error.to_string())
        }
        sqlx::Error::RowNotFound => StoreError::NotFound(error.to_string()),
        other => StoreError::Database(other.to_string()),
    }
}

/// Classifies a failure of the writer's connection (rusqlite) the same way: busy and
/// locked are retryable conflicts, values that do not fit their column are corruption, a
/// missing column is a schema this build did not migrate to.
pub(crate) fn write_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                StoreError::Conflict(error.to_string())
            }
            rusqlite::ErrorCode::CannotOpen => StoreError::Unavailable(error.to_string()),
            _ => StoreError::Database(error.to_string()),
        },
        rusqlite::Error::InvalidColumnName(_) | rusqlite::Error::InvalidColumnIndex(_) => {
            StoreError::Schema(error.to_string())
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(_) => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Database(error.to_string()),
    }
}

/// Migration failures arrive as their own type; they go through the same classification.
/// A migration's failure: a schema problem, but for a statement that waited out the busy
/// timeout behind another process's write, which is retryable like any such wait.
pub(crate) fn migrate_error(error: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) if busy(&inner) => store_error(inner),
        error => store_error(sqlx::Error::Migrate(Box::new(error))),
    }
}

/// Whether `error` is SQLite's busy or locked result, extended codes included (their low byte
/// is the primary code).
fn busy(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if busy_code(&**database_error))
}

fn busy_code(database_error: &dyn sqlx::error::DatabaseError) -> bool {
    let primary_code = database_error.code().and_then(|code| code.parse::<i64>().ok()).map(|code| code & 0xff);
    matches!(primary_code, Some(SQLITE_BUSY | SQLITE_LOCKED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_exhaustion_is_retryable_unavailability() {
        assert!(matches!(store_error(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        assert!(matches!(store_error(sqlx::Error::PoolClosed), StoreError::Unavailable(_)));
    }

    #[test]
    fn decode_failures_are_corruption() {
        let error = sqlx::Error::ColumnDecode { index: "event_id".to_owned(), source: "16 bytes expected".into() };
        assert!(matches!(store_error(error), StoreError::Corrupt(_)));
    }

    #[test]
    fn migration_failures_are_schema_problems() {
        let error = sqlx::migrate::MigrateError::VersionMissing(1);
        assert!(matches!(migrate_error(error), StoreError::Schema(_)));
    }

    #[tokio::test]
    async fn a_write_lock_held_past_the_busy_timeout_is_a_retryable_conflict() {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
        use sqlx::{ConnectOptions, SqliteConnection};

        let directory = tempfile::tempdir().expect("temporary directory");
        let options = SqliteConnectOptions::new()
            .filename(directory.path().join("locked.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::ZERO);
        let mut holder: SqliteConnection = options.connect().await.expect("holder connects");
        let mut waiter: SqliteConnection = options.connect().await.expect("waiter connects");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.expect("holder takes the write lock");
        let error = sqlx::query("BEGIN IMMEDIATE").execute(&mut waiter).await.expect_err("the lock is held");
        assert!(matches!(store_error(error), StoreError::Conflict(_)));
    }
}
