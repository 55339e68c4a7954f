//! Claims held while a long round runs. A round planned longer than the configured lease (a
//! marketplace feed, waited for minutes) claims its items for that lease and renews it every
//! third of it while it sends, so a worker killed outright leaves them claimed one lease at
//! most (decision 0029).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_store::{HeldClaim, OutboxStore};

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

    fn until(&self) -> Instant {
        *self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What a renewal asked at `asked_at` that held `n_held` of `n_items` claims means, and
    /// the claims' new end when they are still ours. A renewal asked once the claims had
    /// passed their lease has lapsed whatever it counts: the store cannot tell this round's
    /// claims from another publisher's that took the items since (decision 0046).
    fn judge(&self, asked_at: Instant, n_held: u64, n_items: usize) -> Renewal {
        if self.lapsed.load(Ordering::Relaxed) || asked_at >= self.until() || (n_held as usize) < n_items {
            self.lapsed.store(true, Ordering::Relaxed);
            return Renewal::Lapsed;
        }
        *self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = asked_at + self.lease;
        Renewal::Held
    }

    /// At most one renewal has been missed: the claims are held a third of a lease longer
    /// at least, long enough to start a send (a feed is created within a call's timeout,
    /// and a seller's feeds are processed in the order they were created).
    pub(crate) fn still_held(&self) -> bool {
        !self.lapsed.load(Ordering::Relaxed) && self.until() >= Instant::now() + self.lease / 3
    }
}

tokio::task_local! {
    /// The claims of the round whose send runs in this task, if it is renewed.
    static ROUND_CLAIMS: Option<Arc<Holding>>;
}

/// Runs `send` knowing the claims of its round (`holding`, for a renewed round): an adapter
/// that makes several calls before its send takes effect asks [`claims_still_held`] before
/// the call that does.
pub(crate) async fn sending_under<F: std::future::Future>(holding: Option<Arc<Holding>>, send: F) -> F::Output {
    ROUND_CLAIMS.scope(holding, send).await
}

/// Whether the claims of the round sending in this task are still held, as before a send
/// starts (`Holding::still_held`): a marketplace feed asks just before the call that creates
/// the feed goes out (`feeds::exchange_while_held`), after its document was made and uploaded
/// and its access token fetched (minutes, if they are slow), since a feed created once
/// another publisher holds the items at newer versions would be applied after theirs
/// (decision 0046). True outside a renewed round.
pub(crate) fn claims_still_held() -> bool {
    ROUND_CLAIMS.try_with(|claims| claims.as_ref().is_none_or(|holding| holding.still_held())).unwrap_or(true)
}

/// Renews the claims of a round that outlasts the configured lease every third of it,
/// for as long as the round sends; does nothing for any other round.
pub(crate) async fn keep_held(
    holding: Option<&Holding>,
    store: &dyn OutboxStore,
    channel: &str,
    events: &dyn PublishEvents,
    claims: &[HeldClaim],
) -> Infallible {
    let Some(holding) = holding else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(holding.lease / 3).await;
        let asked_at = Instant::now();
        let renewal = match store.extend_claims(channel, claims, holding.lease).await {
            // Lapsed: another publisher may hold some of the items now, at newer versions,
            // so the round starts no more sends (what it has not sent is due again once the
            // claims just extended pass).
            Ok(n_held) => match holding.judge(asked_at, n_held, claims.len()) {
                Renewal::Lapsed => {
                    tracing::warn!(channel = %channel, n_held, n_items = claims.len(), "claims of a round in flight had passed their lease: another publisher may be sending those items; this round sends nothing more");
                    Renewal::Lapsed
                }
                renewal => renewal,
            },
            Err(error) => {
                tracing::warn!(channel = %channel, %error, n_items = claims.len(), "renewing the claims of a round in flight failed; retrying at the next renewal");
                Renewal::Failed
            }
        };
        events.lease_renewed(channel, renewal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);

    #[test]
    fn a_renewal_holds_the_claims_while_they_are_ours() {
        let claimed_at = Instant::now();
        let holding = Holding::new(claimed_at, LEASE);
        assert_eq!(holding.judge(claimed_at + LEASE / 3, 2, 2), Renewal::Held);
        assert_eq!(holding.until(), claimed_at + LEASE / 3 + LEASE);
        // Two renewals missed (the store out of reach), the third in time: still ours.
        assert_eq!(holding.judge(claimed_at + LEASE * 4 / 3 - Duration::from_millis(1), 2, 2), Renewal::Held);
        assert!(!holding.lapsed.load(Ordering::Relaxed));
    }

    #[test]
    fn a_renewal_missing_claims_has_lapsed_for_good() {
        let claimed_at = Instant::now();
        let holding = Holding::new(claimed_at, LEASE);
        assert_eq!(holding.judge(claimed_at + LEASE / 3, 1, 2), Renewal::Lapsed);
        assert_eq!(holding.judge(claimed_at + LEASE * 2 / 3, 2, 2), Renewal::Lapsed, "lapsed for good");
        assert!(!holding.still_held());
    }

    /// The store out of reach for a whole lease: another publisher may have claimed the items
    /// since, and the renewal that then answers counts its claims as held. It has lapsed.
    #[test]
    fn a_renewal_asked_after_the_lease_passed_has_lapsed_whatever_it_counts() {
        let claimed_at = Instant::now();
        let holding = Holding::new(claimed_at, LEASE);
        assert_eq!(holding.judge(claimed_at + LEASE, 2, 2), Renewal::Lapsed);
        assert_eq!(holding.until(), claimed_at + LEASE, "not moved on by a renewal that was not ours");
        assert!(!holding.still_held());
    }
}
