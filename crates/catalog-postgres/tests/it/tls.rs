//! PostgreSQL over TLS, against the local server as it is configured: a URL's `sslmode`
//! (and `sslrootcert`) are honoured, and a TLS setting the server cannot satisfy is a clear
//! error an operator must fix, returned at once rather than retried or waited on.

use std::time::Duration;

use catalog_core::{Classify, FailureClass};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::{StoreConfig, StoreError};
use catalog_testkit::TestDatabase;

/// Connects with `parameters` appended to the database URL; fails the test if that takes
/// longer than 20 seconds.
async fn connect_with(database: &TestDatabase, parameters: &str) -> Result<PostgresStore, StoreError> {
    let url = format!("{}?{parameters}", database.url);
    let options = PostgresOptions { acquire_timeout: Duration::from_secs(5), ..PostgresOptions::default() };
    tokio::time::timeout(Duration::from_secs(20), PostgresStore::connect(&url, StoreConfig::default(), options))
        .await
        .unwrap_or_else(|_| panic!("connecting with {parameters} hung"))
}

/// Whether the server offers TLS at all (`ssl = on`).
async fn server_offers_tls(database: &TestDatabase) -> bool {
    let store = connect_with(database, "sslmode=disable").await.expect("a plain connection");
    sqlx::query_scalar::<_, String>("SHOW ssl").fetch_one(store.pool()).await.expect("show ssl") == "on"
}

/// A TLS failure: an operator's to fix, and saying so.
fn assert_tls_failure(error: &StoreError) {
    assert_eq!(error.failure_class(), FailureClass::NeedsOperator, "{error}");
    assert!(error.to_string().contains("TLS"), "the error says what failed: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_in_the_url_is_honoured_and_an_unmet_one_is_an_operator_error() {
    let database = TestDatabase::create().await;
    if server_offers_tls(&database).await {
        // Encrypted when required…
        let store = connect_with(&database, "sslmode=require").await.expect("a TLS connection");
        let encrypted: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .expect("pg_stat_ssl");
        assert!(encrypted, "sslmode=require gives an encrypted connection");
        // …and a certificate no known authority signed (the server's own, self-signed) is
        // refused once the URL asks for it to be verified.
        let error = connect_with(&database, "sslmode=verify-full").await.expect_err("an unverifiable certificate");
        assert_tls_failure(&error);
    } else {
        let error = connect_with(&database, "sslmode=require").await.expect_err("the server has no TLS");
        assert_tls_failure(&error);
    }
}
