//! Integration tests of the worker: the embedded run on a file, and runs against real
//! PostgreSQL and a real Kafka-protocol broker, including crashes and a rebalance.

mod file_source;
mod kafka;
mod processes;
mod stream;
