//! `cargo xtask api-check`: the schema-driven test of the admin API (issue 14, item 7).
//! Builds `admin-api` and `sync-worker`, seeds a fresh SQLite file with a small scenario (a
//! few items, a held tenant, a rejected message) through the worker and tokens through the
//! CLI, serves it on a free loopback
//! port, and runs schemathesis against the running server from its own `/openapi.json`:
//! no 5xx, and every response inside the schema. The server is stopped whatever happens.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::run;

/// The schemathesis release `.ci/run` installs; another version may name its checks and
/// flags differently.
pub(crate) const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// Test cases per operation and phase: enough to find a response outside the schema, short
/// enough for every CI run.
const MAX_EXAMPLES: &str = "30";

/// The admin server, killed and reaped when dropped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// schemathesis from `CATALOG_SCHEMATHESIS`, else from PATH (`.ci/run` puts its venv there).
fn schemathesis() -> Result<String> {
    let program = std::env::var("CATALOG_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    let output = Command::new(&program).arg("--version").output().with_context(|| {
        format!("starting {program}: install schemathesis=={SCHEMATHESIS_VERSION} (.ci/run does) or set CATALOG_SCHEMATHESIS")
    })?;
    let version = String::from_utf8_lossy(&output.stdout);
    if !version.trim_end().ends_with(SCHEMATHESIS_VERSION) {
        bail!("{program} is {:?}; api-check is pinned to schemathesis {SCHEMATHESIS_VERSION}", version.trim());
    }
    Ok(program)
}

/// One line of the contract per event `(tenant, supplier, sku, change, seconds ago)`, with
/// event ids from `first_id`; received now, so status reads `current`.
fn ndjson(first_id: usize, events: &[(&str, &str, &str, &str, u64)]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let mut lines = String::new();
    for (n, (tenant, supplier, sku, change, seconds_ago)) in events.iter().enumerate() {
        let id = first_id + n;
        let event_type = if change.contains("delta") { "inventory.adjusted" } else { "inventory.updated" };
        let _ = writeln!(
            lines,
            r#"{{"event_id":"00000000-0000-4000-8000-{id:012}","type":"{event_type}","tenant_id":"{tenant}","supplier_id":"{supplier}","sku":"{sku}",{change},"updated_at":"{}","sequence":{id}}}"#,
            rfc3339(now.saturating_sub(*seconds_ago))
        );
    }
    lines
}

/// The applied half of the scenario: out-of-order snapshots, an adjustment, a redelivery and
/// a message with an invalid quantity, on two tenants.
fn applied_feed() -> String {
    let lines = ndjson(
        1,
        &[
            ("canary", "acme", "ABC-1", r#""quantity":7"#, 60),
            ("canary", "acme", "ABC-1", r#""quantity":5"#, 120),
            ("canary", "globex", "ABC-1", r#""quantity":4"#, 90),
            ("canary", "acme", "XYZ-9", r#""quantity":2"#, 30),
            ("canary", "acme", "ABC-1", r#""delta":-1"#, 20),
            ("wide", "initech", "W-1", r#""quantity":11"#, 10),
            ("wide", "initech", "W-1", r#""quantity":-3"#, 5),
        ],
    );
    let first = lines.lines().next().unwrap_or_default().to_owned();
    format!("{lines}{first}\n")
}

/// The held half: a tenant first seen while new tenants start switched off.
fn held_feed() -> String {
    ndjson(100, &[("held", "acme", "H-1", r#""quantity":3"#, 40), ("held", "acme", "H-1", r#""delta":2"#, 30)])
}

/// Seconds since the epoch as RFC 3339 UTC, without a date library.
fn rfc3339(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3_600, rest % 3_600 / 60, rest % 60)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").context("finding a free port")?.local_addr()?.port())
}

fn add_token(admin_api: &Path, database_url: &str, name: &str, role: &str) -> Result<String> {
    let output = Command::new(admin_api)
        .args(["tokens", "add", "--name", name, "--role", role])
        .env("CATALOG_DATABASE_URL", database_url)
        .stderr(Stdio::inherit())
        .output()
        .context("running admin-api tokens add")?;
    if !output.status.success() {
        bail!("admin-api tokens add exited with {}", output.status);
    }
    Ok(String::from_utf8(output.stdout).context("the token is text")?.trim().to_owned())
}

fn wait_until_healthy(port: u16, server: &mut Served) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(status) = server.0.try_wait()? {
            bail!("admin-api exited with {status} before answering");
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("admin-api did not answer /healthz within 30 s")
}

pub(crate) fn api_check(root: &Path) -> Result<()> {
    let schemathesis = schemathesis()?;
    run(root, "cargo", &["build", "--locked", "-p", "admin-api", "-p", "sync-worker"])?;
    let binaries = target_dir(root).join("debug");
    let (admin_api, sync_worker) = (binaries.join("admin-api"), binaries.join("sync-worker"));

    let directory = std::env::temp_dir().join(format!("catalog-api-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).with_context(|| format!("creating {}", directory.display()))?;
    let database_url = format!("sqlite:{}", directory.join("catalog.db").display());
    let operator = add_token(&admin_api, &database_url, "api-check-operator", "operator")?;
    let admin = add_token(&admin_api, &database_url, "api-check-admin", "admin")?;
    // The scenario through the real worker, the held half with new tenants switched off.
    for (name, feed, default_sync) in [("applied", applied_feed(), "on"), ("held", held_feed(), "off")] {
        let path = directory.join(format!("{name}.ndjson"));
        std::fs::write(&path, feed).context("writing the scenario")?;
        let status = Command::new(&sync_worker)
            .args(["--source", &format!("file:{}", path.display()), "--publish", "off", "--reconcile", "off"])
            .env("CATALOG_DATABASE_URL", &database_url)
            .env("CATALOG_DEFAULT_SYNC", default_sync)
            .env("CATALOG_METRICS_ADDR", format!("127.0.0.1:{}", free_port()?))
            .env("RUST_LOG", "warn")
            .status()
            .context("running sync-worker on the scenario")?;
        if !status.success() {
            bail!("sync-worker exited with {status} on the {name} scenario");
        }
    }

    let port = free_port()?;
    let log = std::fs::File::create(directory.join("admin-api.log")).context("creating the server log")?;
    let child = Command::new(&admin_api)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CATALOG_DATABASE_URL", &database_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting admin-api")?;
    let mut server = Served(child);
    wait_until_healthy(port, &mut server)?;

    let schema = format!("http://127.0.0.1:{port}/openapi.json");
    let report = directory.join("report");
    let report = report.display().to_string();
    // Three runs, so one token revoking itself cannot hide the rest behind 401s: every route
    // as an operator (token routes answer 403), the token routes but revoking as an admin,
    // then revoking, last.
    let runs: [(&str, &[&str]); 3] = [
        (&operator, &[]),
        (&admin, &["--include-path-regex", "^/v1/tokens", "--exclude-method", "DELETE"]),
        (&admin, &["--include-path-regex", "^/v1/tokens/", "--include-method", "DELETE"]),
    ];
    for (token, filters) in runs {
        let header = format!("Authorization: Bearer {token}");
        let mut arguments = vec![
            "run",
            schema.as_str(),
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--header",
            header.as_str(),
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "14",
            "--no-color",
            "--report-dir",
            report.as_str(),
        ];
        arguments.extend_from_slice(filters);
        eprintln!("xtask: {schemathesis} run {schema} --checks … {}", filters.join(" "));
        let status = Command::new(&schemathesis)
            .args(&arguments)
            .current_dir(&directory)
            .status()
            .with_context(|| format!("starting {schemathesis}"))?;
        if !status.success() {
            bail!(
                "schemathesis found responses outside the schema or server errors (server log: {})",
                directory.join("admin-api.log").display()
            );
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&directory);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_gives_civil_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_188_154), "2026-12-02T05:09:14Z");
    }
}
