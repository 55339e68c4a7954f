//! Where a source stands in one of its partitions, as the store keeps it.

use serde::Serialize;

/// How far a source has been applied in one of its partitions: the next position to read.
/// Written in the transaction of the batch that reached it, so it never runs ahead of what
/// is durable, and never moves backwards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Checkpoint {
    pub source: String,
    pub partition: i32,
    pub position: Position,
}

/// A source's position, opaque to the store but for its order: `offset` only moves forward,
/// and `cursor` is kept with the furthest offset as the source wrote it. A Kafka partition
/// and a file use the offset alone (the next message, the byte after the last line); a
/// pulled feed puts its window and page cursor in `cursor`, a file its identity. One cursor
/// the store reads: `topic-id:` and an id names the log the offsets are of (a Kafka topic's
/// id, new when the topic is created again), and a batch of another log than its stored
/// checkpoint's neither is fenced by it nor moves it ([`crate::fence::fence`], decision 0040).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Position {
    /// Monotonic progress: a Kafka offset, a byte offset, a page count.
    pub offset: i64,
    /// Whatever else the source needs to resume, in its own format.
    pub cursor: Option<String>,
}

/// How a cursor names the log its position's offsets are of.
const LOG_ID_PREFIX: &str = "topic-id:";

impl Position {
    /// A position that is an offset alone.
    pub fn at(offset: i64) -> Self {
        Self { offset, cursor: None }
    }

    /// A position in the log `log_id` (a Kafka topic's id): its cursor names the log.
    pub fn in_log(offset: i64, log_id: &str) -> Self {
        Self { offset, cursor: Some(format!("{LOG_ID_PREFIX}{log_id}")) }
    }

    /// The log this position's offsets are of, when its cursor names one ([`Position::in_log`]).
    pub fn log_id(&self) -> Option<&str> {
        log_id_of(self.cursor.as_deref())
    }
}

/// The log a cursor names ([`Position::in_log`]); `None` for any other cursor, or none.
pub fn log_id_of(cursor: Option<&str>) -> Option<&str> {
    cursor?.strip_prefix(LOG_ID_PREFIX)
}

/// The log `stored` names, when `now` names another: both known and different (a Kafka topic
/// created again under its name). Either unknown tells nothing, and is `None`.
pub fn another_log<'a>(stored: Option<&'a str>, now: Option<&str>) -> Option<&'a str> {
    stored.filter(|stored| now.is_some_and(|now| now != *stored))
}
