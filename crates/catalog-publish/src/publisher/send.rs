//! One batch's send: the channel's rate limit first, then the adapter's credentials (an access
//! token), then its request under the channel's request timeout, and what its answers say of
//! the channel (a throttling hold, a refusal an operator must act on).

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{ChannelPublisher, Unsent, LEASE_RAN_OUT};
use crate::adapter::{Attempt, Publish, Sent};
use crate::holding::{sending_under, Holding};
use crate::oauth::TokenError;
use crate::response::{classify_transport, TransportError, Verdict};
use crate::round::ChannelHold;

impl ChannelPublisher {
    /// Sends one batch of item versions through the adapter, waiting for the channel's rate
    /// limit first (one permit per request) and giving up on it after the request timeout.
    /// The adapter's credentials (an access token) are got after the permit, before the
    /// request timeout starts. Sends nothing (`LeaseRanOut`) when the claim's lease would run out before the
    /// request timeout: by then another lane may hold the items at newer versions, and these
    /// older ones must not reach the channel after them. A renewed round's send starts only
    /// while its renewals answer. Nothing starts once the channel is held (`Held`) or the
    /// publisher is stopping (`Stopping`); a send once started runs to its answer or its
    /// timeout.
    pub(super) async fn attempt(
        &self,
        batch: Vec<Publish>,
        deadline: Instant,
        holding: Option<&Arc<Holding>>,
        hold: &ChannelHold,
        shutdown: &CancellationToken,
    ) -> (Vec<Publish>, Result<Sent, Unsent>) {
        let Some(latest_start) = deadline.checked_sub(self.config.request_timeout) else {
            return (batch, Err(Unsent::LeaseRanOut));
        };
        // A stopping publisher starts nothing. A 429 answered to another send of this round (or
        // another lane's) holds this one: the contract says to wait at least that long, and
        // the rest of a round is not sent into it. Asked before a rate permit is taken (a held
        // send spends none) and again after (a 429, or shutdown, may have come meanwhile).
        let not_now = || {
            if shutdown.is_cancelled() {
                Some(Unsent::Stopping)
            } else {
                hold.until().map(|_| Unsent::Held)
            }
        };
        if let Some(unsent) = not_now() {
            return (batch, Err(unsent));
        }
        if let Some(limiter) = &self.limiter {
            // A permit that comes too late is not taken: it would be spent on nothing.
            tokio::select! {
                ready = tokio::time::timeout_at(latest_start.into(), limiter.until_ready()) => {
                    if ready.is_err() {
                        return (batch, Err(Unsent::LeaseRanOut));
                    }
                }
                _ = shutdown.cancelled() => return (batch, Err(Unsent::Stopping)),
            }
        }
        if let Some(unsent) = not_now() {
            return (batch, Err(unsent));
        }
        let lease_ran_out = || Instant::now() > latest_start || holding.is_some_and(|holding| !holding.still_held());
        if lease_ran_out() {
            return (batch, Err(Unsent::LeaseRanOut));
        }
        // The channel's credentials (an access token) are got before the request's timeout
        // starts: the time a slow token endpoint takes is the channel's, never the items'.
        // Fetched under that timeout, a token endpoint that never answered let it fire first,
        // and every item version of the request spent an attempt on a request never sent.
        let obtaining = Instant::now();
        let credentials = tokio::select! {
            obtained = tokio::time::timeout(self.config.request_timeout, self.adapter.obtain_credentials()) => {
                obtained.unwrap_or_else(|_| {
                    let waited = format!("no access token within {} ms", self.config.request_timeout.as_millis());
                    Err(Verdict::from(TokenError::unavailable(waited)))
                })
            }
            _ = shutdown.cancelled() => return (batch, Err(Unsent::Stopping)),
        };
        let sent = match credentials {
            // Nothing went out: held as the verdict says, and no attempt spent.
            Err(verdict) => Sent::each(batch.len(), Attempt { verdict, status: None, latency: obtaining.elapsed() }),
            Ok(()) => {
                // The credentials took time: the channel may have been held meanwhile, the
                // publisher stopped, or the claims' lease come too near for the request.
                if let Some(unsent) = not_now() {
                    return (batch, Err(unsent));
                }
                if lease_ran_out() {
                    return (batch, Err(Unsent::LeaseRanOut));
                }
                self.send_within_timeout(&batch, holding).await
            }
        };
        // A feed not created because the round's claims had passed (`claims_still_held`):
        // nothing reached the platform, and the items may be another publisher's by now, so
        // nothing is recorded for them, as for a send that never started.
        let lapsed =
            |attempt: &Attempt| matches!(&attempt.verdict, Verdict::Retry { reason, .. } if *reason == LEASE_RAN_OUT);
        if !sent.attempts.is_empty() && sent.attempts.iter().all(lapsed) {
            return (batch, Err(Unsent::LeaseRanOut));
        }
        // The longest wait any answer asks for; refused credentials told once per send.
        let throttled = (sent.attempts.iter())
            .filter_map(|attempt| match &attempt.verdict {
                Verdict::Throttled { retry_after }
                | Verdict::Unavailable { retry_after, .. }
                | Verdict::Blocked { retry_after, .. } => Some(*retry_after),
                _ => None,
            })
            .max();
        let blocked = sent.attempts.iter().find_map(|attempt| match &attempt.verdict {
            Verdict::Blocked { reason, error, .. } => Some((*reason, error)),
            _ => None,
        });
        if let Some((reason, error)) = blocked {
            self.events.blocked(&self.config.name, reason, error);
            hold.refuse(reason, error);
        } else if sent.attempts.iter().any(|attempt| !matches!(attempt.verdict, Verdict::Unavailable { .. })) {
            hold.taken();
        }
        if let Some(wait) = throttled.into_iter().chain(sent.pause).max() {
            hold.extend(wait);
        }
        (batch, Ok(sent))
    }

    /// The adapter's request for `batch`, given up on after the channel's request timeout:
    /// then every item version of it failed as a `timeout`.
    async fn send_within_timeout(&self, batch: &[Publish], holding: Option<&Arc<Holding>>) -> Sent {
        let at = Instant::now();
        let send = sending_under(holding.cloned(), self.adapter.send(batch));
        match tokio::time::timeout(self.config.request_timeout, send).await {
            Ok(sent) => sent,
            Err(_) => Sent::each(
                batch.len(),
                Attempt {
                    verdict: classify_transport(&TransportError {
                        kind: "timeout",
                        message: format!("no answer within {} ms", self.config.request_timeout.as_millis()),
                    }),
                    status: None,
                    latency: at.elapsed(),
                },
            ),
        }
    }
}
