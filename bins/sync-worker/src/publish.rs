//! The `log` publisher: drains the outbox to standard output, one JSON line per published
//! item version, for runs without a storefront. Logs go to standard error, so standard
//! output stays machine-readable.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use catalog_store::{CatalogStore, OutboxClaim, OutboxEntry, PublishOutcome, PublishRecord};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How many item versions one claim takes.
const CLAIM_SIZE: usize = 500;
/// How long a claim is reserved for this publisher.
const LEASE: Duration = Duration::from_secs(30);
/// How often the outbox is looked at when nobody says there is work.
const IDLE_POLL: Duration = Duration::from_millis(500);

#[derive(Serialize)]
struct PublishedLine<'a> {
    tenant_id: &'a str,
    item_id: String,
    sku: &'a str,
    quantity: i64,
    version: u64,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
}

#[derive(Debug)]
pub struct LogPublisher {
    pub store: Arc<dyn CatalogStore>,
    pub channel: String,
    pub metrics: Metrics,
    pub work: Arc<Notify>,
}

impl LogPublisher {
    /// Publishes until `shutdown`, or, when `until_drained` fires, until the outbox is empty.
    pub async fn run(self, shutdown: CancellationToken, until_drained: CancellationToken) -> Result<u64> {
        let mut n_published = 0;
        loop {
            if shutdown.is_cancelled() {
                return Ok(n_published);
            }
            let entries = match self.store.claim_outbox(&self.channel, &OutboxClaim::immediate(CLAIM_SIZE, LEASE)).await
            {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(%error, channel = %self.channel, "claiming publishes failed, retrying");
                    tokio::time::sleep(IDLE_POLL).await;
                    continue;
                }
            };
            if entries.is_empty() {
                if until_drained.is_cancelled() {
                    return Ok(n_published);
                }
                tokio::select! {
                    _ = self.work.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = until_drained.cancelled() => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            n_published += self.publish(&entries).await?;
        }
    }

    async fn publish(&self, entries: &[OutboxEntry]) -> Result<u64> {
        let started = Instant::now();
        {
            let mut stdout = std::io::stdout().lock();
            for entry in entries {
                let line = PublishedLine {
                    tenant_id: entry.tenant.as_str(),
                    item_id: entry.item_id.to_string(),
                    sku: entry.sku.as_str(),
                    quantity: entry.quantity,
                    version: entry.version,
                    channel: &entry.channel,
                    traceparent: entry.traceparent.as_deref(),
                };
                serde_json::to_writer(&mut stdout, &line).context("writing to standard output")?;
                stdout.write_all(b"\n").context("writing to standard output")?;
            }
            stdout.flush().context("writing to standard output")?;
        }
        let latency_ms = started.elapsed().as_millis() as u64;
        let records: Vec<PublishRecord> = entries
            .iter()
            .map(|entry| PublishRecord {
                item_id: entry.item_id,
                channel: entry.channel.clone(),
                version: entry.version,
                attempt: entry.attempts + 1,
                outcome: PublishOutcome::Published,
                status: None,
                latency_ms: Some(latency_ms),
                error: None,
                dead_letter_reason: None,
                body: None,
            })
            .collect();
        // Written before it is recorded: a crash in between prints the versions again on
        // restart, which a reader of this stream must (and can, by item and version) tolerate.
        let mut backoff = Duration::from_millis(100);
        while let Err(error) = self.store.record_publishes(&records).await {
            tracing::warn!(%error, n_records = records.len(), "recording publishes failed, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        for entry in entries {
            self.metrics.publish_attempts.with_label_values(&[&entry.channel, "published"]).inc();
            tracing::debug!(tenant = %entry.tenant, sku = %entry.sku, item_id = %entry.item_id, version = entry.version, quantity = entry.quantity, "item published");
        }
        Ok(entries.len() as u64)
    }
}

/// Counts and logs every HTTP publish attempt, once, where it is recorded.
#[derive(Debug, Clone)]
pub struct PublishMetrics(pub Metrics);

impl catalog_publish::PublishEvents for PublishMetrics {
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
                tracing::info!(channel = %record.channel, tenant = %entry.tenant, sku = %entry.sku, item_id = %entry.item_id, version = entry.version, result, "item published")
            }
        }
    }
}

/// Every few seconds: outbox depth, oldest waiting age and stale items per channel.
pub async fn report_outbox(
    store: Arc<dyn CatalogStore>,
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
