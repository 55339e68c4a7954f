//! How a sweep reads the channel: one page of its list at a time, paced, retrying
//! throttling and transient failures a bounded number of times, every failed read counted.

use std::time::Duration;

use catalog_core::TenantId;
use catalog_publish::{ReadBack, ReadBackError};

use super::pacer::Pacer;
use super::{Reconciler, SweepError};

impl Reconciler {
    /// One page of the channel. A `next` that does not move past `after` would have the sweep
    /// read the same pages for ever: it breaks the contract's order, and stops the sweep.
    pub(super) async fn read_page(
        &self,
        reader: &dyn ReadBack,
        tenant: &TenantId,
        after: Option<String>,
        limit: usize,
        pacer: &mut Pacer,
    ) -> Result<catalog_publish::ShownPage, SweepError> {
        let page = self.paced_read(pacer, 1, || reader.list(tenant, after.as_deref(), limit)).await?;
        if let (Some(next), Some(after)) = (&page.next, after) {
            // The same cursor again is a loop in any order; a step back is one only between
            // ids of the catalog's form, which sort alike in every collation.
            let ordered =
                catalog_publish::catalog_item_id(next).is_some() && catalog_publish::catalog_item_id(&after).is_some();
            if *next == after || (ordered && *next < after) {
                let message = format!("the page after {after} says the next starts after {next}, not past it");
                return Err(self.counted(ReadBackError::Malformed(message)).into());
            }
        }
        Ok(page)
    }

    /// One read of up to `n_requests` requests, paced, retrying throttling and transient
    /// failures a bounded number of times.
    pub(super) async fn paced_read<T, F, Fut>(
        &self,
        pacer: &mut Pacer,
        n_requests: usize,
        read: F,
    ) -> Result<T, SweepError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ReadBackError>>,
    {
        let mut attempt = 0;
        loop {
            if let Some(until) = self.hold.until() {
                tokio::time::sleep_until(until.into()).await;
            }
            pacer.wait(n_requests).await;
            attempt += 1;
            match read().await {
                Ok(answer) => return Ok(answer),
                Err(error) => self.wait_to_retry(error, attempt).await?,
            }
        }
    }

    /// `error`, counted in `catalog_reconcile_read_errors_total` by its kind: every failed
    /// read, the ones the sweep finds malformed itself (an item it cannot read, a list whose
    /// cursor loops) too, which the runbook of a failing reconciliation reads.
    pub(super) fn counted(&self, error: ReadBackError) -> ReadBackError {
        self.metrics.reconcile_read_errors.with_label_values(&[&self.channel, error.kind()]).inc();
        error
    }

    /// Counts a failed read and waits before the next attempt, or gives the error up when
    /// it is not worth retrying or the attempts are spent.
    async fn wait_to_retry(&self, error: ReadBackError, attempt: u32) -> Result<(), SweepError> {
        let error = self.counted(error);
        let wait = match &error {
            ReadBackError::Throttled(wait) => {
                self.hold.extend(*wait);
                *wait
            }
            // Jittered over its upper half, as publishing's retries are: the workers that
            // reconcile a channel that was down do not come back to it in step.
            ReadBackError::Transient(_) => {
                let wait = Duration::from_millis(200) * 2u32.pow(attempt.min(6));
                wait / 2 + wait.mul_f64(fastrand::f64() / 2.0)
            }
            _ => return Err(error.into()),
        };
        if attempt >= self.settings.max_attempts {
            return Err(error.into());
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }
}
