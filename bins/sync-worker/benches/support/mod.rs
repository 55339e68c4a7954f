//! What the end-to-end benchmarks share: the worker process they start (killed if the
//! benchmark panics), its log filter and peak memory, and an in-process storefront.
#![allow(dead_code)] // Each benchmark uses a part.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A worker process that is killed if the benchmark panics before stopping it, so a failed
/// run never leaves a worker behind to load the machine.
pub(crate) struct WorkerProcess(pub(crate) std::process::Child);

impl WorkerProcess {
    pub(crate) fn id(&self) -> u32 {
        self.0.id()
    }

    pub(crate) fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Asks the worker to stop (SIGTERM) and waits for it.
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The worker's log filter: `warn`, or `CATALOG_BENCH_WORKER_LOG` (for example
/// `catalog_postgres=debug` to see each batch's step timings on the benchmark's stderr).
pub(crate) fn worker_log_filter() -> String {
    std::env::var("CATALOG_BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".to_owned())
}

/// Peak resident set of a process, from /proc, in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> Option<f64> {
    proc_status_mib(pid, "VmHWM:")
}

/// Current resident set of a process, from /proc, in MiB.
pub(crate) fn rss_mib(pid: u32) -> Option<f64> {
    proc_status_mib(pid, "VmRSS:")
}

/// A memory line of `/proc/{pid}/status` (`VmHWM:`, `VmRSS:`), in MiB.
fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What the storefront accepted: per item id, (quantity, when), in arrival order.
pub(crate) type Accepted = Arc<Mutex<HashMap<String, Vec<(i64, Instant)>>>>;

pub(crate) async fn storefront() -> (String, Accepted) {
    use axum::routing::post;
    let accepted: Accepted = Arc::default();
    let sink = Arc::clone(&accepted);
    let app = axum::Router::new().route(
        "/v1/tenants/{tenant}/items/{item}/invalidate",
        post(
            move |axum::extract::Path((_tenant, item)): axum::extract::Path<(String, String)>,
                  axum::Json(body): axum::Json<serde_json::Value>| {
                let sink = Arc::clone(&sink);
                async move {
                    let quantity = body["quantity"].as_i64().unwrap_or(-1);
                    sink.lock().expect("storefront state").entry(item).or_default().push((quantity, Instant::now()));
                    (axum::http::StatusCode::ACCEPTED, axum::Json(serde_json::json!({"accepted": true})))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, accepted)
}
