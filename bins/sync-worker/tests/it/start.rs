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
