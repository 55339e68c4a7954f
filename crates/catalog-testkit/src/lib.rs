//! Test and benchmark support: a throwaway PostgreSQL database per test, Kafka topics on
//! the local broker, sales channels on local ports (`marketplaces`), and the raw-SQL baselines (PostgreSQL and plain SQLite) the benchmarks compare with. A missing service fails the test loudly; nothing
//! here ever skips.

mod baseline;
mod database;
mod down_channel;
pub mod feed;
pub mod feed_api;
mod kafka;
pub mod marketplaces;
mod postgres_cpu;
mod sql_baselines;
mod sqlite_baseline;

pub use baseline::{batch_of, bench_events, incoming, raw_sql_baseline};
pub use database::{server_url, TestDatabase};
pub use down_channel::{down_channel_claims, fail_a_backlog, time_claims, DownChannelClaims, DOWN_ITEMS};
pub use kafka::{
    brokers, commit_group_offsets, create_topic, first_offset_fetched_from, produce, produce_batched,
    produce_in_batches, unique_name, TestMessage,
};
pub use postgres_cpu::PostgresCpu;
pub use sql_baselines::{naive_per_event, staging_sql_baseline};
pub use sqlite_baseline::plain_sqlite_baseline;

/// Whether a benchmark with parts runs `part`: every part when no name follows `--` on its
/// command line (`cargo bench … -- down_channel`), else those whose name holds the one given.
pub fn bench_part_chosen(part: &str) -> bool {
    let chosen = std::env::args().skip(1).find(|arg| !arg.starts_with("--"));
    chosen.is_none_or(|chosen| part.contains(chosen.as_str()))
}

/// Writes a benchmark's results to `docs/bench-data/NAME.json`, where `cargo xtask charts`
/// draws them from.
pub fn write_bench_data(name: &str, data: &serde_json::Value) {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/bench-data");
    std::fs::create_dir_all(&directory).expect("docs/bench-data");
    let text = serde_json::to_string_pretty(data).expect("JSON") + "\n";
    std::fs::write(directory.join(format!("{name}.json")), text).expect("write bench data");
}

/// An archive that keeps nothing and says it went to its location: for tests of what a store
/// records of retention, not of the archive.
#[derive(Debug, Clone)]
pub struct DiscardArchive(pub String);

impl catalog_store::ArchiveSink for DiscardArchive {
    fn begin(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&mut self, _: &[catalog_store::JournalEntry]) -> std::io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<String> {
        Ok(self.0.clone())
    }
}
