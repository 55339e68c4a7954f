//! Claims held while a long round runs. A round planned longer than the configured lease (a
//! marketplace feed, waited for minutes) claims its items for that lease and renews it every
//! third of it while it sends, so a worker killed outright leaves them claimed one lease at
//! most (decision 0029).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use catalog_core::ItemId;
use catalog_store::OutboxStore;

use crate::publisher::PublishEvents;

/// How renewing a long round's claims went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Every claim of the round is held for another lease.
    Held,
    /// Some claims had passed their lease (the store was out of reach for longer than it):
    /// another publisher may be sending those items, and the round starts no more sends.
    Lapsed,
    /// The store could not be asked; the claims run out unless the next renewal succeeds.
    Failed,
}

impl Renewal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Lapsed => "lapsed",
            Self::Failed => "failed",
        }
    }
}

/// The claims of a round that outlasts the configured lease: claimed for that lease and
/// renewed every third of it while the round runs, so that a worker killed outright leaves
/// them claimed one lease at most, not the whole round's (a marketplace feed is waited for
/// up to 20 minutes; its round is leased 42).
#[derive(Debug)]
pub(crate) struct Holding {
    lease: Duration,
    /// Until when the store holds the claims, as of the last renewal that answered.
    until: std::sync::Mutex<Instant>,
    /// A renewal found claims past their lease: for good, even if a later renewal finds
    /// them leased again (by another publisher).
    lapsed: AtomicBool,
}

impl Holding {
    pub(crate) fn new(claimed_at: Instant, lease: Duration) -> Self {
        Self { lease, until: std::sync::Mutex::new(claimed_at + lease), lapsed: AtomicBool::new(false) }
    }

    pub(crate) fn renewed(&self, asked_at: Instant) {
        *self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = asked_at + self.lease;
    }

    /// At most one renewal has been missed: the claims are held a third of a lease longer
    /// at least, long enough to start a send (a feed is created within a call's timeout,
    /// and a seller's feeds are processed in the order they were created).
    pub(crate) fn still_held(&self) -> bool {
        !self.lapsed.load(Ordering::Relaxed)
            && *self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) >= Instant::now() + self.lease / 3
    }
}

/// Renews the claims of a round that outlasts the configured lease every third of it,
/// for as long as the round sends; does nothing for any other round.
pub(crate) async fn keep_held(
    holding: Option<&Holding>,
    store: &dyn OutboxStore,
    channel: &str,
    events: &dyn PublishEvents,
    items: &[ItemId],
) -> Infallible {
    let Some(holding) = holding else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(holding.lease / 3).await;
        let asked_at = Instant::now();
        let renewal = match store.extend_claims(channel, items, holding.lease).await {
            Ok(n_held) if n_held as usize >= items.len() => {
                holding.renewed(asked_at);
                Renewal::Held
            }
            // Not renewed: another publisher may hold some of the items now, at newer
            // versions, so the round starts no more sends (what it has not sent is due again
            // once the claims just extended pass).
            Ok(n_held) => {
                holding.lapsed.store(true, Ordering::Relaxed);
                tracing::warn!(channel = %channel, n_held, n_items = items.len(), "some claims of a round in flight had passed their lease: another publisher may be sending those items; this round sends nothing more");
                Renewal::Lapsed
            }
            Err(error) => {
                tracing::warn!(channel = %channel, %error, n_items = items.len(), "renewing the claims of a round in flight failed; retrying at the next renewal");
                Renewal::Failed
            }
        };
        events.lease_renewed(channel, renewal);
    }
}
