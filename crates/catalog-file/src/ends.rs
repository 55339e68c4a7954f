//! How reading stops at the end of what the input holds: a last line without its newline
//! that no append can make an event is decided (decision 0033), one that may still become one
//! is left and said, and standard input at shutdown reads what its pipe holds, then says a
//! line cut off and a producer still sending.

use std::time::Duration;

use catalog_core::FailureClass;
use tokio::io::AsyncBufRead;
use tokio::time::Instant;

use crate::lines::{Line, LineReader};

/// How long standard input's drain at shutdown waits for its next line: a pipe that holds one
/// answers at once; this is time for a read already under way to return.
const DRAIN_WAIT: Duration = Duration::from_millis(100);

/// How long the drain goes on at most: a producer still writing after the stop is not read
/// for ever (the stop would never come).
pub(crate) const DRAIN_AT_MOST: Duration = Duration::from_secs(5);

/// What standard input's drain at shutdown read next.
pub(crate) enum Drained {
    Line(Line),
    /// Nothing at hand: the pipe held no more, or its end came.
    Done,
    /// The drain's time is up while lines still come.
    StillSending,
}

/// The next line standard input holds at shutdown, if it comes within [`DRAIN_WAIT`], before
/// `until`.
pub(crate) async fn drain_line<R: AsyncBufRead + Unpin>(
    lines: &mut LineReader<R>,
    until: Instant,
) -> std::io::Result<Drained> {
    if Instant::now() >= until {
        return Ok(Drained::StillSending);
    }
    // `next_line` is cancel safe: a read cut off by the wait loses nothing it holds.
    match tokio::time::timeout(DRAIN_WAIT, lines.next_line()).await {
        Ok(Ok(Some(line))) => Ok(Drained::Line(line)),
        Ok(Ok(None)) | Err(_) => Ok(Drained::Done),
        Ok(Err(error)) => Err(error),
    }
}

/// What the source tells of standard input still sending when its drain's time is up.
pub(crate) fn still_sending(position: u64) -> catalog_app::SourceError {
    catalog_app::SourceError {
        source: "file",
        operation: "stdin_still_sending_at_shutdown",
        class: FailureClass::NeedsSupplier,
        message: format!(
            "standard input still sent lines {} s after the worker was told to stop; it stopped reading at offset \
             {position}: what came after is not journaled, send it again to the next run",
            DRAIN_AT_MOST.as_secs()
        ),
    }
}

/// Whether an unterminated `line` that is no event can never become one, whatever a writer
/// appends: a line longer than a message may be is too large already; one whose first byte
/// past its blanks is not `{` starts no object (a crash's tail of NUL bytes, a JSON array, a
/// later line's byte order mark), unless it is the input's first bytes and the start of a
/// byte order mark, which an object may follow; and one that is a whole JSON object (blanks
/// around it allowed) is made invalid by anything after its closing brace. Left waiting for a
/// newline, each stopped every later run there, for good in a rotated file. The object's
/// shape alone is checked (`IgnoredAny`): a string that is not UTF-8 or a number no float
/// holds is as whole, and as invalid, as any other.
pub(crate) fn decided(line: &Line) -> bool {
    // The reader holds one byte past the limit to tell a line too large: held whole at that
    // length, it is as decided as one cut short.
    if line.length > catalog_core::MAX_PAYLOAD_BYTES as u64 {
        return true;
    }
    let Some(start) = line.bytes.iter().position(|byte| !is_json_blank(byte)) else {
        return false;
    };
    let bytes = &line.bytes[start..];
    if bytes[0] != b'{' {
        return !(line.offset == 0 && start == 0 && crate::lines::BOM.starts_with(bytes));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// JSON's whitespace (RFC 8259): what a line may hold besides its object. A form feed or a
/// vertical tab is not: a line of them is a message, rejected, not a blank line skipped.
pub(crate) fn is_json_blank(byte: &u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// What the source tells of standard input's line cut off by a shutdown: its start came, its
/// newline had not; not journaled (nothing decodes half a line), said and counted.
pub(crate) fn cut_at_shutdown(position: u64, held: u64) -> catalog_app::SourceError {
    catalog_app::SourceError {
        source: "file",
        operation: "stdin_line_cut_at_shutdown",
        class: FailureClass::NeedsSupplier,
        message: format!(
            "standard input: the worker stopped {held} bytes into a line at offset {position} whose newline had not \
             come; that line is not journaled: send it again to the next run"
        ),
    }
}

/// What the source tells of standard input's lines from `position` on when the store did not
/// take their batch (`error`): none of them, nor any line after them, is journaled.
pub(crate) fn not_applied(position: u64, error: &catalog_app::SinkError) -> catalog_app::SourceError {
    catalog_app::SourceError {
        source: "file",
        operation: "stdin_not_applied",
        class: FailureClass::NeedsSupplier,
        message: format!(
            "standard input: the store did not take the lines from offset {position} on ({error}); none of them, \
             nor any line after them, is journaled: send them again to the next run"
        ),
    }
}

/// What the source tells of a file that ends in a line without a newline that is no event.
pub(crate) fn unterminated_line(position: u64, line: &Line) -> catalog_app::SourceError {
    catalog_app::SourceError {
        source: "file",
        operation: "unterminated_line",
        class: FailureClass::Retryable,
        message: format!(
            "the file ends in a line without a newline that is not a valid event ({} bytes at offset {}): \
             left for the next run, which reads it again from its start (a writer may still be appending \
             to it); if the file is complete, end it with a newline and the line is journaled",
            line.length, position
        ),
    }
}
