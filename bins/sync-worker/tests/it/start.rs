//! What the worker refuses at start, before it applies or sends anything.

use std::process::Command;

#[test]
fn a_storefront_url_that_is_not_a_url_is_refused_at_start() {
    let directory = tempfile::tempdir().expect("temp dir");
    let events = directory.path().join("events.ndjson");
    std::fs::write(&events, "").expect("write the events file");
    let source = format!("file:{}", events.display());
    for (flag, env) in [(Some("notaurl"), None), (None, Some("ftp://storefront.example"))] {
        let mut worker = Command::new(env!("CARGO_BIN_EXE_sync-worker"));
        worker.args(["--source", &source, "--metrics-addr", "off"]).current_dir(directory.path());
        worker.env_remove("CATALOG_STOREFRONT_URL").env("RUST_LOG", "warn");
        if let Some(url) = flag {
            worker.args(["--storefront-url", url]);
        }
        if let Some(url) = env {
            worker.env("CATALOG_STOREFRONT_URL", url);
        }
        let output = worker.output().expect("start sync-worker");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started with {flag:?} {env:?}: {stderr}");
        assert!(stderr.contains("--storefront-url") && stderr.contains("CATALOG_STOREFRONT_URL"), "{stderr}");
        assert!(output.stdout.is_empty() && !stderr.contains("summary:"), "{stderr}");
    }
}

#[test]
fn a_batch_size_of_zero_is_refused_at_start() {
    let directory = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "-", "--metrics-addr", "off", "--batch-size", "0"])
        .current_dir(directory.path())
        .output()
        .expect("start sync-worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--batch-size"), "{stderr}");
}

/// A log collector gone (standard error a pipe nobody reads) stops neither the run nor the
/// exit: the worker applies, publishes and exits 0 whatever it could not log, in text and in
/// JSON. Writing the logs or the summary panicked on the broken pipe, and a panic in a
/// thread of librdkafka's left a Kafka worker hanging in its close.
#[test]
fn a_broken_standard_error_neither_stops_the_run_nor_the_exit() {
    for format in ["text", "json"] {
        let directory = tempfile::tempdir().expect("temp dir");
        let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/supplier-events.ndjson");
        let source = format!("file:{}", events.display());
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let mut worker = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
            .args(["--source", &source, "--metrics-addr", "off", "--log-format", format])
            .current_dir(directory.path())
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(writer)
            .spawn()
            .expect("start sync-worker");
        let broken = format!("{format}: its standard error broken");
        let exit = crate::exit_within(&mut worker, std::time::Duration::from_secs(30), &broken);
        assert!(exit.success(), "{format}: {exit}");
        let mut published = String::new();
        std::io::Read::read_to_string(&mut worker.stdout.take().expect("stdout"), &mut published).expect("stdout");
        assert_eq!(published.lines().count(), 3, "{format}: every item published: {published}");
    }
}

/// With `--log-format json` every line on standard error is JSON, the summary too, whatever
/// RUST_LOG filters.
#[test]
fn every_line_on_standard_error_is_json_with_log_format_json() {
    let directory = tempfile::tempdir().expect("temp dir");
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/supplier-events.ndjson");
    let source = format!("file:{}", events.display());
    let output = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", &source, "--metrics-addr", "off", "--log-format", "json"])
        .current_dir(directory.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sync-worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    let summary = lines.last().expect("a summary")["summary"].as_str().expect("the summary").to_owned();
    assert!(summary.starts_with("summary: events="), "{summary}");
}

/// The failure hold of the pull source is `--feed-failure-hold-seconds` and
/// `CATALOG_FEED_FAILURE_HOLD_SECONDS` (300 by default); 0 is refused at start, as it would
/// try a failing feed again at once, for ever.
#[test]
fn the_feed_failure_hold_is_a_flag_and_a_variable_and_zero_is_refused() {
    use clap::Parser;
    use sync_worker::config::WorkerArgs;

    let parsed = |extra: &[&str]| {
        let args = [&["sync-worker", "--source", "pull"][..], extra].concat();
        WorkerArgs::try_parse_from(args).expect("valid options").feeds.settings().failure_hold
    };
    assert_eq!(parsed(&[]), chrono::Duration::seconds(300));
    assert_eq!(parsed(&["--feed-failure-hold-seconds", "30"]), chrono::Duration::seconds(30));

    let directory = tempfile::tempdir().expect("temp dir");
    for (flag, env) in [(Some("0"), None), (None, Some("0"))] {
        let mut worker = Command::new(env!("CARGO_BIN_EXE_sync-worker"));
        worker.args(["--source", "pull", "--once", "--metrics-addr", "off"]).current_dir(directory.path());
        worker.env_remove("CATALOG_FEED_FAILURE_HOLD_SECONDS").env("RUST_LOG", "warn");
        if let Some(seconds) = flag {
            worker.args(["--feed-failure-hold-seconds", seconds]);
        }
        if let Some(seconds) = env {
            worker.env("CATALOG_FEED_FAILURE_HOLD_SECONDS", seconds);
        }
        let output = worker.output().expect("start sync-worker");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started with {flag:?} {env:?}: {stderr}");
        assert!(stderr.contains("--feed-failure-hold-seconds"), "{stderr}");
    }
}

/// `--help` names the variables but never shows their values where they may hold a secret: a
/// database URL's password, a Kafka SASL password given inline, a storefront URL's user
/// information. clap shows a variable's value by default (`[env: NAME=value]`).
#[test]
fn help_shows_no_secret_from_the_environment() {
    let secret = "s3cr3t-from-the-environment";
    let mut worker = Command::new(env!("CARGO_BIN_EXE_sync-worker"));
    worker.arg("--help");
    worker.env("CATALOG_DATABASE_URL", format!("postgres://catalog:{secret}@db.internal/catalog"));
    worker.env("CATALOG_KAFKA_OPTIONS", format!("sasl.username=catalog,sasl.password={secret}"));
    worker.env("CATALOG_STOREFRONT_URL", format!("https://catalog:{secret}@storefront.internal"));
    worker.env("CATALOG_STOREFRONT_TOKEN", secret);
    let output = worker.output().expect("run sync-worker --help");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for name in ["CATALOG_DATABASE_URL", "CATALOG_KAFKA_OPTIONS", "CATALOG_STOREFRONT_URL"] {
        assert!(help.contains(name), "{name} not named in the help");
    }
    assert!(!help.contains(secret), "the help shows a secret:\n{help}");
}

/// The README's options table names every option of the worker, each with its flag and its
/// variable exactly as `--help` has them: an operator looking one up finds it, and a variable
/// written `CATALOG_TRACE_*` or `CATALOG_STALE_ITEMS_TARGET …` is no variable to set.
#[test]
fn the_readme_names_every_option_with_its_flag_and_variable() {
    use clap::CommandFactory;
    use std::collections::BTreeSet;

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    // The worker's tables: its options, then the pull source's (the replay's and the admin
    // service's follow).
    let tables = readme.split("| flag | variable | default | what |").skip(1).take(2);
    let rows: Vec<&str> =
        tables.flat_map(|table| table.lines().skip(2).take_while(|line| line.starts_with('|'))).collect();
    let quoted = |cell: &str, prefix: &str| -> Vec<String> {
        cell.split('`').skip(1).step_by(2).filter(|text| text.starts_with(prefix)).map(str::to_owned).collect()
    };
    let mut documented: BTreeSet<(String, String)> = BTreeSet::new();
    for row in &rows {
        let cells: Vec<&str> = row.split('|').collect();
        let (flags, variables) = (quoted(cells[1], "--"), quoted(cells[2], "CATALOG_"));
        assert_eq!(flags.len(), variables.len(), "a row pairs each flag with its variable: {row}");
        documented.extend(flags.into_iter().zip(variables));
    }
    let command = sync_worker::config::WorkerArgs::command();
    let options: BTreeSet<(String, String)> = command
        .get_arguments()
        .filter_map(|argument| {
            let long = argument.get_long()?;
            let variable = argument.get_env()?.to_str()?.to_owned();
            Some((format!("--{long}"), variable))
        })
        .collect();
    let missing: Vec<_> = options.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&options).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "not in the README: {missing:#?}\nin the README only: {unknown:#?}"
    );
}

/// A second SIGTERM while the worker finishes what is in flight ends it at once, exit 130: a
/// storefront that accepts a request and never answers would otherwise hold the worker for
/// the request's whole timeout, and SIGKILL was the operator's only way out.
#[test]
fn a_second_signal_ends_the_worker_at_once() {
    use std::io::Read;

    // A storefront that takes the connection and the request, and never answers.
    let storefront = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the storefront");
    let url = format!("http://{}", storefront.local_addr().expect("address"));
    let (asked, was_asked) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut connection in storefront.incoming().flatten() {
            let mut buffer = [0; 4096];
            if connection.read(&mut buffer).is_ok_and(|n| n > 0) {
                let _ = asked.send(());
            }
            held.push(connection);
        }
    });
    let directory = tempfile::tempdir().expect("temp dir");
    let events = one_event_file(directory.path());
    let source = format!("file:{}", events.display());
    let mut worker = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", &source, "--metrics-addr", "off", "--storefront-url", &url, "--reconcile", "off"])
        .current_dir(directory.path())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sync-worker");
    was_asked.recv_timeout(std::time::Duration::from_secs(30)).expect("the storefront is asked");
    let signal = |worker: &std::process::Child| {
        let status = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().expect("send SIGTERM");
        assert!(status.success());
    };
    signal(&worker);
    std::thread::sleep(std::time::Duration::from_millis(500));
    signal(&worker);
    let status = worker.wait().expect("the worker ends");
    let mut stderr = String::new();
    worker.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read the log");
    assert_eq!(status.code(), Some(catalog_cli::shutdown::EXIT_ON_SECOND_SIGNAL), "{stderr}");
    assert!(stderr.contains("second signal (SIGTERM)"), "{stderr}");
}

/// `events.ndjson` in `directory`, holding one event: ABC-1 of tenant `canary` at 3.
pub(crate) fn one_event_file(directory: &std::path::Path) -> std::path::PathBuf {
    let events = directory.join("events.ndjson");
    std::fs::write(
        &events,
        r#"{"event_id":"00000000-0000-0000-0000-000000000001","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"ABC-1","quantity":3,"updated_at":"2026-06-01T12:00:00Z"}
"#,
    )
    .expect("write the events");
    events
}

/// A worker that only applies (`--publish off`, the apply/publish split) sends nothing, so it
/// starts without the channels' credentials, as `admin-api` and `replay` do: it read every
/// channel's secret variable and refused to start without it. Two sellers on one platform
/// are still two accounts without their secrets (read as one value, they were one account,
/// and refused for keeping two refresh token files).
#[test]
fn an_applying_only_worker_starts_without_channel_credentials() {
    let directory = tempfile::tempdir().expect("temp dir");
    let channels = directory.path().join("channels.json");
    // A Shopify shop, and two Mercado Libre sellers, each with its own token and file.
    let seller = |name: &str, n: u8| {
        format!(
            r#"{{"name": "{name}", "tenants": ["t{n}"], "adapter": {{"kind": "mercadolibre", "base_url": "http://127.0.0.1:9/", "client_id": "x", "client_secret_env": "CATALOG_TEST_UNSET_ML_SECRET", "refresh_token_env": "CATALOG_TEST_UNSET_ML_TOKEN_{n}", "refresh_token_file": "ml-{n}.token"}}, "listings": {{"ABC-{n}": "MLA{n}"}}}}"#
        )
    };
    let shopify = r#"{"name": "shopify", "adapter": {"kind": "shopify", "base_url": "http://127.0.0.1:9/", "location_id": "gid://shopify/Location/1", "access_token_env": "CATALOG_TEST_UNSET_SHOP_TOKEN"}, "listings": {"ABC-1": "gid://shopify/InventoryItem/1"}}"#;
    let file = format!("[{shopify}, {}, {}]", seller("ml-one", 1), seller("ml-two", 2));
    std::fs::write(&channels, file).expect("write the channels file");
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/supplier-events.ndjson");
    let run = |publish: &str| {
        Command::new(env!("CARGO_BIN_EXE_sync-worker"))
            .args(["--source", &format!("file:{}", events.display()), "--metrics-addr", "off", "--publish", publish])
            .arg("--channels-file")
            .arg(&channels)
            .args(["--database-url", "sqlite://catalog.db"])
            .current_dir(directory.path())
            .env_remove("CATALOG_TEST_UNSET_SHOP_TOKEN")
            .env("RUST_LOG", "warn")
            .output()
            .expect("start sync-worker")
    };
    let output = run("off");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.contains("summary:"), "{stderr}");
    // Publishing, the variable is needed, and named.
    let output = run("on");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("CATALOG_TEST_UNSET_SHOP_TOKEN"), "{stderr}");
}
