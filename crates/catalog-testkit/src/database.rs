//! A throwaway database per test on the local PostgreSQL, dropped when the test ends.

use sqlx::{Connection, PgConnection};

/// The server the tests use; CI starts it. A missing server fails the test, never skips it.
pub fn server_url() -> String {
    std::env::var("CATALOG_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("the server url names a database");
    format!("{base}/{name}")
}

#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    /// A `postgres://` URL of the new database.
    pub url: String,
}

impl TestDatabase {
    /// A database whose text sorts by a linguistic collation (ICU `en-US`: `A_1` before `AB`,
    /// `ab` before `AB`), as on most production clusters: the store must answer the same
    /// whatever the database's collation, so the tests run on one that is not byte order
    /// (this machine's server default is `C.UTF-8`, under which no collation bug shows).
    pub async fn create() -> Self {
        Self::create_as("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'").await
    }

    /// A database with the server's defaults, for benchmarks: their figures stay comparable
    /// with the earlier runs'.
    pub async fn create_with_server_defaults() -> Self {
        Self::create_as("").await
    }

    /// Runs `sql` on the database, as an administrator would by hand (a test's stand-in for
    /// a failure the store cannot be made to meet otherwise).
    pub async fn execute(&self, sql: &str) {
        let mut connection = PgConnection::connect(&self.url).await.expect("connect to the test database");
        sqlx::raw_sql(sql).execute(&mut connection).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    async fn create_as(options: &str) -> Self {
        let server = server_url();
        let mut admin = PgConnection::connect(&server).await.unwrap_or_else(|error| {
            panic!("PostgreSQL is required for these tests and is not reachable at {server}: {error}")
        });
        let name = format!("catalog_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name} {options}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        Self { url: with_database(&server, &name), name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // For debugging a failure: keep the database to look at afterwards.
        if std::env::var_os("CATALOG_TEST_KEEP_DATABASES").is_some() {
            return;
        }
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on async work: use a thread
        // with its own small runtime. FORCE ends the pool's connections still open.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&server_url()).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) && !std::thread::panicking() {
            panic!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}
