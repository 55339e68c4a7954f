//! Telling idle publishers there is work: whoever queues publishes (the applier, after a
//! batch that changed items) bumps the signal, and every waiting lane of every channel wakes.
//! A lane that was busy when it was bumped sees the change on its next wait, so no bump is
//! missed; without a signal, lanes poll.

use tokio::sync::watch;

/// The sending side, held by whoever queues publishes.
#[derive(Debug, Clone)]
pub struct WorkSignal(watch::Sender<u64>);

impl WorkSignal {
    pub fn new() -> Self {
        Self(watch::Sender::new(0))
    }

    /// Says that publishes were queued.
    pub fn notify(&self) {
        self.0.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A waiter for one lane.
    pub fn subscribe(&self) -> WorkWaiter {
        WorkWaiter(Some(self.0.subscribe()))
    }
}

impl Default for WorkSignal {
    fn default() -> Self {
        Self::new()
    }
}

/// The waiting side, one per lane.
#[derive(Debug)]
pub struct WorkWaiter(Option<watch::Receiver<u64>>);

impl WorkWaiter {
    /// A waiter that is never woken: its lane polls.
    pub fn never() -> Self {
        Self(None)
    }

    /// Returns once work was signalled since the last call (at once if it was meanwhile).
    pub async fn notified(&mut self) {
        match &mut self.0 {
            Some(receiver) => {
                if receiver.changed().await.is_err() {
                    // Nobody can signal any more: wait for the poll instead.
                    self.0 = None;
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

impl Clone for WorkWaiter {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}
