//! One channel's publisher: claims due item versions from the outbox, sends each per the
//! storefront contract under the channel's concurrency and rate limit, and records how every
//! attempt ended.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use catalog_store::{CatalogStore, OutboxClaim, OutboxEntry, PublishOutcome, PublishRecord, StoreError};
use chrono::Utc;
use futures::StreamExt as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::channel::ChannelConfig;
use crate::response::{classify_response, classify_transport, TransportError, Verdict};

/// Told about every finished attempt, for metrics and logs kept by the caller.
pub trait PublishEvents: Send + Sync + 'static {
    fn attempted(&self, entry: &OutboxEntry, record: &PublishRecord);
}

/// Why a channel's publisher stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("building the HTTP client: {0}")]
    Client(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

#[derive(Serialize)]
struct InvalidateBody<'a> {
    item_id: String,
    sku: &'a str,
    quantity: i64,
    version: u64,
}

/// How often an idle channel looks at the outbox.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// Rounds (claim, send, record) a channel runs at once, at most one per request allowed in
/// flight.
const LANES: usize = 2;

pub struct ChannelPublisher {
    config: ChannelConfig,
    store: Arc<dyn CatalogStore>,
    client: reqwest::Client,
    limiter: DefaultDirectRateLimiter,
    events: Arc<dyn PublishEvents>,
}

impl std::fmt::Debug for ChannelPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelPublisher").field("config", &self.config).finish_non_exhaustive()
    }
}

impl ChannelPublisher {
    pub fn new(
        config: ChannelConfig,
        store: Arc<dyn CatalogStore>,
        events: Arc<dyn PublishEvents>,
    ) -> Result<Self, PublishError> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .pool_max_idle_per_host(config.concurrency)
            .build()
            .map_err(|error| PublishError::Client(error.to_string()))?;
        let per_second = NonZeroU32::new(config.requests_per_second.max(1)).expect("clamped to at least 1");
        let limiter = RateLimiter::direct(Quota::per_second(per_second));
        Ok(Self { config, store, client, limiter, events })
    }

    /// Publishes until `shutdown`; once `until_drained` fires, returns as soon as the channel
    /// has nothing left waiting (everything published or dead-lettered). Returns the number of
    /// item versions the channel accepted or already held.
    pub async fn run(self, shutdown: CancellationToken, until_drained: CancellationToken) -> Result<u64, PublishError> {
        // A 429 holds the whole channel, every lane.
        let hold = std::sync::Mutex::new(None);
        // Never more lanes than requests allowed in flight: together they stay within it.
        let n_lanes = LANES.min(self.config.concurrency.max(1));
        let concurrency = self.config.concurrency.max(1) / n_lanes;
        let lanes = (0..n_lanes).map(|_| self.lane(concurrency, &shutdown, &until_drained, &hold));
        let done = futures::future::try_join_all(lanes).await?;
        Ok(done.into_iter().sum())
    }

    /// One lane: claim a round, send it, record it, again. `LANES` of them share the channel's
    /// concurrency, so one lane's claim and record overlap another's sends; claims lease
    /// their items, so no two lanes ever hold the same item.
    async fn lane(
        &self,
        concurrency: usize,
        shutdown: &CancellationToken,
        until_drained: &CancellationToken,
        hold: &std::sync::Mutex<Option<Instant>>,
    ) -> Result<u64, PublishError> {
        let claim = OutboxClaim {
            limit: concurrency * 4,
            // At least long enough for a claimed batch to go out and time out.
            lease: self.config.lease.max(self.config.request_timeout * 2),
            settle: self.config.settle,
            max_wait: self.config.max_wait,
        };
        let mut n_done = 0;
        loop {
            if shutdown.is_cancelled() {
                return Ok(n_done);
            }
            let held = *hold.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(until) = held.filter(|until| *until > Instant::now()) {
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
                    tracing::warn!(channel = %self.config.name, %error, "claiming publishes failed, retrying");
                    self.idle(shutdown).await;
                    continue;
                }
            };
            if entries.is_empty() {
                if until_drained.is_cancelled() && self.nothing_waiting().await? {
                    return Ok(n_done);
                }
                self.idle(shutdown).await;
                continue;
            }
            let claimed = round_started.elapsed();
            let attempts: Vec<(OutboxEntry, Verdict, Option<u16>, Duration)> =
                futures::stream::iter(entries.into_iter().map(|entry| self.attempt(entry)))
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
            let mut records = Vec::with_capacity(attempts.len());
            for (entry, verdict, status, latency) in attempts {
                if let Verdict::Throttled { retry_after } = &verdict {
                    let until = Instant::now() + *retry_after;
                    let mut held = hold.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    *held = Some(held.map_or(until, |current| current.max(until)));
                }
                records.push((self.to_record(&entry, verdict, status, latency), entry));
            }
            // One transaction for the round: one commit, however many items went out. A store
            // failure is retried (the transaction left nothing behind); giving up would stop the
            // channel while the worker goes on, and the lease would resend what was accepted.
            let rows: Vec<PublishRecord> = records.iter().map(|(record, _)| record.clone()).collect();
            let sent = round_started.elapsed();
            let mut backoff = Duration::from_millis(100);
            while let Err(error) = self.store.record_publishes(&rows).await {
                tracing::warn!(channel = %self.config.name, %error, n_records = rows.len(), "recording publishes failed, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return Ok(n_done),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            tracing::debug!(
                channel = %self.config.name,
                n_items = rows.len(),
                claim_ms = claimed.as_millis() as u64,
                send_ms = (sent - claimed).as_millis() as u64,
                record_ms = (round_started.elapsed() - sent).as_millis() as u64,
                "publish round"
            );
            for (record, entry) in &records {
                self.events.attempted(entry, record);
                if matches!(record.outcome, PublishOutcome::Published | PublishOutcome::Superseded { .. }) {
                    n_done += 1;
                }
            }
        }
    }

    async fn idle(&self, shutdown: &CancellationToken) {
        tokio::select! {
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    async fn nothing_waiting(&self) -> Result<bool, PublishError> {
        let depths = self.store.outbox_depth().await?;
        Ok(depths.iter().filter(|depth| depth.channel == self.config.name).all(|depth| depth.pending == 0))
    }

    /// Sends one item version, waiting for the channel's rate limit first.
    async fn attempt(&self, entry: OutboxEntry) -> (OutboxEntry, Verdict, Option<u16>, Duration) {
        self.limiter.until_ready().await;
        let url = format!("{}/v1/tenants/{}/items/{}/invalidate", self.config.base_url, entry.tenant, entry.item_id);
        let body = InvalidateBody {
            item_id: entry.item_id.to_string(),
            sku: entry.sku.as_str(),
            quantity: entry.quantity,
            version: entry.version,
        };
        let mut request = self
            .client
            .post(&url)
            .header("Idempotency-Key", format!("{}:{}", entry.item_id, entry.version))
            .json(&body);
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(traceparent) = &entry.traceparent {
            request = request.header("traceparent", traceparent);
        }
        let started = Instant::now();
        let (verdict, status) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after =
                    response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
                // A body that cannot be read still leaves the status to decide by.
                let text = response.text().await.unwrap_or_default();
                (classify_response(status, retry_after.as_deref(), &text, entry.version), Some(status))
            }
            Err(error) => {
                let kind = if error.is_timeout() {
                    "timeout"
                } else if error.is_connect() {
                    "connect"
                } else {
                    "connection"
                };
                (classify_transport(&TransportError { kind, message: error.to_string() }), None)
            }
        };
        (entry, verdict, status, started.elapsed())
    }

    /// Turns a verdict into what the store keeps.
    fn to_record(
        &self,
        entry: &OutboxEntry,
        verdict: Verdict,
        status: Option<u16>,
        latency: Duration,
    ) -> PublishRecord {
        let attempt = entry.attempts + 1;
        let mut record = PublishRecord {
            item_id: entry.item_id,
            channel: self.config.name.clone(),
            version: entry.version,
            attempt,
            outcome: PublishOutcome::Published,
            status,
            latency_ms: Some(latency.as_millis() as u64),
            error: None,
            dead_letter_reason: None,
            body: None,
        };
        match verdict {
            Verdict::Published => {}
            Verdict::Superseded { current_version } => record.outcome = PublishOutcome::Superseded { current_version },
            Verdict::Throttled { retry_after } => {
                record.outcome = PublishOutcome::RetryAt(Utc::now() + retry_after);
                record.error = Some(format!("throttled for {} ms", retry_after.as_millis()));
            }
            Verdict::Retry { reason, error } if attempt >= self.config.max_attempts => {
                record.outcome = PublishOutcome::DeadLettered;
                record.dead_letter_reason = Some("retries_exhausted".to_owned());
                record.error = Some(format!("{reason}: {error}"));
            }
            Verdict::Retry { reason, error } => {
                record.outcome = PublishOutcome::RetryAt(Utc::now() + self.backoff(attempt));
                record.error = Some(format!("{reason}: {error}"));
            }
            Verdict::DeadLetter { reason, error, body } => {
                record.outcome = PublishOutcome::DeadLettered;
                record.dead_letter_reason = Some(reason);
                record.error = Some(error);
                record.body = body;
            }
        }
        record
    }

    /// Exponential backoff with jitter for the `attempt`-th failure.
    fn backoff(&self, attempt: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.config.backoff_min)
            .with_max_delay(self.config.backoff_max)
            .with_jitter()
            .with_max_times(attempt as usize)
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.config.backoff_max)
    }
}
