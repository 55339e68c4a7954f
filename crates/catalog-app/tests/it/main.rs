//! Integration tests of the application layer: the channels a worker publishes on, the
//! auto-heal of dead letters with its metrics, and the applier's retries, on a real SQLite store.

mod alerts;
mod apply;
mod channels;
mod feed_metrics;
mod heal;
mod held;
mod reconcile_marketplaces;
mod reconcile_storefront;
mod retention;
mod sales_channels;
mod shared_listings;
