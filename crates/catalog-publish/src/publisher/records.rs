//! What the store keeps of each item version a round handled: sent (by its verdict),
//! skipped (no listing on the channel), out of attempts, and the backoff a failure waits.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use catalog_core::ChannelQuantity;
use catalog_store::{OutboxEntry, PublishOutcome, PublishRecord, SentQuantity};
use chrono::Utc;

use super::ChannelPublisher;
use crate::adapter::{Attempt, Publish};
use crate::response::{storable, unanswered, Verdict};

impl ChannelPublisher {
    /// What the store keeps for an item version handled without a request: its attempt
    /// `attempt`, what it came to, why, and the dead letter's reason if it is one.
    pub(super) fn not_sent(
        &self,
        entry: &OutboxEntry,
        attempt: u32,
        outcome: PublishOutcome,
        error: String,
        dead_letter_reason: Option<&str>,
    ) -> PublishRecord {
        PublishRecord {
            claim: entry.claim,
            item_id: entry.item.id(),
            channel: self.config.name.clone(),
            version: entry.item.version(),
            attempt,
            outcome,
            status: None,
            latency_ms: None,
            error: Some(error),
            dead_letter_reason: dead_letter_reason.map(str::to_owned),
            body: None,
            sent: None,
        }
    }

    /// What the store keeps for an item version the channel does not list: done, not sent.
    pub(super) fn skipped(&self, entry: &OutboxEntry) -> PublishRecord {
        let error = format!(
            "{}: SKU {} has no listing on channel {}",
            ChannelQuantity::UNMAPPED,
            entry.item.sku(),
            self.config.name
        );
        self.not_sent(entry, entry.attempts + 1, PublishOutcome::Skipped, error, None)
    }

    /// What the store keeps for an item version claimed with its attempts spent: its last
    /// request went unanswered, so it waited a lease (the platform may have applied it late)
    /// instead of being dead-lettered at once, and nothing newer came meanwhile (a newer
    /// version starts a budget of its own); or the channel's budget was lowered since its
    /// last failure. Dead-lettered, not sent again.
    pub(super) fn out_of_attempts(&self, entry: &OutboxEntry) -> PublishRecord {
        let error = format!(
            "{} failed attempts on channel {}, whose budget is {}: not sent again (a last attempt that went \
             unanswered waits a lease first, in case the platform applies it late)",
            entry.attempts, self.config.name, self.config.max_attempts
        );
        // The attempts made: the dead letter counts requests, and none is made now.
        self.not_sent(entry, entry.attempts, PublishOutcome::DeadLettered, error, Some("retries_exhausted"))
    }

    /// A request that went unanswered may still be applied by the platform; one that takes the
    /// last write would then apply it over a newer version sent after the backoff. The item
    /// waits a lease, the bound the drain loop sets on a claim's requests (decision 0043),
    /// its last attempt too; reconciliation corrects a later one.
    fn waits_a_lease(&self, reason: &str) -> bool {
        unanswered(reason) && !self.adapter.refuses_older_versions()
    }

    /// Turns an attempt into what the store keeps.
    pub(super) fn to_record(&self, publish: &Publish, attempt: Attempt) -> PublishRecord {
        let entry = &publish.entry;
        let number = entry.attempts + 1;
        let mut record = PublishRecord {
            claim: entry.claim,
            item_id: entry.item.id(),
            channel: self.config.name.clone(),
            version: entry.item.version(),
            attempt: number,
            outcome: PublishOutcome::Published,
            status: attempt.status,
            latency_ms: Some(attempt.latency.as_millis() as u64),
            error: None,
            dead_letter_reason: None,
            body: None,
            sent: Some(SentQuantity {
                listing: publish.listing.clone(),
                quantity: publish.quantity,
                rule: publish.rule.clone(),
            }),
        };
        match attempt.verdict {
            Verdict::Answered(result) => record.outcome = PublishOutcome::from(result),
            // Throttling is the channel pacing us, not the item failing: no failure counted.
            Verdict::Throttled { retry_after } => {
                record.outcome = PublishOutcome::ThrottledUntil(Utc::now() + retry_after);
                record.error = Some(format!("throttled for {} ms", retry_after.as_millis()));
            }
            // Nor is a channel refusing its credentials: the item waits, held with the channel,
            // until they are renewed (counted as the channel's, `PublishEvents::blocked`); nor
            // its token endpoint throttling or failing, until it answers again.
            Verdict::Blocked { reason, error, retry_after } | Verdict::Unavailable { reason, error, retry_after } => {
                record.outcome = PublishOutcome::ThrottledUntil(Utc::now() + retry_after);
                record.error = Some(format!("{reason}: {error} (the channel is held {} ms)", retry_after.as_millis()));
            }
            Verdict::Retry { reason, error } if number >= self.config.max_attempts && !self.waits_a_lease(reason) => {
                record.outcome = PublishOutcome::DeadLettered;
                record.dead_letter_reason = Some("retries_exhausted".to_owned());
                record.error = Some(format!("{reason}: {error}"));
            }
            Verdict::Retry { reason, error } => {
                let mut wait = self.backoff(number);
                // Its last attempt too: once the lease is out it is dead-lettered at its claim
                // (`out_of_attempts`), unless a newer version took its place meanwhile.
                if self.waits_a_lease(reason) {
                    wait = wait.max(self.config.lease);
                }
                record.outcome = PublishOutcome::RetryAt(Utc::now() + wait);
                record.error = Some(format!("{reason}: {error}"));
            }
            Verdict::DeadLetter { reason, error, body } => {
                record.outcome = PublishOutcome::DeadLettered;
                record.dead_letter_reason = Some(reason);
                record.error = Some(error);
                record.body = body;
            }
        }
        // The platform's words, as a store can keep them.
        record.error = record.error.map(storable);
        record.body = record.body.map(storable);
        record.dead_letter_reason = record.dead_letter_reason.map(storable);
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
