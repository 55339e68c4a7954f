//! Publishing orchestration: which publishers a process runs (one per HTTP channel, the log
//! channel when none is configured, or none), each the same drain loop of
//! `catalog-publish`; their metrics and logs; and the outbox gauges.

use std::sync::Arc;
use std::time::Duration;

use catalog_publish::{
    ChannelConfig, ChannelPublisher, LogChannel, PublishError, PublishEvents, StorefrontChannel, WorkSignal,
};
use catalog_store::{OutboxEntry, OutboxStore, PublishOutcome, PublishRecord};
use tokio_util::sync::CancellationToken;

use crate::channels::{HttpChannel, STOREFRONT_CHANNEL};
use crate::metrics::Metrics;

/// How the log channel drains: everything due at once (nothing to coalesce for a reader of
/// standard output), no rate limit, and a slow poll, since the applier wakes it.
fn log_channel_config() -> ChannelConfig {
    let mut config = ChannelConfig::new(STOREFRONT_CHANNEL);
    config.concurrency = 256;
    config.requests_per_second = None;
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    config.lease = Duration::from_secs(30);
    config.idle_poll = Duration::from_millis(500);
    config
}

/// The publishers for `channels`: one per HTTP channel, or the log channel when there is none.
/// Each is woken by `work` and counted in `metrics`.
pub fn publishers(
    channels: Vec<HttpChannel>,
    store: Arc<dyn OutboxStore>,
    metrics: &Metrics,
    work: &WorkSignal,
) -> Result<Vec<ChannelPublisher>, PublishError> {
    let events: Arc<dyn PublishEvents> = Arc::new(PublishMetrics(metrics.clone()));
    if channels.is_empty() {
        let publisher = ChannelPublisher::new(log_channel_config(), Arc::new(LogChannel), store, events);
        return Ok(vec![publisher.woken_by(work.clone())]);
    }
    channels
        .into_iter()
        .map(|channel| {
            tracing::info!(channel = %channel.config.name, base_url = %channel.storefront.base_url, "publishing over HTTP");
            let adapter =
                StorefrontChannel::new(channel.storefront, channel.config.request_timeout, channel.config.concurrency)?;
            let publisher =
                ChannelPublisher::new(channel.config, Arc::new(adapter), Arc::clone(&store), Arc::clone(&events));
            Ok(publisher.woken_by(work.clone()))
        })
        .collect()
}

/// Counts and logs every publish attempt, once, where it is recorded.
#[derive(Debug, Clone)]
pub struct PublishMetrics(pub Metrics);

impl PublishEvents for PublishMetrics {
    fn attempted(&self, entry: &OutboxEntry, record: &PublishRecord) {
        let result = record.outcome.as_str();
        self.0.publish_attempts.with_label_values(&[&record.channel, result]).inc();
        if let Some(latency_ms) = record.latency_ms {
            self.0.publish_latency_seconds.with_label_values(&[&record.channel]).observe(latency_ms as f64 / 1_000.0);
        }
        match &record.outcome {
            PublishOutcome::DeadLettered => {
                let reason = record.dead_letter_reason.as_deref().unwrap_or("unknown");
                self.0.dead_letters.with_label_values(&[&record.channel, reason]).inc();
                tracing::error!(channel = %record.channel, tenant = %entry.tenant, sku = %entry.sku, item_id = %entry.item_id, version = entry.version, reason, error = record.error.as_deref(), "publish dead-lettered");
            }
            PublishOutcome::RetryAt(due_at) => {
                tracing::warn!(channel = %record.channel, item_id = %entry.item_id, version = entry.version, attempt = record.attempt, status = record.status, error = record.error.as_deref(), retry_at = %due_at, "publish failed, will retry")
            }
            _ => {
                tracing::debug!(channel = %record.channel, tenant = %entry.tenant, sku = %entry.sku, item_id = %entry.item_id, version = entry.version, quantity = entry.quantity, result, "item published")
            }
        }
    }
}

/// Every few seconds until `shutdown`: outbox depth, oldest waiting age and stale items per
/// channel.
pub async fn report_outbox(
    store: Arc<dyn OutboxStore>,
    channels: Vec<String>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    loop {
        if let Ok(depths) = store.outbox_depth().await {
            for channel in &channels {
                let depth = depths.iter().find(|depth| &depth.channel == channel);
                let pending = depth.map_or(0, |depth| depth.pending as i64);
                let oldest = depth
                    .and_then(|depth| depth.oldest_enqueued_at)
                    .map_or(0, |at| (chrono::Utc::now() - at).num_seconds().max(0));
                metrics.outbox_pending.with_label_values(&[channel]).set(pending);
                metrics.outbox_oldest_seconds.with_label_values(&[channel]).set(oldest);
            }
        }
        for channel in &channels {
            if let Ok(stale) = store.stale_items(channel).await {
                metrics.stale_items.with_label_values(&[channel]).set(stale as i64);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
