//! A file at the path that is no NDJSON text (compressed, UTF-16) is refused, not read as
//! lines (decision 0062).

use catalog_core::{Classify, FailureClass};
use catalog_file::FileSourceError;

use crate::{event_lines, Feed};

/// A gzip file given as the source (`feed.ndjson.gz`), or an export in UTF-16, is refused,
/// saying what it is and what to do, as needing an operator: nothing of it is journaled and no
/// checkpoint is stored, so every run refuses it again, and the file decompressed is read
/// whole. Before, its bytes were read as lines, each rejected as garbage, and the checkpoint
/// passed them: the events in it were never applied.
#[tokio::test]
async fn a_compressed_or_utf_16_file_is_refused_and_nothing_of_it_is_read() {
    let feed = Feed::new();
    let lines = event_lines(1..4);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, lines.as_bytes()).expect("compress");
    std::fs::write(feed.at("feed.ndjson.gz"), gzip.finish().expect("compress")).expect("write");
    let utf_16: Vec<u8> = [0xFF, 0xFE].into_iter().chain(lines.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    std::fs::write(feed.at("export.ndjson"), utf_16).expect("write");

    for (name, says) in [("feed.ndjson.gz", "compressed with gzip"), ("export.ndjson", "text in UTF-16")] {
        for run in ["the first run", "the next run"] {
            let error = feed.run(name).await.expect_err("refused");
            assert!(matches!(error, FileSourceError::NotText { .. }), "{name}, {run}: {error:?}");
            assert_eq!(error.failure_class(), FailureClass::NeedsOperator, "{name}, {run}");
            let message = error.to_string();
            assert!(message.contains(says) && message.contains("nothing of it was read"), "{message}");
            assert_eq!(feed.journal(), [], "{name}, {run}: nothing journaled");
            assert!(!feed.has_checkpoints(), "{name}, {run}: nothing marked read");
        }
    }

    // Decompressed as the error says, it is read.
    std::fs::write(feed.at("feed.ndjson"), &lines).expect("decompress");
    feed.run("feed.ndjson").await.expect("read");
    assert_eq!(feed.journal(), [Some(1), Some(2), Some(3)]);
}

/// A compressed file refused at the path, then rotated away under a plain name (logrotate's
/// `delaycompress` leaves `feed.ndjson.1` as it was) and a text file made at the path, is
/// refused where it lies: the run reads nothing of it nor after it. Before, only the file at
/// the path was checked: the rotated one was read as lines, each rejected as garbage, and the
/// checkpoint passed it, its events never applied and nobody told to decompress it.
#[tokio::test]
async fn a_compressed_file_rotated_away_under_a_plain_name_is_refused_too() {
    let feed = Feed::new();
    feed.append("feed.ndjson", &event_lines(1..3));
    feed.run("feed.ndjson").await.expect("the first run");
    assert_eq!(feed.journal(), [Some(1), Some(2)]);

    // The exporter ships a gzip file to the path; the text one is rotated away first.
    feed.rename("feed.ndjson", "feed.ndjson.2");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, event_lines(3..5).as_bytes()).expect("compress");
    std::fs::write(feed.at("feed.ndjson"), gzip.finish().expect("compress")).expect("write");
    let refused = feed.run("feed.ndjson").await.expect_err("refused at the path");
    assert!(matches!(refused, FileSourceError::NotText { .. }), "{refused:?}");

    // Rotated away under a plain name, a text file at the path.
    feed.rename("feed.ndjson", "feed.ndjson.1");
    std::thread::sleep(std::time::Duration::from_millis(20));
    feed.append("feed.ndjson", &event_lines(5..7));
    let refused = feed.run("feed.ndjson").await.expect_err("refused where it was rotated to");
    let FileSourceError::NotText { path, .. } = &refused else { panic!("{refused:?}") };
    assert!(path.ends_with("feed.ndjson.1"), "{refused}");
    assert_eq!(feed.journal(), [Some(1), Some(2)], "nothing of it, nor after it, read");

    // Decompressed where it lies, it is read, then the file at the path.
    std::fs::write(feed.at("feed.ndjson.1"), event_lines(3..5)).expect("decompress");
    feed.run("feed.ndjson").await.expect("read");
    assert_eq!(feed.journal(), (1..7).map(Some).collect::<Vec<_>>());
}
