//! Integration tests of catalog-core: contract cases as snapshots, and the properties
//! every store relies on (order independence, idempotence, each adjustment once).

mod cases;
mod decode;
mod properties;
mod scenario;
