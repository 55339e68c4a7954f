//! The one drain loop every channel runs: claim due item versions from the outbox (a round
//! sized to fit its lease, `round`), give each the listing and quantity the channel's stock
//! rules say (skipping a SKU the channel does not list), send them through the channel's
//! adapter in batches as large as it takes, under its concurrency and rate limit while the
//! lease lasts, hold the channel on throttling or a budget running low, and record how every
//! attempt ended, with the quantity sent and its rule, one transaction per round. Shutdown
//! starts no more sends: the requests already sent are waited for and recorded, the rest of
//! the round given back (a feed, waited for minutes, is cut short and given back whole).

use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_core::{ChannelQuantity, Classify as _};
use catalog_store::{HeldClaim, OutboxClaim, OutboxEntry, OutboxStore, PublishOutcome, PublishRecord};
use futures::StreamExt as _;
use governor::{DefaultDirectRateLimiter, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::adapter::{Attempt, ChannelAdapter, Publish, Sent};
use crate::channel::ChannelConfig;
use crate::holding::{keep_held, Holding};
use crate::response::Verdict;
use crate::round::{in_batches, plan_round, sending_budget, ChannelHold, Refused, RoundPlan};
use crate::work::{WorkSignal, WorkWaiter};

mod drain;
mod events;
mod records;
mod send;
mod shared;

pub use events::{PublishError, PublishEvents, PublishRound};
pub use shared::LISTING_SHARED_BY_TENANTS;

/// Why a batch of a round was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unsent {
    /// Its lease would run out before its answer could come: left to the lease.
    LeaseRanOut,
    /// The channel throttled meanwhile: given back, sent once the hold has passed.
    Held,
    /// The publisher is stopping: given back, for the next publisher to send at once.
    Stopping,
}

/// Rounds (claim, send, record) a channel runs at once, at most one per send allowed in
/// flight.
const LANES: usize = 2;

/// How often an idle lane looks again once its channel is draining (a finished source).
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// The longest request timeout whose sends a stopping publisher waits for (decision 0037):
/// a request cut off after it was sent may still be applied by the platform, later than a
/// newer version another publisher sends meanwhile. Beyond it (a feed, waited for up to
/// tens of minutes) the round is cut short; a platform applies a seller's feeds in the
/// order they were created.
const LONGEST_WAIT_AT_SHUTDOWN: Duration = Duration::from_secs(30);

/// The reason of an adapter's answer for a send it did not make because its round's claims
/// had passed (a marketplace feed not created): taken as a send that never started.
pub(crate) const LEASE_RAN_OUT: &str = "lease_ran_out";

/// Drains one channel's outbox rows through its adapter.
pub struct ChannelPublisher {
    config: ChannelConfig,
    adapter: Arc<dyn ChannelAdapter>,
    store: Arc<dyn OutboxStore>,
    limiter: Option<DefaultDirectRateLimiter>,
    events: Arc<dyn PublishEvents>,
    work: Option<WorkSignal>,
    /// Items whose SKU no other tenant's item held when last asked (decision 0056).
    single_tenant: shared::SingleTenant,
    /// The channel's throttling hold, every lane's and the reconciler's.
    hold: Arc<ChannelHold>,
    drain: drain::DrainStart,
}

impl std::fmt::Debug for ChannelPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelPublisher")
            .field("config", &self.config)
            .field("adapter", &self.adapter)
            .finish_non_exhaustive()
    }
}

impl ChannelPublisher {
    pub fn new(
        config: ChannelConfig,
        adapter: Arc<dyn ChannelAdapter>,
        store: Arc<dyn OutboxStore>,
        events: Arc<dyn PublishEvents>,
    ) -> Self {
        let limiter = config.rate.map(|rate| RateLimiter::direct(rate.quota()));
        let hold = Arc::new(ChannelHold::default());
        Self {
            config,
            adapter,
            store,
            limiter,
            events,
            work: None,
            single_tenant: shared::SingleTenant::default(),
            hold,
            drain: drain::DrainStart::default(),
        }
    }

    /// Holds the channel by `hold`, shared with its reconciler: a 429 either meets holds both.
    pub fn held_by(mut self, hold: Arc<ChannelHold>) -> Self {
        self.hold = hold;
        self
    }

    /// Wakes the channel's idle lanes when `work` is signalled, instead of at the next poll.
    pub fn woken_by(mut self, work: WorkSignal) -> Self {
        self.work = Some(work);
        self
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Publishes until `shutdown`; once `until_drained` fires, returns as soon as nothing the
    /// channel held when the drain began is left waiting (published or dead-lettered). Returns the number of
    /// item versions the channel accepted or already held.
    pub async fn run(self, shutdown: CancellationToken, until_drained: CancellationToken) -> Result<u64, PublishError> {
        // A 429 holds the whole channel, every lane, from the moment it is answered.
        let hold: &ChannelHold = &self.hold;
        // Never more lanes than sends allowed in flight: together they stay within it.
        let n_lanes = LANES.min(self.config.concurrency.max(1));
        let concurrency = self.config.concurrency.max(1) / n_lanes;
        let plan = plan_round(&self.config, n_lanes, concurrency, self.adapter.max_batch());
        // A round may take longer than the configured lease (one send outlasts it at this
        // rate limit and timeout: a feed): its claims are renewed while it runs.
        let renewed_every_ms = plan.renewed.map(|lease| (lease / 3).as_millis() as u64);
        tracing::info!(channel = %self.config.name, n_lanes, round_items = plan.limit, round_ms = plan.lease.as_millis() as u64, lease_ms = self.config.lease.as_millis() as u64, renewed_every_ms, "publishing");
        let lanes = (0..n_lanes).map(|_| {
            let waiter = self.work.as_ref().map_or_else(WorkWaiter::never, WorkSignal::subscribe);
            self.lane(concurrency, plan, waiter, &shutdown, &until_drained, hold)
        });
        let done = futures::future::try_join_all(lanes).await?;
        // A drain that stopped at a refusal did not empty the channel: say so.
        if let Some(Refused { reason, error, .. }) = refused_for_good(hold).filter(|_| until_drained.is_cancelled()) {
            if !shutdown.is_cancelled() {
                return Err(PublishError::Blocked { channel: self.config.name.clone(), reason, error });
            }
        }
        Ok(done.into_iter().sum())
    }

    /// One lane: claim a round, send it, record it, again. `LANES` of them share the channel's
    /// concurrency, so one lane's claim and record overlap another's sends; claims lease
    /// their items, so no two lanes ever hold the same item.
    async fn lane(
        &self,
        concurrency: usize,
        RoundPlan { limit, lease, renewed }: RoundPlan,
        mut work: WorkWaiter,
        shutdown: &CancellationToken,
        until_drained: &CancellationToken,
        hold: &ChannelHold,
    ) -> Result<u64, PublishError> {
        // A round that outlasts the configured lease claims for that lease and renews it
        // while it runs (`Holding`); the round's own budget stays `lease`.
        let claim = OutboxClaim {
            limit,
            lease: renewed.unwrap_or(lease),
            settle: self.config.settle,
            max_wait: self.config.max_wait,
        };
        let mut n_done = 0;
        loop {
            if shutdown.is_cancelled() {
                return Ok(n_done);
            }
            // Draining, a channel the platform refuses until an operator acts would be sent
            // the same items every hold for ever (they spend no attempt): the drain ends here.
            if until_drained.is_cancelled() && refused_for_good(hold).is_some() {
                return Ok(n_done);
            }
            // Draining while claims still find rows: they may all be another process's,
            // queued after the drain began, for ever (a Kafka worker's backlog).
            if until_drained.is_cancelled()
                && self.drain.done_while_busy(&*self.store, &*self.events, &self.config.name).await
            {
                return Ok(n_done);
            }
            if let Some(until) = hold.until() {
                tracing::info!(channel = %self.config.name, wait_ms = until.saturating_duration_since(Instant::now()).as_millis() as u64, "channel throttled, holding its publishes");
                tokio::select! {
                    _ = tokio::time::sleep_until(until.into()) => {}
                    _ = shutdown.cancelled() => return Ok(n_done),
                }
            }
            let round_started = Instant::now();
            let entries = match self.store.claim_outbox(&self.config.name, &claim).await {
                Ok(entries) => entries,
                Err(error) => {
                    self.events.store_failed(&self.config.name, "claim", &error);
                    tracing::warn!(channel = %self.config.name, %error, kind = error.kind(), "claiming publishes failed, retrying");
                    self.idle(&mut work, shutdown, until_drained).await;
                    continue;
                }
            };
            if entries.is_empty() {
                if until_drained.is_cancelled() && self.drain.done(&*self.store, &*self.events, &self.config.name).await
                {
                    return Ok(n_done);
                }
                self.idle(&mut work, shutdown, until_drained).await;
                continue;
            }
            let claimed = round_started.elapsed();
            // The store leased the round from a moment after this one: a send that starts a
            // request timeout before this deadline ends while no other lane can hold the item
            // (as long as a renewed round's renewals answer), a tenth of the lease before it
            // ends, left for recording the round (`sending_budget`).
            let deadline = round_started + sending_budget(lease);
            let holding = renewed.map(|held_for| Arc::new(Holding::new(round_started, held_for)));
            let round_claims: Vec<HeldClaim> = entries.iter().map(OutboxEntry::held_claim).collect();
            let Some(shared) = self.shared_skus(&entries).await else {
                self.give_back(&round_claims, "the SKUs several tenants hold could not be read").await;
                self.idle(&mut work, shutdown, until_drained).await;
                continue;
            };
            let mut records = Vec::with_capacity(entries.len());
            let mut publishes = Vec::with_capacity(entries.len());
            for entry in entries {
                if entry.attempts >= self.config.max_attempts {
                    records.push((self.out_of_attempts(&entry), entry));
                    continue;
                }
                if let Some(tenants) = shared.get(entry.item.sku()) {
                    records.push((self.shared_listing(&entry, tenants), entry));
                    continue;
                }
                match self.config.rules.quantity_for(&entry.item) {
                    ChannelQuantity::Send { listing, quantity, rule } => {
                        publishes.push(Publish { entry, listing, quantity, rule });
                    }
                    ChannelQuantity::Unmapped => records.push((self.skipped(&entry), entry)),
                }
            }
            let batches = in_batches(publishes, self.adapter.max_batch());
            let sending = futures::stream::iter(
                batches.into_iter().map(|batch| self.attempt(batch, deadline, holding.as_ref(), hold, shutdown)),
            )
            .buffer_unordered(concurrency)
            .collect::<Vec<(Vec<Publish>, Result<Sent, Unsent>)>>();
            // At shutdown a round of requests starts no more sends (`Unsent::Stopping`) and
            // waits for those in flight, each within its request timeout, to record them. A
            // feed's round is cut short rather than waited for minutes: nothing of it is
            // recorded, and its claims are given back, so the next publisher sends them at
            // once instead of after the lease.
            let sent = tokio::select! {
                sent = sending => sent,
                _ = shutdown.cancelled(), if self.config.request_timeout > LONGEST_WAIT_AT_SHUTDOWN => {
                    self.give_back(&round_claims, "shutting down before the round was recorded").await;
                    return Ok(n_done);
                }
                never = keep_held(holding.as_deref(), &*self.store, &self.config.name, &*self.events, &round_claims) => match never {},
            };
            let (mut held_back, mut not_started) = (Vec::new(), Vec::new());
            for (batch, sent) in sent {
                let attempts = match sent {
                    Ok(Sent { attempts, .. }) => attempts,
                    Err(Unsent::LeaseRanOut) => {
                        for publish in &batch {
                            self.events.lease_ran_out(&publish.entry);
                        }
                        continue;
                    }
                    Err(Unsent::Held) => {
                        held_back.extend(batch.iter().map(|publish| publish.entry.held_claim()));
                        continue;
                    }
                    Err(Unsent::Stopping) => {
                        not_started.extend(batch.iter().map(|publish| publish.entry.held_claim()));
                        continue;
                    }
                };
                let n_answered = attempts.len();
                let mut attempts = attempts.into_iter();
                for publish in batch {
                    // An adapter that answers for fewer item versions than it was given leaves the
                    // rest failed for now, never silently done.
                    let attempt = attempts.next().unwrap_or_else(|| Attempt {
                        verdict: Verdict::Retry {
                            reason: "no_answer",
                            error: format!("the adapter answered for {n_answered} item versions of a larger batch"),
                        },
                        status: None,
                        latency: Duration::ZERO,
                    });
                    let record = self.to_record(&publish, attempt);
                    records.push((record, publish.entry));
                }
            }
            if !held_back.is_empty() {
                // Not sent: the channel throttled meanwhile. Due again at once, so the next
                // claim (after the hold) takes them, not a lease later.
                self.give_back(&held_back, "the channel throttled while the round was sending").await;
            }
            if !not_started.is_empty() {
                self.give_back(&not_started, "shutting down before they were sent").await;
            }
            // One transaction for the round: one commit, however many items went out. A store
            // failure is retried (the transaction left nothing behind); giving up would stop the
            // channel while the worker goes on, and the lease would resend what was accepted.
            let rows: Vec<PublishRecord> = records.iter().map(|(record, _)| record.clone()).collect();
            let sent = round_started.elapsed();
            let mut backoff = Duration::from_millis(100);
            let resolved = loop {
                match self.store.record_publishes(&rows).await {
                    Ok(resolved) => break resolved,
                    Err(error) => {
                        self.events.record_failed(&self.config.name, &error);
                        tracing::warn!(channel = %self.config.name, %error, kind = error.kind(), class = error.failure_class().as_str(), n_records = rows.len(), "recording publishes failed, retrying");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return Ok(n_done),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            };
            let round = PublishRound {
                channel: self.config.name.clone(),
                n_items: round_claims.len(),
                limit,
                claim: claimed,
                send: sent - claimed,
                record: round_started.elapsed() - sent,
            };
            tracing::debug!(
                channel = %self.config.name,
                n_items = round.n_items,
                claim_ms = round.claim.as_millis() as u64,
                send_ms = round.send.as_millis() as u64,
                record_ms = round.record.as_millis() as u64,
                "publish round"
            );
            self.events.round(&round);
            for (record, entry) in &records {
                self.events.attempted(entry, record);
                if matches!(record.outcome, PublishOutcome::Published | PublishOutcome::Superseded { .. }) {
                    n_done += 1;
                }
            }
            for letter in &resolved {
                self.events.resolved(letter);
            }
        }
    }

    /// Gives back the claims of a round cut short; if the store cannot take them now, they
    /// are due again when their lease ends.
    async fn give_back(&self, claims: &[HeldClaim], why: &'static str) {
        match self.store.release_claims(&self.config.name, claims).await {
            Ok(n_released) => {
                tracing::info!(channel = %self.config.name, n_released, why, "gave back the claims of items not sent");
            }
            Err(error) => {
                self.events.store_failed(&self.config.name, "give_back", &error);
                tracing::warn!(channel = %self.config.name, %error, n_items = claims.len(), why, "could not give back the claims of items not sent; they are due again when their lease ends");
            }
        }
    }

    /// Waits for work, the next poll, shutdown, or the start of draining. Signalled work is
    /// claimed once it has settled: the versions a batch just queued are due a settle time
    /// after their batch began, so a claim at the signal may find none of them and leave them
    /// to the next signal or poll (the last batch before a quiet spell waited a whole poll).
    /// While draining, polls at most every `DRAIN_POLL` (another lane's round may be all that
    /// is left): a finished source's run ends when its last changes are recorded, not at a
    /// lane's next poll (half a second on the log channel).
    async fn idle(&self, work: &mut WorkWaiter, shutdown: &CancellationToken, until_drained: &CancellationToken) {
        let settled = async {
            work.notified().await;
            tokio::time::sleep(self.config.settle).await;
        };
        let draining = until_drained.is_cancelled();
        let poll = if draining { self.config.idle_poll.min(DRAIN_POLL) } else { self.config.idle_poll };
        tokio::select! {
            () = settled => {}
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.cancelled() => {}
            _ = until_drained.cancelled(), if !draining => {}
        }
    }
}

/// A refusal the channel met on two sends in a row: the second came after the hold the first
/// put on the channel, so it is about the channel, not one item (decision 0059).
fn refused_for_good(hold: &ChannelHold) -> Option<Refused> {
    hold.refused().filter(|refused| refused.in_a_row >= 2)
}
