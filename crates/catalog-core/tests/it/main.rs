//! Integration tests of catalog-core: contract cases as snapshots, and the properties
//! every store relies on (order independence, idempotence, each adjustment once), and `traceparent` validation.

mod cases;
mod decode;
mod dedupe;
mod determinism;
mod drift;
mod gate;
mod horizon;
mod properties;
mod redelivery;
mod round_trip;
mod scenario;
mod signals;
mod stock_rules;
mod trace;
