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

/// The pull source applies batches of `--batch-size` records, as every source does. Before,
/// it kept its own 5,000 whatever the option said.
#[test]
fn the_pull_source_takes_the_worker_s_batch_size() {
    use clap::Parser;
    use sync_worker::config::WorkerArgs;

    let parsed = |extra: &[&str]| {
        let args = [&["sync-worker", "--source", "pull"][..], extra].concat();
        WorkerArgs::try_parse_from(args).expect("valid options").pull_settings().batch_size
    };
    assert_eq!(parsed(&[]), 5_000);
    assert_eq!(parsed(&["--batch-size", "500"]), 500);
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

/// A `--kafka-option` flag is one option, taken whole: a librdkafka value may hold commas
/// (`ssl.cipher.suites=A,B`), and the flag is repeated for several. Before, clap split the
/// flag's value at commas as it does the variable's, and `B` was refused at start.
#[test]
fn a_kafka_option_flag_is_taken_whole_commas_included() {
    use clap::Parser;
    use sync_worker::config::WorkerArgs;

    let args = ["sync-worker", "--source", "kafka", "--kafka-option", "ssl.cipher.suites=A,B"];
    let args = [&args[..], &["--kafka-option", "client.id=catalog,sync"]].concat();
    let parsed = WorkerArgs::try_parse_from(args).expect("valid options");
    let options: Vec<(&str, &str)> =
        parsed.kafka.client_options().map(|option| (option.key.as_str(), option.value())).collect();
    assert_eq!(options, [("ssl.cipher.suites", "A,B"), ("client.id", "catalog,sync")]);
}

/// `CATALOG_KAFKA_OPTIONS` holds several options, separated by commas: each is checked, and
/// one the worker's guarantees rest on is refused at start, named.
#[test]
fn the_kafka_options_variable_is_split_at_commas() {
    use std::io::Read;

    let directory = tempfile::tempdir().expect("temp dir");
    let mut worker = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "kafka", "--metrics-addr", "off"])
        .env("CATALOG_KAFKA_OPTIONS", "client.id=catalog,enable.auto.commit=true")
        .env("RUST_LOG", "warn")
        .current_dir(directory.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sync-worker");
    // Taken whole, the value would be one option, and the worker would start.
    let exit = crate::exit_within(&mut worker, std::time::Duration::from_secs(30), "the refused option");
    let mut stderr = String::new();
    worker.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    assert!(!exit.success(), "{stderr}");
    assert!(stderr.contains("enable.auto.commit cannot be set as a Kafka option"), "{stderr}");
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

/// The worker's options parsed from `extra` after `--source SOURCE`, with the variables of
/// the test's environment.
fn worker_args(source: &str, extra: &[&str]) -> Result<sync_worker::config::WorkerArgs, String> {
    use clap::Parser;

    let arguments = [&["sync-worker", "--source", source][..], extra].concat();
    sync_worker::config::WorkerArgs::try_parse_from(arguments).map_err(|error| error.to_string())
}

/// A storefront rate or concurrency of 0 was made 1 further down without a word: refused at
/// start, the flag and its variable named, given either way.
#[test]
fn a_storefront_rate_or_concurrency_of_zero_is_refused_at_start() {
    let defaults = worker_args("-", &[]).expect("the defaults").publish;
    assert_eq!((defaults.storefront_rate, defaults.storefront_concurrency), (50, 16));
    for (flag, variable) in [
        ("--storefront-rate", "CATALOG_STOREFRONT_RATE"),
        ("--storefront-concurrency", "CATALOG_STOREFRONT_CONCURRENCY"),
    ] {
        let error = worker_args("-", &[flag, "0"]).expect_err("0 is refused");
        assert!(error.contains(flag) && error.contains(variable), "{error}");
        worker_args("-", &[flag, "1"]).expect("1 is taken");
    }
    // Set in the environment, the refusal says the value is the variable's.
    let directory = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "-", "--metrics-addr", "off", "--database-url", "sqlite://catalog.db"])
        .env("CATALOG_STOREFRONT_RATE", "0")
        .current_dir(directory.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("start sync-worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("the value is CATALOG_STOREFRONT_RATE's, the variable of --storefront-rate"), "{stderr}");
    assert!(!directory.path().join("catalog.db").exists(), "no store is made");
}

/// `--feeds-file`, `--once` and what goes with it are read by the pull source alone: with
/// another source they were ignored, and `--source kafka --once` consumed Kafka for ever.
/// Refused at start, before the store is opened, naming `--source pull`.
#[test]
fn feed_options_without_a_pull_source_are_refused_at_start() {
    let refusal = |source: &str, extra: &[&str]| {
        let args = worker_args(source, extra).expect("options clap takes");
        sync_worker::check_options(&args).expect_err("refused").to_string()
    };
    let refused = refusal("kafka", &["--once", "--full", "--feed", "canary/acme"]);
    assert!(refused.starts_with("--once (CATALOG_FEED_ONCE), --full (CATALOG_FEED_FULL), --feed"), "{refused}");
    assert!(refused.contains("--source pull") && refused.contains("--source kafka would ignore them"), "{refused}");
    let refused = refusal("-", &["--feeds-file", "feeds.toml"]);
    assert!(refused.contains("--feeds-file (CATALOG_FEEDS_FILE)") && refused.contains("--source -"), "{refused}");
    let backfill = ["--once", "--backfill-since", "2026-06-01T00:00:00Z", "--backfill-until", "2026-06-08T00:00:00Z"];
    assert!(refusal("file:events.ndjson", &backfill).contains("--backfill-since"));
    let pull = worker_args("pull", &[&["--feeds-file", "feeds.toml"][..], &backfill].concat()).expect("pull");
    sync_worker::check_options(&pull).expect("a pull source reads them");
    sync_worker::check_options(&worker_args("kafka", &[]).expect("kafka")).expect("nothing of feeds given");

    // The real binary, the option from its variable: it stops at once, where it consumed.
    let directory = tempfile::tempdir().expect("temp dir");
    let mut worker = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "kafka", "--metrics-addr", "off", "--kafka-brokers", "127.0.0.1:9"])
        .args(["--database-url", "sqlite://catalog.db"])
        .env("CATALOG_FEED_ONCE", "true")
        .current_dir(directory.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sync-worker");
    let exit = crate::exit_within(&mut worker, std::time::Duration::from_secs(30), "--source kafka --once");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut worker.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(!exit.success() && stderr.contains("--once (CATALOG_FEED_ONCE) only works with --source pull"), "{stderr}");
    assert!(!directory.path().join("catalog.db").exists(), "no store is made");
}

/// Progress reported as seldom as a silent partition is taken for stalled makes every
/// partition lag by its silence (queue lag red for good); a tracer given no item to check
/// leaves trace coverage red for good. Both refused at start, both flags named with their
/// variables.
#[test]
fn progress_slower_than_the_stall_and_a_tracer_checking_nothing_are_refused_at_start() {
    let checked = |extra: &[&str]| {
        sync_worker::check_options(&worker_args("-", extra).expect("options clap takes")).map_err(|e| e.to_string())
    };
    checked(&[]).expect("the defaults: progress every 5 s, stalled after 30 s");
    checked(&["--progress-interval-secs", "29"]).expect("under");
    for extra in [&["--progress-interval-secs", "30"][..], &["--stall-after-secs", "5"], &["--stall-after-secs", "2"]] {
        let refused = checked(extra).expect_err("not under");
        for named in ["--progress-interval-secs", "CATALOG_PROGRESS_INTERVAL_SECS"] {
            assert!(refused.contains(named), "{refused}");
        }
        assert!(refused.contains("--stall-after-secs (CATALOG_STALL_AFTER_SECS)"), "{refused}");
    }
    // An apply-only worker's progress is judged by the workers that sample, with theirs.
    checked(&["--progress-interval-secs", "60", "--signals", "off"]).expect("not judged here");

    let both = ["--trace-changed-per-round", "0", "--trace-sweep-per-round", "0"];
    let refused = checked(&both).expect_err("no item checked");
    assert!(refused.contains("--trace-changed-per-round (CATALOG_TRACE_CHANGED_PER_ROUND)"), "{refused}");
    assert!(refused.contains("--trace-sweep-per-round (CATALOG_TRACE_SWEEP_PER_ROUND)"), "{refused}");
    checked(&both[..2]).expect("the sweep alone checks every item in turn");
    checked(&both[2..]).expect("changed items alone");
    checked(&[&both[..], &["--signals", "off"]].concat()).expect("no tracer runs");

    // The real binary refuses before it opens the store.
    let directory = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "-", "--metrics-addr", "off", "--progress-interval-secs", "60"])
        .args(["--database-url", "sqlite://catalog.db"])
        .current_dir(directory.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("start sync-worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("--progress-interval-secs"), "{stderr}");
    assert!(!directory.path().join("catalog.db").exists(), "no store is made");
}
