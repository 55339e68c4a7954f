//! The file a run is reading, as its checkpoints name it: its cursor, the positions of its
//! bytes among every file read at the path, and whether the store holds a checkpoint on it yet.

use std::path::Path;

use catalog_store::Position;

use crate::identity::{self, grown, FileCursor, PreviousFile, HEAD_BYTES};
use crate::{file_error, FileSourceError};

/// The cursor of a file being read, and a handle on it that reads its first bytes without
/// moving the reader: a file opened while it held fewer than [`HEAD_BYTES`] bytes is known by
/// more of them as they are read, so that one rewritten in place later is not taken for it.
pub(crate) struct Tracked {
    pub(crate) cursor: FileCursor,
    head: Option<std::fs::File>,
    /// Set while the file read is the cursor's previous one, appended to after it was read.
    appended: Option<Appended>,
    /// Whether the store's checkpoint is taken on this file. A run that reads a file to no
    /// line (empty, blanks, half a line) flushes no batch; unless it stores the file's cursor
    /// itself, the next run knows no file at the path, and the file's later lines, once it is
    /// rotated away, are never read.
    pub(crate) checkpointed: Checkpointed,
}

/// Whether the store's checkpoint is taken on the file a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checkpointed {
    /// The checkpoint the run resumed from is on it, or the run stored one on it.
    Yes,
    /// A file the store knows nothing of yet: the first at a new path, one rotated in since, one
    /// written again in place, or one whose checkpoint predates cursors.
    No,
}

/// Lines appended to the cursor's previous file, read from its byte `from` (where it was read
/// to) at the positions from `start` (the stored checkpoint) on.
#[derive(Debug, Clone, Copy)]
struct Appended {
    from: u64,
    start: u64,
}

impl Tracked {
    /// Reading `file`, opened at `path`; `checkpointed` says whether the stored checkpoint is
    /// on it (if not, the run's end stores one on it where the run stopped, unless a batch did).
    pub(crate) async fn new(
        file: &tokio::fs::File,
        mut cursor: FileCursor,
        path: &Path,
        checkpointed: Checkpointed,
    ) -> Result<Self, FileSourceError> {
        let head = match cursor.identity.head_length < HEAD_BYTES {
            true => Some(file.try_clone().await.map_err(file_error("reading", path))?.into_std().await),
            false => None,
        };
        if cursor.born.is_none() {
            let metadata = file.metadata().await.map_err(file_error("reading", path))?;
            cursor.born = identity::birth_nanos(&metadata);
        }
        Ok(Self { cursor, head, appended: None, checkpointed })
    }

    /// Reading what was appended to `cursor`'s previous file since it was read to `from`, the
    /// stored checkpoint being `start`.
    pub(crate) fn appended(cursor: FileCursor, from: u64, start: u64) -> Self {
        Self { cursor, head: None, appended: Some(Appended { from, start }), checkpointed: Checkpointed::Yes }
    }

    /// The position of the file's byte `offset` among every file read at the path.
    pub(crate) fn position(&self, offset: u64) -> u64 {
        match self.appended {
            None => self.cursor.base + offset,
            Some(Appended { from, start }) => start + offset.saturating_sub(from),
        }
    }

    /// The checkpoint once the file is applied up to its byte `read_to`. Reading the previous
    /// file's appended lines, the cursor stays on the checkpoint's own file, whose `base` moves
    /// on by what was read (its own offset, the position less its base, stays), and the
    /// previous file's `read_to` with it.
    pub(crate) fn checkpoint(&self, read_to: u64) -> Position {
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
    pub(crate) fn grow(&mut self, read_to: u64) {
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
