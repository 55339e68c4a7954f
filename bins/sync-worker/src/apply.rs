//! The sink both sources deliver to: applies a batch through the store, retrying what is
//! retryable and never skipping a batch, then records what happened (metrics, logs, totals).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use catalog_core::{Classify, FailureClass, Outcome};
use catalog_kafka::ClientError as KafkaError;
use catalog_kafka::{BatchSink, SinkError, SourceBatch};
use catalog_store::{BatchInput, BatchResult, CatalogStore, StoreError};
use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Counts for the end-of-run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub events_by_outcome: BTreeMap<&'static str, u64>,
    pub items_changed: u64,
}

#[derive(Debug)]
pub struct Applier {
    store: Arc<dyn CatalogStore>,
    metrics: Metrics,
    shutdown: CancellationToken,
    /// Woken after each batch that queued publishes.
    pub published_work: Arc<Notify>,
    totals: Mutex<Totals>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Applier {
    pub fn new(store: Arc<dyn CatalogStore>, metrics: Metrics, shutdown: CancellationToken) -> Self {
        Self { store, metrics, shutdown, published_work: Arc::new(Notify::new()), totals: Mutex::default() }
    }

    pub fn totals(&self) -> Totals {
        self.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Runs a store operation until it succeeds, retrying failures that may pass.
    /// Fatal failures stop the worker; shutdown abandons the attempt.
    async fn with_retries<T, F, Fut>(&self, what: &'static str, mut operation: F) -> Result<T, SinkError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let error = match operation().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            self.metrics.store_retries.with_label_values(&[error.kind()]).inc();
            match error.failure_class() {
                FailureClass::Fatal => {
                    tracing::error!(%error, operation = what, "store failure the worker cannot go on with");
                    return Err(SinkError::Fatal(format!("{what}: {error}")));
                }
                FailureClass::NeedsOperator => {
                    tracing::error!(%error, operation = what, retry_in_ms = backoff.as_millis() as u64, "store refuses the batch; an operator must act, retrying");
                }
                FailureClass::Retryable | FailureClass::NeedsSupplier => {
                    tracing::warn!(%error, operation = what, retry_in_ms = backoff.as_millis() as u64, "store unavailable, retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.cancelled() => return Err(SinkError::Abandoned),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn record(&self, source: &str, batch: &SourceBatch, result: &BatchResult, elapsed: Duration) {
        self.metrics.batch_apply_seconds.with_label_values(&[source_kind(source)]).observe(elapsed.as_secs_f64());
        // Counted per (outcome, reason) first: one metric update per label set, not per event.
        let mut counts: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        let mut redeliveries = [0_u64; 2];
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        for (event, decision) in batch.events.iter().zip(&result.decisions) {
            let outcome = decision.outcome.as_str();
            *counts.entry((outcome, decision.reason().unwrap_or(""))).or_insert(0) += 1;
            if let Some(redelivery) = decision.redelivery {
                redeliveries[usize::from(redelivery.payload_differs)] += 1;
            }
            match (&decision.outcome, &event.delivery.decoded) {
                (Outcome::Rejected(reason), Err(rejection)) => tracing::warn!(
                    tenant = %rejection.tenant.as_ref().map(ToString::to_string).unwrap_or_default(),
                    event_id = %rejection.event_id.map(|id| id.to_string()).unwrap_or_default(),
                    reason = reason.as_str(), detail = %rejection.detail,
                    source = %event.source.source, partition = event.source.partition, offset = event.source.offset,
                    "event rejected"
                ),
                (_, Ok(decoded)) if debug => tracing::debug!(
                    tenant = %decoded.offer().tenant, sku = %decoded.offer().sku, event_id = %decoded.event_id(),
                    outcome, reason = decision.reason(), traceparent = event.traceparent.as_deref(),
                    "event decided"
                ),
                _ => {}
            }
        }
        let mut totals = self.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((outcome, reason), count) in counts {
            *totals.events_by_outcome.entry(outcome).or_insert(0) += count;
            self.metrics.events.with_label_values(&[outcome, reason]).inc_by(count);
        }
        for (differs, count) in [("false", redeliveries[0]), ("true", redeliveries[1])] {
            if count > 0 {
                self.metrics.redeliveries.with_label_values(&[differs]).inc_by(count);
            }
        }
        totals.items_changed += result.changed_items.len() as u64;
        self.metrics.items_changed.inc_by(result.changed_items.len() as u64);
        for item in result.changed_items.iter().filter(|_| debug) {
            tracing::debug!(tenant = %item.tenant, sku = %item.sku, item_id = %item.item_id, version = item.version, quantity = item.quantity, "item changed");
        }
        let partition = batch.checkpoint.partition.to_string();
        if let Some(last_message_at) = batch.last_message_at {
            let lag = (Utc::now() - last_message_at).num_seconds().max(0);
            self.metrics.queue_lag_seconds.with_label_values(&[&partition]).set(lag);
        }
        if let Some(high_watermark) = batch.high_watermark {
            let lag = (high_watermark - batch.checkpoint.next_offset).max(0);
            self.metrics.queue_lag_messages.with_label_values(&[&partition]).set(lag);
        }
        tracing::debug!(
            source,
            n_events = batch.events.len(),
            n_items_changed = result.changed_items.len(),
            next_offset = batch.checkpoint.next_offset,
            "batch applied"
        );
    }
}

fn source_kind(source: &str) -> &'static str {
    match source.split(':').next() {
        Some("kafka") => "kafka",
        Some("file") => "file",
        Some("stdin") => "stdin",
        _ => "other",
    }
}

#[async_trait]
impl BatchSink for Applier {
    async fn checkpoint(&self, source: &str, partition: i32) -> Result<Option<i64>, SinkError> {
        let checkpoints = self.with_retries("checkpoints", || self.store.checkpoints(source)).await?;
        Ok(checkpoints.into_iter().find(|checkpoint| checkpoint.partition == partition).map(|c| c.next_offset))
    }

    async fn apply(&self, batch: SourceBatch) -> Result<(), SinkError> {
        let started = Instant::now();
        let source = batch.checkpoint.source.clone();
        // Stdin has no position to resume from: its lines are journaled, but no checkpoint kept.
        let checkpoints = if source == "stdin" { Vec::new() } else { vec![batch.checkpoint.clone()] };
        let input = BatchInput { events: batch.events, checkpoints };
        let result = self.with_retries("apply_batch", || self.store.apply_batch(&input)).await?;
        let batch = SourceBatch { events: input.events, ..batch };
        self.record(&source, &batch, &result, started.elapsed());
        if !result.changed_items.is_empty() {
            self.published_work.notify_one();
        }
        Ok(())
    }

    fn skipped_below_checkpoint(&self, partition: i32, count: u64) {
        self.metrics.skipped_below_checkpoint.with_label_values(&[&partition.to_string()]).inc_by(count);
    }

    fn offset_gap(&self, partition: i32, from: i64, to: i64) {
        self.metrics.offset_gaps.with_label_values(&[&partition.to_string()]).inc_by((to - from).max(0) as u64);
        tracing::error!(
            partition,
            from,
            to,
            "the broker skipped offsets after a seek to the stored checkpoint; those messages were not applied"
        );
    }

    fn kafka_error(&self, kind: &'static str, error: &KafkaError) {
        self.metrics.kafka_errors.with_label_values(&[kind]).inc();
        tracing::warn!(kind, %error, "kafka client error");
    }
}
