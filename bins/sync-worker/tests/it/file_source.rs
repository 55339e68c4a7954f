//! The embedded default: the worker binary on an NDJSON file with SQLite, no services.

mod links;

use std::process::Command;

use serde_json::Value;

fn run_worker(arguments: &[&str], directory: &std::path::Path) -> (String, String, bool) {
    let output = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(arguments)
        .current_dir(directory)
        .env("RUST_LOG", "warn")
        .output()
        .expect("start sync-worker");
    (
        String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        output.status.success(),
    )
}

/// Runs the worker once over the file at `path` (metrics and publishing off), in `directory`,
/// and returns what it wrote to standard error, the run having succeeded.
fn run_on_file(path: &std::path::Path, directory: &std::path::Path) -> String {
    let source = format!("file:{}", path.display());
    let (_, stderr, success) =
        run_worker(&["--source", source.as_str(), "--metrics-addr", "off", "--publish", "off"], directory);
    assert!(success, "{stderr}");
    stderr
}

/// The worker's summary: the last line it writes to standard error.
fn summary(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

fn sample() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/supplier-events.ndjson")
}

#[test]
fn the_sample_file_runs_with_no_services_and_resumes_without_reapplying() {
    let directory = tempfile::tempdir().expect("temp dir");
    let source = format!("file:{}", sample().display());
    let arguments = ["--source", source.as_str(), "--metrics-addr", "off"];
    let (stdout, stderr, success) = run_worker(&arguments, directory.path());
    assert!(success, "the embedded run failed: {stderr}");
    assert!(
        directory.path().join("catalog.db").exists(),
        "the default store is sqlite://catalog.db in the working directory"
    );

    let published: Vec<Value> =
        stdout.lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect();
    let mut items: Vec<(String, i64, u64)> = published
        .iter()
        .map(|line| {
            for field in ["tenant_id", "item_id", "sku", "quantity", "version"] {
                assert!(line.get(field).is_some(), "published line lacks {field}: {line}");
            }
            (
                line["sku"].as_str().expect("sku").to_owned(),
                line["quantity"].as_i64().expect("quantity"),
                line["version"].as_u64().expect("version"),
            )
        })
        .collect();
    items.sort();
    // The file's expected state, derived by hand from the contract in docs and checked here:
    // ABC-123 = acme (snapshot 12 at 12:05, then -2 at 12:06) + globex 7; XYZ-9's supplier
    // clock ran ahead (clamped, still newest); DEF-1 only ever had a +3 adjustment.
    assert_eq!(items, [("ABC-123".to_owned(), 17, 1), ("DEF-1".to_owned(), 3, 1), ("XYZ-9".to_owned(), 99, 1)]);
    let summary = stderr.lines().last().expect("a summary line");
    assert_eq!(
        summary,
        "summary: events=14 applied=6 stale=2 superseded=1 duplicate=2 held=0 rejected=3 items_changed=3 published=3"
    );

    // The same file again: the store remembers the position; nothing is re-applied.
    let (stdout, stderr, success) = run_worker(&arguments, directory.path());
    assert!(success, "{stderr}");
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().last(), Some("summary: events=0 applied=0 stale=0 superseded=0 duplicate=0 held=0 rejected=0 items_changed=0 published=0"));
}

#[test]
fn with_publish_off_items_are_queued_for_another_worker_to_send() {
    let directory = tempfile::tempdir().expect("temp dir");
    let source = format!("file:{}", sample().display());
    let applying = ["--source", source.as_str(), "--metrics-addr", "off", "--publish", "off"];
    let (stdout, stderr, success) = run_worker(&applying, directory.path());
    assert!(success, "{stderr}");
    assert!(stdout.is_empty(), "nothing is sent with --publish off: {stdout}");
    assert!(stderr.ends_with("items_changed=3 published=0\n"), "{stderr}");

    // A publishing worker on the same database (an empty file: nothing more to apply)
    // drains what the first one queued.
    let empty = directory.path().join("empty.ndjson");
    std::fs::write(&empty, "").expect("empty file");
    let source = format!("file:{}", empty.display());
    let (stdout, stderr, success) =
        run_worker(&["--source", source.as_str(), "--metrics-addr", "off"], directory.path());
    assert!(success, "{stderr}");
    let mut skus: Vec<String> = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON")["sku"].as_str().expect("sku").to_owned())
        .collect();
    skus.sort();
    assert_eq!(skus, ["ABC-123", "DEF-1", "XYZ-9"]);
}

#[test]
fn a_bad_database_url_is_a_clear_error() {
    let directory = tempfile::tempdir().expect("temp dir");
    let source = format!("file:{}", sample().display());
    let (_, stderr, success) =
        run_worker(&["--source", &source, "--database-url", "mysql://nope", "--metrics-addr", "off"], directory.path());
    assert!(!success);
    assert!(stderr.contains("--database-url must start with postgres://"), "{stderr}");
}

#[test]
fn stdin_is_a_source_too() {
    let directory = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "-", "--metrics-addr", "off"])
        .current_dir(directory.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sync-worker");
    let input = std::fs::read(sample()).expect("sample");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &input).expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 3);
}

/// A storefront that accepts everything and remembers what it was told, per item.
pub(crate) async fn accepting_storefront() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/tenants/{tenant}/items/{item}/invalidate",
        post(move |axum::Json(body): axum::Json<Value>| {
            let sink = std::sync::Arc::clone(&sink);
            async move {
                sink.lock().expect("storefront state").push(body);
                (axum::http::StatusCode::ACCEPTED, axum::Json(serde_json::json!({"accepted": true})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_storefront_url_the_file_run_exits_once_everything_is_published() {
    let (url, received) = accepting_storefront().await;
    let directory = tempfile::tempdir().expect("temp dir");
    let source = format!("file:{}", sample().display());
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", &source, "--metrics-addr", "off", "--storefront-url", &url])
        .env("CATALOG_STOREFRONT_TOKEN", "t0ken")
        .env("RUST_LOG", "info")
        .current_dir(directory.path())
        .output()
        .await
        .expect("run sync-worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(output.stdout.is_empty(), "no log publisher when a storefront is set");
    assert!(!stderr.contains("t0ken"), "the token must never be logged");
    let mut told: Vec<(String, i64, u64)> = received
        .lock()
        .expect("storefront state")
        .iter()
        .map(|body| {
            (
                body["sku"].as_str().expect("sku").to_owned(),
                body["quantity"].as_i64().expect("quantity"),
                body["version"].as_u64().expect("version"),
            )
        })
        .collect();
    told.sort();
    assert_eq!(told, [("ABC-123".to_owned(), 17, 1), ("DEF-1".to_owned(), 3, 1), ("XYZ-9".to_owned(), 99, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_a_send_and_its_record_the_item_is_still_published_after_restart() {
    use axum::routing::post;
    // The first request never gets its answer: the worker is killed while waiting for it.
    let first_request = std::sync::Arc::new(tokio::sync::Notify::new());
    let keys = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Value)>::new()));
    let (notify, sink) = (std::sync::Arc::clone(&first_request), std::sync::Arc::clone(&keys));
    let app = axum::Router::new().route(
        "/v1/tenants/{tenant}/items/{item}/invalidate",
        post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
            let (notify, sink) = (std::sync::Arc::clone(&notify), std::sync::Arc::clone(&sink));
            async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let first = {
                    let mut sink = sink.lock().expect("state");
                    sink.push((key, body));
                    sink.len() == 1
                };
                if first {
                    notify.notify_one();
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                }
                (axum::http::StatusCode::ACCEPTED, axum::Json(serde_json::json!({"accepted": true})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let directory = tempfile::tempdir().expect("temp dir");
    let source = format!("file:{}", sample().display());
    let worker = || {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sync-worker"));
        command
            .args([
                "--source",
                &source,
                "--metrics-addr",
                "off",
                "--storefront-url",
                &url,
                "--publish-lease-ms",
                "1000",
            ])
            .env("RUST_LOG", "warn")
            .current_dir(directory.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command
    };
    let mut first = worker().spawn().expect("start sync-worker");
    tokio::time::timeout(std::time::Duration::from_secs(30), first_request.notified())
        .await
        .expect("a publish was sent");
    first.kill().await.expect("SIGKILL the worker mid-publish");

    let output = tokio::time::timeout(std::time::Duration::from_secs(60), worker().output())
        .await
        .expect("the restarted worker finishes")
        .expect("run sync-worker");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let keys = keys.lock().expect("state").clone();
    let (interrupted_key, _) = keys[0].clone();
    assert!(
        keys.iter().filter(|(key, _)| *key == interrupted_key).count() >= 2,
        "the interrupted publish is sent again with the same Idempotency-Key: {keys:?}"
    );
    let mut latest: std::collections::BTreeMap<String, (u64, i64)> = std::collections::BTreeMap::new();
    for (_, body) in &keys {
        let sku = body["sku"].as_str().expect("sku").to_owned();
        latest.insert(sku, (body["version"].as_u64().expect("version"), body["quantity"].as_i64().expect("quantity")));
    }
    let expected: std::collections::BTreeMap<String, (u64, i64)> =
        [("ABC-123", (1, 17)), ("DEF-1", (1, 3)), ("XYZ-9", (1, 99))]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    assert_eq!(latest, expected);
}

/// The file is applied and the worker is publishing what it changed when SIGTERM comes: it
/// stops at once (the storefront here never answers), exits 0, and leaves the items queued
/// for the next run, instead of waiting out every retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_publishing_a_finished_file_stops_the_worker_at_once() {
    use axum::routing::post;
    let asked = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = std::sync::Arc::clone(&asked);
    let app = axum::Router::new().route(
        "/v1/tenants/{tenant}/items/{item}/invalidate",
        post(move || {
            let notify = std::sync::Arc::clone(&notify);
            async move {
                notify.notify_one();
                tokio::time::sleep(std::time::Duration::from_secs(600)).await;
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let directory = tempfile::tempdir().expect("temp dir");
    let source = format!("file:{}", sample().display());
    let worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", &source, "--metrics-addr", "off", "--storefront-url", &url])
        .env("RUST_LOG", "info")
        .current_dir(directory.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start sync-worker");
    tokio::time::timeout(std::time::Duration::from_secs(30), asked.notified()).await.expect("a publish was sent");
    let pid = worker.id().expect("worker pid").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("send SIGTERM");
    assert!(status.success());
    let output = tokio::time::timeout(std::time::Duration::from_secs(15), worker.wait_with_output())
        .await
        .expect("the worker stops on SIGTERM, not after the storefront's retries")
        .expect("wait for sync-worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("published=0"), "nothing was published: {stderr}");
}

/// An NDJSON line of the contract: event `n`, a snapshot of its own SKU.
fn event_line(n: u64) -> String {
    format!(
        r#"{{"event_id":"00000000-0000-0000-0000-{n:012}","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"SKU-{n}","quantity":{n},"updated_at":"2026-06-01T12:00:00Z"}}"#
    )
}

/// The worker reading standard input through pipes, its store in `directory`.
fn worker_on_stdin(directory: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(["--source", "-", "--metrics-addr", "off", "--batch-max-wait-ms", "20"])
        .current_dir(directory)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sync-worker")
}

#[test]
fn a_line_arriving_on_stdin_in_two_parts_is_one_event() {
    let directory = tempfile::tempdir().expect("temp dir");
    let mut child = worker_on_stdin(directory.path());
    let mut stdin = child.stdin.take().expect("stdin");
    // A whole line starts a batch (and its timer), then half of the next line arrives.
    let line = event_line(2);
    let (first, rest) = line.split_at(line.len() / 2);
    std::io::Write::write_all(&mut stdin, format!("{}\n{first}", event_line(1)).as_bytes()).expect("write");
    std::io::Write::flush(&mut stdin).expect("flush");
    // Far longer than the batch wait: the batch timer fires while half the line is read.
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::io::Write::write_all(&mut stdin, format!("{rest}\n").as_bytes()).expect("write the rest");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some("summary: events=2 applied=2 stale=0 superseded=0 duplicate=0 held=0 rejected=0 items_changed=2 published=2"),
        "{stderr}"
    );
}

/// Standard input left open (a pipe whose writer stays, a terminal) does not keep the worker
/// alive after SIGTERM: the read blocked on it is abandoned once everything read is durable.
#[test]
fn sigterm_stops_a_worker_whose_standard_input_stays_open() {
    let directory = tempfile::tempdir().expect("temp dir");
    let mut child = worker_on_stdin(directory.path());
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, format!("{}\n", event_line(1)).as_bytes()).expect("write");
    std::io::Write::flush(&mut stdin).expect("flush");
    // The published line says the event is applied and the worker is waiting for more.
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut published = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut published).expect("read the published line");
    assert!(published.contains("SKU-1"), "{published}");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("send SIGTERM");
    assert!(status.success());
    let exit =
        crate::exit_within(&mut child, std::time::Duration::from_secs(15), "SIGTERM was sent, its standard input open");
    drop(stdin);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(exit.success(), "{exit}: {stderr}");
    assert!(stderr.contains("summary: events=1 applied=1"), "{stderr}");
}

#[test]
fn a_file_rotated_or_rewritten_in_place_is_read_from_its_start() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("feed.ndjson");
    let write_events = |target: &std::path::Path, events: std::ops::Range<u64>| {
        let lines: String = events.map(|n| event_line(n) + "\n").collect();
        std::fs::write(target, lines).expect("write the feed");
    };
    let summary = |stderr: &str| stderr.lines().last().unwrap_or_default().to_owned();

    write_events(&path, 1..3);
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=2 applied=2 "), "{stderr}");

    // Rotated: a new, longer file takes the path. Resuming at the old file's byte offset would
    // start inside one of its lines and skip the lines before.
    let next = directory.path().join("feed.ndjson.next");
    write_events(&next, 10..15);
    std::fs::rename(&next, &path).expect("rotate");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=5 applied=5 "), "{stderr}");

    // Truncated and written again in place (same inode), longer again.
    write_events(&path, 20..26);
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=6 applied=6 "), "{stderr}");

    // Appended to: the same file resumes after its last applied line.
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
    std::io::Write::write_all(&mut file, (event_line(30) + "\n").as_bytes()).expect("append");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=1 applied=1 "), "{stderr}");
}

/// A file as other tools write it: a byte order mark first, Windows line endings, blank
/// lines, and a line too long whose first 64 KiB are spaces. The mark is not part of the first
/// event; the long line is rejected with its whole length, not skipped as blank.
#[test]
fn a_byte_order_mark_is_not_an_event_and_a_long_line_of_spaces_is_not_blank() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("export.ndjson");
    let long = format!("{}{}", " ".repeat(70_000), event_line(3));
    let text = format!("\u{FEFF}{}\r\n\r\n  \r\n{long}\r\n{}", event_line(1), event_line(2));
    std::fs::write(&path, &text).expect("write the feed");
    let source = format!("file:{}", path.display());
    let (_, stderr, success) =
        run_worker(&["--source", source.as_str(), "--metrics-addr", "off", "--publish", "off"], directory.path());
    assert!(success, "{stderr}");
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("summary: events=3 applied=2 stale=0 superseded=0 duplicate=0 held=0 rejected=1 "),
        "{stderr}"
    );
    let expected = format!("message is {} bytes, more than the 65536 allowed", long.len());
    assert!(stderr.contains(&expected), "the rejection gives the line's whole length: {stderr}");
}

/// A file a writer is still appending to ends in half a line. That half is not an event and
/// is not journaled as one: the next run reads the line again from its start, whole, and
/// applies it. (Journaled as a rejection, it would be lost: the checkpoint would pass it, and
/// its second half would be rejected alone.)
#[test]
fn half_a_line_at_the_end_of_a_file_is_read_whole_by_the_next_run() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("growing.ndjson");
    let second = event_line(2);
    let (first_half, second_half) = second.split_at(second.len() / 2);
    std::fs::write(&path, format!("{}\n{first_half}", event_line(1))).expect("write the feed");

    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=1 applied=1 "), "{stderr}");
    assert!(stderr.contains("ends in a line without a newline that is not a valid event"), "{stderr}");

    // The writer finishes the line (and writes no newline after the next one).
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
    std::io::Write::write_all(&mut file, format!("{second_half}\n{}", event_line(3)).as_bytes()).expect("append");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=2 applied=2 "), "{stderr}");
    assert!(summary(&stderr).contains(" rejected=0 "), "{stderr}");

    // The last event had no newline but was whole: applied, and its newline changes nothing.
    std::io::Write::write_all(&mut file, b"\n").expect("append");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=0 "), "{stderr}");
}

/// A file whose last line, without its newline, is a whole JSON object that is no event: no
/// writer can make it one, so it is journaled as rejected, and the next run reads on after it
/// (it was left waiting for a newline that an exporter joining lines never writes: every run
/// stopped there).
#[test]
fn a_whole_object_that_is_no_event_at_the_end_of_a_file_is_rejected_not_waited_for() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("export.ndjson");
    let invalid = event_line(2).replacen("\"quantity\":", "\"quantity\":-1,\"was\":", 1);
    std::fs::write(&path, format!("{}\n{invalid}", event_line(1))).expect("write the feed");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=2 applied=1 "), "{stderr}");
    assert!(summary(&stderr).contains(" rejected=1 "), "{stderr}");
    assert!(!stderr.contains("unterminated_line"), "{stderr}");

    let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
    std::io::Write::write_all(&mut file, format!("\n{}\n", event_line(3)).as_bytes()).expect("append");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=1 applied=1 "), "read on after it: {stderr}");
}

/// Unterminated last lines that no append can make an event, though they are no valid JSON
/// value: a number no float holds, a string that is not UTF-8, a line longer than a message
/// may be, and lines that start no object (a crash's tail of NUL bytes, a JSON array, a byte
/// order mark past the file's start). Each is journaled as the rejection it is, and the run
/// reads on after it; waited for as half a line, each stopped every later run there (for good
/// once rotated).
#[test]
fn an_unterminated_line_that_can_never_be_an_event_is_rejected_not_waited_for() {
    let too_large = format!("{{\"padding\":\"{}", "x".repeat(70 * 1024));
    // One byte more than a message may be, held whole by the reader (it keeps one byte past
    // the limit to tell a line too large): it was left waiting as half a line.
    let one_byte_too_many = format!("{{\"padding\":\"{}", "x".repeat(65_537 - 12));
    assert_eq!(one_byte_too_many.len(), 65_537);
    let marked = [b"\xEF\xBB\xBF".as_slice(), event_line(2).as_bytes()].concat();
    let tails: [(&str, Vec<u8>); 7] = [
        (
            "a number no float holds",
            event_line(2).replacen("\"quantity\":", "\"quantity\":1e400,\"was\":", 1).into_bytes(),
        ),
        ("a string that is not UTF-8", {
            let mut line = event_line(2).replacen("\"sku\":\"", "\"note\":\"CAF\u{1}\",\"sku\":\"", 1).into_bytes();
            let at = line.iter().position(|byte| *byte == 1).expect("the marker");
            line[at] = 0xC9;
            line
        }),
        ("a line longer than a message may be", too_large.into_bytes()),
        ("a line one byte longer than a message may be", one_byte_too_many.into_bytes()),
        ("a crash's tail of NUL bytes", vec![0; 4]),
        ("a JSON array", format!("[{}]", event_line(2)).into_bytes()),
        ("a byte order mark past the file's start", marked),
    ];
    for (what, tail) in tails {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("export.ndjson");
        let mut bytes = format!("{}\n", event_line(1)).into_bytes();
        bytes.extend_from_slice(&tail);
        std::fs::write(&path, bytes).expect("write the feed");
        let stderr = run_on_file(&path, directory.path());
        assert!(summary(&stderr).starts_with("summary: events=2 applied=1 "), "{what}: {stderr}");
        assert!(summary(&stderr).contains(" rejected=1 "), "{what}: {stderr}");
        assert!(!stderr.contains("unterminated_line"), "{what}: {stderr}");
    }
}

/// The first bytes of a file may be the start of its byte order mark, which an event may follow:
/// that line waits for the rest. And a line of form feeds is no blank line (JSON's blanks are
/// space, tab, CR and LF): it is a message, rejected with its reason, not skipped unsaid.
#[test]
fn a_byte_order_mark_being_written_waits_and_a_line_of_form_feeds_is_rejected() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("growing.ndjson");
    std::fs::write(&path, b"\xEF\xBB").expect("write the feed");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=0 "), "{stderr}");
    assert!(stderr.contains("unterminated_line"), "{stderr}");
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
    std::io::Write::write_all(&mut file, b"\xBF").expect("the mark's last byte");
    std::io::Write::write_all(&mut file, format!("{}\n\x0C\x0C\n{}\n", event_line(1), event_line(2)).as_bytes())
        .expect("append");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=3 applied=2 "), "{stderr}");
    assert!(summary(&stderr).contains(" rejected=1 "), "the form feeds: {stderr}");
}

/// A file that ends in blanks without a newline may be in the middle of a line a writer is
/// still writing (blanks, then an event): they are left, before the checkpoint, like any half
/// a line, and the next run reads the line whole. Skipped as a blank line, the checkpoint
/// moved past them, and the next run read the line's rest alone: a message too large applied
/// as the event at its end, with the wrong length.
#[test]
fn blanks_without_a_newline_at_the_end_of_a_file_are_read_with_the_rest_of_their_line() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("growing.ndjson");
    std::fs::write(&path, format!("{}\n{}", event_line(1), " ".repeat(65_000))).expect("write the feed");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=1 applied=1 "), "{stderr}");

    // The writer goes on: more blanks, then an event, then the newline. The line is 70,000
    // bytes and more: too large for a message, whatever it ends in.
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
    std::io::Write::write_all(&mut file, format!("{}{}\n", " ".repeat(5_000), event_line(2)).as_bytes())
        .expect("append");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=1 applied=0 "), "{stderr}");
    assert!(summary(&stderr).contains(" rejected=1 "), "{stderr}");
    let line = 70_000 + event_line(2).len();
    assert!(
        stderr.contains(&format!("message is {line} bytes")),
        "the rejection gives the whole line's length: {stderr}"
    );
}

/// A finished file that ends in blanks without a newline, rotated: the next file is read, and
/// nothing is said of the blanks. Waited for as half a line, they stopped every run at the
/// rotated file, for good.
#[test]
fn a_rotated_file_ending_in_blanks_without_a_newline_lets_the_next_one_be_read() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("feed.ndjson");
    std::fs::write(&path, format!("{}\n  ", event_line(1))).expect("write the feed");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=1 applied=1 "), "{stderr}");

    std::fs::rename(&path, directory.path().join("feed.ndjson.1")).expect("rotate");
    std::fs::write(&path, format!("{}\n", event_line(2))).expect("write the next file");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=1 applied=1 "), "the next file is read: {stderr}");
    assert!(!stderr.contains("unterminated_line"), "{stderr}");
}

/// A file rotated (renamed within its directory) while its writer was in the middle of a line:
/// the writer finishes the line in the rotated file, and a new file takes the path. The next
/// run reads the rest of the rotated file first, then the new one, and loses nothing. A file
/// rotated out of the directory cannot be finished: the run says so (decision 0039).
#[test]
fn a_file_rotated_in_the_middle_of_a_line_is_finished_before_the_new_one_is_read() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("feed.ndjson");
    let second = event_line(2);
    let (first_half, second_half) = second.split_at(second.len() / 2);
    std::fs::write(&path, format!("{}\n{first_half}", event_line(1))).expect("write the feed");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=1 applied=1 "), "{stderr}");

    // Rotated beside itself; its writer, still holding it open, finishes the line and writes
    // one more; a new file takes the path.
    let rotated = directory.path().join("feed.ndjson.1");
    std::fs::rename(&path, &rotated).expect("rotate");
    let mut old = std::fs::OpenOptions::new().append(true).open(&rotated).expect("open");
    std::io::Write::write_all(&mut old, format!("{second_half}\n{}\n", event_line(3)).as_bytes()).expect("append");
    std::fs::write(&path, format!("{}\n", event_line(4))).expect("the new file");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=3 applied=3 "), "{stderr}");
    assert!(summary(&stderr).contains(" rejected=0 "), "{stderr}");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=0 "), "the new file is resumed: {stderr}");

    // Rotated out of the directory: what it held past the checkpoint cannot be read, and the
    // run says so before it reads the new file.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    std::fs::rename(&path, elsewhere.path().join("feed.ndjson")).expect("move away");
    std::fs::write(&path, format!("{}\n", event_line(5))).expect("the new file");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=1 applied=1 "), "{stderr}");
    assert!(stderr.contains("rotated_file_gone"), "{stderr}");
}

/// `feed.ndjson` in a directory of its own, rotated by the tests and read by the worker run
/// by run, each run's stderr and summary line given back.
struct RotatingFeed {
    directory: tempfile::TempDir,
    source: String,
}

impl RotatingFeed {
    fn new() -> Self {
        let directory = tempfile::tempdir().expect("temp dir");
        let source = format!("file:{}", directory.path().join("feed.ndjson").display());
        Self { directory, source }
    }

    fn at(&self, name: &str) -> std::path::PathBuf {
        self.directory.path().join(name)
    }

    /// Writes the lines of `events` as file `name`.
    fn write(&self, name: &str, events: std::ops::Range<u64>) {
        let lines: String = events.map(|n| event_line(n) + "\n").collect();
        std::fs::write(self.at(name), lines).expect("write the feed");
    }

    fn rename(&self, from: &str, to: &str) {
        std::fs::rename(self.at(from), self.at(to)).expect("rotate");
    }

    /// Runs the worker over the path once: its stderr and the summary line.
    fn run(&self) -> (String, String) {
        let arguments = ["--source", self.source.as_str(), "--metrics-addr", "off", "--publish", "off"];
        let (_, stderr, success) = run_worker(&arguments, self.directory.path());
        assert!(success, "{stderr}");
        let summary = stderr.lines().last().unwrap_or_default().to_owned();
        (stderr, summary)
    }
}

/// A path rotated twice between two runs (logrotate's `rotate 3`, or a worker down for a
/// while): the checkpoint's file is finished, then the file rotated after it, which holds
/// lines no other file does, then the one at the path. A rotation compressed before the
/// worker read it is said, not skipped in silence.
#[test]
fn a_path_rotated_twice_between_runs_loses_no_file() {
    let feed = RotatingFeed::new();
    feed.write("feed.ndjson", 1..3);
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=2 applied=2 "), "{stderr}");

    // Rotated twice: A to .1 then .2, B (written between) to .1, C at the path.
    feed.rename("feed.ndjson", "feed.ndjson.1");
    feed.write("feed.ndjson", 10..13);
    feed.rename("feed.ndjson.1", "feed.ndjson.2");
    feed.rename("feed.ndjson", "feed.ndjson.1");
    feed.write("feed.ndjson", 20..22);
    // Not a rotation of this path: never read.
    feed.write("feed.ndjson.other-tool", 90..91);
    std::fs::remove_file(feed.at("feed.ndjson.other-tool")).expect("remove");
    feed.write("feeds.ndjson.1", 91..92);
    // Born after C (a tick of the file system's clock later), so never at the path before
    // it: the next export, being written.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(feed.at("feed.ndjson.tmp"), format!("{}\n{{\"event_id\":", event_line(92))).expect("write");
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=5 applied=5 "), "B's three and C's two: {stderr}");
    std::fs::remove_file(feed.at("feed.ndjson.tmp")).expect("remove");
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=0 "), "C is resumed: {stderr}");

    // C rotated beside itself (found), D written and rotated compressed, E at the path: D
    // cannot be read here, and the run says so before it reads E.
    feed.rename("feed.ndjson", "feed.ndjson.3");
    feed.write("feed.ndjson", 30..31);
    feed.rename("feed.ndjson", "feed.ndjson.4");
    feed.write("feed.ndjson", 40..42);
    // Compressed as logrotate's `compress` does, after the new file was made: a file of its
    // own, born after E.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let d = std::fs::read(feed.at("feed.ndjson.4")).expect("read");
    std::fs::write(feed.at("feed.ndjson.4.gz"), d).expect("compress");
    std::fs::remove_file(feed.at("feed.ndjson.4")).expect("compressed");
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=2 applied=2 "), "{stderr}");
    assert!(stderr.contains("rotated_files_unread") && stderr.contains("feed.ndjson.4.gz"), "{stderr}");
}

/// Compresses file `name` of `feed` as gzip does into `name.gz`, and removes it.
fn gzip(feed: &RotatingFeed, name: &str) {
    use std::io::Write;
    let file = std::fs::File::create(feed.at(&format!("{name}.gz"))).expect("create");
    let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    encoder.write_all(&std::fs::read(feed.at(name)).expect("read")).expect("compress");
    encoder.finish().expect("finish");
    std::fs::remove_file(feed.at(name)).expect("compressed");
}

/// logrotate with `delaycompress`, as the operations guide advises: at each rotation the file
/// of the rotation before is compressed, one the worker read to its end a run earlier. It is
/// not said to be unread (every rotation said so, a page for nothing, whose advice read the
/// file again under another source). A copy of a file that grew after it was read, or of one
/// never read, still is.
#[test]
fn a_rotation_compressed_after_it_was_read_whole_is_not_reported() {
    let feed = RotatingFeed::new();
    let rotate = |next: std::ops::Range<u64>| {
        feed.rename("feed.ndjson.1", "feed.ndjson.2");
        gzip(&feed, "feed.ndjson.2");
        std::fs::rename(feed.at("feed.ndjson.2.gz"), feed.at(&format!("feed.ndjson.2-{}.gz", next.start)))
            .expect("keep each copy");
        feed.rename("feed.ndjson", "feed.ndjson.1");
        feed.write("feed.ndjson", next);
    };
    feed.write("feed.ndjson", 1..4);
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=3 applied=3 "), "{stderr}");
    feed.rename("feed.ndjson", "feed.ndjson.1");
    feed.write("feed.ndjson", 10..13);
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=3 applied=3 "), "{stderr}");

    // A compressed whole, B to .1, C at the path.
    rotate(20..22);
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=2 applied=2 "), "C's two: {stderr}");
    assert!(!stderr.contains("rotated_files_unread"), "{stderr}");

    // B grows after it was read (its writer had not reopened the path), and its copy is made
    // at the next rotation: what it gained is not in any file read, and is said.
    let mut b = std::fs::OpenOptions::new().append(true).open(feed.at("feed.ndjson.1")).expect("open B");
    std::io::Write::write_all(&mut b, format!("{}\n", event_line(14)).as_bytes()).expect("append");
    drop(b);
    rotate(30..31);
    let (stderr, summary) = feed.run();
    assert!(stderr.contains("rotated_files_unread") && stderr.contains("feed.ndjson.2-30.gz"), "{stderr}");
    assert!(summary.starts_with("summary: events=1 applied=1 "), "{stderr}");
}

/// A path rotated twice between runs whose checkpoint's file was cut short since (a clean-up
/// truncating old files; its first bytes, which identify it, kept): what it held past its
/// length is gone, and the run says so; the file rotated after it is still read whole before
/// the one at the path (before, both were skipped with a log line alone).
#[test]
fn a_file_rotated_after_one_cut_short_is_read() {
    let feed = RotatingFeed::new();
    feed.write("feed.ndjson", 1..41);
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=40 applied=40 "), "{stderr}");

    // A to .1 then .2, B (written between) to .1, C at the path; A cut to 5,000 bytes.
    feed.rename("feed.ndjson", "feed.ndjson.1");
    feed.write("feed.ndjson", 100..103);
    feed.rename("feed.ndjson.1", "feed.ndjson.2");
    feed.rename("feed.ndjson", "feed.ndjson.1");
    feed.write("feed.ndjson", 200..202);
    let a = std::fs::OpenOptions::new().write(true).open(feed.at("feed.ndjson.2")).expect("open A");
    a.set_len(5_000).expect("cut A short");
    let (stderr, summary) = feed.run();
    assert!(stderr.contains("rotated_file_cut"), "{stderr}");
    assert!(summary.starts_with("summary: events=5 applied=5 "), "B's three and C's two: {stderr}");
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=0 "), "C is resumed: {stderr}");
}

/// A path rotated twice between two runs whose checkpoint's file is gone since (logrotate's
/// `rotate 1` deleted it, or `delaycompress` compressed it): what it held past the checkpoint
/// cannot be read, and the run says so; the file rotated after it is still read whole before
/// the one at the path, found by the birth time the checkpoint recorded (before, it was
/// skipped with the gone one, unreported; and the file at the path, which took the deleted
/// one's inode, was taken for it rewritten).
#[test]
fn a_file_rotated_after_one_that_is_gone_is_read() {
    let feed = RotatingFeed::new();
    feed.write("feed.ndjson", 1..3);
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=2 applied=2 "), "{stderr}");

    // A to .1 and B at the path; then A deleted, B to .1, C at the path.
    feed.rename("feed.ndjson", "feed.ndjson.1");
    feed.write("feed.ndjson", 10..13);
    std::fs::remove_file(feed.at("feed.ndjson.1")).expect("rotate 1 deletes the oldest");
    feed.rename("feed.ndjson", "feed.ndjson.1");
    feed.write("feed.ndjson", 20..22);
    let (stderr, summary) = feed.run();
    assert!(stderr.contains("rotated_file_gone"), "{stderr}");
    assert!(summary.starts_with("summary: events=5 applied=5 "), "B's three and C's two: {stderr}");
    let (stderr, summary) = feed.run();
    assert!(summary.starts_with("summary: events=0 "), "C is resumed: {stderr}");
}

/// A file first read while it held fewer bytes than identify it (4 KiB) is known by more of
/// them as they are read: rewritten in place later with the same first line, it is not taken
/// for the file read before and resumed in the middle of its new content. The rewrite is said.
#[test]
fn a_file_first_read_short_and_rewritten_in_place_is_read_from_its_start() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("export.ndjson");
    let lines = |events: &[u64]| events.iter().map(|n| event_line(*n) + "\n").collect::<String>();

    std::fs::write(&path, lines(&[1])).expect("write");
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=1 applied=1 "), "{stderr}");
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
    std::io::Write::write_all(&mut file, lines(&(2..40).collect::<Vec<_>>()).as_bytes()).expect("append");
    drop(file);
    let stderr = run_on_file(&path, directory.path());
    assert!(summary(&stderr).starts_with("summary: events=38 applied=38 "), "{stderr}");

    // The next export, written in place: the same first line, then other lines, longer.
    let rewritten: Vec<u64> = std::iter::once(1).chain(100..160).collect();
    std::fs::write(&path, lines(&rewritten)).expect("rewrite in place");
    let stderr = run_on_file(&path, directory.path());
    assert!(
        summary(&stderr)
            .starts_with("summary: events=61 applied=60 stale=0 superseded=0 duplicate=1 held=0 rejected=0 "),
        "read whole, from its start: {stderr}"
    );
    assert!(stderr.contains("file_rewritten"), "{stderr}");
}

/// A writer that still holds the file rotated away from the path appends to it after a run
/// read it to its end and went on to the new file (its writer had not reopened the path yet):
/// the next run reads those lines before the rest of the new file, and resumes both where it
/// left them, also after stopping at half a line in the old one (decision 0052).
#[test]
fn lines_appended_to_a_rotated_file_after_a_run_finished_it_are_read() {
    let directory = tempfile::tempdir().expect("temp dir");
    let at = |name: &str| directory.path().join(name);
    let path = at("feed.ndjson");
    let lines = |events: &[u64]| events.iter().map(|n| event_line(*n) + "\n").collect::<String>();
    let append = |target: &std::path::Path, text: &str| {
        let mut file = std::fs::OpenOptions::new().append(true).open(target).expect("open");
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("append");
    };
    let run = |expected: &str| {
        let stderr = run_on_file(&path, directory.path());
        assert!(summary(&stderr).starts_with(expected), "expected {expected}: {stderr}");
        stderr
    };

    std::fs::write(&path, lines(&[1, 2])).expect("write the feed");
    run("summary: events=2 applied=2 ");
    std::fs::rename(&path, at("feed.ndjson.1")).expect("rotate");
    std::fs::write(&path, lines(&[3])).expect("the new file");
    run("summary: events=1 applied=1 ");

    // The writer appends to the rotated file once more before it reopens the path.
    append(&at("feed.ndjson.1"), &lines(&[4, 5]));
    append(&path, &lines(&[6]));
    run("summary: events=3 applied=3 stale=0 superseded=0 duplicate=0 held=0 rejected=0 ");
    run("summary: events=0 ");

    // Half a line there: the run stops at it, and the next one finishes it, then goes on.
    let eight = event_line(8);
    let (first_half, second_half) = eight.split_at(eight.len() / 2);
    append(&at("feed.ndjson.1"), &format!("{}{first_half}", lines(&[7])));
    append(&path, &lines(&[9]));
    let stderr = run("summary: events=1 applied=1 ");
    assert!(stderr.contains("unterminated_line"), "{stderr}");
    append(&at("feed.ndjson.1"), &format!("{second_half}\n"));
    run("summary: events=2 applied=2 stale=0 superseded=0 duplicate=0 held=0 rejected=0 ");
    run("summary: events=0 ");

    // Rotated on, the old file renamed again: still found by its identity, and read first.
    std::fs::rename(at("feed.ndjson.1"), at("feed.ndjson.2")).expect("rotate");
    append(&at("feed.ndjson.2"), &lines(&[10]));
    std::fs::rename(&path, at("feed.ndjson.1")).expect("rotate");
    std::fs::write(&path, lines(&[11])).expect("the new file");
    run("summary: events=2 applied=2 stale=0 superseded=0 duplicate=0 held=0 rejected=0 ");
    run("summary: events=0 ");

    // The files rotated away deleted: nothing to read, nothing to say.
    std::fs::remove_file(at("feed.ndjson.2")).expect("remove");
    std::fs::remove_file(at("feed.ndjson.1")).expect("remove");
    append(&path, &lines(&[12]));
    let stderr = run("summary: events=1 applied=1 ");
    assert!(!stderr.contains("source_error") && !stderr.contains("rotated_file_gone"), "{stderr}");
    run("summary: events=0 ");
}
