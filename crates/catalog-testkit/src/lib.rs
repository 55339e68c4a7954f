//! Test and benchmark support: a throwaway PostgreSQL database per test, Kafka topics on
//! the local broker, and the raw-SQL baselines (PostgreSQL and plain SQLite) the benchmarks compare with. A missing service fails the test loudly; nothing
//! here ever skips.

mod baseline;
mod database;
pub mod feed;
pub mod feed_api;
mod kafka;
mod sqlite_baseline;

pub use baseline::{bench_events, incoming, raw_sql_baseline};
pub use database::{server_url, TestDatabase};
pub use kafka::{
    brokers, commit_group_offsets, create_topic, first_offset_fetched_from, produce, produce_batched,
    produce_in_batches, unique_name, TestMessage,
};
pub use sqlite_baseline::plain_sqlite_baseline;
