//! Reading an answer's body no further than a cap: a chunk at a time, stopping once the cap
//! is passed, so a feed (or a proxy in front of it) that streams gigabytes quickly costs the
//! worker the cap, not its memory. The request timeout bounds only how long a body takes.

/// The most bytes of a page's body that are read (32 MiB): a page holds at most 1,000 records
/// (`supplier-feed-api.md`), a record is about a hundred bytes, and 32 KiB each leaves room
/// for fields the contract does not name. A longer body is no page of the contract's, and
/// reading it whole (then parsing it into JSON values several times its size, with up to
/// eight pages ahead per feed and several feeds at once) could run the worker out of memory
/// and stop every source with it (decision 0068).
pub const MAX_PAGE_BYTES: usize = 32 * MIB;

/// A mebibyte, in bytes.
pub const MIB: usize = 1024 * 1024;

/// An answer's body, read no further than its cap.
#[derive(Debug)]
pub(crate) struct CappedBody {
    /// The whole body, or its first `cap` bytes when it is longer.
    pub(crate) bytes: Vec<u8>,
    /// Whether the body went on past the cap; the rest of it was not read.
    pub(crate) over_cap: bool,
}

/// Reads `response`'s body up to `cap` bytes. A body longer than `cap` comes back as its first
/// `cap` bytes with `over_cap` set, and the connection is dropped with the rest unread.
pub(crate) async fn read_body_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<CappedBody, reqwest::Error> {
    // An announced length is trusted only as far as the cap: a lying header costs no more.
    let announced = response.content_length().map_or(0, |length| usize::try_from(length).unwrap_or(cap).min(cap));
    let mut bytes = Vec::with_capacity(announced);
    while let Some(chunk) = response.chunk().await? {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(CappedBody { bytes, over_cap: true });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(CappedBody { bytes, over_cap: false })
}
