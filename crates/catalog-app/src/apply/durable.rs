//! Applying a batch until it is durable: the store's failures retried with backoff (a fatal
//! one stops the worker), and a batch whose commit landed unconfirmed told from one to apply
//! again (decision 0028).

use std::time::Duration;

use catalog_core::{Classify, FailureClass};
use catalog_store::{BatchInput, BatchResult, StoreError};

use super::{source_kind, Applier};
use crate::source::SinkError;

/// How a batch became durable.
pub(super) enum Applied {
    /// The store committed it and said what it decided.
    Confirmed(BatchResult),
    /// An attempt failed, yet the store's checkpoints show the batch (of this many events)
    /// durable.
    Unconfirmed(usize),
}

impl Applier {
    /// Runs a store operation until it succeeds, retrying failures that may pass.
    /// Fatal failures stop the worker; shutdown abandons the attempt.
    pub(super) async fn with_retries<T, F, Fut>(&self, what: &'static str, mut operation: F) -> Result<T, SinkError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = self.retry.first_backoff;
        loop {
            match operation().await {
                Ok(value) => return Ok(value),
                Err(error) => self.wait_after(what, &error, &mut backoff).await?,
            }
        }
    }

    /// Applies a batch until it is durable. A Kafka or file batch skips, in the store and
    /// under the lock on its checkpoint row, the messages its partition's stored position has
    /// passed (decision 0028):
    /// - on a first attempt, another worker applied them (a broker that hands a partition to a
    ///   new member before the old one lets go of it, as tansu does during a rebalance; two
    ///   workers reading one file): counted as skipped below the checkpoint by [`Applier::apply`];
    /// - after a failed attempt, found applied whole, the attempt itself committed (the
    ///   connection lost during `COMMIT`): the batch is durable, its decisions unconfirmed.
    ///   A feed's page number names no content, so that is no proof for a feed's batch: two
    ///   runs of a feed number their own pages from the same checkpoint, and another run may
    ///   have committed its own page at that number meanwhile. Nor is the stored checkpoint:
    ///   a batch fenced off whole still writes its own, over the other run's. So a feed's
    ///   batch found applied after a failed attempt is counted as applied elsewhere, whoever
    ///   applied it: its puller hears of a concurrent run and pulls the window again, a
    ///   re-read (duplicates by id) where its own commit landed, never a loss where it did not.
    ///
    /// Applied again, those messages would count each event as its own redelivery and
    /// journal their rejected messages twice.
    pub(super) async fn apply_until_durable(
        &self,
        input: &BatchInput,
        source: &str,
        partition: i32,
    ) -> Result<Applied, SinkError> {
        let mut backoff = self.retry.first_backoff;
        let mut failed = false;
        let of_a_feed = input.checkpoints.iter().any(|written| source_kind(&written.source) == "feed");
        loop {
            let result = match self.store.apply_batch(input).await {
                Ok(result) => result,
                Err(error) => {
                    failed = true;
                    self.writes.failed(source, partition);
                    self.report_writes();
                    self.wait_after("apply_batch", &error, &mut backoff).await?;
                    continue;
                }
            };
            if self.writes.succeeded(source, partition) {
                self.report_writes();
            }
            let found_whole = !input.events.is_empty() && result.applied_before.len() == input.events.len();
            if failed && !of_a_feed && found_whole {
                return Ok(Applied::Unconfirmed(input.events.len()));
            }
            return Ok(Applied::Confirmed(result));
        }
    }

    /// Sets the gauge of how long the longest-failing partition's batch has failed.
    fn report_writes(&self) {
        let failing = self.writes.failing_for().unwrap_or_default();
        self.metrics.store_writes_failing_seconds.set(failing.as_secs() as i64);
    }

    /// Counts and logs a failed store operation, then waits out its backoff (doubling it).
    /// A fatal failure stops the worker; shutdown abandons the attempt.
    async fn wait_after(
        &self,
        what: &'static str,
        error: &StoreError,
        backoff: &mut Duration,
    ) -> Result<(), SinkError> {
        let retry_in_ms = backoff.as_millis() as u64;
        let (class, kind) = (error.failure_class(), error.kind());
        match class {
            // Not retried, so not counted as a retry: the worker stops with it.
            FailureClass::Fatal => {
                tracing::error!(%error, operation = what, kind, class = class.as_str(), "store failure the worker cannot go on with");
                return Err(SinkError::Fatal(format!("{what}: {error}")));
            }
            FailureClass::NeedsOperator => {
                tracing::error!(%error, operation = what, kind, class = class.as_str(), retry_in_ms, "store refuses the batch; an operator must act, retrying");
            }
            FailureClass::Retryable | FailureClass::NeedsSupplier => {
                tracing::warn!(%error, operation = what, kind, class = class.as_str(), retry_in_ms, "store failure, retrying");
            }
        }
        self.metrics.store_retries.with_label_values(&[kind]).inc();
        tokio::select! {
            _ = tokio::time::sleep(*backoff) => {}
            _ = self.shutdown.cancelled() => return Err(SinkError::Abandoned),
        }
        *backoff = (*backoff * 2).min(self.retry.max_backoff);
        Ok(())
    }
}
