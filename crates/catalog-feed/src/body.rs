//! How much of a feed's answer is read: no further than a cap, a chunk at a time, with the
//! publishing side's reader (`catalog_publish::body::read_body_capped`), so a feed (or a
//! proxy in front of it) that streams gigabytes quickly costs the worker the cap, not its
//! memory. The request timeout bounds only how long a body takes.

/// The most bytes of a page's body that are read (32 MiB): a page holds at most 1,000 records
/// (`supplier-feed-api.md`), a record is about a hundred bytes, and 32 KiB each leaves room
/// for fields the contract does not name. A longer body is no page of the contract's, and
/// reading it whole (then parsing it into JSON values several times its size, with up to
/// eight pages ahead per feed and several feeds at once) could run the worker out of memory
/// and stop every source with it (decision 0068).
pub const MAX_PAGE_BYTES: usize = 32 * MIB;

pub(crate) use catalog_publish::body::read_body_capped;
pub use catalog_publish::body::MIB;
