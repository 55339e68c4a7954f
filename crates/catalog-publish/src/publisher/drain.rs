//! When a draining publisher is done: a finite run (a file, standard input, `--once`) waits
//! for what was queued before its drain began, not for the whole channel. Another process
//! queueing on the channel meanwhile (a Kafka worker, a scheduled puller, an admin release)
//! would otherwise keep it waiting for ever.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use catalog_store::OutboxStore;

use super::PublishEvents;
use chrono::{DateTime, Utc};

/// How often a draining lane whose claims still find rows asks whether the drain is done:
/// another process's backlog keeps every claim busy, and the question reads the outbox's
/// depth, a scan of it.
const LOOK_WHILE_BUSY_EVERY: Duration = Duration::from_secs(1);

/// When the drain began, by the store's clock, once looked at; and when a busy lane last
/// looked.
#[derive(Debug, Default)]
pub(super) struct DrainStart {
    began: OnceLock<DateTime<Utc>>,
    last_look: Mutex<Option<Instant>>,
}

impl DrainStart {
    /// `done`, asked at most every `LOOK_WHILE_BUSY_EVERY` by the lanes together: for a lane
    /// about to claim, whose last claims found rows (another process's, perhaps, queued
    /// after the drain began). `false` when not asked this time.
    pub(super) async fn done_while_busy(
        &self,
        store: &dyn OutboxStore,
        events: &dyn PublishEvents,
        channel: &str,
    ) -> bool {
        {
            let mut last_look = self.last_look.lock().expect("the last look's time");
            if last_look.is_some_and(|at| at.elapsed() < LOOK_WHILE_BUSY_EVERY) {
                return false;
            }
            *last_look = Some(Instant::now());
        }
        self.done(store, events, channel).await
    }

    /// Whether nothing of `channel` queued before the drain began is left: every row of it
    /// published, superseded or dead-lettered. A row of the run's, in backoff or leased by
    /// another publisher, is still waited for; a row queued since (stamped later by the same
    /// clock) is not, nor is a row another process keeps busy. The drain begins at the first
    /// look, which comes after the run's last batch was committed (a lane looks at each
    /// round's start once the drain is signalled). A store that cannot say now is asked again
    /// at the next idle turn (as a failed claim is), not taken for the channel's end.
    pub(super) async fn done(&self, store: &dyn OutboxStore, events: &dyn PublishEvents, channel: &str) -> bool {
        let began = match self.began.get() {
            Some(began) => *began,
            None => match store.outbox_clock().await {
                Ok(now) => *self.began.get_or_init(|| now),
                Err(error) => {
                    events.store_failed(channel, "drain_clock", &error);
                    tracing::warn!(channel, %error, "reading the store's clock failed, retrying");
                    return false;
                }
            },
        };
        match store.outbox_depth().await {
            Ok(depths) => depths
                .iter()
                .filter(|depth| depth.channel == channel)
                .all(|depth| depth.pending == 0 || depth.oldest_enqueued_at.is_some_and(|oldest| oldest > began)),
            Err(error) => {
                events.store_failed(channel, "drain_depth", &error);
                tracing::warn!(channel, %error, "reading what waits to be published failed, retrying");
                false
            }
        }
    }
}
