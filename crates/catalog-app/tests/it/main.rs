//! Integration tests of the application layer: the channels a worker publishes on, and the
//! auto-heal of dead letters with its metrics, on a real SQLite store.

mod alerts;
mod channels;
mod heal;
mod reconcile_marketplaces;
mod retention;
mod sales_channels;
