//! Files rotated away from the path: the one the checkpoint was taken on is finished first,
//! then every file rotated after it (decisions 0039, 0048); and what a writer appended to the last
//! one after a run had read it to its end is read before anything else (decision 0052).

use std::path::{Path, PathBuf};

use catalog_app::BatchSink;
use catalog_core::FailureClass;
use catalog_store::Position;
use tokio::io::{AsyncSeekExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::identity::{find_in, rotated_after, FileCursor, FileIdentity, PreviousFile, RotatedFrom, HEAD_BYTES};
use crate::lines::LineReader;
use crate::tracked::{Checkpointed, Tracked};
use crate::{continuing, file_error, store_checkpoint, FileSource, FileSourceError, Stopped};

impl FileSource {
    /// Reads what a writer appended to the file last rotated away from `path` after a run had
    /// read it to its end (the writer had not reopened the path yet), before anything else:
    /// that file is the stored cursor's `previous` (decision 0052). Its new lines take the
    /// positions after the checkpoint, and the checkpoint's own file moves its `base` on by as
    /// many, so every checkpoint taken meanwhile is one a run resumes from. A previous file
    /// gone from the directory is forgotten: it was read whole. Returns whether the run goes
    /// on (`None`: not when that file ends in half a line, decision 0033, nor at shutdown),
    /// with the gzip copies of a previous file gone (`delaycompress`) that hold it as it was
    /// read to its end: the rotations after the checkpoint's file do not report them unread.
    pub(crate) async fn catch_up(
        &self,
        path: &Path,
        source: &str,
        sink: &dyn BatchSink,
        shutdown: &CancellationToken,
    ) -> Result<Option<Vec<PathBuf>>, FileSourceError> {
        let Some(stored) = sink.checkpoint(source, 0).await? else { return Ok(Some(Vec::new())) };
        let Some(cursor) = stored.cursor.as_deref().and_then(FileCursor::parse) else { return Ok(Some(Vec::new())) };
        let Some(previous) = cursor.previous else { return Ok(Some(Vec::new())) };
        let directory = directory_of(path);
        let rotated = match find_rotated(path, &previous.identity, previous.born).await {
            Ok(Some(rotated)) => rotated,
            Ok(None) => {
                tracing::debug!(%source, "the file rotated away before this one is gone from its directory");
                let read_whole =
                    crate::compressed::copies_read_whole(directory, path.file_name().unwrap_or_default(), previous)
                        .await;
                let forgotten = FileCursor { previous: None, ..cursor };
                let checkpoint = Position { offset: stored.offset, cursor: Some(forgotten.render()) };
                store_checkpoint(source, checkpoint, sink).await?;
                return Ok(Some(read_whole));
            }
            Err(error) => {
                // Looked for again by the next run.
                sink.source_error(&rotations_unread(source, directory, &[], Some(error)));
                return Ok(Some(Vec::new()));
            }
        };
        // Moved back to the path: the run reads it there.
        if rotated.file_name() == path.file_name() {
            return Ok(Some(Vec::new()));
        }
        let mut file = tokio::fs::File::open(&rotated).await.map_err(file_error("opening", &rotated))?;
        let length = file.metadata().await.map_err(file_error("reading", &rotated))?.len();
        if length <= previous.read_to {
            return Ok(Some(Vec::new()));
        }
        tracing::info!(
            %source,
            rotated = %rotated.display(),
            offset = previous.read_to,
            "lines were appended to the file rotated away from this path after it was read: reading them first"
        );
        let start = u64::try_from(stored.offset).unwrap_or(0);
        let mut tracked = Tracked::appended(cursor, previous.read_to, start);
        file.seek(std::io::SeekFrom::Start(previous.read_to)).await.map_err(file_error("seeking in", &rotated))?;
        let lines = LineReader::new(BufReader::new(file), previous.read_to);
        let (stopped, _) = self.read_all(lines, Some(&mut tracked), source, sink, shutdown).await?;
        Ok((stopped == Stopped::End).then(Vec::new))
    }

    /// Reads the rest of the file the checkpoint was taken on, rotated away from `path`, when
    /// it is still in its directory (a writer may have finished its last line there); says so
    /// when it is not, since what it held past the checkpoint cannot be read (decision 0039).
    /// Returns whether the run goes on to the file at `path`, with the last file read to its
    /// end before it: not when a rotated file ends in half a line (read again, whole, by the
    /// next run) nor at shutdown. `read_whole`: compressed rotations known read (`catch_up`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn finish_rotated(
        &self,
        path: &Path,
        previous: FileCursor,
        offset: u64,
        current: &FileIdentity,
        read_whole: &[PathBuf],
        source: &str,
        sink: &dyn BatchSink,
        shutdown: &CancellationToken,
    ) -> Result<Onward, FileSourceError> {
        let directory = directory_of(path);
        let rotated = match find_rotated(path, &previous.identity, previous.born).await {
            Ok(Some(rotated)) => rotated,
            Ok(None) => {
                sink.source_error(&rotated_file_gone(source, directory, previous.base + offset, None));
                // Gone (deleted, or compressed by a rotation since): the files rotated after
                // it still hold lines no other file does, found by its recorded birth time.
                let Some(from) = RotatedFrom::recorded(&previous) else { return Ok(Onward::Go(None)) };
                return self.read_rotations(path, from, None, current, read_whole, source, sink, shutdown).await;
            }
            Err(error) => {
                sink.source_error(&rotated_file_gone(source, directory, previous.base + offset, Some(error)));
                return Ok(Onward::Go(None));
            }
        };
        let mut file = tokio::fs::File::open(&rotated).await.map_err(file_error("opening", &rotated))?;
        let length = file.metadata().await.map_err(file_error("reading", &rotated))?.len();
        if offset > length {
            // Cut short since (a clean-up truncating old files): what it held past its length
            // is gone. The files rotated after it still hold lines no other file does.
            sink.source_error(&rotated_file_cut(source, &rotated, previous.base + offset, length));
            let from = match RotatedFrom::at(&rotated).await {
                Ok(Some(from)) => from,
                Ok(None) => return Ok(Onward::Go(None)),
                Err(error) => {
                    sink.source_error(&rotations_unread(source, directory, &[], Some(error)));
                    return Ok(Onward::Go(None));
                }
            };
            return self.read_rotations(path, from, None, current, read_whole, source, sink, shutdown).await;
        }
        tracing::info!(%source, rotated = %rotated.display(), offset, "the file last read at this path was rotated: reading the rest of it first");
        let mut tracked = Tracked::new(&file, previous, &rotated, Checkpointed::Yes).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(file_error("seeking in", &rotated))?;
        let lines = LineReader::new(BufReader::new(file), offset);
        let (stopped, read_to) = self.read_all(lines, Some(&mut tracked), source, sink, shutdown).await?;
        if stopped != Stopped::End {
            return Ok(Onward::Stop);
        }
        let finished = PreviousFile { identity: tracked.cursor.identity, read_to, born: tracked.cursor.born };
        // Rotated more than once since: the files between hold lines no other file does.
        let from = match RotatedFrom::at(&rotated).await {
            Ok(Some(from)) => from,
            Ok(None) => return Ok(Onward::Go(Some(finished))),
            Err(error) => {
                sink.source_error(&rotations_unread(source, directory, &[], Some(error)));
                return Ok(Onward::Go(Some(finished)));
            }
        };
        self.read_rotations(path, from, Some(finished), current, read_whole, source, sink, shutdown).await
    }

    /// Reads each file rotated from `path` after `from` and before `current` (the file at the
    /// path), oldest first, reporting those compressed but those known read (`read_whole`);
    /// `finished` is the last file read to its end before them. Returns whether the run goes
    /// on, with the last one it read.
    #[allow(clippy::too_many_arguments)]
    async fn read_rotations(
        &self,
        path: &Path,
        from: RotatedFrom,
        mut finished: Option<PreviousFile>,
        current: &FileIdentity,
        read_whole: &[PathBuf],
        source: &str,
        sink: &dyn BatchSink,
        shutdown: &CancellationToken,
    ) -> Result<Onward, FileSourceError> {
        let directory = directory_of(path);
        let name = path.file_name().unwrap_or_default();
        let rotations = match rotated_after(directory, name, from, current).await {
            Ok(rotations) => rotations,
            Err(error) => {
                sink.source_error(&rotations_unread(source, directory, &[], Some(error)));
                return Ok(Onward::Go(finished));
            }
        };
        let (read, unread): (Vec<PathBuf>, Vec<PathBuf>) =
            rotations.compressed.into_iter().partition(|compressed| read_whole.contains(compressed));
        for compressed in read {
            tracing::info!(%source, compressed = %compressed.display(), "a rotation compressed after it was read whole (delaycompress): nothing of it is unread");
        }
        if !unread.is_empty() {
            sink.source_error(&rotations_unread(source, directory, &unread, None));
        }
        for between in rotations.plain {
            tracing::info!(%source, rotated = %between.display(), "rotated again since the last run: reading this file whole before the one at the path");
            let mut file = tokio::fs::File::open(&between).await.map_err(file_error("opening", &between))?;
            // Checked as the file at the path is (decision 0062): a compressed or UTF-16 file
            // refused there, then rotated away under a plain name (`delaycompress`), was read
            // as lines here, each rejected as garbage, and the checkpoint passed it.
            crate::text::refuse_unless_text(&mut file, &between).await?;
            let identity = FileIdentity::of(&mut file, HEAD_BYTES).await.map_err(file_error("reading", &between))?;
            let cursor = continuing(identity, None, source, sink).await?;
            let mut tracked = Tracked::new(&file, cursor, &between, Checkpointed::No).await?;
            let lines = LineReader::new(BufReader::new(file), 0);
            let (stopped, read_to) = self.read_all(lines, Some(&mut tracked), source, sink, shutdown).await?;
            if stopped != Stopped::End {
                return Ok(Onward::Stop);
            }
            finished = Some(PreviousFile { identity: tracked.cursor.identity, read_to, born: tracked.cursor.born });
        }
        Ok(Onward::Go(finished))
    }
}

/// Whether a run goes on after the files rotated away from its path, with the last one it
/// read to its end, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Onward {
    Go(Option<PreviousFile>),
    Stop,
}

/// The file this identity was taken of, born then when that is known, where a file rotated
/// away from `path` is: beside the path, or, the path being a symbolic link, beside the file
/// it points at now (a link repointed from one export to the next, decision 0060).
async fn find_rotated(path: &Path, identity: &FileIdentity, born: Option<u64>) -> std::io::Result<Option<PathBuf>> {
    if let Some(found) = find_in(directory_of(path), identity, born).await? {
        return Ok(Some(found));
    }
    let is_link = tokio::fs::symlink_metadata(path).await.is_ok_and(|metadata| metadata.file_type().is_symlink());
    if !is_link {
        return Ok(None);
    }
    let target = tokio::fs::canonicalize(path).await?;
    let beside_target = directory_of(&target);
    if tokio::fs::canonicalize(directory_of(path)).await.is_ok_and(|directory| directory == beside_target) {
        return Ok(None);
    }
    find_in(beside_target, identity, born).await
}

/// The directory a path's rotations are looked for in.
pub(crate) fn directory_of(path: &Path) -> &Path {
    path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// What the source tells when the file last read at a path was replaced and is not in its
/// directory any more: whatever it held past the checkpoint cannot be read here.
fn rotated_file_gone(
    source: &str,
    directory: &Path,
    position: u64,
    error: Option<std::io::Error>,
) -> catalog_app::SourceError {
    let looked = match error {
        None => format!("it is not in {} any more", directory.display()),
        Some(error) => format!("{} could not be searched for it ({error})", directory.display()),
    };
    catalog_app::SourceError {
        source: "file",
        operation: "rotated_file_gone",
        class: FailureClass::NeedsOperator,
        message: format!(
            "{source}: the file last read at this path was replaced, and {looked}: lines it held after position \
             {position}, if any, are not read by this source; read that file by its own path if it had more, \
             and rotate by renaming within the directory so the worker finishes it"
        ),
    }
}

/// What the source tells of the file last read at the path, found rotated but shorter than the
/// position read to in it.
fn rotated_file_cut(source: &str, rotated: &Path, position: u64, length: u64) -> catalog_app::SourceError {
    catalog_app::SourceError {
        source: "file",
        operation: "rotated_file_cut",
        class: FailureClass::NeedsOperator,
        message: format!(
            "{source}: the file last read at this path, rotated to {}, is {length} bytes long, shorter than the \
             position {position} read to in it: it was cut short since, and lines it held after that position, if \
             any, are not read by this source; the files rotated after it are read",
            rotated.display()
        ),
    }
}

/// What the source tells of rotated files it cannot read (compressed), or of a directory it
/// could not search for files rotated since the last run.
fn rotations_unread(
    source: &str,
    directory: &Path,
    files: &[PathBuf],
    error: Option<std::io::Error>,
) -> catalog_app::SourceError {
    let what = match error {
        None => format!(
            "files rotated since the last run are compressed and cannot be read as lines: {}",
            files.iter().map(|file| file.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
        Some(error) => {
            format!("{} could not be searched for files rotated since the last run ({error})", directory.display())
        }
    };
    catalog_app::SourceError {
        source: "file",
        operation: "rotated_files_unread",
        class: FailureClass::NeedsOperator,
        message: format!(
            "{source}: {what}; their lines are not read by this source: read them by their own paths (after \
             decompressing), and delay compression (logrotate `delaycompress`) so the worker finishes each file"
        ),
    }
}
