//! Gzip copies of a file read whole: logrotate's `delaycompress`, which the operations guide
//! advises, compresses at each rotation the file of the rotation before, one the worker read
//! to its end a run earlier. That copy is a file of its own, born after the checkpoint's, and
//! every run after a rotation said it was unread (a page for nothing, whose advice would read
//! every line again under another source). A copy is known read when it holds exactly what
//! the cursor's previous file held when it was read to its end: its first bytes hash as that
//! file's did, and its length is where that file was read to. The modification time gzip
//! keeps is not enough: `cp -p` and `rsync -a` keep old ones on files never read.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::identity::{fnv1a, rotation_suffix, PreviousFile};

/// The gzip files rotated from `name` in `directory` (`feed.ndjson.2.gz`) that hold `file` as
/// it was read to its end. None when the directory cannot be read: then each is reported.
pub(crate) async fn copies_read_whole(directory: &Path, name: &std::ffi::OsStr, file: PreviousFile) -> Vec<PathBuf> {
    let (directory, name) = (directory.to_path_buf(), name.to_string_lossy().into_owned());
    let found = tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(&directory) else { return Vec::new() };
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .map(|found| found.to_string_lossy())
                    .is_some_and(|found| rotation_suffix(&name, &found).is_some_and(|suffix| suffix.ends_with(".gz")))
            })
            .filter(|path| holds(path, &file).unwrap_or(false))
            .collect()
    });
    found.await.unwrap_or_default()
}

/// Whether the gzip file at `path` holds `file` read to its end: the hash of its first bytes,
/// and its length as gzip's trailer keeps it (modulo 2^32, for a file of one member).
fn holds(path: &Path, file: &PreviousFile) -> std::io::Result<bool> {
    let mut compressed = std::fs::File::open(path)?;
    let mut trailer = [0u8; 4];
    compressed.seek(SeekFrom::End(-4))?;
    compressed.read_exact(&mut trailer)?;
    if u64::from(u32::from_le_bytes(trailer)) != file.read_to % (1 << 32) {
        return Ok(false);
    }
    compressed.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(usize::try_from(file.identity.head_length).unwrap_or(0));
    flate2::read::GzDecoder::new(compressed).take(file.identity.head_length).read_to_end(&mut head)?;
    Ok(head.len() as u64 == file.identity.head_length && fnv1a(&head) == file.identity.head_hash)
}
