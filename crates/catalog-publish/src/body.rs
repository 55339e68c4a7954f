//! Reading an answer's body no further than a cap: a chunk at a time, stopping once the cap
//! is passed, so a platform (or a proxy in front of it) that streams gigabytes quickly costs
//! the worker the cap, not its memory. The request timeout bounds only how long a body takes,
//! and up to 16 requests per channel are in flight at once (decision 0068). The supplier
//! feeds' client (`catalog-feed`) reads with the same `read_body_capped`.

/// A mebibyte, in bytes.
pub const MIB: usize = 1024 * 1024;

/// The most bytes read of the answer to a write (a publish, a feed's creation or upload) or
/// to a token request (1 MiB). Such an answer says how a request or a few hundred item
/// versions went, and what of it is kept is cut to 4 KiB anyway; a megabyte leaves room for
/// a platform's long error lists.
pub const MAX_ANSWER_BYTES: usize = MIB;

/// The most bytes read of an answer that lists many items (32 MiB): a page of the storefront's
/// list (up to 1,000 items, `readback::MAX_PAGE`), a marketplace's read of its listings, a
/// page of Walmart's feed item status (1,000 items), Amazon's processing report of a feed (up
/// to 10,000 messages). Each item is a few hundred bytes; 32 MiB leaves several kilobytes for
/// each of 10,000.
pub const MAX_LIST_ANSWER_BYTES: usize = 32 * MIB;

/// An answer's body, read no further than its cap.
#[derive(Debug)]
pub struct CappedBody {
    /// The whole body, or its first `cap` bytes when it is longer.
    pub bytes: Vec<u8>,
    /// Whether the body went on past the cap; the rest of it was not read.
    pub over_cap: bool,
}

impl CappedBody {
    /// The body as text, with U+FFFD for what is not UTF-8 (as `reqwest`'s `text` reads it).
    pub(crate) fn into_text(self) -> String {
        match String::from_utf8(self.bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        }
    }
}

/// Reads `response`'s body up to `cap` bytes. A body longer than `cap` comes back as its first
/// `cap` bytes with `over_cap` set, and the connection is dropped with the rest unread. The
/// supplier feeds' client reads its pages with it too.
pub async fn read_body_capped(mut response: reqwest::Response, cap: usize) -> Result<CappedBody, reqwest::Error> {
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

/// Unpacks `packed` (GZIP) no further than `cap` bytes: a few kilobytes of GZIP can unpack to
/// gigabytes. Unpacked bytes past the cap set `over_cap` and are not kept.
pub(crate) fn unpack_gzip_capped(packed: &[u8], cap: usize) -> std::io::Result<CappedBody> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    // One byte past the cap tells a body longer than it from one of exactly its length.
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(packed).take(limit).read_to_end(&mut bytes)?;
    let over_cap = bytes.len() > cap;
    bytes.truncate(cap);
    Ok(CappedBody { bytes, over_cap })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("writes to memory");
        encoder.finish().expect("writes to memory")
    }

    /// A report of zeros a mebibyte past the cap packs to a few kilobytes: unpacked no further
    /// than the cap, it is told too long; one of the cap's length exactly is whole.
    #[test]
    fn gzip_is_unpacked_no_further_than_its_cap() {
        let bomb = gzip(&vec![0; MAX_LIST_ANSWER_BYTES + MIB]);
        assert!(bomb.len() < MIB, "{} bytes packed", bomb.len());
        let unpacked = unpack_gzip_capped(&bomb, MAX_LIST_ANSWER_BYTES).expect("GZIP");
        assert!(unpacked.over_cap);
        assert_eq!(unpacked.bytes.len(), MAX_LIST_ANSWER_BYTES);

        let whole = unpack_gzip_capped(&gzip(&[7; 4096]), 4096).expect("GZIP");
        assert!(!whole.over_cap);
        assert_eq!(whole.bytes, [7; 4096]);
    }
}
