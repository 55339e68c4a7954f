//! The embedded default: the worker binary on an NDJSON file with SQLite, no services.

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
