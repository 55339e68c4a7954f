//! A tansu broker of the chaos run's own: in memory, or in a SQLite file so a restart keeps
//! every message (a broker restart must lose nothing either). The two behave differently
//! where it matters: from memory, a fetch that starts inside a record batch returns nothing
//! of that batch (the first offset is the next batch's); from SQLite it returns the record
//! asked for, but serves a long partition slowly.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::postgres::free_port;

/// Where the broker keeps messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Storage {
    Memory,
    Sqlite,
}

pub(crate) struct OwnBroker {
    program: PathBuf,
    directory: PathBuf,
    storage: Storage,
    log: PathBuf,
    port: u16,
    process: Option<Child>,
}

impl OwnBroker {
    pub(crate) fn start(program: PathBuf, directory: &Path, storage: Storage) -> Self {
        let mut broker = Self {
            program,
            directory: directory.to_path_buf(),
            storage,
            log: directory.join("tansu.log"),
            port: free_port(),
            process: None,
        };
        broker.spawn();
        broker
    }

    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether a restart keeps the messages.
    pub(crate) fn is_persistent(&self) -> bool {
        self.storage == Storage::Sqlite
    }

    /// Stops the broker (SIGTERM) and starts it again on the same storage and port.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let url = format!("tcp://{}", self.address());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("broker log");
        let process = Command::new(&self.program)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            // tansu resolves a sqlite:// path against its working directory.
            .args([
                "--storage-engine",
                match self.storage {
                    Storage::Memory => "memory://tansu/",
                    Storage::Sqlite => "sqlite://tansu.db",
                },
            ])
            .current_dir(&self.directory)
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|error| panic!("starting tansu at {}: {error}", self.program.display()));
        self.process = Some(process);
        let started = Instant::now();
        while TcpStream::connect(self.address()).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "tansu did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = Command::new("kill").args(["-TERM", &process.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(process.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
