//! Test support shared by the integration tests: a throwaway PostgreSQL database per test
//! and Kafka topics on the local broker. A missing service fails the test loudly; nothing
//! here ever skips.

mod database;
mod kafka;

pub use database::{server_url, TestDatabase};
pub use kafka::{brokers, create_topic, produce, unique_name, TestMessage};
