//! A feed read through a symbolic link repointed from one export to the next, and a file
//! rotated away whose inode another file took (decision 0060).

use super::{event_line, run_worker};

fn lines(events: std::ops::Range<u64>) -> String {
    events.map(|n| event_line(n) + "\n").collect()
}

fn append(target: &std::path::Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(target).expect("open");
    std::io::Write::write_all(&mut file, text.as_bytes()).expect("append");
}

/// Runs the worker over `source` in `directory`, asserting it succeeds and its summary starts
/// with `expected`; gives back its stderr.
fn run(source: &str, directory: &std::path::Path, expected: &str) -> String {
    let arguments = ["--source", source, "--metrics-addr", "off", "--publish", "off"];
    let (_, stderr, success) = run_worker(&arguments, directory);
    assert!(success, "{stderr}");
    let summary = stderr.lines().last().unwrap_or_default();
    assert!(summary.starts_with(expected), "expected {expected}: {stderr}");
    stderr
}

/// `current.ndjson` links to the day's export in another directory; the exporter appends to
/// the day's file, then repoints the link at the next day's. The next run finishes the old
/// export (found beside the file the link points at now) before it reads the new one: the
/// source is the link, not the file it pointed at. Before, the source was named after the
/// link's target, so the repointed link was a new source and the old export's tail was never
/// read. A store whose checkpoint was taken under the target's name (the worker run on the
/// export itself, as the link's runs were named before) resumes from it.
#[cfg(unix)]
#[test]
fn a_link_repointed_to_the_next_export_loses_none_of_the_last_one() {
    let directory = tempfile::tempdir().expect("temp dir");
    let exports = directory.path().join("exports");
    std::fs::create_dir(&exports).expect("exports directory");
    let monday = exports.join("2026-12-07.ndjson");
    let link = directory.path().join("current.ndjson");
    std::fs::write(&monday, lines(1..3)).expect("Monday's export");
    std::os::unix::fs::symlink(&monday, &link).expect("link");

    // The export read by its own path: the checkpoint a link's run was stored under before.
    let at_target = format!("file:{}", monday.display());
    run(&at_target, directory.path(), "summary: events=2 applied=2 ");
    let through_link = format!("file:{}", link.display());
    run(&through_link, directory.path(), "summary: events=0 ");

    // More of Monday, then Tuesday's export, and the link repointed at it (renamed over).
    append(&monday, &lines(3..5));
    let tuesday = exports.join("2026-12-08.ndjson");
    std::fs::write(&tuesday, lines(10..13)).expect("Tuesday's export");
    let next_link = directory.path().join("current.ndjson.next");
    std::os::unix::fs::symlink(&tuesday, &next_link).expect("link");
    std::fs::rename(&next_link, &link).expect("repoint");
    run(&through_link, directory.path(), "summary: events=5 applied=5 stale=0 superseded=0 duplicate=0 ");
    run(&through_link, directory.path(), "summary: events=0 ");
    append(&tuesday, &lines(13..14));
    run(&through_link, directory.path(), "summary: events=1 applied=1 ");
}

/// The file read to its end before the one at the path, rotated away, deleted, and its inode
/// taken by a file of another feed: that file is not taken for the rotated one, whose first
/// bytes (none: it was empty) cannot tell them apart, and none of its lines are read as
/// appended to it. Before, they were.
#[cfg(unix)]
#[test]
fn a_file_that_took_a_rotated_empty_file_s_inode_is_not_read_for_it() {
    use std::os::unix::fs::MetadataExt;

    let directory = tempfile::tempdir().expect("temp dir");
    let at = |name: &str| directory.path().join(name);
    let source = format!("file:{}", at("feed.ndjson").display());
    std::fs::write(at("feed.ndjson"), lines(1..3)).expect("write the feed");
    run(&source, directory.path(), "summary: events=2 applied=2 ");

    // Rotated twice: A to .2, the empty B (never written to) to .1, C at the path.
    std::fs::rename(at("feed.ndjson"), at("feed.ndjson.2")).expect("rotate");
    std::fs::write(at("feed.ndjson.1"), "").expect("B");
    std::fs::write(at("feed.ndjson"), lines(10..12)).expect("C");
    run(&source, directory.path(), "summary: events=2 applied=2 ");

    // B deleted; another feed's file takes its inode (ext4, this project's file system, hands
    // a freed inode out again at once; tmpfs and btrfs never do, and a file system without
    // birth times cannot tell the two apart: there the case does not arise, or cannot be told).
    let b = std::fs::metadata(at("feed.ndjson.1")).expect("B");
    std::fs::remove_file(at("feed.ndjson.1")).expect("delete B");
    std::fs::write(at("other-feed.ndjson"), lines(90..93)).expect("another feed");
    let reused = std::fs::metadata(at("other-feed.ndjson")).expect("another feed").ino() == b.ino();
    if !reused || b.created().is_err() {
        eprintln!("skipped: this file system does not reuse the inode at once, or keeps no birth time");
        return;
    }
    run(&source, directory.path(), "summary: events=0 ");
    append(&at("feed.ndjson"), &lines(12..13));
    run(&source, directory.path(), "summary: events=1 applied=1 ");
}
