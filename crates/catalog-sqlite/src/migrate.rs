//! Pending migrations, run by one process at a time on a database file.

use std::path::{Path, PathBuf};

use catalog_store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::error::{migrate_error, store_error};
use crate::MIGRATOR;

/// Runs pending migrations on a connection of their own, closed afterwards, holding the
/// database's migration lock. sqlx's migrator reads with partial fetches; on a pooled read
/// connection that can leave the connection's read snapshot pinned at migration time
/// (launchbadge/sqlx#2543), so a later read on it would miss what other processes committed
/// since (seen as a stale audit log in CI).
pub(crate) async fn migrate_on_own_connection(options: &SqliteConnectOptions) -> Result<(), StoreError> {
    let _lock = migration_lock(options.get_filename()).await?;
    let own = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.map_err(store_error)?;
    let migrated = MIGRATOR.run(&own).await.map_err(migrate_error);
    own.close().await;
    migrated
}

/// The database's migration lock: an exclusive lock on `<database>-migrate` beside it (as
/// SQLite keeps `-wal` and `-shm`), waited for, held while the returned file is open and
/// released by the operating system if the process dies. sqlx's SQLite migrator takes no lock
/// of its own (PostgreSQL's takes an advisory one): two processes opening one file after an
/// upgrade (the worker and the admin API) both found a migration pending, and the second
/// failed on what the first had applied (`duplicate column name`), told as a schema problem.
async fn migration_lock(database: &Path) -> Result<std::fs::File, StoreError> {
    let mut name = database.as_os_str().to_owned();
    name.push("-migrate");
    let path = PathBuf::from(name);
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|error| StoreError::Database(format!("locking the database for its migrations: {error}")))?;
    locked.map_err(|error| StoreError::Database(format!("locking {}-migrate: {error}", database.display())))
}
