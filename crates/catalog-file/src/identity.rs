//! Which file a checkpoint was taken on, so that a file rotated away and replaced (by a new
//! file at the same path, or the same file truncated and written again) is read from its
//! start instead of from the old file's byte offset.
//!
//! A file is known by its device, its inode and a hash of its first bytes (up to
//! [`HEAD_BYTES`], with how many were hashed): a new inode is a new file, and so is the same
//! inode whose first bytes changed. The checkpoint's offset must never move backwards, so
//! positions are counted across the files read at one path: each file's byte offsets start
//! at `base`, the position where the previous one was left. Both travel in the checkpoint's
//! cursor: `file-v1 dev=… ino=… head=LEN:HASH base=…`, then ` born=NANOS` where the file
//! system keeps birth times (decision 0048), followed, once a file rotated away was finished
//! before this one, by that file and how far it was read: ` prev-dev=… prev-ino=…
//! prev-head=LEN:HASH prev-to=…` (its writer may still append to it, decision 0052). A file
//! at the path born at another time than the cursor's is another file, whatever its inode.

use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How many of a file's first bytes identify it.
pub(crate) const HEAD_BYTES: u64 = 4096;

/// A file as a checkpoint knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    pub(crate) device: u64,
    pub(crate) inode: u64,
    /// How many first bytes were hashed: [`HEAD_BYTES`], or the whole file when shorter.
    pub(crate) head_length: u64,
    /// FNV-1a (64 bits) of those bytes: stable across builds and platforms, unlike std's hasher.
    pub(crate) head_hash: u64,
}

/// The position a checkpoint of a file source is taken at: the file, where its byte 0 lies
/// among the positions of every file read at the path, and the file rotated away that was
/// finished before it, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileCursor {
    pub(crate) identity: FileIdentity,
    pub(crate) base: u64,
    /// When the file came to be ([`birth_nanos`]), where the file system keeps it: the files
    /// rotated after it are found by it even once it is gone from the directory, and a file
    /// that took its inode is not taken for it.
    pub(crate) born: Option<u64>,
    pub(crate) previous: Option<PreviousFile>,
}

/// A file rotated away from the path and read to its end before the cursor's file: its writer
/// may append to it until it reopens the path, and the next run reads what it did (decision
/// 0052).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PreviousFile {
    pub(crate) identity: FileIdentity,
    /// The byte offset it was read to.
    pub(crate) read_to: u64,
    /// When it came to be ([`birth_nanos`]), where the file system keeps it: a file that took
    /// its inode since is not taken for it, even where its first bytes say nothing (an empty
    /// file's).
    pub(crate) born: Option<u64>,
}

impl FileCursor {
    /// The checkpoint cursor's text.
    pub(crate) fn render(&self) -> String {
        let FileIdentity { device, inode, head_length, head_hash } = self.identity;
        let mut text =
            format!("file-v1 dev={device} ino={inode} head={head_length}:{head_hash:016x} base={}", self.base);
        if let Some(born) = self.born {
            text.push_str(&format!(" born={born}"));
        }
        if let Some(PreviousFile { identity, read_to, born }) = self.previous {
            let FileIdentity { device, inode, head_length, head_hash } = identity;
            text.push_str(&format!(
                " prev-dev={device} prev-ino={inode} prev-head={head_length}:{head_hash:016x} prev-to={read_to}"
            ));
            if let Some(born) = born {
                text.push_str(&format!(" prev-born={born}"));
            }
        }
        text
    }

    /// A cursor written by [`FileCursor::render`]; `None` for anything else (a checkpoint
    /// written before files were identified holds none). A cursor without a birth time or a
    /// previous file, as earlier versions wrote it, has none.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut fields = text.strip_prefix("file-v1 ")?.split(' ').peekable();
        let identity = identity_fields(&mut fields, "")?;
        let base = field(&mut fields, "base")?.parse().ok()?;
        let born = optional_field(&mut fields, "born")?;
        let previous = match fields.peek() {
            None => None,
            Some(_) => {
                let identity = identity_fields(&mut fields, "prev-")?;
                let read_to = field(&mut fields, "prev-to")?.parse().ok()?;
                let born = optional_field(&mut fields, "prev-born")?;
                Some(PreviousFile { identity, read_to, born })
            }
        };
        fields.next().is_none().then_some(Self { identity, base, born, previous })
    }
}

/// The value of the next field, `name=value`.
fn field<'a>(fields: &mut impl Iterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    fields.next()?.strip_prefix(name)?.strip_prefix('=')
}

/// The number in the next field when it is `name=…` (taken), `Some(None)` when the next field
/// is another (left); `None` when it is `name=` followed by no number.
fn optional_field<'a>(
    fields: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    name: &str,
) -> Option<Option<u64>> {
    match fields.peek() {
        Some(next) if next.strip_prefix(name).is_some_and(|rest| rest.starts_with('=')) => {
            Some(Some(field(fields, name)?.parse().ok()?))
        }
        _ => Some(None),
    }
}

/// A file's identity, in the fields `dev`, `ino` and `head` after `prefix`.
fn identity_fields<'a>(fields: &mut impl Iterator<Item = &'a str>, prefix: &str) -> Option<FileIdentity> {
    let device = field(fields, &format!("{prefix}dev"))?.parse().ok()?;
    let inode = field(fields, &format!("{prefix}ino"))?.parse().ok()?;
    let (head_length, head_hash) = field(fields, &format!("{prefix}head"))?.split_once(':')?;
    let head_length = head_length.parse().ok()?;
    let head_hash = u64::from_str_radix(head_hash, 16).ok()?;
    Some(FileIdentity { device, inode, head_length, head_hash })
}

/// FNV-1a, 64 bits.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3))
}

impl FileIdentity {
    /// The identity of an open file: its device and inode, and its first `head_length` bytes
    /// (fewer if it is shorter). Leaves the file's position at its start.
    pub(crate) async fn of(file: &mut tokio::fs::File, head_length: u64) -> std::io::Result<Self> {
        let metadata = file.metadata().await?;
        let (device, inode) = device_and_inode(&metadata);
        file.seek(std::io::SeekFrom::Start(0)).await?;
        let mut head = Vec::with_capacity(head_length.min(HEAD_BYTES) as usize);
        (&mut *file).take(head_length).read_to_end(&mut head).await?;
        file.seek(std::io::SeekFrom::Start(0)).await?;
        Ok(Self { device, inode, head_length: head.len() as u64, head_hash: fnv1a(&head) })
    }

    /// Whether `current` (read with this identity's head length) is the file this identity
    /// was taken of.
    pub(crate) fn same_file(&self, current: &FileIdentity) -> bool {
        self == current
    }
}

/// The file in `directory` this identity was taken of, if it is still there: a rotation
/// renames the file beside the path it was read at (`feed.ndjson` to `feed.ndjson.1`), and a
/// writer may still finish its last line there. Matched by device and inode, then by its
/// first bytes. Without inodes nothing is found.
pub(crate) async fn find_in(
    directory: &std::path::Path,
    identity: &FileIdentity,
    born: Option<u64>,
) -> std::io::Result<Option<std::path::PathBuf>> {
    if !cfg!(unix) {
        return Ok(None);
    }
    let mut entries = tokio::fs::read_dir(directory).await?;
    while let Some(entry) = entries.next_entry().await? {
        let Ok(metadata) = entry.metadata().await else { continue };
        if !metadata.is_file() || device_and_inode(&metadata) != (identity.device, identity.inode) {
            continue;
        }
        // Born at another time: a file that took the inode of the one identified, gone.
        if born_another_time(born, &metadata) {
            continue;
        }
        let path = entry.path();
        let mut file = tokio::fs::File::open(&path).await?;
        if identity.same_file(&FileIdentity::of(&mut file, identity.head_length).await?) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// When a file came to be: its birth time where the file system keeps one (a rename keeps
/// it), else its last modification.
fn born(metadata: &std::fs::Metadata) -> Option<std::time::SystemTime> {
    metadata.created().or_else(|_| metadata.modified()).ok()
}

/// A file's birth time as a cursor keeps it, nanoseconds since the Unix epoch, where the file
/// system keeps one (not its last modification, which moves as it is written): a file
/// deleted and created again at the path may get the old one's inode, never its birth time.
pub(crate) fn birth_nanos(metadata: &std::fs::Metadata) -> Option<u64> {
    let since_epoch = metadata.created().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since_epoch.as_nanos()).ok()
}

/// Whether the file of `metadata` was born at another time than `recorded` ([`birth_nanos`]):
/// then it is another file, whatever its inode (the recorded one was deleted and this one took
/// its inode). `false` when either time is unknown.
pub(crate) fn born_another_time(recorded: Option<u64>, metadata: &std::fs::Metadata) -> bool {
    recorded.zip(birth_nanos(metadata)).is_some_and(|(then, now)| then != now)
}

/// A file rotated away from the path, as the files rotated after it are looked for from: when
/// it came to be, and its device and inode (so it is not found as one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RotatedFrom {
    pub(crate) born: std::time::SystemTime,
    /// `None` for a file gone from the directory: its inode may be another file's by now.
    pub(crate) device_and_inode: Option<(u64, u64)>,
}

impl RotatedFrom {
    /// The file at `path`, as it is now.
    pub(crate) async fn at(path: &std::path::Path) -> std::io::Result<Option<Self>> {
        let metadata = tokio::fs::metadata(path).await?;
        Ok(born(&metadata).map(|born| Self { born, device_and_inode: Some(device_and_inode(&metadata)) }))
    }

    /// The file a cursor was taken on, from what it recorded (`None` for a cursor that
    /// recorded no birth time).
    pub(crate) fn recorded(cursor: &FileCursor) -> Option<Self> {
        let born = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(cursor.born?);
        Some(Self { born, device_and_inode: None })
    }
}

/// Files a rotation left in `directory` after the one this identity was taken of: named after
/// `name` (`feed.ndjson.1`, `feed.ndjson-20261205`), born after it and not after `current`
/// (the file at the path now; a file system's birth times are coarse, so one born in the same
/// tick counts), oldest first. A path rotated twice between two runs leaves one such
/// file, which holds lines no other file does. A file born after `current` was never at the
/// path before it: an exporter's `feed.ndjson.tmp` being written, to be renamed into place, or
/// a `.sha256` beside it; read as a rotation, it would be read early, or stop the source at
/// its unfinished last line. Those a compression tool wrote (`.gz`, …) cannot be read as
/// lines: they come back apart, to be reported.
pub(crate) async fn rotated_after(
    directory: &std::path::Path,
    name: &std::ffi::OsStr,
    previous: RotatedFrom,
    current: &FileIdentity,
) -> std::io::Result<Rotations> {
    let mut rotations = Rotations::default();
    if !cfg!(unix) {
        return Ok(rotations);
    }
    let previous_born = previous.born;
    let skip = [previous.device_and_inode, Some((current.device, current.inode))];
    // By birth time alone: a file's last modification moves as it is written (a rotated file
    // its writer still appends to is modified after the new one at the path was made).
    let at_path = tokio::fs::metadata(directory.join(name)).await.ok();
    let current_born = at_path
        .filter(|metadata| device_and_inode(metadata) == (current.device, current.inode))
        .and_then(|metadata| metadata.created().ok());
    let name = name.to_string_lossy();
    let mut found = Vec::new();
    let mut entries = tokio::fs::read_dir(directory).await?;
    while let Some(entry) = entries.next_entry().await? {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(suffix) = rotation_suffix(&name, &file_name) else { continue };
        let Ok(metadata) = entry.metadata().await else { continue };
        if !metadata.is_file() || skip.contains(&Some(device_and_inode(&metadata))) {
            continue;
        }
        // A compression tool writes its file after the rotation it compresses, so after the
        // file at the path too: reported whatever its birth.
        let compressed = COMPRESSED.iter().any(|extension| suffix.ends_with(extension));
        let after_current = current_born.zip(metadata.created().ok()).is_some_and(|(current, at)| at > current);
        match born(&metadata) {
            Some(at) if at > previous_born && (compressed || !after_current) => {
                found.push((at, entry.path(), compressed));
            }
            _ => {}
        }
    }
    found.sort();
    for (_, path, compressed) in found {
        if compressed {
            rotations.compressed.push(path);
        } else {
            rotations.plain.push(path);
        }
    }
    Ok(rotations)
}

/// What `file_name` adds to `name` when it is one of its rotations (`feed.ndjson.1`,
/// `feed.ndjson-20261205.gz`): a suffix starting with a dot or a dash.
pub(crate) fn rotation_suffix<'a>(name: &str, file_name: &'a str) -> Option<&'a str> {
    file_name
        .strip_prefix(name)
        .filter(|suffix| (suffix.starts_with('.') || suffix.starts_with('-')) && suffix.len() >= 2)
}

/// What a compression tool names its files.
const COMPRESSED: [&str; 6] = [".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip"];

/// Files rotated away after the checkpoint's file, oldest first.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Rotations {
    /// Read as lines, in this order, before the file at the path.
    pub(crate) plain: Vec<std::path::PathBuf>,
    /// Compressed: not readable here, reported.
    pub(crate) compressed: Vec<std::path::PathBuf>,
}

/// The identity of a file being read at `head_length` bytes, read with `pread` (the reader's
/// position is left alone): a file opened while it held fewer than [`HEAD_BYTES`] bytes is
/// known by more of them once they are written. A file whose first bytes are no longer the
/// ones `identity` holds was rewritten while it was read (`export > feed.ndjson`): it keeps
/// the identity it has, so the next run finds the rewrite and reads it from its start, instead
/// of taking the new bytes for the file read and resuming in the middle of them.
#[cfg(unix)]
pub(crate) fn grown(file: &std::fs::File, identity: &FileIdentity, head_length: u64) -> std::io::Result<FileIdentity> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0; head_length.min(HEAD_BYTES) as usize];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64)? {
            0 => break,
            n => filled += n,
        }
    }
    head.truncate(filled);
    let known = usize::try_from(identity.head_length).unwrap_or(usize::MAX);
    if head.get(..known).is_none_or(|known| fnv1a(known) != identity.head_hash) {
        return Ok(*identity);
    }
    Ok(FileIdentity { head_length: head.len() as u64, head_hash: fnv1a(&head), ..*identity })
}

#[cfg(not(unix))]
pub(crate) fn grown(
    _file: &std::fs::File,
    identity: &FileIdentity,
    _head_length: u64,
) -> std::io::Result<FileIdentity> {
    Ok(*identity)
}

#[cfg(unix)]
fn device_and_inode(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

/// Without inodes, a file is known by its first bytes alone.
#[cfg(not(unix))]
fn device_and_inode(_metadata: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn an_identity_grows_only_over_the_bytes_it_was_taken_of() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("feed.ndjson");
        std::fs::write(&path, "{\"a\":1}\n").expect("write");
        let identity = FileIdentity { device: 1, inode: 2, head_length: 8, head_hash: fnv1a(b"{\"a\":1}\n") };
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n").expect("append");
        let file = std::fs::File::open(&path).expect("open");
        let appended = grown(&file, &identity, 16).expect("read");
        assert_eq!((appended.head_length, appended.head_hash), (16, fnv1a(b"{\"a\":1}\n{\"b\":2}\n")));

        std::fs::write(&path, "{\"c\":3}\n{\"d\":4}\n").expect("rewrite");
        let file = std::fs::File::open(&path).expect("open");
        assert_eq!(grown(&file, &identity, 16).expect("read"), identity, "rewritten: the identity stays");
    }

    #[test]
    fn a_cursor_reads_back_as_written() {
        let mut cursor = FileCursor {
            identity: FileIdentity { device: 64_769, inode: 1_234_567, head_length: 4096, head_hash: 0xdead_beef },
            base: 987,
            born: None,
            previous: None,
        };
        let text = cursor.render();
        assert_eq!(text, "file-v1 dev=64769 ino=1234567 head=4096:00000000deadbeef base=987");
        assert_eq!(FileCursor::parse(&text), Some(cursor));
        let born = FileCursor { born: Some(1_796_572_452_045_809_187), ..cursor };
        let text = born.render();
        assert_eq!(text, "file-v1 dev=64769 ino=1234567 head=4096:00000000deadbeef base=987 born=1796572452045809187");
        assert_eq!(FileCursor::parse(&text), Some(born));
        cursor.previous = Some(PreviousFile {
            identity: FileIdentity { device: 64_769, inode: 1_234_500, head_length: 12, head_hash: 0xbeef },
            read_to: 654,
            born: None,
        });
        let text = cursor.render();
        assert_eq!(
            text,
            "file-v1 dev=64769 ino=1234567 head=4096:00000000deadbeef base=987 \
             prev-dev=64769 prev-ino=1234500 prev-head=12:000000000000beef prev-to=654"
        );
        assert_eq!(FileCursor::parse(&text), Some(cursor));
        let previous_born = FileCursor {
            previous: cursor
                .previous
                .map(|previous| PreviousFile { born: Some(1_796_572_000_000_000_001), ..previous }),
            ..born
        };
        let text = previous_born.render();
        assert_eq!(
            text,
            "file-v1 dev=64769 ino=1234567 head=4096:00000000deadbeef base=987 born=1796572452045809187 \
             prev-dev=64769 prev-ino=1234500 prev-head=12:000000000000beef prev-to=654 prev-born=1796572000000000001"
        );
        assert_eq!(FileCursor::parse(&text), Some(previous_born));
        for other in [
            "",
            "page-7",
            "file-v1 dev=1",
            "file-v1 dev=1 ino=2 head=3 base=4",
            "file-v2 dev=1 ino=2 head=3:0 base=4",
            "file-v1 dev=1 ino=2 head=3:0 base=4 prev-dev=1",
            "file-v1 dev=1 ino=2 head=3:0 base=4 prev-dev=1 prev-ino=2 prev-head=3:0 prev-to=5 more=6",
            "file-v1 dev=1 ino=2 head=3:0 base=4 prev-dev=1 prev-ino=2 prev-head=3:0 prev-to=5 prev-born=x",
        ] {
            assert_eq!(FileCursor::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn the_hash_is_fnv_1a() {
        // The reference values of the FNV specification.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[tokio::test]
    async fn a_file_is_the_same_until_its_first_bytes_or_inode_change() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("feed.ndjson");
        std::fs::write(&path, b"first line\n").expect("write");
        let mut file = tokio::fs::File::open(&path).await.expect("open");
        let taken = FileIdentity::of(&mut file, HEAD_BYTES).await.expect("identity");
        assert_eq!(taken.head_length, 11);

        // Appended to: the same file.
        std::fs::write(&path, b"first line\nsecond line\n").expect("append");
        let mut again = tokio::fs::File::open(&path).await.expect("open");
        assert!(taken.same_file(&FileIdentity::of(&mut again, taken.head_length).await.expect("identity")));

        // Truncated and written again in place: same inode, other first bytes.
        std::fs::write(&path, b"other line\nand more\n").expect("rewrite");
        let mut rewritten = tokio::fs::File::open(&path).await.expect("open");
        assert!(!taken.same_file(&FileIdentity::of(&mut rewritten, taken.head_length).await.expect("identity")));

        // Replaced by a new file with the very same bytes: another inode.
        let replacement = directory.path().join("next.ndjson");
        std::fs::write(&replacement, b"first line\nsecond line\n").expect("write");
        std::fs::rename(&replacement, &path).expect("rotate");
        let mut rotated = tokio::fs::File::open(&path).await.expect("open");
        assert!(!taken.same_file(&FileIdentity::of(&mut rotated, taken.head_length).await.expect("identity")));
    }
}
