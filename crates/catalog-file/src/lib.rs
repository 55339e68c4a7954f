//! The NDJSON source: a file (resumable from the byte offset the store keeps) or standard
//! input, cut into batches like a Kafka partition and applied through the same sink
//! (`catalog_app::BatchSink`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog_app::{BatchSink, SinkError, SourceBatch};
use catalog_core::{Classify, FailureClass, MAX_PAYLOAD_BYTES};
use catalog_store::{IncomingEvent, Position, SourceRef};
use chrono::Utc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio_util::sync::CancellationToken;

/// Why the file source stopped.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("{what} {path}: {error}")]
    File { what: &'static str, path: PathBuf, error: std::io::Error },
    #[error("reading the source: {0}")]
    Read(std::io::Error),
    #[error("applying a batch: {0}")]
    Sink(#[from] SinkError),
}

impl Classify for FileSourceError {
    fn failure_class(&self) -> FailureClass {
        match self {
            FileSourceError::File { .. } | FileSourceError::Read(_) => FailureClass::NeedsOperator,
            FileSourceError::Sink(SinkError::Abandoned) => FailureClass::Retryable,
            FileSourceError::Sink(SinkError::Fatal(_)) => FailureClass::Fatal,
        }
    }
}

fn file_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileSourceError {
    let path = path.to_path_buf();
    move |error| FileSourceError::File { what, path, error }
}

/// A line longer than this is not read into memory whole: its first bytes are kept (enough
/// to be rejected as `payload_too_large` with a recognizable prefix) and the rest skipped.
const MAX_LINE_BYTES: usize = MAX_PAYLOAD_BYTES + 1;

#[derive(Debug, Clone)]
pub struct FileSource {
    /// `None` reads standard input.
    pub path: Option<PathBuf>,
    pub batch_size: usize,
    pub batch_max_wait: Duration,
}

/// One line as read: where it started, where the next one starts, its bytes.
struct Line {
    offset: u64,
    next_offset: u64,
    bytes: Vec<u8>,
}

impl FileSource {
    /// The name checkpoints and journal rows of this source are stored under.
    pub fn source_name(&self) -> Result<String, FileSourceError> {
        match &self.path {
            None => Ok("stdin".to_owned()),
            Some(path) => {
                let canonical = std::fs::canonicalize(path).map_err(file_error("opening", path))?;
                Ok(format!("file:{}", canonical.display()))
            }
        }
    }

    /// Reads to the end (or until shutdown), applying every line; returns once all is durable.
    pub async fn run(self, sink: Arc<dyn BatchSink>, shutdown: CancellationToken) -> Result<(), FileSourceError> {
        let source = self.source_name()?;
        match &self.path {
            None => {
                let reader = BufReader::new(tokio::io::stdin());
                self.read_all(reader, 0, &source, &*sink, &shutdown).await
            }
            Some(path) => {
                let start = self.resume_offset(path, &source, &*sink).await?;
                let mut file = tokio::fs::File::open(path).await.map_err(file_error("opening", path))?;
                file.seek(std::io::SeekFrom::Start(start)).await.map_err(file_error("seeking in", path))?;
                if start > 0 {
                    tracing::info!(%source, offset = start, "resuming after the last applied line");
                }
                self.read_all(BufReader::new(file), start, &source, &*sink, &shutdown).await
            }
        }
    }

    async fn resume_offset(&self, path: &Path, source: &str, sink: &dyn BatchSink) -> Result<u64, FileSourceError> {
        let stored = sink.checkpoint(source, 0).await?.map_or(0, |position| position.offset);
        let length = tokio::fs::metadata(path).await.map_err(file_error("reading", path))?.len();
        let stored = u64::try_from(stored).unwrap_or(0);
        if stored > length {
            // The file was replaced by a shorter one: read it all again. Events already
            // applied are recognized by their ids and counted as duplicates.
            tracing::warn!(%source, stored_offset = stored, length, "file is shorter than the stored position; reading it from the start");
            return Ok(0);
        }
        Ok(stored)
    }

    async fn read_all<R: AsyncBufRead + Unpin>(
        &self,
        mut reader: R,
        mut offset: u64,
        source: &str,
        sink: &dyn BatchSink,
        shutdown: &CancellationToken,
    ) -> Result<(), FileSourceError> {
        let mut pending: Vec<Line> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let read = tokio::select! {
                read = read_line(&mut reader, offset) => read.map_err(FileSourceError::Read)?,
                _ = shutdown.cancelled() => None,
                _ = sleep_until(deadline) => {
                    self.flush(&mut pending, source, sink).await?;
                    deadline = None;
                    continue;
                }
            };
            let Some(line) = read else { break };
            offset = line.next_offset;
            if line.bytes.iter().all(u8::is_ascii_whitespace) {
                // A blank line carries no event; its bytes still count towards the position.
                if let Some(last) = pending.last_mut() {
                    last.next_offset = line.next_offset;
                }
                continue;
            }
            if pending.is_empty() {
                deadline = Some(tokio::time::Instant::now() + self.batch_max_wait);
            }
            pending.push(line);
            if pending.len() >= self.batch_size {
                self.flush(&mut pending, source, sink).await?;
                deadline = None;
            }
        }
        self.flush(&mut pending, source, sink).await
    }

    async fn flush(&self, pending: &mut Vec<Line>, source: &str, sink: &dyn BatchSink) -> Result<(), FileSourceError> {
        let Some(last) = pending.last() else { return Ok(()) };
        // Stdin has no position to resume from: its lines are journaled, but no checkpoint kept.
        let checkpoint = self.path.as_ref().map(|_| Position::at(last.next_offset as i64));
        let received_at = Utc::now();
        // One name for the whole batch, shared by its events.
        let name: Arc<str> = source.into();
        let events = pending
            .drain(..)
            .map(|line| {
                let position = SourceRef { source: Arc::clone(&name), partition: 0, offset: line.offset as i64 };
                IncomingEvent::received(line.bytes, received_at, position, None)
            })
            .collect();
        let batch =
            SourceBatch { source: name, partition: 0, events, checkpoint, last_message_at: None, high_watermark: None };
        Ok(sink.apply(batch).await?)
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Reads one line (without its `\n` or `\r\n`), keeping at most `MAX_LINE_BYTES` of it;
/// `None` at the end of input. A last line without a newline is still a line.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, offset: u64) -> std::io::Result<Option<Line>> {
    let mut bytes = Vec::new();
    let mut consumed: u64 = 0;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            if consumed == 0 {
                return Ok(None);
            }
            break;
        }
        let (chunk, found_newline) = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(position) => (&buffer[..position], true),
            None => (buffer, false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(found_newline);
        reader.consume(used);
        consumed += used as u64;
        if found_newline {
            break;
        }
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    Ok(Some(Line { offset, next_offset: offset + consumed, bytes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut offset = 0;
        let mut out = Vec::new();
        while let Some(line) = read_line(&mut reader, offset).await.expect("in-memory read") {
            offset = line.next_offset;
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
        input.extend_from_slice(b"\nnext\n");
        let read = lines(&input).await;
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].2.len(), MAX_LINE_BYTES);
        assert_eq!(read[0].1, (MAX_LINE_BYTES * 3 + 1) as u64);
        assert_eq!(read[1].2, b"next");
    }
}
