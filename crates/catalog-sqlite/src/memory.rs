//! In-memory SQLite URLs: each opens a private temporary file (the writer thread and the
//! read pool need one database they all reach), removed with its WAL when the store is dropped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The private file an in-memory URL opens, removed (with its WAL) when dropped.
#[derive(Debug)]
pub(crate) struct TemporaryDatabase {
    pub(crate) path: PathBuf,
}

impl TemporaryDatabase {
    pub(crate) fn new() -> TemporaryDatabase {
        static OPENED: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let name = format!(
            "catalog-sqlite-memory-{}-{}-{nanos}.db",
            std::process::id(),
            OPENED.fetch_add(1, Ordering::Relaxed)
        );
        TemporaryDatabase { path: std::env::temp_dir().join(name) }
    }
}

impl Drop for TemporaryDatabase {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-retention", "-migrate"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            // Best effort: a file already gone is what we want.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether a `sqlite:` URL names a database that lives in memory rather than in a file.
pub(crate) fn names_an_in_memory_database(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (database, parameters) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || parameters.split('&').any(|parameter| parameter == "mode=memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_urls_are_recognised() {
        assert!(names_an_in_memory_database("sqlite::memory:"));
        assert!(names_an_in_memory_database("sqlite://:memory:"));
        assert!(names_an_in_memory_database("sqlite://?mode=memory"));
        assert!(!names_an_in_memory_database("sqlite://catalog.db"));
        assert!(!names_an_in_memory_database("sqlite:///var/lib/catalog/memory.db?mode=rwc"));
    }
}
