//! Publishing orchestration: which publishers a process runs (one per HTTP channel, the log
//! channel when none is configured, or none), each the same drain loop of
//! `catalog-publish`; their metrics and logs; the outbox and dead-letter gauges; and the
//! auto-heal of dead letters (decision 0007).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use catalog_core::{Classify, FailureClass};
use catalog_publish::{ChannelConfig, ChannelPublisher, LogChannel, PublishEvents, PublishRound, Renewal, WorkSignal};
use catalog_store::{
    DeadLetterHeal, OutboxEntry, OutboxStore, PublishOutcome, PublishRecord, ResolvedDeadLetter, StoreError,
};
use tokio_util::sync::CancellationToken;

use crate::channels::{BuiltChannel, PublishSettings, STOREFRONT_CHANNEL};
use crate::metrics::Metrics;

/// How the log channel drains: everything due at once (nothing to coalesce for a reader of
/// standard output), no rate limit, and a slow poll, since the applier wakes it.
fn log_channel_config(settings: &PublishSettings) -> ChannelConfig {
    let mut config = ChannelConfig::new(STOREFRONT_CHANNEL);
    config.max_attempts = settings.max_attempts.max(1);
    config.concurrency = 256;
    config.rate = None;
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    config.lease = Duration::from_secs(30);
    config.idle_poll = Duration::from_millis(500);
    config
}

/// The publishers for `channels` (from `settings`): one per HTTP channel, or the log channel
/// when there is none. Each is woken by `work` and counted in `metrics`.
pub fn publishers(
    channels: Vec<BuiltChannel>,
    settings: &PublishSettings,
    store: Arc<dyn OutboxStore>,
    metrics: &Metrics,
    work: &WorkSignal,
) -> Vec<ChannelPublisher> {
    let events: Arc<dyn PublishEvents> = Arc::new(PublishMetrics::new(metrics.clone()));
    if channels.is_empty() {
        let publisher = ChannelPublisher::new(log_channel_config(settings), Arc::new(LogChannel), store, events);
        return vec![publisher.woken_by(work.clone())];
    }
    channels
        .into_iter()
        .map(|BuiltChannel { channel, adapter, hold, .. }| {
            tracing::info!(channel = %channel.config.name, adapter = channel.adapter.kind(), base_url = %channel.adapter.base_url(), "publishing over HTTP");
            let publisher = ChannelPublisher::new(channel.config, adapter, Arc::clone(&store), Arc::clone(&events));
            publisher.woken_by(work.clone()).held_by(hold)
        })
        .collect()
}

/// Counts and logs every publish attempt, once, where it is recorded. Failures that will be
/// retried are counted each, but logged at warn once per channel every
/// `FAILURE_LINE_EVERY` with the number not logged since (the rest at debug): a channel
/// that is down fails every item of its backlog, each up to its failure budget, and a line
/// each buried everything else in the log.
#[derive(Debug, Clone)]
pub struct PublishMetrics {
    metrics: Metrics,
    failure_lines: Arc<FailureLines>,
}

impl PublishMetrics {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics, failure_lines: Arc::default() }
    }
}

/// How often a channel's failures to be retried are logged at warn.
const FAILURE_LINE_EVERY: Duration = Duration::from_secs(10);

/// Per channel: when its last failure was logged at warn, and how many were not since.
#[derive(Debug, Default)]
struct FailureLines(Mutex<HashMap<String, (Instant, u64)>>);

impl FailureLines {
    /// Whether a failure of `channel` at `now` is logged at warn: `Some(n)`, the channel's
    /// failures not logged at warn since its last such line; `None`, counted towards the next.
    fn due(&self, channel: &str, now: Instant) -> Option<u64> {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match lines.get_mut(channel) {
            Some((last, not_logged)) if now.saturating_duration_since(*last) < FAILURE_LINE_EVERY => {
                *not_logged += 1;
                None
            }
            Some((last, not_logged)) => {
                *last = now;
                Some(std::mem::take(not_logged))
            }
            None => {
                lines.insert(channel.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

impl PublishEvents for PublishMetrics {
    fn attempted(&self, entry: &OutboxEntry, record: &PublishRecord) {
        let result = record.outcome.as_str();
        self.metrics.publish_attempts.with_label_values(&[&record.channel, result]).inc();
        if let Some(latency_ms) = record.latency_ms {
            self.metrics
                .publish_latency_seconds
                .with_label_values(&[&record.channel])
                .observe(latency_ms as f64 / 1_000.0);
        }
        match &record.outcome {
            PublishOutcome::DeadLettered => {
                let reason = record.dead_letter_reason.as_deref().unwrap_or("unknown");
                self.metrics.dead_letters.with_label_values(&[&record.channel, reason]).inc();
                tracing::error!(channel = %record.channel, tenant = %entry.item.tenant(), sku = %entry.item.sku(), item_id = %entry.item.id(), version = entry.item.version(), reason, error = record.error.as_deref(), "publish dead-lettered");
            }
            PublishOutcome::RetryAt(due_at) => match self.failure_lines.due(&record.channel, Instant::now()) {
                Some(not_logged) => {
                    tracing::warn!(channel = %record.channel, item_id = %entry.item.id(), version = entry.item.version(), attempt = record.attempt, status = record.status, error = record.error.as_deref(), retry_at = %due_at, failures_not_logged = not_logged, "publish failed, will retry (the channel's failures since its last such line: failures_not_logged, each counted in catalog_publish_attempts_total)")
                }
                None => {
                    tracing::debug!(channel = %record.channel, item_id = %entry.item.id(), version = entry.item.version(), attempt = record.attempt, status = record.status, error = record.error.as_deref(), retry_at = %due_at, "publish failed, will retry")
                }
            },
            PublishOutcome::ThrottledUntil(due_at) => {
                tracing::debug!(channel = %record.channel, item_id = %entry.item.id(), version = entry.item.version(), attempt = record.attempt, retry_at = %due_at, "publish throttled, will retry")
            }
            PublishOutcome::Published | PublishOutcome::Superseded { .. } => {
                let sent = record.sent.as_ref();
                tracing::debug!(channel = %record.channel, tenant = %entry.item.tenant(), sku = %entry.item.sku(), item_id = %entry.item.id(), version = entry.item.version(), quantity = entry.item.quantity(), sent_quantity = sent.map(|sent| sent.quantity), listing = sent.map(|sent| sent.listing.as_str()), result, "item published")
            }
            // Counted by result above; one debug line each, not a warning per SKU: a channel
            // that lists a few of many SKUs is normal, and its health page shows the count.
            PublishOutcome::Skipped => {
                tracing::debug!(channel = %record.channel, tenant = %entry.item.tenant(), sku = %entry.item.sku(), item_id = %entry.item.id(), version = entry.item.version(), reason = catalog_core::ChannelQuantity::UNMAPPED, "publish skipped: sku not listed on the channel")
            }
        }
    }

    fn resolved(&self, letter: &ResolvedDeadLetter) {
        let resolution = letter.resolution.as_str();
        self.metrics.dead_letters_resolved.with_label_values(&[&letter.channel, resolution]).inc();
        tracing::info!(channel = %letter.channel, item_id = %letter.item_id, version = letter.version, dead_letter_id = letter.dead_letter_id, heal_rounds = letter.heal_rounds, resolution, "dead letter resolved");
    }

    fn round(&self, round: &PublishRound) {
        let claim = if round.n_items >= round.limit { "full" } else { "partial" };
        self.metrics.publish_rounds.with_label_values(&[&round.channel, claim]).inc();
        for (step, spent) in [("claim", round.claim), ("send", round.send), ("record", round.record)] {
            self.metrics.publish_round_seconds.with_label_values(&[&round.channel, step]).observe(spent.as_secs_f64());
        }
    }

    fn record_failed(&self, _channel: &str, error: &StoreError) {
        self.metrics.store_retries.with_label_values(&[error.kind()]).inc();
    }

    fn store_failed(&self, _channel: &str, _step: &'static str, error: &StoreError) {
        self.metrics.store_retries.with_label_values(&[error.kind()]).inc();
    }

    fn blocked(&self, channel: &str, reason: &str, error: &str) {
        self.metrics.publish_credentials_refused.with_label_values(&[channel, reason]).inc();
        tracing::error!(channel, reason, error, class = FailureClass::NeedsOperator.as_str(), "the channel takes no write until an operator acts (its credentials refused, or the account frozen or locked): it is held, its items wait without spending attempts (docs/operations.md#catalogchannelcredentialsrefused)");
    }

    fn lease_renewed(&self, channel: &str, renewal: Renewal) {
        self.metrics.publish_lease_renewals.with_label_values(&[channel, renewal.as_str()]).inc();
    }

    fn lease_ran_out(&self, entry: &OutboxEntry) {
        self.metrics.publish_lease_ran_out.with_label_values(&[&entry.channel]).inc();
        tracing::warn!(channel = %entry.channel, item_id = %entry.item.id(), version = entry.item.version(), "lease ran out before the send, left for the next claim");
    }
}

/// Every few seconds until `shutdown`: outbox depth, oldest waiting age, stale items, and
/// open and quarantined dead letters per channel. A read that fails is logged, and leaves its
/// gauges as last read: `catalog_report_last_success_timestamp_seconds{report="outbox"}` says
/// how old they are (`CatalogReportsStale`).
pub async fn report_outbox(
    store: Arc<dyn OutboxStore>,
    channels: Vec<String>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    metrics.report_started("outbox");
    loop {
        if let Err(error) = report_outbox_once(&*store, &channels, &metrics).await {
            tracing::warn!(%error, class = error.failure_class().as_str(), "reading the outbox for its gauges failed: they show the last read's; trying again");
        } else {
            metrics.report_succeeded("outbox");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One read of [`report_outbox`]: every gauge whose read succeeds is set; the first failure
/// is the answer.
async fn report_outbox_once(
    store: &dyn OutboxStore,
    channels: &[String],
    metrics: &Metrics,
) -> Result<(), catalog_store::StoreError> {
    let depths = store.outbox_depth().await;
    if let Ok(depths) = &depths {
        for channel in channels {
            let depth = depths.iter().find(|depth| &depth.channel == channel);
            let pending = depth.map_or(0, |depth| depth.pending as i64);
            let oldest = depth
                .and_then(|depth| depth.oldest_enqueued_at)
                .map_or(0, |at| (chrono::Utc::now() - at).num_seconds().max(0));
            metrics.outbox_pending.with_label_values(&[channel]).set(pending);
            metrics.outbox_oldest_seconds.with_label_values(&[channel]).set(oldest);
        }
    }
    let mut stale_read = Ok(());
    for channel in channels {
        match store.stale_items(channel).await {
            Ok(stale) => metrics.stale_items.with_label_values(&[channel]).set(stale as i64),
            Err(error) => stale_read = Err(error),
        }
    }
    let counts = store.dead_letter_counts().await;
    if let Ok(counts) = &counts {
        for channel in channels {
            let count = counts.iter().find(|count| &count.channel == channel);
            let (open, quarantined) = count.map_or((0, 0), |count| (count.open as i64, count.quarantined as i64));
            metrics.dead_letters_open.with_label_values(&[channel]).set(open);
            metrics.dead_letters_quarantined.with_label_values(&[channel]).set(quarantined);
        }
    }
    depths.and(stale_read).and(counts.map(drop))
}

/// How dead letters heal on their own (decision 0007).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealSettings {
    /// Time between passes; zero turns auto-heal off.
    pub interval: Duration,
    /// Heal rounds a letter gets; one still open after them is quarantined.
    pub max_heals: u32,
}

/// Letters one heal round takes up at most; a pass runs rounds until one takes fewer.
const HEAL_ROUND_LIMIT: usize = 500;

/// Every `settings.interval` until `shutdown`, a pass of auto-heal: open publish dead letters
/// that are not quarantined get their item's current version queued again on their channel
/// (and `work` wakes the publishers), each at most once a pass; a letter healed
/// `settings.max_heals` times that failed again is quarantined instead. Store failures are
/// counted and logged, and the next pass tries again. The first pass runs one interval
/// after the start, so a run that ends sooner (a file) heals nothing.
pub async fn heal_dead_letters(
    store: Arc<dyn OutboxStore>,
    settings: HealSettings,
    metrics: Metrics,
    work: WorkSignal,
    shutdown: CancellationToken,
) {
    if settings.interval.is_zero() {
        tracing::info!("auto-heal of dead letters is off");
        return;
    }
    // Half an interval: a letter taken up in one pass is not taken up again in the same one,
    // however long its rounds run, and is due again at the next.
    let heal =
        DeadLetterHeal { limit: HEAL_ROUND_LIMIT, max_heals: settings.max_heals, min_interval: settings.interval / 2 };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.interval) => {}
            _ = shutdown.cancelled() => return,
        }
        heal_pass(&*store, &heal, &metrics, &work, &shutdown).await;
    }
}

/// Rounds of auto-heal until one takes up fewer letters than its limit (or a failure, or
/// shutdown), each letter counted and logged once.
async fn heal_pass(
    store: &dyn OutboxStore,
    heal: &DeadLetterHeal,
    metrics: &Metrics,
    work: &WorkSignal,
    shutdown: &CancellationToken,
) {
    let (mut n_requeued, mut n_quarantined) = (0, 0);
    loop {
        let round = match store.heal_dead_letters(heal).await {
            Ok(round) => round,
            Err(error) => {
                metrics.store_retries.with_label_values(&[error.kind()]).inc();
                let class = error.failure_class();
                tracing::warn!(%error, kind = error.kind(), class = class.as_str(), "healing dead letters failed, trying again at the next pass");
                break;
            }
        };
        for letter in &round.requeued {
            metrics.dead_letter_heals.with_label_values(&[&letter.channel, "requeued"]).inc();
            tracing::debug!(channel = %letter.channel, item_id = %letter.item_id, version = letter.version, dead_letter_id = letter.dead_letter_id, heal_rounds = letter.heal_rounds, reason = %letter.reason, "dead letter requeued");
        }
        for letter in &round.quarantined {
            metrics.dead_letter_heals.with_label_values(&[&letter.channel, "quarantined"]).inc();
            tracing::error!(channel = %letter.channel, item_id = %letter.item_id, version = letter.version, dead_letter_id = letter.dead_letter_id, heal_rounds = letter.heal_rounds, reason = %letter.reason, "dead letter quarantined: auto-heal gave up on it, an operator must look");
        }
        if !round.requeued.is_empty() {
            work.notify();
        }
        n_requeued += round.requeued.len();
        n_quarantined += round.quarantined.len();
        if round.n_examined < heal.limit || shutdown.is_cancelled() {
            break;
        }
    }
    if n_requeued + n_quarantined > 0 {
        tracing::info!(n_requeued, n_quarantined, "auto-heal pass over dead letters");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_round_counts_by_its_claim_and_times_each_step() {
        let metrics = Metrics::new();
        let events = PublishMetrics::new(metrics.clone());
        let round = |n_items| PublishRound {
            channel: "amazon".to_owned(),
            n_items,
            limit: 176,
            claim: Duration::from_millis(20),
            send: Duration::from_millis(3),
            record: Duration::from_millis(60),
        };
        events.round(&round(176));
        events.round(&round(176));
        events.round(&round(12));
        assert_eq!(metrics.publish_rounds.with_label_values(&["amazon", "full"]).get(), 2);
        assert_eq!(metrics.publish_rounds.with_label_values(&["amazon", "partial"]).get(), 1);
        let record = metrics.publish_round_seconds.with_label_values(&["amazon", "record"]);
        assert_eq!(record.get_sample_count(), 3);
        assert!((record.get_sample_sum() - 0.18).abs() < 1e-9, "{}", record.get_sample_sum());
        let rendered = metrics.render();
        assert!(rendered.contains(r#"catalog_publish_rounds_total{channel="amazon",claim="full"} 2"#), "{rendered}");
        assert!(rendered.contains(r#"catalog_publish_round_seconds_count{channel="amazon",step="send"} 3"#));
    }

    #[test]
    fn a_channel_s_failures_are_logged_at_warn_once_every_ten_seconds() {
        let lines = FailureLines::default();
        let start = Instant::now();
        assert_eq!(lines.due("amazon", start), Some(0), "the first");
        for n in 1..1_000 {
            assert_eq!(lines.due("amazon", start + Duration::from_millis(n)), None, "failure {n}");
        }
        assert_eq!(lines.due("ebay", start + Duration::from_secs(1)), Some(0), "each channel its own");
        assert_eq!(lines.due("amazon", start + Duration::from_secs(10)), Some(999), "with those not logged");
        assert_eq!(lines.due("amazon", start + Duration::from_secs(11)), None);
        assert_eq!(lines.due("amazon", start + Duration::from_secs(20)), Some(1));
    }

    #[test]
    fn renewals_count_by_result() {
        let metrics = Metrics::new();
        let events = PublishMetrics::new(metrics.clone());
        for renewal in [Renewal::Held, Renewal::Held, Renewal::Failed, Renewal::Lapsed] {
            events.lease_renewed("amazon", renewal);
        }
        let rendered = metrics.render();
        for expected in [
            r#"catalog_publish_lease_renewals_total{channel="amazon",result="held"} 2"#,
            r#"catalog_publish_lease_renewals_total{channel="amazon",result="failed"} 1"#,
            r#"catalog_publish_lease_renewals_total{channel="amazon",result="lapsed"} 1"#,
        ] {
            assert!(rendered.contains(expected), "{expected} in {rendered}");
        }
    }
}
