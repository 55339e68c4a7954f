//! A path's first run that reads no line stores where it stopped, so the file is known to the
//! next run, rotated away or not.

use crate::{event_line, event_lines, Feed};

/// A new source whose first run read no line (an empty file, blank lines, half a line) knows
/// that file at its next run: filled since, then rotated away (logrotate) and a new file
/// made at the path, it is finished before the new one. Before, such a run stored no
/// checkpoint, the next one took the new file for the first, and the lines of the rotated one
/// were never read, unsaid: three events of seven.
#[tokio::test]
async fn a_file_whose_first_run_read_no_line_is_finished_once_rotated_away() {
    let first = event_line(1);
    let (half, rest) = first.split_at(20);
    let cases = [
        ("an empty file", String::new(), event_lines(1..5)),
        ("blank lines", "\n\r\n".to_owned(), event_lines(1..5)),
        ("half a line", half.to_owned(), format!("{rest}\n{}", event_lines(2..5))),
    ];
    for (what, at_first, then) in cases {
        let feed = Feed::new();
        feed.append("feed.ndjson", &at_first);
        feed.run("feed.ndjson").await.expect("the first run");
        assert_eq!(feed.journal(), [], "{what}: nothing to apply yet");
        feed.take_errors();

        // The writer goes on in the same file; then it is rotated away, a new file at the path.
        feed.append("feed.ndjson", &then);
        feed.rename("feed.ndjson", "feed.ndjson.1");
        feed.append("feed.ndjson", &event_lines(5..8));
        feed.run("feed.ndjson").await.expect("the second run");
        let all: Vec<Option<u64>> = (1..8).map(Some).collect();
        assert_eq!(feed.journal(), all, "{what}: the rotated file first, then the new one");
        assert_eq!(feed.take_errors(), [] as [String; 0], "{what}");

        feed.run("feed.ndjson").await.expect("the third run");
        assert_eq!(feed.journal(), all, "{what}: the new file is resumed, nothing read twice");
    }
}
