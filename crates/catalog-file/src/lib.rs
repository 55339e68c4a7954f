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
use crate::identity::{grown, FileCursor, FileIdentity, PreviousFile, HEAD_BYTES};
use crate::lines::{Line, LineReader};
use crate::rotation::Onward;

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
                let (start, cursor) = match self.resume(&mut file, path, &source, &*sink).await? {
                    Resume::Here(start, cursor) => (start, cursor),
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
                        (0, continuing(identity, finished, &source, &*sink).await?)
                    }
                };
                file.seek(std::io::SeekFrom::Start(start)).await.map_err(file_error("seeking in", path))?;
                if start > 0 {
                    tracing::info!(%source, offset = start, "resuming after the last applied line");
                }
                let mut tracked = Tracked::new(&file, cursor, path).await?;
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
            return Ok(Resume::Here(0, FileCursor { identity, base: 0, born: None, previous: None }));
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
                    Ok(Resume::Here(0, from_the_start))
                } else {
                    tracing::info!(%source, "a different file than the one last read at this path: the last one was rotated away");
                    Ok(Resume::Rotated { previous: cursor, offset })
                }
            }
            // A checkpoint from before files were identified: its offset is a byte offset.
            None if position <= length => {
                Ok(Resume::Here(position, FileCursor { identity, base: 0, born: None, previous: None }))
            }
            None => {
                sink.source_error(&rewritten_in_place(source, position, length));
                Ok(Resume::Here(0, from_the_start))
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
        // Where the run ends when it stops before blanks the file ends in: not past them.
        let mut ends_before: Option<u64> = None;
        loop {
            let read = if let Some(until) = draining {
                match drain_line(&mut lines, until).await.map_err(FileSourceError::Read)? {
                    Drained::Line(line) => Some(line),
                    Drained::Done => None,
                    Drained::StillSending => {
                        sink.source_error(&still_sending(lines.offset()));
                        None
                    }
                }
            } else {
                tokio::select! {
                    read = lines.next_line() => read.map_err(FileSourceError::Read)?,
                    _ = shutdown.cancelled(), if cursor.is_none() => {
                        draining = Some(tokio::time::Instant::now() + DRAIN_AT_MOST);
                        continue;
                    }
                    _ = shutdown.cancelled(), if cursor.is_some() => None,
                    _ = sleep_until(deadline) => {
                        self.flush(&mut pending, cursor.as_deref_mut(), source, sink).await?;
                        deadline = None;
                        continue;
                    }
                }
            };
            let Some(line) = read else { break };
            // Only a line held whole can be told blank: one cut short is too large, whatever
            // its first bytes are.
            if line.length == line.bytes.len() as u64 && line.bytes.iter().all(ends::is_json_blank) {
                if !line.terminated && cursor.is_some() {
                    // Blanks a file ends in without a newline: nothing to apply, and maybe the
                    // start of a line a writer is still writing. The run ends before them, its
                    // checkpoint too, so the next one reads them with whatever follows; said
                    // nowhere (a finished file may end so, rotated or not).
                    ends_before = Some(line.offset);
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
        self.flush(&mut pending, cursor, source, sink).await?;
        if draining.is_some() && lines.held() > 0 {
            sink.source_error(&cut_at_shutdown(lines.offset(), lines.held()));
        }
        let read_to = ends_before.unwrap_or(lines.offset());
        if shutdown.is_cancelled() {
            return Ok((Stopped::Shutdown, read_to));
        }
        // Read to its end and applied: nothing waits on this source any more.
        sink.partition_done(source, 0);
        Ok((stopped, read_to))
    }

    async fn flush(
        &self,
        pending: &mut PendingBatch<Line>,
        cursor: Option<&mut Tracked>,
        source: &str,
        sink: &dyn BatchSink,
    ) -> Result<(), FileSourceError> {
        let Some(last) = pending.last() else { return Ok(()) };
        let read_to = last.next_offset;
        let tracked = cursor.map(|tracked| {
            tracked.grow(read_to);
            &*tracked
        });
        // Stdin has no position to resume from: its lines are journaled, but no checkpoint kept.
        let checkpoint = tracked.map(|tracked| tracked.checkpoint(read_to));
        let received_at = Utc::now();
        // One name for the whole batch, shared by its events.
        let name: Arc<str> = source.into();
        let events = pending
            .take()
            .into_iter()
            .map(|line| {
                let offset = tracked.map_or(line.offset, |tracked| tracked.position(line.offset));
                let position = SourceRef { source: Arc::clone(&name), partition: 0, offset: offset as i64 };
                IncomingEvent::received_in_part(line.bytes, line.length, received_at, position, None)
            })
            .collect();
        let batch =
            SourceBatch { source: name, partition: 0, events, checkpoint, last_message_at: None, high_watermark: None };
        sink.apply(batch).await?;
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
    sink.apply(SourceBatch {
        source: source.into(),
        partition: 0,
        events: Vec::new(),
        checkpoint: Some(stored),
        last_message_at: None,
        high_watermark: None,
    })
    .await?;
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

/// The cursor of a file being read, and a handle on it that reads its first bytes without
/// moving the reader: a file opened while it held fewer than [`HEAD_BYTES`] bytes is known by
/// more of them as they are read, so that one rewritten in place later is not taken for it.
struct Tracked {
    cursor: FileCursor,
    head: Option<std::fs::File>,
    /// Set while the file read is the cursor's previous one, appended to after it was read.
    appended: Option<Appended>,
}

/// Lines appended to the cursor's previous file, read from its byte `from` (where it was read
/// to) at the positions from `start` (the stored checkpoint) on.
#[derive(Debug, Clone, Copy)]
struct Appended {
    from: u64,
    start: u64,
}

impl Tracked {
    async fn new(file: &tokio::fs::File, mut cursor: FileCursor, path: &Path) -> Result<Self, FileSourceError> {
        let head = match cursor.identity.head_length < HEAD_BYTES {
            true => Some(file.try_clone().await.map_err(file_error("reading", path))?.into_std().await),
            false => None,
        };
        if cursor.born.is_none() {
            let metadata = file.metadata().await.map_err(file_error("reading", path))?;
            cursor.born = identity::birth_nanos(&metadata);
        }
        Ok(Self { cursor, head, appended: None })
    }

    /// Reading what was appended to `cursor`'s previous file since it was read to `from`, the
    /// stored checkpoint being `start`.
    fn appended(cursor: FileCursor, from: u64, start: u64) -> Self {
        Self { cursor, head: None, appended: Some(Appended { from, start }) }
    }

    /// The position of the file's byte `offset` among every file read at the path.
    fn position(&self, offset: u64) -> u64 {
        match self.appended {
            None => self.cursor.base + offset,
            Some(Appended { from, start }) => start + offset.saturating_sub(from),
        }
    }

    /// The checkpoint once the file is applied up to its byte `read_to`. Reading the previous
    /// file's appended lines, the cursor stays on the checkpoint's own file, whose `base` moves
    /// on by what was read (its own offset, the position less its base, stays), and the
    /// previous file's `read_to` with it.
    fn checkpoint(&self, read_to: u64) -> Position {
        let cursor = match self.appended {
            None => self.cursor,
            Some(Appended { from, .. }) => FileCursor {
                base: self.cursor.base + read_to.saturating_sub(from),
                previous: self.cursor.previous.map(|previous| PreviousFile { read_to, ..previous }),
                ..self.cursor
            },
        };
        Position { offset: self.position(read_to) as i64, cursor: Some(cursor.render()) }
    }

    /// Takes the file's first bytes up to `read_to` (at most [`HEAD_BYTES`]) into its identity,
    /// where it holds fewer; a failed read keeps the identity it has.
    fn grow(&mut self, read_to: u64) {
        let Some(file) = &self.head else { return };
        let wanted = read_to.min(HEAD_BYTES);
        if wanted <= self.cursor.identity.head_length {
            return;
        }
        match grown(file, &self.cursor.identity, wanted) {
            Ok(identity) => self.cursor.identity = identity,
            Err(error) => {
                tracing::warn!(%error, "reading the file's first bytes again failed; its identity keeps fewer")
            }
        }
        if self.cursor.identity.head_length >= HEAD_BYTES {
            self.head = None;
        }
    }
}

/// Where a run starts on the file at its path.
enum Resume {
    /// At this offset of it, with this cursor.
    Here(u64, FileCursor),
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
