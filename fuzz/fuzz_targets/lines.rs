//! Fuzzes the NDJSON line reader of `catalog-file` with arbitrary bytes read through a buffer
//! of arbitrary size (the first byte of the input): it must never panic, and its lines must
//! tile the input from the first byte (after a UTF-8 byte order mark there) to the last with
//! no gap or overlap, each holding exactly its bytes (without `\n` or `\r\n`) and its length.
//!
//! The reader's source file is compiled into this target as it is, rather than through the
//! `catalog-file` crate, so that the sanitizer build does not take in the HTTP and TLS
//! crates the rest of that crate depends on.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/catalog-file/src/lines.rs"]
mod lines;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else { return };
    let capacity = usize::from(first % 64) + 1;
    let read = runtime().block_on(async {
        let mut reader = lines::LineReader::new(tokio::io::BufReader::with_capacity(capacity, input), 0);
        let mut read = Vec::new();
        while let Some(line) = reader.next_line().await.expect("reading memory cannot fail") {
            read.push(line);
        }
        read
    });
    // A byte order mark at the start is the input's encoding, part of no line.
    let mut at = if input.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    for line in read {
        assert_eq!(line.offset, at as u64, "each line starts where the previous one ended");
        let newline = input[at..].iter().position(|byte| *byte == b'\n').map(|position| at + position);
        let mut text = &input[at..newline.unwrap_or(input.len())];
        if text.last() == Some(&b'\r') {
            text = &text[..text.len() - 1];
        }
        assert_eq!(line.length, text.len() as u64, "the length of the line without its end");
        assert_eq!(line.bytes, &text[..text.len().min(lines::MAX_LINE_BYTES)], "the bytes of the line");
        at = newline.map_or(input.len(), |newline| newline + 1);
        assert_eq!(line.next_offset, at as u64, "the next line starts after the newline");
        assert_eq!(line.terminated, newline.is_some(), "a newline ended the line");
    }
    assert_eq!(at, input.len(), "every byte belongs to a line");
});
