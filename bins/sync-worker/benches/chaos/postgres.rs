//! A PostgreSQL server of the chaos run's own, in a temporary directory on a port of its
//! own, so restarting it mid-stream disturbs nothing else on the machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A running server; stopped when dropped.
pub(crate) struct OwnPostgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    /// `runuser -u postgres --` when running as root (PostgreSQL refuses root).
    as_postgres: bool,
}

impl OwnPostgres {
    /// Creates a cluster under `directory` and starts it on a free port.
    pub(crate) fn start(directory: &Path) -> Self {
        let bin = server_binaries();
        let base = directory.join("postgres");
        std::fs::create_dir_all(&base).expect("create the server directory");
        let as_postgres = running_as_root();
        if as_postgres {
            // The postgres user must reach its directory through the run's (private) one.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(directory, std::fs::Permissions::from_mode(0o755)).expect("open the directory");
            run("chown", &["-R", "postgres:postgres", &base.display().to_string()]);
        }
        let server =
            Self { bin, data: base.join("data"), log: base.join("server.log"), port: free_port(), as_postgres };
        server.pg(&["initdb", "-D", &server.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        server.pg_ctl_start();
        server
    }

    /// A URL of a database on this server, created on first use.
    pub(crate) fn database_url(&self, name: &str) -> String {
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        self.pg(&["psql", &url, "-q", "-c", &format!("CREATE DATABASE {name}")]);
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server as a crash would (no checkpoint, clients cut off), then starts it
    /// again: it recovers from its write-ahead log.
    pub(crate) fn crash_and_restart(&self) {
        self.pg(&["pg_ctl", "-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        std::thread::sleep(Duration::from_millis(500));
        self.pg_ctl_start();
    }

    fn pg_ctl_start(&self) {
        let options =
            format!("-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=100", self.port, self.data());
        let log = self.log.display().to_string();
        self.pg(&["pg_ctl", "-D", &self.data(), "-o", &options, "-l", &log, "-w", "-t", "60", "start"]);
    }

    fn data(&self) -> String {
        self.data.display().to_string()
    }

    /// Runs one of the server's programs, as the postgres user when needed.
    fn pg(&self, arguments: &[&str]) {
        let program = self.bin.join(arguments[0]).display().to_string();
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", &program]);
            command
        } else {
            Command::new(&program)
        };
        let output =
            command.args(&arguments[1..]).output().unwrap_or_else(|error| panic!("running {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {:?} failed: {}{}",
            &arguments[1..],
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl").display().to_string();
        let data = self.data();
        let arguments = ["-D", data.as_str(), "-m", "fast", "-w", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--", &program]).args(arguments).output()
        } else {
            Command::new(&program).args(arguments).output()
        };
    }
}

/// The newest PostgreSQL server installed (Debian: `/usr/lib/postgresql/N/bin`).
fn server_binaries() -> PathBuf {
    if let Ok(bin) = std::env::var("CATALOG_CHAOS_PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (or CATALOG_CHAOS_PG_BIN)")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL server installation with pg_ctl").1
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn run(program: &str, arguments: &[&str]) {
    let status = Command::new(program).args(arguments).status().unwrap_or_else(|error| panic!("{program}: {error}"));
    assert!(status.success(), "{program} {arguments:?} failed");
}

/// A port nothing listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("address").port()
}
