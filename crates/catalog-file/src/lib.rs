//! The NDJSON source: a file (resumable from the position the store keeps, recognized again
//! by its identity: `identity`) or standard input, read line by line without ever cutting a
//! line (`lines`), cut into batches like a Kafka partition and applied through the same sink
//! (`catalog_app::BatchSink`).

mod identity;
mod lines;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog_app::{BatchLimits, BatchSink, PendingBatch, SinkError, SourceBatch};
use catalog_core::{Classify, FailureClass};
use catalog_store::{IncomingEvent, Position, SourceRef};
use chrono::Utc;
use tokio::io::{AsyncBufRead, AsyncSeekExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::identity::{FileCursor, FileIdentity, HEAD_BYTES};
use crate::lines::{Line, LineReader};

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

#[derive(Debug, Clone)]
pub struct FileSource {
    /// `None` reads standard input.
    pub path: Option<PathBuf>,
    pub batch_size: usize,
    pub batch_max_wait: Duration,
    /// Message bytes a pending batch holds at most: a batch is cut once it holds them.
    pub max_bytes_in_flight: usize,
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
                let lines = LineReader::new(BufReader::new(tokio::io::stdin()), 0);
                self.read_all(lines, None, &source, &*sink, &shutdown).await
            }
            Some(path) => {
                let mut file = tokio::fs::File::open(path).await.map_err(file_error("opening", path))?;
                let (start, cursor) = self.resume(&mut file, path, &source, &*sink).await?;
                file.seek(std::io::SeekFrom::Start(start)).await.map_err(file_error("seeking in", path))?;
                if start > 0 {
                    tracing::info!(%source, offset = start, "resuming after the last applied line");
                }
                let lines = LineReader::new(BufReader::new(file), start);
                self.read_all(lines, Some(cursor), &source, &*sink, &shutdown).await
            }
        }
    }

    /// Where to start reading the open `file`, and the cursor its checkpoints carry. The
    /// stored checkpoint's offset counts positions across every file read at this path; its
    /// cursor says which file it was taken on. The same file resumes after its last applied
    /// line; another one (rotated, or truncated and written again) is read from its start.
    async fn resume(
        &self,
        file: &mut tokio::fs::File,
        path: &Path,
        source: &str,
        sink: &dyn BatchSink,
    ) -> Result<(u64, FileCursor), FileSourceError> {
        let stored = sink.checkpoint(source, 0).await?;
        let identity = FileIdentity::of(file, HEAD_BYTES).await.map_err(file_error("reading", path))?;
        let length = file.metadata().await.map_err(file_error("reading", path))?.len();
        let Some(stored) = stored else { return Ok((0, FileCursor { identity, base: 0 })) };
        let position = u64::try_from(stored.offset).unwrap_or(0);
        // A new file's positions start where the last one was left: the checkpoint only moves on.
        let from_the_start = FileCursor { identity, base: position };
        match stored.cursor.as_deref().and_then(FileCursor::parse) {
            Some(cursor) => {
                let current =
                    FileIdentity::of(file, cursor.identity.head_length).await.map_err(file_error("reading", path))?;
                let offset = position.saturating_sub(cursor.base);
                if !cursor.identity.same_file(&current) {
                    tracing::info!(%source, "a different file than the one last read at this path (rotated or rewritten): reading it from the start");
                    Ok((0, from_the_start))
                } else if offset > length {
                    tracing::warn!(%source, stored_offset = offset, length, "file is shorter than the stored position (truncated); reading it from the start");
                    Ok((0, from_the_start))
                } else {
                    Ok((offset, FileCursor { identity, base: cursor.base }))
                }
            }
            // A checkpoint from before files were identified: its offset is a byte offset.
            None if position <= length => Ok((position, FileCursor { identity, base: 0 })),
            None => {
                tracing::warn!(%source, stored_offset = position, length, "file is shorter than the stored position; reading it from the start");
                Ok((0, from_the_start))
            }
        }
    }

    /// Reads every line into batches until the end of input or `shutdown`. The batch timer
    /// may fire while half a line is read: `lines` keeps it for the next read.
    async fn read_all<R: AsyncBufRead + Unpin>(
        &self,
        mut lines: LineReader<R>,
        cursor: Option<FileCursor>,
        source: &str,
        sink: &dyn BatchSink,
        shutdown: &CancellationToken,
    ) -> Result<(), FileSourceError> {
        let limits = BatchLimits::share(self.batch_size, self.max_bytes_in_flight, 1);
        let mut pending: PendingBatch<Line> = PendingBatch::new(limits);
        let mut deadline: Option<tokio::time::Instant> = None;
        sink.partition_started(source, 0);
        loop {
            let read = tokio::select! {
                read = lines.next_line() => read.map_err(FileSourceError::Read)?,
                _ = shutdown.cancelled() => None,
                _ = sleep_until(deadline) => {
                    self.flush(&mut pending, cursor.as_ref(), source, sink).await?;
                    deadline = None;
                    continue;
                }
            };
            let Some(line) = read else { break };
            // Only a line held whole can be told blank: one cut short is too large, whatever
            // its first bytes are.
            if line.length == line.bytes.len() as u64 && line.bytes.iter().all(u8::is_ascii_whitespace) {
                // A blank line carries no event; its bytes still count towards the position.
                if let Some(last) = pending.last_mut() {
                    last.next_offset = line.next_offset;
                }
                continue;
            }
            if let (false, Some(cursor)) = (line.terminated, &cursor) {
                // The file ends in half a line: a writer may still be appending to it. An
                // event already whole is applied (its newline may follow); anything else is
                // left, unjournaled and before the checkpoint, for the next run to read whole
                // (decision 0033).
                if catalog_core::decode(&line.bytes).is_err() {
                    sink.source_error(&unterminated_line(cursor.base, &line));
                    break;
                }
            }
            if pending.is_empty() {
                deadline = Some(tokio::time::Instant::now() + self.batch_max_wait);
                sink.message_waiting(source, 0, Utc::now());
            }
            let n_bytes = line.bytes.len();
            if pending.push(line, n_bytes) {
                self.flush(&mut pending, cursor.as_ref(), source, sink).await?;
                deadline = None;
            }
        }
        self.flush(&mut pending, cursor.as_ref(), source, sink).await?;
        if !shutdown.is_cancelled() {
            // Read to its end and applied: nothing waits on this source any more.
            sink.partition_done(source, 0);
        }
        Ok(())
    }

    async fn flush(
        &self,
        pending: &mut PendingBatch<Line>,
        cursor: Option<&FileCursor>,
        source: &str,
        sink: &dyn BatchSink,
    ) -> Result<(), FileSourceError> {
        let Some(last) = pending.last() else { return Ok(()) };
        let base = cursor.map_or(0, |cursor| cursor.base);
        // Stdin has no position to resume from: its lines are journaled, but no checkpoint kept.
        let checkpoint =
            cursor.map(|cursor| Position { offset: (base + last.next_offset) as i64, cursor: Some(cursor.render()) });
        let received_at = Utc::now();
        // One name for the whole batch, shared by its events.
        let name: Arc<str> = source.into();
        let events = pending
            .take()
            .into_iter()
            .map(|line| {
                let position =
                    SourceRef { source: Arc::clone(&name), partition: 0, offset: (base + line.offset) as i64 };
                IncomingEvent::received_in_part(line.bytes, line.length, received_at, position, None)
            })
            .collect();
        let batch =
            SourceBatch { source: name, partition: 0, events, checkpoint, last_message_at: None, high_watermark: None };
        sink.apply(batch).await?;
        Ok(())
    }
}

/// What the source tells of a file that ends in a line without a newline that is no event.
fn unterminated_line(base: u64, line: &Line) -> catalog_app::SourceError {
    catalog_app::SourceError {
        source: "file",
        operation: "unterminated_line",
        class: FailureClass::Retryable,
        message: format!(
            "the file ends in a line without a newline that is not a valid event ({} bytes at offset {}): \
             left for the next run, which reads it again from its start (a writer may still be appending \
             to it); if the file is complete, end it with a newline and the line is journaled",
            line.length,
            base + line.offset
        ),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
