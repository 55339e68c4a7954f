//! The NDJSON source: a file (resumable from the position the store keeps, recognized again
//! by its identity: `identity`) or standard input, read line by line without ever cutting a
//! line (`lines`), cut into batches like a Kafka partition and applied through the same sink
//! (`catalog_app::BatchSink`).

mod compressed;
mod ends;
mod identity;
mod lines;
mod rotation;
#[cfg(test)]
mod stdin_tests;
mod text;
mod tracked;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog_app::{BatchLimits, BatchSink, PendingBatch, SinkError, SourceBatch};
use catalog_core::{Classify, FailureClass};
use catalog_store::{IncomingEvent, Position, SourceRef};
use chrono::Utc;
use tokio::io::{AsyncBufRead, AsyncSeekExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::ends::{cut_at_shutdown, decided, drain_line, still_sending, unterminated_line, Drained, DRAIN_AT_MOST};
use crate::identity::{FileCursor, FileIdentity, PreviousFile, HEAD_BYTES};
use crate::lines::{Line, LineReader};
use crate::rotation::Onward;
use crate::tracked::{Checkpointed, Tracked};

/// Why the file source stopped.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("{what} {path}: {error}")]
    File { what: &'static str, path: PathBuf, error: std::io::Error },
    /// Reading failed at byte `offset`, every line before it applied; `cut` bytes of a line
    /// had come from standard input there (a file's line is read again by its next run).
    #[error("reading the source at byte {offset}, every line before it applied{}: {error}", cut_line(*.cut))]
    Read { offset: u64, cut: u64, error: std::io::Error },
    /// The file at the path is no NDJSON text (compressed, UTF-16): nothing of it is read.
    #[error("{path} is {what}, not NDJSON text in UTF-8: nothing of it was read; {advice}")]
    NotText { path: PathBuf, what: &'static str, advice: String },
    #[error("applying a batch: {0}")]
    Sink(#[from] SinkError),
}

impl Classify for FileSourceError {
    fn failure_class(&self) -> FailureClass {
        match self {
            FileSourceError::File { .. } | FileSourceError::Read { .. } | FileSourceError::NotText { .. } => {
                FailureClass::NeedsOperator
            }
            FileSourceError::Sink(SinkError::Abandoned) => FailureClass::Retryable,
            FileSourceError::Sink(SinkError::Fatal(_)) => FailureClass::Fatal,
        }
    }
}

/// What a read error says of the line standard input had begun to deliver.
fn cut_line(cut: u64) -> String {
    match cut {
        0 => String::new(),
        cut => format!(
            "; the {cut} bytes of the line after it that standard input had delivered are not journaled: send that \
             line again"
        ),
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
    /// The name checkpoints and journal rows of this source are stored under: the path's
    /// directory resolved (`..`, links to directories) and its own name as given, so a symbolic
    /// link to the feed is its own source, not the file it points at now (decision 0060).
    pub fn source_name(&self) -> Result<String, FileSourceError> {
        match &self.path {
            None => Ok("stdin".to_owned()),
            Some(path) => Ok(format!("file:{}", named_path(path)?.display())),
        }
    }

    /// Reads to the end (or until shutdown), applying every line; returns once all is durable.
    pub async fn run(self, sink: Arc<dyn BatchSink>, shutdown: CancellationToken) -> Result<(), FileSourceError> {
        let source = self.source_name()?;
        match &self.path {
            None => {
                let lines = LineReader::new(BufReader::new(tokio::io::stdin()), 0);
                self.read_all(lines, None, &source, &*sink, &shutdown).await.map(drop)
            }
            Some(path) => {
                adopt_link_target_checkpoint(path, &source, &*sink).await?;
                let Some(read_whole) = self.catch_up(path, &source, &*sink, &shutdown).await? else {
                    return Ok(());
                };
                let mut file = tokio::fs::File::open(path).await.map_err(file_error("opening", path))?;
                text::refuse_unless_text(&mut file, path).await?;
                let (start, cursor, checkpointed) = match self.resume(&mut file, path, &source, &*sink).await? {
                    Resume::Here(start, cursor) => (start, cursor, Checkpointed::Yes),
                    Resume::Unknown(start, cursor) => (start, cursor, Checkpointed::No),
                    Resume::Rotated { previous, offset } => {
                        let identity =
                            FileIdentity::of(&mut file, HEAD_BYTES).await.map_err(file_error("reading", path))?;
                        let finished = match self
                            .finish_rotated(path, previous, offset, &identity, &read_whole, &source, &*sink, &shutdown)
                            .await?
                        {
                            Onward::Go(finished) => finished,
                            Onward::Stop => return Ok(()),
                        };
                        (0, continuing(identity, finished, &source, &*sink).await?, Checkpointed::No)
                    }
                };
                file.seek(std::io::SeekFrom::Start(start)).await.map_err(file_error("seeking in", path))?;
                if start > 0 {
                    tracing::info!(%source, offset = start, "resuming after the last applied line");
                }
                let mut tracked = Tracked::new(&file, cursor, path, checkpointed).await?;
                let lines = LineReader::new(BufReader::new(file), start);
                self.read_all(lines, Some(&mut tracked), &source, &*sink, &shutdown).await.map(drop)
            }
        }
    }

    /// Where to start reading the open `file`, and the cursor its checkpoints carry. The
    /// stored checkpoint's offset counts positions across every file read at this path; its
    /// cursor says which file it was taken on. The same file resumes after its last applied
    /// line; one truncated and written again is read from its start; another one means the
    /// checkpoint's file was rotated away.
    async fn resume(
        &self,
        file: &mut tokio::fs::File,
        path: &Path,
        source: &str,
        sink: &dyn BatchSink,
    ) -> Result<Resume, FileSourceError> {
        let stored = sink.checkpoint(source, 0).await?;
        let identity = FileIdentity::of(file, HEAD_BYTES).await.map_err(file_error("reading", path))?;
        let metadata = file.metadata().await.map_err(file_error("reading", path))?;
        let length = metadata.len();
        let Some(stored) = stored else {
            return Ok(Resume::Unknown(0, FileCursor { identity, base: 0, born: None, previous: None }));
        };
        let position = u64::try_from(stored.offset).unwrap_or(0);
        let cursor = stored.cursor.as_deref().and_then(FileCursor::parse);
        // A new file's positions start where the last one was left: the checkpoint only moves on.
        let from_the_start =
            FileCursor { identity, base: position, born: None, previous: cursor.and_then(|cursor| cursor.previous) };
        match cursor {
            Some(cursor) => {
                let current =
                    FileIdentity::of(file, cursor.identity.head_length).await.map_err(file_error("reading", path))?;
                let offset = position.saturating_sub(cursor.base);
                // Born since the checkpoint's file was: another file that took its inode (the
                // old one deleted), not the same one rewritten.
                let reborn = identity::born_another_time(cursor.born, &metadata);
                let same_inode =
                    (cursor.identity.device, cursor.identity.inode) == (current.device, current.inode) && !reborn;
                if cursor.identity.same_file(&current) && !reborn && offset <= length {
                    Ok(Resume::Here(offset, FileCursor { identity, ..cursor }))
                } else if same_inode {
                    sink.source_error(&rewritten_in_place(source, offset, length));
                    Ok(Resume::Unknown(0, from_the_start))
                } else {
                    tracing::info!(%source, "a different file than the one last read at this path: the last one was rotated away");
                    Ok(Resume::Rotated { previous: cursor, offset })
                }
            }
            // A checkpoint from before files were identified: its offset is a byte offset.
            None if position <= length => {
                Ok(Resume::Unknown(position, FileCursor { identity, base: 0, born: None, previous: None }))
            }
            None => {
                sink.source_error(&rewritten_in_place(source, position, length));
                Ok(Resume::Unknown(0, from_the_start))
            }
        }
    }

    /// Reads every line into batches until the end of input or `shutdown`, and says why it
    /// stopped and the byte offset it read to. The batch timer may fire while half a line is
    /// read: `lines` keeps it for the next read.
    async fn read_all<R: AsyncBufRead + Unpin>(
        &self,
        mut lines: LineReader<R>,
        mut cursor: Option<&mut Tracked>,
        source: &str,
        sink: &dyn BatchSink,
        shutdown: &CancellationToken,
    ) -> Result<(Stopped, u64), FileSourceError> {
        let limits = BatchLimits::share(self.batch_size, self.max_bytes_in_flight, 1);
        let mut pending: PendingBatch<Line> = PendingBatch::new(limits);
        let mut deadline: Option<tokio::time::Instant> = None;
        sink.partition_started(source, 0);
        let mut stopped = Stopped::End;
        // Standard input at shutdown: the lines its pipe delivered already are read and
        // applied, until it has nothing at hand, for `DRAIN_AT_MOST` at most. It has no
        // checkpoint to read them again from, and the producer took them as delivered. A file
        // stops at once: its next run reads on.
        let mut draining: Option<tokio::time::Instant> = None;
        // Where the run ends when it stops before the last line it read (blanks the file ends
        // in, half a line): not past it.
        let mut ends_at: Option<u64> = None;
        loop {
            let read = if let Some(until) = draining {
                match drain_line(&mut lines, until).await {
                    Ok(Drained::Line(line)) => Ok(Some(line)),
                    Ok(Drained::Done) => Ok(None),
                    Ok(Drained::StillSending) => {
                        sink.source_error(&still_sending(lines.offset()));
                        Ok(None)
                    }
                    Err(error) => Err(error),
                }
            } else {
                tokio::select! {
                    read = lines.next_line() => read,
                    _ = shutdown.cancelled(), if cursor.is_none() => {
                        draining = Some(tokio::time::Instant::now() + DRAIN_AT_MOST);
                        continue;
                    }
                    _ = shutdown.cancelled(), if cursor.is_some() => Ok(None),
                    _ = sleep_until(deadline) => {
                        self.flush(&mut pending, cursor.as_deref_mut(), source, sink).await?;
                        deadline = None;
                        continue;
                    }
                }
            };
            let line = match read {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(error) => return Err(self.read_failed(error, &lines, &mut pending, cursor, source, sink).await),
            };
            // Only a line held whole can be told blank: one cut short is too large, whatever
            // its first bytes are.
            if line.length == line.bytes.len() as u64 && line.bytes.iter().all(ends::is_json_blank) {
                if !line.terminated && cursor.is_some() {
                    // Blanks a file ends in without a newline: nothing to apply, and maybe the
                    // start of a line a writer is still writing. The run ends before them, its
                    // checkpoint too, so the next one reads them with whatever follows; said
                    // nowhere (a finished file may end so, rotated or not).
                    ends_at = Some(line.offset);
                    break;
                }
                // A blank line carries no event; its bytes still count towards the position.
                if let Some(last) = pending.last_mut() {
                    last.next_offset = line.next_offset;
                }
                continue;
            }
            if let (false, Some(tracked)) = (line.terminated, cursor.as_deref()) {
                // The file ends in half a line: a writer may still be appending to it. An
                // event already whole is applied (its newline may follow), and a whole JSON
                // object that is no event is journaled as the rejection it is (nothing
                // appended can make it another); anything else is left, unjournaled and before
                // the checkpoint, for the next run to read whole (decision 0033).
                if catalog_core::decode(&line.bytes).is_err() && !decided(&line) {
                    sink.source_error(&unterminated_line(tracked.position(line.offset), &line));
                    stopped = Stopped::HalfALine;
                    ends_at = Some(line.offset);
                    break;
                }
            }
            if pending.is_empty() {
                deadline = Some(tokio::time::Instant::now() + self.batch_max_wait);
                sink.message_waiting(source, 0, Utc::now());
            }
            let n_bytes = line.bytes.len();
            if pending.push(line, n_bytes) {
                self.flush(&mut pending, cursor.as_deref_mut(), source, sink).await?;
                deadline = None;
            }
        }
        let read_to = ends_at.unwrap_or(lines.offset());
        self.settle(&mut pending, cursor, read_to, source, sink).await?;
        if draining.is_some() && lines.held() > 0 {
            sink.source_error(&cut_at_shutdown(lines.offset(), lines.held()));
        }
        if shutdown.is_cancelled() {
            return Ok((Stopped::Shutdown, read_to));
        }
        // Read to its end and applied: nothing waits on this source any more.
        sink.partition_done(source, 0);
        Ok((stopped, read_to))
    }

    /// Reading failed: the lines read before are applied first (standard input cannot be read
    /// again, and a file's next run need not), then the error says where reading stopped and
    /// how much of a line standard input had delivered there, lost with it.
    async fn read_failed<R: AsyncBufRead + Unpin>(
        &self,
        error: std::io::Error,
        lines: &LineReader<R>,
        pending: &mut PendingBatch<Line>,
        cursor: Option<&mut Tracked>,
        source: &str,
        sink: &dyn BatchSink,
    ) -> FileSourceError {
        let offset = lines.offset();
        // A file's line is read again, whole, by its next run.
        let cut = if cursor.is_none() { lines.held() } else { 0 };
        if let Err(failed) = self.settle(pending, cursor, offset, source, sink).await {
            tracing::error!(%error, offset, "reading the source failed, and the lines read before it could not be applied");
            return failed;
        }
        FileSourceError::Read { offset, cut, error }
    }

    /// Makes the run durable where it stops, at the file's byte `reached`: the lines pending
    /// are applied, and a file the store holds no checkpoint on yet gets one there (a run that
    /// read it to no line, empty, blank or half a line, applied no batch). Without it the next
    /// run knew no file at the path: once that one was rotated away, it read the new file as
    /// the first, and never the lines the rotated one had gained.
    async fn settle(
        &self,
        pending: &mut PendingBatch<Line>,
        cursor: Option<&mut Tracked>,
        reached: u64,
        source: &str,
        sink: &dyn BatchSink,
    ) -> Result<(), FileSourceError> {
        let Some(tracked) = cursor else { return self.flush(pending, None, source, sink).await };
        self.flush(pending, Some(&mut *tracked), source, sink).await?;
        if tracked.checkpointed == Checkpointed::No {
            tracked.grow(reached);
            store_checkpoint(source, tracked.checkpoint(reached), sink).await?;
            tracked.checkpointed = Checkpointed::Yes;
        }
        Ok(())
    }

    async fn flush(
        &self,
        pending: &mut PendingBatch<Line>,
        mut cursor: Option<&mut Tracked>,
        source: &str,
        sink: &dyn BatchSink,
    ) -> Result<(), FileSourceError> {
        let Some(last) = pending.last() else { return Ok(()) };
        let read_to = last.next_offset;
        if let Some(tracked) = cursor.as_deref_mut() {
            tracked.grow(read_to);
        }
        let tracked = cursor.as_deref();
        // Stdin has no position to resume from: its lines are journaled, but no checkpoint kept.
        let checkpoint = tracked.map(|tracked| tracked.checkpoint(read_to));
        let received_at = Utc::now();
        // One name for the whole batch, shared by its events.
        let name: Arc<str> = source.into();
        let lines = pending.take();
        let from = lines.first().map_or(read_to, |line| line.offset);
        let events = lines
            .into_iter()
            .map(|line| {
                let offset = tracked.map_or(line.offset, |tracked| tracked.position(line.offset));
                let position = SourceRef { source: Arc::clone(&name), partition: 0, offset: offset as i64 };
                IncomingEvent::received_in_part(line.bytes, line.length, received_at, position, None)
            })
            .collect();
        let batch =
            SourceBatch { source: name, partition: 0, events, checkpoint, last_message_at: None, high_watermark: None };
        if let Err(error) = sink.apply(batch).await {
            // Standard input cannot be read again: what it delivered from the batch on is lost
            // to this run, said so, where a store failing at shutdown dropped it unsaid.
            if cursor.is_none() {
                sink.source_error(&ends::not_applied(from, &error));
            }
            return Err(error.into());
        }
        if let Some(tracked) = cursor {
            tracked.checkpointed = Checkpointed::Yes;
        }
        Ok(())
    }
}

/// `path` with its directory resolved and its own name kept: a symbolic link stays itself.
/// A path that does not name a file (`.`, `/`) is resolved whole. Fails, saying so, when
/// nothing is at the path.
fn named_path(path: &Path) -> Result<PathBuf, FileSourceError> {
    std::fs::symlink_metadata(path).map_err(file_error("opening", path))?;
    let (Some(name), Some(directory)) = (path.file_name(), path.parent()) else {
        return std::fs::canonicalize(path).map_err(file_error("opening", path));
    };
    let directory = if directory.as_os_str().is_empty() { Path::new(".") } else { directory };
    Ok(std::fs::canonicalize(directory).map_err(file_error("opening", path))?.join(name))
}

/// A source read through a symbolic link was named after the file the link pointed at before
/// decision 0060: a link's first run under its own name takes that file's checkpoint, so it
/// resumes there (and, the link repointed since, finishes that file first) instead of
/// reading the file it points at now from its start.
async fn adopt_link_target_checkpoint(path: &Path, source: &str, sink: &dyn BatchSink) -> Result<(), FileSourceError> {
    let is_link = std::fs::symlink_metadata(path).map_err(file_error("opening", path))?.file_type().is_symlink();
    if !is_link || sink.checkpoint(source, 0).await?.is_some() {
        return Ok(());
    }
    let target = std::fs::canonicalize(path).map_err(file_error("opening", path))?;
    let named_after_target = format!("file:{}", target.display());
    let Some(stored) = sink.checkpoint(&named_after_target, 0).await? else { return Ok(()) };
    tracing::info!(%source, from = %named_after_target, offset = stored.offset, "the link's first run under its own name: resuming from its target's checkpoint");
    store_checkpoint(source, stored, sink).await
}

/// Stores `checkpoint` for `source` alone, in a batch of no events: durable as any other.
pub(crate) async fn store_checkpoint(
    source: &str,
    checkpoint: Position,
    sink: &dyn BatchSink,
) -> Result<(), FileSourceError> {
    let batch = SourceBatch {
        source: source.into(),
        partition: 0,
        events: Vec::new(),
        checkpoint: Some(checkpoint),
        last_message_at: None,
        high_watermark: None,
    };
    sink.apply(batch).await?;
    Ok(())
}

/// The cursor of a new file read at the path from its start: its positions start where the
/// files before it were left (the stored checkpoint), so the checkpoint only moves on.
/// `previous` is the file read to its end just before it, rotated away from the path.
async fn continuing(
    identity: FileIdentity,
    previous: Option<PreviousFile>,
    source: &str,
    sink: &dyn BatchSink,
) -> Result<FileCursor, FileSourceError> {
    let stored = sink.checkpoint(source, 0).await?;
    let base = stored.map_or(0, |stored| u64::try_from(stored.offset).unwrap_or(0));
    Ok(FileCursor { identity, base, born: None, previous })
}

/// Where a run starts on the file at its path.
enum Resume {
    /// At this offset of it, with this cursor: the stored checkpoint is on it.
    Here(u64, FileCursor),
    /// At this offset of it, with this cursor, though no stored checkpoint names it: there is
    /// none yet, or it is the checkpoint's file written again in place, or the checkpoint was
    /// written before files were identified.
    Unknown(u64, FileCursor),
    /// It is another file than the checkpoint's, which was rotated away: that one is read to
    /// its end first, from `offset`, then this one from its start.
    Rotated { previous: FileCursor, offset: u64 },
}

/// Why reading a file stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    End,
    /// At half a line, left for the next run (decision 0033).
    HalfALine,
    Shutdown,
}

/// What the source tells when the file at the path is the checkpoint's file truncated, or
/// written again in place (same inode, other first bytes): it is read from its start, and
/// whatever the old content held past the checkpoint was not read.
fn rewritten_in_place(source: &str, offset: u64, length: u64) -> catalog_app::SourceError {
    catalog_app::SourceError {
        source: "file",
        operation: "file_rewritten",
        class: FailureClass::NeedsOperator,
        message: format!(
            "{source}: the file was truncated or written again in place (the stored position {offset} is past its \
             {length} bytes, or its first bytes changed): it is read from its start; lines its old content held \
             after that position, if any, were not read. Write a new file and rename it into place (or rotate by \
             renaming) so the worker finishes the old one"
        ),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
