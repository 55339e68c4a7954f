//! The store's one writer: a thread of its own that owns the only connection that writes
//! (rusqlite, on the same SQLite library sqlx links), and runs each write — a whole batch,
//! a claim, a round of publish records, a heal round, a flag — as one job, in arrival order.
//!
//! A job is one crossing between the async caller and the thread, whatever the number of
//! rows: inside it every statement is a plain in-process call on a cached prepared
//! statement. And since every writer of the process goes through this thread, the applier
//! and the publishers never wait on SQLite's write lock, let alone time out on it.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_store::StoreError;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::write_error;

/// Prepared statements the writer keeps: every write statement of the store fits.
const STATEMENT_CACHE_CAPACITY: usize = 64;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The handle on the writer thread. Dropping the last one (or `close`) ends the thread,
/// which closes its connection.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Fired by the thread once its connection is closed.
    stopped: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl Writer {
    /// Opens the writing connection on the database file at `path` (already created and
    /// migrated) and starts the thread.
    pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Result<Writer, StoreError> {
        let connection = open(path, busy_timeout)?;
        let (jobs, received) = mpsc::channel::<Job>();
        let (stopped, on_stop) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("catalog-sqlite-writer".to_owned())
            .spawn(move || {
                let mut connection = connection;
                // Ends once every sender is gone: the store was closed or dropped.
                while let Ok(job) = received.recv() {
                    job(&mut connection);
                }
                drop(connection);
                let _ = stopped.send(());
            })
            .map_err(|error| StoreError::Unavailable(format!("starting the sqlite writer thread: {error}")))?;
        Ok(Writer { jobs: Mutex::new(Some(jobs)), stopped: Mutex::new(Some(on_stop)) })
    }

    /// Runs `job` on the writer's connection, after every job sent before it.
    pub(crate) async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |connection| {
            // A job that panics (a bug) fails alone: its transaction is rolled back as the
            // panic unwinds through it, and the thread goes on with the next job. Uncaught,
            // the thread would end, and every write after it fail as "closed" for good.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(connection)))
                .unwrap_or_else(|panic| Err(panicked(panic.as_ref())));
            // The caller may have gone (a cancelled future); the work is done either way.
            let _ = reply.send(result);
        });
        let sender = self.jobs.lock().map_err(|_| stopped())?.clone().ok_or_else(stopped)?;
        sender.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `job` in one `BEGIN IMMEDIATE` transaction, committed if it returns `Ok`, rolled
    /// back otherwise. The lock is taken up front, so another process writing the same file
    /// (an operator's tool) makes this wait on the busy timeout instead of failing later.
    pub(crate) async fn transaction<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(write_error)?;
            let result = job(&transaction)?;
            transaction.commit().map_err(write_error)?;
            Ok(result)
        })
        .await
    }

    /// Runs `job` in one `BEGIN IMMEDIATE` transaction and rolls it back whatever it returns.
    pub(crate) async fn rolled_back<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(write_error)?;
            let result = job(&transaction)?;
            transaction.rollback().map_err(write_error)?;
            Ok(result)
        })
        .await
    }

    /// Stops taking jobs, lets the thread finish the ones queued, and waits until it has
    /// closed its connection.
    pub(crate) async fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let on_stop = self.stopped.lock().ok().and_then(|mut stopped| stopped.take());
        if let Some(on_stop) = on_stop {
            let _ = on_stop.await;
        }
    }
}

/// What a job that panicked answers: a bug, for an operator (its message is in the log).
fn panicked(panic: &(dyn std::any::Any + Send)) -> StoreError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    tracing::error!(%message, "a sqlite write panicked: rolled back; the writer goes on");
    StoreError::Database(format!("a write panicked (rolled back): {message}"))
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the sqlite writer is closed".to_owned())
}

fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    // The writer thread is the connection's only user: no mutex inside SQLite is needed.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(write_error)?;
    // WAL is a property of the file (set when it was opened first); synchronous and foreign
    // keys are per connection. FULL syncs the WAL on every commit: a batch is durable before
    // it is acknowledged, which is what lets the caller commit its source offsets.
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(write_error)?;
    connection.busy_timeout(busy_timeout).map_err(write_error)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(connection)
}

/// Runs a long read (a replay's journal window) on a read-only connection of its own, on a
/// blocking thread: its rows are read in-process instead of crossing one by one from sqlx's
/// connection thread, and it never holds up the writer (WAL readers see the last commit).
pub(crate) async fn read_apart<T, F>(path: &Arc<Path>, busy_timeout: Duration, job: F) -> Result<T, StoreError>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let path = Arc::clone(path);
    tokio::task::spawn_blocking(move || {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&*path, flags).map_err(write_error)?;
        connection.busy_timeout(busy_timeout).map_err(write_error)?;
        job(&connection)
    })
    .await
    .map_err(|error| StoreError::Unavailable(format!("a sqlite read thread failed: {error}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_panics_is_rolled_back_and_the_writer_goes_on() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("writer.db");
        Connection::open(&path).expect("create").execute_batch("CREATE TABLE log (n INTEGER)").expect("table");
        let writer = Writer::start(&path, Duration::ZERO).expect("start");
        let failed = writer
            .transaction(|connection| -> Result<(), StoreError> {
                connection.execute("INSERT INTO log (n) VALUES (1)", []).map_err(write_error)?;
                panic!("a bug");
            })
            .await
            .expect_err("the job failed");
        assert!(matches!(&failed, StoreError::Database(message) if message.contains("a bug")), "{failed:?}");
        writer
            .transaction(|connection| connection.execute("INSERT INTO log (n) VALUES (2)", []).map_err(write_error))
            .await
            .expect("the next job runs");
        let rows: Vec<i64> = writer
            .run(|connection| {
                let mut statement = connection.prepare("SELECT n FROM log ORDER BY n").map_err(write_error)?;
                let rows = statement.query_map([], |row| row.get(0)).map_err(write_error)?;
                rows.collect::<Result<_, _>>().map_err(write_error)
            })
            .await
            .expect("rows");
        assert_eq!(rows, [2], "the panicked job's insert was rolled back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_job_runs_on_the_one_writer_thread_in_arrival_order() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("writer.db");
        Connection::open(&path).expect("create").execute_batch("CREATE TABLE log (n INTEGER)").expect("table");
        let writer = Arc::new(Writer::start(&path, Duration::ZERO).expect("start"));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..16_i64 {
            let writer = Arc::clone(&writer);
            tasks.spawn(async move {
                writer
                    .transaction(move |connection| {
                        connection.execute("INSERT INTO log (n) VALUES (?1)", [n]).map_err(write_error)?;
                        Ok(std::thread::current().name().map(str::to_owned))
                    })
                    .await
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let thread = joined.expect("task").expect("job");
            assert_eq!(thread.as_deref(), Some("catalog-sqlite-writer"));
        }
        let count = writer
            .run(|connection| {
                connection.query_row("SELECT count(*) FROM log", [], |row| row.get::<_, i64>(0)).map_err(write_error)
            })
            .await
            .expect("count");
        assert_eq!(count, 16, "with a busy timeout of zero, no job met a lock held by another");
        writer.close().await;
        let error = writer.run(|_| Ok(())).await.expect_err("a closed writer takes no job");
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    }
}
