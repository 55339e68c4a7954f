//! The token subcommands of the real binary: `tokens add` prints the token alone on standard
//! output, the store keeps only its hash, `list` shows it and `revoke` ends it; each audited.

use std::process::Command;

use catalog_store::StoreConfig;

fn admin_api(database_url: &str, arguments: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_admin-api"))
        .args(arguments)
        .env("CATALOG_DATABASE_URL", database_url)
        .env("CATALOG_LOG_FORMAT", "json")
        .output()
        .expect("run admin-api")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_add_prints_only_the_token_and_stores_its_hash() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("catalog.db");
    let url = format!("sqlite://{}", path.display());
    let added = admin_api(&url, &["tokens", "add", "--name", "alice", "--role", "operator"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let stdout = String::from_utf8(added.stdout).expect("utf-8");
    let token = stdout.strip_suffix('\n').expect("one line");
    assert!(token.starts_with("cat_") && token.len() == 68 && !token.contains('\n'), "{stdout:?}");
    assert!(!String::from_utf8_lossy(&added.stderr).contains(token), "the token is never logged");
    let again = admin_api(&url, &["tokens", "add", "--name", "alice", "--role", "viewer"]);
    assert!(!again.status.success(), "a live name is not given twice");
    let bad_role = admin_api(&url, &["tokens", "add", "--name", "bob", "--role", "root"]);
    assert!(!bad_role.status.success());

    let store = catalog_sqlite::SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open");
    let found = catalog_store::AdminStore::token_by_hash(&store, &admin_api::auth::hash(token)).await.expect("lookup");
    assert_eq!(found.map(|found| (found.name, found.role)), Some(("alice".to_owned(), catalog_store::Role::Operator)));
    let raw: Vec<u8> = database_bytes(&path);
    assert!(
        !raw.windows(token.len()).any(|window| window == token.as_bytes()),
        "the token is not in the database file"
    );

    let listed = admin_api(&url, &["tokens", "list"]);
    let listed = String::from_utf8(listed.stdout).expect("utf-8");
    assert!(listed.starts_with("alice\toperator\t") && listed.trim_end().ends_with('-'), "{listed}");
    assert!(admin_api(&url, &["tokens", "revoke", "alice"]).status.success());
    let again = admin_api(&url, &["tokens", "revoke", "alice"]);
    assert!(!again.status.success(), "revoked once");
    let stderr = String::from_utf8_lossy(&again.stderr);
    let refusal = stderr.lines().find(|line| line.contains("no live token named")).expect("the refusal");
    assert!(refusal.contains(&format!(" in {url} ")), "names the store it read: {stderr}");
    // What the CLI processes recorded, read by a store opened after they ran.
    store.close().await;
    let store = catalog_sqlite::SqliteStore::open_path(&path, StoreConfig::default()).await.expect("open");
    let audit = catalog_store::AdminStore::audit_log(&store, 10, None).await.expect("audit");
    let actions: Vec<(&str, &str)> = audit.iter().map(|entry| (entry.actor.as_str(), entry.action.as_str())).collect();
    assert_eq!(actions, [("cli", "token_revoke"), ("cli", "token_add")]);
    store.close().await;
}

/// `tokens add` takes the token back when its audit entry cannot be written, as
/// `POST /v1/tokens` does (decision 0011): the failed command prints no token, and left live
/// it was unaudited, held by no one, and its name was refused as taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_added_on_the_command_line_whose_audit_fails_is_taken_back() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("catalog.db");
    let url = format!("sqlite://{}", path.display());
    assert!(admin_api(&url, &["tokens", "list"]).status.success(), "the store is made");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut connection =
        <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options).await.expect("raw connection");
    sqlx::query("CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'down'); END")
        .execute(&mut connection)
        .await
        .expect("create trigger");
    let failed = admin_api(&url, &["tokens", "add", "--name", "alice", "--role", "admin"]);
    assert!(!failed.status.success(), "the audit entry could not be written");
    assert!(failed.stdout.is_empty(), "no token is printed");
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_tokens WHERE name = 'alice' AND revoked_at IS NULL")
        .fetch_one(&mut connection)
        .await
        .expect("count");
    assert_eq!(live, 0, "the token is taken back");
    sqlx::query("DROP TRIGGER no_audit").execute(&mut connection).await.expect("drop trigger");
    let again = admin_api(&url, &["tokens", "add", "--name", "alice", "--role", "admin"]);
    assert!(again.status.success(), "the name is free: {}", String::from_utf8_lossy(&again.stderr));
    sqlx::Connection::close(connection).await.expect("close");
}

/// Every byte of the database and its write-ahead log.
fn database_bytes(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("database file");
    if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    bytes
}

/// The service queues what it releases (held events, retried dead letters) for the worker's
/// channels, so it reads the worker's channels file, and refuses one the worker would refuse.
#[test]
fn the_worker_s_channels_file_is_read_and_checked() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", directory.path().join("catalog.db").display());
    let channels = directory.path().join("channels.json");
    std::fs::write(&channels, r#"[{"name": "shop-eu", "base_url": "http://127.0.0.1:1", "token_env": "UNSET_TOKEN"}]"#)
        .expect("file");
    let channels = channels.display().to_string();
    let listed = admin_api(&url, &["--channels-file", &channels, "tokens", "list"]);
    assert!(listed.status.success(), "no credential is read: {}", String::from_utf8_lossy(&listed.stderr));
    let broken = directory.path().join("broken.json");
    std::fs::write(&broken, r#"[{"name": "Shop EU", "base_url": "http://127.0.0.1:1"}]"#).expect("file");
    let broken = broken.display().to_string();
    let refused = admin_api(&url, &["--channels-file", &broken, "tokens", "list"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("Shop EU"), "{stderr}");
}

/// The store flags go before or after the subcommand, as the README says ("for serving and
/// for every subcommand"), and a subcommand's help lists them.
#[test]
fn the_store_flags_are_taken_after_a_subcommand() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", directory.path().join("catalog.db").display());
    let unused = format!("sqlite://{}", directory.path().join("unused.db").display());
    let run = |arguments: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_admin-api"))
            .args(arguments)
            .env_remove("CATALOG_DATABASE_URL")
            .env("CATALOG_LOG_FORMAT", "json")
            .current_dir(directory.path())
            .output()
            .expect("run admin-api")
    };
    let added = run(&["tokens", "add", "--name", "alice", "--role", "viewer", "--database-url", &url]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let listed = run(&["tokens", "list", "--database-url", &url, "--default-sync", "off"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).starts_with("alice\tviewer\t"), "the token went to --database-url");
    // After the subcommand wins over before it, as clap takes the last value given.
    let listed = run(&["--database-url", &unused, "tokens", "list", "--database-url", &url]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).starts_with("alice\t"),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    let help = run(&["tokens", "list", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--database-url", "--channels-file", "--db-max-connections"] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    let help = run(&["gate", "check", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--database-url") && help.contains("--gate-green-hours"), "{help}");
}

/// A subcommand on PostgreSQL logs nothing by default but what an operator needs: the
/// server's notice that the migrations table already exists is not one of them (every
/// command printed it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subcommand_on_postgres_logs_no_server_notice() {
    let database = catalog_testkit::TestDatabase::create().await;
    let run = |arguments: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_admin-api"))
            .args(arguments)
            .env("CATALOG_DATABASE_URL", &database.url)
            .env_remove("RUST_LOG")
            .output()
            .expect("run admin-api")
    };
    for _ in 0..2 {
        let listed = run(&["tokens", "list"]);
        let stderr = String::from_utf8_lossy(&listed.stderr);
        assert!(listed.status.success(), "{stderr}");
        assert!(!stderr.contains("already exists"), "the server's notice is not logged: {stderr}");
    }
}

/// A typo in a subcommand's arguments is refused with the documented error exit, 2, before
/// any store is opened: opening one migrates it, and makes a SQLite file that was missing
/// (`./catalog.db` by default). Each refusal names the flag and its variable.
#[test]
fn a_subcommand_s_typo_is_refused_before_the_store_is_opened() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("catalog.db");
    let url = format!("sqlite://{}", path.display());
    let check = ["gate", "check", "--tenant", "canary"];
    let cases = [
        ([&check[..], &["--step", "opne"]].concat(), None, "CATALOG_GATE_STEP"),
        ([&check[..], &["--step", "widen"]].concat(), None, "--supplier"),
        ([&check[..], &["--step", "canary", "--supplier", "Acme Ltd"]].concat(), None, "CATALOG_GATE_SUPPLIER"),
        (vec!["gate", "check", "--tenant", "Not A Tenant", "--step", "open"], None, "CATALOG_GATE_TENANT"),
        (check.to_vec(), Some(("CATALOG_GATE_STEP", "rolback")), "the value is CATALOG_GATE_STEP's"),
        (vec!["tokens", "add", "--name", "alice smith", "--role", "viewer"], None, "CATALOG_TOKEN_NAME"),
    ];
    for (arguments, variable, named) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_admin-api"));
        command.args(&arguments).env("CATALOG_DATABASE_URL", &url).env("CATALOG_LOG_FORMAT", "json");
        command.env_remove("CATALOG_GATE_STEP");
        if let Some((variable, value)) = variable {
            command.env(variable, value);
        }
        let refused = command.output().expect("run admin-api");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(stderr.contains(named), "{arguments:?}: {stderr}");
        assert!(!path.exists(), "{arguments:?} made the database");
    }
    // The same arguments well typed open (and make) the store.
    let allowed = admin_api(&url, &[&check[..], &["--step", "rollback"]].concat());
    assert_eq!(allowed.status.code(), Some(1), "{}", String::from_utf8_lossy(&allowed.stderr));
    assert!(path.exists());
}
