//! Integration tests of the worker: the embedded run on a file, and runs against real
//! PostgreSQL and a real Kafka-protocol broker, including crashes, a rebalance, hostile
//! headers and histories, readiness, and dead letters healing after a storefront outage.

mod file_source;
mod heal;
mod hostile;
mod kafka;
mod processes;
mod pull;
mod readiness;
mod reconcile;
mod retention;
mod signals;
mod start;
mod stream;
