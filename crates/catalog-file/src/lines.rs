//! Reading NDJSON lines with their byte positions, so that a line is never cut in two: what
//! has been read of a line is held by the reader, not by a future, so a batch timer may win a
//! `select!` while half a line is in (bytes arriving in two reads, on a pipe) and the line is
//! still whole at the next call. A UTF-8 byte order mark at the very start of the input is
//! the file's encoding signature, not part of its first line (decision 0032).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// A line longer than this is not read into memory whole: its first bytes are kept (enough
/// to be rejected as `payload_too_large` with a recognizable prefix) and the rest skipped.
pub(crate) const MAX_LINE_BYTES: usize = catalog_core::MAX_PAYLOAD_BYTES + 1;

/// The UTF-8 byte order mark some tools write at the start of a text file.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One line as read: where it started, where the next one starts, its bytes (at most
/// [`MAX_LINE_BYTES`] of them), its whole length without the end of line (more than
/// `bytes` holds for a line cut short), and whether a newline ended it (the input's last
/// line may have none: a file a writer is still appending to ends in half a line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) offset: u64,
    pub(crate) next_offset: u64,
    pub(crate) bytes: Vec<u8>,
    pub(crate) length: u64,
    pub(crate) terminated: bool,
}

/// Lines of `reader`, from byte `offset` on.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    reader: R,
    /// Where the line being read starts.
    offset: u64,
    /// What was read of it, up to [`MAX_LINE_BYTES`].
    partial: Vec<u8>,
    /// How many bytes of it were consumed (more than `partial` holds for a line too long).
    consumed: u64,
    /// Whether the last byte consumed of it is a `\r` (kept or not: a line too long holds
    /// only its first bytes).
    ends_in_cr: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(crate) fn new(reader: R, offset: u64) -> Self {
        Self { reader, offset, partial: Vec::new(), consumed: 0, ends_in_cr: false }
    }

    /// Where the next line starts: past every line returned so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next line (without its `\n` or `\r\n`); `None` at the end of input. A last line
    /// without a newline is still a line (and a `\r` ending it is dropped too: the `\r\n`
    /// whose `\n` never came).
    ///
    /// Cancel safe: dropping the future loses nothing. Between the only await (`fill_buf`,
    /// itself cancel safe) and the next, bytes move from the reader's buffer into this
    /// reader's partial line at once.
    pub(crate) async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let buffer = self.reader.fill_buf().await?;
            if buffer.is_empty() {
                // Nothing left, or only the input's byte order mark: no line.
                if self.consumed == 0 || (self.offset == 0 && self.partial == BOM) {
                    return Ok(None);
                }
                return Ok(Some(self.take_line(0)));
            }
            let (chunk, found_newline) = match buffer.iter().position(|byte| *byte == b'\n') {
                Some(position) => (&buffer[..position], true),
                None => (buffer, false),
            };
            // The input's first line may hold a byte order mark besides its bytes.
            let limit = if self.offset == 0 { MAX_LINE_BYTES + BOM.len() } else { MAX_LINE_BYTES };
            let room = limit.saturating_sub(self.partial.len());
            self.partial.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if let Some(last) = chunk.last() {
                self.ends_in_cr = *last == b'\r';
            }
            let used = chunk.len() + usize::from(found_newline);
            self.reader.consume(used);
            self.consumed += used as u64;
            if found_newline {
                return Ok(Some(self.take_line(1)));
            }
        }
    }

    /// How many bytes of a line not yet ended were read.
    pub(crate) fn held(&self) -> u64 {
        self.consumed
    }

    /// The line read so far, ended by `n_newline` bytes (0 at the end of input).
    fn take_line(&mut self, n_newline: u64) -> Line {
        let mut bytes = std::mem::take(&mut self.partial);
        let mut length = self.consumed - n_newline;
        if self.ends_in_cr {
            length -= 1;
            bytes.truncate(bytes.len().min(length as usize));
        }
        let next_offset = self.offset + self.consumed;
        let mut offset = self.offset;
        if offset == 0 && bytes.starts_with(BOM) {
            bytes.drain(..BOM.len());
            offset = BOM.len() as u64;
            length -= BOM.len() as u64;
        }
        bytes.truncate(MAX_LINE_BYTES);
        let line = Line { offset, next_offset, bytes, length, terminated: n_newline > 0 };
        self.offset = next_offset;
        self.consumed = 0;
        self.ends_in_cr = false;
        line
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncWriteExt, BufReader};

    use super::*;

    async fn lines(input: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
        let mut reader = LineReader::new(BufReader::with_capacity(4, input), 0);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().await.expect("in-memory read") {
            assert_eq!(line.length, line.bytes.len() as u64, "a line held whole");
            out.push((line.offset, line.next_offset, line.bytes));
        }
        out
    }

    #[tokio::test]
    async fn lines_keep_their_byte_positions() {
        let read = lines(b"ab\r\n\ncdef\nlast").await;
        assert_eq!(
            read,
            [(0, 4, b"ab".to_vec()), (4, 5, b"".to_vec()), (5, 10, b"cdef".to_vec()), (10, 14, b"last".to_vec())]
        );
    }

    #[tokio::test]
    async fn a_huge_line_is_cut_but_its_length_counted() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 3];
        input.extend_from_slice(b"\r\nnext\n");
        let mut reader = LineReader::new(BufReader::with_capacity(4, input.as_slice()), 0);
        let huge = reader.next_line().await.expect("read").expect("a line");
        assert_eq!(huge.bytes.len(), MAX_LINE_BYTES);
        assert_eq!((huge.next_offset, huge.length), ((MAX_LINE_BYTES * 3 + 2) as u64, (MAX_LINE_BYTES * 3) as u64));
        let next = reader.next_line().await.expect("read").expect("a line");
        assert_eq!((next.bytes.as_slice(), next.length), (b"next".as_slice(), 4));
    }

    /// A byte order mark at the start of the input is the file's encoding, not part of the
    /// first line, however the reads split it; one anywhere else is the line's own.
    #[tokio::test]
    async fn a_byte_order_mark_at_the_start_is_not_part_of_the_first_line() {
        let input = b"\xEF\xBB\xBF{\"a\": 1}\r\n\xEF\xBB\xBF{\"b\": 2}\n";
        for capacity in [1, 2, 4, 64] {
            let read: Vec<_> = all_lines(input, capacity)
                .await
                .into_iter()
                .map(|line| (line.offset, line.next_offset, line.bytes, line.length))
                .collect();
            assert_eq!(
                read,
                [(3, 13, b"{\"a\": 1}".to_vec(), 8), (13, 25, b"\xEF\xBB\xBF{\"b\": 2}".to_vec(), 11)],
                "reads of {capacity} bytes"
            );
        }
        // A first line too long keeps its first bytes after the mark.
        let mut huge = BOM.to_vec();
        huge.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES * 2));
        let lines = all_lines(&huge, 7).await;
        assert_eq!((lines[0].offset, lines[0].length), (3, (MAX_LINE_BYTES * 2) as u64));
        assert_eq!(lines[0].bytes, vec![b'x'; MAX_LINE_BYTES]);
        // Read from a later offset, the same bytes are a line's own.
        let mut reader = LineReader::new(BufReader::new(&input[13..]), 13);
        assert!(reader.next_line().await.expect("read").expect("a line").bytes.starts_with(BOM));
    }

    /// Half a line arrives, a timer wins the `select!` (as the batch timer does), the rest
    /// arrives: the line is read whole.
    #[tokio::test(start_paused = true)]
    async fn a_line_arriving_in_two_parts_is_read_whole_across_a_timer() {
        let (mut writer, pipe) = tokio::io::duplex(64);
        let mut reader = LineReader::new(BufReader::new(pipe), 0);
        writer.write_all(b"{\"first\": ").await.expect("write");
        let timer_won = tokio::select! {
            line = reader.next_line() => panic!("no line is complete yet: {line:?}"),
            () = tokio::time::sleep(Duration::from_millis(50)) => true,
        };
        assert!(timer_won);
        writer.write_all(b"\"half\"}\nnext").await.expect("write");
        drop(writer);
        let first = reader.next_line().await.expect("read").expect("a line");
        assert_eq!(
            (first.offset, first.next_offset, first.bytes.as_slice()),
            (0, 18, b"{\"first\": \"half\"}".as_slice())
        );
        let next = reader.next_line().await.expect("read").expect("a line");
        assert_eq!((next.offset, next.bytes.as_slice()), (18, b"next".as_slice()));
        assert_eq!(reader.next_line().await.expect("read"), None);
    }

    /// Reads `input` through a buffer of `capacity` bytes, whole lines and cut ones alike.
    async fn all_lines(input: &[u8], capacity: usize) -> Vec<Line> {
        let mut reader = LineReader::new(BufReader::with_capacity(capacity, input), 0);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().await.expect("in-memory read") {
            out.push(line);
        }
        out
    }

    /// Lines mostly of a few bytes, newlines and carriage returns among them, and now and
    /// then one past [`MAX_LINE_BYTES`].
    fn ndjson_like() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            8 => proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'x'), any::<u8>()], 0..40),
            1 => (MAX_LINE_BYTES - 2..MAX_LINE_BYTES + 3).prop_map(|length| vec![b'y'; length]),
            1 => Just(BOM.to_vec()),
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Whatever the bytes and however the reads split them: the lines tile the input
        /// from its first byte (after a byte order mark) to its last with no gap or overlap, each holds exactly its
        /// bytes (without `\n` or `\r\n`, cut at [`MAX_LINE_BYTES`]) and its whole length,
        /// and reading again from any line's offset gives the same lines from there.
        #[test]
        fn lines_tile_the_input_whatever_the_reads(input in ndjson_like(), capacity in 1usize..64) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let lines = runtime.block_on(all_lines(&input, capacity));
            // A byte order mark at the start belongs to no line.
            let mut at = if input.starts_with(BOM) { BOM.len() as u64 } else { 0 };
            for line in &lines {
                proptest::prop_assert_eq!(line.offset, at);
                let end = input[at as usize..].iter().position(|byte| *byte == b'\n').map(|p| at as usize + p);
                let text_end = end.unwrap_or(input.len());
                let mut text = &input[at as usize..text_end];
                if text.last() == Some(&b'\r') {
                    text = &text[..text.len() - 1];
                }
                proptest::prop_assert_eq!(line.length, text.len() as u64);
                proptest::prop_assert_eq!(&line.bytes[..], &text[..text.len().min(MAX_LINE_BYTES)]);
                at = end.map_or(input.len(), |newline| newline + 1) as u64;
                proptest::prop_assert_eq!(line.next_offset, at);
                proptest::prop_assert_eq!(line.terminated, end.is_some(), "a newline ended the line");
            }
            proptest::prop_assert_eq!(at, input.len() as u64, "every byte belongs to a line");
            if let Some(middle) = lines.get(lines.len() / 2) {
                let again = runtime.block_on(async {
                    let start = middle.offset as usize;
                    let mut reader = LineReader::new(BufReader::with_capacity(capacity, &input[start..]), middle.offset);
                    let mut out = Vec::new();
                    while let Some(line) = reader.next_line().await.expect("in-memory read") {
                        out.push(line);
                    }
                    out
                });
                proptest::prop_assert_eq!(&again[..], &lines[lines.len() / 2..]);
            }
        }
    }
}
