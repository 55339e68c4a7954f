//! Which topic a checkpoint's offsets are of (decision 0040). The broker gives a topic an id
//! when it creates it (KIP-516): a topic deleted and created again under the same name has a
//! new one, and its offsets start over. Each batch's checkpoint carries the id in its cursor,
//! so a member taking a partition tells a recreated topic from the old one even once the new
//! one is refilled past the old checkpoint, where its end alone cannot tell, and the store
//! tells a batch of the old one from a member still reading it ([`Position::in_log`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_store::{another_log, log_id_of, Position};

use crate::native;
use crate::source::SourceConsumer;

/// How long an id read from the broker stands for the partitions taken at once.
const FRESH_FOR: Duration = Duration::from_secs(2);

/// A checkpoint at `offset` of the topic `topic_id` (its cursor `topic-id:` and the id's 32
/// hexadecimal digits), or of a topic whose id is not known.
pub(crate) fn position(offset: i64, topic_id: Option<&str>) -> Position {
    topic_id.map_or_else(|| Position::at(offset), |id| Position::in_log(offset, id))
}

/// The topic id a stored checkpoint's cursor names; `None` for one written without (by a
/// worker before this one, or while the broker gave no id).
pub(crate) fn of_cursor(cursor: Option<&str>) -> Option<&str> {
    log_id_of(cursor)
}

/// The id a stored checkpoint was written under, when the topic has another now: the topic
/// was deleted and created again since.
pub(crate) fn replaced<'a>(stored_cursor: Option<&'a str>, now: Option<&str>) -> Option<&'a str> {
    another_log(of_cursor(stored_cursor), now)
}

/// The id this assignment's batches are written under: the topic's as read now; when the
/// broker did not answer, the one the stored checkpoint was written under, kept rather than
/// dropped, so the next assignment can still tell a recreated topic (were it recreated
/// meanwhile, that one moves the checkpoint back: duplicates, never a loss).
pub(crate) fn to_write(now: Option<String>, stored_cursor: Option<&str>) -> Option<String> {
    now.or_else(|| of_cursor(stored_cursor).map(str::to_owned))
}

/// The topic's id, read from the broker once for the partitions a rebalance hands over
/// together (each takes its partition at the same moment), not once per partition.
pub(crate) struct TopicIds {
    consumer: Arc<SourceConsumer>,
    topic: String,
    timeout: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Option<String>)>>,
}

impl TopicIds {
    pub(crate) fn new(consumer: Arc<SourceConsumer>, topic: String, timeout: Duration) -> Self {
        Self { consumer, topic, timeout, last: tokio::sync::Mutex::new(None) }
    }

    /// The topic's id now; `None` when the broker gives none or did not answer in time.
    pub(crate) async fn current(&self) -> Option<String> {
        let mut last = self.last.lock().await;
        if let Some((read_at, id)) = last.as_ref() {
            if read_at.elapsed() < FRESH_FOR {
                return id.clone();
            }
        }
        let consumer = Arc::clone(&self.consumer);
        let topic = self.topic.clone();
        let timeout = self.timeout;
        let id = tokio::task::spawn_blocking(move || native::topic_id(&consumer, &topic, timeout)).await.ok().flatten();
        if id.is_none() {
            tracing::debug!(topic = %self.topic, "the broker gave no topic id: a recreated topic is told by its end alone");
        }
        *last = Some((Instant::now(), id.clone()));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_of_a_replaced_topic_only_when_both_ids_are_known_and_differ() {
        let old = position(7, Some("0123456789abcdef0123456789abcdef")).cursor.expect("a cursor");
        assert_eq!(of_cursor(Some(&old)), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(replaced(Some(&old), Some("0123456789abcdef0123456789abcdef")), None);
        assert_eq!(
            replaced(Some(&old), Some("fedcba9876543210fedcba9876543210")),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(replaced(Some(&old), None), None, "the broker gave no id: nothing to tell");
        assert_eq!(replaced(None, Some("fedcba9876543210fedcba9876543210")), None, "written before ids were kept");
        assert_eq!(replaced(Some("window=3"), Some("fedcba9876543210fedcba9876543210")), None, "not a topic id");
    }

    #[test]
    fn an_id_not_read_now_keeps_the_stored_one() {
        let stored = position(7, Some("0123456789abcdef0123456789abcdef")).cursor.expect("a cursor");
        let now = "fedcba9876543210fedcba9876543210".to_owned();
        assert_eq!(to_write(Some(now.clone()), Some(&stored)), Some(now));
        assert_eq!(to_write(None, Some(&stored)).as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(to_write(None, None), None);
        assert_eq!(to_write(None, Some("window=3")), None);
    }
}
