//! Integration tests of the pull source against a real local feed API (`catalog_testkit::feed_api`)
//! on real stores: SQLite, and PostgreSQL where a test says so.

mod broken;
mod golive;
mod harness;
mod holds;
mod letters;
mod pull;
mod refresh;
mod resume;
mod runs;
mod schedule;
