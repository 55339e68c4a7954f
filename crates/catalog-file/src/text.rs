//! What the file at the path must be: NDJSON, text in UTF-8. A compressed file or one in
//! UTF-16, read as lines, is bytes cut wherever a byte happens to be a newline: each piece was
//! journaled as a rejection that tells nobody anything, counted against the supplier, and the
//! checkpoint passed the file, its events never applied. Such a file is known by its first
//! bytes and refused before anything of it is read (decision 0062).

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{file_error, FileSourceError};

/// What a file is when its first bytes say it is no UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotText {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    Lz4,
    Zip,
    Utf16LittleEndian,
    Utf16BigEndian,
}

/// How many first bytes tell them all apart.
const MAGIC_BYTES: usize = 6;

impl NotText {
    /// What a file starting with `head` is, when it is one of them. Nothing a contract line may
    /// start with (`{`, JSON's blanks, a UTF-8 byte order mark, decision 0032) starts so.
    pub(crate) fn of(head: &[u8]) -> Option<Self> {
        let found = match head {
            [0x1F, 0x8B, ..] => NotText::Gzip,
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => NotText::Bzip2,
            [0xFD, b'7', b'z', b'X', b'Z', 0x00, ..] => NotText::Xz,
            [0x28, 0xB5, 0x2F, 0xFD, ..] => NotText::Zstd,
            [0x04, 0x22, 0x4D, 0x18, ..] => NotText::Lz4,
            [b'P', b'K', 0x03, 0x04, ..] => NotText::Zip,
            // UTF-32's little-endian mark starts so too: as far from UTF-8, and rarer.
            [0xFF, 0xFE, ..] => NotText::Utf16LittleEndian,
            [0xFE, 0xFF, ..] => NotText::Utf16BigEndian,
            _ => return None,
        };
        Some(found)
    }

    fn what(self) -> &'static str {
        match self {
            NotText::Gzip => "compressed with gzip",
            NotText::Bzip2 => "compressed with bzip2",
            NotText::Xz => "compressed with xz",
            NotText::Zstd => "compressed with zstd",
            NotText::Lz4 => "compressed with lz4",
            NotText::Zip => "a zip archive",
            NotText::Utf16LittleEndian => "text in UTF-16 (little-endian, by its byte order mark)",
            NotText::Utf16BigEndian => "text in UTF-16 (big-endian, by its byte order mark)",
        }
    }

    /// What the operator does about it.
    fn advice(self) -> String {
        let decompress = match self {
            NotText::Gzip => "gunzip -k",
            NotText::Bzip2 => "bunzip2 -k",
            NotText::Xz => "unxz -k",
            NotText::Zstd => "unzstd",
            NotText::Lz4 => "unlz4",
            NotText::Zip => "unzip",
            NotText::Utf16LittleEndian | NotText::Utf16BigEndian => {
                return "the contract's lines are UTF-8: export the file again as UTF-8 (`iconv -f UTF-16 -t \
                        UTF-8`), and give the worker that file"
                    .to_owned();
            }
        };
        format!(
            "decompress it (`{decompress} FILE`) and give the worker the decompressed file (`--source file:…`); \
             where a rotation compresses the feed, give the path its writer writes, and delay compression \
             (`delaycompress`) so the worker reads each file before it is compressed"
        )
    }
}

/// Refuses `file`, opened at `path`, when its first bytes say it is no UTF-8 text; leaves it
/// at its start either way. Said before anything is read or stored, so the checkpoint stays
/// where it was, and every run refuses it again until the file is replaced.
pub(crate) async fn refuse_unless_text(file: &mut tokio::fs::File, path: &Path) -> Result<(), FileSourceError> {
    let mut head = Vec::with_capacity(MAGIC_BYTES);
    file.seek(std::io::SeekFrom::Start(0)).await.map_err(file_error("reading", path))?;
    (&mut *file).take(MAGIC_BYTES as u64).read_to_end(&mut head).await.map_err(file_error("reading", path))?;
    file.seek(std::io::SeekFrom::Start(0)).await.map_err(file_error("reading", path))?;
    match NotText::of(&head) {
        None => Ok(()),
        Some(found) => {
            Err(FileSourceError::NotText { path: path.to_path_buf(), what: found.what(), advice: found.advice() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_files_and_utf_16_are_known_by_their_first_bytes_and_text_is_not() {
        let cases: [(&[u8], Option<NotText>); 17] = [
            (b"\x1F\x8B\x08\x00\x00\x00", Some(NotText::Gzip)),
            (b"BZh91AY&SY", Some(NotText::Bzip2)),
            (b"\xFD7zXZ\x00\x00\x04", Some(NotText::Xz)),
            (b"\x28\xB5\x2F\xFD\x24\x00", Some(NotText::Zstd)),
            (b"\x04\x22\x4D\x18\x64\x40", Some(NotText::Lz4)),
            (b"PK\x03\x04\x14\x00", Some(NotText::Zip)),
            (b"\xFF\xFE{\x00\"\x00", Some(NotText::Utf16LittleEndian)),
            (b"\xFE\xFF\x00{\x00\"", Some(NotText::Utf16BigEndian)),
            (b"{\"event_id\":", None),
            (b"\xEF\xBB\xBF{\"a\"", None),
            (b"\n\n  {", None),
            (b"", None),
            (b"\x1F", None),
            (b"BZh", None),
            (b"BZhx", None),
            (b"\xFD7zXZ", None),
            (b"PK", None),
        ];
        for (head, expected) in cases {
            assert_eq!(NotText::of(head), expected, "{head:?}");
        }
    }
}
