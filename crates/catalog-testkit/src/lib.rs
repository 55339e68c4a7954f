//! Test and benchmark support: a throwaway PostgreSQL database per test, Kafka topics on
//! the local broker, and the raw-SQL baseline the benchmarks compare with. A missing service fails the test loudly; nothing
//! here ever skips.

mod baseline;
mod database;
mod kafka;

pub use baseline::{bench_events, incoming, raw_sql_baseline};
pub use database::{server_url, TestDatabase};
pub use kafka::{brokers, create_topic, produce, produce_batched, unique_name, TestMessage};
