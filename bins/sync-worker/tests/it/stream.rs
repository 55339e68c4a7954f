//! The hostile supplier feed of `catalog-testkit`, under the names these tests use.

pub(crate) use catalog_testkit::feed::{end_offsets, expected_quantities, feed, Lcg, TENANTS};
